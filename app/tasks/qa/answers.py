"""From the reader's per-window spans to ranked answers: trimming, merging across windows and
passages, and preferring a span nested in the best one."""

from __future__ import annotations

from typing import Iterable, NamedTuple, Sequence

from app.tasks.qa.preprocessing import Window


class Answer(NamedTuple):
    """A span ``passage[start:end]`` of passage ``passage_index`` and its score in [0, 1].

    ``evidence``: with answers summed over passages (``best_answers(aggregate="sum")``), the
    summed score of every passage where the same text is a span, what they are ranked by;
    ``None`` otherwise.
    """

    text: str
    score: float
    passage_index: int
    start: int
    end: int
    evidence: float | None = None

    @property
    def rank(self) -> float:
        """What answers are ranked by: the evidence when summed over passages, else the score."""
        return self.score if self.evidence is None else self.evidence


# Marks an answer does not begin or end with: clause punctuation (not "." or "%", which end
# abbreviations, numbers and percentages) and quotes or brackets that do not enclose a part of it.
CLAUSE_PUNCTUATION = frozenset("，。、；：？！,;:?!…")
BRACKETS = dict(zip("《“‘（(「『【[〈〔", "》”’）)」』】]〉〕"))
OPENERS = {closer: opener for opener, closer in BRACKETS.items()}


def _encloses(text: str, start: int, end: int) -> bool:
    """Whether ``text[start]`` opens a bracket that ``text[end - 1]`` closes."""
    opener, closer = text[start], BRACKETS.get(text[start])
    if closer is None or text[end - 1] != closer or end - start < 2:
        return False
    depth = 0
    for char in text[start:end - 1]:
        depth += (char == opener) - (char == closer)
        if depth == 0:
            return False
    return True


def trim_span(text: str, start: int, end: int) -> tuple[int, int]:
    """``text[start:end]`` without clause punctuation, enclosing brackets or quotes, and unpaired
    ones at its ends (“洗尘” → 洗尘, 《龙江颂》 → 龙江颂, f(x) stays); empty when nothing else is left."""
    while start < end:
        first, last, inside = text[start], text[end - 1], text[start:end]
        if _encloses(text, start, end):
            start, end = start + 1, end - 1
        elif first in CLAUSE_PUNCTUATION or first in OPENERS or (first in BRACKETS and BRACKETS[first] not in inside[1:]):
            start += 1
        elif last in CLAUSE_PUNCTUATION or last in BRACKETS or (last in OPENERS and OPENERS[last] not in inside[:-1]):
            end -= 1
        else:
            break
    return start, end


def best_answers(
    passages: Sequence[str],
    window_spans: Iterable[tuple[int, Window, Sequence[int], Sequence[int], Sequence[float]]],
    k: int,
    aggregate: str = "max",
) -> list[Answer]:
    """Merge the per-window top spans into the ``k`` best answers over all windows and passages.

    ``window_spans`` yields ``(passage_index, window, starts, ends, scores)`` with offsets
    inside the window. Each span is trimmed (:func:`trim_span`), and the same span seen by two
    overlapping windows, or left by trimming two, counts once (its best score). With
    ``aggregate="sum"``, answers with the same text in different passages add their scores
    into ``evidence`` (several passages agreeing: a ranking, not a probability) and are ranked
    by it; the score and position reported are those of the best-scoring occurrence.
    """
    best: dict[tuple[int, int, int], float] = {}
    for passage_index, window, starts, ends, scores in window_spans:
        for start, end, score in zip(starts, ends, scores):
            if score < 0 or end <= start or end > window.length:
                continue
            start, end = trim_span(passages[passage_index], window.offset + int(start), window.offset + int(end))
            if start == end:
                continue
            key = (passage_index, start, end)
            best[key] = max(best.get(key, 0.0), float(score))
    spans = sorted(best.items(), key=lambda item: -item[1])
    if aggregate == "max":
        answers = [Answer(passages[p][s:e], score, p, s, e) for (p, s, e), score in spans]
    elif aggregate == "sum":
        by_text: dict[str, Answer] = {}
        for (p, s, e), score in spans:
            text = passages[p][s:e]
            if text in by_text:
                first = by_text[text]
                by_text[text] = first._replace(evidence=first.evidence + score)
            else:
                by_text[text] = Answer(text, score, p, s, e, evidence=score)
        answers = sorted(by_text.values(), key=lambda a: -a.evidence)
    else:
        raise ValueError(f"aggregate must be 'max' or 'sum', not {aggregate!r}")
    return answers[:k]


def prefer_nested(answers: Sequence[Answer], ratio: float | None, pool: int | None = None) -> list[Answer]:
    """``answers`` (best first) with the best of the spans lying inside the best one moved to the
    front, if it ranks at least ``ratio`` times as high (:attr:`Answer.rank`); unchanged for
    ``None``. Only the first ``pool`` answers are looked at (all for ``None``), so that asking
    for more candidates does not change the answer.

    The reader's best span often runs past the answer (尤金袋鼠分布在澳洲南部岛屿及西岸地区 where
    CMRC's reference is 澳洲南部岛屿及西岸地区) while a span inside it scores nearly as well; the
    ratio is fitted on held-out answers at export (``fit_nested_ratio`` in training) and read from the spec.
    """
    if ratio is None or not answers:
        return list(answers)
    best = answers[0]
    inside = (a for a in answers[1:pool] if a.passage_index == best.passage_index and best.start <= a.start and a.end <= best.end)
    chosen = next(inside, None)
    if chosen is None or chosen.rank < ratio * best.rank:
        return list(answers)
    return [chosen, *(a for a in answers if a is not chosen)]
