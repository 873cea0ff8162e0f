"""Prometheus metrics for ``GET /metrics``, in a collector registry owned by the app."""

from __future__ import annotations

from typing import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from app.batching import BatcherMetrics
from app.registry import LoadedModel, ModelRegistry

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics(BatcherMetrics):
    """Request, batch and model metrics; one instance per app, so test apps never collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ["route", "method", "status"]
        self.requests = Counter("http_requests", "HTTP requests", labels, registry=self.registry)
        self.request_seconds = Histogram(
            "http_request_duration_seconds", "Time to answer an HTTP request", labels,
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.batch_size = Histogram(
            "model_batch_size", "Items per batched model call", ["task"], buckets=BATCH_BUCKETS, registry=self.registry
        )
        self.inference_seconds = Histogram(
            "model_inference_seconds", "Time of one batched model call", ["task"],
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.rejections = Counter(
            "model_queue_rejections", "Requests refused because the model's queue was full", ["task"],
            registry=self.registry,
        )
        self.reloads = Counter("model_reloads", "Model reload attempts", ["task", "outcome"], registry=self.registry)
        self.model_requests = Counter(
            "model_requests", "Requests answered by each model version (outcome: ok or error)",
            ["model", "version", "outcome"], registry=self.registry,
        )
        self.model_request_seconds = Histogram(
            "model_request_duration_seconds", "Time a request held its model version, admission to answer",
            ["model", "version"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.request_seconds.labels(route, method, str(status)).observe(seconds)

    def observe_model_request(self, model: LoadedModel, outcome: str, seconds: float) -> None:
        self.model_requests.labels(model.model, str(model.version), outcome).inc()
        self.model_request_seconds.labels(model.model, str(model.version)).observe(seconds)

    def observe_batch(self, name: str, size: int, seconds: float) -> None:
        self.batch_size.labels(name).observe(size)
        self.inference_seconds.labels(name).observe(seconds)

    def observe_rejection(self, name: str) -> None:
        self.rejections.labels(name).inc()

    def watch(self, registry: ModelRegistry, queue_depths: Callable[[], dict[str, int]]) -> None:
        """Report serving versions and queue depths, read at scrape time."""
        self.registry.register(_ServingState(registry, queue_depths))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _ServingState(Collector):
    def __init__(self, registry: ModelRegistry, queue_depths: Callable[[], dict[str, int]]):
        self._registry = registry
        self._queue_depths = queue_depths

    def collect(self) -> Iterable[GaugeMetricFamily]:
        versions = GaugeMetricFamily(
            "model_version_info", "Each loaded model version (value 1; serving: the one that answers callers who name none)",
            labels=["model", "task", "version", "serving"],
        )
        for served in self._registry.models():
            for version in served["loaded_versions"]:
                serving = str(version == served["serving_version"]).lower()
                versions.add_metric([served["model"], served["task"], str(version), serving], 1)
        yield versions
        depth = GaugeMetricFamily("model_queue_depth", "Items waiting for each model", labels=["task"])
        for task, items in self._queue_depths().items():
            depth.add_metric([task], items)
        yield depth
