"""Console blueprints: thin handlers that parse a form, call one service and render or redirect."""
