"""Running the studio: :func:`serve` (the command's foreground server) and :class:`BackgroundServer`
(a server in a thread, on a free port, for tests, benchmarks and notebooks).

Both bind to 127.0.0.1 unless told otherwise; uvicorn stops cleanly on Ctrl+C.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

from attnlab.errors import AttnlabError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def check_sources(sources: list[str | Path]) -> list[Path]:
    """The folders to serve: each must exist (a run folder or a folder of runs)."""
    paths = [Path(s) for s in sources] or [Path("runs")]
    missing = [str(p) for p in paths if not p.is_dir()]
    if missing:
        raise AttnlabError(f"no such folder: {', '.join(missing)} (give a run folder or a folder of runs; "
                           "train one with 'attnlab train')")
    return paths


def check_port(port: int) -> int:
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise AttnlabError(f"--port must be from 0 to 65535, got {port!r}")
    return port


def _config(sources: list[str | Path], host: str, port: int, device: str) -> Any:
    import uvicorn

    from attnlab.serve.app import create_app

    app = create_app(check_sources(sources), device=device)
    return uvicorn.Config(app, host=host, port=check_port(port), log_level="warning", access_log=False,
                          timeout_graceful_shutdown=2)


def serve(sources: list[str | Path], host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, device: str = "cpu",
          announce: Any = print) -> None:
    """Serve until Ctrl+C; ``announce`` gets the address once the server listens."""
    import uvicorn

    config = _config(sources, host, port, device)
    try:
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)  # connections wait from now on, so the address printed below answers
    except OSError as err:
        raise AttnlabError(f"cannot listen on {host}:{port}: {err.strerror or err} (try another --port)") from None
    except (socket.gaierror, UnicodeError) as err:
        raise AttnlabError(f"--host {host!r} is not an address to listen on: {err}") from None
    shown = f"[{host}]" if ":" in host else host
    real_port = sock.getsockname()[1]
    announce(f"attnlab studio on http://{shown}:{real_port}/  (chat, inside, runs; OpenAI API at "
             f"http://{shown}:{real_port}/v1). Ctrl+C stops it.")
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn has shut down cleanly and hands Ctrl+C on
        pass
    announce("attnlab studio stopped.")


def free_port(host: str = DEFAULT_HOST) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class BackgroundServer:
    """``with BackgroundServer(["runs"]) as url: ...``: the studio in a daemon thread, stopped on exit."""

    def __init__(self, sources: list[str | Path], host: str = DEFAULT_HOST, port: int | None = None,
                 device: str = "cpu") -> None:
        import uvicorn

        self.host, self.port = host, port or free_port(host)
        self.server = uvicorn.Server(_config(sources, host, self.port, device))
        self.server.install_signal_handlers = lambda: None  # type: ignore[method-assign]  # not the main thread
        self.thread = threading.Thread(target=self.server.run, daemon=True, name="attnlab-serve")

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise AttnlabError(f"the studio did not start on {self.url}")
            time.sleep(0.02)
        return self.url

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
