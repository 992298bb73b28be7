"""Entry point of a managed reward server: ``imreward serve`` that stops when its parent goes.

    python -m imreward.rl.reward_process [imreward serve options]

The parent holds the write end of this process's stdin. When the parent exits or is killed, the
pipe reaches end-of-file: the server is sent SIGTERM (uvicorn's graceful shutdown) and, if still
running ``--graceful-timeout`` plus ``EXIT_MARGIN_S`` seconds later, ended with ``os._exit``.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

EXIT_MARGIN_S = 5.0


def stop_when_parent_goes(stream, grace_s: float) -> None:
    """Block until ``stream`` (the parent's pipe) ends, then stop this process."""
    while stream.read(4096):
        pass
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(grace_s + EXIT_MARGIN_S)
    os._exit(1)


def graceful_timeout(arguments: list[str]) -> float:
    for index, argument in enumerate(arguments):
        if argument == "--graceful-timeout" and index + 1 < len(arguments):
            return float(arguments[index + 1])
        if argument.startswith("--graceful-timeout="):
            return float(argument.split("=", 1)[1])
    return 30.0


def main(arguments: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if arguments is None else arguments
    threading.Thread(target=stop_when_parent_goes, args=(sys.stdin.buffer, graceful_timeout(arguments)),
                     name="parent-watchdog", daemon=True).start()
    from imreward.cli import main as cli_main

    return cli_main(["serve", *arguments])


if __name__ == "__main__":
    sys.exit(main())
