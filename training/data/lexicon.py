"""A categorised word list from jieba's bundled dictionary (no downloads)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from app.tasks.text import codepoints_of

# jieba part-of-speech tag → lexicon category; any other tag is a plain "word".
CATEGORY_OF_TAG = {"nr": "person", "nrfg": "person", "nrt": "person", "ns": "place", "nt": "organization", "nz": "proper_noun"}
CATEGORIES = ("word", "person", "place", "organization", "proper_noun")


@lru_cache(maxsize=4)
def jieba_lexicon(max_word_length: int) -> dict[str, list[str]]:
    """Words of jieba's dictionary, normalised like model input, grouped by category.

    A word in several categories keeps the most specific one (a named-entity
    category over "word"). Order follows the dictionary file, so it is stable
    for a pinned jieba version.
    """
    import jieba

    path = Path(jieba.__file__).parent / "dict.txt"
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) >= 2 and len(parts[0]) <= max_word_length:
            entries.append((parts[0], CATEGORY_OF_TAG.get(parts[2] if len(parts) > 2 else "", "word")))
    normalised = ["".join(map(chr, row)) for row in codepoints_of([w for w, _ in entries]).to_list()]
    category_of: dict[str, str] = {}
    for word, (_, category) in zip(normalised, entries):
        if category_of.get(word, "word") == "word":
            category_of[word] = category
    lexicon: dict[str, list[str]] = {c: [] for c in CATEGORIES}
    for word, category in category_of.items():
        lexicon[category].append(word)
    return lexicon
