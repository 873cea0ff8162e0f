"""A linear-chain conditional random field for sequence tagging.

The layer owns the tag-transition scores; the per-position tag scores
("emissions") come from whatever encoder sits below it. ``call`` passes the
emissions through unchanged so the layer composes like any other Keras layer;
training uses :class:`CRFNegativeLogLikelihood` and inference uses
:meth:`CRF.decode` (Viterbi), both written as TensorFlow graph ops so they run
inside an exported SavedModel.

Masks are boolean ``[batch, time]`` and must be prefixes (padding at the end),
which is what padded batches look like. Every sequence has at least one step.

Optional constraints (``allowed_transitions``, ``allowed_starts``, ``allowed_ends``) rule tag
paths out entirely, e.g. ``O → I-PER`` in BIO: they get a score of -10,000 in training and
decoding alike, so the partition function sums over allowed paths only and Viterbi never
returns a forbidden one (as long as the sequence has an allowed path at all).
"""

from __future__ import annotations

import keras
import tensorflow as tf

FORBIDDEN = -1e4  # finite, so that log-sum-exp over a row of forbidden moves stays finite


@keras.saving.register_keras_serializable(package="training")
class CRF(keras.layers.Layer):
    """Transition, start and end scores of a linear-chain CRF over ``num_tags`` tags."""

    def __init__(
        self,
        num_tags: int,
        allowed_transitions: list[list[bool]] | None = None,
        allowed_starts: list[bool] | None = None,
        allowed_ends: list[bool] | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_tags = num_tags
        self.allowed_transitions = allowed_transitions
        self.allowed_starts = allowed_starts
        self.allowed_ends = allowed_ends
        self.supports_masking = True

    def build(self, input_shape):
        # float32 under any dtype policy: decoding reads them outside the layer's call, where
        # Keras does not cast a float16-stored variable (``training.publishing.float16_weights``).
        self.transitions = self.add_weight(
            name="transitions", shape=(self.num_tags, self.num_tags), initializer="glorot_uniform", dtype="float32"
        )
        self.start_transitions = self.add_weight(
            name="start_transitions", shape=(self.num_tags,), initializer="zeros", dtype="float32"
        )
        self.end_transitions = self.add_weight(name="end_transitions", shape=(self.num_tags,), initializer="zeros", dtype="float32")

    def call(self, emissions, mask=None):
        # A new tensor, so the incoming Keras mask is consumed here: Keras would
        # otherwise multiply the per-sequence loss by a per-step mask.
        return tf.identity(emissions)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "num_tags": self.num_tags,
            "allowed_transitions": self.allowed_transitions,
            "allowed_starts": self.allowed_starts,
            "allowed_ends": self.allowed_ends,
        }

    def potentials(self, temperature: float | tf.Tensor = 1.0) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Transition ``[from, to]``, start and end scores with the constraints applied, divided
        by ``temperature``."""

        def constrain(scores, allowed):
            scores = tf.convert_to_tensor(scores)
            return scores if allowed is None else tf.where(tf.constant(allowed), scores, FORBIDDEN)

        return (
            constrain(self.transitions / temperature, self.allowed_transitions),
            constrain(self.start_transitions / temperature, self.allowed_starts),
            constrain(self.end_transitions / temperature, self.allowed_ends),
        )

    # -- scores ---------------------------------------------------------------

    def sequence_score(self, emissions: tf.Tensor, tags: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        """Unnormalised score ``[batch]`` of the given tag paths."""
        emissions, mask = tf.cast(emissions, tf.float32), tf.cast(mask, tf.float32)
        tags = tf.cast(tags, tf.int32)
        transitions, starts, ends = self.potentials()
        emitted = tf.gather(emissions, tags, batch_dims=2) * mask
        moved = tf.gather_nd(transitions, tf.stack([tags[:, :-1], tags[:, 1:]], axis=-1)) * mask[:, 1:]
        last = tf.cast(tf.reduce_sum(mask, axis=1), tf.int32) - 1
        last_tags = tf.gather(tags, last, batch_dims=1)
        return (
            tf.gather(starts, tags[:, 0])
            + tf.reduce_sum(emitted, axis=1)
            + tf.reduce_sum(moved, axis=1)
            + tf.gather(ends, last_tags)
        )

    def log_partition(self, emissions: tf.Tensor, mask: tf.Tensor, temperature: float | tf.Tensor = 1.0) -> tf.Tensor:
        """``log Σ_paths exp(score(path) / temperature)`` per sequence ``[batch]`` (forward algorithm).

        A temperature above 1 flattens the distribution over paths (calibration: the best path
        stays the best, its probability and every marginal come nearer the truth's frequency)."""
        emissions, steps = self._time_major(emissions / temperature, mask)
        transitions, starts, ends = self.potentials(temperature)

        def step(alpha, inputs):
            emission, valid = inputs
            nxt = tf.reduce_logsumexp(alpha[:, :, None] + transitions[None], axis=1) + emission
            return tf.where(valid[:, None], nxt, alpha)

        alpha = tf.foldl(step, (emissions[1:], steps[1:]), initializer=starts + emissions[0])
        return tf.reduce_logsumexp(alpha + ends, axis=1)

    def decode(self, emissions: tf.Tensor, mask: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Viterbi: the best tag path ``[batch, time]`` (0 on padding) and its score ``[batch]``."""
        time_major, steps = self._time_major(emissions, mask)
        transitions, starts, ends = self.potentials()
        identity = tf.broadcast_to(tf.range(self.num_tags), tf.shape(time_major[0]))

        def step(carry, inputs):
            delta, _ = carry
            emission, valid = inputs
            candidates = delta[:, :, None] + transitions[None]
            nxt = tf.reduce_max(candidates, axis=1) + emission
            backpointer = tf.argmax(candidates, axis=1, output_type=tf.int32)
            # A padded step keeps the scores and points every tag at itself, so
            # the backtrack walks through padding unchanged.
            return tf.where(valid[:, None], nxt, delta), tf.where(valid[:, None], backpointer, identity)

        first = starts + time_major[0]
        deltas, backpointers = tf.scan(
            step, (time_major[1:], steps[1:]), initializer=(first, identity)
        )
        final = tf.concat([first[None], deltas], axis=0)[-1] + ends
        best_last = tf.argmax(final, axis=1, output_type=tf.int32)
        earlier = tf.scan(
            lambda tag, pointers: tf.gather(pointers, tag, batch_dims=1),
            backpointers,
            initializer=best_last,
            reverse=True,
        )
        path = tf.transpose(tf.concat([earlier, best_last[None]], axis=0))
        path = tf.where(tf.cast(mask, tf.bool), path, tf.zeros_like(path))
        return path, tf.reduce_max(final, axis=1)

    def span_log_marginals(
        self,
        emissions: tf.Tensor,
        mask: tf.Tensor,
        path: tf.Tensor,
        rows: tf.Tensor,
        starts: tf.Tensor,
        ends: tf.Tensor,
        continuations: tf.Tensor,
        temperature: float | tf.Tensor = 1.0,
    ) -> tf.Tensor:
        """``log P(span)`` ``[E]`` for spans of the tag paths ``path`` ``[batch, time]``: the
        probability, under the CRF, that sequence ``rows[i]`` has exactly the tags of ``path``
        on ``starts[i] ≤ t < ends[i]`` and, at ``ends[i]``, none of the tags marked in
        ``continuations[i]`` ``[E, num_tags]`` (those that would extend the span, e.g. I-PER).

        That is the marginal probability of one entity, exactly (Culotta & McCallum 2004): the
        partition function of the paths that satisfy the constraint over the full one. All
        spans run as one batch of constrained forward passes. ``temperature`` as in
        :meth:`log_partition`.
        """
        emissions = tf.cast(emissions, tf.float32)
        log_z = tf.gather(self.log_partition(emissions, mask, temperature), rows)
        span_emissions = tf.gather(emissions, rows)
        positions = tf.range(tf.shape(emissions)[1])[None, :]
        inside = (positions >= starts[:, None]) & (positions < ends[:, None])  # [E, T]
        required = tf.one_hot(tf.gather(path, rows), self.num_tags) > 0  # [E, T, K]
        forbidden = (inside[..., None] & ~required) | ((positions == ends[:, None])[..., None] & continuations[:, None, :])
        # FORBIDDEN times the temperature stays FORBIDDEN after log_partition divides by it.
        constrained = span_emissions + tf.where(forbidden, FORBIDDEN * temperature, 0.0)
        return self.log_partition(constrained, tf.gather(mask, rows), temperature) - log_z

    def negative_log_likelihood(self, emissions: tf.Tensor, tags: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        """``-log p(tags | emissions)`` per sequence ``[batch]``."""
        return self.log_partition(emissions, mask) - self.sequence_score(emissions, tags, mask)

    @staticmethod
    def _time_major(emissions, mask):
        emissions = tf.transpose(tf.cast(emissions, tf.float32), [1, 0, 2])
        return emissions, tf.transpose(tf.cast(mask, tf.bool))


class CRFNegativeLogLikelihood(keras.losses.Loss):
    """Keras loss for a model whose output is the emissions fed to ``crf``.

    ``y_true`` holds tag ids with ``-1`` on padding; the mask is read from it.
    """

    def __init__(self, crf: CRF, name: str = "crf_nll", **kwargs):
        super().__init__(name=name, **kwargs)
        self.crf = crf

    def call(self, y_true, y_pred):
        y_true = tf.cast(y_true, tf.int32)
        mask = y_true >= 0
        return self.crf.negative_log_likelihood(y_pred, tf.maximum(y_true, 0), mask)
