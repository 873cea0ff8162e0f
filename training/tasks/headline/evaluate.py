"""``python -m training headline evaluate``: char ROUGE and BLEU of an exported model through the
pipeline ``/v1/headline`` answers with, greedy and beam, next to extractive baselines; on the test
files, or (``--selection``) on what versions are chosen and compared by without reading test."""

from __future__ import annotations

import argparse
import json
import re
import statistics
from pathlib import Path
from typing import Callable

import tensorflow as tf

from app import model_store
from app.tasks.headline.pipeline import HeadlinePipeline
from app.tasks.headline.schemas import HeadlineResult
from app.tasks.headline.spec import HeadlineDecoding, HeadlineDomainCheck
from training.cli import model_dir
from training.data.headline import NEWS_VAL, PEOPLES_DAILY, Pair, read_clge_tsv, test_sets, training_pairs
from training.metrics import paired_difference, rouge_l, rouge_scores
from training.tasks.headline.config import TASK, Config
from training.tasks.headline.head import generate_all
from training.tasks.headline.preprocessor import read_corpus, split_reports


_SENTENCE_END = re.compile(r"(?<=[。!?;！？；.])")


def sentences(text: str) -> list[str]:
    """The abstract's sentences (split after 。！？； and their ASCII forms; CSL uses ``.`` and ``,``)."""
    return [s.strip(" .。;；") for s in _SENTENCE_END.split(text) if s.strip(" .。;；")]


def baselines(pairs: list[Pair], lead_chars: int) -> dict[str, dict]:
    """Extractive baselines: the first ``lead_chars`` characters, the first sentence, and the
    sentence closest to the title (an oracle: it looks at the reference)."""
    titles = [p.title for p in pairs]

    def oracle(pair: Pair) -> str:
        candidates = sentences(pair.source) or [pair.source]
        return max(candidates, key=lambda s: rouge_l(s, pair.title))

    return {
        f"lead_{lead_chars}_chars": rouge_scores([p.source[:lead_chars] for p in pairs], titles),
        "first_sentence": rouge_scores([(sentences(p.source) or [p.source])[0] for p in pairs], titles),
        "oracle_sentence": rouge_scores([oracle(p) for p in pairs], titles),
    }


def saved_model_answers(pipeline: HeadlinePipeline, beam_width: int) -> Callable[[list[str]], list[HeadlineResult]]:
    """The answer per text, as ``/v1/headline`` answers with ``pipeline``."""

    def answer(texts: list[str]) -> list[HeadlineResult]:
        candidates = pipeline.read([pipeline.job(text, beam_width) for text in texts])
        return [pipeline.respond(text, found) for text, found in zip(texts, candidates)]

    return answer


def selection_sets(data_dir: Path, held_out: int, seed: int) -> dict[str, list[Pair]]:
    """The abstracts the run held out, LCSTS's validation posts it selected on (the first
    ``held_out``) and the others, which no run selects on, and the People's Daily texts a
    ``papers_news_reports`` run of this seed holds out: a check of a choice before test."""
    _, held = read_corpus(data_dir, "papers", held_out, seed)
    news_val = read_clge_tsv(data_dir / NEWS_VAL) if (data_dir / NEWS_VAL).exists() else []  # the posts alone
    reports = split_reports(data_dir, seed)[1] if (data_dir / PEOPLES_DAILY).exists() else []
    sets = {
        "papers_held_out": held["papers"], "lcsts_val_selection": news_val[:held_out], "lcsts_val_unused": news_val[held_out:],
        "reports_held_out": reports,
    }
    return {name: pairs for name, pairs in sets.items() if pairs}


def headline_answers(
    version_dir: Path, sets: dict[str, list[Pair]], decoding: dict, max_source_chars: int, domain_check: dict | None = None,
    greedy: bool = True,
) -> dict[str, dict[str, list[HeadlineResult]]]:
    """Each set's answers (``{set: {"greedy" | "beam_K": answers}}``), as ``/v1/headline`` gives them
    with this version (the beam's alone without ``greedy``)."""
    serve = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    check = HeadlineDomainCheck(**domain_check) if domain_check else None
    pipeline = HeadlinePipeline(serve, HeadlineDecoding(**decoding), max_source_chars, check)
    searches = {**({"greedy": 1} if greedy else {}), f"beam_{decoding['beam_width']}": decoding["beam_width"]}
    return {
        name: {
            search: generate_all(saved_model_answers(pipeline, width), [p.source for p in pairs], desc=f"{name} {search}")
            for search, width in searches.items()
        }
        for name, pairs in sets.items()
    }


def score_answers(answers: dict[str, dict[str, list[HeadlineResult]]], sets: dict[str, list[Pair]], lead_chars: int) -> dict:
    """Char ROUGE-1/2/L and BLEU of :func:`headline_answers` on each set, next to the extractive
    baselines; the share of texts the answer calls in domain where the version checks it."""
    results = {}
    for name, pairs in sets.items():
        titles = [p.title for p in pairs]
        results[name] = {}
        for search, found in answers[name].items():
            predicted = [a.headline for a in found]
            results[name][search] = rouge_scores(predicted, titles)
            if any(a.in_domain is not None for a in found):
                results[name][search]["in_domain_share"] = round(sum(bool(a.in_domain) for a in found) / len(found), 4)
            results[name][search]["samples"] = [
                {"reference": p.title, "generated": g} for p, g in list(zip(pairs, predicted))[:5]
            ]
        results[name]["baselines"] = baselines(pairs, lead_chars)
    return results


def evaluate_saved_model(
    version_dir: Path, sets: dict[str, list[Pair]], decoding: dict, max_source_chars: int, lead_chars: int,
    domain_check: dict | None = None,
) -> dict:
    """:func:`score_answers` of ``version_dir``'s answers."""
    return score_answers(headline_answers(version_dir, sets, decoding, max_source_chars, domain_check), sets, lead_chars)


def paired_comparison(
    answers: dict[str, list[HeadlineResult]], other_answers: dict[str, list[HeadlineResult]], sets: dict[str, list[Pair]]
) -> dict[str, dict]:
    """Per set, how ``answers`` differ from ``other_answers`` (each a set's served answers) in
    ROUGE-L, text by text: :func:`training.metrics.paired_difference`."""
    return {
        name: paired_difference(
            [rouge_l(a.headline, p.title) for a, p in zip(other_answers[name], pairs)],
            [rouge_l(a.headline, p.title) for a, p in zip(answers[name], pairs)],
        )
        for name, pairs in sets.items()
    }


def headline_figures(metrics: dict, decoding: dict) -> dict:
    beam = f"beam_{decoding['beam_width']}"
    if "clge_csl_test" not in metrics:  # no data, or the selection sets
        return {f"{name}_rouge_l": result[beam]["rouge-l"] for name, result in metrics.items()}
    return {
        "rouge_l": metrics["clge_csl_test"][beam]["rouge-l"],
        "clge_csl_test_greedy_rouge_l": metrics["clge_csl_test"]["greedy"]["rouge-l"],
        "csl_ts_test_rouge_l": metrics["csl_ts_test"][beam]["rouge-l"],
        **{f"{name}_rouge_l": metrics[name][beam]["rouge-l"] for name in ("lcsts_test", "peoples_daily_test") if name in metrics},
    }


def decoding_options(args: argparse.Namespace) -> dict:
    return {
        "beam_width": args.beam_width,
        "max_length": args.max_length,
        "length_penalty": args.length_penalty,
        "block_repeated_trigrams": args.block_repeated_trigrams,
    }


def lead_chars(data_dir: Path) -> int:
    """The baseline's length: the median training title length (0 when there is no data)."""
    return int(statistics.median(len(p.title) for p in training_pairs(data_dir))) if data_dir.exists() else 0


def served_settings(manifest: dict, args: argparse.Namespace) -> tuple[dict, int, dict | None]:
    """What a version answers with: its decoding, how many characters it reads, its domain check."""
    decoding = manifest.get("decoding") or decoding_options(args)
    max_source_chars = manifest.get("preprocessing", {}).get("max_source_chars", Config.max_source_chars)
    return decoding, max_source_chars, manifest.get("domain_check")


def held_out_split(manifest: dict) -> dict:
    """The pairs a version's run held out (exports before it was recorded used the defaults)."""
    return manifest.get("held_out", {"pairs": Config.held_out, "seed": Config.seed})


def evaluate(args: argparse.Namespace) -> None:
    if args.against and not args.selection:
        raise SystemExit("--against compares versions on the selection sets, not on test: add --selection")
    version_dir = model_store.resolve_version(model_dir(args, TASK), args.version)
    manifest = model_store.read_manifest(version_dir)
    settings = served_settings(manifest, args)
    data_dir = Path(args.data_dir)
    held_out = held_out_split(manifest)
    if args.selection:
        sets = selection_sets(data_dir, held_out["pairs"], held_out["seed"])
    else:
        sets = test_sets(data_dir)
    answers = headline_answers(version_dir, sets, *settings)
    metrics = score_answers(answers, sets, lead_chars(data_dir))
    for name, result in metrics.items():
        print(f"\n{name}: {'':<22}{'R-1':>8}{'R-2':>8}{'R-L':>8}{'BLEU':>8}")
        rows = {**{k: v for k, v in result.items() if k != "baselines"}, **result["baselines"]}
        for row, r in rows.items():
            in_domain = f"  in domain {r['in_domain_share']:.1%}" if "in_domain_share" in r else ""
            print(f"  {row:<28}{r['rouge-1']:>8.4f}{r['rouge-2']:>8.4f}{r['rouge-l']:>8.4f}{r['bleu']:>8.4f}{in_domain}")
    made_by = {"training_commands": manifest.get("training_commands", [])}
    against = _against(args, sets, held_out, answers, settings[0]) if args.against else {}
    print(json.dumps({
        "task": TASK, "model": str(version_dir), **made_by, **headline_figures(metrics, settings[0]), **against, **metrics,
    }, ensure_ascii=False))


def _against(args: argparse.Namespace, sets: dict[str, list[Pair]], held_out: dict, answers: dict, decoding: dict) -> dict:
    """``--against ROOT``: ROOT's newest version answers the same sets as it serves, and each set's
    beam answers are compared text by text with this version's."""
    other_dir = model_store.resolve_version(Path(args.against) / TASK)
    other_manifest = model_store.read_manifest(other_dir)
    other_settings = served_settings(other_manifest, args)
    # A version of another held-out split trained on some of these abstracts: its figure there is not held out.
    other_held_out = held_out_split(other_manifest)
    same_split = other_held_out == held_out
    if not same_split:
        print(f"{other_dir} held out other abstracts ({other_held_out}): compare the posts only")
    other_answers = headline_answers(other_dir, sets, *other_settings, greedy=False)  # the beam is compared
    beam, other_beam = (f"beam_{d['beam_width']}" for d in (decoding, other_settings[0]))
    difference = paired_comparison(
        {name: found[beam] for name, found in answers.items()}, {name: found[other_beam] for name, found in other_answers.items()}, sets
    )
    print(f"\nROUGE-L (beam) minus {other_dir}'s, text by text: {'mean':>8}{'95% interval':>20}{'better':>8}{'worse':>8}")
    for name, d in difference.items():
        print(f"  {name:<28}{d['mean']:>+8.4f}{d['low']:>+10.4f} … {d['high']:>+.4f}{d['better']:>8.0%}{d['worse']:>8.0%}")
    other_metrics = score_answers(other_answers, sets, 0)
    return {"against": {
        "model": str(other_dir), "same_held_out": same_split, **headline_figures(other_metrics, other_settings[0]),
        "difference": difference,
    }}
