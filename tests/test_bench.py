"""bench/serve.py's report, from made-up measurements (the measurements themselves are exercised
against the real server in test_server.py)."""

import json
import os

import numpy as np
import pytest

from app.batching import BatchPolicy
from bench.serve import Level, RawLevel, Usage, print_table, split_cpus


def level(concurrency: int, requests_per_s: float, server_cpu_ms: float, client_cpu_ms: float) -> Level:
    usage = Usage(server_cpu_ms=server_cpu_ms, client_cpu_ms=client_cpu_ms, mean_batch=1.0, model_ms=1.0)
    return Level(concurrency, int(requests_per_s), 0, 1.0, np.full(10, 5.0), usage)


@pytest.mark.parametrize(
    "client_shares_cores, expected",
    [
        # (a) costs 1.5 + 0.5 = 2 ms of CPU per request: 2 cores answer at most 1000 per second,
        # half the best raw throughput; (b) costs 8 + 0.5 = 8.5 ms, 4.25 times as much.
        (True, "| 32 | 3.00× | 4.25× | 0.30 | 0.50 | 5.0 | 52.0 |"),
        # The load generator on other cores: only the server's 1.5 and 8 ms count.
        (False, "| 32 | 3.00× | 5.33× | 0.30 | 0.67 | 5.0 | 52.0 |"),
    ],
)
def test_the_ratio_table_shows_what_the_cores_allow(capsys, client_shares_cores, expected):
    result = {
        "raw": {1: RawLevel(500.0, 2.0, 3.0), 32: RawLevel(2000.0, 16.0, 1.0)},
        "batching": {32: level(32, 600.0, 1.5, 0.5)},
        "no-batching": {32: level(32, 200.0, 8.0, 0.5)},
    }
    print_table("ner", result, BatchPolicy(max_batch_size=32, max_wait_ms=20), 2, client_shares_cores)
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| 32 |")]
    assert rows == [expected]


def test_the_access_control_run_is_a_row_of_its_own(capsys):
    result = {
        "raw": {32: RawLevel(2000.0, 16.0, 1.0)},
        "batching": {32: level(32, 600.0, 1.5, 0.5)},
        "no-batching": {32: level(32, 200.0, 8.0, 0.5)},
        "batching+access": {32: level(32, 590.0, 1.6, 0.5)},
    }
    print_table("ner", result, BatchPolicy(), 2, True)
    assert "| (a) + API key and rate limit | 32 | 590 | 0 | 590.0 |" in capsys.readouterr().out


def test_server_cpus_split_the_machine():
    usable = os.sched_getaffinity(0)
    assert split_cpus(None) == (None, None)
    if len(usable) > 1:
        first = min(usable)
        assert split_cpus([first]) == ({first}, usable - {first})
    with pytest.raises(SystemExit):
        split_cpus(sorted(usable))  # nothing left for the load generator


CMRC_STYLE = {
    "version": "v1.0",
    "data": [
        {"paragraphs": [{"id": "P1", "context": "北京是中华人民共和国的首都。", "qas": [
            {"id": "Q1", "question": "中国的首都是哪里？", "answers": [{"text": "北京", "answer_start": 0}]},
            {"id": "Q2", "question": "北京是哪个国家的首都？", "answers": [{"text": "中华人民共和国", "answer_start": 3}]},
        ]}]},
        {"paragraphs": [{"id": "P2", "context": "长江全长约6300公里。", "qas": [
            {"id": "Q3", "question": "长江有多长？", "answers": [{"text": "6300公里", "answer_start": 5}]},
        ]}]},
    ],
}


def test_a_cut_dataset_keeps_the_first_questions_in_order():
    from bench.qa_official import first_questions, questions_of

    cut = first_questions(CMRC_STYLE, 2)
    assert [q["id"] for q in questions_of(cut)] == ["Q1", "Q2"]
    assert len(cut["data"]) == 1  # the article left without questions is dropped
    assert [q["context"] for q in questions_of(first_questions(CMRC_STYLE, None))][-1] == "长江全长约6300公里。"


# Stands in for the official CMRC 2018 script, which is not in the repository (nor reachable from
# CI): it takes the same arguments and prints the same JSON line.
STAND_IN_SCRIPT = """
import json, sys
dataset, predictions = (json.load(open(path, encoding="utf-8")) for path in sys.argv[1:3])
qas = [qa for article in dataset["data"] for p in article["paragraphs"] for qa in p["qas"]]
em = 100.0 * sum(predictions.get(qa["id"]) in [a["text"] for a in qa["answers"]] for qa in qas) / len(qas)
print(json.dumps({"AVERAGE": "%.3f" % em, "F1": "%.3f" % em, "EM": "%.3f" % em, "TOTAL": len(qas), "SKIP": 0}))
"""


@pytest.mark.slow  # starts the service with the bundled models
def test_qa_official_asks_the_running_service_over_http(tmp_path, capsys):
    from bench.qa_official import main

    (tmp_path / "cmrc2018").mkdir()
    (tmp_path / "cmrc2018" / "cmrc2018_dev.json").write_text(json.dumps(CMRC_STYLE, ensure_ascii=False), encoding="utf-8")
    script = tmp_path / "stand_in_evaluate.py"
    script.write_text(STAND_IN_SCRIPT)
    predictions = tmp_path / "answers.json"
    main(["--official-script", str(script), "--data-dir", str(tmp_path), "--predictions", str(predictions), "--concurrency", "2"])
    answers = json.loads(predictions.read_text(encoding="utf-8"))
    assert list(answers) == ["Q1", "Q2", "Q3"]
    assert answers["Q1"] == "北京"
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["questions"] == 3 and result["official"]["TOTAL"] == 3
