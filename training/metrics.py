"""Evaluation metrics shared by the training callbacks and the ``evaluate`` commands."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from app.tasks.text_scores import chars, cmrc_em, cmrc_f1, overlap_f1, rouge_l
from training.data.tags import Span


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


def cmrc_scores(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> dict[str, float]:
    """Mean EM and F1 in percent (as the official script prints them), and the question count."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(references)} questions but {len(predictions)} predictions")
    n = max(len(predictions), 1)
    return {
        "em": round(100 * sum(map(cmrc_em, predictions, references)) / n, 2),
        "f1": round(100 * sum(map(cmrc_f1, predictions, references)) / n, 2),
        "questions": len(predictions),
    }


def webqa_score(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> dict[str, float]:
    """WebQA: accuracy (exact match with any golden answer), character-overlap F1 (max over golden
    answers), and their mean, the number DGCNN reported (0.7583 on the full WebQA test set)."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(references)} questions but {len(predictions)} predictions")
    accuracy = f1 = 0.0
    for prediction, golden in zip(predictions, references):
        accuracy += any(prediction == g for g in golden)
        best = 0.0
        for g in golden:
            common = sum((Counter(prediction) & Counter(g)).values())
            if common:
                precision, recall = common / len(prediction), common / len(g)
                best = max(best, 2 * precision * recall / (precision + recall))
        f1 += best
    n = max(len(predictions), 1)
    return {
        "accuracy": round(accuracy / n, 4),
        "f1": round(f1 / n, 4),
        "score": round((accuracy + f1) / (2 * n), 4),
        "questions": len(predictions),
    }


def _ngrams(chars: Sequence[str], n: int) -> Counter:
    return Counter(tuple(chars[i : i + n]) for i in range(len(chars) - n + 1))


def rouge_scores(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Character-level ROUGE-1, ROUGE-2 and ROUGE-L F1 (whitespace ignored), averaged over pairs,
    and corpus BLEU-4 on characters (sacreBLEU, ``tokenize="char"``), all in [0, 1]."""
    from sacrebleu.metrics import BLEU

    if len(predictions) != len(references):
        raise ValueError(f"{len(references)} references but {len(predictions)} predictions")
    totals = dict.fromkeys(("rouge-1", "rouge-2", "rouge-l"), 0.0)
    for prediction, reference in zip(predictions, references):
        p, r = chars(prediction), chars(reference)
        for n in (1, 2):
            totals[f"rouge-{n}"] += overlap_f1(
                sum((_ngrams(p, n) & _ngrams(r, n)).values()), max(len(p) - n + 1, 0), max(len(r) - n + 1, 0)
            )
        totals["rouge-l"] += rouge_l(prediction, reference)
    count = max(len(predictions), 1)
    bleu = BLEU(tokenize="char").corpus_score(list(predictions), [list(references)]).score / 100 if predictions else 0.0
    return {**{name: round(total / count, 4) for name, total in totals.items()}, "bleu": round(bleu, 4), "pairs": len(predictions)}


def paired_difference(before: Sequence[float], after: Sequence[float], seed: int = 0) -> dict[str, float]:
    """How ``after`` differs from ``before``, item by item (two systems scored on the same items):
    the mean difference, its 95 % paired bootstrap interval (percentile, 2,000 resamples) and the
    shares of items that went up and down. An interval across 0 says the sets cannot tell them apart."""
    from scipy.stats import bootstrap

    differences = np.asarray(after, float) - np.asarray(before, float)
    if len(differences) < 2:
        raise ValueError("a paired comparison needs at least two items")
    interval = bootstrap(
        (differences,), np.mean, n_resamples=2000, method="percentile", random_state=np.random.default_rng(seed)
    ).confidence_interval
    return {
        "mean": round(float(differences.mean()), 4),
        "low": round(float(interval.low), 4),
        "high": round(float(interval.high), 4),
        "better": round(float((differences > 0).mean()), 4),
        "worse": round(float((differences < 0).mean()), 4),
        "items": len(differences),
    }


def recall_report(y_true: Sequence[str], y_pred: Sequence[str], classes: Sequence[str]) -> dict:
    """Per-class recall and precision over the classes present in ``y_true``, their mean recall
    (balanced recall) and the confusion table ``{true: {predicted: count}}``.

    Predictions outside ``classes`` (e.g. UNKNOWN) count against recall and appear in the table.
    """
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} labels but {len(y_pred)} predictions")
    pairs = Counter(zip(y_true, y_pred))
    present = [c for c in classes if any(t == c for t in y_true)]
    per_class = {}
    for name in present:
        n_true = sum(v for (t, _), v in pairs.items() if t == name)
        n_pred = sum(v for (_, p), v in pairs.items() if p == name)
        per_class[name] = {
            "recall": round(pairs[(name, name)] / n_true, 4),
            "precision": round(pairs[(name, name)] / n_pred, 4) if n_pred else 0.0,
            "support": n_true,
        }
    predicted_names = sorted({p for _, p in pairs}, key=lambda c: (c not in classes, list(classes).index(c) if c in classes else 0, c))
    return {
        "n": len(y_true),
        "balanced_recall": round(sum(r["recall"] for r in per_class.values()) / len(per_class), 4) if per_class else 0.0,
        "per_class": per_class,
        "confusion": {t: {p: pairs[(t, p)] for p in predicted_names if pairs[(t, p)]} for t in present},
    }


def reliability(probabilities: Sequence[float], correct: Sequence[bool], bins: int = 10) -> dict:
    """How well stated probabilities match how often the answers are right: the expected
    calibration error (the count-weighted mean |accuracy − mean probability| over ``bins``
    equal-width bins) and the table of bins (range, count, mean probability, accuracy)."""
    if len(probabilities) != len(correct):
        raise ValueError(f"{len(probabilities)} probabilities but {len(correct)} outcomes")
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 0.0, 1.0)
    right = np.asarray(correct, dtype=bool)
    which = np.minimum((p * bins).astype(int), bins - 1)
    table, error = [], 0.0
    for b in range(bins):
        inside = which == b
        n = int(inside.sum())
        if not n:
            continue
        mean, accuracy = float(p[inside].mean()), float(right[inside].mean())
        error += n * abs(accuracy - mean)
        table.append({"range": [b / bins, (b + 1) / bins], "count": n, "mean_probability": round(mean, 4), "accuracy": round(accuracy, 4)})
    return {"n": len(p), "ece": round(error / max(len(p), 1), 4), "bins": table}


def reliability_lines(table: dict) -> list[str]:
    """A :func:`reliability` table as aligned text lines, one per bin."""
    lines = [f"{'probability':<13}{'count':>8}{'mean probability':>18}{'right':>8}"]
    for row in table["bins"]:
        low, high = row["range"]
        lines.append(f"{low:.1f}–{high:.1f}{'':<6}{row['count']:>8}{row['mean_probability']:>18.3f}{row['accuracy']:>8.3f}")
    return lines


MIN_PLOTTED = 10


def plot_reliability(tables: dict[str, dict], path: Path, title: str) -> Path:
    """A reliability diagram: for each named :func:`reliability` table, how often answers were right
    against the probability stated, per bin (the diagonal is perfect calibration; bins of fewer
    than ``MIN_PLOTTED`` answers are left off the line, their share being noise), and below it how
    many answers fell in each bin."""
    import matplotlib

    matplotlib.use("Agg")  # files only
    import matplotlib.pyplot as plt

    figure, (top, bottom) = plt.subplots(
        2, 1, figsize=(5, 5.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}, constrained_layout=True
    )
    top.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfectly calibrated")
    width = 0.8 / (10 * max(len(tables), 1))
    for i, (name, table) in enumerate(tables.items()):
        rows = table["bins"]
        plotted = [r for r in rows if r["count"] >= MIN_PLOTTED]
        top.plot([r["mean_probability"] for r in plotted], [r["accuracy"] for r in plotted], "o-", label=f"{name} (ECE {table['ece']:.3f})")
        centres = [(r["range"][0] + r["range"][1]) / 2 + (i - (len(tables) - 1) / 2) * width for r in rows]
        bottom.bar(centres, [r["count"] for r in rows], width=width, label=name)
    top.set(ylabel="share right", xlim=(0, 1), ylim=(0, 1), title=title)
    bottom.set(xlabel="stated probability", ylabel="count", yscale="log")
    top.grid(True, alpha=0.3)
    top.legend(fontsize=8, loc="upper left")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
