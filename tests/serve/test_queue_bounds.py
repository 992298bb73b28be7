"""Decoded images held by the server are bounded by default, in count and bytes (issue 20, item 3).

In-process: the model's forward waits on an event, so admitted images stay in flight."""

from __future__ import annotations

import io
import threading
import time

import msgpack
import pytest
from PIL import Image
from starlette.testclient import TestClient

from imreward.serve.app import create_app
from imreward.serve.settings import ServeSettings
from imreward.testing import tiny_model

ONE_PIXEL = io.BytesIO()
Image.new("RGB", (1, 1)).save(ONE_PIXEL, format="PNG")


def post(client: TestClient, count: int):
    body = msgpack.packb({"prompt": "a cat", "images": [ONE_PIXEL.getvalue()] * count})
    return client.post("/v1/score", content=body, headers={"content-type": "application/msgpack"})


@pytest.fixture
def held_server(monkeypatch):
    """(client, service, gate): forwards wait until ``gate`` is set."""

    def serve(settings: ServeSettings):
        model, gate = tiny_model().eval(), threading.Event()
        forward = model.score_preprocessed
        monkeypatch.setattr(model, "score_preprocessed", lambda *args: gate.wait(30) and forward(*args))
        app = create_app({"tiny": model}, settings)
        return app, gate

    return serve


def wait_until(condition, limit_s: float = 30.0) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def run_held(app, gate, first: int, second: int, until) -> tuple[list[int], object]:
    """Post ``first`` images and wait for ``until(service)``, then ``second`` images; release the forwards."""
    service = app.state.service
    with TestClient(app) as client:
        statuses: list[int] = []
        waiting = threading.Thread(target=lambda: statuses.append(post(client, first).status_code))
        waiting.start()
        wait_until(lambda: until(service))
        refused = post(client, second)
        gate.set()
        waiting.join(30)
    return statuses, refused


def test_images_in_flight_are_bounded_by_default(held_server):
    assert ServeSettings().max_queued_images == 512
    app, gate = held_server(ServeSettings(max_images_per_request=512))
    statuses, refused = run_held(app, gate, 512, 1, lambda service: service.images_in_flight == 512)
    assert statuses == [200] and refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert "512 images in flight" in refused.json()["detail"]


def test_decoded_bytes_held_are_bounded(held_server):
    per_image = 3 * 32 * 32 * 4  # the tiny model's preprocessed float32 image
    app, gate = held_server(ServeSettings(max_queued_bytes=12 * per_image))
    statuses, refused = run_held(app, gate, 8, 8, lambda service: service.bytes_held == 8 * per_image)
    assert statuses == [200] and refused.status_code == 503 and "decoded images held" in refused.json()["detail"]
    assert app.state.service.bytes_held == 0 and app.state.service.images_in_flight == 0
