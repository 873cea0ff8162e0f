"""Chinese NER: character, bigram and jieba-lexicon features → BiLSTM (or ID-CNN) → linear-chain CRF.

``python -m training ner train|evaluate|export``. The exported SavedModel takes
raw UTF-8 strings and returns BIO tags: normalisation, vocabulary lookup and
Viterbi decoding all run inside the graph.

The model (``config``, ``preprocessor``, ``backbone``, ``head``) and the recipes (``train``,
``export``, ``evaluate``) are modules of their own; this one holds the command's options. The
serving-side steps (spans → entities) are the runtime's (:mod:`app.tasks.ner`), which
``evaluate`` measures through.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from training.cli import (
    add_ensemble_option, add_float16_weights_option, add_init_from_option, add_int8_embeddings_option, add_task_commands,
    add_word2vec_options,
)
from training.tasks.ner import evaluate, export, train
from training.tasks.ner.config import CORPORA, TASK, Config


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parsers = add_task_commands(
        parser, TASK, train=train.train, export=export.export, evaluate=evaluate.evaluate,
        defaults={"epochs": 8, "batch_size": 64, "learning_rate": 2e-3, "patience": 3, "seed": 13},
    )
    p = parsers.train
    p.add_argument("--corpus", choices=sorted(CORPORA), default="msra")
    p.add_argument(
        "--held-out", type=int, default=2000,
        help="training sentences of each source without a dev split kept aside for model selection and calibration",
    )
    p.add_argument(
        "--extra-train", action="append", default=[], metavar="FILE",
        help="another training file under --data-dir in the corpus' format (repeatable), e.g. peoples_daily/example.dev",
    )
    p.add_argument("--max-train-chars", type=int, default=160)
    p.add_argument("--encoder", choices=["bilstm", "idcnn"], default=Config.encoder)
    p.add_argument("--char-dim", type=int, default=Config.char_dim)
    p.add_argument("--bigram-dim", type=int, default=Config.bigram_dim)
    p.add_argument("--hidden", type=int, default=Config.hidden, help="LSTM units per direction, or ID-CNN filters")
    p.add_argument("--encoder-layers", type=int, default=Config.encoder_layers, help="stacked BiLSTM layers")
    p.add_argument("--dropout", type=float, default=Config.dropout)
    p.add_argument("--char-dropout", type=float, default=Config.char_dropout, help="share of character ids shown as unknown")
    p.add_argument("--bigram-dropout", type=float, default=Config.bigram_dropout, help="share of bigram ids shown as unknown")
    p.add_argument(
        "--lexicon-max-word-length", type=int, default=Config.lexicon_max_word_length,
        help="match jieba dictionary words up to this many characters (0: no lexicon features)",
    )
    p.add_argument(
        "--fold-emoji", action=argparse.BooleanOptionalAction, default=True,
        help="read every emoji code point as U+FFFD, in the graph (Weibo's posts have them so)",
    )
    p.add_argument(
        "--tag-scheme", choices=["BIO", "BIOES"], default=Config.tag_scheme,
        help="tags the CRF predicts (BIOES also marks entity ends); the model's outputs are BIO either way",
    )
    p.add_argument("--min-char-count", type=int, default=2)
    p.add_argument("--min-bigram-count", type=int, default=3)
    p.add_argument("--max-bigrams", type=int, default=50_000)
    p.add_argument(
        "--join-lists", action="store_true",
        help="also train on a copy of each sentence whose '、'-separated entity lists are joined (李鹏、乔石 → 李鹏乔石)",
    )
    add_init_from_option(p, TASK)
    add_word2vec_options(
        p, default_epochs=0, tables="character and bigram embeddings",
        extra="whose characters and bigrams also join the vocabularies, so the tagger starts with vectors for them",
    )
    p.add_argument("--unseen-rate", type=float, default=0.05, help="fraction of training characters replaced by an unseen one")
    add_ensemble_option(parsers.export, "same tags; emissions and CRF scores averaged")
    add_int8_embeddings_option(parsers.export, "character and bigram")
    add_float16_weights_option(parsers.export)
    parsers.evaluate.add_argument(
        "--corpus", choices=sorted(CORPORA), default=None, help="default: the one the model was trained on"
    )
    parsers.evaluate.add_argument(
        "--reliability-plot", type=Path, help="also draw the entity probability's reliability diagram (PNG)"
    )
