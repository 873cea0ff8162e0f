"""Writing a SavedModel for the store (``training/publishing.py``): one copy of each graph."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from tensorflow.core.protobuf import saved_model_pb2  # noqa: E402

from training.publishing import write_saved_model  # noqa: E402


def _function_names(saved_model_dir) -> list[str]:
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((saved_model_dir / "saved_model.pb").read_bytes())
    return [f.signature.name for f in proto.meta_graphs[0].graph_def.library.function]


def test_each_endpoint_is_saved_once_with_its_tables_and_variables(tmp_path):
    inputs = keras.Input((3,), dtype="int64")
    ids = keras.layers.IntegerLookup(vocabulary=[7, 8, 9], mask_token=0)(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Embedding(5, 4)(ids)))
    table = tf.constant(np.arange(1000, dtype=np.float32))

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.int64, name="x")])
    def serve(x):
        return {"y": model(x) + tf.reduce_sum(table)}

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.int64, name="x")])
    def ids_of(x):
        return {"ids": model.layers[1](x)}

    staged = write_saved_model(model, serve, tmp_path / "task", {"ids_of": ids_of})

    names = _function_names(staged)
    assert sum(n.startswith("__inference_serve_") for n in names) == 1, names
    assert sum(n.startswith("__inference_ids_of_") for n in names) == 1, names
    loaded = tf.saved_model.load(str(staged))
    x = tf.constant([[7, 9, 4]], tf.int64)
    np.testing.assert_allclose(loaded.signatures["serving_default"](x=x)["y"], serve(x)["y"], rtol=1e-6)
    np.testing.assert_array_equal(loaded.signatures["ids_of"](x=x)["ids"], [[2, 4, 1]])  # 0 the mask, 1 out of vocabulary
    assert len(loaded._all_variables) == len(model.weights)
