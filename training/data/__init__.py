"""Readers for the corpora under ``../shared/data/<task>/``."""
