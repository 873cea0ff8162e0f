"""Traditional Chinese read as Simplified, one code point to one: in the graph's normalisation,
and outside it before jieba and before calling a headline model exported without it.

Every corpus the text models learn from is written in Simplified characters, so a Traditional
character (國, 會, 說) is one they rarely or never saw: `ner/4`'s entity F1 on MSRA test falls
from 0.903 to 0.661 when the same sentences are written in Traditional characters (docs/ner.md).
Mapping each Traditional character to its Simplified form before the models look lets them read
both scripts. One code point maps to one, so offsets into the caller's text stay what they are,
as for the rest of :func:`app.tasks.text.normalize_codepoints`, which calls this.

The table, ``t2s_characters.tsv``, is OpenCC's character conversion (``t2s``, opencc 1.4.2) of
every CJK code point it turns into one other code point, written by ``python -m
app.tasks.chinese_script`` and committed, so the graph carries it. Character by character it
agrees with OpenCC's phrase-aware conversion on 99.9 % of the characters that either changes in
DRCD's Traditional passages; phrases are what it cannot see (畫 is 画 as "picture", 划 in 計畫).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import opencc
import tensorflow as tf

TABLE_PATH = Path(__file__).with_name("t2s_characters.tsv")

# In OpenCC's table, but standard Simplified characters as well (乾坤, 哪吒, 捱): the only ones of
# its characters that MSRA's 1.88 M characters of Simplified training text use, so left alone.
SIMPLIFIED_IN_USE = "乾吒捱"

CJK_RANGES = ((0x2E80, 0x2FDF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x323AF))


@functools.cache
def _table() -> tuple[np.ndarray, np.ndarray]:
    """The Traditional code points (sorted) and their Simplified ones."""
    pairs = [line.split("\t") for line in TABLE_PATH.read_text(encoding="utf-8").splitlines() if line]
    traditional = np.array([ord(t) for t, _ in pairs], dtype=np.int32)
    simplified = np.array([ord(s) for _, s in pairs], dtype=np.int32)
    order = np.argsort(traditional)
    return traditional[order], simplified[order]


@functools.cache
def _translation() -> dict[int, int]:
    traditional, simplified = _table()
    return dict(zip(traditional.tolist(), simplified.tolist()))


def simplify_text(text: str) -> str:
    """``text`` with each Traditional character replaced by its Simplified one (same length), for
    steps outside the graph that read words (jieba's dictionary is Simplified too)."""
    return text.translate(_translation())


def simplify_codepoints(codepoints: tf.Tensor) -> tf.Tensor:
    """Code points (any shape, int32) with each Traditional character replaced by its Simplified one."""
    traditional, simplified = _table()
    cp = tf.convert_to_tensor(codepoints, dtype=tf.int32)
    flat = tf.reshape(cp, [-1])
    index = tf.minimum(tf.searchsorted(traditional, flat), len(traditional) - 1)
    found = tf.gather(traditional, index) == flat
    return tf.reshape(tf.where(found, tf.gather(simplified, index), flat), tf.shape(cp))


def _is_chinese(char: str) -> bool:
    return any(first <= ord(char) <= last for first, last in CJK_RANGES)


def has_chinese(text: str) -> bool:
    """Whether ``text`` has at least one Chinese character (a CJK ideograph or radical)."""
    return any(map(_is_chinese, text))


# At least this share of a text's Chinese characters in the table marks it as written in
# Traditional characters: DRCD's Taiwan passages have 0.18 or more, CMRC's Simplified ones at most
# 0.03 (1 % of DRCD's questions, short as they are, have less than 0.08).
TRADITIONAL_SHARE = 0.1


def written_in_traditional(text: str) -> bool:
    """Whether ``text`` is written in Traditional characters (:data:`TRADITIONAL_SHARE`)."""
    chinese = sum(map(_is_chinese, text))
    changed = sum(a != b for a, b in zip(text, simplify_text(text)))
    return chinese > 0 and changed >= TRADITIONAL_SHARE * chinese


@functools.cache
def _opencc(config: str) -> opencc.OpenCC:
    return opencc.OpenCC(config)


def to_traditional(text: str) -> str:
    """OpenCC's phrase-aware Simplified → Traditional conversion (``s2t``): for writing a
    generated headline back in its abstract's script, and for measuring how the models read text
    written in Traditional characters."""
    return _opencc("s2t").convert(text)


def to_simplified(text: str) -> str:
    """OpenCC's phrase-aware Traditional → Simplified conversion (``t2s``), for Traditional training
    corpora (DRCD): better than the one-for-one table where a phrase decides (計畫 → 计划), but it
    may change a text's length, so it is for whole corpora, not for texts whose offsets matter."""
    return _opencc("t2s").convert(text)


def write_table(path: Path = TABLE_PATH) -> int:
    """Write the table from OpenCC; returns the number of characters it maps."""
    lines = []
    for first, last in CJK_RANGES:
        for codepoint in range(first, last + 1):
            char = chr(codepoint)
            converted = to_simplified(char)
            if converted != char and len(converted) == 1 and char not in SIMPLIFIED_IN_USE:
                lines.append(f"{char}\t{converted}\n")
    path.write_text("".join(lines), encoding="utf-8")
    _table.cache_clear()
    _translation.cache_clear()
    return len(lines)


if __name__ == "__main__":
    print(f"{write_table()} characters → {TABLE_PATH}")
