"""The ``tfserving`` backend: every task served through TensorFlow Serving's REST API gives the
same answers as the in-process SavedModels.

TensorFlow Serving itself cannot run here (no binary, no Docker engine), so the REST peer is
``tests/fixtures/fake_tfserving.py``, a fake that loads the same SavedModels (see its docstring).
"""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest
from astropy.io import fits
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from bench.serve import free_port
from tests.conftest import BUNDLED_MODELS, REPO, wait_until

pytestmark = pytest.mark.slow  # the slow tier (`make test-slow`): starts servers (a fake TensorFlow Serving and the service)

TASKS = ("ner", "qa", "spectra", "headline")
# A simulated galaxy (the demo page's example, on the model grid): a spectrum with lines and noise,
# whose redshift fit is well determined. A noiseless featureless curve is not: its z and z_err hang
# on float rounding, which differs between the two backends' batches.
FLUX = fits.getdata(REPO / "app" / "demo" / "examples" / "simulated_galaxy.fits")[0].astype(float).tolist()
REQUESTS = [
    ("/v1/ner", {"texts": ["新华社北京电国务院总理李鹏今天会见了日本客人。", "Ｈｅｌｌｏ😀张三在上海工作", "x"]}),
    ("/v1/qa", {"question": "中国的首都是哪里？", "passages": ["北京是中华人民共和国的首都，也是全国的政治中心。", "上海是中国最大的经济中心。"]}),
    ("/v1/spectra", {"spectra": [FLUX, {"wavelength": [4000.0 + i for i in range(3000)], "flux": [1.0] * 3000}]}),
    ("/v1/headline", {"text": "针对无线传感器网络中节点能量有限的问题,提出一种基于分簇的能量均衡路由协议.", "num_candidates": 3}),
]


class FakeTFServing:
    def __init__(self):
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.fixtures.fake_tfserving", "--model-root", str(BUNDLED_MODELS), "--port", str(port)],
            cwd=REPO,
        )

    def __enter__(self) -> "FakeTFServing":
        def up() -> bool:
            try:
                return httpx.post(f"{self.url}/v1/models/none/versions/1:predict", json={}, timeout=1).status_code == 404
            except httpx.TransportError:
                return False

        wait_until(up, timeout=60)
        return self

    def __exit__(self, *exc) -> None:
        self.process.kill()
        self.process.wait()


def _remote_app(url: str, tasks=TASKS, **settings) -> TestClient:
    return TestClient(create_app(Settings(
        model_root=BUNDLED_MODELS, backends={t: "tfserving" for t in tasks}, tfserving_url=url, **settings
    )))


@pytest.fixture(scope="module")
def remote_client():
    with FakeTFServing() as tfserving, _remote_app(tfserving.url) as client:
        yield client


def test_every_task_is_served_through_tfserving(remote_client):
    models = remote_client.get("/v1/models").json()
    assert {m["task"]: m["backend"] for m in models["models"]} == {t: "tfserving" for t in TASKS}
    assert remote_client.get("/readyz").status_code == 200


@pytest.mark.parametrize(("path", "body"), REQUESTS, ids=[p for p, _ in REQUESTS])
def test_both_backends_give_identical_answers(remote_client, client, path, body):
    remote, local = remote_client.post(path, json=body), client.post(path, json=body)
    assert remote.status_code == local.status_code == 200
    assert remote.json() == local.json()


def test_a_tfserving_that_cannot_be_reached_leaves_the_task_unavailable():
    nobody = f"http://127.0.0.1:{free_port()}"
    with _remote_app(nobody, tasks=["spectra"], tfserving_retries=0, tfserving_timeout_s=2) as client:
        assert "spectra" in client.get("/v1/models").json()["load_errors"]  # its warm-up failed
        assert client.post("/v1/spectra", json={"spectra": [FLUX]}).status_code == 503
        assert client.post("/v1/ner", json={"text": "李鹏在北京。"}).status_code == 200  # in process


def test_tfserving_going_away_gives_502_naming_it():
    with FakeTFServing() as tfserving, _remote_app(tfserving.url, tasks=["spectra"], tfserving_retries=0) as client:
        assert client.post("/v1/spectra", json={"spectra": [FLUX]}).status_code == 200
        tfserving.process.kill()
        tfserving.process.wait()
        response = client.post("/v1/spectra", json={"spectra": [FLUX]})
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "model_server_error"
