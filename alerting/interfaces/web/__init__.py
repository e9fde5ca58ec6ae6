"""The operator console (Flask): `app.create_app(settings)` builds it, with the REST API."""
