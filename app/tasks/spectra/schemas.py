"""What the spectra pipeline answers: one result per spectrum, from JSON or from a file."""

from __future__ import annotations

from pydantic import BaseModel, Field

from app.tasks.spectra.spec import HEAVILY_MASKED_SHARE


class SpectrumResult(BaseModel):
    label: str = Field(description="STAR, GALAXY, QSO or UNKNOWN")
    probabilities: dict[str, float]
    z: float | None = Field(
        None,
        description="redshift from a template χ² fit (SDSS/BOSS eigenspectra) for GALAXY and QSO; a STAR's radial "
        "velocity / c; null for UNKNOWN",
    )
    z_err: float | None = Field(None, description="1σ uncertainty of z: the fit's statistical one (χ² curvature) and the templates' systematic in quadrature")
    subtype: str | None = Field(
        None, description="for a STAR, the MK letter: of the best-fitting SDSS stellar template (O–M), or LAMOST's letter "
        "for models that also give `subclass` (learned from stars LAMOST typed); '' when the best SDSS template has no "
        "MK letter (white dwarfs, carbon stars, L/T dwarfs); null for other classes"
    )
    subclass: str | None = Field(
        None, description="for a STAR, LAMOST's two-digit subclass (e.g. 'G5') within `subtype`'s letter, from models "
        "exported with the LAMOST type mapping (docs/spectra.md); null otherwise"
    )
    stellar_template: str | None = Field(
        None, description="for a STAR, the best-fitting SDSS stellar template (spEigenStar-53724), e.g. 'K5': SDSS's convention"
    )
    warning: int = Field(0, description="bit mask like SDSS's ZWARNING: 0 when nothing is suspicious; names in `warnings`")
    warnings: list[str] = Field(
        default_factory=list,
        description="LOW_SNR (median S/N below 2), AMBIGUOUS_CLASS (top probability below 0.6), SMALL_DELTA_CHI2 "
        f"(another redshift fits almost as well), Z_AT_EDGE (at the end of the scanned range), HEAVILY_MASKED "
        f"(over {HEAVILY_MASKED_SHARE:.0%} masked), UNCLASSIFIED (UNKNOWN)",
    )
    median_snr: float | None = Field(None, description="median flux / noise per pixel, the noise estimated from the spectrum")
    masked_fraction: float = Field(description="fraction of model-grid pixels without flux")
    heavily_masked: bool = Field(description=f"more than {HEAVILY_MASKED_SHARE:.0%} of the pixels were masked")


class FileSpectrumResult(SpectrumResult):
    file: str = Field(description="the uploaded file's name")
    row: int | None = Field(None, description="the spectrum's row in a multi-spectrum file (DESI coadd), else null")
    targetid: str | None = Field(
        None, description="DESI TARGETID, when the file names one (a string: 64-bit integers lose digits in JavaScript)"
    )
    pipeline: dict[str, str | float | int] | None = Field(
        None, description="what the file's header says about the spectrum (LAMOST: CLASS, SUBCLASS, Z, …)"
    )
    spectrum: dict[str, list[float]] | None = Field(
        None, description="with spectrum=true: the flux the model read, resampled onto its grid (`wavelength` Å, `flux`; 0 = masked)"
    )


class FileSpectrumError(BaseModel):
    file: str
    row: int | None = None
    error: str = Field(description="why this spectrum was not classified (e.g. it does not reach the model's wavelength range)")
