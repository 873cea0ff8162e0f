"""The demo page in a real browser: Debian's Chromium driven by Playwright against the real server
on loopback. Screenshots go to ``test-artifacts/`` (or ``$TEST_ARTIFACTS``).

Needs Debian's Chromium (``apt-get install chromium``); skips without it unless
``REQUIRE_SYSTEM_PACKAGES=1`` (set by ``.ci/run``, which installs it).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.serve import Server
from tests.conftest import REPO, SHARED_DATA, bundled_version, system_tool

pytestmark = [pytest.mark.slow, pytest.mark.server, pytest.mark.browser]

EXAMPLES = REPO / "app" / "demo" / "examples"
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", REPO / "test-artifacts"))
# Headless in a closed network: no sandbox (CI runs as root), no GPU, no background connections.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]


@pytest.fixture(scope="module")
def server_url():
    with Server({}) as server:
        yield server.url


@pytest.fixture(scope="module")
def browser():
    executable = system_tool("chromium", "chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server_url, request):
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server_url + "/")
    yield page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    page.close()
    assert not errors, errors  # no uncaught JavaScript errors


def test_entities_are_highlighted_by_type(page):
    page.fill("#ner-text", "新华社北京电国务院总理李鹏今天会见了日本客人。")
    page.click("#ner-form button[type=submit]")
    page.wait_for_selector("#ner-marked mark")
    marks = page.eval_on_selector_all("#ner-marked mark", "ms => ms.map(m => [m.dataset.type, m.firstChild.textContent])")
    assert ["PER", "李鹏"] in marks and ["LOC", "北京"] in marks
    titles = page.eval_on_selector_all("#ner-marked mark", "ms => ms.map(m => m.title)")
    assert all(t.startswith(f"{kind}, probability ") for t, (kind, _) in zip(titles, marks))  # each entity's own
    colours = dict(page.eval_on_selector_all(
        "#ner-marked mark", "ms => ms.map(m => [m.dataset.type, getComputedStyle(m).backgroundColor])"
    ))
    assert len(set(colours.values())) == len(colours) and "rgba(0, 0, 0, 0)" not in colours.values()  # a colour per type
    # The highlighted text still reads as the original sentence (labels aside).
    assert page.eval_on_selector(
        "#ner-marked", "p => Array.from(p.childNodes).map(n => n.nodeType === 3 ? n.textContent : n.firstChild.textContent).join('')"
    ) == "新华社北京电国务院总理李鹏今天会见了日本客人。"


def test_offsets_stay_right_after_characters_outside_the_bmp(page):
    page.fill("#ner-text", "😀😀李鹏在北京。")
    page.click("#ner-form button[type=submit]")
    page.wait_for_selector("#ner-marked mark")
    marks = page.eval_on_selector_all("#ner-marked mark", "ms => ms.map(m => m.firstChild.textContent)")
    assert "李鹏" in marks


def test_a_bad_request_shows_the_field(page):
    page.fill("#ner-text", "   ")
    page.click("#ner-form button[type=submit]")
    assert "text:" in page.wait_for_selector("#ner-result .error").inner_text()


def test_the_answer_is_highlighted_in_its_passage(page):
    page.click("[data-tab=qa]")
    page.click("#qa-form button[type=submit]")
    assert page.wait_for_selector("#qa-answer strong").inner_text() == "北京"
    assert "probability" in page.inner_text("#qa-answer")  # the calibrated one, not the raw score
    assert page.inner_text("[data-passage='0'] mark.answer") == "北京"


def test_headline_candidates_are_listed(page):
    page.click("[data-tab=headline]")
    page.click("#headline-form button[type=submit]")
    assert page.wait_for_selector("#headline-best").inner_text().strip()
    assert page.locator("#headline-result tbody tr").count() == 3


def _plotted_pixels(page) -> int:
    return page.evaluate(
        "() => { const c = document.querySelector('#spectra-plot');"
        " return c.getContext('2d').getImageData(0, 0, c.width, c.height).data.filter((v, i) => i % 4 === 3 && v > 0).length; }"
    )


def test_an_uploaded_fits_spectrum_is_plotted_and_classified(page):
    page.click("[data-tab=spectra]")
    page.set_input_files("#spectra-file", str(EXAMPLES / "simulated_galaxy.fits"))
    assert page.wait_for_selector("#spectra-label").inner_text() == "GALAXY"
    assert page.inner_text("#spectra-fit").startswith("z = ")
    assert _plotted_pixels(page) > 1000


@pytest.mark.parametrize("layout", ["sdss", "lamost_gz"])
def test_sdss_and_compressed_lamost_files_are_read_by_the_server(page, tmp_path, layout):
    import gzip

    from tests.fixtures.spectrum_files import write_lamost_image, write_sdss_spec_lite

    if layout == "sdss":
        path = write_sdss_spec_lite(tmp_path / "spec-lite.fits")
    else:
        path = tmp_path / "spec.fits.gz"
        path.write_bytes(gzip.compress(write_lamost_image(tmp_path / "spec.fits").read_bytes()))
    page.click("[data-tab=spectra]")
    page.set_input_files("#spectra-file", str(path))
    assert page.wait_for_selector("#spectra-label").inner_text() in {"STAR", "GALAXY", "QSO", "UNKNOWN"}
    assert _plotted_pixels(page) > 1000


def test_a_file_that_is_not_fits_shows_the_servers_message(page, tmp_path):
    path = tmp_path / "notes.fits"
    path.write_text("not a spectrum")
    page.click("[data-tab=spectra]")
    page.set_input_files("#spectra-file", str(path))
    assert "'notes.fits' is not a FITS file" in page.wait_for_selector("#spectra-result .error").inner_text()


def test_a_bundled_example_can_be_picked(page):
    page.click("[data-tab=spectra]")
    page.select_option("#spectra-example", "simulated_qso.fits")
    assert page.wait_for_selector("#spectra-label").inner_text() == "QSO"


def test_a_real_lamost_file(page):
    files = sorted((SHARED_DATA / "spectra" / "lamost_real_stars").glob("*.fits"))
    if not files:
        pytest.skip("no LAMOST files in ../shared/data (data-dependent test)")
    page.click("[data-tab=spectra]")
    page.set_input_files("#spectra-file", str(files[0]))
    label = page.wait_for_selector("#spectra-label").inner_text()
    assert label in {"STAR", "GALAXY", "QSO", "UNKNOWN"}
    assert "pipeline says STAR" in page.inner_text("#spectra-result")
    assert _plotted_pixels(page) > 1000


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory):
    from tests.conftest import write_keys_file

    path = tmp_path_factory.mktemp("keys") / "keys.yaml"
    keys = write_keys_file(path, {"demo": ["predict:ner"]})
    with Server({"APP_API_KEYS_FILE": str(path)}) as server:
        yield server.url, keys["demo"]


def test_with_keys_configured_the_page_asks_for_one_and_keeps_it_in_the_tab(browser, keyed_server):
    url, key = keyed_server
    page = browser.new_page()
    page.goto(url + "/")
    page.click("#ner-form button[type=submit]")
    page.wait_for_selector("#ner-result .error")
    assert "needs an API key" in page.inner_text("#ner-result")
    assert page.eval_on_selector("#api-key-box", "d => d.open")  # the key field is shown
    page.fill("#api-key", key)
    page.click("#ner-form button[type=submit]")
    page.wait_for_selector("#ner-marked mark")
    assert page.evaluate("Object.keys(localStorage).length") == 0  # the session only
    page.reload()
    assert page.input_value("#api-key") == key  # kept in this tab
    page.close()


def test_the_model_chooser_sends_the_request_to_another_model_of_the_task(browser, tmp_path):
    # The bundled models, and the bundled NER model once more as `ner-fine` (linked).
    root = tmp_path / "models"
    root.mkdir()
    for model in ("ner", "qa", "headline", "spectra"):
        (root / model).symlink_to(REPO / "models" / model, target_is_directory=True)
    (root / "ner-fine").mkdir()
    (root / "ner-fine" / "1").symlink_to(bundled_version("ner"), target_is_directory=True)
    with Server({"APP_MODEL_ROOT": str(root)}) as server:
        page = browser.new_page()
        page.goto(server.url + "/")
        page.wait_for_selector("#ner-form select.model-choice option >> nth=1", state="attached")
        assert page.eval_on_selector("#ner-form select.model-choice", "s => s.closest('label').hidden") is False
        assert page.eval_on_selector("#qa-form select.model-choice", "s => s.closest('label').hidden") is True
        page.select_option("#ner-form select.model-choice", label="ner-fine")
        page.click("#ner-form button[type=submit]")
        page.wait_for_selector("#ner-marked mark")
        assert "model ner-fine version 1" in page.inner_text("#ner-result")
        page.close()
