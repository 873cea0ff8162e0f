"""Word dropout for id inputs: in training, some real tokens are shown as out-of-vocabulary."""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="training")
class TokenDropout(keras.layers.Layer):
    """Replaces a random ``rate`` of the ids ``[B, L, ...]`` by ``oov_id`` while training.

    Word dropout (Lample et al., 2016): names in new text are often rare or
    unseen, so the tagger must learn to read them from their context and the
    other features instead of memorising ids. Ids equal to ``mask_id``
    (padding) are never touched; outside training the layer is the identity.
    """

    def __init__(self, rate: float, oov_id: int = 1, mask_id: int = 0, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.rate = rate
        self.oov_id = oov_id
        self.mask_id = mask_id
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, ids, training: bool = False):
        if not training or self.rate <= 0:
            return ids
        drop = keras.random.uniform(keras.ops.shape(ids), seed=self.seed_generator) < self.rate
        drop = keras.ops.logical_and(drop, keras.ops.not_equal(ids, self.mask_id))
        return keras.ops.where(drop, keras.ops.cast(self.oov_id, ids.dtype), ids)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "rate": self.rate,
            "oov_id": self.oov_id,
            "mask_id": self.mask_id,
            "seed": self.seed,
        }
