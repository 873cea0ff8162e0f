"""Reading comprehension: DGCNN reader (gated dilated convolutions, attention) over char + jieba-word features.

``python -m training qa train|evaluate|export``. Trained on CMRC 2018 train,
selected on trial, reported on dev (official EM/F1) and on the WebQA sample in its
multi-passage form. The exported SavedModel takes jieba tokens of the question and
of one passage window (segmentation is the only step outside the graph) and
returns the window's best spans: features, the reader and span decoding run inside.

The model (``config``, ``preprocessor``, ``backbone``, ``head``, ``distillation``) and the recipes
(``train``, ``export``, ``evaluate``, ``calibrate``, with ``grading``) are modules of their own;
this one holds the command's options. Serving-side steps (jieba, windows, answer assembly,
calibration) are the runtime's (:mod:`app.tasks.qa`), which ``evaluate`` measures through.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from training.cli import (
    add_ensemble_option, add_float16_weights_option, add_init_from_option, add_int8_embeddings_option, add_task_commands,
    add_word2vec_options,
)
from training.tasks.qa import calibrate, evaluate, export, train
from training.tasks.qa.config import TASK, Config
from training.tasks.qa.head import SPAN_LOSSES


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parsers = add_task_commands(
        parser, TASK, train=train.train, export=export.export, evaluate=evaluate.evaluate,
        defaults={"epochs": 10, "batch_size": 32, "learning_rate": 1e-3, "patience": 3, "seed": 7},
    )
    p = parsers.train
    p.add_argument("--hidden", type=int, default=Config.hidden)
    p.add_argument("--word-dim", type=int, default=Config.word_dim, help="jieba word embedding size (0: characters only)")
    p.add_argument("--dilations", default="1,2,4,8,16,1,1,1", help="dilation rate of each passage convolution")
    p.add_argument("--dropout", type=float, default=Config.dropout)
    p.add_argument("--window-chars", type=int, default=Config.window_chars, help="passage window length")
    p.add_argument("--window-stride", type=int, default=Config.window_stride)
    p.add_argument("--max-answer-chars", type=int, default=Config.max_answer_chars)
    p.add_argument(
        "--span-loss", choices=sorted(SPAN_LOSSES), default="softmax",
        help="independent sigmoids per position, or a softmax over the window's positions and a null slot",
    )
    p.add_argument(
        "--question-attention", action="store_true",
        help="each passage character attends over the question's characters (besides the pooled question vector)",
    )
    p.add_argument("--negative-rate", type=float, default=0.3, help="share of answerless windows trained on")
    p.add_argument(
        "--crop-negative-rate", type=float, default=None,
        help="share of answerless sentence crops trained on (default: --negative-rate; qa/2 was trained with 1)",
    )
    p.add_argument(
        "--foreign-passage-rate", type=float, default=0.0,
        help="share of questions also trained on another question's sentence (the most alike of 200 drawn) "
        "as a passage without the answer",
    )
    add_init_from_option(p, TASK)
    p.add_argument(
        "--crop-rate", type=float, default=0.0,
        help="share of questions that also train on short sentence crops of their passage (with and without the answer)",
    )
    add_word2vec_options(p, default_epochs=5, tables="jieba word embeddings", extra="for the vectors too")
    p.add_argument(
        "--char-word2vec", action="store_true",
        help="also start the character embeddings from skip-gram word2vec over the same text's characters "
        "(--word2vec-epochs epochs)",
    )
    p.add_argument(
        "--teacher", action="append", default=[], metavar="RUN_DIR",
        help="distil: train toward these trained runs' averaged pointer distributions as well as the answers "
        "(repeatable; softmax span loss)",
    )
    p.add_argument(
        "--distill-weight", type=float, default=0.5,
        help="share of each pointer's target taken from the teacher (with --teacher)",
    )
    p.add_argument("--min-char-count", type=int, default=2)
    p.add_argument("--min-word-count", type=int, default=3)
    p.add_argument("--max-words", type=int, default=30_000)
    p.add_argument("--max-train-questions", type=int, default=0, help="0: all (of CMRC train)")
    p.add_argument(
        "--extra-train", action="append", default=[], metavar="FILE",
        help="another training file under --data-dir (repeatable): SQuAD-style (drcd/DRCD_dev.json, "
        "dureader_robust/dev.json) or WebQA's annotated JSON (webqa_train/me_test_minus_webqa_sample.json)",
    )
    p.add_argument("--t2s", action="store_true", help="convert the extra files from Traditional to Simplified Chinese")
    p.add_argument("--max-select-questions", type=int, default=0, help="trial questions for model selection (0: all)")
    parsers.evaluate.add_argument("--limit", type=int, default=None, help="only the first N questions of each set")
    parsers.evaluate.add_argument("--reliability-plot", type=Path, help="also draw the probability's reliability diagram (PNG)")
    parsers.evaluate.add_argument(
        "--selection", action="store_true",
        help="only the figures a version is chosen by (CMRC trial F1, EM and short-passage F1; dev calibration-half "
        "F1; their mean; the API example's answers)",
    )
    parsers.evaluate.add_argument(
        "--runs", nargs="+", type=Path, default=[], metavar="RUN_DIR",
        help="with --selection: measure these trained runs, averaged as export --ensemble would, instead of an export",
    )
    add_ensemble_option(parsers.export, "start/end logits averaged")
    add_int8_embeddings_option(parsers.export, "character and word")
    add_float16_weights_option(parsers.export)
    p = parsers.commands.add_parser(
        "calibrate", parents=[parsers.shared, parsers.store],
        help="fit an exported reader's probability calibration and answer threshold into its manifest",
    )
    p.add_argument("--version", type=int, default=None, help="default: the highest present")
    p.add_argument("--limit", type=int, default=None, help="only the first N questions of each set")
    p.set_defaults(func=calibrate.calibrate)
