"""`mlatlas serve`: the built site over HTTP on 127.0.0.1 only."""

from __future__ import annotations

import functools
import http.server
from pathlib import Path


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def make_server(directory: str | Path, port: int = 8000) -> http.server.ThreadingHTTPServer:
    """A server for `directory` bound to 127.0.0.1 (port 0 picks a free port)."""
    if not (Path(directory) / "index.html").is_file():
        raise FileNotFoundError(f"{directory}/index.html not found: run `mlatlas report` first")
    handler = functools.partial(_Quiet, directory=str(directory))
    return http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
