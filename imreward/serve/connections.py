"""Connection limits that uvicorn lacks, and the uvicorn set-up that applies them: used by the
reward server and the annotation server alike (``imreward.serve.connection_limits``).

uvicorn closes a keep-alive connection left idle after a response (``timeout_keep_alive``), but
keeps forever a new connection that sends nothing, or sends its headers or body a byte at a time
(slow loris), and accepts connections until the process runs out of file descriptors. Headers
are complete before the ASGI app is called, so an ASGI middleware cannot time them: hence
subclasses of uvicorn's protocols (httptools when installed, else h11: the one place that sees
every byte) that

- close a connection whose request headers are not complete ``header_timeout_s`` after the
  connection opened or the request's first byte arrived;
- close a connection whose request body is not complete ``body_timeout_s`` after its headers;
- answer 503 and close a connection that would exceed ``max_connections`` open connections;
- answer 431 and close a connection whose request headers exceed ``max_header_bytes`` (h11 has
  this limit; httptools has none);
- with httptools, close a connection whose chunked body sends more than ``max_header_bytes`` of
  anything but body bytes in a row (chunk framing, extensions, trailers: httptools gathers each
  trailer field in memory, without limit), and drop trailer fields instead of appending them to
  the request's headers (ASGI has no request trailers). h11 bounds trailers like headers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # httptools is optional (uvicorn[standard]); h11 is always there
    HttpToolsProtocol = None

from imreward.serve.connection_limits import ConnectionLimits

logger = logging.getLogger("imreward.serve")
FILE_DESCRIPTOR_RESERVE = 256  # model files, decode threads, logs, the listening socket


def _raw_response(status: bytes, detail: str, extra: bytes = b"") -> bytes:
    """A complete HTTP/1.1 response written before (or instead of) the protocol's own."""
    body = b'{"detail": "%s"}' % detail.encode()
    return (b"HTTP/1.1 %s\r\ncontent-type: application/json\r\nconnection: close\r\n%scontent-length: %d\r\n\r\n%s"
            % (status, extra, len(body), body))


REFUSAL = _raw_response(b"503 Service Unavailable", "too many open connections to the server; retry later",
                        b"retry-after: 1\r\n")
HEADERS_TOO_LARGE = _raw_response(b"431 Request Header Fields Too Large", "request headers too large")
WARNING_INTERVAL_S = 10.0


class RequestDeadlines:
    """Header and body read deadlines and the connection limit, mixed into a uvicorn HTTP protocol;
    ``_phase`` says which part of the current request the protocol is waiting for."""

    limits: ConnectionLimits = ConnectionLimits()  # replaced per server by ``protocol_class``
    bounds_framing = True  # whether a chunked body's non-body bytes need bounding here
    last_refusal_warning = 0.0

    def _phase(self) -> str:
        """``"headers"`` (none or part of them yet), ``"body"`` or ``"done"``."""
        raise NotImplementedError

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.deadline: asyncio.TimerHandle | None = None
        self.deadline_phase: str | None = None
        self.header_bytes = 0  # of the request whose headers are not complete yet
        self.body_bytes = 0  # of every request on the connection so far (``_count_body``)
        self.framing_bytes = 0  # received in a row in the body phase that were no body bytes
        if len(self.connections) > self.limits.max_connections:
            self._refuse()
            return
        self._arm("headers", self.limits.header_timeout_s)

    def data_received(self, data: bytes) -> None:
        phase_before, body_before = self._phase(), self.body_bytes
        super().data_received(data)
        if self.transport.is_closing():
            return
        phase = self._phase()
        self.header_bytes = self.header_bytes + len(data) if phase == "headers" else 0
        if self.header_bytes > self.limits.max_header_bytes:  # httptools sets no limit of its own
            self._close_with(HEADERS_TOO_LARGE)
            return
        if self.bounds_framing and phase_before == phase == "body":
            framing = len(data) - (self.body_bytes - body_before)
            self.framing_bytes = framing if self.body_bytes > body_before else self.framing_bytes + framing
            if self.framing_bytes > self.limits.max_header_bytes:
                self._close_with(b"" if self._response_started() else HEADERS_TOO_LARGE)
                return
        if phase == "headers" and self.deadline_phase != "headers":
            self._arm("headers", self.limits.header_timeout_s)
        elif phase == "body" and self.deadline_phase != "body":
            self._arm("body", self.limits.body_timeout_s)
        elif phase == "done":
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _count_body(self, size: int) -> None:
        self.body_bytes += size

    def _response_started(self) -> bool:
        cycle = getattr(self, "cycle", None)
        return bool(cycle is not None and cycle.response_started)

    def on_response_complete(self) -> None:
        self._disarm()  # from here uvicorn's keep-alive timeout applies until the next request's bytes
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
        if now - RequestDeadlines.last_refusal_warning > WARNING_INTERVAL_S:
            RequestDeadlines.last_refusal_warning = now
            logger.warning("refusing connections: %d open, the limit is %d (--max-connections)",
                           len(self.connections) - 1, self.limits.max_connections)
        self._close_with(REFUSAL)

    def _close_with(self, response: bytes) -> None:
        self._disarm()
        self.transport.write(response)
        self.transport.close()


class LimitedH11Protocol(RequestDeadlines, H11Protocol):
    """uvicorn's pure-Python HTTP/1.1 protocol with the deadlines; h11 tracks the request's phase
    (and bounds trailers by ``max_incomplete_event_size``, so body bytes need no counting)."""

    def _phase(self) -> str:
        state = self.conn.their_state
        return "headers" if state is h11.IDLE else "body" if state is h11.SEND_BODY else "done"

    bounds_framing = False


if HttpToolsProtocol is not None:

    class LimitedHttpToolsProtocol(RequestDeadlines, HttpToolsProtocol):
        """uvicorn's httptools (llhttp) protocol with the deadlines; the parser's callbacks track the phase."""

        parser_phase = "headers"

        def _phase(self) -> str:
            return self.parser_phase

        def on_message_begin(self) -> None:
            self.parser_phase = "headers"
            super().on_message_begin()

        def on_header(self, name: bytes, value: bytes) -> None:
            if self.parser_phase == "headers":  # after them: a trailer field, dropped
                super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self.parser_phase = "body"
            super().on_headers_complete()

        def on_body(self, body: bytes) -> None:
            self._count_body(len(body))
            super().on_body(body)

        def on_message_complete(self) -> None:
            self.parser_phase = "done"
            super().on_message_complete()


def protocol_class(limits: ConnectionLimits, http: str = "auto") -> type[RequestDeadlines]:
    """The protocol uvicorn instantiates per connection, bound to ``limits``: httptools (faster)
    when installed and ``http`` is ``"auto"``, else h11, as uvicorn's own ``http="auto"`` chooses."""
    base: type[RequestDeadlines] = LimitedH11Protocol
    if http == "httptools" or (http == "auto" and HttpToolsProtocol is not None):
        if HttpToolsProtocol is None:
            raise ValueError("http='httptools' needs the httptools package (pip install httptools)")
        base = LimitedHttpToolsProtocol
    return type(base.__name__, (base,), {"limits": limits})


def fit_file_limit(limits: ConnectionLimits) -> int:
    """Raise the soft open-file limit so ``max_connections`` fit (up to the hard limit); returns the
    number of connections the process can hold, less than ``max_connections`` if the limit is lower."""
    try:
        import resource
    except ImportError:  # not on Unix: nothing to adjust
        return limits.max_connections
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = limits.max_connections + FILE_DESCRIPTOR_RESERVE
    if soft != resource.RLIM_INFINITY and soft < needed:
        raised = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return limits.max_connections
    return max(1, min(limits.max_connections, soft - FILE_DESCRIPTOR_RESERVE))


def run_server(app, limits: ConnectionLimits, host: str, port: int, log_level: str = "info",
               graceful_timeout: float = 30.0, **uvicorn_options) -> None:
    """Run ``app`` with uvicorn under ``limits``; ``uvicorn_options`` go to ``uvicorn.run`` as they are."""
    import uvicorn

    connections = fit_file_limit(limits)
    if connections < limits.max_connections:
        logger.warning("the open-file limit allows %d connections, not %d: lowering --max-connections",
                       connections, limits.max_connections)
        limits = dataclasses.replace(limits, max_connections=connections)
    uvicorn.run(app, host=host, port=port, log_level=log_level, http=protocol_class(limits),
                timeout_keep_alive=limits.keep_alive_timeout_s, limit_concurrency=limits.limit_concurrency,
                h11_max_incomplete_event_size=limits.max_header_bytes, timeout_graceful_shutdown=graceful_timeout,
                **uvicorn_options)
