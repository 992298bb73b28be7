"""Connection limits of the reward server that uvicorn lacks, and the uvicorn set-up that applies them.

uvicorn closes a keep-alive connection left idle after a response (``timeout_keep_alive``), but
keeps forever a new connection that sends nothing, or sends its headers or body a byte at a time
(slow loris), and accepts connections until the process runs out of file descriptors. Headers
are complete before the ASGI app is called, so an ASGI middleware cannot time them: hence a
subclass of uvicorn's h11 protocol (the one place that sees every byte) that

- closes a connection whose request headers are not complete ``header_timeout_s`` after the
  connection opened or the request's first byte arrived;
- closes a connection whose request body is not complete ``body_timeout_s`` after its headers;
- answers 503 and closes a connection that would exceed ``max_connections`` open connections.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from imreward.serve.settings import ServeSettings

logger = logging.getLogger("imreward.serve")
FILE_DESCRIPTOR_RESERVE = 256  # model files, decode threads, logs, the listening socket
_REFUSAL_BODY = b'{"detail": "too many open connections to the server; retry later"}'
REFUSAL = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\n"
           b"retry-after: 1\r\ncontent-length: %d\r\n\r\n%s" % (len(_REFUSAL_BODY), _REFUSAL_BODY))
WARNING_INTERVAL_S = 10.0


class LimitedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with header and body read deadlines and a connection limit."""

    settings: ServeSettings = ServeSettings()  # replaced per server by ``protocol_class``
    last_refusal_warning = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.deadline: asyncio.TimerHandle | None = None
        self.deadline_phase: str | None = None
        if len(self.connections) > self.settings.max_connections:
            self._refuse()
            return
        self._arm("headers", self.settings.header_timeout_s)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.transport.is_closing():
            return
        phase = self.conn.their_state
        if phase is h11.IDLE:  # waiting for (the rest of) a request's headers
            if self.deadline_phase != "headers":
                self._arm("headers", self.settings.header_timeout_s)
        elif phase is h11.SEND_BODY:
            if self.deadline_phase != "body":
                self._arm("body", self.settings.body_timeout_s)
        else:
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        self._disarm()  # from here uvicorn's keep-alive timeout applies until the next request
        super().on_response_complete()

    def _arm(self, phase: str, seconds: float) -> None:
        self._disarm()
        self.deadline_phase = phase
        self.deadline = self.loop.call_later(seconds, self._expire, phase)

    def _disarm(self) -> None:
        if getattr(self, "deadline", None) is not None:
            self.deadline.cancel()
        self.deadline, self.deadline_phase = None, None

    def _expire(self, phase: str) -> None:
        self.deadline, self.deadline_phase = None, None
        if not self.transport.is_closing():
            client = "%s:%d" % self.client if self.client else "a client"
            logger.info("closing the connection of %s: request %s not complete in time", client, phase)
            self.transport.close()

    def _refuse(self) -> None:
        now = time.monotonic()
        if now - LimitedH11Protocol.last_refusal_warning > WARNING_INTERVAL_S:
            LimitedH11Protocol.last_refusal_warning = now
            logger.warning("refusing connections: %d open, the limit is %d (--max-connections)",
                           len(self.connections) - 1, self.settings.max_connections)
        self.transport.write(REFUSAL)
        self.transport.close()


def protocol_class(settings: ServeSettings) -> type[LimitedH11Protocol]:
    """The protocol uvicorn instantiates per connection, bound to ``settings``."""
    return type("LimitedH11Protocol", (LimitedH11Protocol,), {"settings": settings})


def fit_file_limit(settings: ServeSettings) -> int:
    """Raise the soft open-file limit so ``max_connections`` fit (up to the hard limit); returns the
    number of connections the process can hold, less than ``max_connections`` if the limit is lower."""
    try:
        import resource
    except ImportError:  # not on Unix: nothing to adjust
        return settings.max_connections
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = settings.max_connections + FILE_DESCRIPTOR_RESERVE
    if soft != resource.RLIM_INFINITY and soft < needed:
        raised = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return settings.max_connections
    return max(1, min(settings.max_connections, soft - FILE_DESCRIPTOR_RESERVE))


def run_server(app, settings: ServeSettings, host: str, port: int, log_level: str = "info",
               graceful_timeout: float = 30.0) -> None:
    """Run ``app`` with uvicorn under the connection limits of ``settings``."""
    import uvicorn

    connections = fit_file_limit(settings)
    if connections < settings.max_connections:
        logger.warning("the open-file limit allows %d connections, not %d: lowering --max-connections",
                       connections, settings.max_connections)
        settings = dataclasses.replace(settings, max_connections=connections)
    uvicorn.run(app, host=host, port=port, log_level=log_level, http=protocol_class(settings),
                timeout_keep_alive=settings.keep_alive_timeout_s, limit_concurrency=settings.limit_concurrency,
                timeout_graceful_shutdown=graceful_timeout)
