"""`mlatlas serve`: the built site over HTTP, on 127.0.0.1 unless told otherwise.

The server answers GET and HEAD only (any other method: 405 with ``Allow: GET, HEAD``) and
serves only files whose real path lies under the site folder: ``..`` in any encoding, an
absolute request target, a NUL byte, or a symbolic link that leads outside the folder get
400 or 404, never a file from elsewhere. A folder is served through its index.html and is
never listed.
"""

from __future__ import annotations

import functools
import http.server
import ipaddress
import os
import socket
import sys
import urllib.parse
from http import HTTPStatus
from pathlib import Path
from typing import Any

LOOPBACK = "127.0.0.1"
ALLOWED = "GET, HEAD"


class NoSiteError(FileNotFoundError):
    """The folder holds no built site (no index.html)."""


def is_loopback(host: str) -> bool:
    """Whether `host` (an IP address or ``localhost``) is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class SiteHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the files under ``self.directory`` (already resolved), read-only."""

    server_version = "mlatlas"
    sys_version = ""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        """Every method but GET and HEAD (POST, PUT, DELETE, OPTIONS, ...) gets a 405."""
        if name.startswith("do_"):
            return self._not_allowed
        raise AttributeError(name)

    def _not_allowed(self) -> None:
        self.close_connection = True  # an unread request body must not pass for a request
        self.send_response(HTTPStatus.METHOD_NOT_ALLOWED)
        self.send_header("Allow", ALLOWED)
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()

    def send_head(self) -> Any:
        """Check the request target before the standard handler opens anything."""
        status = self._refusal()
        if status is not None:
            self.send_error(status)
            return None
        return super().send_head()

    def _refusal(self) -> HTTPStatus | None:
        """Why the target must not be served (400 or 404), or None when it may be."""
        if not self.path.startswith("/"):  # absolute-form or garbage: this is no proxy
            return HTTPStatus.BAD_REQUEST
        path = urllib.parse.unquote(self.path.split("?", 1)[0].split("#", 1)[0])
        if "\x00" in path:
            return HTTPStatus.BAD_REQUEST
        target = Path(self.translate_path(self.path))
        try:
            os.fsencode(target)  # a lone surrogate from %ed%a0%80 and the like
        except UnicodeError:
            return HTTPStatus.BAD_REQUEST
        # the file itself, or for a folder the index files the standard handler would open
        index = [target / "index.html", target / "index.htm"]
        if not all(self._inside(p) for p in (target, *index)):
            return HTTPStatus.NOT_FOUND
        if target.is_dir() and not any(p.is_file() for p in index):
            return HTTPStatus.NOT_FOUND  # no listing, and no redirect to one
        return None

    def _inside(self, path: Path) -> bool:
        """Whether `path`, with every symbolic link followed, lies under the site folder."""
        root = Path(self.directory)
        try:
            real = path.resolve()
        except (OSError, RuntimeError):  # a symlink loop
            return False
        return real == root or root in real.parents

    def list_directory(self, path: str | os.PathLike[str]) -> None:
        """Folders are never listed: a folder without index.html is not found."""
        self.send_error(HTTPStatus.NOT_FOUND)
        return None


class SiteServer(http.server.ThreadingHTTPServer):
    """A threading HTTP server that does not print a traceback when a client hangs up."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class SiteServer6(SiteServer):
    address_family = socket.AF_INET6


def make_server(
    directory: str | Path, port: int = 8000, host: str = LOOPBACK
) -> http.server.ThreadingHTTPServer:
    """A server for the site in `directory`, listening on `host` (default 127.0.0.1: this
    machine only) and `port` (0 picks a free one)."""
    root = Path(directory)
    try:
        built = (root / "index.html").is_file()
    except OSError as exc:
        raise NoSiteError(f"cannot read {directory}: {exc.strerror}") from None
    if not built:
        raise NoSiteError(f"{directory}/index.html not found: run `mlatlas report` first")
    handler = functools.partial(SiteHandler, directory=str(root.resolve()))
    server_class = SiteServer6 if ":" in host else SiteServer
    return server_class((host, port), handler)
