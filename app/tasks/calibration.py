"""Platt scaling: a model's score in [0, 1] → the estimated probability that its answer is right.

``p = σ(slope · logit(score) + intercept)``, fitted by maximum likelihood on held-out answers
whose correctness is known. Slope 1 and intercept 0 give the score back unchanged (an
uncalibrated model). Serving and evaluation apply the same :class:`PlattScaling` read from the
model's manifest.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

_EPSILON = 1e-6  # scores of exactly 0 or 1 would have an infinite logit


@dataclass(frozen=True)
class PlattScaling:
    slope: float = 1.0
    intercept: float = 0.0

    def __call__(self, scores: Sequence[float] | np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(self.slope * _logit(scores) + self.intercept)))

    def probability(self, score: float) -> float:
        return float(self([score])[0])

    @classmethod
    def fit(cls, scores: Sequence[float], correct: Sequence[bool]) -> "PlattScaling":
        """Maximum-likelihood slope and intercept (the logistic log-loss minimised by L-BFGS), with
        Platt's smoothed targets ((right + 1) / (right + 2) and 1 / (wrong + 2) instead of 1 and 0),
        which keep the fit finite when the scores separate right from wrong answers perfectly."""
        from scipy.optimize import minimize  # a training extra: serving only applies the scaling

        x = _logit(scores)
        right = np.asarray(correct, dtype=bool)
        if len(x) != len(right) or not len(x):
            raise ValueError(f"need as many outcomes as scores, and some: {len(x)} scores, {len(right)} outcomes")
        n_right = right.sum()
        y = np.where(right, (n_right + 1) / (n_right + 2), 1 / (len(right) - n_right + 2))

        def log_loss(w: np.ndarray) -> tuple[float, np.ndarray]:
            z = w[0] * x + w[1]
            loss = np.logaddexp(0.0, z) - y * z  # -log σ(z) for right answers, -log(1 - σ(z)) for wrong
            residual = 1.0 / (1.0 + np.exp(-z)) - y
            return float(loss.mean()), np.array([(residual * x).mean(), residual.mean()])

        # slope ≥ 0: a higher score never means a lower probability (small samples can suggest otherwise)
        w = minimize(log_loss, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B", bounds=[(0.0, None), (None, None)]).x
        return cls(slope=float(w[0]), intercept=float(w[1]))

    def to_dict(self) -> dict[str, Any]:
        return {"method": "platt", **asdict(self)}

    @classmethod
    def from_dict(cls, fields: dict[str, Any] | None) -> "PlattScaling":
        """The scaling stored by :meth:`to_dict`; ``None`` (a model never calibrated) is the identity."""
        if not fields:
            return cls()
        return cls(slope=float(fields["slope"]), intercept=float(fields["intercept"]))


def _logit(scores: Sequence[float] | np.ndarray) -> np.ndarray:
    s = np.clip(np.asarray(scores, dtype=np.float64), _EPSILON, 1 - _EPSILON)
    return np.log(s) - np.log1p(-s)
