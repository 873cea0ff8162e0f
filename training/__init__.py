"""Offline training, evaluation and export of the served models.

Run ``python -m training <task> train|evaluate|export --help``.
"""
