"""Several trained generators searched as one: at every step the beam extends by the members'
mixture of next-token distributions, log((P₁ + … + Pₙ) / n), in the first member's vocabulary.

Members trained with another seed hold out other pairs, so their vocabularies may order (and,
for rare characters, choose) characters differently: each member reads the first member's ids
through a table of its own ids, and its distribution is read back the same way. A character the
member does not know gets probability 0 from it (the other members still propose it).
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf
from keras import ops

from training.tasks.headline.backbone import HeadlineSeq2Seq
from training.tasks.headline.config import UNK, Config


class HeadlineEnsemble:
    """``members`` (:class:`HeadlineSeq2Seq`) with the interface the searches and the serving
    function use: ``config``, ``encode_text``, ``decode_tokens`` (the first member's), ``encode``,
    ``step`` and ``__call__`` (teacher forcing) mixed over the members."""

    def __init__(self, members: Sequence[HeadlineSeq2Seq]):
        if len({m.config.max_source_chars for m in members}) > 1:
            raise ValueError("ensemble members must read the same number of source characters")
        self.members = list(members)
        self.config: Config = members[0].config
        # [V_first] → each member's id of the same token (UNK where it has none).
        id_maps = [_id_map(self.config, m.config) for m in members]
        self._to_member = [tf.constant(ids, tf.int32) for ids in id_maps]
        self._known = [tf.constant([i < 4 or to != UNK for i, to in enumerate(ids)]) for ids in id_maps]

    @property
    def primary(self) -> HeadlineSeq2Seq:
        return self.members[0]

    def encode_text(self, text: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return self.primary.encode_text(text)

    def decode_tokens(self, tokens: tf.Tensor) -> tf.Tensor:
        return self.primary.decode_tokens(tokens)

    def encode(self, source_ids: tf.Tensor) -> list[dict]:
        return [m.encode(tf.gather(ids, source_ids)) for m, ids in zip(self.members, self._to_member)]

    def step(self, tokens: tf.Tensor, states: list[dict]) -> tuple[tf.Tensor, list[dict]]:
        steps = [m.step(tf.gather(ids, tokens), s) for m, ids, s in zip(self.members, self._to_member, states)]
        return self._mix([log_probs for log_probs, _ in steps]), [state for _, state in steps]

    def __call__(self, inputs: tuple[tf.Tensor, tf.Tensor], training: bool = False) -> tf.Tensor:
        source_ids, decoder_input_ids = inputs
        return self._mix([
            m((tf.gather(ids, source_ids), tf.gather(ids, decoder_input_ids)), training=False)
            for m, ids in zip(self.members, self._to_member)
        ])

    def _mix(self, member_log_probs: list[tf.Tensor]) -> tf.Tensor:
        """Each member's ``[..., V_member]`` read at the first member's ids, mixed: ``[..., V_first]``."""
        aligned = [
            tf.where(known, tf.gather(log_probs, ids, axis=-1), float("-inf"))
            for log_probs, ids, known in zip(member_log_probs, self._to_member, self._known)
        ]
        return ops.logsumexp(ops.stack(aligned), axis=0) - tf.math.log(float(len(aligned)))


def _id_map(first: Config, member: Config) -> list[int]:
    """For each of ``first``'s token ids, ``member``'s id of the same token (UNK where it has none)."""
    member_id = {char: i + 4 for i, char in enumerate(member.chars)}
    return [*range(4), *(member_id.get(char, UNK) for char in first.chars)]
