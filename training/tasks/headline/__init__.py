"""Headline generation: a character seq2seq (BiLSTM encoder, LSTM decoder, attention, copy prior), beam search in the graph.

``python -m training headline train|evaluate|export``. After Su Jianlin's
"玩转Keras之seq2seq自动生成标题". The exported SavedModel takes raw UTF-8
abstracts and returns ranked headlines: normalisation, vocabulary lookup, the
network and beam search (a ``tf.while_loop``) all run inside the graph.

The model (``config``, ``preprocessor``, ``backbone``, ``head``) and the recipes (``train``,
``export``, ``evaluate``) are modules of their own; this one holds the command's options.
"""

from __future__ import annotations

import argparse

from training.cli import (
    add_ensemble_option,
    add_float16_weights_option,
    add_init_from_option,
    add_int8_embeddings_option,
    add_task_commands,
    add_word2vec_options,
)
from training.tasks.headline import evaluate, export, train
from training.tasks.headline.config import TASK, Config


def configure_parser(parser: argparse.ArgumentParser) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--beam-width", type=int, default=4)
    common.add_argument("--max-length", type=int, default=Config.max_title_tokens)
    common.add_argument("--length-penalty", type=float, default=1.0, help="GNMT alpha")
    common.add_argument("--block-repeated-trigrams", action="store_true")
    parsers = add_task_commands(
        parser, TASK, train=train.train, export=export.export, evaluate=evaluate.evaluate, common=common,
        defaults={"epochs": 40, "batch_size": 64, "learning_rate": 2e-3, "patience": 8, "seed": 13},
    )
    add_int8_embeddings_option(parsers.export, "character")
    add_float16_weights_option(parsers.export)
    add_ensemble_option(parsers.export, "the next-token distributions mixed at every step of one beam search")
    parsers.export.add_argument(
        "--reranker", metavar="RUN_DIR", default=None,
        help="a --reverse run (same corpus and vocabulary) that reorders the final beam by log P(text | headline)",
    )
    parsers.export.add_argument(
        "--reranker-weight", type=float, default=0.02,
        help="the reranker's log-probability's weight beside the beam's score (0.02: best on the selection sets, docs/headline.md)",
    )
    parsers.evaluate.add_argument(
        "--selection", action="store_true",
        help="instead of test: the held-out abstracts and LCSTS validation posts, those selected on and the unused rest",
    )
    parsers.evaluate.add_argument(
        "--against", metavar="MODEL_ROOT", default=None,
        help="with --selection: also answer with the newest headline version under MODEL_ROOT and compare the "
        "two text by text (mean ROUGE-L difference, 95%% paired bootstrap interval)",
    )
    p = parsers.train
    p.add_argument(
        "--corpus", choices=["papers", "papers_news", "papers_news_reports"], default=Config.corpus,
        help="papers: CSL abstracts → titles; papers_news: also LCSTS news posts → summaries (clge_lcsts/); "
        "papers_news_reports: also People's Daily texts → their headlines (../ner/msra/, not the dated reports of its test)",
    )
    p.add_argument(
        "--news-repeats", type=int, default=Config.news_repeats,
        help="go over the news pairs this many times per epoch (papers_news), to weigh the genre more",
    )
    p.add_argument(
        "--report-repeats", type=int, default=Config.report_repeats,
        help="go over the People's Daily pairs this many times per epoch (papers_news_reports)",
    )
    p.add_argument(
        "--held-out", type=int, default=300,
        help="paper training pairs kept aside for model selection (and as many LCSTS validation pairs with papers_news)",
    )
    p.add_argument(
        "--min-char-count", type=int, default=2,
        help="a character joins the vocabulary if the pairs hold it this often (with --init-from the version's vocabulary is kept)",
    )
    p.add_argument("--embedding-dim", type=int, default=Config.embedding_dim)
    p.add_argument("--encoder-units", type=int, default=Config.encoder_units)
    p.add_argument("--decoder-units", type=int, default=Config.decoder_units)
    p.add_argument("--dropout", type=float, default=Config.dropout)
    p.add_argument("--label-smoothing", type=float, default=Config.label_smoothing)
    p.add_argument("--max-source-chars", type=int, default=Config.max_source_chars)
    p.add_argument("--max-title-tokens", type=int, default=Config.max_title_tokens, help="targets are cut to this")
    p.add_argument(
        "--reverse", action="store_true",
        help="learn headline → text instead, a reranker for an export's --reranker (selection by held-out likelihood)",
    )
    p.add_argument("--no-pointer", action="store_true", help="the seed's copy prior only, no pointer distribution")
    add_init_from_option(p, TASK)
    add_word2vec_options(
        p, default_epochs=0, tables="character embeddings (shared by encoder and decoder)",
        extra="for the vectors too (the vocabulary stays the training pairs' characters)",
    )
