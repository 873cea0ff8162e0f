"""bench/serve.py's report, from made-up measurements (the measurements themselves are exercised
against the real server in test_server.py)."""

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
