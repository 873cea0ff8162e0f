"""``python -m training headline export``: a trained run as a SavedModel taking raw abstracts and
answering ranked headlines (beam search in the graph), with a next-token signature beside it."""

from __future__ import annotations

import argparse
from pathlib import Path

from training.cli import export_version
from training.tasks.headline.backbone import load_trained
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
from training.tasks.headline.evaluate import decoding_options, evaluate_saved_model, headline_figures, lead_chars
from training.tasks.headline.head import make_generator, make_next_token_scorer


DATA_SOURCES = {
    "papers": "CSL abstract/title pairs: csl_title_public + clge_csl/val + csl_ts/dev (training); "
    "clge_csl/test and csl_ts/test (test); see ../shared/data/README.md",
    "papers_news": "CSL abstract/title pairs (csl_title_public + clge_csl/val + csl_ts/dev) and LCSTS news posts with "
    "their summaries (clge_lcsts/train minus the posts of val and test) for training; clge_csl/test, csl_ts/test and "
    "clge_lcsts/test (test); see ../shared/data/README.md",
}


def export(args: argparse.Namespace) -> None:
    run_dir = Path(args.run_dir)
    model = load_trained(run_dir)
    decoding = decoding_options(args)
    lead = lead_chars(Path(args.data_dir))
    export_version(
        args,
        task=TASK,
        model=model,
        serve=make_generator(model),
        extra_endpoints={"next_token_log_probs": make_next_token_scorer(model)},
        evaluate=lambda staged: evaluate_saved_model(staged, Path(args.data_dir), decoding, model.config.max_source_chars, lead),
        headline=lambda metrics: headline_figures(metrics, decoding),
        data_source=DATA_SOURCES[model.config.corpus],
        extra={
            "corpus": model.config.corpus,
            "signature": SIGNATURE,
            "signatures": {"next_token_log_probs": NEXT_TOKEN_SIGNATURE},
            "tokens": {"pad": PAD, "unknown": UNK, "start": START, "end": END, "never_generated": list(NEVER_GENERATED)},
            "decoding": decoding,
            "preprocessing": {"max_source_chars": model.config.max_source_chars},
            "warmup_inputs": {
                "text": [EXAMPLE, EXAMPLE[:20]],
                "beam_width": decoding["beam_width"],
                "max_length": decoding["max_length"],
                "length_penalty": decoding["length_penalty"],
                "block_repeated_trigrams": decoding["block_repeated_trigrams"],
            },
        },
    )
