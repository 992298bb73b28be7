"""A loopback stand-in for the Hugging Face hub's file endpoint (``/{repo}/resolve/{rev}/{file}``),
so the real huggingface_hub download code runs in tests without the network."""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class FakeHub:
    """Serves ``files[(repo_id, filename)] = path``; records every requested path."""

    def __init__(self, files: dict[tuple[str, str], Path]) -> None:
        self.files = files
        self.requests: list[str] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _resolve(self) -> Path | None:
                hub.requests.append(f"{self.command} {self.path}")
                parts = self.path.split("?")[0].strip("/").split("/")
                if "resolve" not in parts:
                    return None
                at = parts.index("resolve")
                repo, filename = "/".join(parts[:at]), "/".join(parts[at + 2:])
                return hub.files.get((repo, filename))

            def _headers(self, path: Path) -> None:
                data = path.read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.send_header("X-Repo-Commit", COMMIT)
                self.end_headers()

            def do_HEAD(self) -> None:
                path = self._resolve()
                if path is None:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.end_headers()
                    return
                self._headers(path)

            def do_GET(self) -> None:
                path = self._resolve()
                if path is None:
                    self.send_error(404)
                    return
                self._headers(path)
                self.wfile.write(path.read_bytes())

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeHub":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
