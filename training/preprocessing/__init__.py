"""Preprocessing shared by training, evaluation and serving: one path, so they never drift."""
