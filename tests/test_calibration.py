"""Platt scaling (``app/tasks/calibration.py``): the map from a score to a probability that the
QA service and ``python -m training qa evaluate`` apply from a reader's manifest."""

from __future__ import annotations

import numpy as np
import pytest

from app.tasks.calibration import PlattScaling


def _outcomes(slope: float, intercept: float, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    scores = rng.uniform(0.001, 0.999, n)
    z = slope * (np.log(scores) - np.log1p(-scores)) + intercept
    return scores, rng.random(n) < 1 / (1 + np.exp(-z))


@pytest.mark.parametrize(("slope", "intercept"), [(1.0, 0.0), (0.5, -0.7), (2.0, 1.0)])
def test_fit_recovers_the_scaling_that_generated_the_outcomes(slope, intercept):
    scaling = PlattScaling.fit(*_outcomes(slope, intercept, 20_000, seed=3))
    assert scaling.slope == pytest.approx(slope, abs=0.08) and scaling.intercept == pytest.approx(intercept, abs=0.08)


def test_fitted_probabilities_match_the_outcome_rate():
    scores, right = _outcomes(0.5, -0.7, 20_000, seed=4)
    probabilities = PlattScaling.fit(scores, right)(scores)
    assert probabilities.mean() == pytest.approx(right.mean(), abs=0.01)
    high = probabilities > 0.6
    assert right[high].mean() == pytest.approx(probabilities[high].mean(), abs=0.03)


def test_perfectly_separated_outcomes_still_give_a_finite_monotone_map():
    scaling = PlattScaling.fit([0.1, 0.2, 0.8, 0.9], [False, False, True, True])
    probabilities = scaling([0.0, 0.1, 0.5, 0.9, 1.0])
    assert np.all(np.isfinite([scaling.slope, scaling.intercept])) and scaling.slope > 0
    assert np.all(np.diff(probabilities) > 0) and 0 < probabilities[0] and probabilities[-1] < 1


def test_the_slope_is_never_negative():
    """A sample where higher scores happen to be wrong more often still gives a non-decreasing map."""
    scaling = PlattScaling.fit([0.1, 0.2, 0.8, 0.9], [True, True, False, False])
    assert scaling.slope == 0.0 and 0 < scaling.probability(0.5) < 1


def test_no_calibration_is_the_identity():
    scaling = PlattScaling.from_dict(None)
    assert scaling([0.05, 0.5, 0.93]) == pytest.approx([0.05, 0.5, 0.93])
    assert PlattScaling.from_dict({}) == scaling


def test_round_trip_through_a_manifest_dict():
    scaling = PlattScaling(slope=0.54, intercept=-0.65)
    stored = {**scaling.to_dict(), "answer_threshold": 0.1}  # a manifest's calibration holds more than the map
    assert stored["method"] == "platt" and PlattScaling.from_dict(stored) == scaling
    assert scaling.probability(0.5) == pytest.approx(1 / (1 + np.exp(0.65)))


def test_fit_needs_one_outcome_per_score():
    with pytest.raises(ValueError, match="outcomes"):
        PlattScaling.fit([0.1, 0.2], [True])
    with pytest.raises(ValueError, match="outcomes"):
        PlattScaling.fit([], [])
