"""Chinese NER: character, bigram and jieba-lexicon features → BiLSTM (or ID-CNN) → linear-chain CRF.

``python -m training ner train|evaluate|export``. The exported SavedModel takes
raw UTF-8 strings and returns BIO tags: normalisation, vocabulary lookup and
Viterbi decoding all run inside the graph.
"""

from __future__ import annotations

import argparse
import json
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from app import model_store
from app.tasks.batches import length_batches
from app.tasks.chinese_script import to_traditional
from app.tasks.ner.pipeline import NERPipeline
from app.tasks.ner.schemas import NERResult
from app.tasks.text import codepoints_of, encode_texts
from training import publishing, runs
from training.callbacks import ema_options, standard_callbacks
from training.cli import add_task_commands, export_version
from training.data.lexicon import jieba_lexicon
from training.data.ner import TaggedSentence, join_entity_lists, read_bio, read_cluener, split_long
from training.data.tags import Span, as_bio, spans_from_tag_batch, spans_to_tags, tag_constraints
from training.layers import CRF, CharBigrams, CRFNegativeLogLikelihood, TokenDropout, bigram_keys
from training.layers.lexicon import LexiconFeatures
from training.metrics import entity_prf, plot_reliability, reliability, reliability_lines
from training.runs import CONFIG_FILE, RunConfig, load_best, start_run

TASK = "ner"
WARMUP_TEXT = "新华社北京电国务院总理李鹏今天会见了日本客人。"
SIGNATURE = {
    "inputs": {"text": "string [N], raw UTF-8"},
    "outputs": {
        "tags": "string [N, L], BIO, '' on padding",
        "lengths": "int32 [N]",
        "confidence": "float32 [N]",
        "entity_starts": "int32 [N, M], code point offsets, -1 on padding",
        "entity_ends": "int32 [N, M], exclusive, -1 on padding",
        "entity_types": "string [N, M], '' on padding",
        "entity_probabilities": "float32 [N, M], P(exactly this span with this type) under the CRF, -1 on padding",
    },
}


@dataclass(frozen=True)
class Corpus:
    reader: Callable[[Path], list[TaggedSentence]]
    train: str
    tests: dict[str, str]
    source: str


CORPORA = {
    "msra": Corpus(
        reader=read_bio,
        train="msra/train_pdnorm_minus_pd_devtest.txt",
        tests={"msra_test": "msra/test.txt", "peoples_daily_test": "peoples_daily/example.test"},
        source="MSRA NER (SIGHAN 2006), train minus the People's Daily dev/test sentences; see ../shared/data/README.md",
    ),
    "cluener": Corpus(
        reader=read_cluener,
        train="cluener2020/train.json",
        tests={"cluener_dev": "cluener2020/dev.json"},
        source="CLUENER2020 (10 types); the official dev set is the test split",
    ),
}


@dataclass
class Config(RunConfig):
    """Everything needed to rebuild the network: hyper-parameters plus vocabularies."""

    corpus: str = "msra"
    encoder: str = "bilstm"
    char_dim: int = 128
    bigram_dim: int = 64
    hidden: int = 192
    encoder_layers: int = 1  # stacked BiLSTMs
    dropout: float = 0.3
    char_dropout: float = 0.0  # word dropout on character ids (training only)
    bigram_dropout: float = 0.0  # ... and on bigram ids
    lexicon_max_word_length: int = 6  # 0: no jieba lexicon features
    tag_scheme: str = "BIO"  # what the CRF predicts; the outputs are always BIO
    constrained_crf: bool = True  # ill-formed tag sequences (O → I-PER) are impossible
    chars: list[int] = field(default_factory=list)
    bigrams: list[int] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)



def build_vocabularies(
    config: Config, sentences: list[TaggedSentence], min_char_count: int, min_bigram_count: int, max_bigrams: int
) -> None:
    """Fill the config's char, bigram and tag vocabularies from training sentences."""
    codepoints = codepoints_of([s.text for s in sentences])
    chars = Counter(codepoints.flat_values.numpy().tolist())
    keys = bigram_keys(codepoints.to_tensor()).numpy()
    bigrams = Counter(keys[keys > 0].tolist())
    config.chars = [c for c, n in chars.most_common() if n >= min_char_count]
    config.bigrams = [b for b, n in bigrams.most_common(max_bigrams) if n >= min_bigram_count]
    labels = sorted({tag[2:] for s in sentences for tag in s.tags if tag != "O"})
    prefixes = config.tag_scheme.replace("O", "")
    config.tags = ["O"] + [f"{prefix}-{label}" for label in labels for prefix in prefixes]


def build_model(config: Config, name: str = "ner_tagger", lexicon: LexiconFeatures | None = None) -> keras.Model:
    """Code points ``[B, L]`` (0 = padding) → CRF emissions ``[B, L, num_tags]``.

    ``lexicon``: a lexicon-feature layer to use instead of a new one (the members of an
    ensemble share one, so the exported graph holds one copy of the word list).
    """
    codepoints = keras.Input(shape=(None,), dtype="int32", name="codepoints")
    mask = keras.ops.not_equal(codepoints, 0)
    char_ids = keras.layers.IntegerLookup(vocabulary=config.chars, mask_token=0, name="char_lookup")(
        keras.ops.cast(codepoints, "int64")
    )
    bigram_ids = keras.layers.IntegerLookup(vocabulary=config.bigrams, mask_token=0, name="bigram_lookup")(
        CharBigrams(name="bigrams")(codepoints)
    )
    char_ids = TokenDropout(config.char_dropout, name="char_dropout")(char_ids)
    bigram_ids = TokenDropout(config.bigram_dropout, name="bigram_dropout")(bigram_ids)
    chars = keras.layers.Embedding(len(config.chars) + 2, config.char_dim, name="char_embedding")(char_ids)
    bigrams = keras.layers.Embedding(len(config.bigrams) + 2, config.bigram_dim, name="bigram_embedding")(bigram_ids)
    bigrams = keras.layers.Reshape((-1, 2 * config.bigram_dim))(bigrams)
    features = [chars, bigrams]
    if config.lexicon_max_word_length:
        if lexicon is None:
            lexicon = lexicon_layer(config)
        features.append(lexicon(codepoints))
    x = keras.layers.Concatenate()(features)
    x = keras.layers.Dropout(config.dropout)(x)
    if config.encoder == "bilstm":
        # Named so that weight paths do not depend on how many models this process built (warm starts match by path).
        for layer in range(config.encoder_layers):
            suffix = f"_{layer + 1}" if layer else ""
            if layer:
                x = keras.layers.Dropout(config.dropout, name=f"encoder_dropout{suffix}")(x)
            lstm = keras.layers.LSTM(config.hidden, return_sequences=True, name=f"lstm{suffix}")
            x = keras.layers.Bidirectional(lstm, name=f"encoder{suffix}")(x, mask=mask)
    else:
        x = _iterated_dilated_cnn(x, mask, config.hidden)
    x = keras.layers.Dropout(config.dropout)(x)
    emissions = keras.layers.Dense(len(config.tags), name="emissions")(x)
    constraints = tag_constraints(config.tags) if config.constrained_crf else {}
    emissions = CRF(len(config.tags), name="crf", **constraints)(emissions)
    return keras.Model(codepoints, emissions, name=name)


def lexicon_layer(config: Config) -> LexiconFeatures:
    return LexiconFeatures(jieba_lexicon(config.lexicon_max_word_length), config.lexicon_max_word_length, name="lexicon")


def load_tagger(run_dir: Path, name: str = "ner_tagger", lexicon: LexiconFeatures | None = None) -> tuple[keras.Model, Config]:
    """A trained run's tagger with its best (held-out) weights, and its config."""
    config = Config.of_run(run_dir)
    return load_best(build_model(config, name, lexicon), run_dir), config


def build_ensemble(members: list[keras.Model]) -> keras.Model:
    """Trained taggers with the same tags → one tagger whose emissions and CRF scores are the
    members' means (a product of experts: Viterbi runs once, over the averaged potentials)."""
    codepoints = keras.Input(shape=(None,), dtype="int32", name="codepoints")
    emissions = keras.layers.Average(name="mean_emissions")([member(codepoints) for member in members])
    crf = CRF.from_config({**members[0].get_layer("crf").get_config(), "name": "crf"})
    ensemble = keras.Model(codepoints, crf(emissions), name="ner_ensemble")
    for weight, *member_weights in zip(crf.weights, *(m.get_layer("crf").weights for m in members)):
        weight.assign(keras.ops.mean(keras.ops.stack([w.value for w in member_weights]), axis=0))
    return ensemble


def _iterated_dilated_cnn(x, mask, filters: int, dilations=(1, 1, 2), blocks: int = 4):
    """ID-CNN (Strubell et al., 2017): one dilated block applied ``blocks`` times with shared weights.

    Padded positions are zeroed after every convolution so they never leak into real ones.
    """
    keep = keras.ops.expand_dims(keras.ops.cast(mask, "float32"), -1)
    x = keras.layers.Dense(filters, name="idcnn_input")(x) * keep
    convs = [
        keras.layers.Conv1D(filters, 3, dilation_rate=d, padding="same", activation="relu", name=f"idcnn_conv{i}")
        for i, d in enumerate(dilations)
    ]
    outputs = []
    for _ in range(blocks):
        for conv in convs:
            x = conv(x) * keep
        outputs.append(x)
    return keras.layers.Concatenate(name="encoder")(outputs)


def make_tagger(model: keras.Model, tags: list[str] | None = None) -> tf.types.experimental.PolymorphicFunction:
    """Code points → ``{"path": best tag ids [B, L], "confidence": its probability [B]}``, with
    Viterbi in the graph; given the ``tags``' names, also each entity of the path with its
    marginal probability under the CRF (``entity_*`` [B, M], ordered by start, -1 / '' padding)."""
    crf: CRF = model.get_layer("crf")
    roles = None if tags is None else EntityRoles.of(tags)

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)], reduce_retracing=True)
    def tag(codepoints):
        mask = codepoints != 0
        emissions = model(codepoints, training=False)
        path, score = crf.decode(emissions, mask)
        out = {"path": path, "confidence": tf.exp(score - crf.log_partition(emissions, mask))}
        if roles is not None:
            out.update(roles.entities(crf, emissions, mask, path))
        return out

    return tag


@dataclass(frozen=True)
class EntityRoles:
    """What each tag id means for entities: opens one (B-, S-), continues one (I-, E-), its type."""

    opens: np.ndarray  # bool [K]
    continues: np.ndarray  # bool [K]
    type_of: np.ndarray  # int32 [K], -1 for O
    types: tuple[str, ...]

    @classmethod
    def of(cls, tags: list[str]) -> "EntityRoles":
        prefixes = [t.partition("-")[0] for t in tags]
        labels = [t.partition("-")[2] for t in tags]
        types = tuple(dict.fromkeys(label for label in labels if label))
        return cls(
            np.array([p in ("B", "S") for p in prefixes]),
            np.array([p in ("I", "E") for p in prefixes]),
            np.array([types.index(label) if label else -1 for label in labels], dtype=np.int32),
            types,
        )

    def entities(self, crf: CRF, emissions: tf.Tensor, mask: tf.Tensor, path: tf.Tensor) -> dict[str, tf.Tensor]:
        """The entities of ``path`` and the probability of each (exactly that span with that type)."""
        opens, continues = tf.constant(self.opens), tf.constant(self.continues)
        type_of = tf.constant(self.type_of)
        # An entity runs from a tag that opens one to just before the next tag that does not
        # continue it (the CRF's constraints keep a continuation to its own type).
        stops = tf.concat([~tf.gather(continues, path) | ~mask, tf.ones_like(mask[:, :1])], axis=1)
        length = tf.shape(stops)[1]
        stop_at = tf.where(stops, tf.range(length)[None, :], length)
        next_stop = tf.transpose(tf.scan(tf.minimum, tf.transpose(stop_at), reverse=True))
        found = tf.cast(tf.where(tf.gather(opens, path) & mask), tf.int32)  # [E, 2]: row-major, by start
        rows, starts = found[:, 0], found[:, 1]
        ends = tf.gather_nd(next_stop, tf.stack([rows, starts + 1], axis=1))
        types = tf.gather(type_of, tf.gather_nd(path, found))
        continuations = continues[None, :] & (type_of[None, :] == types[:, None])  # [E, K]: tags that would extend it
        probabilities = tf.exp(crf.span_log_marginals(emissions, mask, path, rows, starts, ends, continuations))

        def padded(values, fill):
            return tf.RaggedTensor.from_value_rowids(values, rows, nrows=tf.shape(path)[0]).to_tensor(fill)

        return {
            "entity_starts": padded(starts, -1),
            "entity_ends": padded(ends, -1),
            "entity_types": padded(tf.gather(tf.constant(self.types), types), ""),
            "entity_probabilities": padded(probabilities, -1.0),
        }


def predict_spans(
    predict: Callable[[list[str]], tuple[np.ndarray, np.ndarray]], texts: list[str], batch_size: int = 64, desc: str | None = None
) -> list[list[Span]]:
    """Entity spans for each text; ``predict`` maps a batch of texts to (byte-string tags, lengths).

    Texts of similar length are batched together so little time goes on padding.
    """
    result: list[list[Span]] = [[] for _ in texts]
    for batch in length_batches([len(t) for t in texts], batch_size, desc):
        tags, lengths = predict([texts[i] for i in batch])
        for i, spans in zip(batch, spans_from_tag_batch(tags, lengths)):
            result[i] = spans
    return result


def _in_process_predictor(model: keras.Model, tags: list[str]):
    tagger = make_tagger(model)
    names = np.array([as_bio(t).encode() for t in tags], dtype=object)

    def predict(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        codepoints = codepoints_of(texts)
        path = tagger(codepoints.to_tensor())["path"]
        return names[path.numpy()], codepoints.row_lengths().numpy()

    return predict


# A private-use code point: in no vocabulary or lexicon, so it looks like an unseen character.
UNSEEN_CODEPOINT = 0xE000


def _dataset(
    sentences: list[TaggedSentence], config: Config, batch_size: int, shuffle: bool, unseen_rate: float = 0.0
) -> tf.data.Dataset:
    tag_index = {t: i for i, t in enumerate(config.tags)}
    codepoints = codepoints_of([s.text for s in sentences])
    tag_ids = tf.ragged.constant(
        [[tag_index[t] for t in spans_to_tags(len(s.text), s.spans, config.tag_scheme)] for s in sentences],
        dtype=tf.int32,
    )
    # tf.data cannot pad ragged elements, so slice each padded row back to its length.
    ds = tf.data.Dataset.from_tensor_slices((codepoints.to_tensor(), tag_ids.to_tensor(-1), codepoints.row_lengths()))
    ds = ds.map(lambda cp, tags, n: (cp[:n], tags[:n]))
    if unseen_rate > 0:
        # Replacing a few characters by an unseen one teaches the tagger to read names it has
        # never seen from their context instead of memorising the training names.
        ds = ds.map(
            lambda cp, tags: (tf.where(tf.random.uniform(tf.shape(cp)) < unseen_rate, UNSEEN_CODEPOINT, cp), tags)
        )
    if shuffle:
        ds = ds.shuffle(len(sentences), reshuffle_each_iteration=True)
    ds = ds.bucket_by_sequence_length(
        lambda cp, _: tf.shape(cp)[0],
        bucket_boundaries=[16, 24, 32, 40, 48, 64, 80, 100, 128, 160],
        bucket_batch_sizes=[batch_size] * 11,
        padding_values=(0, -1),
    )
    return ds.prefetch(tf.data.AUTOTUNE)


def _split(sentences: list[TaggedSentence], held_out: int, seed: int) -> tuple[list, list]:
    shuffled = sentences[:]
    random.Random(seed).shuffle(shuffled)
    return shuffled[held_out:], shuffled[:held_out]


def train(args: argparse.Namespace) -> None:
    corpus = CORPORA[args.corpus]
    run_dir, config = start_run(args, Config)
    train_set, dev_set = _split(corpus.reader(Path(args.data_dir) / corpus.train), args.held_out, args.seed)
    for relative in args.extra_train:
        train_set += corpus.reader(Path(args.data_dir) / relative)
    if args.join_lists:
        train_set += [joined for s in train_set if (joined := join_entity_lists(s)) is not None]
    train_set = [piece for s in train_set for piece in split_long(s, args.max_train_chars)]

    if config is None:
        config = Config.from_options(args)
        build_vocabularies(config, train_set, args.min_char_count, args.min_bigram_count, args.max_bigrams)
        config.save(run_dir / CONFIG_FILE)
    print(
        f"train {len(train_set)} pieces, held out {len(dev_set)} sentences; "
        f"{len(config.chars)} chars, {len(config.bigrams)} bigrams, tags {config.tags}",
        flush=True,
    )

    model = build_model(config)
    model.compile(
        optimizer=keras.optimizers.Adam(args.learning_rate, clipnorm=5.0, **ema_options(args.ema)),
        loss=CRFNegativeLogLikelihood(model.get_layer("crf")),
    )
    model.summary(print_fn=lambda line, **_: print(line, flush=True))
    predict = _in_process_predictor(model, config.tags)
    gold = [s.spans for s in dev_set]

    def held_out_f1() -> dict[str, float]:
        predicted = predict_spans(predict, [s.text for s in dev_set], batch_size=128)
        return {"f1": entity_prf(gold, predicted)["f1"]}

    baseline = runs.warm_start_run(model, Path(args.init_from), run_dir, held_out_f1) if args.init_from else None
    model.fit(
        _dataset(train_set, config, args.batch_size, shuffle=True, unseen_rate=args.unseen_rate),
        epochs=args.epochs,
        callbacks=standard_callbacks(
            run_dir, held_out_f1, monitor="val_f1", patience=args.patience, baseline=baseline, swap_ema=args.ema > 0
        ),
        shuffle=False,  # the dataset shuffles itself before bucketing
        verbose=2 if args.quiet else 1,
    )
    with open(run_dir / "command.txt", "a") as f:  # one line per (resumed) stage
        f.write(args.command_line + "\n")


def export(args: argparse.Namespace) -> None:
    run_dirs = [Path(args.run_dir), *map(Path, args.ensemble)]
    if len(run_dirs) == 1:
        model, config = load_tagger(run_dirs[0])
        members = [(model, config)]
    else:
        shared = lexicon_layer(Config.of_run(run_dirs[0]))
        members = [load_tagger(d, f"member_{i}", shared) for i, d in enumerate(run_dirs)]
        config = members[0][1]
        if any(c.tags != config.tags or c.lexicon_max_word_length != config.lexicon_max_word_length for _, c in members):
            raise ValueError("ensemble members must share their tags and lexicon settings")
        model = build_ensemble([m for m, _ in members])
    if args.int8_embeddings:
        publishing.quantize_embeddings(model)
    tagger = make_tagger(model, config.tags)
    tag_names = tf.constant([as_bio(t) for t in config.tags])

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(text):
        codepoints = encode_texts(text)
        mask = codepoints != 0
        out = tagger(codepoints)
        return {
            "tags": tf.where(mask, tf.gather(tag_names, out.pop("path")), ""),
            "lengths": tf.reduce_sum(tf.cast(mask, tf.int32), axis=1),
            **out,  # confidence, entity_starts/_ends/_types/_probabilities
        }

    export_version(
        args,
        task=TASK,
        model=model,
        serve=serve,
        evaluate=lambda staged: evaluate_saved_model(staged, Path(args.data_dir), config.corpus),
        headline=_headline,
        data_source=CORPORA[config.corpus].source,
        extra={
            "corpus": config.corpus,
            "encoder": config.encoder,
            "tags": list(dict.fromkeys(as_bio(t) for t in config.tags)),  # what the outputs use
            "tag_scheme": config.tag_scheme,
            "signature": SIGNATURE,
            "warmup_inputs": {"text": [WARMUP_TEXT, WARMUP_TEXT * 4]},
            "int8_embeddings": args.int8_embeddings,
            **({"ensemble": [
                runs.member_record(d, tag_scheme=c.tag_scheme, encoder_layers=c.encoder_layers)
                for d, (_, c) in zip(run_dirs, members)
            ]} if len(members) > 1 else {}),
        },
    )


def evaluate_saved_model(version_dir: Path, data_dir: Path, corpus_name: str) -> dict:
    """Entity P/R/F1 of an exported model on each test set of the corpus, as ``/v1/ner`` answers
    (the same pipeline), and how well its per-entity probabilities are calibrated there."""
    pipeline = NERPipeline(tf.saved_model.load(str(version_dir)).signatures["serving_default"])
    corpus = CORPORA[corpus_name]
    results = {}
    tests = {name: corpus.reader(data_dir / relative) for name, relative in corpus.tests.items()}
    for name, sentences in tests.items():
        answers = pipeline.answer_many([s.text for s in sentences], desc=name)
        results[name] = entity_prf([s.spans for s in sentences], [_spans(a) for a in answers])
        results[name]["entity_calibration"] = entity_reliability(sentences, answers)
    first, sentences = next(iter(tests.items()))
    traditional = in_traditional_characters(sentences)
    if traditional:
        answers = pipeline.answer_many([s.text for s in traditional], desc=f"{first}, Traditional")
        results[f"{first}_traditional"] = entity_prf([s.spans for s in traditional], [_spans(a) for a in answers])
    return results


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


def _headline(metrics: dict) -> dict:
    first = next(iter(metrics.values()), None)
    return {"f1": first["f1"]} if first else {}


def evaluate(args: argparse.Namespace) -> None:
    version_dir = model_store.resolve_version(Path(args.model_root) / TASK, args.version)
    corpus = args.corpus or model_store.read_manifest(version_dir).get("corpus", "msra")
    metrics = evaluate_saved_model(version_dir, Path(args.data_dir), corpus)
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
    calibrated = {name: r["entity_calibration"] for name, r in metrics.items() if "entity_calibration" in r}
    if args.reliability_plot and calibrated:
        plot_reliability(calibrated, args.reliability_plot, f"NER entity probability, ner/{version_dir.name}")
    print(json.dumps({"task": TASK, "model": str(version_dir), **_headline(metrics), **metrics}))


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parsers = add_task_commands(
        parser, TASK, train=train, export=export, evaluate=evaluate,
        defaults={"epochs": 8, "batch_size": 64, "learning_rate": 2e-3, "patience": 3, "seed": 13},
    )
    p = parsers.train
    p.add_argument("--corpus", choices=sorted(CORPORA), default="msra")
    p.add_argument("--held-out", type=int, default=2000, help="training sentences kept aside for model selection")
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
    p.add_argument(
        "--init-from", metavar="VERSION_DIR", default=None,
        help="start from an exported version's weights (e.g. models/ner/2) to train it further; "
        "give the hyper-parameters it was trained with, so the vocabularies and shapes match",
    )
    p.add_argument("--unseen-rate", type=float, default=0.05, help="fraction of training characters replaced by an unseen one")
    parsers.export.add_argument(
        "--ensemble", nargs="+", default=[], metavar="RUN_DIR",
        help="more trained runs (same tags) to export with --run-dir as one tagger: emissions and CRF scores averaged",
    )
    parsers.export.add_argument(
        "--int8-embeddings", action="store_true", help="store the character and bigram tables as int8 (a quarter of the size)"
    )
    parsers.evaluate.add_argument(
        "--corpus", choices=sorted(CORPORA), default=None, help="default: the one the model was trained on"
    )
    parsers.evaluate.add_argument(
        "--reliability-plot", type=Path, help="also draw the entity probability's reliability diagram (PNG)"
    )
