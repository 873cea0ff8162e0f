"""What :class:`~model_serving_client.Client` and :class:`~model_serving_client.AsyncClient` share:
the endpoints (each a :class:`Call`), the retry decisions and the parsing of answers and errors.
The two clients only differ in how they send a request and how they wait."""

from __future__ import annotations

import base64
import os
import random
import sys
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence, overload

import httpx
from pydantic import BaseModel

from model_serving_client import errors, types

DEFAULT_URL = "http://127.0.0.1:8000"
URL_VARIABLE, KEY_VARIABLE = "MODEL_SERVING_URL", "MODEL_SERVING_API_KEY"
RETRIED_STATUSES = (429, 503)


@dataclass(frozen=True)
class Call:
    """One API request and the type of its answer."""

    method: str
    path: str
    response: type[BaseModel]
    json: Any = None
    files: list[tuple[str, tuple[str, bytes, str]]] | None = None
    data: dict[str, str] | None = None
    idempotent: bool = True  # predictions are; a reload is not retried after a broken connection


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of 429 and 503 answers (after their ``Retry-After``) and, for idempotent calls, of
    connection errors (after an exponential backoff with full jitter)."""

    max_retries: int = 3
    backoff: float = 0.5  # seconds before the first retry without Retry-After (at most; jittered)
    max_wait: float = 30.0  # a Retry-After longer than this is the caller's to decide: raised at once

    def wait(self, attempt: int, retry_after: float | None) -> float | None:
        """Seconds to wait before retry ``attempt + 1``, or None: do not retry."""
        if attempt >= self.max_retries:
            return None
        if retry_after is not None:
            # A little jitter, so that clients told the same Retry-After do not all come back at once.
            return None if retry_after > self.max_wait else retry_after + random.uniform(0, self.backoff)
        return random.uniform(0, min(self.max_wait, self.backoff * 2**attempt))


@dataclass
class Settings:
    url: str
    api_key: str | None
    timeout: float
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    @classmethod
    def of(cls, url: str | None, api_key: str | None, timeout: float, max_retries: int) -> "Settings":
        return cls(
            url=(url or os.environ.get(URL_VARIABLE) or DEFAULT_URL).rstrip("/"),
            api_key=api_key if api_key is not None else os.environ.get(KEY_VARIABLE),
            timeout=timeout,
            retry=RetryPolicy(max_retries=max_retries),
        )

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}


def _drop_none(**fields: Any) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value is not None}


def encode_flux(flux: Any) -> str:
    """A flux array (numpy, list, array) as the service's ``flux_b64``: base64 of little-endian float32."""
    if hasattr(flux, "astype"):  # numpy, without importing it
        raw = flux.astype("<f4").tobytes()
    else:
        values = array("f", [float(v) for v in flux])
        if sys.byteorder == "big":
            values.byteswap()
        raw = values.tobytes()
    return base64.b64encode(raw).decode("ascii")


def _spectrum(spectrum: Any, encode: bool) -> Any:
    if isinstance(spectrum, dict):  # {"wavelength", "flux", "ivar"?} on its own grid, or {"flux_b64"}
        return {key: value.tolist() if hasattr(value, "tolist") else value for key, value in spectrum.items()}
    if encode:
        return {"flux_b64": encode_flux(spectrum)}
    return spectrum.tolist() if hasattr(spectrum, "tolist") else [float(v) for v in spectrum]


def _upload(item: str | Path | tuple[str, bytes]) -> tuple[str, tuple[str, bytes, str]]:
    name, content = (Path(item).name, Path(item).read_bytes()) if isinstance(item, (str, Path)) else item
    return ("files", (name, content, "application/fits"))


class Endpoints:
    """The service's endpoints, written once; :meth:`_call` (sync or async) sends them."""

    def _call(self, call: Call) -> Any:
        raise NotImplementedError

    # Every prediction takes model=, version= and version_label=: what answers it (default: the
    # task's own model, its traffic split's version or its serving one).

    @overload
    def ner(self, text: str, *, min_probability: float | None = None, model: str | None = None, version: int | None = None, version_label: str | None = None) -> types.NERResponse: ...
    @overload
    def ner(self, text: Sequence[str], *, min_probability: float | None = None, model: str | None = None, version: int | None = None, version_label: str | None = None) -> types.NERBatchResponse: ...

    def ner(self, text, *, min_probability=None, model=None, version=None, version_label=None):
        """Person, location and organisation names in one text (a ``str``) or in several (a list)."""
        if isinstance(text, str):
            body, response = {"text": text}, types.NERResponse
        else:
            body, response = {"texts": list(text)}, types.NERBatchResponse
        body.update(_drop_none(min_probability=min_probability, model=model, version=version, version_label=version_label))
        return self._call(Call("POST", "/v1/ner", response, json=body))

    def qa(
        self,
        question: str,
        passages: Sequence[str],
        *,
        num_candidates: int | None = None,
        min_probability: float | None = None,
        aggregate: Literal["max", "sum"] | None = None,
        model: str | None = None, version: int | None = None, version_label: str | None = None,
    ) -> types.QAResponse:
        """The answer to ``question`` as a span of one of ``passages``, with its calibrated probability.

        ``aggregate="sum"`` ranks an answer by every passage that holds it (for many short passages).
        """
        body = {"question": question, "passages": list(passages)}
        body.update(_drop_none(num_candidates=num_candidates, min_probability=min_probability, aggregate=aggregate))
        body.update(_drop_none(model=model, version=version, version_label=version_label))
        return self._call(Call("POST", "/v1/qa", types.QAResponse, json=body))

    def headline(
        self,
        text: str,
        *,
        num_candidates: int | None = None,
        beam_width: int | None = None,
        max_length: int | None = None,
        model: str | None = None, version: int | None = None, version_label: str | None = None,
    ) -> types.HeadlineResponse:
        """A headline for an abstract (beam search; ``num_candidates`` ranked alternatives)."""
        body = {"text": text, **_drop_none(num_candidates=num_candidates, beam_width=beam_width, max_length=max_length)}
        body.update(_drop_none(model=model, version=version, version_label=version_label))
        return self._call(Call("POST", "/v1/headline", types.HeadlineResponse, json=body))

    def spectra(self, spectra: Sequence[Any], *, encode: bool = True, model: str | None = None, version: int | None = None, version_label: str | None = None) -> types.SpectraResponse:
        """Classify spectra: flux arrays on the model's grid (numpy arrays or lists; sent as base64
        float32 unless ``encode=False``), or dicts ``{"wavelength", "flux", "ivar"?}`` on any grid."""
        body = {"spectra": [_spectrum(s, encode) for s in spectra]}
        body.update(_drop_none(model=model, version=version, version_label=version_label))
        return self._call(Call("POST", "/v1/spectra", types.SpectraResponse, json=body))

    def spectra_files(
        self, files: Sequence[str | Path | tuple[str, bytes]], *, spectrum: bool = False, model: str | None = None, version: int | None = None, version_label: str | None = None
    ) -> types.FitsResponse:
        """Classify the spectra in FITS files (paths, or ``(name, bytes)``); ``spectrum=True`` also
        returns each spectrum as the model read it."""
        uploads = [_upload(item) for item in files]
        choice = _drop_none(model=model, version=version, version_label=version_label)
        data = {**({"spectrum": "true"} if spectrum else {}), **{k: str(v) for k, v in choice.items()}} or None
        return self._call(Call("POST", "/v1/spectra/fits", types.FitsResponse, files=uploads, data=data))

    def models(self) -> types.ModelsResponse:
        """The loaded models: task, version, test metrics, signature, calibration, decoding."""
        return self._call(Call("GET", "/v1/models", types.ModelsResponse))

    # The admin actions below need a key with the ``admin`` scope (docs/serving.md, Versions).

    def reload(self, model: str, version: int | None = None) -> types.ReloadResponse:
        """Serve ``version`` of ``model`` (default: the highest on disk) to callers that name none."""
        body = {"version": version} if version is not None else {}
        return self._call(Call("POST", f"/v1/models/{model}/reload", types.ReloadResponse, json=body, idempotent=False))

    def load_version(self, model: str, version: int) -> types.VersionResponse:
        """Load ``version`` of ``model`` beside the loaded ones."""
        path = f"/v1/models/{model}/versions/{version}/load"
        return self._call(Call("POST", path, types.VersionResponse, idempotent=False))

    def unload_version(self, model: str, version: int) -> types.VersionResponse:
        """Stop answering with ``version`` of ``model``; returns once its requests have finished."""
        path = f"/v1/models/{model}/versions/{version}/unload"
        return self._call(Call("POST", path, types.VersionResponse, idempotent=False))

    def set_label(self, model: str, label: str, version: int) -> types.LabelsResponse:
        """Point ``label`` (e.g. ``"stable"``) of ``model`` at ``version``."""
        path = f"/v1/models/{model}/labels/{label}"
        return self._call(Call("PUT", path, types.LabelsResponse, json={"version": version}))

    def set_traffic(self, model: str, weights: dict[int, int]) -> types.TrafficResponse:
        """Split the callers that name no version by ``weights`` (version → weight; ``{}`` ends the split)."""
        body = {"weights": {str(v): w for v, w in weights.items()}}
        return self._call(Call("PUT", f"/v1/models/{model}/traffic", types.TrafficResponse, json=body))


def build_request(http: httpx.Client | httpx.AsyncClient, call: Call) -> httpx.Request:
    return http.build_request(call.method, call.path, json=call.json, files=call.files, data=call.data)


def next_step(
    settings: Settings, call: Call, attempt: int, response: httpx.Response | None, error: httpx.TransportError | None
) -> tuple[float | None, Any]:
    """After an attempt: ``(seconds, None)`` to retry after waiting, or ``(None, answer)``.
    Raises the error that ends the call."""
    if error is not None:
        wait = settings.retry.wait(attempt, None) if call.idempotent else None
        if wait is None:
            raise errors.ConnectionFailed(f"{call.method} {settings.url}{call.path}: {type(error).__name__}: {error}") from error
        return wait, None
    assert response is not None
    if response.is_success:
        return None, call.response.model_validate_json(response.content)
    failure = api_error(response)
    if response.status_code in RETRIED_STATUSES:
        wait = settings.retry.wait(attempt, failure.retry_after)
        if wait is not None:
            return wait, None
    raise failure


def api_error(response: httpx.Response) -> errors.APIError:
    """The exception for an error answer, from its ``{"error": {...}}`` body (or its status alone)."""
    try:
        detail = response.json()["error"]
        code, message = str(detail["code"]), str(detail["message"])
        fields = [errors.ErrorField(str(f["field"]), str(f["message"])) for f in detail.get("fields") or []]
    except (ValueError, KeyError, TypeError):  # not the service's error shape (a proxy's page, say)
        code, message, fields = "http_error", response.reason_phrase or f"HTTP {response.status_code}", []
    retry_after = response.headers.get("Retry-After")
    return errors.error_class(response.status_code)(
        response.status_code,
        code,
        message,
        fields,
        request_id=response.headers.get("X-Request-ID"),
        retry_after=float(retry_after) if retry_after and retry_after.replace(".", "", 1).isdigit() else None,
    )
