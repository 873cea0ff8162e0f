"""Serving benchmark: the real server on loopback, with batching on and off, against the raw model call.

``python -m bench.serve`` (``make bench``). For each task it measures

(a) the server with its configured micro-batching,
(b) the server with batching off (``max_batch_size`` 1),
(c) the task pipeline's model call (``pipeline.read``, what one server batch runs) in-process, at
    batch sizes equal to each concurrency,

and with ``--with-access`` also (a) behind an API key and a per-key rate limit (what access
control costs per request),

and prints one table per task (throughput, p50/p95/p99 latency, failures, where the CPU
went) with the ratios (a)/(b) and (a)/(best c) and what the shared CPU cores allow them
to be (:func:`print_table`). Every level is bounded in requests and seconds, and
the load generator (httpcore, see :func:`drive`) talks only to 127.0.0.1. One request carries one item, so
requests/s and items/s coincide.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import httpcore
import httpx
import numpy as np

REPO = Path(__file__).resolve().parent.parent

# News-style sentences of typical length; NER latency grows with text length.
NER_TEXTS = [
    "新华社北京电国务院总理李鹏今天会见了日本客人。",
    "中国人民银行行长周小川在上海出席了金融论坛。",
    "记者从广东省教育厅获悉，今年全省高考报名人数再创新高。",
    "联合国秘书长安南昨天抵达日内瓦，与瑞士总统举行会谈。",
    "张三和李四上周末去杭州西湖游玩，还参观了浙江大学。",
    "北京大学和清华大学的学生在中关村举办了一场科技展览。",
    "美国国务卿奥尔布赖特将于下月访问中国和韩国。",
    "据香港特别行政区政府统计处公布的数据，上月零售业总销货价值上升。",
]


def _spectra_bodies(encoding: str, count: int = 8) -> list[bytes]:
    """Power-law spectra with noise, as JSON numbers (three decimals) or as base64 float32."""
    from app.tasks.spectra.grid import LAMOST

    rng = np.random.default_rng(0)
    bodies = []
    for _ in range(count):
        flux = np.round(100 * (LAMOST.wavelength / 6000) ** rng.uniform(-2.5, 0.5) + rng.normal(0, 2, LAMOST.npix), 3)
        spectrum = (
            {"flux_b64": base64.b64encode(flux.astype("<f4").tobytes()).decode()} if encoding == "b64" else flux.tolist()
        )
        bodies.append(json.dumps({"spectra": [spectrum]}).encode())
    return bodies


def _flux_row(spectrum) -> np.ndarray:
    if isinstance(spectrum, dict):
        return np.frombuffer(base64.b64decode(spectrum["flux_b64"]), dtype="<f4")
    return np.asarray(spectrum, dtype=np.float32)


QA_BODIES = [
    {"question": "中国的首都是哪里？", "passages": ["北京是中华人民共和国的首都，也是全国的政治中心和文化中心。"]},
    {"question": "长江全长多少公里？", "passages": ["长江是中国第一长河，全长约6300公里，流经青海、西藏、四川等省区。"]},
    {"question": "谁发明了电话？", "passages": ["1876年，贝尔发明了电话，并获得了专利，电话很快在世界各地普及。"]},
    {"question": "珠穆朗玛峰有多高？", "passages": ["珠穆朗玛峰是世界最高峰，海拔8848.86米，位于中国和尼泊尔边界。"]},
]

HEADLINE_TEXTS = [
    "针对无线传感器网络中节点能量有限的问题,提出一种基于分簇的能量均衡路由协议,仿真结果表明该协议延长了网络寿命.",
    "提出了一种新的保细节的变形算法,可以使网格模型进行尽量刚性的变形,以减少变形中几何细节的扭曲.",
    "为了提高图像检索的准确率,提出一种结合颜色和纹理特征的检索方法,实验表明该方法优于传统方法.",
    "研究了云计算环境下的任务调度问题,提出一种基于遗传算法的调度策略,有效缩短了任务完成时间.",
]

TASKS = ("ner", "spectra", "qa", "headline")


@dataclass
class Workload:
    task: str
    path: str
    bodies: list[bytes]  # one item each (a QA request has one short passage: one window)

    def raw_call(self, pipeline, batch: int) -> Callable[[], list]:
        """One model call of the task's pipeline (what a server batch runs) on ``batch`` items like the
        request bodies, with its inputs prepared in advance (as the server prepares them before queueing)."""
        requests = [json.loads(self.bodies[i % len(self.bodies)]) for i in range(batch)]
        if self.task == "ner":
            items = [r["text"] for r in requests]
        elif self.task == "spectra":
            items = [_flux_row(r["spectra"][0]) for r in requests]
        elif self.task == "qa":
            items = [row for r in requests for row in pipeline.plan(r["question"], r["passages"]).rows]
        else:
            items = [pipeline.job(r["text"]) for r in requests]
        return lambda: pipeline.read(items)


def _bodies(requests: list[dict]) -> list[bytes]:
    return [json.dumps(r, ensure_ascii=False).encode() for r in requests]


def workload(task: str, spectra_encoding: str = "json", model: str | None = None) -> Workload:
    """Requests of one item each for ``task``, of typical length, for ``model`` (default: the task's
    default model)."""
    bodies = {
        "ner": lambda: _bodies([{"text": t} for t in NER_TEXTS]),
        "spectra": lambda: _spectra_bodies(spectra_encoding),
        "qa": lambda: _bodies(QA_BODIES),
        "headline": lambda: _bodies([{"text": t} for t in HEADLINE_TEXTS]),
    }[task]()
    if model:
        bodies = [json.dumps({**json.loads(body), "model": model}, ensure_ascii=False).encode() for body in bodies]
    return Workload(task, f"/v1/{task}", bodies)


@dataclass
class Level:
    concurrency: int
    requests: int
    failed: int
    seconds: float
    latencies_ms: np.ndarray
    usage: "Usage | None" = None  # where the time went, when measured against a Server

    @property
    def throughput(self) -> float:
        return (self.requests - self.failed) / self.seconds

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if len(self.latencies_ms) else float("nan")


async def drive(
    url: str, load: Workload, concurrency: int, max_requests: int, max_seconds: float, headers: dict[str, str] | None = None
) -> Level:
    """``concurrency`` closed-loop clients share a budget of requests and seconds.

    The clients speak HTTP/1.1 through httpcore, the transport under httpx, each on a
    keep-alive connection of its own: on this 2-core machine a full httpx client spent
    3–5 ms of CPU per request (measured), more than the server it was measuring, while
    httpcore spends about 1 ms.
    """
    # This process may hold TensorFlow and a SavedModel (column (c)): a full garbage collection
    # walking them stalls the clients for ~200 ms, which would count as server latency; frozen
    # for the level, the collector leaves them alone.
    gc.collect()
    gc.freeze()
    try:
        return await _closed_loop(url, load, concurrency, max_requests, max_seconds, headers or {})
    finally:
        gc.unfreeze()


async def _closed_loop(
    url: str, load: Workload, concurrency: int, max_requests: int, max_seconds: float, extra_headers: dict[str, str]
) -> Level:
    latencies: list[float] = []
    failed = 0
    issued = 0
    headers = [(b"content-type", b"application/json"), *((k.encode(), v.encode()) for k, v in extra_headers.items())]
    timeouts = {"timeout": {"connect": 10, "read": 60, "write": 10, "pool": 10}}
    started = time.perf_counter()
    deadline = started + max_seconds

    async def client_loop(worker: int) -> None:
        nonlocal issued, failed
        async with httpcore.AsyncConnectionPool(max_connections=1) as connection:
            while issued < max_requests and time.perf_counter() < deadline:
                body = load.bodies[(issued + worker) % len(load.bodies)]
                issued += 1
                sent = time.perf_counter()
                try:
                    response = await connection.request(
                        "POST", url + load.path, headers=headers, content=body, extensions=timeouts
                    )
                    ok = response.status == 200
                except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.TimeoutException):
                    ok = False
                latencies.append((time.perf_counter() - sent) * 1000)
                failed += not ok

    await asyncio.gather(*(client_loop(i) for i in range(concurrency)))
    seconds = time.perf_counter() - started
    return Level(concurrency, len(latencies), failed, seconds, np.array(latencies))


@dataclass
class Usage:
    """Per answered request over one level: CPU of the server process and of this (client)
    process, and what the server's ``/metrics`` says of its model calls."""

    server_cpu_ms: float
    client_cpu_ms: float
    mean_batch: float
    model_ms: float  # wall time inside batched model calls


@dataclass
class _Counters:
    server_cpu: float
    client_cpu: float
    batches: float
    batch_items: float
    model_seconds: float

    @classmethod
    def read(cls, server: "Server", task: str) -> "_Counters":
        from prometheus_client.parser import text_string_to_metric_families

        values = {}
        exposition = httpx.get(f"{server.url}/metrics", headers=server.headers, timeout=10).text
        for family in text_string_to_metric_families(exposition):
            for sample in family.samples:
                if sample.labels.get("task") == task:
                    values[sample.name] = sample.value
        return cls(
            server.cpu_seconds(), time.process_time(), values.get("model_batch_size_count", 0.0),
            values.get("model_batch_size_sum", 0.0), values.get("model_inference_seconds_sum", 0.0),
        )

    def usage_until(self, later: "_Counters", requests: int) -> Usage:
        n = max(requests, 1)
        batches = later.batches - self.batches
        return Usage(
            server_cpu_ms=1000 * (later.server_cpu - self.server_cpu) / n,
            client_cpu_ms=1000 * (later.client_cpu - self.client_cpu) / n,
            mean_batch=(later.batch_items - self.batch_items) / batches if batches else float("nan"),
            model_ms=1000 * (later.model_seconds - self.model_seconds) / n,
        )


def measured_level(server: "Server", load: Workload, concurrency: int, max_requests: int, max_seconds: float) -> Level:
    """:func:`drive` one level against ``server``, with the :class:`Usage` it cost."""
    before = _Counters.read(server, load.task)
    level = asyncio.run(drive(server.url, load, concurrency, max_requests, max_seconds, server.headers))
    level.usage = before.usage_until(_Counters.read(server, load.task), level.requests)
    return level


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """The service (``python -m app.server``, uvicorn) on a free loopback port, with extra ``APP_*`` settings.

    Its output goes to a temporary file (a pipe nobody reads would block the server once
    full), whose tail explains a server that fails to start.
    """

    def __init__(self, env: dict[str, str], cpus: set[int] | None = None, api_key: str | None = None):
        """``cpus``: the cores the server may run on (default: this process's); ``api_key``: what
        callers send (:attr:`headers`) when ``env`` configures keys."""
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.output = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app.server", "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"],
            cwd=REPO,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "APP_LOG_LEVEL": "WARNING", **env},
            stdout=self.output,
            stderr=subprocess.STDOUT,
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
        )

    def __enter__(self) -> "Server":
        deadline = time.monotonic() + 180
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"server exited during start-up:\n{self._output_tail()}")
                try:
                    if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                        return self
                except httpx.TransportError:
                    pass
                time.sleep(0.5)
            raise RuntimeError(f"server not ready within 180 s:\n{self._output_tail()}")
        except BaseException:
            self.__exit__()
            raise

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.output.close()

    def cpu_seconds(self) -> float:
        """User + system CPU the server process has used (Linux ``/proc``; NaN elsewhere)."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def _output_tail(self, chars: int = 4000) -> str:
        self.output.seek(0)
        return self.output.read().decode(errors="replace")[-chars:]


@dataclass
class RawLevel:
    """The SavedModel's signature called in this process at one batch size."""

    items_per_s: float
    ms_per_call: float
    cpu_ms_per_item: float  # this process's CPU, all threads


def raw_model(model: str, load: Workload, batch_sizes: list[int], max_seconds: float) -> dict[int, RawLevel]:
    """Each batch size's :class:`RawLevel` of the bundled ``model``, in this process."""
    from app.registry import ModelRegistry

    pipeline = ModelRegistry(REPO / "models").load(model).pipeline
    results = {}
    for batch in batch_sizes:
        call = load.raw_call(pipeline, batch)
        call()  # warm-up
        calls, started, cpu_started = 0, time.perf_counter(), time.process_time()
        while calls < 5 or (time.perf_counter() - started < max_seconds and calls < 200):
            call()
            calls += 1
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
        results[batch] = RawLevel(batch * calls / seconds, 1000 * seconds / calls, 1000 * cpu_seconds / (batch * calls))
    return results


def _batching_env(task: str, policy) -> dict[str, str]:
    """``APP_BATCHING__<TASK>__<FIELD>`` variables that make the server use ``policy``."""
    return {f"APP_BATCHING__{task.upper()}__{name.upper()}": str(value) for name, value in policy.model_dump().items()}


@contextmanager
def pinned(cpus: set[int] | None) -> Iterator[None]:
    """Run this thread, and the threads it starts meanwhile, on ``cpus`` (None: leave as is)."""
    if not cpus:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def run_task(
    task: str, policy, args: argparse.Namespace, server_cpus: set[int] | None, client_cpus: set[int] | None
) -> dict:
    """(c) on the server's cores, then (a) and (b) with the load generator on its own cores when
    :func:`split_cpus` gave it some, or on the same ones (None: all)."""
    load = workload(task, args.spectra_encoding, args.model)
    print(f"\n## {task}: raw SavedModel in-process", file=sys.stderr, flush=True)
    with pinned(server_cpus):  # TensorFlow's threads keep the cores they start on
        raw = raw_model(args.model or task, load, args.concurrency, args.max_seconds / 4)
    modes = {}
    unbatched = policy.model_copy(update={"max_batch_size": 1, "max_wait_ms": 0})
    runs = [("batching", policy, False), ("no-batching", unbatched, False)]
    if args.with_access:
        runs.append(("batching+access", policy, True))
    if args.with_two_versions:
        runs.append(("two-versions", policy, False))
    for mode, mode_policy, keyed in runs:
        print(f"## {task}: server, {mode}", file=sys.stderr, flush=True)
        with access_env(keyed) as (extra_env, api_key), versions_env(load, mode == "two-versions") as (store_env, mode_load):
            env = {**_batching_env(task, mode_policy), **extra_env, **store_env}
            mode_load = mode_load or load
            with Server(env, server_cpus, api_key) as server, pinned(client_cpus):
                asyncio.run(drive(server.url, mode_load, 8, 50, 10, server.headers))  # warm the connection pool and the model
                modes[mode] = {c: measured_level(server, mode_load, c, args.requests, args.max_seconds) for c in args.concurrency}
    return {"raw": raw, **modes}


@contextmanager
def versions_env(load: Workload, two: bool) -> Iterator[tuple[dict[str, str], Workload | None]]:
    """For ``two``: a store with the task's bundled model as versions 1 and 2 (linked), both
    loaded, and ``load``'s requests pinned to them in turn (each batch holds one version's
    requests); else nothing changes."""
    if not two:
        yield {}, None
        return
    from app.model_store import resolve_version

    task = load.task
    bodies = [json.dumps({**json.loads(body), "version": 1 + i % 2}).encode() for i, body in enumerate(load.bodies * 2)]
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / task).mkdir()
        for version in (1, 2):
            (Path(folder) / task / str(version)).symlink_to(resolve_version(REPO / "models" / task), target_is_directory=True)
        yield {"APP_MODEL_ROOT": folder, "APP_SERVE_VERSIONS": "all"}, Workload(task, load.path, bodies)


@contextmanager
def access_env(keyed: bool) -> Iterator[tuple[dict[str, str], str | None]]:
    """Settings and key for a server that checks an API key and counts a rate limit (in memory)
    on every request — one that never binds, so only its cost shows — or for an open one."""
    if not keyed:
        yield {}, None
        return
    from app.keys import ApiKey, hash_key, write_keys

    key = "msk_benchmark-key-not-secret"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "keys.yaml"
        write_keys(path, [ApiKey("bench", hash_key(key), frozenset({"predict", "metrics"}), "100000000/minute")])
        yield {"APP_API_KEYS_FILE": str(path)}, key


def split_cpus(server_cpus: list[int] | None) -> tuple[set[int] | None, set[int] | None]:
    """The server's cores and the load generator's (the rest); (None, None) shares them all."""
    if not server_cpus:
        return None, None
    available = os.sched_getaffinity(0)
    server, client = set(server_cpus), available - set(server_cpus)
    if not server <= available or not client:
        raise SystemExit(f"--server-cpus {sorted(server)} must be a proper subset of the usable CPUs {sorted(available)}")
    return server, client


def print_table(title: str, result: dict, policy, cores: int, client_shares_cores: bool) -> None:
    """The task's levels, then per concurrency the ratios, with what the CPU allows them to be.

    When the server's ``cores`` are the limit, (a) can answer at most ``cores / CPU per request``
    requests per second (counting the load generator's CPU too when it runs on the same cores);
    divided by the best raw throughput that is the most (a)/(best c) can be however the
    batching is tuned, and the CPU per request of (b) over that of (a) is what (a)/(b) comes to.
    """

    def cpu_per_request_ms(level: Level) -> float:
        return level.usage.server_cpu_ms + (level.usage.client_cpu_ms if client_shares_cores else 0.0)

    raw, on, off = result["raw"], result["batching"], result["no-batching"]
    best_raw = max(level.items_per_s for level in raw.values())
    print(f"\n### {title} (max batch {policy.max_batch_size}, max wait {policy.max_wait_ms:g} ms)\n")
    print(
        "| mode | concurrency | requests | failed | req/s | p50 ms | p95 ms | p99 ms "
        "| mean batch | model ms/req | server CPU ms/req | client CPU ms/req |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    named = [("(a) batching", on), ("(b) no batching", off)]
    if "batching+access" in result:
        named.append(("(a) + API key and rate limit", result["batching+access"]))
    if "two-versions" in result:
        named.append(("(a) with two versions loaded, requests pinned to each in turn", result["two-versions"]))
    for name, levels in named:
        for c, level in levels.items():
            u = level.usage
            print(
                f"| {name} | {c} | {level.requests} | {level.failed} | {level.throughput:.1f} | "
                f"{level.percentile(50):.1f} | {level.percentile(95):.1f} | {level.percentile(99):.1f} | "
                f"{u.mean_batch:.1f} | {u.model_ms:.2f} | {u.server_cpu_ms:.2f} | {u.client_cpu_ms:.2f} |"
            )
    for c, level in raw.items():
        print(
            f"| (c) raw SavedModel, batch {c} | – | – | – | {level.items_per_s:.1f} items/s | "
            f"{level.ms_per_call:.1f} per call | | | | | {level.cpu_ms_per_item:.2f} per item | |"
        )
    if "two-versions" in result:
        two = result["two-versions"]
        print("\n| concurrency | two versions / one: throughput | server CPU per request | p50 |")
        print("|---:|---:|---:|---:|")
        for c in on:
            print(
                f"| {c} | {two[c].throughput / on[c].throughput:.2f}× | "
                f"{two[c].usage.server_cpu_ms / on[c].usage.server_cpu_ms:.2f}× | {two[c].percentile(50) / on[c].percentile(50):.2f}× |"
            )
    print(
        "\n| concurrency | (a)/(b) throughput | CPU per request (b)/(a) | (a)/(best c) throughput "
        f"| most (a)/(best c) on {cores} cores | p99 (a) ms | bound: wait + 2 × raw call at this batch ms |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for c in on:
        batch = min(c, policy.max_batch_size)
        bound = policy.max_wait_ms + 2 * raw[batch].ms_per_call if batch in raw else float("nan")
        cpu_on = cpu_per_request_ms(on[c])
        print(
            f"| {c} | {on[c].throughput / off[c].throughput:.2f}× | {cpu_per_request_ms(off[c]) / cpu_on:.2f}× | "
            f"{on[c].throughput / best_raw:.2f} | {1000 * cores / cpu_on / best_raw:.2f} | "
            f"{on[c].percentile(99):.1f} | {bound:.1f} |"
        )


def plot_task(title: str, result: dict, path: Path) -> Path:
    """Throughput and p99 latency against concurrency for (a) batching on and (b) off, with the raw
    SavedModel's best items/s as the ceiling: one PNG per task, for docs/benchmark.md."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4), constrained_layout=True)
    for (name, label), style in zip([("batching", "(a) batching"), ("no-batching", "(b) no batching")], ("o-", "s--")):
        levels = result[name]
        concurrency = list(levels)
        left.plot(concurrency, [levels[c].throughput for c in concurrency], style, label=label)
        right.plot(concurrency, [levels[c].percentile(99) for c in concurrency], style, label=label)
    best_raw = max(level.items_per_s for level in result["raw"].values())
    left.axhline(best_raw, color="grey", linestyle=":", label="(c) raw SavedModel, best batch")
    for axis, ylabel in ((left, "requests / s"), (right, "p99 latency (ms)")):
        axis.set_xscale("log", base=2)
        axis.set_xlabel("concurrent clients")
        axis.set_ylabel(ylabel)
        axis.grid(True, alpha=0.3)
    right.set_yscale("log")
    left.legend(fontsize=8)
    figure.suptitle(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--concurrency", nargs="+", type=int, default=[1, 8, 32, 128])
    parser.add_argument("--requests", type=int, default=2000, help="most requests per level")
    parser.add_argument("--max-seconds", type=float, default=20, help="most seconds per level")
    parser.add_argument(
        "--spectra-encoding", choices=("json", "b64"), default="json",
        help="spectra requests carry JSON numbers, or base64 float32 ({flux_b64})",
    )
    parser.add_argument(
        "--server-cpus", nargs="+", type=int,
        help="run the server (and (c)) on these CPUs and the load generator on the others (default: all share all)",
    )
    parser.add_argument(
        "--with-access", action="store_true",
        help="also run (a) with an API keys file and a per-key rate limit (counted, never reached): what access control costs",
    )
    parser.add_argument(
        "--with-two-versions", action="store_true",
        help="also run (a) with two versions of the model loaded and requests pinned to each in turn: what serving two costs",
    )
    parser.add_argument(
        "--model", help="a bundled model of the (one) task other than its default, e.g. ner-fine; requests name it"
    )
    parser.add_argument("--plots", type=Path, help="also write one PNG per task (throughput and p99 against concurrency) here")
    parser.add_argument("--max-batch-size", type=int, help="override the configured policy for (a)")
    parser.add_argument("--max-wait-ms", type=float, help="override the configured policy for (a)")
    args = parser.parse_args(argv)
    if args.model and len(args.tasks) != 1:
        parser.error("--model names a model of one task: give that task alone with --tasks")
    if args.model and args.with_two_versions:
        parser.error("--with-two-versions serves the task's default model: leave out --model")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from app.batching import BatchPolicy
    from app.settings import Settings

    settings = Settings()
    command = " ".join(["python -m bench.serve", *(sys.argv[1:] if argv is None else argv)])
    server_cpus, client_cpus = split_cpus(args.server_cpus)
    cores = len(server_cpus or os.sched_getaffinity(0))
    where = f"server on CPUs {sorted(server_cpus)}, load generator on the others" if server_cpus else "server and load generator sharing them"
    print(f"# serving benchmark — {time.strftime('%Y-%m-%d')}, {len(os.sched_getaffinity(0))} CPUs ({where}), `{command}`")
    for task in args.tasks:
        policy = settings.batching.get(task, BatchPolicy())
        overrides = {"max_batch_size": args.max_batch_size, "max_wait_ms": args.max_wait_ms}
        policy = policy.model_copy(update={k: v for k, v in overrides.items() if v is not None})
        title = f"{task}, {args.spectra_encoding} bodies" if task == "spectra" else (args.model or task)
        result = run_task(task, policy, args, server_cpus, client_cpus)
        print_table(title, result, policy, cores, client_shares_cores=server_cpus is None)
        if args.plots:
            plot_task(title, result, args.plots / f"{title.replace(', ', '_').replace(' ', '_')}.png")


if __name__ == "__main__":
    main()
