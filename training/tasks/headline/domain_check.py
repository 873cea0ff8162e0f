"""The headline answer's ``in_domain``: fitted at export on the run's held-out texts, the
log-probability per token below which a best headline is rarer than those the model writes for 95 %
of each genre it learned (the 5th percentile, the lowest over genres)."""

from __future__ import annotations

import numpy as np

from app.tasks.batches import map_by_length
from app.tasks.headline.pipeline import HeadlinePipeline, log_prob_per_token
from training.data.headline import Pair

PERCENTILE = 5  # share of each learned genre's texts flagged as doubtful


def fit_domain_check(pipeline: HeadlinePipeline, held_out: dict[str, list[Pair]]) -> dict:
    """The ``domain_check`` manifest section for ``pipeline``'s model, from its held-out ``genre → pairs``."""
    lowest = {}
    for genre, pairs in held_out.items():
        texts = [p.source for p in pairs]
        scores = map_by_length(
            lambda batch: [log_prob_per_token(c[0]) for c in pipeline.read([pipeline.job(t) for t in batch])],
            texts, [len(t) for t in texts], 64, f"domain check, {genre}",
        )
        lowest[genre] = float(np.percentile(scores, PERCENTILE))
    return {
        "min_log_prob_per_token": round(min(lowest.values()), 4),
        "fitted_on": "the 5th percentile of the best headline's log-probability per token on the held-out texts of "
        + ", ".join(f"{genre} ({len(held_out[genre])}: {value:.4f})" for genre, value in lowest.items()),
    }
