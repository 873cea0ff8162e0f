"""SavedModel signatures called through TensorFlow Serving's REST API instead of in this process.

A task whose backend is ``tfserving`` gets a :class:`RemoteSavedModel` in place of the loaded
SavedModel: its ``signatures[name]`` take and return ``tf.Tensor`` s exactly like the in-process
ones, so the task routes do not know which backend serves them. The manifest (limits, decoding
defaults, warm-up inputs) is still read from this service's model store, which is the directory
TensorFlow Serving loads too.
"""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import tensorflow as tf


class TFServingError(RuntimeError):
    """TensorFlow Serving could not be reached or answered with an error (its message included)."""


class TFServingClient:
    """A pooled HTTP client to one TensorFlow Serving instance, shared by all tasks.

    A call whose connection fails (refused, reset, a keep-alive connection the server had
    closed) is repeated up to ``retries`` times: predictions have no side effects.
    """

    def __init__(self, url: str, timeout_s: float, retries: int, max_connections: int = 32):
        self.retries = retries
        self.http = httpx.Client(
            base_url=url,
            timeout=timeout_s,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        )

    def post(self, path: str, body: dict) -> httpx.Response:
        failures = 0
        while True:
            try:
                return self.http.post(path, json=body)
            except httpx.TransportError as exc:
                failures += 1
                if failures > self.retries:
                    raise TFServingError(f"{path}: {type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        self.http.close()


def tensor_to_json(tensor: tf.Tensor) -> Any:
    """A tensor in TensorFlow Serving's JSON encoding (strings as UTF-8 text)."""
    array = tensor.numpy()
    if array.dtype == object:  # tf.string: TF Serving takes UTF-8 text as JSON strings
        return np.vectorize(lambda b: b.decode("utf-8"), otypes=[object])(array).tolist() if array.size else array.tolist()
    return array.tolist()


def _to_tensor(value: Any) -> tf.Tensor:
    array = np.asarray(value)
    if array.dtype == np.float64:  # JSON has one number type; the models compute in float32
        array = array.astype(np.float32)
    return tf.constant(array)


class RemoteSignature:
    def __init__(self, client: TFServingClient, model: str, version: int, signature: str):
        self.client, self.signature = client, signature
        self.path = f"/v1/models/{model}/versions/{version}:predict"

    def __call__(self, **inputs: tf.Tensor) -> dict[str, tf.Tensor]:
        body = {"signature_name": self.signature, "inputs": {name: tensor_to_json(value) for name, value in inputs.items()}}
        response = self.client.post(self.path, body)
        if response.status_code != 200:
            try:
                message = response.json().get("error", response.text)
            except ValueError:
                message = response.text
            raise TFServingError(f"{self.path}: HTTP {response.status_code}: {message}")
        outputs = response.json()["outputs"]
        if not isinstance(outputs, dict):
            raise TFServingError(f"{self.path}: expected named outputs, got a single unnamed one")
        return {name: _to_tensor(value) for name, value in outputs.items()}


class _Signatures(dict):
    def __init__(self, client: TFServingClient, model: str, version: int):
        super().__init__()
        self._args = (client, model, version)

    def __missing__(self, signature: str) -> RemoteSignature:
        self[signature] = RemoteSignature(*self._args, signature)
        return self[signature]


class RemoteSavedModel:
    """Version ``version`` of ``model`` on a TensorFlow Serving instance, as ``.signatures[name]``."""

    def __init__(self, client: TFServingClient, model: str, version: int):
        self.signatures = _Signatures(client, model, version)
