"""The DGCNN reader: char and jieba-word embeddings, match features, gated dilated convolutions
with attention; and ensembles of readers averaged into one."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import keras
from keras import ops

from training.layers import AttentionPooling1D, GatedDilatedResidualConv1D, SinusoidalPositionEmbedding
from training.runs import load_best
from training.tasks.qa.config import Config


def _unit(x):
    return x / (ops.sqrt(ops.sum(ops.square(x), axis=-1, keepdims=True)) + 1e-6)


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
    config = Config.of_run(run_dir)
    return load_best(build_model(config, name), run_dir), config


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
    config, *others = [Config.of_run(d) for d in run_dirs]
    differing = [f for f in PREPROCESSING if any(getattr(c, f) != getattr(config, f) for c in others)]
    if differing:
        raise ValueError(f"runs averaged into one reader must share {', '.join(differing)}: {', '.join(map(str, run_dirs))}")
    return build_ensemble([load_reader(Path(d), f"{prefix}_{i}")[0] for i, d in enumerate(run_dirs)]), config
