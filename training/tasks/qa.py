"""Reading comprehension: DGCNN reader (gated dilated convolutions, attention) over char + jieba-word features.

``python -m training qa train|evaluate|export``. Trained on CMRC 2018 train,
selected on trial, reported on dev (official EM/F1) and on the WebQA sample in its
multi-passage form. The exported SavedModel takes jieba tokens of the question and
of one passage window (segmentation is the only step outside the graph) and
returns the window's best spans: features, the reader and span decoding run inside.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from itertools import accumulate
from pathlib import Path
from typing import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf
from keras import ops
from tqdm import tqdm

from app import model_store
from training.callbacks import ema_options, standard_callbacks
from training.cli import add_task_commands, export_version
from training.data.qa import QAExample, read_handwritten, read_squad, read_webqa
from training.data.unlabelled import SOURCES as UNLABELLED_SOURCES
from training.data.unlabelled import unlabelled_texts
from training.layers import AttentionPooling1D, GatedDilatedResidualConv1D, SinusoidalPositionEmbedding
from app.tasks.calibration import PlattScaling
from training.metrics import cmrc_em, cmrc_f1, cmrc_scores, plot_reliability, reliability, reliability_lines, webqa_score
from app.tasks.chinese_script import to_simplified, to_traditional
from app.tasks.qa.answers import Answer, prefer_nested
from app.tasks.qa.pipeline import QAPipeline
from app.tasks.qa.spec import QACalibration, QADecoding, QAPreprocessing
from app.tasks.batches import length_batches
from app.tasks.qa.preprocessing import Window, model_inputs, normalize_tokens, pad_tokens, question_tokens, segment, windows
from app.tasks.text import codepoints_of

TASK = "qa"
TRAIN, SELECT, TESTS = "cmrc2018/cmrc2018_train.json", "cmrc2018/cmrc2018_trial.json", "cmrc2018/cmrc2018_dev.json"
WEBQA = "webqa_sample/test_file_example.json.gz"
DATA_SOURCE = (
    "CMRC 2018 (train for training, trial for model selection, dev for the reported metrics) and the "
    "Baidu WebQA evaluation sample (200 questions × 20 passages); see ../shared/data/README.md"
)
EXAMPLE_QUESTION = "中国的首都是哪里？"
EXAMPLE_PASSAGES = ["北京是中华人民共和国的首都，也是全国的政治中心。", "上海是中国最大的经济中心。"]
SIGNATURE = {
    "inputs": {
        "question_tokens": "string [N, Wq], jieba tokens of the question, '' as padding",
        "passage_tokens": "string [N, Wp], jieba tokens of one passage window, '' as padding",
    },
    "outputs": {
        "start": "int32 [N, K], code point offset in the window",
        "end": "int32 [N, K], exclusive",
        "score": "float32 [N, K], P(start)·P(end), best first",
    },
}


@dataclass
class Config:
    """Everything needed to rebuild the network: hyper-parameters plus vocabularies."""

    hidden: int = 128
    word_dim: int = 64
    dilations: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16, 1, 1, 1])
    heads: int = 4
    dropout: float = 0.1
    window_chars: int = 256
    window_stride: int = 128
    max_question_chars: int = 64
    max_answer_chars: int = 64
    top_k: int = 5
    span_loss: str = "sigmoid"  # a key of SPAN_LOSSES; older runs were all sigmoid
    question_attention: bool = False  # passage-to-question attention (older runs: the pooled question only)
    nested_answer_ratio: float | None = None  # decoding (prefer_nested), fitted at export; None: the best span as is
    chars: list[int] = field(default_factory=list)
    words: list[str] = field(default_factory=list)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), ensure_ascii=False))

    @classmethod
    def load(cls, path: Path) -> "Config":
        return cls(**json.loads(path.read_text()))


def corpus_texts(examples: Sequence[QAExample]) -> list[str]:
    """Each distinct passage once, then every question: the text vocabularies and word2vec read."""
    return sorted({e.context for e in examples}) + [e.question for e in examples]


def build_vocabularies(
    config: Config, examples: Sequence[QAExample], min_char_count: int, min_word_count: int, max_words: int
) -> list[list[str]]:
    """Fill ``config.chars`` and ``config.words`` from the examples' passages and questions; returns
    the normalised jieba tokens of each passage and question (the corpus for :func:`word2vec_table`)."""
    texts = corpus_texts(examples)
    chars = Counter(codepoints_of(texts).flat_values.numpy().tolist())
    config.chars = [c for c, n in chars.most_common() if n >= min_char_count]
    sentences = normalized_sentences(texts)
    words = Counter(word for sentence in sentences for word in sentence)
    config.words = [w for w, n in words.most_common(max_words) if n >= min_word_count and w.strip()]
    return sentences


def normalized_sentences(texts: Sequence[str], desc: str = "jieba") -> list[list[str]]:
    """Each text's jieba tokens, normalised as the reader sees them (the word2vec corpus)."""
    segmented = [segment(text) for text in tqdm(texts, desc=desc, unit="text", file=sys.stderr)]
    flat = [w.decode() for w in normalize_tokens(tf.constant([t for tokens in segmented for t in tokens] or [""])).numpy()]
    return [flat[i - len(tokens) : i] for tokens, i in zip(segmented, accumulate(map(len, segmented)))]


def char_sentences(texts: Sequence[str]) -> list[list[str]]:
    """Each text's normalised code points as strings: the character word2vec corpus, in the
    units the reader's ``char_lookup`` sees."""
    return [[str(c) for c in row] for row in codepoints_of(list(texts)).to_list()]


def word2vec_table(
    sentences: Sequence[Sequence[str]], words: Sequence[str], dim: int, epochs: int, seed: int
) -> np.ndarray:
    """Skip-gram word2vec (gensim) over ``sentences``, as rows of an embedding behind a lookup
    layer: row 0 is the padding token, row 1 out-of-vocabulary, row ``i + 2`` is ``words[i]``.
    Tokens word2vec did not keep (whitespace) start from small random vectors like Keras' own
    initialiser. The tokens may be jieba words or single characters (:func:`char_sentences`)."""
    from gensim.models import Word2Vec  # a training extra: the service never imports it

    model = Word2Vec(
        [list(s) for s in sentences], vector_size=dim, window=5, min_count=1, sg=1, negative=5,
        workers=2, epochs=epochs, seed=seed,
    )
    table = np.random.default_rng(seed).uniform(-0.05, 0.05, (len(words) + 2, dim)).astype("float32")
    for i, word in enumerate(words):
        if word in model.wv.key_to_index:
            table[i + 2] = model.wv[word]
    return table


def build_model(config: Config, name: str = "dgcnn_reader") -> keras.Model:
    """Question and passage-window features → start/end logits ``[B, Lp, 2]``."""
    inputs = {
        "question_chars": keras.Input((None,), dtype="int32", name="question_chars"),
        "question_words": keras.Input((None,), dtype="string", name="question_words"),
        "passage_chars": keras.Input((None,), dtype="int32", name="passage_chars"),
        "passage_words": keras.Input((None,), dtype="string", name="passage_words"),
        "passage_match": keras.Input((None, 2), dtype="float32", name="passage_match"),
    }
    char_lookup = keras.layers.IntegerLookup(vocabulary=config.chars, mask_token=0, name="char_lookup")
    word_lookup = keras.layers.StringLookup(vocabulary=config.words, mask_token="", name="word_lookup")
    char_embedding = keras.layers.Embedding(len(config.chars) + 2, config.hidden, name="char_embedding")
    if config.word_dim:
        word_embedding = keras.layers.Embedding(len(config.words) + 2, config.word_dim, name="word_embedding")
        word_projection = keras.layers.Dense(config.hidden, use_bias=False, name="word_projection")

    def embed(chars, words):
        char_vectors = char_embedding(char_lookup(ops.cast(chars, "int64")))
        if not config.word_dim:  # the ablation without word embeddings (word match features stay)
            return char_vectors, char_vectors
        return char_vectors, char_vectors + word_projection(word_embedding(word_lookup(words)))

    q_mask = ops.not_equal(inputs["question_chars"], 0)
    p_mask = ops.not_equal(inputs["passage_chars"], 0)
    q_chars, q = embed(inputs["question_chars"], inputs["question_words"])
    p_chars, p = embed(inputs["passage_chars"], inputs["passage_words"])

    # Soft match: how close each passage character is to its nearest question character.
    similarity = ops.matmul(_unit(p_chars), ops.transpose(_unit(q_chars), (0, 2, 1)))  # [B, Lp, Lq]
    similarity = ops.where(ops.expand_dims(q_mask, 1), similarity, -1.0)
    soft_match = ops.expand_dims(ops.max(similarity, axis=-1), -1)

    q = keras.layers.Dropout(config.dropout)(q)
    for i in range(2):
        q = GatedDilatedResidualConv1D(3, 1, config.dropout, name=f"question_conv{i}")(q, mask=q_mask)
    question_vector = AttentionPooling1D(config.hidden, name="question_pooling")(q, mask=q_mask)
    question_vector = ops.expand_dims(question_vector, 1) + ops.zeros_like(p)  # repeated over the passage

    features = [p, question_vector, inputs["passage_match"], soft_match]
    if config.question_attention:
        # Each passage character reads the question characters it matches (BiDAF's context-to-query
        # attention): the pooled question vector alone is one summary for every position.
        cross_mask = ops.logical_and(ops.expand_dims(p_mask, 2), ops.expand_dims(q_mask, 1))  # [B, Lp, Lq]
        aligned = keras.layers.MultiHeadAttention(
            config.heads, config.hidden // config.heads, dropout=config.dropout, name="question_attention"
        )(p, q, attention_mask=cross_mask)
        features += [aligned, p * aligned]
    x = keras.layers.Concatenate()(features)
    x = keras.layers.Dense(config.hidden, name="passage_input")(x)
    x = keras.layers.Dropout(config.dropout)(x)
    for i, dilation in enumerate(config.dilations):
        x = GatedDilatedResidualConv1D(3, dilation, config.dropout, name=f"passage_conv{i}")(x, mask=p_mask)
    positioned = SinusoidalPositionEmbedding(name="positions")(x)
    pair_mask = ops.logical_and(ops.expand_dims(p_mask, 1), ops.expand_dims(p_mask, 2))
    attended = keras.layers.MultiHeadAttention(
        config.heads, config.hidden // config.heads, dropout=config.dropout, name="self_attention"
    )(positioned, positioned, attention_mask=pair_mask)
    x = keras.layers.LayerNormalization(name="attention_norm")(x + attended)
    x = GatedDilatedResidualConv1D(3, 1, config.dropout, name="output_conv")(x, mask=p_mask)
    logits = keras.layers.Dense(2, name="span_logits")(x)
    return keras.Model(inputs, logits, name=name)


def load_reader(run_dir: Path, name: str = "dgcnn_reader") -> tuple[keras.Model, Config]:
    """A trained run's reader with its best (held-out) weights, and its config."""
    config = Config.load(run_dir / "config.json")
    model = build_model(config, name)
    model.load_weights(run_dir / "best.weights.h5")
    return model, config


def build_ensemble(members: Sequence[keras.Model]) -> keras.Model:
    """Trained readers → one reader whose start/end logits are the members' means: a product of
    experts, each pointer's softmax (and its null slot) taken once over the averaged logits.
    Each member keeps its own vocabularies; the inputs are raw characters and words."""
    inputs = {name: keras.Input(t.shape[1:], dtype=t.dtype, name=name) for name, t in members[0].input.items()}
    logits = keras.layers.Average(name="mean_span_logits")([member(inputs) for member in members])
    return keras.Model(inputs, logits, name="dgcnn_ensemble")


# What a reader's windows and answers are made with: members averaged into one reader share these.
PREPROCESSING = ("window_chars", "window_stride", "max_question_chars", "max_answer_chars", "top_k", "span_loss")


def averaged_reader(run_dirs: Sequence[Path], prefix: str = "member") -> tuple[keras.Model, Config]:
    """The trained runs in ``run_dirs`` as one reader (:func:`build_ensemble` for more than one), and
    the config its windows are read with; the runs must agree on :data:`PREPROCESSING`."""
    if len(run_dirs) == 1:
        return load_reader(Path(run_dirs[0]))
    config, *others = [Config.load(Path(d) / "config.json") for d in run_dirs]
    differing = [f for f in PREPROCESSING if any(getattr(c, f) != getattr(config, f) for c in others)]
    if differing:
        raise ValueError(f"runs averaged into one reader must share {', '.join(differing)}: {', '.join(map(str, run_dirs))}")
    return build_ensemble([load_reader(Path(d), f"{prefix}_{i}")[0] for i, d in enumerate(run_dirs)]), config


def _unit(x):
    return x / (ops.sqrt(ops.sum(ops.square(x), axis=-1, keepdims=True)) + 1e-6)


def sigmoid_span_loss(targets, logits):
    """Sigmoid cross-entropy for start and end at every real position (targets are -1 on padding).

    Independent sigmoids keep scores comparable across windows and passages, and let a window that
    holds no answer say so.
    """
    valid = ops.cast(targets >= 0, logits.dtype)
    losses = ops.binary_crossentropy(ops.maximum(targets, 0.0), logits, from_logits=True)  # [B, L, 2]
    # Per position [B, L]: Keras averages it over the positions of the passage mask it carries.
    return ops.sum(losses * valid, axis=-1)


def softmax_span_loss(targets, logits):
    """Cross-entropy of one softmax per pointer over the window's positions plus a "no answer"
    slot whose logit is fixed at 0 (targets all 0 in a window without the answer, -1 on padding).

    The positions compete, so the reader learns where the answer starts rather than how
    answer-like each character is; the null slot keeps a window without the answer able to say so,
    and its probabilities (:func:`span_probabilities`) comparable across windows.
    """
    valid = targets >= 0
    log_z = ops.logsumexp(_with_null_slot(logits, valid), axis=1)  # [B, 2]
    target_logit = ops.sum(ops.where(valid, targets * logits, 0.0), axis=1)  # 0: the null slot
    per_window = ops.sum(log_z - target_logit, axis=-1)  # [B]
    # Keras averages a [B, L] loss over the valid positions of the mask the logits carry; putting
    # each window's loss on its first position, scaled by the batch's valid positions per window,
    # makes that average the mean over windows.
    valid_count = ops.sum(ops.cast(valid[..., 0], logits.dtype))
    scale = valid_count / ops.cast(ops.shape(logits)[0], logits.dtype)
    first = ops.cast(ops.arange(ops.shape(logits)[1]) == 0, logits.dtype)[None, :]
    return per_window[:, None] * scale * first


def _with_null_slot(logits, valid):
    """Logits ``[B, L, 2]`` → ``[B, 1 + L, 2]``: the "no answer" slot (logit 0) first, padding at -1e9."""
    masked = ops.where(valid, logits, -1e9)
    return ops.concatenate([ops.zeros_like(masked[:, :1]), masked], axis=1)


SPAN_LOSSES = {"sigmoid": sigmoid_span_loss, "softmax": softmax_span_loss}


def span_probabilities(logits: tf.Tensor, valid: tf.Tensor, span_loss: str) -> tf.Tensor:
    """P(start), P(end) at each position ``[N, L, 2]`` under the loss the reader was trained with."""
    if span_loss == "sigmoid":
        return tf.sigmoid(logits)
    return tf.nn.softmax(_with_null_slot(logits, valid[..., None]), axis=1)[:, 1:]


def decode_spans(
    start: tf.Tensor, end: tf.Tensor, valid: tf.Tensor, max_answer_chars: int, top_k: int
) -> dict[str, tf.Tensor]:
    """The ``top_k`` spans by ``P(start)·P(end)`` with ``start ≤ end < start + max_answer_chars``.

    ``start``/``end`` are probabilities ``[N, L]``, ``valid`` marks real characters. Returns
    ``start``, exclusive ``end`` and ``score``, each ``[N, min(top_k, L²)]``, best first; slots
    beyond the valid spans score -1.
    """
    length = tf.shape(start)[1]
    scores = start[:, :, None] * end[:, None, :]  # [N, L(start), L(end)], end inclusive
    band = tf.linalg.band_part(tf.ones([length, length], tf.bool), 0, tf.minimum(max_answer_chars - 1, length))
    allowed = band[None] & valid[:, :, None] & valid[:, None, :]
    scores = tf.where(allowed, scores, -1.0)
    best, index = tf.math.top_k(tf.reshape(scores, [tf.shape(scores)[0], -1]), k=tf.minimum(top_k, length * length))
    return {"start": index // length, "end": index % length + 1, "score": best}


def make_reader(model: keras.Model, config: Config):
    """Model inputs → the ``top_k`` spans ``(start, end, score)`` of each window, decoded in the graph."""

    @tf.function(reduce_retracing=True)
    def read(inputs: dict[str, tf.Tensor]):
        valid = inputs["passage_chars"] != 0
        probabilities = span_probabilities(model(inputs, training=False), valid, config.span_loss)
        return decode_spans(probabilities[..., 0], probabilities[..., 1], valid, config.max_answer_chars, config.top_k)

    return read


# A reader signature: question_tokens, passage_tokens → the top spans of each window (what
# serving_default takes and gives).
WindowPredictor = Callable[..., dict]


def _in_process_predictor(model: keras.Model, config: Config) -> WindowPredictor:
    read = make_reader(model, config)
    return lambda question_tokens, passage_tokens: read(model_inputs(question_tokens, passage_tokens))


def saved_model_predictor(version_dir: Path) -> WindowPredictor:
    """An exported reader's signature (what the service runs)."""
    return tf.saved_model.load(str(version_dir)).signatures["serving_default"]


def reader_pipeline(predict: WindowPredictor, config: Config) -> QAPipeline:
    """The pipeline ``/v1/qa`` answers with, over ``predict`` with ``config``'s cutting and decoding."""
    preprocessing = QAPreprocessing(**{name: getattr(config, name) for name in QAPreprocessing.model_fields})
    return QAPipeline(predict, preprocessing, QADecoding(nested_answer_ratio=config.nested_answer_ratio))


def answer_all(
    predict: WindowPredictor,
    config: Config,
    questions: Sequence[str],
    passages: Sequence[Sequence[str]],
    aggregate: str = "max",
    desc: str | None = None,
) -> list[list[Answer]]:
    """The best answers to each question over its passages, ranked as ``/v1/qa`` ranks them."""
    return reader_pipeline(predict, config).rank_many(questions, passages, config.top_k, aggregate, desc)


SENTENCE_ENDS = ("。", "！", "？", "；", "!", "?", "\n")


def sentence_crops(
    window: Window, start: int, end: int, rng: random.Random
) -> list[tuple[Window, int, int]]:
    """Short passages cut from a training window whose answer is ``window[start:end]``: the
    sentences holding the answer (give or take one on each side), and, when there is one, a
    stretch of one or two other sentences without it (answer offsets -1, -1).

    Training windows of a few hundred characters alone leave the reader unsure on short passages
    (a sentence or two, as in WebQA or most API calls); these crops show it some.
    """
    offsets = list(accumulate((len(t) for t in window.tokens), initial=0))
    sentences, first = [], 0  # token ranges [i, j)
    for i, token in enumerate(window.tokens):
        if token.endswith(SENTENCE_ENDS) or i == len(window.tokens) - 1:
            sentences.append((first, i + 1))
            first = i + 1
    holding = [k for k, (i, j) in enumerate(sentences) if offsets[j] > start and offsets[i] < end]
    if not holding:
        return []
    low = max(0, holding[0] - rng.randint(0, 1))
    high = min(len(sentences) - 1, holding[-1] + rng.randint(0, 1))
    i, j = sentences[low][0], sentences[high][1]
    crops = [(Window(window.offset + offsets[i], window.tokens[i:j]), start - offsets[i], end - offsets[i])]
    others = [k for k in range(len(sentences)) if k < holding[0] - 1 or k > holding[-1] + 1]
    if others:
        k = rng.choice(others)
        last = k + 1 if k + 1 < len(sentences) and k + 1 not in holding and rng.random() < 0.5 else k
        i, j = sentences[k][0], sentences[last][1]
        crops.append((Window(window.offset + offsets[i], window.tokens[i:j]), -1, -1))
    return crops


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


def _training_windows(
    examples: Sequence[QAExample],
    config: Config,
    negative_rate: float,
    crop_rate: float,
    seed: int,
    crop_negative_rate: float | None = None,
) -> list[tuple[tuple[str, ...], Window, int, int]]:
    """(question tokens, window, answer start, answer end) per training window; -1, -1 for a window
    without the answer (kept with probability ``negative_rate``). With probability ``crop_rate`` a
    question also gets :func:`sentence_crops` of its first window holding the answer; the crop
    without the answer is kept with probability ``crop_negative_rate`` (default: ``negative_rate``).

    Keeping every answerless crop made most short windows answerless (64 % of those under 64
    characters against 31 % of full windows), and the reader learned that a short passage seldom
    holds the answer: it withheld 9 % of the answers to questions asked of the answer's sentence alone.
    """
    if crop_negative_rate is None:
        crop_negative_rate = negative_rate
    rng = random.Random(seed)
    segmented: dict[str, list[Window]] = {}
    result = []
    for example in tqdm(examples, desc="windows", unit="question", file=sys.stderr):
        if not example.answers:
            continue
        q_tokens = question_tokens(example.question, config.max_question_chars)
        if example.context not in segmented:
            segmented[example.context] = windows(segment(example.context), config.window_chars, config.window_stride)
        text, start = example.answers[0]
        end = start + len(text)
        cropped = False
        for window in segmented[example.context]:
            inside = window.offset <= start and end <= window.offset + window.length
            if inside and len(text) <= config.max_answer_chars:
                result.append((q_tokens, window, start - window.offset, end - window.offset))
                if not cropped and rng.random() < crop_rate:
                    crops = sentence_crops(window, start - window.offset, end - window.offset, rng)
                    result.extend(
                        (q_tokens, crop, s, e)
                        for crop, s, e in crops
                        # (no draw at rate 1: the same windows as before the option, for the same seed)
                        if s >= 0 or crop_negative_rate >= 1 or rng.random() < crop_negative_rate
                    )
                cropped = True
            elif not inside and rng.random() < negative_rate:
                result.append((q_tokens, window, -1, -1))
    return result


def teacher_probabilities(teacher: keras.Model, rows, batch_size: int = 64) -> list[np.ndarray]:
    """A (softmax-pointer) teacher's P(start), P(end) ``[length, 2]`` over each training window;
    the rest of each pointer's mass is on the "no answer" slot."""
    result: list[np.ndarray] = [np.empty((0, 2), np.float32)] * len(rows)
    for batch in length_batches([r[1].length for r in rows], batch_size, "teacher"):
        inputs = model_inputs(
            tf.constant(pad_tokens([rows[i][0] for i in batch])), tf.constant(pad_tokens([rows[i][1].tokens for i in batch]))
        )
        valid = inputs["passage_chars"] != 0
        probabilities = span_probabilities(teacher(inputs, training=False), valid, "softmax").numpy()
        for row, i in zip(probabilities, batch):
            result[i] = row[: rows[i][1].length]
    return result


def _dataset(
    rows, batch_size: int, shuffle: bool, soft: Sequence[np.ndarray] | None = None, soft_weight: float = 0.0
) -> tf.data.Dataset:
    """Training batches; with ``soft`` (:func:`teacher_probabilities`), each pointer's target is
    ``(1 - soft_weight)·one-hot + soft_weight·teacher`` — still a distribution over the window's
    positions and the null slot, so the softmax span loss is the cross-entropy to it."""
    questions = tf.constant(pad_tokens([r[0] for r in rows]))
    passages = tf.constant(pad_tokens([r[1].tokens for r in rows]))
    starts = tf.constant([r[2] for r in rows], tf.int32)
    ends = tf.constant([r[3] for r in rows], tf.int32)
    lengths = tf.constant([r[1].length for r in rows], tf.int32)
    # The inputs' character axis has one padding column beyond the longest window.
    teacher = np.zeros((len(rows), 1 + max((len(s) for s in soft), default=0) if soft is not None else 0, 2), np.float32)
    for i, probabilities in enumerate(soft or []):
        teacher[i, : len(probabilities)] = probabilities
    ds = tf.data.Dataset.from_tensor_slices((questions, passages, starts, ends, lengths, teacher))
    if shuffle:
        ds = ds.shuffle(len(rows), reshuffle_each_iteration=True)
    # Batches of similar window length: short crops do not pay for a full window's padding.
    ds = ds.bucket_by_sequence_length(
        lambda q, p, start, end, length, _: length, bucket_boundaries=[64, 128, 192], bucket_batch_sizes=[batch_size] * 4
    )

    # Nothing here branches on a tensor; converting it only made autograph warn about the closure.
    @tf.autograph.experimental.do_not_convert
    def features_and_targets(q, p, start, end, _, teacher):
        inputs = model_inputs(q, p)  # the character axis is as long as the batch's longest window
        positions = tf.range(tf.shape(inputs["passage_chars"])[1])[None, :]
        valid = inputs["passage_chars"] != 0
        targets = tf.stack(
            [tf.cast(positions == start[:, None], tf.float32), tf.cast(positions == end[:, None] - 1, tf.float32)], -1
        )
        if soft is not None:  # cut to the batch's longest window, as the inputs
            targets = (1 - soft_weight) * targets + soft_weight * teacher[:, : tf.shape(targets)[1]]
        return inputs, tf.where(valid[..., None], targets, -1.0)

    return ds.map(features_and_targets, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2)


TEACHER_TARGETS = "teacher_targets.npz"


def _distillation_targets(run_dir: Path, teachers: Sequence[Path], rows) -> list[np.ndarray]:
    """The teacher's pointer distributions over the training windows: the trained runs in
    ``teachers``, their logits averaged as :func:`build_ensemble` exports them. Computed once and
    kept in the run directory, so a resumed run does not recompute them."""
    cache = run_dir / TEACHER_TARGETS
    lengths = np.array([r[1].length for r in rows])
    if cache.exists():
        stored = np.load(cache)
        if np.array_equal(stored["lengths"], lengths):  # the same windows (same data, options and seed)
            return np.split(stored["probabilities"], np.cumsum(lengths)[:-1])
    soft = teacher_probabilities(averaged_reader(teachers, "teacher")[0], rows)
    np.savez(cache, probabilities=np.concatenate(soft), lengths=lengths)
    return soft


def train(args: argparse.Namespace) -> None:
    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(args.seed)
    data_dir = Path(args.data_dir)
    train_examples = read_squad(data_dir / TRAIN)
    if args.max_train_questions:
        train_examples = train_examples[: args.max_train_questions]
    convert = to_simplified if args.t2s else None
    for relative in args.extra_train:
        train_examples += read_squad(data_dir / relative, convert)
    select = read_squad(data_dir / SELECT)[: args.max_select_questions or None]

    config_path = run_dir / "config.json"
    word_vectors = char_vectors = None
    resuming = config_path.exists()  # then the vocabulary must match the checkpoint, whose weights win
    if resuming:
        config = Config.load(config_path)
    else:
        config = Config(
            hidden=args.hidden,
            word_dim=args.word_dim,
            dilations=[int(d) for d in args.dilations.split(",")],
            dropout=args.dropout,
            window_chars=args.window_chars,
            window_stride=args.window_stride,
            max_answer_chars=args.max_answer_chars,
            span_loss=args.span_loss,
            question_attention=args.question_attention,
        )
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
        config.save(config_path)
    rows = _training_windows(
        train_examples, config, args.negative_rate, args.crop_rate, args.seed, args.crop_negative_rate
    )
    soft = _distillation_targets(run_dir, [Path(d) for d in args.teacher], rows) if args.teacher else None
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
    predict = _in_process_predictor(model, config)

    def held_out() -> dict[str, float]:
        return selection_scores(predict, config, select)

    baseline = model_store.warm_start_run(model, Path(args.init_from), run_dir, held_out) if args.init_from else None
    with open(run_dir / "command.txt", "a") as f:  # one line per (resumed) stage, kept if it is stopped
        f.write(args.command_line + "\n")
    model.fit(
        _dataset(rows, args.batch_size, shuffle=True, soft=soft, soft_weight=args.distill_weight),
        epochs=args.epochs,
        callbacks=standard_callbacks(
            run_dir, held_out, monitor="val_f1", patience=args.patience, baseline=baseline, swap_ema=args.ema > 0
        ),
        shuffle=False,
        verbose=2 if args.quiet else 1,
    )


def export(args: argparse.Namespace) -> None:
    run_dirs = [Path(args.run_dir), *map(Path, args.ensemble)]
    model, config = averaged_reader(run_dirs)
    if args.int8_embeddings:
        model_store.quantize_embeddings(model)
    read = make_reader(model, config)

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None], tf.string, name="question_tokens"),
            tf.TensorSpec([None, None], tf.string, name="passage_tokens"),
        ]
    )
    def serve(question_tokens, passage_tokens):
        return read(model_inputs(question_tokens, passage_tokens))

    # Filled by measure() before export_version writes the manifest; empty: uncalibrated, best span as is.
    calibration: dict = {}
    decoding: dict = {}

    def measure(staged: Path) -> dict:
        predict = saved_model_predictor(staged)
        dev = dev_answers(predict, Path(args.data_dir), config)
        config.nested_answer_ratio, _ = fit_nested_ratio(dev)
        decoding["nested_answer_ratio"] = config.nested_answer_ratio
        dev = decoded(dev, config.nested_answer_ratio)
        calibration.update(fit_calibration(dev))
        return evaluate_saved_model(predict, Path(args.data_dir), config, calibration, dev_with_answers=dev)

    export_version(
        args,
        task=TASK,
        model=model,
        serve=serve,
        evaluate=measure,
        headline=_headline,
        data_source=DATA_SOURCE,
        extra={
            "signature": SIGNATURE,
            "calibration": calibration,
            "decoding": decoding,
            "preprocessing": {
                "window_chars": config.window_chars,
                "window_stride": config.window_stride,
                "max_question_chars": config.max_question_chars,
                "max_answer_chars": config.max_answer_chars,
                "top_k": config.top_k,
            },
            # Signature inputs: the example question over both example passages.
            "warmup_inputs": {
                "question_tokens": [segment(EXAMPLE_QUESTION)] * 2,
                "passage_tokens": [[t.decode() for t in row] for row in pad_tokens([segment(p) for p in EXAMPLE_PASSAGES])],
            },
            "int8_embeddings": args.int8_embeddings,
            **({"ensemble": [
                model_store.member_record(d, question_attention=Config.load(d / "config.json").question_attention) for d in run_dirs
            ]} if len(run_dirs) > 1 else {}),
        },
    )


def config_of_export(version_dir: Path) -> Config:
    """The preprocessing settings an exported reader was trained with, and its decoding (from its manifest)."""
    manifest = model_store.read_manifest(version_dir)
    return Config(**manifest.get("preprocessing", {}), **manifest.get("decoding", {}))


def answer_in_context(
    predict: WindowPredictor, config: Config, examples: Sequence[QAExample], desc: str | None = None
) -> list[list[Answer]]:
    """The best answers to SQuAD-style examples, each read in its own context passage."""
    return answer_all(predict, config, [e.question for e in examples], [[e.context] for e in examples], desc=desc)


def best_text(answers: Sequence[Answer]) -> str:
    return answers[0].text if answers else ""


def best_span_scores(examples: Sequence[QAExample], answers: Sequence[Sequence[Answer]]) -> dict:
    """CMRC EM/F1 of each example's best answer against its references."""
    return cmrc_scores([best_text(a) for a in answers], [references(e) for e in examples])


def best_scores(answers: Sequence[Sequence[Answer]]) -> np.ndarray:
    """Each question's best-span score (0 when no span was found)."""
    return np.array([a[0].score if a else 0.0 for a in answers])


def references(example: QAExample) -> list[str]:
    return [text for text, _ in example.answers]


def dev_halves(examples: Sequence[QAExample]) -> tuple[list[int], list[int]]:
    """CMRC dev split by passage, alternately, as indices: the first half fits the probability
    calibration and picks the answer threshold, the second is where both are measured.

    Trial cannot fit them: it has one reference answer per question where dev has three, so the
    same answers are "right" half as often there (EM 22 % against 42 % for the bundled reader).
    """
    order = {context: i for i, context in enumerate(dict.fromkeys(e.context for e in examples))}
    halves: tuple[list[int], list[int]] = ([], [])
    for i, example in enumerate(examples):
        halves[order[example.context] % 2].append(i)
    return halves


def graded(
    answers: Sequence[Sequence[Answer]], refs: Sequence[Sequence[str]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each question's best-span score, exact match (0/1) and F1 (0–1) against its references."""
    texts = [best_text(a) for a in answers]
    return (
        best_scores(answers),
        np.array([cmrc_em(t, r) for t, r in zip(texts, refs)]),
        np.array([cmrc_f1(t, r) for t, r in zip(texts, refs)]),
    )


def mean_scores(em: np.ndarray, f1: np.ndarray) -> dict[str, float]:
    """Mean EM and F1 of :func:`graded`'s arrays, in percent as CMRC's script prints them."""
    if not len(em):
        return {"em": 0.0, "f1": 0.0}
    return {"em": round(100 * float(em.mean()), 2), "f1": round(100 * float(f1.mean()), 2)}


def answered_scores(probabilities: np.ndarray, em: np.ndarray, f1: np.ndarray, threshold: float) -> dict:
    """What the service returns with ``threshold``: the share answered, their exact-match rate, and
    EM/F1 over all questions with a withheld answer scoring 0 (in percent, as CMRC's script)."""
    answered = probabilities >= threshold
    n = max(len(answered), 1)
    return {
        "threshold": threshold,
        "answered": round(float(answered.mean()) if len(answered) else 0.0, 4),
        "em_answered": round(100 * float(em[answered].mean()), 2) if answered.any() else None,
        "em": round(100 * float(em[answered].sum()) / n, 2),
        "f1": round(100 * float(f1[answered].sum()) / n, 2),
    }


def _wrong_passage(
    predict: WindowPredictor, config: Config, examples: Sequence[QAExample], scaling: PlattScaling, threshold: float
) -> dict:
    """Each question asked of the next (different) passage instead of its own, which should not
    hold its answer: how often the service withholds an answer, and the mean probability it gives."""
    passages = list(dict.fromkeys(e.context for e in examples))
    if len(passages) < 2:
        return {}
    following = {passage: passages[(i + 1) % len(passages)] for i, passage in enumerate(passages)}
    answers = answer_all(
        predict, config, [e.question for e in examples], [[following[e.context]] for e in examples], desc="wrong passage"
    )
    probabilities = scaling(best_scores(answers))
    return {
        "questions": len(examples),
        "withheld": round(float((probabilities < threshold).mean()), 4),
        "mean_probability": round(float(probabilities.mean()), 4),
    }


def sentence_bounds(text: str) -> list[tuple[int, int]]:
    """Character ranges ``[start, end)`` of the sentences of ``text`` (each ends with one of
    :data:`SENTENCE_ENDS`, or the text does)."""
    bounds, first = [], 0
    for i, char in enumerate(text):
        if char in SENTENCE_ENDS:
            bounds.append((first, i + 1))
            first = i + 1
    if first < len(text):
        bounds.append((first, len(text)))
    return bounds


def short_passages(example: QAExample) -> tuple[str, str | None] | None:
    """The question's passage cut down to what a person would paste into the API: the sentence(s)
    holding its first reference answer, and a sentence of the same passage that neither holds nor
    touches it (``None`` when there is none). ``None`` when the answer's position is unknown."""
    if not example.answers or example.answers[0][1] < 0:
        return None
    text, start = example.answers[0]
    end = start + len(text)
    bounds = sentence_bounds(example.context)
    holding = [k for k, (i, j) in enumerate(bounds) if i < end and j > start]
    if not holding:
        return None
    with_answer = example.context[bounds[holding[0]][0] : bounds[holding[-1]][1]]
    others = [k for k in range(len(bounds)) if k < holding[0] - 1 or k > holding[-1] + 1]
    without = example.context[slice(*bounds[others[len(others) // 2]])] if others else None
    return with_answer.strip(), without.strip() if without else None


def _short_passages(
    predict: WindowPredictor, config: Config, examples: Sequence[QAExample], scaling: PlattScaling, threshold: float
) -> dict:
    """Each question asked of the sentence(s) holding its answer alone (hand-written API calls are
    a sentence or two, the training passages a few hundred characters), and of another sentence
    of its passage: what the service answers to each."""
    pairs = [(e, cut) for e in examples if (cut := short_passages(e))]
    if not pairs:
        return {}
    examples, cut = [e for e, _ in pairs], [c for _, c in pairs]
    answers = answer_all(predict, config, [e.question for e in examples], [[c[0]] for c in cut], desc="short passages")
    scores, em, f1 = graded(answers, [references(e) for e in examples])
    probabilities = scaling(scores)
    negatives = [(e.question, c[1]) for e, c in zip(examples, cut) if c[1]]
    result = {
        "questions": len(examples),
        "mean_chars": round(float(np.mean([len(c[0]) for c in cut])), 1),
        "best_span": mean_scores(em, f1),
        "api": answered_scores(probabilities, em, f1, threshold),
        "ece": reliability(probabilities, em > 0)["ece"],
    }
    if negatives:
        withheld = answer_all(
            predict, config, [q for q, _ in negatives], [[p] for _, p in negatives], desc="short passages, no answer"
        )
        result["other_sentence"] = {
            "questions": len(negatives),
            "withheld": round(float((scaling(best_scores(withheld)) < threshold).mean()), 4),
        }
    return result


ANSWER_THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(11))  # 0 … 0.5, on the calibrated probability
MAX_F1_COST = 1.0  # F1 points the default answer threshold may cost against answering every question


DevAnswers = tuple[list[QAExample], list[list[Answer]]]  # CMRC dev and the reader's answers to it


def dev_answers(predict: WindowPredictor, data_dir: Path, config: Config, limit: int | None = None) -> DevAnswers:
    dev = read_squad(data_dir / TESTS)[:limit]
    return dev, answer_in_context(predict, config, dev, desc="cmrc dev")


NESTED_RATIOS = (None, 0.5, 0.2, 0.1, 0.05)  # the choices fit_nested_ratio has, None first (off)


def fit_nested_ratio(dev: DevAnswers) -> tuple[float | None, list[dict]]:
    """The :func:`prefer_nested` ratio of :data:`NESTED_RATIOS` with the best mean of EM and F1 on
    the calibration half of CMRC dev (its references are the shortest span that answers: 10.7
    characters on average; the reader, trained mostly on longer ones, overshoots), and each
    choice's EM/F1 there. ``dev``'s answers must be the best spans as they are (ratio None)."""
    examples, answers = dev
    fit_half = dev_halves(examples)[0]
    table = []
    for ratio in NESTED_RATIOS:
        _, em, f1 = graded([prefer_nested(answers[i], ratio) for i in fit_half], [references(examples[i]) for i in fit_half])
        table.append({"ratio": ratio, **mean_scores(em, f1)})
    best = max(table, key=lambda row: row["em"] + row["f1"])  # the first (None) on a tie
    return best["ratio"], table


def decoded(dev: DevAnswers, ratio: float | None) -> DevAnswers:
    """``dev``'s best spans as the reader answers them with :func:`prefer_nested` ``ratio``."""
    return dev[0], [prefer_nested(a, ratio) for a in dev[1]]


def fit_calibration(dev: DevAnswers) -> dict:
    """Platt scaling of the best span's score to P(exact match with a reference), fitted on the
    calibration half of CMRC dev (:func:`dev_halves`), and the default answer threshold: the
    highest of :data:`ANSWER_THRESHOLDS` that costs at most :data:`MAX_F1_COST` F1 points there."""
    examples, answers = dev
    fit_half = dev_halves(examples)[0]
    scores, em, f1 = graded([answers[i] for i in fit_half], [references(examples[i]) for i in fit_half])
    scaling = PlattScaling.fit(scores, em > 0)
    table = [answered_scores(scaling(scores), em, f1, t) for t in ANSWER_THRESHOLDS]
    threshold = max(row["threshold"] for row in table if row["f1"] >= table[0]["f1"] - MAX_F1_COST)
    return {
        **scaling.to_dict(),
        "answer_threshold": threshold,
        "fitted_on": f"CMRC 2018 dev, calibration half ({len(fit_half)} questions): exact match with any reference",
        "thresholds": table,
    }


def evaluate_saved_model(
    predict: WindowPredictor,
    data_dir: Path,
    config: Config,
    calibration: dict | None,
    limit: int | None = None,
    dev_with_answers: DevAnswers | None = None,
) -> dict:
    """CMRC 2018 dev EM/F1 of the best span, over all of dev and its calibration half (a figure the
    next version is chosen by); on dev's report half (:func:`dev_halves`) also what the
    service answers (the calibrated probability against the default threshold) and the
    calibration's reliability; the hand-written questions (:func:`read_handwritten`, best span and
    as the service answers); the WebQA sample score (max and sum over passages).
    ``dev_with_answers``: what :func:`dev_answers` gives, when the caller has it already."""
    dev, answers = dev_with_answers or dev_answers(predict, data_dir, config, limit)
    results = {"cmrc_dev": best_span_scores(dev, answers)}
    fitting, report = dev_halves(dev)
    policy = QACalibration.model_validate(calibration or {})
    scaling, threshold = policy.scaling, policy.answer_threshold
    if fitting:
        results["cmrc_dev_calibration_half"] = best_span_scores([dev[i] for i in fitting], [answers[i] for i in fitting])
    if report:
        scores, em, f1 = graded([answers[i] for i in report], [references(dev[i]) for i in report])
        probabilities = scaling(scores)
        results["cmrc_dev_report_half"] = {
            "questions": len(report),
            "best_span": mean_scores(em, f1),
            "api": answered_scores(probabilities, em, f1, threshold),
            "reliability": reliability(probabilities, em > 0),
            "score_ece": reliability(scores, em > 0)["ece"],  # the raw score read as a probability
            "wrong_passage": _wrong_passage(predict, config, [dev[i] for i in report], scaling, threshold),
            "short_passages": _short_passages(predict, config, [dev[i] for i in report], scaling, threshold),
        }
        results["cmrc_dev_report_half"]["traditional"] = _in_traditional_characters(predict, config, [dev[i] for i in report])
    handwritten = read_handwritten()[:limit]
    answers = answer_all(predict, config, [q.question for q in handwritten], [q.passages for q in handwritten])
    scores, em, f1 = graded(answers, [q.answers for q in handwritten])
    results["handwritten"] = {
        "questions": len(handwritten),
        **mean_scores(em, f1),
        "api": answered_scores(scaling(scores), em, f1, threshold),
    }
    webqa = read_webqa(data_dir / WEBQA)[:limit]
    for aggregate in ("max", "sum"):
        answers = answer_all(
            predict, config, [q.question for q in webqa], [q.passages for q in webqa], aggregate, desc=f"webqa {aggregate}"
        )
        results[f"webqa_{aggregate}"] = webqa_score([best_text(a) for a in answers], [q.answers for q in webqa])
        if aggregate == "max" and webqa:  # what the service answers over many passages: is its probability right?
            probabilities = scaling(best_scores(answers))
            right = [best_text(a) in q.answers for a, q in zip(answers, webqa)]  # WebQA's accuracy: exact match
            results["webqa_max"]["reliability"] = reliability(probabilities, right)
    return results


def _in_traditional_characters(predict: WindowPredictor, config: Config, examples: Sequence[QAExample]) -> dict:
    """Best-span EM/F1 with question, passage and references written in Traditional characters
    (OpenCC ``s2t``). The reader learned from Simplified text."""
    answers = answer_all(
        predict, config, [to_traditional(e.question) for e in examples], [[to_traditional(e.context)] for e in examples],
        desc="traditional",
    )
    return cmrc_scores([best_text(a) for a in answers], [[to_traditional(r) for r in references(e)] for e in examples])


def _headline(metrics: dict) -> dict:
    dev, report = metrics.get("cmrc_dev"), metrics.get("cmrc_dev_report_half")
    headline = {"em": dev["em"], "f1": dev["f1"]} if dev else {}
    if report:
        api = report["api"]
        headline.update(api_em=api["em"], api_f1=api["f1"], answered=api["answered"], ece=report["reliability"]["ece"])
        if report.get("short_passages"):
            headline["short_api_f1"] = report["short_passages"]["api"]["f1"]
    if "handwritten" in metrics:
        headline["handwritten_f1"] = metrics["handwritten"]["f1"]
    if "webqa_sum" in metrics:
        headline["webqa"] = metrics["webqa_sum"]["score"]
    return headline


def _print_report(metrics: dict, calibration: dict | None) -> None:
    dev = metrics["cmrc_dev"]
    print(f"\nCMRC 2018 dev ({dev['questions']} questions), best span: EM {dev['em']:.2f}  F1 {dev['f1']:.2f}")
    fitting = metrics.get("cmrc_dev_calibration_half")
    if fitting:
        print(f"dev calibration half ({fitting['questions']} questions), best span: EM {fitting['em']:.2f}  F1 {fitting['f1']:.2f}")
    report = metrics.get("cmrc_dev_report_half")
    if report:
        api, table = report["api"], report["reliability"]
        print(
            f"dev report half ({report['questions']} questions): best span EM {report['best_span']['em']:.2f} "
            f"F1 {report['best_span']['f1']:.2f}; as the API answers (probability ≥ {api['threshold']}): "
            f"answers {api['answered']:.1%}, {api['em_answered']}% of them exact, EM {api['em']:.2f}  F1 {api['f1']:.2f}"
        )
        fitted = "calibrated: " + calibration["fitted_on"] if calibration else "uncalibrated: probability = score"
        wrong = report.get("wrong_passage")
        if wrong:
            print(
                f"asked of another passage (no answer there): withheld {wrong['withheld']:.1%}, "
                f"mean probability {wrong['mean_probability']:.3f}"
            )
        short = report.get("short_passages")
        if short:
            api = short["api"]
            print(
                f"the answer's sentence alone ({short['mean_chars']:.0f} characters on average): best span EM "
                f"{short['best_span']['em']:.2f} F1 {short['best_span']['f1']:.2f}; the API answers {api['answered']:.1%}, "
                f"EM {api['em']:.2f}  F1 {api['f1']:.2f}; ECE {short['ece']:.4f}"
            )
            if "other_sentence" in short:
                print(f"another sentence of the passage (no answer there): withheld {short['other_sentence']['withheld']:.1%}")
        traditional = report.get("traditional")
        if traditional:
            print(f"the same in Traditional characters, best span: EM {traditional['em']:.2f}  F1 {traditional['f1']:.2f}")
        print(f"probability of an exact match ({fitted}): ECE {table['ece']:.4f} (the raw score's: {report['score_ece']:.4f})")
        for line in reliability_lines(table):
            print(f"  {line}")
    handwritten = metrics.get("handwritten")
    if handwritten:
        api = handwritten["api"]
        print(
            f"hand-written questions ({handwritten['questions']}): best span EM {handwritten['em']:.2f}  "
            f"F1 {handwritten['f1']:.2f}; the API answers {api['answered']:.1%}, EM {api['em']:.2f}  F1 {api['f1']:.2f}"
        )
    for aggregate in ("max", "sum"):
        w = metrics[f"webqa_{aggregate}"]
        print(f"WebQA sample, {aggregate} over passages: accuracy {w['accuracy']:.4f}  F1 {w['f1']:.4f}  score {w['score']:.4f}")
    webqa = metrics["webqa_max"].get("reliability")
    if webqa:
        print(f"WebQA sample, probability of the answer over all passages (max): ECE {webqa['ece']:.4f}")
        for line in reliability_lines(webqa):
            print(f"  {line}")


def choice_figures(predict: WindowPredictor, config: Config, data_dir: Path, limit: int | None = None) -> dict:
    """What a version is chosen by (docs/qa.md): trial F1, EM and short-passage F1
    (:func:`selection_scores`), best-span EM/F1 on dev's calibration half, the mean of trial F1,
    trial short-passage F1 and calibration-half F1, and the answers to the API example."""
    trial = selection_scores(predict, config, read_squad(data_dir / SELECT)[:limit])
    dev = read_squad(data_dir / TESTS)[:limit]
    fitting = [dev[i] for i in dev_halves(dev)[0]]
    calibration_half = best_span_scores(fitting, answer_in_context(predict, config, fitting, desc="cmrc dev, calibration half"))
    example = answer_all(predict, config, [EXAMPLE_QUESTION], [EXAMPLE_PASSAGES])[0]
    return {
        "cmrc_trial": trial,
        "cmrc_dev_calibration_half": calibration_half,
        "mean_f1": round((trial["f1"] + trial["short_f1"] + calibration_half["f1"]) / 3, 2),
        "example": [{"answer": a.text, "score": round(float(a.score), 3)} for a in example[:3]],
    }


def evaluate(args: argparse.Namespace) -> None:
    if args.runs and not args.selection:
        raise ValueError("--runs measures trained runs for the choice of a version: use it with --selection")
    if args.runs:  # averaged in-process, as export --ensemble would average them (float tables)
        model, config = averaged_reader(args.runs)
        predict, measured = _in_process_predictor(model, config), {"runs": [str(r) for r in args.runs]}
    else:
        version_dir = model_store.resolve_version(Path(args.model_root) / TASK, args.version)
        config = config_of_export(version_dir)
        predict, measured = saved_model_predictor(version_dir), {"model": str(version_dir)}
    if args.selection:
        figures = choice_figures(predict, config, Path(args.data_dir), args.limit)
        print(json.dumps({"task": TASK, **measured, **figures}, ensure_ascii=False))
        return
    calibration = model_store.read_manifest(version_dir).get("calibration")
    metrics = evaluate_saved_model(predict, Path(args.data_dir), config, calibration, args.limit)
    _print_report(metrics, calibration)
    report = metrics.get("cmrc_dev_report_half")
    if args.reliability_plot and report:
        title = f"QA answer probability, qa/{version_dir.name}"
        plot_reliability({"CMRC dev, report half": report["reliability"]}, args.reliability_plot, title)
    print(json.dumps({"task": TASK, "model": str(version_dir), **_headline(metrics), **metrics}))


def calibrate(args: argparse.Namespace) -> None:
    """Fit an exported reader's decoding (:func:`fit_nested_ratio`), calibration and answer
    threshold, and store them with the metrics they give in its manifest (what export does for a
    new version)."""
    version_dir = model_store.resolve_version(Path(args.model_root) / TASK, args.version)
    config = config_of_export(version_dir)
    config.nested_answer_ratio = None  # fitted again on the best spans as they are
    predict = saved_model_predictor(version_dir)
    dev = dev_answers(predict, Path(args.data_dir), config, args.limit)
    config.nested_answer_ratio, choices = fit_nested_ratio(dev)
    for row in choices:
        print(f"calibration half, prefer_nested ratio {row['ratio']}: EM {row['em']:.2f}  F1 {row['f1']:.2f}")
    dev = decoded(dev, config.nested_answer_ratio)
    calibration = fit_calibration(dev)
    for row in calibration["thresholds"]:
        print(
            f"calibration half, probability ≥ {row['threshold']:.2f}: answers {row['answered']:.1%} "
            f"({row['em_answered']}% exact), EM {row['em']:.2f}  F1 {row['f1']:.2f}"
        )
    print(f"slope {calibration['slope']:.4f}, intercept {calibration['intercept']:.4f}; answer threshold {calibration['answer_threshold']}")
    metrics = evaluate_saved_model(predict, Path(args.data_dir), config, calibration, args.limit, dev)
    _print_report(metrics, calibration)
    model_store.update_manifest(
        version_dir, decoding={"nested_answer_ratio": config.nested_answer_ratio}, calibration=calibration, metrics=metrics
    )
    print(json.dumps({"task": TASK, "calibrated": str(version_dir), **_headline(metrics)}))


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parsers = add_task_commands(
        parser, TASK, train=train, export=export, evaluate=evaluate,
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
        "--init-from", metavar="VERSION_DIR", default=None,
        help="start from an exported version's weights (e.g. models/qa/2) to train it further; give the options "
        "it was trained with, so the vocabularies and shapes match",
    )
    p.add_argument(
        "--crop-rate", type=float, default=0.0,
        help="share of questions that also train on short sentence crops of their passage (with and without the answer)",
    )
    p.add_argument(
        "--word2vec-epochs", type=int, default=5,
        help="start the word embeddings from skip-gram word2vec over the training passages and questions "
        "(this many epochs; 0: learned from scratch)",
    )
    p.add_argument(
        "--word2vec-extra", action="append", default=[], choices=sorted(UNLABELLED_SOURCES),
        help="also train the word2vec vectors on another task's training text in the shared data folder "
        "(repeatable): ner (news sentences), headline (scientific abstracts and titles)",
    )
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
        help="another SQuAD-format training file under --data-dir (repeatable), e.g. drcd/DRCD_dev.json",
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
    parsers.export.add_argument(
        "--ensemble", nargs="+", default=[], metavar="RUN_DIR",
        help="more trained runs to export with --run-dir as one reader: start/end logits averaged",
    )
    parsers.export.add_argument(
        "--int8-embeddings", action="store_true", help="store the character and word tables as int8 (a quarter of the size)"
    )
    p = parsers.commands.add_parser(
        "calibrate", parents=[parsers.shared],
        help="fit an exported reader's probability calibration and answer threshold into its manifest",
    )
    p.add_argument("--version", type=int, default=None, help="default: the highest present")
    p.add_argument("--limit", type=int, default=None, help="only the first N questions of each set")
    p.set_defaults(func=calibrate)
