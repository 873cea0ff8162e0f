"""``python -m training ner evaluate``: entity P/R/F1 of an exported tagger through the pipeline
``/v1/ner`` answers with, the calibration of its entity probabilities, and Traditional script."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import tensorflow as tf

from app import model_store
from app.tasks.chinese_script import to_traditional
from app.tasks.ner.pipeline import NERPipeline
from app.tasks.ner.schemas import NERResult
from training.data.ner import TaggedSentence
from training.data.tags import Span
from training.metrics import entity_prf, plot_reliability, reliability, reliability_lines
from training.tasks.ner.config import CORPORA, TASK


def evaluate_saved_model(version_dir: Path, data_dir: Path, corpus_name: str) -> dict:
    """Entity P/R/F1 of an exported model on each test set of the corpus, as ``/v1/ner`` answers
    (the same pipeline), and how well its per-entity probabilities are calibrated there."""
    pipeline = NERPipeline(tf.saved_model.load(str(version_dir)).signatures["serving_default"])
    corpus = CORPORA[corpus_name]
    results = {}
    tests = {name: corpus.reader(data_dir / relative) for name, relative in corpus.tests.items()}
    for name, sentences in tests.items():
        answers = pipeline.answer_many([s.text for s in sentences], desc=name)
        results[name] = entity_prf([s.spans for s in sentences], [_spans(a) for a in answers])
        results[name]["entity_calibration"] = entity_reliability(sentences, answers)
    first, sentences = next(iter(tests.items()))
    traditional = in_traditional_characters(sentences)
    if traditional:
        answers = pipeline.answer_many([s.text for s in traditional], desc=f"{first}, Traditional")
        results[f"{first}_traditional"] = entity_prf([s.spans for s in traditional], [_spans(a) for a in answers])
    return results


def _spans(result: NERResult) -> list[Span]:
    return [Span(e.type, e.start, e.end) for e in result.entities]


def in_traditional_characters(sentences: list[TaggedSentence]) -> list[TaggedSentence]:
    """The sentences as written in Traditional characters (OpenCC ``s2t``, phrase-aware), those
    whose length it keeps so the entities keep their offsets (nearly all). The models learned
    from Simplified text only: this measures how they read the other script."""
    converted = [TaggedSentence(to_traditional(s.text), s.tags) for s in sentences]
    return [c for c, s in zip(converted, sentences) if len(c.text) == len(s.text)]


def entity_reliability(sentences: list[TaggedSentence], answers: list[NERResult]) -> dict:
    """ECE and reliability table of the entities' ``probability``: an entity is right when the
    gold annotation has exactly that span with that type."""
    probabilities, correct = [], []
    for sentence, answer in zip(sentences, answers):
        gold = {(s.start, s.end, s.label) for s in sentence.spans}
        for e in answer.entities:
            probabilities.append(e.probability)
            correct.append((e.start, e.end, e.type) in gold)
    return reliability(probabilities, correct)


def headline_figures(metrics: dict) -> dict:
    first = next(iter(metrics.values()), None)
    return {"f1": first["f1"]} if first else {}


def evaluate(args: argparse.Namespace) -> None:
    version_dir = model_store.resolve_version(Path(args.model_root) / TASK, args.version)
    corpus = args.corpus or model_store.read_manifest(version_dir).get("corpus", "msra")
    metrics = evaluate_saved_model(version_dir, Path(args.data_dir), corpus)
    for name, result in metrics.items():
        print(f"\n{name}: P={result['precision']:.4f} R={result['recall']:.4f} F1={result['f1']:.4f}")
        print(f"  {'type':<14}{'P':>8}{'R':>8}{'F1':>8}{'support':>9}")
        for label, r in result["per_type"].items():
            print(f"  {label:<14}{r['precision']:>8.4f}{r['recall']:>8.4f}{r['f1']:>8.4f}{r['support']:>9}")
        if "entity_calibration" in result:
            calibration = result["entity_calibration"]
            print(f"  entity probability: ECE {calibration['ece']:.4f} over {calibration['n']} predicted entities")
            for line in reliability_lines(calibration):
                print(f"  {line}")
    calibrated = {name: r["entity_calibration"] for name, r in metrics.items() if "entity_calibration" in r}
    if args.reliability_plot and calibrated:
        plot_reliability(calibrated, args.reliability_plot, f"NER entity probability, ner/{version_dir.name}")
    print(json.dumps({"task": TASK, "model": str(version_dir), **headline_figures(metrics), **metrics}))
