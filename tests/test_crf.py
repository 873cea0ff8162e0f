"""The CRF against brute force over every tag path, on small random problems."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from training.layers import CRF, CRFNegativeLogLikelihood
from training.data.tags import tag_constraints


def _crf(num_tags: int, seed: int, constrained: bool = False) -> CRF:
    rng = np.random.default_rng(seed)
    constraints = {}
    if constrained:  # random constraints; tag 0 may always start, follow anything and end
        transitions = rng.random((num_tags, num_tags)) < 0.6
        transitions[:, 0] = True
        constraints = {
            "allowed_transitions": transitions.tolist(),
            "allowed_starts": [True] + (rng.random(num_tags - 1) < 0.6).tolist(),
            "allowed_ends": [True] + (rng.random(num_tags - 1) < 0.6).tolist(),
        }
    crf = CRF(num_tags, **constraints)
    crf.build((None, None, num_tags))
    for weight in crf.weights:
        weight.assign(rng.normal(scale=2.0, size=weight.shape).astype("float32"))
    return crf


def _brute_force(crf: CRF, emissions: np.ndarray, length: int) -> tuple[tuple[int, ...], float, float]:
    """Best path, its score and log Σ exp(score) by enumerating all allowed paths of one sequence."""
    trans = crf.transitions.numpy()
    start, end = crf.start_transitions.numpy(), crf.end_transitions.numpy()
    allowed = np.array(crf.allowed_transitions) if crf.allowed_transitions else np.ones_like(trans, bool)
    starts = crf.allowed_starts or [True] * crf.num_tags
    ends = crf.allowed_ends or [True] * crf.num_tags
    scores = {}
    for path in itertools.product(range(crf.num_tags), repeat=length):
        if not (starts[path[0]] and ends[path[-1]] and all(allowed[a, b] for a, b in zip(path, path[1:]))):
            continue
        score = start[path[0]] + end[path[-1]] + sum(emissions[t, tag] for t, tag in enumerate(path))
        score += sum(trans[a, b] for a, b in zip(path, path[1:]))
        scores[path] = score
    best = max(scores, key=scores.get)
    values = np.array(list(scores.values()), dtype=np.float64)
    log_z = values.max() + np.log(np.exp(values - values.max()).sum())
    return best, scores[best], log_z


problems = st.builds(
    dict,
    num_tags=st.integers(1, 4),
    lengths=st.lists(st.integers(1, 5), min_size=1, max_size=3),
    seed=st.integers(0, 2**31 - 1),
    constrained=st.booleans(),
)


@settings(max_examples=40, deadline=None)
@given(problems)
def test_viterbi_and_partition_match_brute_force(problem):
    num_tags, lengths, seed = problem["num_tags"], problem["lengths"], problem["seed"]
    crf = _crf(num_tags, seed, problem["constrained"])
    max_len = max(lengths)
    rng = np.random.default_rng(seed + 1)
    emissions = rng.normal(scale=2.0, size=(len(lengths), max_len, num_tags)).astype("float32")
    mask = np.arange(max_len)[None, :] < np.array(lengths)[:, None]

    paths, best_scores = crf.decode(emissions, mask)
    log_z = crf.log_partition(emissions, mask).numpy()
    for i, length in enumerate(lengths):
        best, best_score, expected_log_z = _brute_force(crf, emissions[i], length)
        assert best_scores[i].numpy() == pytest.approx(best_score, rel=1e-4, abs=1e-4)
        # Ties are possible in principle; compare scores of the decoded path, not the path itself.
        decoded = tuple(paths[i, :length].numpy())
        decoded_score = crf.sequence_score(emissions[i : i + 1], paths[i : i + 1], mask[i : i + 1])[0].numpy()
        assert decoded_score == pytest.approx(best_score, rel=1e-4, abs=1e-4), (decoded, best)
        assert log_z[i] == pytest.approx(expected_log_z, rel=1e-4, abs=1e-4)
        assert (paths[i, length:].numpy() == 0).all()
        assert decoded_score > -1000  # an allowed path (all-zeros always is)


@settings(max_examples=20, deadline=None)
@given(problems)
def test_padding_changes_nothing(problem):
    """Scores of a sequence are the same alone and padded inside a longer batch."""
    num_tags, lengths, seed = problem["num_tags"], problem["lengths"], problem["seed"]
    crf = _crf(num_tags, seed)
    rng = np.random.default_rng(seed + 2)
    length = lengths[0]
    alone = rng.normal(size=(1, length, num_tags)).astype("float32")
    padded = np.concatenate([alone, rng.normal(size=(1, 3, num_tags)).astype("float32")], axis=1)
    padded_mask = np.arange(length + 3)[None] < length
    path_alone, score_alone = crf.decode(alone, np.ones((1, length), bool))
    path_padded, score_padded = crf.decode(padded, padded_mask)
    np.testing.assert_array_equal(path_alone.numpy()[0], path_padded.numpy()[0, :length])
    np.testing.assert_allclose(score_alone.numpy(), score_padded.numpy(), rtol=1e-5)
    np.testing.assert_allclose(
        crf.log_partition(alone, np.ones((1, length), bool)).numpy(),
        crf.log_partition(padded, padded_mask).numpy(),
        rtol=1e-5,
    )


def test_loss_is_negative_log_likelihood_and_masks_padding():
    crf = _crf(3, 0)
    emissions = np.random.default_rng(0).normal(size=(2, 4, 3)).astype("float32")
    y_true = np.array([[0, 1, 2, 1], [2, 0, -1, -1]])
    mask = y_true >= 0
    per_sequence = CRFNegativeLogLikelihood(crf, reduction=None)(y_true, emissions).numpy()
    expected = crf.log_partition(emissions, mask) - crf.sequence_score(emissions, np.maximum(y_true, 0), mask)
    np.testing.assert_allclose(per_sequence, expected.numpy(), rtol=1e-6)
    assert (per_sequence > 0).all()


def test_config_round_trip():
    constraints = tag_constraints(["O", "B-PER", "I-PER"])
    crf = CRF(3, name="crf", **constraints)
    clone = CRF.from_config(crf.get_config())
    assert clone.num_tags == 3 and clone.name == "crf"
    assert clone.allowed_transitions == constraints["allowed_transitions"]


def test_bio_and_bioes_constraints():
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    bio = tag_constraints(tags)
    allowed = {(a, b) for i, a in enumerate(tags) for j, b in enumerate(tags) if bio["allowed_transitions"][i][j]}
    assert ("O", "I-PER") not in allowed and ("B-LOC", "I-PER") not in allowed
    assert {("B-PER", "I-PER"), ("I-PER", "I-PER"), ("I-PER", "B-LOC"), ("B-PER", "O")} <= allowed
    assert bio["allowed_starts"] == [True, True, False, True, False] and all(bio["allowed_ends"])

    tags = ["O", "B-PER", "I-PER", "E-PER", "S-PER"]
    bioes = tag_constraints(tags)
    allowed = {(a, b) for i, a in enumerate(tags) for j, b in enumerate(tags) if bioes["allowed_transitions"][i][j]}
    assert ("B-PER", "O") not in allowed and ("I-PER", "S-PER") not in allowed and ("E-PER", "I-PER") not in allowed
    assert {("B-PER", "E-PER"), ("B-PER", "I-PER"), ("E-PER", "S-PER"), ("S-PER", "B-PER"), ("O", "O")} <= allowed
    assert bioes["allowed_ends"] == [True, False, False, True, True]


def _path_probabilities(crf: CRF, emissions: np.ndarray, length: int, temperature: float = 1.0) -> dict[tuple[int, ...], float]:
    """P(path) ∝ exp(score / temperature) for every allowed path of one sequence, by enumeration."""
    trans = crf.transitions.numpy()
    start, end = crf.start_transitions.numpy(), crf.end_transitions.numpy()
    allowed = np.array(crf.allowed_transitions)
    scores = {}
    for path in itertools.product(range(crf.num_tags), repeat=length):
        if crf.allowed_starts[path[0]] and crf.allowed_ends[path[-1]] and all(allowed[a, b] for a, b in zip(path, path[1:])):
            scores[path] = start[path[0]] + end[path[-1]] + sum(emissions[t, tag] for t, tag in enumerate(path)) + sum(
                trans[a, b] for a, b in zip(path, path[1:])
            )
    values = np.array(list(scores.values()), dtype=np.float64) / temperature
    weights = np.exp(values - values.max())
    return dict(zip(scores, weights / weights.sum()))


@pytest.mark.parametrize("scheme", ["BIO", "BIOES"])
@settings(max_examples=25, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 5), min_size=1, max_size=3),
    seed=st.integers(0, 2**31 - 1),
    temperature=st.sampled_from([1.0, 0.5, 2.5]),
)
def test_each_entity_gets_its_exact_marginal_probability(scheme, lengths, seed, temperature):
    """The in-graph entities of the Viterbi path, and P(exactly that span with that type), against
    summing the probabilities of every path that contains the span (BIO and BIOES, two types), at
    the CRF's temperature (calibration) as at 1."""
    from training.data.tags import bio_to_spans
    from training.tasks.ner.head import EntityRoles

    tags = ["O", "B-A", "I-A", "B-B", "I-B"] + (["E-A", "S-A", "E-B", "S-B"] if scheme == "BIOES" else [])
    crf = CRF(len(tags), **tag_constraints(tags))
    crf.build((None, None, len(tags)))
    rng = np.random.default_rng(seed)
    for weight in crf.weights:
        weight.assign(rng.normal(scale=1.5, size=weight.shape).astype("float32"))
    emissions = rng.normal(scale=2.0, size=(len(lengths), max(lengths), len(tags))).astype("float32")
    mask = np.arange(max(lengths))[None, :] < np.array(lengths)[:, None]
    path, _ = crf.decode(emissions, mask)
    out = {k: v.numpy() for k, v in EntityRoles.of(tags).entities(crf, emissions, mask, path, temperature).items()}

    def bio(tag_ids):
        return [tags[t].replace("E-", "I-").replace("S-", "B-") for t in tag_ids]

    for row, length in enumerate(lengths):
        expected = bio_to_spans(bio(path.numpy()[row, :length]))
        got = [
            (int(s), int(e), t.decode(), float(p))
            for s, e, t, p in zip(out["entity_starts"][row], out["entity_ends"][row], out["entity_types"][row], out["entity_probabilities"][row])
            if s >= 0
        ]
        assert [(s, e, t) for s, e, t, _ in got] == [(x.start, x.end, x.label) for x in expected]
        paths = _path_probabilities(crf, emissions[row], length, temperature)
        for start, end, label, probability in got:
            truth = sum(p for candidate, p in paths.items() if any(
                (x.start, x.end, x.label) == (start, end, label) for x in bio_to_spans(bio(candidate))
            ))
            assert probability == pytest.approx(truth, abs=1e-4)
