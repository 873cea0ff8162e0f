"""Entity spans and the tag sequences a tagger learns them as (BIO, BIOES), read the same way for
gold and predicted tags."""

from __future__ import annotations

from typing import Iterable, NamedTuple, Sequence


class Span(NamedTuple):
    """An entity: ``text[start:end]`` (end exclusive) has type ``label``."""

    label: str
    start: int
    end: int


def bio_to_spans(tags: Iterable[str]) -> list[Span]:
    """Read entity spans off a BIO tag sequence.

    An ``I-X`` that does not continue an ``X`` entity starts a new one (the
    conlleval convention), so predicted and gold tags are read the same way.
    """
    spans: list[Span] = []
    label, start = None, 0
    for i, tag in enumerate(list(tags) + ["O"]):
        prefix, _, kind = tag.partition("-")
        continues = prefix == "I" and kind == label
        if label is not None and not continues:
            spans.append(Span(label, start, i))
            label = None
        if prefix in ("B", "I") and not continues:
            label, start = kind, i
    return spans


def spans_to_tags(length: int, spans: Iterable[Span], scheme: str = "BIO") -> list[str]:
    """Tags for non-overlapping spans, the inverse of :func:`bio_to_spans` (after :func:`as_bio`).

    ``scheme`` "BIOES" also marks an entity's End and Single-character entities, so that
    a tagger has to decide where every entity ends, not only where it starts.
    """
    tags = ["O"] * length
    for span in spans:
        tags[span.start] = f"B-{span.label}"
        for i in range(span.start + 1, span.end):
            tags[i] = f"I-{span.label}"
        if scheme == "BIOES":
            tags[span.end - 1] = f"E-{span.label}" if span.end - span.start > 1 else f"S-{span.label}"
    return tags


def tag_constraints(tags: Sequence[str]) -> dict[str, list]:
    """Which tag sequences are well-formed, as a CRF's ``allowed_transitions`` / ``_starts`` /
    ``_ends``: I-X and E-X only continue a B-X or I-X; in BIOES a B-X or I-X must be continued
    (so it cannot be followed by O, B or S, nor end the text)."""
    def prefix(tag):
        return tag.partition("-")[0]

    def label(tag):
        return tag.partition("-")[2]

    open_needs_close = any(prefix(t) in ("E", "S") for t in tags)  # BIOES

    def allowed(before: str, after: str) -> bool:
        if prefix(after) in ("I", "E"):
            return prefix(before) in ("B", "I") and label(before) == label(after)
        return not (open_needs_close and prefix(before) in ("B", "I"))

    return {
        "allowed_transitions": [[allowed(a, b) for b in tags] for a in tags],
        "allowed_starts": [prefix(t) not in ("I", "E") for t in tags],
        "allowed_ends": [not (open_needs_close and prefix(t) in ("B", "I")) for t in tags],
    }


def as_bio(tag: str) -> str:
    """A BIOES tag in BIO (E-X → I-X, S-X → B-X); BIO tags are returned unchanged."""
    prefix, _, label = tag.partition("-")
    return {"E": f"I-{label}", "S": f"B-{label}"}.get(prefix, tag)


def spans_from_tag_batch(tags, lengths) -> list[list[Span]]:
    """Entity spans per text from a tagger's batch output (byte-string tags ``[N, L]``, lengths ``[N]``),
    for the in-process tagger during training (the exported graph decodes its entities itself)."""
    return [
        bio_to_spans(tag.decode() for tag in row[: int(length)])
        for row, length in zip(tags, lengths)
    ]
