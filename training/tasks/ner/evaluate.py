"""``python -m training ner evaluate``: entity P/R/F1 of exported taggers through the pipeline
``/v1/ner`` answers with, on every test split labelled with their types, the calibration of their
entity probabilities, and Traditional script."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Sequence

import tensorflow as tf

from app import model_store
from app.tasks.chinese_script import to_traditional
from app.tasks.ner.pipeline import NERPipeline
from app.tasks.ner.schemas import NERResult
from training.data.ner import TaggedSentence
from training.data.tags import Span
from training.metrics import entity_prf, plot_reliability, reliability, reliability_lines
from training.tasks.ner.config import CORPORA, TASK, TEST_SETS


def evaluate_saved_model(version_dir: Path, data_dir: Path, corpus_name: str, types: Sequence[str]) -> dict:
    """Entity P/R/F1 of an exported model, as ``/v1/ner`` answers (the same pipeline), and the
    calibration of its per-entity probabilities, on every test split of :data:`TEST_SETS` labelled
    with the model's ``types`` that ``data_dir`` holds; its own corpus's split also in Traditional
    characters."""
    pipeline = NERPipeline(tf.saved_model.load(str(version_dir)).signatures["serving_default"])
    own = CORPORA[corpus_name].test
    names = [own, *(n for n in TEST_SETS if n != own)]
    tests = {
        name: TEST_SETS[name].reader(data_dir / TEST_SETS[name].path)
        for name in names
        if set(TEST_SETS[name].types) == set(types) and (data_dir / TEST_SETS[name].path).exists()
    }
    results = {}
    for name, sentences in tests.items():
        answers = pipeline.answer_many([s.text for s in sentences], desc=name)
        results[name] = entity_prf([s.spans for s in sentences], [_spans(a) for a in answers])
        results[name]["entity_calibration"] = entity_reliability(sentences, answers)
    traditional = in_traditional_characters(tests.get(own, []))
    if traditional:
        answers = pipeline.answer_many([s.text for s in traditional], desc=f"{own}, Traditional")
        results[f"{own}_traditional"] = entity_prf([s.spans for s in traditional], [_spans(a) for a in answers])
    return results


def entity_types(tags: Sequence[str]) -> list[str]:
    """The entity types a tag list names (``B-PER`` → ``PER``)."""
    return sorted({t.partition("-")[2] for t in tags if t != "O"})


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
    """Each model named (``--model``), else every NER model of the store: its figures printed,
    then one JSON line with all of them (``models``: name → figures)."""
    root = Path(args.model_root)
    names = [args.model] if args.model else list(model_store.models(root, {TASK}))
    if not names:
        raise SystemExit(f"no {TASK} models under {root}")
    figures = {}
    for name in names:
        version_dir = model_store.resolve_version(root / name, args.version)
        manifest = model_store.read_manifest(version_dir)
        corpus = args.corpus or manifest.get("corpus", "msra")
        metrics = evaluate_saved_model(version_dir, Path(args.data_dir), corpus, entity_types(manifest.get("tags", [])))
        print(f"\n== {name}/{version_dir.name} ==")
        _print_metrics(metrics)
        calibrated = {n: r["entity_calibration"] for n, r in metrics.items() if "entity_calibration" in r}
        if args.reliability_plot and calibrated:
            plot = args.reliability_plot if len(names) == 1 else args.reliability_plot.with_stem(f"{args.reliability_plot.stem}_{name}")
            plot_reliability(calibrated, plot, f"NER entity probability, {name}/{version_dir.name}")
        figures[name] = {"model": str(version_dir), **headline_figures(metrics), **metrics}
    print(json.dumps({"task": TASK, "models": figures}))


def _print_metrics(metrics: dict) -> None:
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
