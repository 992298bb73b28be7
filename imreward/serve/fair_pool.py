"""A thread pool that serves its submitters in turn, so one request's many images cannot delay another's.

A plain ``ThreadPoolExecutor`` runs tasks first come, first served: a request of 32 large images
queues 32 decodes, and a one-image request arriving just after waits for all of them. Here each
task carries the key of its submitter (the request); a free thread takes the oldest task of the
submitter that was served longest ago, so with ``n`` requests waiting each gets about ``1/n`` of
the threads, and a newcomer waits for the tasks already running and at most one task of each
request ahead of it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Any


class FairPool:
    """``workers`` threads taking tasks round-robin over submitter keys."""

    def __init__(self, workers: int, name: str = "fair") -> None:
        self._waiting: OrderedDict[Hashable, deque] = OrderedDict()  # key -> its tasks, next key first
        self._ready = threading.Condition()
        self._closed = False
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True) for i in range(workers)]
        for thread in self._threads:
            thread.start()

    def submit(self, key: Hashable, function: Callable[..., Any], *args: Any) -> Future:
        """Run ``function(*args)`` in turn with the other keys' tasks; its future."""
        future: Future = Future()
        with self._ready:
            if self._closed:
                raise RuntimeError("the pool is shut down")
            self._waiting.setdefault(key, deque()).append((future, function, args))
            self._ready.notify()
        return future

    def shutdown(self) -> None:
        """Run what is queued, then stop the threads."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()
        for thread in self._threads:
            thread.join()

    def _next(self):
        with self._ready:
            while not self._waiting:
                if self._closed:
                    return None
                self._ready.wait()
            key, tasks = next(iter(self._waiting.items()))
            task = tasks.popleft()
            if tasks:
                self._waiting.move_to_end(key)  # the other keys come first next time
            else:
                del self._waiting[key]
            return task

    def _work(self) -> None:
        while (task := self._next()) is not None:
            future, function, args = task
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(function(*args))
            except BaseException as error:  # handed to the waiting request, as an executor does
                future.set_exception(error)
