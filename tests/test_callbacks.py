"""The shared training callbacks, on a one-weight model whose training path is known."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from training.callbacks import standard_callbacks


class LastBatchWeight(keras.callbacks.Callback):
    """The weight the optimizer left after the last batch of each epoch (what training goes on from)."""

    def __init__(self):
        super().__init__()
        self.values = []

    def on_train_batch_end(self, batch, logs=None):
        self.last = float(self.model.get_weights()[0][0, 0])

    def on_epoch_end(self, epoch, logs=None):
        self.values.append(self.last)


def output_as_loss(y_true, y_pred):
    return keras.ops.mean(y_pred)


@pytest.mark.parametrize("swap_ema", [False, True])
def test_held_out_metrics_see_the_moving_average_when_asked(tmp_path, swap_ema):
    # y = w·x with x = 1 and loss = mean(y): a constant gradient, so w falls by the learning
    # rate every step and its moving average lags behind (stays larger).
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="ones")])
    model.compile(keras.optimizers.SGD(0.1, use_ema=swap_ema, ema_momentum=0.5), loss=output_as_loss)
    seen = []

    def held_out() -> dict[str, float]:
        seen.append(float(model.get_weights()[0][0, 0]))
        return {"score": -len(seen)}  # never improves after the first epoch

    trained = LastBatchWeight()
    callbacks = standard_callbacks(tmp_path, held_out, monitor="val_score", patience=5, swap_ema=swap_ema)
    model.fit(np.ones((8, 1)), np.zeros((8, 1)), batch_size=2, epochs=2, verbose=0, callbacks=[*callbacks, trained])

    assert trained.values == pytest.approx([1 - 0.1 * 4, 1 - 0.1 * 8])  # training went on from its own weights
    if swap_ema:
        assert all(s > t + 1e-3 for s, t in zip(seen, trained.values))
    else:
        assert seen == pytest.approx(trained.values)
    model.load_weights(tmp_path / "best.weights.h5")
    assert float(model.get_weights()[0][0, 0]) == pytest.approx(seen[0])  # the best weights are the ones scored
