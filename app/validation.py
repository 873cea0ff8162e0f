"""Checks on user text shared by the text tasks' request schemas."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema


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


# What str.strip() removes (all of it below U+3001), spelt out: JSON Schema's \s (ECMAScript's)
# is a slightly different set.
_WHITESPACE = "".join(f"\\u{i:04x}" for i in range(0x3001) if chr(i).isspace())
NOT_BLANK = f"[^{_WHITESPACE}]"


def user_text(max_chars: int) -> type[str]:
    """A request's text field: checked by :func:`check_text` (whose messages name the problem),
    described in the OpenAPI schema by the same rules (non-blank, at most ``max_chars``)."""
    return Annotated[
        str,
        AfterValidator(lambda v: check_text(v, max_chars)),
        WithJsonSchema({"type": "string", "minLength": 1, "maxLength": max_chars, "pattern": NOT_BLANK}),
    ]


def _whole_number(value):
    # Lax int parsing would take true as 1 and "4" as 4; JSON Schema's integer is a number
    # without a fractional part, 3.0 included.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("must be an integer")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError("must be a whole number")
    return int(value)


def integer(**bounds) -> type[int]:
    """A request's integer field with ``ge``/``le``/``gt`` bounds, stated in its OpenAPI schema."""
    return Annotated[int, Field(**bounds), BeforeValidator(_whole_number)]  # bounds first: on the int itself


def _plain_number(value):
    # Lax float parsing would take false as 0.0 and "0.5" as 0.5; JSON Schema's number is neither.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("must be a number")
    return value


def number(**bounds) -> type[float]:
    """A request's number field with ``ge``/``le`` bounds, stated in its OpenAPI schema."""
    return Annotated[float, Field(**bounds), BeforeValidator(_plain_number)]
