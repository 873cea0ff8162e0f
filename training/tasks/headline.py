"""Headline generation: a character seq2seq (BiLSTM encoder, LSTM decoder, attention, copy prior), beam search in the graph.

``python -m training headline train|evaluate|export``. After Su Jianlin's
"玩转Keras之seq2seq自动生成标题". The exported SavedModel takes raw UTF-8
abstracts and returns ranked headlines: normalisation, vocabulary lookup, the
network and beam search (a ``tf.while_loop``) all run inside the graph.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from app import model_store
from app.tasks.batches import length_batches
from app.tasks.headline.pipeline import HeadlinePipeline
from app.tasks.headline.spec import HeadlineDecoding
from app.tasks.text import texts_to_codepoints
from training.callbacks import ema_options, standard_callbacks
from training.cli import add_task_commands, export_version
from training.data.headline import Pair, test_sets, training_pairs
from training.decoding import beam_search, greedy_search
from training.layers.attention import MemoryAttention
from training.layers.copy_prior import CopyPrior
from training.layers.pointer import PointerMixture
from training.metrics import rouge_l, rouge_scores
from training.runs import CONFIG_FILE, RunConfig, load_best, start_run

TASK = "headline"
PAD, UNK, START, END = 0, 1, 2, 3  # token ids; characters follow from 4
_START_KEY, _END_KEY = -1, -2  # their keys in the integer vocabulary (decoded text is never negative)
NEVER_GENERATED = (PAD, UNK, START)
EXAMPLE = (
    "提出了一种新的保细节的变形算法,可以使网格模型进行尽量刚性的变形,以减少变形中几何细节的扭曲."
    "首先根据网格曲面局部细节的丰富程度,对原始网格进行聚类生成其简化网格;然后对简化网格进行变形."
)
SIGNATURE = {
    "inputs": {
        "text": "string [N], raw UTF-8 abstracts",
        "beam_width": "int32 [] (1 = greedy)",
        "max_length": "int32 [], most generated tokens",
        "length_penalty": "float32 [], GNMT alpha for ranking the beams (0 = plain log-probability)",
        "block_repeated_trigrams": "bool []",
    },
    "outputs": {
        "headlines": "string [N, beam_width], best first",
        "log_probs": "float32 [N, beam_width], sum of token log-probabilities",
        "scores": "float32 [N, beam_width], log_probs / length penalty (the ranking)",
        "truncated": "bool [N], the abstract was longer than the model reads",
    },
}

NEXT_TOKEN_SIGNATURE = {
    "inputs": {"text": "string [N]", "prefix": "int32 [N, T], decoder input ids starting with the start token"},
    "outputs": {
        "log_probs": "float32 [N, T, V], next-token log-probabilities after each prefix position",
        "vocabulary": "string [V], the text of each token id ('' for the special tokens)",
    },
}


@dataclass
class Config(RunConfig):
    """Everything needed to rebuild the network: hyper-parameters plus the character vocabulary."""

    embedding_dim: int = 128
    encoder_units: int = 128  # per direction
    decoder_units: int = 256
    attention_heads: int = 4
    attention_key_dim: int = 32
    output_dim: int = 128
    dropout: float = 0.25
    label_smoothing: float = 0.0
    pointer: bool = True  # mix in a pointer (copy attention) distribution; False: the seed's prior alone
    max_source_chars: int = 256  # the abstract's first characters the encoder reads
    max_title_tokens: int = 48  # titles (and the end token) are cut to this while training
    chars: list[int] = field(default_factory=list)  # code points, most frequent first

    @property
    def vocab_size(self) -> int:
        return len(self.chars) + 4



def character_vocabulary(texts: list[str], min_count: int) -> list[int]:
    """Code points occurring at least ``min_count`` times (normalised, case kept), most frequent first."""
    counts = np.bincount(texts_to_codepoints(tf.constant(texts), lowercase=False).flat_values.numpy())
    order = np.argsort(-counts, kind="stable")
    return [int(c) for c in order if counts[c] >= min_count and c > 0]


@keras.saving.register_keras_serializable(package="training")
class HeadlineSeq2Seq(keras.Model):
    """Source ids ``[B, S]`` and shifted target ids ``[B, T]`` → next-token log-probabilities ``[B, T, V]``.

    :meth:`encode` and :meth:`step` expose the same network one decoding step at a time,
    for :mod:`training.decoding`.
    """

    def __init__(self, config: Config, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        vocab, units = config.vocab_size, config.decoder_units
        self.token_lookup = keras.layers.IntegerLookup(
            vocabulary=[_START_KEY, _END_KEY, *config.chars], mask_token=0, name="token_lookup"
        )
        self.embedding = keras.layers.Embedding(vocab, config.embedding_dim, name="embedding")
        self.embedding_dropout = keras.layers.Dropout(config.dropout)
        self.encoder = keras.layers.Bidirectional(
            keras.layers.LSTM(config.encoder_units, return_sequences=True, name="lstm"), name="encoder"
        )
        self.decoder_init = keras.layers.Dense(2 * units, activation="tanh", name="decoder_init")
        self.decoder = keras.layers.LSTM(units, return_sequences=True, name="decoder")
        self.attention = MemoryAttention(config.attention_heads, config.attention_key_dim, name="attention")
        self.hidden = keras.layers.Dense(config.output_dim, activation="tanh", name="output_hidden")
        self.output_dropout = keras.layers.Dropout(config.dropout)
        self.logits = keras.layers.Dense(vocab, name="logits")
        self.copy_prior = CopyPrior(vocab, first_regular_id=4, name="copy_prior")
        self.pointer = PointerMixture(vocab, name="pointer") if config.pointer else None
        self._codepoints = tf.constant([0, 0, 0, 0, *config.chars], tf.int32)

    def encode_text(self, text: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """UTF-8 abstracts ``[N]`` → (source ids ``[N, ≤ max_source_chars + 1]``, length in characters ``[N]``).

        One padding column is always appended, so an empty text still has a time step.
        """
        codepoints = texts_to_codepoints(text, lowercase=False)
        ids = self.token_lookup(tf.cast(codepoints[:, : self.config.max_source_chars], tf.int64))
        ids = tf.pad(tf.cast(ids.to_tensor(default_value=PAD), tf.int32), [[0, 0], [0, 1]])
        return ids, tf.cast(codepoints.row_lengths(), tf.int32)

    def encode_title(self, titles: tf.Tensor) -> tf.Tensor:
        """UTF-8 titles ``[N]`` → ragged ids ``[N, (len)]``, no start or end token."""
        return tf.cast(self.token_lookup(tf.cast(texts_to_codepoints(titles, lowercase=False), tf.int64)), tf.int32)

    def decode_tokens(self, tokens: tf.Tensor) -> tf.Tensor:
        """Token ids ``[..., T]`` → UTF-8 strings ``[...]`` (special tokens dropped)."""
        keep = tokens >= 4
        codepoints = tf.ragged.boolean_mask(tf.gather(self._codepoints, tokens), keep)
        return tf.strings.unicode_encode(codepoints, "UTF-8")

    def encode(self, source_ids, training: bool = False) -> dict:
        """The decoder's starting state: encoder memory and its mask, initial LSTM state, copy prior."""
        mask = ops.not_equal(source_ids, PAD)
        x = self.embedding_dropout(self.embedding(source_ids), training=training)
        memory = self.encoder(x, mask=mask, training=training)
        keep = ops.expand_dims(ops.cast(mask, memory.dtype), -1)
        pooled = ops.sum(memory * keep, axis=1) / ops.maximum(ops.sum(keep, axis=1), 1.0)
        h, c = ops.split(self.decoder_init(pooled), 2, axis=-1)
        return {
            "memory": memory, "memory_mask": mask, "source_ids": source_ids, "h": h, "c": c,
            "prior": self.copy_prior.prior(source_ids),
        }

    def _next_token_log_probs(self, decoded, state: dict, training: bool):
        context, weights = self.attention(decoded, state["memory"], state["memory_mask"], return_weights=True)
        features = ops.concatenate([decoded, context], axis=-1)
        hidden = self.output_dropout(self.hidden(features), training=training)
        log_probs = self.copy_prior.mix(self.logits(hidden), state["prior"])
        if self.pointer is None:
            return log_probs
        return self.pointer(log_probs, weights, state["source_ids"], features)

    def call(self, inputs, training: bool = False):
        source_ids, target_ids = inputs
        state = self.encode(source_ids, training)
        y = self.embedding_dropout(self.embedding(target_ids), training=training)
        decoded = self.decoder(y, initial_state=[state["h"], state["c"]], training=training)
        return self._next_token_log_probs(decoded, state, training)

    def step(self, tokens, state: dict):
        """One decoding step: previous tokens ``[B]`` → log-probabilities ``[B, V]`` and the next state."""
        h, (h, c) = self.decoder.cell(self.embedding(tokens), [state["h"], state["c"]], training=False)
        log_probs = self._next_token_log_probs(ops.expand_dims(h, 1), state, training=False)[:, 0]
        return log_probs, {**state, "h": h, "c": c}

    def get_config(self):
        return {**super().get_config(), "config": asdict(self.config)}

    @classmethod
    def from_config(cls, config):
        return cls(Config(**config.pop("config")), **config)


def build_model(config: Config) -> HeadlineSeq2Seq:
    model = HeadlineSeq2Seq(config, name="headline_seq2seq")
    model((tf.ones([1, 4], tf.int32), tf.ones([1, 3], tf.int32)))  # create the weights
    model.encode_text(tf.constant([""]))  # and build the lookup, used outside call()
    return model


def sequence_loss(label_smoothing: float = 0.0) -> Callable:
    """Mean negative log-likelihood per target token, padding excluded, with optional label smoothing."""

    def loss(target_ids, log_probs):
        # Keras hands a [B, T] target to a [B, T, V] prediction as [B, T, 1]: undo that.
        target_ids = ops.reshape(ops.cast(target_ids, "int32"), ops.shape(log_probs)[:-1])
        nll = -ops.squeeze(ops.take_along_axis(log_probs, ops.expand_dims(target_ids, -1), axis=-1), -1)
        if label_smoothing:
            nll = (1.0 - label_smoothing) * nll - label_smoothing * ops.mean(log_probs, axis=-1)
        mask = ops.cast(ops.not_equal(target_ids, PAD), nll.dtype)
        return ops.sum(nll * mask) / ops.maximum(ops.sum(mask), 1.0)

    return loss


def training_arrays(model: HeadlineSeq2Seq, pairs: list[Pair]) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
    """((source ids, decoder input ids), decoder target ids), padded; titles cut to ``max_title_tokens``."""
    limit = model.config.max_title_tokens
    source, _ = model.encode_text(tf.constant([p.source for p in pairs]))
    titles = model.encode_title(tf.constant([p.title for p in pairs]))[:, : limit - 1]
    n = len(pairs)
    decoder_input = tf.concat([tf.fill([n, 1], START), titles], axis=1).to_tensor(PAD, shape=[n, limit])
    target = tf.concat([titles, tf.fill([n, 1], END)], axis=1).to_tensor(PAD, shape=[n, limit])
    return (source.numpy(), decoder_input.numpy()), target.numpy()


def make_generator(model: HeadlineSeq2Seq):
    """The serving function: abstracts → ranked headlines, beam search in the graph (see ``SIGNATURE``)."""

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.string, name="text"),
            tf.TensorSpec([], tf.int32, name="beam_width"),
            tf.TensorSpec([], tf.int32, name="max_length"),
            tf.TensorSpec([], tf.float32, name="length_penalty"),
            tf.TensorSpec([], tf.bool, name="block_repeated_trigrams"),
        ]
    )
    def generate(text, beam_width, max_length, length_penalty, block_repeated_trigrams):
        source_ids, source_chars = model.encode_text(text)
        hypotheses = beam_search(
            model.step, model.encode(source_ids), tf.shape(text)[0], beam_width, max_length,
            START, END, PAD, NEVER_GENERATED, length_penalty, block_repeated_trigrams,
        )
        return {
            "headlines": model.decode_tokens(hypotheses.tokens),
            "log_probs": hypotheses.log_probs,
            "scores": hypotheses.scores,
            "truncated": source_chars > model.config.max_source_chars,
        }

    return generate


def make_next_token_scorer(model: HeadlineSeq2Seq):
    """Abstracts and decoder prefixes → next-token log-probabilities at every prefix position.

    Exported as the ``next_token_log_probs`` signature: everything a client needs to run
    its own search outside the graph (``bench/headline_decode.py`` does, the seed's way).
    """

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text"), tf.TensorSpec([None, None], tf.int32, name="prefix")])
    def next_token_log_probs(text, prefix):
        source_ids, _ = model.encode_text(text)
        vocabulary = model.decode_tokens(tf.range(model.config.vocab_size)[:, None])
        return {"log_probs": model((source_ids, prefix), training=False), "vocabulary": vocabulary}

    return next_token_log_probs


def make_greedy(model: HeadlineSeq2Seq):
    """Abstracts → greedy headlines ``[N]``, in the graph; the held-out metric uses it."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string), tf.TensorSpec([], tf.int32)])
    def greedy(text, max_length):
        source_ids, _ = model.encode_text(text)
        hypotheses = greedy_search(
            model.step, model.encode(source_ids), tf.shape(text)[0], max_length, START, END, PAD, NEVER_GENERATED
        )
        return model.decode_tokens(hypotheses.tokens[:, 0])

    return greedy


def generate_all(
    generate: Callable[[list[str]], list[str]], texts: list[str], batch_size: int = 64, desc: str | None = None
) -> list[str]:
    """Headlines for every text, in batches of similar length."""
    out: list[str] = [""] * len(texts)
    for batch in length_batches([len(t) for t in texts], batch_size, desc):
        for i, headline in zip(batch, generate([texts[i] for i in batch])):
            out[i] = headline
    return out


def split_held_out(pairs: list[Pair], held_out: int, seed: int) -> tuple[list[Pair], list[Pair]]:
    shuffled = pairs[:]
    random.Random(seed).shuffle(shuffled)
    return shuffled[held_out:], shuffled[:held_out]


def train(args: argparse.Namespace) -> None:
    run_dir, config = start_run(args, Config)
    pairs, held_out = split_held_out(training_pairs(Path(args.data_dir)), args.held_out, args.seed)
    if config is None:
        config = Config.from_options(
            args,
            pointer=not args.no_pointer,
            chars=character_vocabulary([t for p in pairs for t in (p.source, p.title)], args.min_char_count),
        )
        config.save(run_dir / CONFIG_FILE)
    model = build_model(config)
    inputs, targets = training_arrays(model, pairs)
    print(f"train {len(pairs)} pairs, held-out {len(held_out)}; vocabulary {config.vocab_size}", flush=True)
    model.compile(
        optimizer=keras.optimizers.Adam(args.learning_rate, clipnorm=5.0, **ema_options(args.ema)),
        loss=sequence_loss(config.label_smoothing),
    )
    model.summary(print_fn=lambda line, **_: print(line, flush=True))

    greedy = make_greedy(model)
    held_out_sources = [p.source for p in held_out]
    held_out_inputs, held_out_targets = training_arrays(model, held_out)

    def held_out_metrics() -> dict[str, float]:
        predicted = generate_all(
            lambda texts: [h.decode() for h in greedy(tf.constant(texts), config.max_title_tokens).numpy()],
            held_out_sources,
        )
        scores = rouge_scores(predicted, [p.title for p in held_out])
        loss = model.evaluate(held_out_inputs, held_out_targets, batch_size=args.batch_size, verbose=0)
        return {"rouge_l": scores["rouge-l"], "rouge_1": scores["rouge-1"], "log_likelihood": -loss}

    dataset = (
        tf.data.Dataset.from_tensor_slices((inputs, targets))
        .shuffle(len(targets), seed=args.seed, reshuffle_each_iteration=True)
        .batch(args.batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    with open(run_dir / "command.txt", "a") as f:  # one line per (resumed) stage, kept if it is stopped
        f.write(args.command_line + "\n")
    model.fit(
        dataset,
        epochs=args.epochs,
        # The best checkpoint is the one with the best greedy ROUGE-L, but greedy output stays flat
        # (the most frequent characters) for the first epochs while the model learns to attend, so
        # the learning rate and early stopping follow the held-out likelihood instead.
        callbacks=standard_callbacks(
            run_dir, held_out_metrics, monitor="val_rouge_l", patience=args.patience,
            plateau_patience=2, schedule_monitor="val_log_likelihood", swap_ema=args.ema > 0,
        ),
        verbose=2 if args.quiet else 1,
    )


def load_trained(run_dir: Path) -> HeadlineSeq2Seq:
    return load_best(build_model(Config.of_run(run_dir)), run_dir)


# ---- evaluation -------------------------------------------------------------------------------

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


def saved_model_generator(pipeline: HeadlinePipeline, beam_width: int) -> Callable[[list[str]], list[str]]:
    """Best headline per text, as ``/v1/headline`` answers with ``pipeline``."""

    def generate(texts: list[str]) -> list[str]:
        candidates = pipeline.read([pipeline.job(text, beam_width) for text in texts])
        return [pipeline.respond(text, found).headline for text, found in zip(texts, candidates)]

    return generate


def evaluate_saved_model(version_dir: Path, data_dir: Path, decoding: dict, max_source_chars: int, lead_chars: int) -> dict:
    """Char ROUGE-1/2/L and BLEU on each test file, greedy and beam, next to the extractive baselines."""
    results = {}
    serve = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    pipeline = HeadlinePipeline(serve, HeadlineDecoding(**decoding), max_source_chars)
    searches = {"greedy": 1, f"beam_{decoding['beam_width']}": decoding["beam_width"]}
    for name, pairs in test_sets(data_dir).items():
        titles = [p.title for p in pairs]
        results[name] = {}
        for search, width in searches.items():
            generate = saved_model_generator(pipeline, width)
            predicted = generate_all(generate, [p.source for p in pairs], desc=f"{name} {search}")
            results[name][search] = rouge_scores(predicted, titles)
            results[name][search]["samples"] = [
                {"reference": p.title, "generated": g} for p, g in list(zip(pairs, predicted))[:5]
            ]
        results[name]["baselines"] = baselines(pairs, lead_chars)
    return results


def _headline(metrics: dict, decoding: dict) -> dict:
    if not metrics:
        return {}
    beam = f"beam_{decoding['beam_width']}"
    return {
        "rouge_l": metrics["clge_csl_test"][beam]["rouge-l"],
        "clge_csl_test_greedy_rouge_l": metrics["clge_csl_test"]["greedy"]["rouge-l"],
        "csl_ts_test_rouge_l": metrics["csl_ts_test"][beam]["rouge-l"],
    }


def _decoding(args: argparse.Namespace) -> dict:
    return {
        "beam_width": args.beam_width,
        "max_length": args.max_length,
        "length_penalty": args.length_penalty,
        "block_repeated_trigrams": args.block_repeated_trigrams,
    }


def export(args: argparse.Namespace) -> None:
    run_dir = Path(args.run_dir)
    model = load_trained(run_dir)
    decoding = _decoding(args)
    lead = _lead_chars(Path(args.data_dir))
    export_version(
        args,
        task=TASK,
        model=model,
        serve=make_generator(model),
        extra_endpoints={"next_token_log_probs": make_next_token_scorer(model)},
        evaluate=lambda staged: evaluate_saved_model(staged, Path(args.data_dir), decoding, model.config.max_source_chars, lead),
        headline=lambda metrics: _headline(metrics, decoding),
        data_source="CSL abstract/title pairs: csl_title_public + clge_csl/val + csl_ts/dev (training); "
        "clge_csl/test and csl_ts/test (test); see ../shared/data/README.md",
        extra={
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


def _lead_chars(data_dir: Path) -> int:
    """The baseline's length: the median training title length (0 when there is no data)."""
    return int(statistics.median(len(p.title) for p in training_pairs(data_dir))) if data_dir.exists() else 0


def evaluate(args: argparse.Namespace) -> None:
    version_dir = model_store.resolve_version(Path(args.model_root) / TASK, args.version)
    manifest = model_store.read_manifest(version_dir)
    decoding = manifest.get("decoding") or _decoding(args)
    max_source_chars = manifest.get("preprocessing", {}).get("max_source_chars", Config.max_source_chars)
    metrics = evaluate_saved_model(version_dir, Path(args.data_dir), decoding, max_source_chars, _lead_chars(Path(args.data_dir)))
    for name, result in metrics.items():
        print(f"\n{name}: {'':<22}{'R-1':>8}{'R-2':>8}{'R-L':>8}{'BLEU':>8}")
        rows = {**{k: v for k, v in result.items() if k != "baselines"}, **result["baselines"]}
        for row, r in rows.items():
            print(f"  {row:<28}{r['rouge-1']:>8.4f}{r['rouge-2']:>8.4f}{r['rouge-l']:>8.4f}{r['bleu']:>8.4f}")
    print(json.dumps({"task": TASK, "model": str(version_dir), **_headline(metrics, decoding), **metrics}, ensure_ascii=False))


def configure_parser(parser: argparse.ArgumentParser) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--beam-width", type=int, default=4)
    common.add_argument("--max-length", type=int, default=Config.max_title_tokens)
    common.add_argument("--length-penalty", type=float, default=1.0, help="GNMT alpha")
    common.add_argument("--block-repeated-trigrams", action="store_true")
    parsers = add_task_commands(
        parser, TASK, train=train, export=export, evaluate=evaluate, common=common,
        defaults={"epochs": 40, "batch_size": 64, "learning_rate": 2e-3, "patience": 8, "seed": 13},
    )
    p = parsers.train
    p.add_argument("--held-out", type=int, default=300, help="training pairs kept aside for model selection")
    p.add_argument("--min-char-count", type=int, default=2)
    p.add_argument("--embedding-dim", type=int, default=Config.embedding_dim)
    p.add_argument("--encoder-units", type=int, default=Config.encoder_units)
    p.add_argument("--decoder-units", type=int, default=Config.decoder_units)
    p.add_argument("--dropout", type=float, default=Config.dropout)
    p.add_argument("--label-smoothing", type=float, default=Config.label_smoothing)
    p.add_argument("--max-source-chars", type=int, default=Config.max_source_chars)
    p.add_argument("--no-pointer", action="store_true", help="the seed's copy prior only, no pointer distribution")
