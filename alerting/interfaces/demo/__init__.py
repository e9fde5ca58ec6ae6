"""`sirena demo`: a synthetic city and a scripted incident, on built-in defaults."""
