"""``python -m training ner train``: a tagger trained with the CRF's negative log-likelihood,
checkpointed on held-out entity F1."""

from __future__ import annotations

import argparse
from pathlib import Path

import keras

from training import runs
from training.callbacks import ema_options, standard_callbacks
from training.data.ner import TaggedSentence, join_entity_lists, split_long
from training.data.unlabelled import unlabelled_texts
from training.data.word2vec import bigram_sentences, char_sentences, word2vec_table
from training.layers import CRFNegativeLogLikelihood
from training.metrics import entity_prf
from training.runs import CONFIG_FILE, record_command, start_run
from training.tasks.ner.backbone import build_model
from training.tasks.ner.config import CORPORA, Config
from training.tasks.ner.head import in_process_predictor, predict_spans
from training.tasks.ner.preprocessor import build_vocabularies, read_corpus, training_dataset


def train(args: argparse.Namespace) -> None:
    corpus = CORPORA[args.corpus]
    run_dir, config = start_run(args, Config)
    train_set, held_out = read_corpus(corpus, Path(args.data_dir), args.held_out, args.seed)
    for relative in args.extra_train:
        train_set += corpus.sources[0].reader(Path(args.data_dir) / relative)
    if args.join_lists:
        train_set += [joined for s in train_set if (joined := join_entity_lists(s)) is not None]
    train_set = [piece for s in train_set for piece in split_long(s, args.max_train_chars)]

    extra = unlabelled_texts(Path(args.data_dir).parent, args.word2vec_extra) if args.word2vec_extra else []
    resuming = config is not None  # then the checkpoint's weights win over word2vec's
    if not resuming:
        config = Config.from_options(args)
        unlabelled = [TaggedSentence(text, ("O",) * len(text)) for text in extra]
        build_vocabularies(config, train_set + unlabelled, args.min_char_count, args.min_bigram_count, args.max_bigrams)
        config.save(run_dir / CONFIG_FILE)
    print(
        f"train {len(train_set)} pieces, held out {sum(map(len, held_out.values()))} sentences; "
        f"{len(config.chars)} chars, {len(config.bigrams)} bigrams, tags {config.tags}",
        flush=True,
    )

    model = build_model(config)
    if args.word2vec_epochs and not resuming:
        texts = [s.text for s in train_set] + extra
        for layer, tokens, vocabulary, dim in [
            ("char_embedding", char_sentences(texts), config.chars, config.char_dim),
            ("bigram_embedding", bigram_sentences(texts), config.bigrams, config.bigram_dim),
        ]:
            table = word2vec_table(tokens, [str(v) for v in vocabulary], dim, args.word2vec_epochs, args.seed)
            model.get_layer(layer).set_weights([table])
    model.compile(
        optimizer=keras.optimizers.Adam(args.learning_rate, clipnorm=5.0, **ema_options(args.ema)),
        loss=CRFNegativeLogLikelihood(model.get_layer("crf")),
    )
    model.summary(print_fn=lambda line, **_: print(line, flush=True))
    predict = in_process_predictor(model, config.tags)

    def held_out_f1() -> dict[str, float]:
        """Entity F1 on each source's held-out sentences, and their mean (what selection follows)."""
        scores = {
            name: entity_prf([s.spans for s in sentences], predict_spans(predict, [s.text for s in sentences], batch_size=128))["f1"]
            for name, sentences in held_out.items()
        }
        by_corpus = {f"f1_{Path(name).parts[0]}": f for name, f in scores.items()} if len(scores) > 1 else {}
        return {"f1": sum(scores.values()) / len(scores), **by_corpus}

    baseline = runs.warm_start_run(model, Path(args.init_from), run_dir, held_out_f1) if args.init_from else None
    record_command(run_dir, args)
    model.fit(
        training_dataset(train_set, config, args.batch_size, shuffle=True, unseen_rate=args.unseen_rate),
        epochs=args.epochs,
        callbacks=standard_callbacks(
            run_dir, held_out_f1, monitor="val_f1", patience=args.patience, baseline=baseline, swap_ema=args.ema > 0
        ),
        shuffle=False,  # the dataset shuffles itself before bucketing
        verbose=2 if args.quiet else 1,
    )
