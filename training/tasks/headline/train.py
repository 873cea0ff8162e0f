"""``python -m training headline train``: teacher forcing, checkpointed on held-out greedy ROUGE-L."""

from __future__ import annotations

import argparse
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from training import runs
from training.callbacks import ema_options, standard_callbacks
from training.data.headline import Pair
from training.data.unlabelled import unlabelled_texts
from training.data.word2vec import char_sentences, word2vec_table
from training.metrics import rouge_scores
from training.runs import CONFIG_FILE, record_command, start_run
from training.tasks.headline.backbone import build_model
from training.tasks.headline.config import Config
from training.tasks.headline.head import generate_all, make_greedy, sequence_loss
from training.tasks.headline.preprocessor import (
    character_vocabulary,
    exported_characters,
    read_corpus,
    repeat_genres,
    reverse_pairs,
    training_arrays,
)


def train(args: argparse.Namespace) -> None:
    run_dir, config = start_run(args, Config)
    training, held_out = read_corpus(Path(args.data_dir), args.corpus, args.held_out, args.seed)
    pairs = repeat_genres(training, {})  # each pair once: what the vocabulary and word2vec count
    resuming = config is not None  # then the checkpoint's weights win over word2vec's
    if config is None:
        if args.init_from:  # the version's own characters, whatever these pairs hold
            chars = exported_characters(Path(args.init_from))
        else:
            chars = character_vocabulary([t for p in pairs for t in (p.source, p.title)], args.min_char_count)
        config = Config.from_options(args, pointer=not args.no_pointer, chars=chars)
        config.save(run_dir / CONFIG_FILE)
    if config.reverse:  # the same characters either way round, so the vocabulary above still holds
        training, held_out = reverse_pairs(training), reverse_pairs(held_out)
    model = build_model(config)
    if args.word2vec_epochs and not resuming:
        model.embedding.set_weights([_word2vec_embeddings(config, pairs, args)])
    epoch_pairs = repeat_genres(training, {"news": config.news_repeats, "reports": config.report_repeats})
    inputs, targets = training_arrays(model, epoch_pairs)
    print(f"train {len(epoch_pairs)} pairs, held-out {sum(map(len, held_out.values()))}; vocabulary {config.vocab_size}", flush=True)
    model.compile(
        optimizer=keras.optimizers.Adam(args.learning_rate, clipnorm=5.0, **ema_options(args.ema)),
        loss=sequence_loss(config.label_smoothing),
    )
    model.summary(print_fn=lambda line, **_: print(line, flush=True))

    greedy = make_greedy(model)
    held_out_arrays = training_arrays(model, [p for genre in held_out.values() for p in genre])

    def held_out_metrics() -> dict[str, float]:
        """Greedy ROUGE-L on each genre's held-out pairs and their mean (what selection follows),
        and the held-out log-likelihood (what the schedule follows; a reverse model, which scores
        texts rather than writes them, is selected on it too)."""
        loss = model.evaluate(*held_out_arrays, batch_size=args.batch_size, verbose=0)
        if config.reverse:
            return {"log_likelihood": -loss}
        rouge = {}
        for genre, genre_pairs in held_out.items():
            predicted = generate_all(
                lambda texts: [h.decode() for h in greedy(tf.constant(texts), config.max_title_tokens).numpy()],
                [p.source for p in genre_pairs],
            )
            rouge[genre] = rouge_scores(predicted, [p.title for p in genre_pairs])
        by_genre = {f"rouge_l_{genre}": r["rouge-l"] for genre, r in rouge.items()} if len(rouge) > 1 else {}
        return {
            "rouge_l": sum(r["rouge-l"] for r in rouge.values()) / len(rouge),
            "rouge_1": sum(r["rouge-1"] for r in rouge.values()) / len(rouge),
            "log_likelihood": -loss,
            **by_genre,
        }

    selected_on = "log_likelihood" if config.reverse else "rouge_l"
    baseline = runs.warm_start_run(model, Path(args.init_from), run_dir, held_out_metrics, selected_on) if args.init_from else None
    dataset = (
        tf.data.Dataset.from_tensor_slices((inputs, targets))
        .shuffle(len(targets), seed=args.seed, reshuffle_each_iteration=True)
        .batch(args.batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    record_command(run_dir, args)
    model.fit(
        dataset,
        epochs=args.epochs,
        # The best checkpoint is the one with the best greedy ROUGE-L, but greedy output stays flat
        # (the most frequent characters) for the first epochs while the model learns to attend, so
        # the learning rate and early stopping follow the held-out likelihood instead.
        callbacks=standard_callbacks(
            run_dir, held_out_metrics, monitor=f"val_{selected_on}", patience=args.patience,
            plateau_patience=2, schedule_monitor="val_log_likelihood", swap_ema=args.ema > 0, baseline=baseline,
        ),
        verbose=2 if args.quiet else 1,
    )


def _word2vec_embeddings(config: Config, pairs: list[Pair], args: argparse.Namespace) -> np.ndarray:
    """The character table from skip-gram word2vec over the training pairs' texts and titles and
    the ``--word2vec-extra`` text; the start and end tokens (ids 2 and 3, which word2vec never
    sees) and characters it did not keep start small and random."""
    texts = [t for p in pairs for t in (p.source, p.title)]
    texts += unlabelled_texts(Path(args.data_dir).parent, args.word2vec_extra) if args.word2vec_extra else []
    tokens = ["<s>", "</s>", *map(str, config.chars)]  # rows 2, 3, then the characters from 4, as the lookup numbers them
    return word2vec_table(char_sentences(texts, lowercase=False), tokens, config.embedding_dim, args.word2vec_epochs, args.seed)
