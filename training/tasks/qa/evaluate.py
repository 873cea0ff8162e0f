"""``python -m training qa evaluate``: every figure of an exported reader, measured through the
pipeline ``/v1/qa`` answers with."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Sequence

import numpy as np

from app import model_store
from app.tasks.calibration import PlattScaling
from app.tasks.qa.pipeline import DEFAULT_AGGREGATE
from app.tasks.chinese_script import to_traditional
from app.tasks.qa.spec import QACalibration
from training.cli import model_dir
from training.data.qa import QAExample, read_handwritten, read_squad, read_webqa
from training.metrics import cmrc_scores, plot_reliability, reliability, reliability_lines, webqa_score
from training.tasks.qa.backbone import averaged_reader
from training.tasks.qa.config import (
    EXAMPLE_PASSAGES,
    EXAMPLE_QUESTION,
    SELECT,
    TASK,
    TESTS,
    WEBQA,
    Config,
    config_of_export,
)
from training.tasks.qa.grading import (
    DevAnswers,
    answer_in_context,
    answered_scores,
    best_scores,
    best_span_scores,
    best_text,
    dev_answers,
    dev_halves,
    graded,
    mean_scores,
    references,
    short_passages,
)
from training.tasks.qa.head import (
    WindowPredictor,
    answer_all,
    in_process_predictor,
    reader_pipeline,
    saved_model_predictor,
)
from training.tasks.qa.train import selection_scores


def _wrong_passage(
    predict: WindowPredictor, config: Config, examples: Sequence[QAExample], scaling: PlattScaling, threshold: float
) -> dict:
    """Each question asked of the next (different) passage instead of its own, which should not
    hold its answer: how often the service withholds an answer, and the mean probability it gives."""
    passages = list(dict.fromkeys(e.context for e in examples))
    if len(passages) < 2:
        return {}
    following = {passage: passages[(i + 1) % len(passages)] for i, passage in enumerate(passages)}
    answers = answer_all(
        predict, config, [e.question for e in examples], [[following[e.context]] for e in examples], desc="wrong passage"
    )
    probabilities = scaling(best_scores(answers))
    return {
        "questions": len(examples),
        "withheld": round(float((probabilities < threshold).mean()), 4),
        "mean_probability": round(float(probabilities.mean()), 4),
    }


def _short_passages(
    predict: WindowPredictor, config: Config, examples: Sequence[QAExample], scaling: PlattScaling, threshold: float
) -> dict:
    """Each question asked of the sentence(s) holding its answer alone (hand-written API calls are
    a sentence or two, the training passages a few hundred characters), and of another sentence
    of its passage: what the service answers to each."""
    pairs = [(e, cut) for e in examples if (cut := short_passages(e))]
    if not pairs:
        return {}
    examples, cut = [e for e, _ in pairs], [c for _, c in pairs]
    answers = answer_all(predict, config, [e.question for e in examples], [[c[0]] for c in cut], desc="short passages")
    scores, em, f1 = graded(answers, [references(e) for e in examples])
    probabilities = scaling(scores)
    negatives = [(e.question, c[1]) for e, c in zip(examples, cut) if c[1]]
    result = {
        "questions": len(examples),
        "mean_chars": round(float(np.mean([len(c[0]) for c in cut])), 1),
        "best_span": mean_scores(em, f1),
        "api": answered_scores(probabilities, em, f1, threshold),
        "ece": reliability(probabilities, em > 0)["ece"],
    }
    if negatives:
        withheld = answer_all(
            predict, config, [q for q, _ in negatives], [[p] for _, p in negatives], desc="short passages, no answer"
        )
        result["other_sentence"] = {
            "questions": len(negatives),
            "withheld": round(float((scaling(best_scores(withheld)) < threshold).mean()), 4),
        }
    return result


def evaluate_saved_model(
    predict: WindowPredictor,
    data_dir: Path,
    config: Config,
    calibration: dict | None,
    limit: int | None = None,
    dev_with_answers: DevAnswers | None = None,
) -> dict:
    """CMRC 2018 dev EM/F1 of the best span, over all of dev and its calibration half (a figure the
    next version is chosen by); on dev's report half (:func:`dev_halves`) also what the
    service answers (the calibrated probability against the default threshold) and the
    calibration's reliability; the hand-written questions (:func:`read_handwritten`, best span and
    as the service answers); the WebQA sample score (max and sum over passages).
    ``dev_with_answers``: what :func:`dev_answers` gives, when the caller has it already."""
    dev, answers = dev_with_answers or dev_answers(predict, data_dir, config, limit)
    policy = QACalibration.model_validate(calibration or {})
    scaling, threshold = policy.scaling, policy.answer_threshold
    served = reader_pipeline(predict, config, policy)
    results = {
        "cmrc_dev": best_span_scores(dev, answers),
        # The answer field of /v1/qa (None when withheld, graded as ""): python -m bench.qa_official
        # scores the service's answers to the same questions with the official CMRC 2018 script.
        "cmrc_dev_as_served": {
            "threshold": threshold,
            **cmrc_scores([served.result(a).answer or "" for a in answers], [references(e) for e in dev]),
        },
    }
    fitting, report = dev_halves(dev)
    if fitting:
        results["cmrc_dev_calibration_half"] = best_span_scores([dev[i] for i in fitting], [answers[i] for i in fitting])
    if report:
        scores, em, f1 = graded([answers[i] for i in report], [references(dev[i]) for i in report])
        probabilities = scaling(scores)
        results["cmrc_dev_report_half"] = {
            "questions": len(report),
            "best_span": mean_scores(em, f1),
            "api": answered_scores(probabilities, em, f1, threshold),
            "reliability": reliability(probabilities, em > 0),
            "score_ece": reliability(scores, em > 0)["ece"],  # the raw score read as a probability
            "wrong_passage": _wrong_passage(predict, config, [dev[i] for i in report], scaling, threshold),
            "short_passages": _short_passages(predict, config, [dev[i] for i in report], scaling, threshold),
        }
        results["cmrc_dev_report_half"]["traditional"] = _in_traditional_characters(predict, config, [dev[i] for i in report])
    handwritten = read_handwritten()[:limit]
    answers = answer_all(predict, config, [q.question for q in handwritten], [q.passages for q in handwritten])
    scores, em, f1 = graded(answers, [q.answers for q in handwritten])
    results["handwritten"] = {
        "questions": len(handwritten),
        **mean_scores(em, f1),
        "api": answered_scores(scaling(scores), em, f1, threshold),
    }
    webqa = read_webqa(data_dir / WEBQA)[:limit]
    passages = [q.passages for q in webqa]
    read = served.read_many([q.question for q in webqa], passages, desc="webqa")  # once, ranked both ways
    for aggregate in ("max", "sum"):
        answers = served.rank_read(passages, read, config.top_k, aggregate)
        results[f"webqa_{aggregate}"] = webqa_score([best_text(a) for a in answers], [q.answers for q in webqa])
        if aggregate == DEFAULT_AGGREGATE and webqa:  # what the service answers over many passages: is its probability right?
            probabilities = scaling(best_scores(answers))
            right = [best_text(a) in q.answers for a, q in zip(answers, webqa)]  # WebQA's accuracy: exact match
            results[f"webqa_{aggregate}"]["reliability"] = reliability(probabilities, right)
    return results


def _in_traditional_characters(predict: WindowPredictor, config: Config, examples: Sequence[QAExample]) -> dict:
    """Best-span EM/F1 with question, passage and references written in Traditional characters
    (OpenCC ``s2t``). The reader learned from Simplified text."""
    answers = answer_all(
        predict, config, [to_traditional(e.question) for e in examples], [[to_traditional(e.context)] for e in examples],
        desc="traditional",
    )
    return cmrc_scores([best_text(a) for a in answers], [[to_traditional(r) for r in references(e)] for e in examples])


def headline_figures(metrics: dict) -> dict:
    dev, report = metrics.get("cmrc_dev"), metrics.get("cmrc_dev_report_half")
    headline = {"em": dev["em"], "f1": dev["f1"]} if dev else {}
    if "cmrc_dev_as_served" in metrics:
        headline.update(served_em=metrics["cmrc_dev_as_served"]["em"], served_f1=metrics["cmrc_dev_as_served"]["f1"])
    if report:
        api = report["api"]
        headline.update(api_em=api["em"], api_f1=api["f1"], answered=api["answered"], ece=report["reliability"]["ece"])
        if report.get("short_passages"):
            headline["short_api_f1"] = report["short_passages"]["api"]["f1"]
    if "handwritten" in metrics:
        headline["handwritten_f1"] = metrics["handwritten"]["f1"]
    if f"webqa_{DEFAULT_AGGREGATE}" in metrics:  # as /v1/qa answers by default
        headline["webqa"] = metrics[f"webqa_{DEFAULT_AGGREGATE}"]["score"]
        if "reliability" in metrics[f"webqa_{DEFAULT_AGGREGATE}"]:
            headline["webqa_ece"] = metrics[f"webqa_{DEFAULT_AGGREGATE}"]["reliability"]["ece"]
    return headline


def print_report(metrics: dict, calibration: dict | None) -> None:
    dev = metrics["cmrc_dev"]
    print(f"\nCMRC 2018 dev ({dev['questions']} questions), best span: EM {dev['em']:.2f}  F1 {dev['f1']:.2f}")
    served = metrics["cmrc_dev_as_served"]
    print(
        f"CMRC 2018 dev, the answers /v1/qa gives (withheld below probability {served['threshold']}, graded as \"\"): "
        f"EM {served['em']:.2f}  F1 {served['f1']:.2f}"
    )
    fitting = metrics.get("cmrc_dev_calibration_half")
    if fitting:
        print(f"dev calibration half ({fitting['questions']} questions), best span: EM {fitting['em']:.2f}  F1 {fitting['f1']:.2f}")
    report = metrics.get("cmrc_dev_report_half")
    if report:
        api, table = report["api"], report["reliability"]
        print(
            f"dev report half ({report['questions']} questions): best span EM {report['best_span']['em']:.2f} "
            f"F1 {report['best_span']['f1']:.2f}; as the API answers (probability ≥ {api['threshold']}): "
            f"answers {api['answered']:.1%}, {api['em_answered']}% of them exact, EM {api['em']:.2f}  F1 {api['f1']:.2f}"
        )
        fitted = "calibrated: " + calibration["fitted_on"] if calibration else "uncalibrated: probability = score"
        wrong = report.get("wrong_passage")
        if wrong:
            print(
                f"asked of another passage (no answer there): withheld {wrong['withheld']:.1%}, "
                f"mean probability {wrong['mean_probability']:.3f}"
            )
        short = report.get("short_passages")
        if short:
            api = short["api"]
            print(
                f"the answer's sentence alone ({short['mean_chars']:.0f} characters on average): best span EM "
                f"{short['best_span']['em']:.2f} F1 {short['best_span']['f1']:.2f}; the API answers {api['answered']:.1%}, "
                f"EM {api['em']:.2f}  F1 {api['f1']:.2f}; ECE {short['ece']:.4f}"
            )
            if "other_sentence" in short:
                print(f"another sentence of the passage (no answer there): withheld {short['other_sentence']['withheld']:.1%}")
        traditional = report.get("traditional")
        if traditional:
            print(f"the same in Traditional characters, best span: EM {traditional['em']:.2f}  F1 {traditional['f1']:.2f}")
        print(f"probability of an exact match ({fitted}): ECE {table['ece']:.4f} (the raw score's: {report['score_ece']:.4f})")
        for line in reliability_lines(table):
            print(f"  {line}")
    handwritten = metrics.get("handwritten")
    if handwritten:
        api = handwritten["api"]
        print(
            f"hand-written questions ({handwritten['questions']}): best span EM {handwritten['em']:.2f}  "
            f"F1 {handwritten['f1']:.2f}; the API answers {api['answered']:.1%}, EM {api['em']:.2f}  F1 {api['f1']:.2f}"
        )
    for aggregate in ("max", "sum"):
        w = metrics[f"webqa_{aggregate}"]
        print(f"WebQA sample, {aggregate} over passages: accuracy {w['accuracy']:.4f}  F1 {w['f1']:.4f}  score {w['score']:.4f}")
    webqa = metrics[f"webqa_{DEFAULT_AGGREGATE}"].get("reliability")
    if webqa:
        print(f"WebQA sample, probability of the answer the service gives ({DEFAULT_AGGREGATE}): ECE {webqa['ece']:.4f}")
        for line in reliability_lines(webqa):
            print(f"  {line}")


def choice_figures(predict: WindowPredictor, config: Config, data_dir: Path, limit: int | None = None) -> dict:
    """What a version is chosen by (docs/qa.md): trial F1, EM and short-passage F1
    (:func:`selection_scores`), best-span EM/F1 on dev's calibration half, the mean of trial F1,
    trial short-passage F1 and calibration-half F1, and the answers to the API example."""
    trial = selection_scores(predict, config, read_squad(data_dir / SELECT)[:limit])
    dev = read_squad(data_dir / TESTS)[:limit]
    fitting = [dev[i] for i in dev_halves(dev)[0]]
    calibration_half = best_span_scores(fitting, answer_in_context(predict, config, fitting, desc="cmrc dev, calibration half"))
    example = answer_all(predict, config, [EXAMPLE_QUESTION], [EXAMPLE_PASSAGES])[0]
    return {
        "cmrc_trial": trial,
        "cmrc_dev_calibration_half": calibration_half,
        "mean_f1": round((trial["f1"] + trial["short_f1"] + calibration_half["f1"]) / 3, 2),
        "example": [{"answer": a.text, "score": round(float(a.score), 3)} for a in example[:3]],
    }


def evaluate(args: argparse.Namespace) -> None:
    if args.runs and not args.selection:
        raise ValueError("--runs measures trained runs for the choice of a version: use it with --selection")
    if args.runs:  # averaged in-process, as export --ensemble would average them (float tables)
        model, config = averaged_reader(args.runs)
        predict, measured = in_process_predictor(model, config), {"runs": [str(r) for r in args.runs]}
    else:
        version_dir = model_store.resolve_version(model_dir(args, TASK), args.version)
        config = config_of_export(version_dir)
        predict, measured = saved_model_predictor(version_dir), {"model": str(version_dir)}
    if args.selection:
        figures = choice_figures(predict, config, Path(args.data_dir), args.limit)
        print(json.dumps({"task": TASK, **measured, **figures}, ensure_ascii=False))
        return
    calibration = model_store.read_manifest(version_dir).get("calibration")
    metrics = evaluate_saved_model(predict, Path(args.data_dir), config, calibration, args.limit)
    print_report(metrics, calibration)
    report = metrics.get("cmrc_dev_report_half")
    if args.reliability_plot and report:
        title = f"QA answer probability, qa/{version_dir.name}"
        plot_reliability({"CMRC dev, report half": report["reliability"]}, args.reliability_plot, title)
    print(json.dumps({"task": TASK, "model": str(version_dir), **headline_figures(metrics), **metrics}))
