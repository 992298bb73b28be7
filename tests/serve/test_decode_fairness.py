"""The decode pool serves requests in turn, and decoding work per image is bounded (issue 20, item 4)."""

import io
import threading
import time

import numpy as np
import pytest
from PIL import Image

from imreward.errors import ImageLoadError
from imreward.image_io import MAX_JPEG_SCANS, jpeg_scan_count, load_image
from imreward.serve.fair_pool import FairPool


def test_a_one_image_request_does_not_wait_for_a_large_one():
    pool, order, gate = FairPool(1), [], threading.Event()

    def task(name: str) -> str:
        if name == "A0":
            gate.wait(5)
        order.append(name)
        return name

    large = [pool.submit("A", task, f"A{i}") for i in range(10)]
    time.sleep(0.05)  # A0 is running
    small = pool.submit("B", task, "B0")
    gate.set()
    assert small.result(5) == "B0" and [f.result(5) for f in large][-1] == "A9"
    assert order.index("B0") == 2  # after the running A0 and one more of A's, not after all ten
    pool.shutdown()
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit("C", task, "C0")


def test_errors_reach_their_own_future_only():
    pool = FairPool(2)
    failing = pool.submit("A", lambda: 1 / 0)
    fine = pool.submit("B", lambda: 42)
    with pytest.raises(ZeroDivisionError):
        failing.result(5)
    assert fine.result(5) == 42
    pool.shutdown()


def progressive_jpeg(scans_repeated: int = 0) -> bytes:
    """A progressive JPEG; with ``scans_repeated``, its first scan repeated that many times more."""
    pixels = np.random.default_rng(0).integers(0, 256, (64, 80, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", progressive=True)
    data = buffer.getvalue()
    first = data.index(b"\xff\xda")
    second = data.index(b"\xff\xda", first + 2)
    return data[:second] + data[first:second] * scans_repeated + data[second:]


def test_jpegs_of_many_scans_are_refused_before_decoding():
    normal = progressive_jpeg()
    assert jpeg_scan_count(normal) == 10 and load_image(normal).size == (80, 64)
    bomb = progressive_jpeg(scans_repeated=2000)
    assert jpeg_scan_count(bomb) > MAX_JPEG_SCANS and len(bomb) < 2_000_000
    started = time.process_time()
    with pytest.raises(ImageLoadError, match=f"more than {MAX_JPEG_SCANS} scans"):
        load_image(bomb)
    assert time.process_time() - started < 1.0
