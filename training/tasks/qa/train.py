"""``python -m training qa train``: the recipe, and the figures a run is selected by."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

import keras

from app.tasks.chinese_script import to_simplified
from training import runs
from training.callbacks import ema_options, standard_callbacks
from training.data.qa import QAExample, read_squad, read_training_file
from training.data.unlabelled import unlabelled_texts
from training.data.word2vec import char_sentences, word2vec_table
from training.metrics import cmrc_scores
from training.runs import CONFIG_FILE, record_command, start_run
from training.tasks.qa.backbone import build_model
from training.tasks.qa.config import SELECT, TRAIN, Config
from training.tasks.qa.distillation import distillation_targets
from training.tasks.qa.grading import answer_in_context, best_span_scores, best_text, references, short_passages
from training.tasks.qa.head import SPAN_LOSSES, WindowPredictor, answer_all, in_process_predictor
from training.tasks.qa.preprocessor import (
    build_vocabularies,
    corpus_texts,
    foreign_passage_windows,
    normalized_sentences,
    training_dataset,
    training_windows,
)

# The raw span score the held-out short-passage F1 withholds below during training: qa/2's default
# (calibrated probability 0.05) falls at a raw score of about 0.01.
HELD_OUT_SCORE_THRESHOLD = 0.01


def selection_scores(predict: WindowPredictor, config: Config, select: Sequence[QAExample]) -> dict[str, float]:
    """What runs are chosen by, on CMRC trial: F1 and EM of the best span over each question's
    passage, and F1 over the answer's sentence alone (:func:`short_passages`) with a span scoring
    under :data:`HELD_OUT_SCORE_THRESHOLD` withheld (there is no calibration before export)."""
    scores = best_span_scores(select, answer_in_context(predict, config, select))
    short = [(e, cut[0]) for e in select if (cut := short_passages(e))]
    on_short = answer_all(predict, config, [e.question for e, _ in short], [[p] for _, p in short])
    kept = [best_text(a) if a and a[0].score >= HELD_OUT_SCORE_THRESHOLD else "" for a in on_short]
    return {"f1": scores["f1"], "em": scores["em"], "short_f1": cmrc_scores(kept, [references(e) for e, _ in short])["f1"]}


def train(args: argparse.Namespace) -> None:
    run_dir, config = start_run(args, Config)
    data_dir = Path(args.data_dir)
    train_examples = read_squad(data_dir / TRAIN)
    if args.max_train_questions:
        train_examples = train_examples[: args.max_train_questions]
    convert = to_simplified if args.t2s else None
    for relative in args.extra_train:
        train_examples += read_training_file(data_dir / relative, convert)
    select = read_squad(data_dir / SELECT)[: args.max_select_questions or None]

    word_vectors = char_vectors = None
    resuming = config is not None  # then the checkpoint's weights win over word2vec's
    if not resuming:
        config = Config.from_options(args, dilations=[int(d) for d in args.dilations.split(",")])
    if args.teacher and config.span_loss != "softmax":
        raise ValueError("--teacher distils pointer distributions: it needs --span-loss softmax")
    if not resuming:
        sentences = build_vocabularies(config, train_examples, args.min_char_count, args.min_word_count, args.max_words)
        # More text for the vectors; the vocabularies stay the QA data's.
        extra = unlabelled_texts(data_dir.parent, args.word2vec_extra) if args.word2vec_extra else []
        if args.word2vec_epochs and config.word_dim:
            if extra:
                sentences += normalized_sentences(extra, desc=f"jieba ({', '.join(args.word2vec_extra)})")
            word_vectors = word2vec_table(sentences, config.words, config.word_dim, args.word2vec_epochs, args.seed)
        if args.word2vec_epochs and args.char_word2vec:
            corpus = char_sentences(corpus_texts(train_examples) + extra)
            char_vectors = word2vec_table(corpus, [str(c) for c in config.chars], config.hidden, args.word2vec_epochs, args.seed)
        config.save(run_dir / CONFIG_FILE)
    rows = training_windows(
        train_examples, config, args.negative_rate, args.crop_rate, args.seed, args.crop_negative_rate
    )
    if args.foreign_passage_rate:
        rows += foreign_passage_windows(train_examples, config, args.foreign_passage_rate, args.seed)
    soft = distillation_targets(run_dir, [Path(d) for d in args.teacher], rows) if args.teacher else None
    print(
        f"train {len(rows)} windows ({sum(r[2] < 0 for r in rows)} without the answer) from {len(train_examples)} "
        f"questions; {len(config.chars)} chars, {len(config.words)} words; select on {len(select)} trial questions",
        flush=True,
    )
    model = build_model(config)
    # Starting points: the reader fine-tunes them.
    if word_vectors is not None:
        model.get_layer("word_embedding").set_weights([word_vectors])
    if char_vectors is not None:
        model.get_layer("char_embedding").set_weights([char_vectors])
    model.compile(
        optimizer=keras.optimizers.Adam(args.learning_rate, clipnorm=5.0, **ema_options(args.ema)),
        loss=SPAN_LOSSES[config.span_loss],
    )
    model.summary(print_fn=lambda line, **_: print(line, flush=True))
    predict = in_process_predictor(model, config)

    def held_out() -> dict[str, float]:
        return selection_scores(predict, config, select)

    baseline = runs.warm_start_run(model, Path(args.init_from), run_dir, held_out) if args.init_from else None
    record_command(run_dir, args)
    model.fit(
        training_dataset(rows, args.batch_size, shuffle=True, soft=soft, soft_weight=args.distill_weight),
        epochs=args.epochs,
        callbacks=standard_callbacks(
            run_dir, held_out, monitor="val_f1", patience=args.patience, baseline=baseline, swap_ema=args.ema > 0
        ),
        shuffle=False,
        verbose=2 if args.quiet else 1,
    )
