"""``python -m training headline export``: a trained run as a SavedModel taking raw abstracts and
answering ranked headlines (beam search in the graph), with a next-token signature beside it."""

from __future__ import annotations

import argparse
from pathlib import Path

from app.tasks.headline.pipeline import HeadlinePipeline
from app.tasks.headline.spec import HeadlineDecoding
from training import publishing
from training.cli import export_version
from training.data.headline import test_sets
from training.runs import member_record
from training.tasks.headline.backbone import HeadlineSeq2Seq, load_trained
from training.tasks.headline.config import (
    END,
    EXAMPLE,
    NEVER_GENERATED,
    NEXT_TOKEN_SIGNATURE,
    PAD,
    SIGNATURE,
    START,
    TASK,
    UNK,
)
from training.tasks.headline.domain_check import fit_domain_check
from training.tasks.headline.ensemble import HeadlineEnsemble
from training.tasks.headline.evaluate import decoding_options, evaluate_saved_model, headline_figures, lead_chars
from training.tasks.headline.head import make_generator, make_next_token_scorer
from training.tasks.headline.preprocessor import read_corpus


DATA_SOURCES = {
    "papers": "CSL abstract/title pairs: csl_title_public + clge_csl/val + csl_ts/dev (training); "
    "clge_csl/test and csl_ts/test (test); see ../shared/data/README.md",
    "papers_news": "CSL abstract/title pairs (csl_title_public + clge_csl/val + csl_ts/dev) and LCSTS news posts with "
    "their summaries (clge_lcsts/train minus the posts of val and test) for training; clge_csl/test, csl_ts/test and "
    "clge_lcsts/test (test); see ../shared/data/README.md",
    "papers_news_reports": "CSL abstract/title pairs (csl_title_public + clge_csl/val + csl_ts/dev), LCSTS news posts with "
    "their summaries (clge_lcsts/train minus the posts of val and test) and People's Daily texts under their headlines "
    "(ner/msra/train_pdnorm_minus_pd_devtest.txt, the texts without a dateline) for training; clge_csl/test, csl_ts/test, "
    "clge_lcsts/test and that file's dated reports under their headlines (test); see ../shared/data/README.md and "
    "docs/headline.md",
}


def export(args: argparse.Namespace) -> None:
    run_dirs = [Path(args.run_dir), *map(Path, args.ensemble)]
    with publishing.float16_weights(args.float16_weights):
        # The first member keeps the plain name, so its variable paths are those a warm start reads.
        members = [load_trained(d, name=f"headline_seq2seq_{i}" if i else "headline_seq2seq") for i, d in enumerate(run_dirs)]
        reranker = _load_reranker(Path(args.reranker), members[0]) if args.reranker else None
    model, companions = members[0], [*members[1:], *([reranker] if reranker else [])]
    if args.int8_embeddings:
        for network in (model, *companions):
            publishing.quantize_embeddings(network)
    generating = HeadlineEnsemble(members) if len(members) > 1 else model
    decoding = decoding_options(args)
    lead = lead_chars(Path(args.data_dir))
    generator = make_generator(generating, reranker, args.reranker_weight)
    domain_check = _fit_domain_check(generator, model, decoding, Path(args.data_dir))
    export_version(
        args,
        task=TASK,
        model=model,
        serve=generator,
        extra_endpoints={"next_token_log_probs": make_next_token_scorer(generating)},
        companions=companions,
        evaluate=lambda staged: evaluate_saved_model(
            staged, test_sets(Path(args.data_dir)), decoding, model.config.max_source_chars, lead, domain_check
        ),
        headline=lambda metrics: headline_figures(metrics, decoding),
        data_source=DATA_SOURCES[model.config.corpus],
        extra={
            "corpus": model.config.corpus,
            "signature": SIGNATURE,
            "signatures": {"next_token_log_probs": NEXT_TOKEN_SIGNATURE},
            "tokens": {"pad": PAD, "unknown": UNK, "start": START, "end": END, "never_generated": list(NEVER_GENERATED)},
            "decoding": decoding,
            "int8_embeddings": args.int8_embeddings,
            "float16_weights": args.float16_weights,
            **({"ensemble": [member_record(d) for d in run_dirs]} if len(run_dirs) > 1 else {}),
            **({"reranker": _reranker_record(args, reranker)} if reranker else {}),
            "preprocessing": {"max_source_chars": model.config.max_source_chars},
            "held_out": {"pairs": model.config.held_out, "seed": model.config.seed},  # for evaluate --selection
            **({"domain_check": domain_check} if domain_check else {}),
            "warmup_inputs": {
                "text": [EXAMPLE, EXAMPLE[:20]],
                "beam_width": decoding["beam_width"],
                "max_length": decoding["max_length"],
                "length_penalty": decoding["length_penalty"],
                "block_repeated_trigrams": decoding["block_repeated_trigrams"],
            },
        },
    )


def _load_reranker(run_dir: Path, model: HeadlineSeq2Seq) -> HeadlineSeq2Seq:
    """A ``--reverse`` run's network, checked to read the generator's characters by the same ids."""
    reranker = load_trained(run_dir, name="headline_reverse")
    if not reranker.config.reverse:
        raise SystemExit(f"--reranker {run_dir}: not a --reverse run")
    if reranker.config.chars != model.config.chars:
        raise SystemExit(f"--reranker {run_dir}: its character vocabulary differs from the generator's")
    return reranker


def _reranker_record(args: argparse.Namespace, reranker: HeadlineSeq2Seq) -> dict:
    """What the manifest says of the reranker: its run, its weight in the ranking (whose formula is
    in ``signature``) and how much of the text it reads."""
    reads_chars = reranker.config.max_title_tokens - 1
    return member_record(Path(args.reranker), weight=args.reranker_weight, reads_chars=reads_chars)


def _fit_domain_check(generator, model: HeadlineSeq2Seq, decoding: dict, data_dir: Path) -> dict | None:
    """The answers' ``in_domain`` threshold, fitted on the pairs the run held out (None without data)."""
    if not data_dir.exists():
        return None
    _, held_out = read_corpus(data_dir, model.config.corpus, model.config.held_out, model.config.seed)
    pipeline = HeadlinePipeline(generator, HeadlineDecoding(**decoding), model.config.max_source_chars)
    check = fit_domain_check(pipeline, held_out)
    print(f"domain check: {check['min_log_prob_per_token']} ({check['fitted_on']})", flush=True)
    return check
