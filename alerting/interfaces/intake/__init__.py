"""Machine ways in besides the REST API: e-mail (smtp.py), CAP 1.2 (cap.py), and their tables (models.py)."""
