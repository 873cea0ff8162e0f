"""The headline pipeline bound to one generator: abstracts → ranked headlines, in the abstract's script.

Beam search runs in the exported graph; one model call serves every job of a batch that shares a
beam width and length. The route, ``python -m training headline evaluate`` and ``bench/`` call it.
"""

from __future__ import annotations

from itertools import groupby
from typing import Callable, NamedTuple, Sequence

import tensorflow as tf

from app.tasks.chinese_script import simplify_text, to_traditional, written_in_traditional
from app.tasks.headline.schemas import Candidate, HeadlineResult
from app.tasks.headline.spec import HeadlineDecoding, HeadlineDomainCheck, HeadlineSpec


class Job(NamedTuple):
    text: str
    beam_width: int
    max_length: int


def call_generator(serve: Callable, texts: Sequence[str], beam_width: int, max_length: int, decoding: HeadlineDecoding) -> dict:
    """Call an exported generator signature (text, beam_width, max_length, length_penalty,
    block_repeated_trigrams), the last two from ``decoding``.

    Traditional characters are read as Simplified here as well as in the graph's normalisation,
    for versions exported before it did (`headline/1`); a second pass changes nothing.
    """
    return serve(
        text=tf.constant([simplify_text(t).encode("utf-8") for t in texts]),
        beam_width=tf.constant(beam_width, tf.int32),
        max_length=tf.constant(max_length, tf.int32),
        length_penalty=tf.constant(decoding.length_penalty, tf.float32),
        block_repeated_trigrams=tf.constant(decoding.block_repeated_trigrams, tf.bool),
    )


def log_prob_per_token(candidate: Candidate) -> float:
    """The candidate's log-probability per generated token: each character and the end token."""
    return candidate.log_prob / (len(candidate.text) + 1)


class HeadlinePipeline:
    def __init__(
        self,
        predict: Callable[..., dict],
        decoding: HeadlineDecoding,
        max_source_chars: int,
        domain_check: HeadlineDomainCheck | None = None,
    ):
        self.predict = predict
        self.decoding = decoding
        self.max_source_chars = max_source_chars
        self.domain_check = domain_check

    @classmethod
    def from_spec(cls, predict: Callable[..., dict], spec: HeadlineSpec) -> "HeadlinePipeline":
        return cls(predict, spec.decoding, spec.preprocessing.max_source_chars, spec.domain_check)

    def job(self, text: str, beam_width: int | None = None, max_length: int | None = None, num_candidates: int = 1) -> Job:
        """A generation job with this version's defaults for what the caller left out."""
        return Job(text, beam_width or max(self.decoding.beam_width, num_candidates), max_length or self.decoding.max_length)

    def read(self, jobs: list[Job]) -> list[list[Candidate]]:
        """Candidates for each job (the micro-batcher's batch function): one model call per (beam width, max length)."""
        results: list[list[Candidate]] = [[] for _ in jobs]
        settings_of = lambda i: (jobs[i].beam_width, jobs[i].max_length)  # noqa: E731
        for (beam_width, max_length), group in groupby(sorted(range(len(jobs)), key=settings_of), key=settings_of):
            indices = list(group)
            out = call_generator(self.predict, [jobs[i].text for i in indices], beam_width, max_length, self.decoding)
            rows = zip(out["headlines"].numpy(), out["scores"].numpy(), out["log_probs"].numpy())
            for i, (texts, scores, log_probs) in zip(indices, rows):
                results[i] = [
                    Candidate(text=t.decode("utf-8"), score=round(float(s), 5), log_prob=round(float(lp), 5))
                    for t, s, lp in zip(texts, scores, log_probs)
                ]
        return results

    def respond(self, text: str, candidates: list[Candidate], num_candidates: int = 1) -> HeadlineResult:
        """The best ``num_candidates``, written back in Traditional characters for an abstract written
        in them, and whether the best looks like the headlines of the text the model learned from."""
        in_domain = None
        if self.domain_check is not None:
            in_domain = log_prob_per_token(candidates[0]) >= self.domain_check.min_log_prob_per_token
        candidates = candidates[:num_candidates]
        if written_in_traditional(text):  # the model writes Simplified; answer in the abstract's script
            candidates = [c.model_copy(update={"text": to_traditional(c.text)}) for c in candidates]
        return HeadlineResult(
            headline=candidates[0].text,
            candidates=candidates,
            truncated=len(text) > self.max_source_chars,
            chars_read=min(len(text), self.max_source_chars),
            in_domain=in_domain,
        )
