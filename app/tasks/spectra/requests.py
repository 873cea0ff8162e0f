"""What ``POST /v1/spectra`` accepts as JSON: flux on the model grid (numbers or base64 float32) or
a spectrum on its own wavelengths, checked and resampled as the version's limits say."""

# No `from __future__ import annotations`: the request models are classes made per app (its limits
# are part of the OpenAPI schema), and FastAPI must see the classes themselves, not strings.

import base64
import binascii
from typing import Annotated, Union

import numpy as np
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    WithJsonSchema,
    model_validator,
)

from app.tasks.choice import ModelChoice
from app.tasks.spectra.grid import LAMOST
from app.tasks.spectra.pipeline import SpectraLimits


def request_model(limits: SpectraLimits) -> type[BaseModel]:
    """The JSON request body with this app's limits (they are part of its OpenAPI schema)."""
    GriddedFlux = Annotated[
        list[float],
        AfterValidator(limits.on_grid),
        WithJsonSchema({"type": "array", "items": {"type": "number"}, "minItems": LAMOST.npix, "maxItems": LAMOST.npix}),
    ]

    class SpectrumWithWavelength(BaseModel):
        """A spectrum on its own wavelength grid; the service resamples it onto the model grid."""

        model_config = ConfigDict(extra="forbid")

        wavelength: list[Annotated[float, Field(gt=0)]] = Field(
            min_length=2, max_length=limits.max_points, description="Å, strictly increasing"
        )
        flux: list[float] = Field(min_length=2, max_length=limits.max_points)
        ivar: list[float] | None = Field(None, description="inverse variance; 0 marks a bad pixel")

        _flux: np.ndarray = PrivateAttr()

        @model_validator(mode="after")
        def resample(self) -> "SpectrumWithWavelength":
            n = len(self.wavelength)
            for name in ("flux", "ivar"):
                values = getattr(self, name)
                if values is not None and len(values) != n:
                    raise ValueError(f"'{name}' has {len(values)} values but 'wavelength' has {n}")
            wavelength = np.asarray(self.wavelength)
            if not np.all(np.isfinite(wavelength)) or wavelength[0] <= 0:
                raise ValueError("'wavelength' must be finite and positive")
            if not np.all(np.diff(wavelength) > 0):
                raise ValueError("'wavelength' must be strictly increasing")
            ivar = None if self.ivar is None else np.asarray(self.ivar)
            self._flux = limits.resampled_and_usable(wavelength, np.asarray(self.flux), ivar)
            return self

    class EncodedFlux(BaseModel):
        """A flux array on the model grid as base64 little-endian float32: two thirds of the bytes of
        the numbers written with three decimals, and a quarter of the server's time to parse and
        validate them (0.06 against 0.26 ms measured on the 2-core development machine)."""

        model_config = ConfigDict(extra="forbid")

        flux_b64: str = Field(
            description=f"base64 of exactly {LAMOST.npix} little-endian float32 values ({4 * LAMOST.npix} bytes), "
            "e.g. base64.b64encode(flux.astype('<f4').tobytes())"
        )

        _flux: np.ndarray = PrivateAttr()

        @model_validator(mode="after")
        def decode(self) -> "EncodedFlux":
            try:
                raw = base64.b64decode(self.flux_b64, validate=True)
            except (binascii.Error, ValueError):
                raise ValueError("'flux_b64' is not valid base64") from None
            if len(raw) != 4 * LAMOST.npix:
                raise ValueError(
                    f"'flux_b64' holds {len(raw)} bytes; {LAMOST.npix} float32 values on the model grid are {4 * LAMOST.npix}"
                )
            self._flux = limits.on_grid(np.frombuffer(raw, dtype="<f4"))
            return self

    def spectrum_kind(value) -> str | None:
        if isinstance(value, list):
            return "flux"
        if isinstance(value, EncodedFlux) or (isinstance(value, dict) and "flux_b64" in value):
            return "encoded"
        if isinstance(value, (dict, SpectrumWithWavelength)):
            return "spectrum"
        return None

    # A flux array on the model grid, or an object with its own wavelengths. The tag
    # picks the schema up front, so an error names one field instead of both options.
    Spectrum = Annotated[
        Union[
            Annotated[GriddedFlux, Tag("flux")],
            Annotated[EncodedFlux, Tag("encoded")],
            Annotated[SpectrumWithWavelength, Tag("spectrum")],
        ],
        Discriminator(
            spectrum_kind,
            custom_error_type="spectrum_type",
            custom_error_message="must be a flux array, an object with 'flux_b64', or an object with 'wavelength' and 'flux'",
        ),
    ]

    class SpectraRequest(ModelChoice):
        model_config = ConfigDict(
            extra="forbid",
            json_schema_extra={
                "examples": [
                    {"spectra": [[1.0] * 4 + ["…"] + [1.0] * 2]},
                    {"spectra": [{"wavelength": [3600.0, 3601.0, "…", 9200.0], "flux": [12.1, 12.3, "…", 8.0]}]},
                    {"spectra": [{"flux_b64": "AACAPwAAgD8AAIA/…"}]},
                ]
            },
        )

        spectra: list[Spectrum] = Field(
            min_length=1,
            max_length=limits.max_spectra,
            description=(
                f"1 to {limits.max_spectra} spectra, each a flux array of exactly {LAMOST.npix} values on the LAMOST grid "
                f"(λ = 10**(3.5682 + 1e-4·i) Å; 0, NaN or ±Infinity mark masked pixels), or the same array as "
                "{flux_b64} (base64 little-endian float32; cheaper to send and to read), or "
                "{wavelength, flux, ivar?} on any grid, which is resampled (flux-conserving) onto it. "
                f"Spectra with more than {limits.max_masked:.0%} masked pixels are rejected."
            ),
        )

        def flux_rows(self) -> list[np.ndarray]:
            """Each spectrum's flux on the model grid."""
            return [s._flux if isinstance(s, (SpectrumWithWavelength, EncodedFlux)) else s for s in self.spectra]

    return SpectraRequest
