"""Prometheus metrics of one server instance (its own registry, so several apps can coexist)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ServerMetrics:
    """Requests, images, batch sizes, latency and errors, exposed at ``GET /metrics``."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("imreward_requests", "HTTP requests to /v1/score by status code",
                                ["status"], registry=self.registry)
        self.images = Counter("imreward_images", "images received, by model and outcome (scored or failed)",
                              ["model", "outcome"], registry=self.registry)
        self.errors = Counter("imreward_errors", "rejected requests and failed items by reason",
                              ["reason"], registry=self.registry)
        self.batch_size = Histogram("imreward_batch_size", "images per model forward", ["model"],
                                    buckets=BATCH_SIZE_BUCKETS, registry=self.registry)
        self.forward_seconds = Histogram("imreward_forward_seconds", "time of one batched model forward",
                                         ["model"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.latency = Histogram("imreward_request_latency_seconds", "time to answer /v1/score",
                                 buckets=LATENCY_BUCKETS, registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
