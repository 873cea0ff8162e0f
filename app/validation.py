"""Checks on user text shared by the text tasks' request schemas."""

from __future__ import annotations


def check_text(value: str, max_chars: int) -> str:
    """Reject text the models cannot use; the message becomes the field's error."""
    if not value.strip():
        raise ValueError("must contain at least one non-whitespace character")
    if len(value) > max_chars:
        raise ValueError(f"is {len(value)} characters long; the limit is {max_chars}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"is not valid Unicode (unpaired surrogate at position {exc.start})") from None
    return value
