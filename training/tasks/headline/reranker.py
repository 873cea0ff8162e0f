"""Noisy-channel reranking: the finished beam reordered by how well each headline explains its
text under a reverse (headline → text) model, ``log P(y|x) / lp(y) + weight · log P(x|y)``.

After Yu et al., "The Neural Noisy Channel" (ICLR 2017), applied to the forward model's final
beam rather than during the search. The beam often holds a better headline than its first
(docs/headline.md); the forward model alone cannot tell which, the reverse one can see that a
headline leaves the text's subject unexplained. Both networks read the same character
vocabulary, so a candidate's token ids are the reverse model's source ids as they are.
"""

from __future__ import annotations

import tensorflow as tf

from training.decoding import Hypotheses
from training.tasks.headline.backbone import HeadlineSeq2Seq
from training.tasks.headline.config import END, PAD


# Candidates scored per pass: bounds the [rows, text length, vocabulary] logits held at once
# (32 × 160 × 4,116 floats, 84 MB) whatever the batch and beam width; fewer rows per pass cost time
# (each pass runs the LSTM over the whole text).
ROWS_PER_PASS = 32


def text_log_probs(reverse: HeadlineSeq2Seq, text: tf.Tensor, candidates: tf.Tensor) -> tf.Tensor:
    """``log P(text | candidate)`` ``[N, K]`` for UTF-8 texts ``[N]`` and candidate ids ``[N, K, T]``,
    the text cut to the reverse model's ``max_title_tokens`` as in its training."""
    n, k = tf.shape(candidates)[0], tf.shape(candidates)[1]
    source = tf.reshape(candidates, [n * k, -1])[:, : reverse.config.max_source_chars]
    source = tf.where(source > END, source, PAD)  # the end token (and padding after it) → padding
    source = tf.pad(source, [[0, 0], [0, 1]])  # as encode_text: an empty candidate keeps a time step
    decoder_input, target = (tf.repeat(ids, k, axis=0) for ids in reverse.decoder_ids(text))

    def in_passes(rows: tf.Tensor) -> tf.Tensor:  # [R, L] → [passes, ROWS_PER_PASS, L], padded rows score 0
        rows = tf.pad(rows, [[0, -tf.shape(rows)[0] % ROWS_PER_PASS], [0, 0]])
        return tf.reshape(rows, [-1, ROWS_PER_PASS, tf.shape(rows)[1]])

    def score(inputs: tuple[tf.Tensor, tf.Tensor, tf.Tensor]) -> tf.Tensor:
        source, decoder_input, target = inputs
        return tf.reduce_sum(tf.where(target != PAD, reverse.score(source, decoder_input, target), 0.0), axis=1)

    totals = tf.map_fn(
        score, (in_passes(source), in_passes(decoder_input), in_passes(target)),
        fn_output_signature=tf.float32, parallel_iterations=1,
    )
    return tf.reshape(tf.reshape(totals, [-1])[: n * k], [n, k])


def rerank(hypotheses: Hypotheses, text_log_probs: tf.Tensor, weight: float) -> Hypotheses:
    """``hypotheses`` reordered, best first, by ``scores + weight · text_log_probs``, which become
    their scores."""
    scores = hypotheses.scores + weight * text_log_probs
    order = tf.argsort(scores, axis=1, direction="DESCENDING", stable=True)
    return Hypotheses(*(tf.gather(field, order, batch_dims=1) for field in (*hypotheses[:3], scores)))
