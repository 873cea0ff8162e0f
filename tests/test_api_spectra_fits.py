"""``POST /v1/spectra/fits``: survey files in, one answer per spectrum; every bad file a 422 naming it."""

from __future__ import annotations

import gzip
import io
import time

import numpy as np
import pytest

from app.tasks.spectra.grid import LAMOST
from app.tasks.spectra.spec import ZWARNING_BITS
from tests.conftest import BUNDLED_MODELS, shared_data
from tests.fixtures import hostile_files as hostile
from tests.fixtures.spectrum_files import write_desi_coadd, write_lamost_image, write_lamost_table, write_sdss_spec_lite


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("uploads")
    return {
        "star.fits.gz": gzip.compress(write_lamost_image(folder / "lamost.fits").read_bytes()),
        "lamost_dr8.fits": write_lamost_table(folder / "lamost_dr8.fits").read_bytes(),
        "spec-lite.fits": write_sdss_spec_lite(folder / "spec.fits").read_bytes(),
        "coadd.fits": write_desi_coadd(folder / "coadd.fits", nspec=3).read_bytes(),
    }


def _post(client, uploads: list[tuple[str, bytes]], **form):
    return client.post("/v1/spectra/fits", files=[("files", (name, data)) for name, data in uploads], data=form)


def test_every_layout_answers_per_spectrum_with_file_and_row(spectra_client, files):
    response = _post(spectra_client, list(files.items()))
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [(r["file"], r["row"]) for r in results] == [
        ("star.fits.gz", None), ("lamost_dr8.fits", None), ("spec-lite.fits", None),
        ("coadd.fits", 0), ("coadd.fits", 1), ("coadd.fits", 2),
    ]
    assert [r["targetid"] for r in results[3:]] == [str(39633345008634465 + i) for i in range(3)]
    for result in results:
        assert set(result["probabilities"]) == {"STAR", "GALAXY", "QSO", "UNKNOWN"}
        assert {"label", "z", "z_err", "subtype", "warning", "warnings", "median_snr"} <= set(result)
        assert set(result["warnings"]) <= set(ZWARNING_BITS)
        assert result["spectrum"] is None


def test_curl_style_single_file_field(spectra_client, files):
    """``curl -F file=@spec.fits`` sends the form field ``file``; it is read like ``files``."""
    response = spectra_client.post("/v1/spectra/fits", files=[("file", ("spec-lite.fits", files["spec-lite.fits"]))])
    assert response.status_code == 200, response.text
    assert [r["file"] for r in response.json()["results"]] == ["spec-lite.fits"]


def test_the_same_spectrum_as_json_or_as_a_file_gets_the_same_answer(spectra_client, files):
    from app.tasks.spectra.files import read_spectra
    from training.data.spectra_real import model_grid_flux

    flux = model_grid_flux(read_spectra(files["spec-lite.fits"])[0])
    by_json = spectra_client.post("/v1/spectra", json={"spectra": [flux.tolist()]}).json()["results"][0]
    by_file = _post(spectra_client, [("spec-lite.fits", files["spec-lite.fits"])]).json()["results"][0]
    assert by_file["label"] == by_json["label"]
    assert by_file["probabilities"] == pytest.approx(by_json["probabilities"], abs=1e-5)


def test_the_spectrum_the_model_read_comes_back_on_request(spectra_client, files):
    response = _post(spectra_client, [("star.fits.gz", files["star.fits.gz"])], spectrum="true")
    spectrum = response.json()["results"][0]["spectrum"]
    assert len(spectrum["wavelength"]) == len(spectrum["flux"]) == LAMOST.npix
    assert spectrum["wavelength"][0] == pytest.approx(LAMOST.wavelength[0], abs=0.01)


def test_a_spectrum_outside_the_model_range_is_reported_and_the_rest_answered(spectra_client, files, tmp_path):
    # An SDSS-like file that only covers 9,500–10,300 Å: nothing on the model's 3,700–9,100 Å grid.
    far_red = write_sdss_spec_lite(tmp_path / "far_red.fits", loglam0=3.978, npix=350).read_bytes()
    response = _post(spectra_client, [("far_red.fits", far_red), ("spec-lite.fits", files["spec-lite.fits"])])
    assert response.status_code == 200
    first, second = response.json()["results"]
    assert first["file"] == "far_red.fits" and "no usable flux" in first["error"] and "label" not in first
    assert second["label"] in {"STAR", "GALAXY", "QSO", "UNKNOWN"}


def _fits_without_layout() -> bytes:
    from astropy.io import fits

    buffer = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns([fits.Column("RA", "D", array=[1.0])])]).writeto(buffer)
    return buffer.getvalue()


BAD_UPLOADS = {
    "not FITS": (b"just some text", "not a FITS file"),
    "truncated": (None, "is truncated"),
    "unknown layout": (_fits_without_layout(), "not a layout read here"),
    "corrupt gzip": (gzip.compress(b"SIMPLE  = T" + bytes(4000))[:40], "gzip"),
    "empty": (b"", "is empty"),
}


@pytest.mark.parametrize("case", BAD_UPLOADS)
def test_a_bad_file_is_a_422_naming_the_file(spectra_client, files, case):
    data, expected = BAD_UPLOADS[case]
    data = files["spec-lite.fits"][:5000] if data is None else data
    response = _post(spectra_client, [("spec-lite.fits", files["spec-lite.fits"]), ("bad one.fits", data)])
    assert response.status_code == 422
    (field,) = response.json()["error"]["fields"]
    assert field["field"] == "files.1"
    assert "'bad one.fits'" in field["message"] and expected in field["message"]
    assert "/" not in field["message"].replace("'bad one.fits'", "")  # no server paths


def test_too_many_files_or_spectra_and_no_files(spectra_client, files):
    from app.settings import get_settings

    MAX_FILES, MAX_SPECTRA = get_settings().max_fits_files, get_settings().max_batch_spectra

    many = [("star.fits.gz", files["star.fits.gz"])] * (MAX_FILES + 1)
    response = _post(spectra_client, many)
    assert response.status_code == 422 and response.json()["error"]["fields"][0]["field"] == "files"
    coadds = [("coadd.fits", files["coadd.fits"])] * (MAX_SPECTRA // 3 + 1)
    coadds = coadds[: min(len(coadds), MAX_FILES)]
    if 3 * len(coadds) > MAX_SPECTRA:
        response = _post(spectra_client, coadds)
        assert response.status_code == 422 and "spectra" in response.json()["error"]["message"]
    response = spectra_client.post("/v1/spectra/fits", json={"files": []})
    assert response.status_code == 422 and response.json()["error"]["fields"][0]["field"] == "files"


def test_a_file_path_in_the_name_is_not_echoed(spectra_client):
    response = _post(spectra_client, [("../../etc/secret/x.fits", b"nope")])
    assert response.status_code == 422
    message = response.json()["error"]["fields"][0]["message"]
    assert "'x.fits'" in message and "etc" not in message


@pytest.mark.data
def test_real_survey_files_through_the_bundled_model(client):
    if not (BUNDLED_MODELS / "spectra").is_dir():
        pytest.skip("no bundled spectra model")
    root = shared_data("spectra")
    uploads = [
        (path.name, path.read_bytes())
        for path in [
            sorted((root / "lamost_real_stars").glob("*.fits"))[0],
            root / "real_validation" / "sdss_boss_picca" / "spec-3655-55240-0002.fits",
        ]
    ]
    response = _post(client, uploads)
    assert response.status_code == 200, response.text
    star, quasar = response.json()["results"]
    assert star["label"] == "STAR" and star["subtype"] in tuple("OBAFGKM")
    assert quasar["label"] == "QSO" and quasar["z"] == pytest.approx(2.35, abs=0.05)
    assert np.isfinite(quasar["z_err"])


HOSTILE_UPLOADS = {
    "DESI coadd declaring 1 M rows": ([hostile.desi_declaring(1_000_000)], "files.0", "1,000,000 spectra"),
    "DESI coadd declaring 15 M rows": ([hostile.desi_declaring(15_000_000)], "files.0", "declares an axis of 15,000,000"),
    "16 LAMOST images of 16 M pixels": ([hostile.lamost_image_of(16_000_000)] * 16, "files.0", "declares an axis of 8,000,000"),
    "files past the request's budget together": ([hostile.padding_of(20_000_000, spectrum=True)] * 2, "files.1", "already used"),
}


@pytest.mark.parametrize("case", HOSTILE_UPLOADS)
def test_hostile_uploads_get_a_422_from_their_headers(spectra_client, case):
    uploads, field, expected = HOSTILE_UPLOADS[case]
    started = time.monotonic()
    response = _post(spectra_client, [(f"probe{i}.fits.gz", data) for i, data in enumerate(uploads)])
    assert time.monotonic() - started < 1
    assert response.status_code == 422, response.text
    (error,) = response.json()["error"]["fields"]
    assert error["field"] == field and expected in error["message"]


def test_header_values_that_are_neither_text_nor_numbers_are_left_out_of_pipeline(spectra_client, tmp_path):
    data = bytearray(write_lamost_image(tmp_path / "x.fits", header={"CLASS": "STAR", "SUBCLASS": "K5"}).read_bytes())
    for key, value in ((b"CLASS   =", b"(1.0, 2.0)"), (b"SUBCLASS=", b"")):
        card = data.index(key)
        data[card + 10 : card + 80] = value.ljust(70)
    response = _post(spectra_client, [("odd header.fits", bytes(data))])
    assert response.status_code == 200, response.text
    assert not (response.json()["results"][0]["pipeline"] or {}).keys() & {"class", "subclass"}
