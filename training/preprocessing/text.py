"""Text preprocessing shared by training, evaluation and the exported serving graph.

Everything here is written with TensorFlow ops so that the very same functions
run while building training tensors and inside the exported SavedModel: the two
can never drift apart, and TensorFlow Serving gets a model that takes raw UTF-8.

Normalisation maps one code point to exactly one code point. Offsets into the
normalised sequence are therefore offsets into the caller's original string
(counted in Unicode code points, as Python's ``str`` counts them), and no
separate offset map needs to be carried around.
"""

from __future__ import annotations

from typing import Iterable, NamedTuple, Sequence

import tensorflow as tf

from training.preprocessing.chinese_script import simplify_codepoints

PAD_CODEPOINT = 0
REPLACEMENT_CHARACTER = 0xFFFD

_FULLWIDTH_FIRST, _FULLWIDTH_LAST = 0xFF01, 0xFF5E  # ！ .. ～
_FULLWIDTH_TO_ASCII = 0xFEE0
_IDEOGRAPHIC_SPACE = 0x3000


def normalize_codepoints(codepoints: tf.Tensor, lowercase: bool = True) -> tf.Tensor:
    """Normalise Unicode code points the way the training corpora were normalised.

    Traditional Chinese characters become Simplified (:mod:`training.preprocessing.chinese_script`),
    full-width ASCII becomes half-width, the ideographic space becomes a space,
    ASCII letters are lower-cased (unless ``lowercase`` is false: a generator
    that copies Latin words into its output keeps their case), and control
    characters become a space (which also keeps code point 0 free to mean padding).
    """
    cp = simplify_codepoints(codepoints)
    cp = tf.where((cp >= _FULLWIDTH_FIRST) & (cp <= _FULLWIDTH_LAST), cp - _FULLWIDTH_TO_ASCII, cp)
    cp = tf.where(cp == _IDEOGRAPHIC_SPACE, 0x20, cp)
    if lowercase:
        cp = tf.where((cp >= 0x41) & (cp <= 0x5A), cp + 0x20, cp)
    cp = tf.where((cp < 0x20) | (cp == 0x7F), 0x20, cp)
    return cp


def texts_to_codepoints(texts: tf.Tensor, lowercase: bool = True) -> tf.RaggedTensor:
    """UTF-8 strings ``[N]`` → normalised code points, ragged ``[N, (len)]``.

    Invalid UTF-8 decodes to U+FFFD rather than failing.
    """
    ragged = tf.strings.unicode_decode(
        texts, "UTF-8", errors="replace", replacement_char=REPLACEMENT_CHARACTER
    )
    return tf.ragged.map_flat_values(lambda cp: normalize_codepoints(cp, lowercase), ragged)


def encode_texts(texts: tf.Tensor, lowercase: bool = True) -> tf.Tensor:
    """UTF-8 strings ``[N]`` → normalised code points ``[N, L + 1]``, padded with 0.

    One padding column is always appended so that the time axis is never empty
    (an empty string would otherwise give a zero-length sequence).
    """
    dense = texts_to_codepoints(texts, lowercase).to_tensor(default_value=PAD_CODEPOINT)
    return tf.pad(dense, [[0, 0], [0, 1]])


def codepoints_of(texts: Sequence[str], lowercase: bool = True) -> tf.RaggedTensor:
    """Python strings → normalised code points (ragged), via :func:`texts_to_codepoints`."""
    return texts_to_codepoints(tf.constant([t.encode("utf-8") for t in texts], dtype=tf.string), lowercase)


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
    """Entity spans per text from a tagger's batch output (byte-string tags ``[N, L]``, lengths ``[N]``).

    Used both by ``training ner evaluate`` and by the service, on the outputs of
    the exported SavedModel.
    """
    return [
        bio_to_spans(tag.decode() for tag in row[: int(length)])
        for row, length in zip(tags, lengths)
    ]
