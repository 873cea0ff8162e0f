"""Fitting what turns a reader's spans into the API's answer: the nested-span ratio, the
probability calibration and the answer threshold; ``python -m training qa calibrate``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from app import model_store
from app.tasks.calibration import PlattScaling
from app.tasks.qa.answers import prefer_nested
from training import publishing
from training.cli import model_dir
from training.tasks.qa.config import TASK, config_of_export
from training.tasks.qa.evaluate import evaluate_saved_model, headline_figures, print_report
from training.tasks.qa.grading import (
    DevAnswers,
    answered_scores,
    dev_answers,
    dev_halves,
    graded,
    mean_scores,
    references,
)
from training.tasks.qa.head import saved_model_predictor

ANSWER_THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(11))  # 0 … 0.5, on the calibrated probability
MAX_F1_COST = 1.0  # F1 points the default answer threshold may cost against answering every question


NESTED_RATIOS = (None, 0.5, 0.2, 0.1, 0.05)  # the choices fit_nested_ratio has, None first (off)


def fit_nested_ratio(dev: DevAnswers) -> tuple[float | None, list[dict]]:
    """The :func:`prefer_nested` ratio of :data:`NESTED_RATIOS` with the best mean of EM and F1 on
    the calibration half of CMRC dev (its references are the shortest span that answers: 10.7
    characters on average; the reader, trained mostly on longer ones, overshoots), and each
    choice's EM/F1 there. ``dev``'s answers must be the best spans as they are (ratio None)."""
    examples, answers = dev
    fit_half = dev_halves(examples)[0]
    table = []
    for ratio in NESTED_RATIOS:
        _, em, f1 = graded([prefer_nested(answers[i], ratio) for i in fit_half], [references(examples[i]) for i in fit_half])
        table.append({"ratio": ratio, **mean_scores(em, f1)})
    best = max(table, key=lambda row: row["em"] + row["f1"])  # the first (None) on a tie
    return best["ratio"], table


def decoded(dev: DevAnswers, ratio: float | None) -> DevAnswers:
    """``dev``'s best spans as the reader answers them with :func:`prefer_nested` ``ratio``."""
    return dev[0], [prefer_nested(a, ratio) for a in dev[1]]


def fit_calibration(dev: DevAnswers) -> dict:
    """Platt scaling of the best span's score to P(exact match with a reference), fitted on the
    calibration half of CMRC dev (:func:`dev_halves`), and the default answer threshold: the
    highest of :data:`ANSWER_THRESHOLDS` that costs at most :data:`MAX_F1_COST` F1 points there."""
    examples, answers = dev
    fit_half = dev_halves(examples)[0]
    scores, em, f1 = graded([answers[i] for i in fit_half], [references(examples[i]) for i in fit_half])
    scaling = PlattScaling.fit(scores, em > 0)
    table = [answered_scores(scaling(scores), em, f1, t) for t in ANSWER_THRESHOLDS]
    threshold = max(row["threshold"] for row in table if row["f1"] >= table[0]["f1"] - MAX_F1_COST)
    return {
        **scaling.to_dict(),
        "answer_threshold": threshold,
        "fitted_on": f"CMRC 2018 dev, calibration half ({len(fit_half)} questions): exact match with any reference",
        "thresholds": table,
    }


def calibrate(args: argparse.Namespace) -> None:
    """Fit an exported reader's decoding (:func:`fit_nested_ratio`), calibration and answer
    threshold, and store them with the metrics they give in its manifest (what export does for a
    new version)."""
    version_dir = model_store.resolve_version(model_dir(args, TASK), args.version)
    config = config_of_export(version_dir)
    config.nested_answer_ratio = None  # fitted again on the best spans as they are
    predict = saved_model_predictor(version_dir)
    dev = dev_answers(predict, Path(args.data_dir), config, args.limit)
    config.nested_answer_ratio, choices = fit_nested_ratio(dev)
    for row in choices:
        print(f"calibration half, prefer_nested ratio {row['ratio']}: EM {row['em']:.2f}  F1 {row['f1']:.2f}")
    dev = decoded(dev, config.nested_answer_ratio)
    calibration = fit_calibration(dev)
    for row in calibration["thresholds"]:
        print(
            f"calibration half, probability ≥ {row['threshold']:.2f}: answers {row['answered']:.1%} "
            f"({row['em_answered']}% exact), EM {row['em']:.2f}  F1 {row['f1']:.2f}"
        )
    print(f"slope {calibration['slope']:.4f}, intercept {calibration['intercept']:.4f}; answer threshold {calibration['answer_threshold']}")
    metrics = evaluate_saved_model(predict, Path(args.data_dir), config, calibration, args.limit, dev)
    print_report(metrics, calibration)
    publishing.update_manifest(
        version_dir, decoding={"nested_answer_ratio": config.nested_answer_ratio}, calibration=calibration, metrics=metrics
    )
    print(json.dumps({"task": TASK, "calibrated": str(version_dir), **headline_figures(metrics)}))
