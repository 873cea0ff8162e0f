"""FastAPI service that serves the models in ``models/``."""
