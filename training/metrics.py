"""Evaluation metrics shared by the training callbacks and the ``evaluate`` commands."""

from __future__ import annotations

from collections import Counter
from typing import Iterable, Sequence

from training.preprocessing.text import Span


def _prf(tp: int, n_pred: int, n_gold: int) -> dict[str, float]:
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4), "support": n_gold}


def entity_prf(gold: Sequence[Iterable[Span]], predicted: Sequence[Iterable[Span]]) -> dict:
    """Entity-level precision/recall/F1: a prediction counts only if span and type both match.

    Returns micro-averaged ``precision``, ``recall``, ``f1``, ``support`` and a
    ``per_type`` breakdown.
    """
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold sequences but {len(predicted)} predicted")
    tp, n_pred, n_gold = Counter(), Counter(), Counter()
    for gold_spans, pred_spans in zip(gold, predicted):
        gold_set, pred_set = set(gold_spans), set(pred_spans)
        for span in gold_set:
            n_gold[span.label] += 1
        for span in pred_set:
            n_pred[span.label] += 1
            tp[span.label] += span in gold_set
    labels = sorted(set(n_gold) | set(n_pred))
    return {
        **_prf(sum(tp.values()), sum(n_pred.values()), sum(n_gold.values())),
        "per_type": {label: _prf(tp[label], n_pred[label], n_gold[label]) for label in labels},
    }


def classification_report(y_true, y_pred, classes: Sequence[str]) -> dict:
    """Accuracy, macro-F1 and per-class precision/recall/F1 for integer class labels."""
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} labels but {len(y_pred)} predictions")
    pairs = list(zip((int(t) for t in y_true), (int(p) for p in y_pred)))
    per_class = {}
    for index, name in enumerate(classes):
        tp = sum(t == p == index for t, p in pairs)
        per_class[name] = _prf(tp, sum(p == index for _, p in pairs), sum(t == index for t, _ in pairs))
    present = [r for r in per_class.values() if r["support"]]
    return {
        "accuracy": round(sum(t == p for t, p in pairs) / len(pairs), 4) if pairs else 0.0,
        "macro_f1": round(sum(r["f1"] for r in present) / len(present), 4) if present else 0.0,
        "per_class": per_class,
    }
