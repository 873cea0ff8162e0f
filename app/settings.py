"""Service configuration, read once from ``APP_*`` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="APP_", protected_namespaces=())

    model_root: Path = Field(REPO_ROOT / "models", description="model store: <root>/<task>/<version>/")
    max_text_chars: int = Field(2000, gt=0, description="longest text accepted, in Unicode code points")
    max_batch_texts: int = Field(64, gt=0, description="most texts in one request")
    max_body_bytes: int = Field(4_000_000, gt=0, description="largest request body accepted")
    max_batch_spectra: int = Field(64, gt=0, description="most spectra in one request")
    max_spectrum_points: int = Field(20_000, gt=0, description="most points in a spectrum on its own wavelength grid")
    max_masked_fraction: float = Field(0.5, ge=0, le=1, description="spectra with more masked pixels are rejected")
    log_level: str = "INFO"


@lru_cache
def get_settings() -> Settings:
    return Settings()
