"""``POST /v1/spectra``: happy paths and every kind of bad input."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from app.tasks.spectra.grid import LAMOST
from app.tasks.spectra.spec import ZWARNING_BITS
from tests.conftest import BUNDLED_MODELS, shared_data
from training.data.spectra import CLASSES, Templates, redshift_onto_grid
from training.data.spectra_real import load_lamost_stars

NPIX = LAMOST.npix


def _flux(seed: int = 0) -> list[float]:
    wavelength = LAMOST.wavelength
    return (100 * (wavelength / 6000) ** -1.5 + np.random.default_rng(seed).normal(0, 1, NPIX)).tolist()


def _b64(values) -> dict:
    return {"flux_b64": base64.b64encode(np.asarray(values, dtype="<f4").tobytes()).decode()}


def _post_raw(client, body: str):
    return client.post("/v1/spectra", content=body.encode(), headers={"content-type": "application/json"})


def _check_results(body: dict, n: int) -> None:
    assert len(body["results"]) == n
    for result in body["results"]:
        assert result["label"] in CLASSES
        assert set(result["probabilities"]) == set(CLASSES)
        assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
        likeliest = max(result["probabilities"], key=result["probabilities"].get)
        # an ambiguous class is decided by the template fits (docs/spectra.md)
        assert result["label"] == likeliest or "AMBIGUOUS_CLASS" in result["warnings"]
        assert isinstance(result["warning"], int) and set(result["warnings"]) <= set(ZWARNING_BITS)
        assert sum(ZWARNING_BITS[name] for name in result["warnings"]) == result["warning"]
        if result["label"] == "UNKNOWN":
            assert result["z"] is None and "UNCLASSIFIED" in result["warnings"]
        else:
            assert result["z"] is not None and result["z_err"] >= 0
        assert (result["subtype"] is not None) == (result["label"] == "STAR")


def test_bundled_model_classifies_a_batch(client):
    response = client.post("/v1/spectra", json={"spectra": [_flux(0), _flux(1)]})
    assert response.status_code == 200
    _check_results(response.json(), 2)


def test_a_spectrum_on_its_own_grid_is_resampled(spectra_client):
    wavelength = np.linspace(3600, 9300, 7000)
    flux = 50 * (wavelength / 6000) ** -1.0
    on_grid = spectra_client.post("/v1/spectra", json={"spectra": [(50 * (LAMOST.wavelength / 6000) ** -1.0).tolist()]})
    resampled = spectra_client.post(
        "/v1/spectra", json={"spectra": [{"wavelength": wavelength.tolist(), "flux": flux.tolist(), "ivar": [1.0] * 7000}]}
    )
    assert resampled.status_code == 200
    _check_results(resampled.json(), 1)
    for a, b in zip(on_grid.json()["results"][0]["probabilities"].values(), resampled.json()["results"][0]["probabilities"].values()):
        assert a == pytest.approx(b, abs=0.02)


def test_a_few_nans_are_masked_and_heavy_masking_is_answered_and_flagged(spectra_client):
    flux = json.dumps(_flux())
    few = flux.replace("[", "[NaN, Infinity, ", 1).rsplit(",", 2)[0] + "]"
    response = _post_raw(spectra_client, '{"spectra": [' + few + "]}")
    assert response.status_code == 200
    assert 0 < response.json()["results"][0]["masked_fraction"] < 0.01
    values = _flux()
    values[:2100] = [0.0] * 2100  # 54 %: the blue arm lost, as happens to real spectra
    response = spectra_client.post("/v1/spectra", json={"spectra": [values]})
    assert response.status_code == 200
    result = response.json()["results"][0]
    assert result["heavily_masked"] is True and "HEAVILY_MASKED" in result["warnings"]


def test_a_base64_flux_array_answers_like_the_json_one(spectra_client):
    flux = _flux(3)
    as_numbers = spectra_client.post("/v1/spectra", json={"spectra": [flux]})
    encoded = spectra_client.post("/v1/spectra", json={"spectra": [_b64(flux), flux]})
    assert as_numbers.status_code == encoded.status_code == 200
    results = encoded.json()["results"]
    assert results[0] == results[1] == as_numbers.json()["results"][0]


WAVELENGTH = np.linspace(3600, 9300, 500).tolist()


@pytest.mark.parametrize(
    ("spectra", "field", "words"),
    [
        ([], "spectra", "at least 1"),
        ([[1.0] * 100], "spectra.0.flux", "3904"),
        ([[0.0] * NPIX], "spectra.0.flux", "no usable flux"),
        ([[1e300] * NPIX], "spectra.0.flux", "no usable flux"),  # inf in the model's float32 (found by schemathesis)
        ([[1e300] * 3000 + [1.0] * (NPIX - 3000)], "spectra.0.flux", "77% of the pixels are masked"),
        ([{"wavelength": [0.0, 1.0], "flux": [1.0, 1.0]}], "spectra.0.spectrum.wavelength.0", "greater than 0"),
        (["not a spectrum"], "spectra.0", "flux array"),
        ([{"wavelength": WAVELENGTH[::-1], "flux": [1.0] * 500}], "spectra.0.spectrum", "increasing"),
        ([{"wavelength": WAVELENGTH, "flux": [1.0] * 499}], "spectra.0.spectrum", "'flux' has 499"),
        ([{"wavelength": WAVELENGTH, "flux": [1.0] * 500, "ivar": [1.0]}], "spectra.0.spectrum", "'ivar' has 1"),
        ([{"wavelength": np.linspace(1000, 2000, 50).tolist(), "flux": [1.0] * 50}], "spectra.0.spectrum", "no usable flux"),
        ([{"flux": [1.0] * 10}], "spectra.0.spectrum.wavelength", "required"),
        ([{"flux_b64": "not base64!"}], "spectra.0.encoded", "not valid base64"),
        ([_b64([1.0] * 100)], "spectra.0.encoded", "holds 400 bytes"),
        ([_b64([np.nan] * NPIX)], "spectra.0.encoded", "no usable flux"),
        ([{"flux_b64": "", "wavelength": [1.0]}], "spectra.0.encoded.wavelength", "not permitted"),
    ],
)
def test_bad_spectra_name_the_field(spectra_client, spectra, field, words):
    response = spectra_client.post("/v1/spectra", json={"spectra": spectra})
    assert response.status_code == 422
    fields = {f["field"]: f["message"] for f in response.json()["error"]["fields"]}
    assert field in fields, fields
    assert words in fields[field]


def test_too_many_spectra(spectra_client):
    response = spectra_client.post("/v1/spectra", json={"spectra": [[1.0]] * 65})
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["field"] == "spectra"


def test_mostly_nan_is_rejected(spectra_client):
    body = '{"spectra": [[' + ",".join(["NaN"] * 3000 + ["1.5"] * (NPIX - 3000)) + "]]}"
    response = _post_raw(spectra_client, body)
    assert response.status_code == 422
    assert "masked" in response.json()["error"]["fields"][0]["message"]


def test_missing_model_is_503(client, tmp_path):
    with TestClient(create_app(Settings(model_root=tmp_path))) as empty:
        assert empty.post("/v1/spectra", json={"spectra": [_flux()]}).status_code == 503


@pytest.mark.data
def test_real_lamost_star_is_a_star_and_a_z2_quasar_is_a_quasar(client):
    if not (BUNDLED_MODELS / "spectra").is_dir():
        pytest.skip("no bundled spectra model")
    root = shared_data("spectra")
    star = load_lamost_stars(root)[0].flux
    quasar_basis = Templates.load(root / "templates", "test").quasars[0][0]
    rng = np.random.default_rng(0)
    quasar = redshift_onto_grid(quasar_basis, quasar_basis.flux[:1], np.array([2.0]))[0]
    quasar = quasar + rng.normal(0, 0.05 * np.median(np.abs(quasar)), NPIX)
    results = client.post("/v1/spectra", json={"spectra": [star.tolist(), quasar.tolist()]}).json()["results"]
    assert [r["label"] for r in results] == ["STAR", "QSO"]
    assert results[0]["subtype"] in tuple("OBAFGKM") and abs(results[0]["z"]) < 0.002
    assert results[1]["z"] == pytest.approx(2.0, abs=0.02 * 3)
