"""The FITS readers: each survey layout, gzip, and every kind of bad file (fuzzed: truncated and
corrupted files raise SpectrumFileError, never anything else, and never hang)."""

from __future__ import annotations

import gzip
import io
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fixtures.spectrum_files import (
    LAMOST_LOGLAM0,
    LAMOST_NPIX,
    smooth_spectrum,
    write_desi_coadd,
    write_lamost_image,
    write_lamost_table,
    write_sdss_spec_lite,
)
from app.tasks.spectra.grid import LAMOST
from app.tasks.spectra.files import ByteBudget, FileLimits, SpectrumFileError, iter_spectra, read_spectra, read_spectrum_file
from tests.fixtures import hostile_files as hostile


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("fits")
    paths = {
        "lamost_image": write_lamost_image(folder / "lamost.fits", header={"CLASS": "STAR", "SUBCLASS": "G5"}),
        "lamost_table": write_lamost_table(folder / "lamost_dr8.fits"),
        "sdss": write_sdss_spec_lite(folder / "spec.fits"),
        "desi": write_desi_coadd(folder / "coadd.fits", nspec=3),
    }
    return {name: path.read_bytes() for name, path in paths.items()}


def test_lamost_image_layout(files):
    (spectrum,) = read_spectra(files["lamost_image"])
    assert spectrum.layout == "lamost" and spectrum.row is None
    np.testing.assert_allclose(np.log10(spectrum.wavelength), LAMOST_LOGLAM0 + 1e-4 * np.arange(LAMOST_NPIX), atol=1e-9)
    assert np.all(spectrum.ivar[:20] == 0) and np.all(spectrum.flux[:20] == 0)  # masked pixels carry no flux
    assert spectrum.meta == {"class": "STAR", "subclass": "G5"}


def test_lamost_table_layout(files):
    (spectrum,) = read_spectra(files["lamost_table"])
    assert spectrum.layout == "lamost" and len(spectrum.flux) == LAMOST_NPIX
    np.testing.assert_allclose(spectrum.flux, smooth_spectrum(spectrum.wavelength), rtol=1e-4, atol=2.5)
    assert spectrum.meta["subclass"] == "G2"


def test_sdss_spec_lite_layout(files):
    (spectrum,) = read_spectra(files["sdss"])
    assert spectrum.layout == "sdss"
    assert spectrum.wavelength[0] == pytest.approx(10**3.5523, rel=1e-5)
    assert np.all(spectrum.ivar[100:130] == 0)
    assert spectrum.meta == {}  # the pipeline's table (HDU 2) is not parsed: it costs more than the spectrum


def test_desi_coadd_combines_the_overlapping_arms(files):
    spectra = read_spectra(files["desi"])
    assert [s.row for s in spectra] == [0, 1, 2]
    assert [s.meta["targetid"] for s in spectra] == [39633345008634465 + i for i in range(3)]
    spectrum = spectra[0]
    assert np.all(np.diff(spectrum.wavelength) > 0)  # one increasing grid: overlaps merged, not repeated
    assert spectrum.wavelength[0] == pytest.approx(3600) and spectrum.wavelength[-1] == pytest.approx(9824)
    # In the R/Z overlap each pixel's inverse variances add (1 + 3).
    overlap = (spectrum.wavelength > 7530) & (spectrum.wavelength < 7610)
    np.testing.assert_allclose(spectrum.ivar[overlap], 4.0)


@pytest.mark.parametrize("layout", ["lamost_image", "lamost_table", "sdss", "desi"])
def test_gzip_compressed_files_read_the_same(files, layout):
    plain = read_spectra(files[layout])
    compressed = read_spectra(gzip.compress(files[layout]))
    assert len(plain) == len(compressed)
    for a, b in zip(plain, compressed):
        np.testing.assert_array_equal(a.flux, b.flux)
        np.testing.assert_array_equal(a.wavelength, b.wavelength)


def test_every_layout_covers_the_model_grid(files, tmp_path):
    from training.data.spectra_real import model_grid_flux

    for layout, data in files.items():
        path = tmp_path / f"{layout}.fits"
        path.write_bytes(data)
        flux = model_grid_flux(read_spectrum_file(path)[0])
        assert flux.shape == (LAMOST.npix,) and np.mean(flux != 0) > 0.9, layout


def _fits_bytes(hdus) -> bytes:
    buffer = io.BytesIO()
    hdus.writeto(buffer)
    return buffer.getvalue()


def _image_without_wavelengths() -> bytes:
    from astropy.io import fits

    return _fits_bytes(fits.HDUList([fits.PrimaryHDU(np.ones((3, 100), np.float32))]))


def _table_of_something_else() -> bytes:
    from astropy.io import fits

    table = fits.BinTableHDU.from_columns([fits.Column("RA", "D", array=np.arange(3.0))])
    return _fits_bytes(fits.HDUList([fits.PrimaryHDU(), table]))


def _decreasing_wavelengths(files) -> bytes:
    from astropy.io import fits

    with fits.open(io.BytesIO(files["sdss"])) as hdus:
        hdus[1].data["loglam"] = hdus[1].data["loglam"][::-1]
        return _fits_bytes(hdus)


BAD_FILES = {
    "empty": (lambda files: b"", "is empty"),
    "not FITS": (lambda files: b"wavelength,flux\n3700,1.0\n", "not a FITS file"),
    "a PNG": (lambda files: b"\x89PNG\r\n\x1a\n" + bytes(3000), "not a FITS file"),
    "truncated": (lambda files: files["sdss"][: len(files["sdss"]) // 2 + 1000], "is truncated"),
    "truncated at a block boundary": (lambda files: files["sdss"][: 2880 * 10], "is truncated"),
    "header only": (lambda files: files["lamost_image"][:2880], "is truncated"),
    "corrupt gzip": (lambda files: gzip.compress(files["sdss"])[:500], "gzip"),
    "no wavelength solution": (lambda files: _image_without_wavelengths(), "no wavelength solution"),
    "unknown layout": (lambda files: _table_of_something_else(), "not a layout read here"),
    "decreasing wavelengths": (_decreasing_wavelengths, "increasing"),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_bad_files_raise_a_message_for_the_caller(files, case):
    make, expected = BAD_FILES[case]
    with pytest.raises(SpectrumFileError, match=expected):
        read_spectra(make(files))


def test_too_many_rows_and_decompression_bombs_are_refused(files):
    with pytest.raises(SpectrumFileError, match="at most 2 are read"):
        read_spectra(files["desi"], FileLimits(max_spectra=2))
    with pytest.raises(SpectrumFileError, match="is larger than 10,000 bytes"):
        read_spectra(files["sdss"], FileLimits(max_bytes=10_000))
    started = time.monotonic()
    with pytest.raises(SpectrumFileError, match="larger than 1,000,000 bytes once decompressed"):
        read_spectra(hostile.padding_of(50_000_000), FileLimits(max_bytes=1_000_000))
    with pytest.raises(SpectrumFileError, match="more than 10,000 header cards"):
        read_spectra(gzip.compress(b"SIMPLE  =" + bytes(50_000_000)))
    assert time.monotonic() - started < 5


def _read_or_refuse(data: bytes) -> None:
    try:
        spectra = read_spectra(data)
    except SpectrumFileError:
        return
    for spectrum in spectra:  # what a damaged file still yields is a usable spectrum
        assert np.all(np.diff(spectrum.wavelength) > 0)
        assert len(spectrum.flux) == len(spectrum.wavelength) == len(spectrum.ivar)


@settings(max_examples=60, deadline=2000)
@given(layout=st.sampled_from(["lamost_image", "lamost_table", "sdss", "desi"]), cut=st.floats(0, 1), gzipped=st.booleans())
def test_fuzz_truncated_files(files, layout, cut, gzipped):
    data = files[layout]
    data = gzip.compress(data) if gzipped else data
    _read_or_refuse(data[: int(len(data) * cut)])


@settings(max_examples=80, deadline=2000)
@given(
    layout=st.sampled_from(["lamost_image", "lamost_table", "sdss", "desi"]),
    flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), min_size=1, max_size=20),
    header_only=st.booleans(),
)
def test_fuzz_corrupted_bytes(files, layout, flips, header_only):
    data = bytearray(files[layout])
    span = 2880 * 3 if header_only else len(data)  # headers are where corruption is most dangerous
    for where, value in flips:
        data[min(int(where * span), len(data) - 1)] = value
    _read_or_refuse(bytes(data))


def test_the_client_scans_folders_for_the_same_fits_names_as_the_service():
    """The client is installable without the service, so it keeps its own list."""
    from app.tasks.spectra.files import FITS_SUFFIXES
    from model_serving_client.bulk import FITS_SUFFIXES as CLIENT_FITS_SUFFIXES

    assert CLIENT_FITS_SUFFIXES == FITS_SUFFIXES


HOSTILE = {
    "DESI coadd declaring 1 M rows": (lambda: hostile.desi_declaring(1_000_000), "holds 1,000,000 spectra; at most 500"),
    "DESI coadd declaring 15 M rows": (lambda: hostile.desi_declaring(15_000_000), "declares an axis of 15,000,000"),
    "LAMOST image of 40,000 pixels": (lambda: hostile.lamost_image_of(80_000), "40,000 pixels per row; at most 20,000"),
    "LAMOST image of 16 M pixels": (lambda: hostile.lamost_image_of(16_000_000), "declares an axis of 8,000,000"),
    "20,000 header cards": (lambda: hostile.header_cards(20_000), "more than 10,000 header cards"),
    "100 MB of zeros": (lambda: hostile.padding_of(100_000_000), "larger than 67,108,864 bytes once decompressed"),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_declared_sizes_are_refused_from_the_headers_before_the_data_are_read(case):
    make, expected = HOSTILE[case]
    data = make()
    assert len(data) < 200_000  # what the attacker sends
    started = time.monotonic()
    with pytest.raises(SpectrumFileError, match=expected):
        read_spectra(data)
    assert time.monotonic() - started < 1


def test_one_budget_of_decompressed_bytes_spans_the_files_of_a_request():
    budget = ByteBudget(30_000_000)
    with pytest.raises(SpectrumFileError, match="not a layout read here"):
        read_spectra_within(hostile.padding_of(20_000_000), budget)
    with pytest.raises(SpectrumFileError, match=r"past 30,000,000 bytes .* already used by the files before it"):
        read_spectra_within(hostile.padding_of(20_000_000), budget)


def read_spectra_within(data: bytes, budget: ByteBudget) -> list:
    return list(iter_spectra(data, FileLimits(), budget))


@pytest.mark.parametrize("value", ["(1.0, 2.0)", "", "T", "'" + "x" * 68 + "'"])
def test_header_values_that_are_not_text_or_numbers_are_left_out(value):
    from astropy.io import fits

    data = bytearray(_fits_bytes(fits.HDUList([fits.PrimaryHDU(np.ones((2, 3000), np.float32), header=fits.Header(
        [("COEFF0", 3.5682), ("COEFF1", 1e-4), ("CLASS", "STAR"), ("Z", 0.1)]))])))
    card = data.index(b"CLASS   =")
    data[card : card + 80] = f"CLASS   = {value}".ljust(80).encode()
    (spectrum,) = read_spectra(bytes(data))
    assert spectrum.meta.get("z") == 0.1
    assert "class" not in spectrum.meta or spectrum.meta["class"] == "x" * 68


def test_a_checkpoint_between_spectra_can_stop_the_reading(files):
    calls = []

    def checkpoint():
        calls.append(1)
        if len(calls) == 2:
            raise TimeoutError("deadline")

    with pytest.raises(TimeoutError):
        list(iter_spectra(files["desi"], FileLimits(), None, checkpoint))


HOSTILE_VALUES = ["", "-1", "0", "2147483647", "99999999999999999999", "(1.0, 2.0)", "'x'", "T", "1E308", "NaN", "\xff\xfe"]


@settings(max_examples=80, deadline=2000)
@given(
    layout=st.sampled_from(["lamost_image", "lamost_table", "sdss", "desi"]),
    edits=st.lists(st.tuples(st.floats(0, 1), st.sampled_from(HOSTILE_VALUES)), min_size=1, max_size=6),
)
def test_fuzz_hostile_header_values(files, layout, edits):
    """Any header card (NAXIS, BITPIX, TFORM, COEFF0, CLASS, …) given a hostile value: read or refused, quickly."""
    data = bytearray(files[layout])
    cards = [i for i in range(0, len(data), 80) if data[i + 8 : i + 10] == b"= " and data[:i].count(b"END" + b" " * 77) < 4]
    for where, value in edits:
        card = cards[min(int(where * len(cards)), len(cards) - 1)]
        data[card + 10 : card + 80] = value.encode("latin-1").ljust(70)
    started = time.monotonic()
    _read_or_refuse(bytes(data))
    assert time.monotonic() - started < 1


def test_a_table_declaring_billions_of_columns_is_refused_at_once(files):
    """Found by the fuzzer above: astropy builds every column a TFIELDS card declares (4 s and
    gigabytes for 2**31); the structure walk holds it to the standard's 999."""
    data = bytearray(files["sdss"])
    card = data.index(b"TFIELDS =")
    data[card + 10 : card + 80] = b"2147483647".rjust(20).ljust(70)
    started = time.monotonic()
    with pytest.raises(SpectrumFileError, match="not a readable FITS file"):
        read_spectra(bytes(data))
    assert time.monotonic() - started < 1


def test_padding_after_the_last_unit_counts_against_the_budget(files):
    """Zeros after the last data unit are inflated by the structure walk too: no further than the budget
    (here 1 GB of them, in gzip members of 16 MB each: 1 MB on the wire)."""
    zeros = gzip.compress(bytes(1 << 24))
    data = gzip.compress(files["lamost_image"]) + zeros * 64
    started = time.monotonic()
    with pytest.raises(SpectrumFileError, match="larger than 10,000,000 bytes once decompressed"):
        read_spectra(data, FileLimits(max_bytes=10_000_000))
    assert time.monotonic() - started < 1
