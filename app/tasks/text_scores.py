"""Text agreement scores that serving and evaluation share: CMRC 2018's F1 and exact match
between an answer and references, and character ROUGE-L between two texts (``python -m
app.compare`` compares two versions' answers with them; ``training/metrics.py`` grades with them)."""

from __future__ import annotations

import re
from typing import Sequence


# The CMRC 2018 evaluation script's punctuation list (its "……" never matches a single character).
_CMRC_PUNCTUATION = set("-:_*^/\\~`+=，。：？！“”；’《》·、「」（）－～『』")
_LATIN_RUN = re.compile(r"\w+|[^\w\s]")


def _cmrc_tokens(text: str) -> list[str]:
    """The official script's ``mixed_segmentation``: each CJK character is a token, other runs are
    split into words (a regular expression here, where the script uses nltk's tokenizer)."""
    tokens, run = [], ""
    for char in text.lower().strip():
        if char in _CMRC_PUNCTUATION:
            continue
        if "\u4e00" <= char <= "\u9fa5":
            tokens.extend(_LATIN_RUN.findall(run))
            run = ""
            tokens.append(char)
        else:
            run += char
    tokens.extend(_LATIN_RUN.findall(run))
    return tokens


def _longest_common_substring(a: Sequence[str], b: Sequence[str]) -> int:
    best, previous = 0, [0] * (len(b) + 1)
    for x in a:
        current = [0] * (len(b) + 1)
        for j, y in enumerate(b, 1):
            if x == y:
                current[j] = previous[j - 1] + 1
                best = max(best, current[j])
        previous = current
    return best


def cmrc_f1(prediction: str, references: Sequence[str]) -> float:
    """CMRC 2018 F1: longest common substring of the tokens (punctuation removed), max over references."""
    predicted = _cmrc_tokens(prediction)
    scores = [0.0]
    for reference in references:
        gold = _cmrc_tokens(reference)
        common = _longest_common_substring(gold, predicted)
        if common:
            precision, recall = common / len(predicted), common / len(gold)
            scores.append(2 * precision * recall / (precision + recall))
    return max(scores)


def cmrc_em(prediction: str, references: Sequence[str]) -> float:
    """CMRC 2018 exact match: equal after lower-casing and removing punctuation, for any reference."""
    def clean(text: str) -> str:
        return "".join(c for c in text.lower().strip() if c not in _CMRC_PUNCTUATION)

    return float(any(clean(prediction) == clean(reference) for reference in references))


def overlap_f1(overlap: int, n_predicted: int, n_reference: int) -> float:
    if not overlap:
        return 0.0
    precision, recall = overlap / n_predicted, overlap / n_reference
    return 2 * precision * recall / (precision + recall)


def _longest_common_subsequence(a: Sequence[str], b: Sequence[str]) -> int:
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b, 1):
            current.append(previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def chars(text: str) -> list[str]:
    return [c for c in text if not c.isspace()]


def rouge_l(prediction: str, reference: str) -> float:
    """Character-level ROUGE-L F1 of one pair (whitespace ignored)."""
    p, r = chars(prediction), chars(reference)
    return overlap_f1(_longest_common_subsequence(p, r), len(p), len(r))
