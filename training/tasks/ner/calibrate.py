"""Temperature scaling of the CRF (Guo et al. 2017, on a linear-chain CRF's potentials): one scalar,
fitted at export on the run's held-out sentences, that divides every emission and transition score
so that an entity said to be right with probability p is right about p of the time. Viterbi's path
is the same at every temperature: only the stated probabilities move."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from scipy.optimize import minimize_scalar

from app.tasks.batches import map_by_length
from app.tasks.text import encode_texts
from training.data.ner import TaggedSentence
from training.metrics import reliability
from training.tasks.ner.head import make_tagger

TEMPERATURE_BOUNDS = (0.25, 8.0)


def fit_temperature(model: keras.Model, tags: list[str], sentences: list[TaggedSentence], description: str) -> dict:
    """The temperature that minimises the log-loss of the predicted entities' probabilities
    (right: the gold annotation has exactly that span and type) on ``sentences``, with the
    entities' ECE before and after; ``description`` says what the sentences are."""
    temperature = tf.Variable(1.0, dtype=tf.float32)
    tagger = make_tagger(model, tags, temperature)

    def entities(batch: list[str]) -> list[list[tuple[int, int, str, float]]]:
        out = {k: v.numpy() for k, v in tagger(encode_texts(tf.constant(batch))).items() if k.startswith("entity_")}
        return [
            [(int(s), int(e), t.decode(), float(p)) for s, e, t, p in zip(*row) if s >= 0]
            for row in zip(out["entity_starts"], out["entity_ends"], out["entity_types"], out["entity_probabilities"])
        ]

    texts = [s.text for s in sentences]

    def entities_at(value: float) -> list[list[tuple[int, int, str, float]]]:
        temperature.assign(value)
        return map_by_length(entities, texts, [len(t) for t in texts], 128)

    def probabilities(found: list[list[tuple[int, int, str, float]]]) -> np.ndarray:
        return np.array([p for row in found for *_, p in row])

    untempered = entities_at(1.0)  # the same entities at every temperature: only their probabilities move
    correct = np.array([
        (start, end, label) in gold
        for sentence, row in zip(sentences, untempered)
        for gold in [{(g.start, g.end, g.label) for g in sentence.spans}]
        for start, end, label, _ in row
    ])
    if not len(correct):
        return {"temperature": 1.0, "fitted_on": f"nothing: no entity predicted on {description}"}

    def log_loss(log_t: float) -> float:
        p = np.clip(probabilities(entities_at(float(np.exp(log_t)))), 1e-6, 1 - 1e-6)
        return float(-np.mean(np.where(correct, np.log(p), np.log1p(-p))))

    fit = minimize_scalar(log_loss, bounds=np.log(TEMPERATURE_BOUNDS), method="bounded", options={"xatol": 0.01})
    fitted = round(float(np.exp(fit.x)), 3)
    before = reliability(probabilities(untempered), correct)
    after = reliability(probabilities(entities_at(fitted)), correct)
    return {
        "temperature": fitted,
        "fitted_on": f"{description}: {len(correct)} predicted entities",
        "ece_before": before["ece"],
        "ece_after": after["ece"],
    }
