"""Password hashing off the page-serving threads, bounded.

Argon2 takes 64 MiB and about a second per hash by design. Run on the thread pool that serves
pages, 40 logins at once (for any names: an unknown name is hashed too, so that timing does not
reveal which names exist) take the threads logged-in annotators' pages need and about 2.5 GB.
Here at most ``threads`` hashes run at once in threads of their own, at most ``queue`` more wait,
and a login beyond that is answered 503 with ``Retry-After`` at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

Result = TypeVar("Result")


class PasswordChecksBusy(Exception):
    """Every hashing thread is busy and the queue is full."""


class PasswordChecks:
    def __init__(self, threads: int = 2, queue: int = 8) -> None:
        if threads < 1 or queue < 0:
            raise ValueError("password hashing needs at least one thread and a queue of 0 or more")
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="password")
        self.limit = threads + queue
        self.pending = 0  # changed on the event loop only

    def full(self) -> bool:
        return self.pending >= self.limit

    async def run(self, function: Callable[..., Result], *args: Any) -> Result:
        """``function(*args)`` in a hashing thread; PasswordChecksBusy when the queue is full."""
        if self.full():
            raise PasswordChecksBusy()
        self.pending += 1
        try:
            return await asyncio.wrap_future(self.pool.submit(function, *args))
        finally:
            self.pending -= 1
