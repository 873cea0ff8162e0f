"""Service configuration, read once from ``APP_*`` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.batching import BatchPolicy
from app.registry import Backend, ServeVersions
from app.tasks.spectra.grid import UNCLASSIFIABLE_MASKED_SHARE
from app.tasks.spectra.pipeline import SpectraLimits

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    # Nested values: APP_BATCHING='{"ner": {"max_batch_size": 1}}' or APP_BATCHING__NER__MAX_WAIT_MS=2.
    model_config = SettingsConfigDict(env_prefix="APP_", env_nested_delimiter="__", protected_namespaces=())

    model_root: Path = Field(REPO_ROOT / "models", description="model store: <root>/<model>/<version>/")
    serve_versions: ServeVersions = Field(
        "latest", description="versions of each model loaded at start: the highest that loads, or all that load"
    )
    memory_limit_mb: int = Field(
        0, ge=0, description="loading a version that would take the process past this many MB is refused (0: no limit)"
    )
    max_text_chars: int = Field(2000, gt=0, description="longest text accepted, in Unicode code points")
    max_batch_texts: int = Field(64, gt=0, description="most texts in one request")
    max_body_bytes: int = Field(4_000_000, gt=0, description="largest request body accepted")
    max_batch_spectra: int = Field(64, gt=0, description="most spectra in one request")
    max_spectrum_points: int = Field(20_000, gt=0, description="most points in a spectrum on its own wavelength grid")
    max_masked_fraction: float = Field(
        UNCLASSIFIABLE_MASKED_SHARE, ge=0, le=1, description="spectra with more masked pixels are rejected"
    )
    max_fits_files: int = Field(16, gt=0, description="most FITS files in one POST /v1/spectra/fits")
    max_fits_bytes: int = Field(
        32_000_000, gt=0,
        description="most bytes the FITS files of one request may hold once decompressed (gzip is inflated only this far)",
    )
    upload_workers: int = Field(2, gt=0, description="requests whose uploaded files are read at the same time")
    upload_queue: int = Field(
        16, ge=0, description="requests waiting for an upload worker; beyond them requests get 503 with Retry-After"
    )
    max_question_chars: int = Field(200, gt=0, description="longest QA question accepted (the reader reads its start)")
    max_passages: int = Field(20, gt=0, description="most passages in one QA request")
    max_passage_chars: int = Field(2000, gt=0, description="longest QA passage accepted, in Unicode code points")
    max_beam_width: int = Field(8, gt=0, description="widest headline beam search (and most candidates) accepted")
    max_headline_tokens: int = Field(64, gt=0, description="largest headline max_length accepted")
    qa_answer_threshold: float | None = Field(
        None, ge=0, le=1,
        description="a best answer whose probability is below this is reported as no answer (answer: null); "
        "unset: the threshold fitted with the model's calibration (its manifest)",
    )
    batching: dict[str, BatchPolicy] = Field(
        default_factory=dict,
        description="micro-batching overrides per task; a task not listed gets the BatchPolicy defaults",
    )
    request_timeout_s: float = Field(30.0, gt=0, description="a request not answered by then gets 504")
    # On 2 cores one thread per op (a core left to the event loop) helped NER and not the other
    # models (docs/serving.md), so the default stays TensorFlow's own choice.
    tf_intra_op_threads: int = Field(
        0, ge=0, description="TensorFlow threads per op, set before the runtime starts (0: TensorFlow's choice)"
    )
    backends: dict[str, Backend] = Field(
        default_factory=dict,
        description='where each task\'s model runs: "inprocess" (default) or "tfserving", e.g. APP_BACKENDS__QA=tfserving',
    )
    tfserving_url: str = Field("http://127.0.0.1:8501", description="TensorFlow Serving's REST address")
    tfserving_timeout_s: float = Field(30.0, gt=0, description="per call to TensorFlow Serving")
    tfserving_retries: int = Field(2, ge=0, description="retries of a call whose connection to TensorFlow Serving failed")
    # Access control (docs/security.md). Without a keys file predictions are open and admin endpoints closed.
    api_keys_file: Path | None = Field(
        None, description="YAML or JSON file of API keys (ids, SHA-256 hashes, scopes, limits): python -m app.keys"
    )
    default_key_rate_limit: str | None = Field(
        None, description='rate limit of a key whose entry sets none, e.g. "20/second;10000/day" (none: unlimited)'
    )
    anonymous_rate_limit: str | None = Field(
        None, description="rate limit per client address for callers without a key (only without a keys file)"
    )
    auth_failure_limit: str = Field(
        "10/minute", description="failed authentications per client address before it gets 429 until the window passes"
    )
    rate_limit_storage: str = Field(
        "memory://", description="where counts live: memory:// (this process) or redis://host:port/db (shared by replicas)"
    )
    rate_limit_storage_password_file: Path | None = Field(
        None, description="file holding the password of the Redis at rate_limit_storage (e.g. a mounted Secret)"
    )
    docs: bool = Field(
        True, description="serve /docs and /redoc (their scripts come from a CDN); off in the deployment files"
    )
    cors_origins: list[str] = Field(
        default_factory=list, description='origins whose browsers may call the API, e.g. APP_CORS_ORIGINS=\'["https://a.example"]\''
    )
    # Slow and idle clients (python -m app.server applies the first two; the app the third).
    header_timeout_s: float = Field(10.0, gt=0, description="a connection must send each request head within this")
    max_connections: int = Field(
        1000, gt=0, description="open connections beyond this are closed at once (keep below `ulimit -n`)"
    )
    body_timeout_s: float = Field(60.0, gt=0, description="a request body must arrive within this (408 otherwise)")
    log_level: str = "INFO"

    def spectra_limits(self) -> SpectraLimits:
        """What one spectra request may hold, for the routes and the bulk command."""
        return SpectraLimits(self.max_batch_spectra, self.max_spectrum_points, self.max_masked_fraction,
                             self.max_fits_files, self.max_fits_bytes)


@lru_cache
def get_settings() -> Settings:
    return Settings()
