"""`mlatlas serve` serves the site folder and nothing else: no file outside it in any
encoding of ``..``, no symlink escape, no listings, GET and HEAD only, on 127.0.0.1 by default."""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlatlas.cli import main
from mlatlas.report import serve
from mlatlas.report.serve import NoSiteError, is_loopback, make_server

SECRET = "top secret: outside the site"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A site folder next to a secret file, with a symlink from inside the site to outside."""
    tmp_path = tmp_path_factory.mktemp("serve")
    (tmp_path / "secret.txt").write_text(SECRET)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "index.html").write_text(SECRET)
    (outside / "more.txt").write_text(SECRET)
    root = tmp_path / "site"
    (root / "topics").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "index.html").write_text("<!DOCTYPE html><title>map</title>")
    (root / "topics" / "backprop.html").write_text("<!DOCTYPE html><title>backprop</title>")
    (root / "leak.txt").symlink_to(tmp_path / "secret.txt")
    (root / "elsewhere").symlink_to(outside, target_is_directory=True)
    (root / "inner.html").symlink_to(root / "index.html")  # a symlink that stays inside
    return root


@pytest.fixture(scope="module")
def port(site: Path) -> Iterator[int]:
    """A real server for `site` on a free port, in a thread."""
    server = make_server(site, 0)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def request(port: int, method: str, target: str) -> tuple[int, dict[str, str], bytes]:
    """Send one request with `target` exactly as given; return status, headers and body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", "127.0.0.1")
        conn.endheaders()
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def raw_request(port: int, data: bytes) -> bytes:
    """Send raw bytes (for what http.client refuses to send) and read the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_get_and_head_of_a_page(port):
    status, headers, body = request(port, "GET", "/index.html")
    assert status == 200 and body.startswith(b"<!DOCTYPE html>")
    assert headers["Content-type"] == "text/html"
    status, headers, body = request(port, "HEAD", "/topics/backprop.html")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) > 0
    status, _, body = request(port, "GET", "/")
    assert status == 200 and b"<title>map</title>" in body
    status, _, body = request(port, "GET", "/inner.html?x=1")  # a symlink within the site
    assert status == 200 and b"<title>map</title>" in body


@pytest.mark.parametrize(
    "target",
    [
        "/../secret.txt",
        "/../../../../etc/passwd",
        "/..%2fsecret.txt",
        "/..%2f..%2f..%2f..%2fetc/passwd",
        "/%2e%2e/secret.txt",
        "/%2E%2E%2Fsecret.txt",
        "/%252e%252e/secret.txt",
        "/%252e%252e%252fsecret.txt",
        "/..\\secret.txt",
        "/..%5csecret.txt",
        "/topics/..\\..\\secret.txt",
        "/etc/passwd",
        "//etc/passwd",
        "http://x/../../etc/passwd",
        "http://x/../secret.txt",
        "../secret.txt",
        "*",
        "/index.html%00.txt",
        "/%00",
        "/%ed%a0%80",
        "/leak.txt",
        "/elsewhere/more.txt",
        "/elsewhere/",
        "/elsewhere",
        "/topics/../leak.txt",
    ],
)
def test_nothing_outside_the_site_is_served(port, target):
    for method in ("GET", "HEAD"):
        status, _, body = request(port, method, target)
        assert status in (400, 403, 404), (method, target, status)
        assert SECRET.encode() not in body and b"root:" not in body


def test_raw_nul_byte_and_backslash_targets(port):
    for line in (b"GET /\x00 HTTP/1.1", b"GET /..\\..\\secret.txt HTTP/1.1", b"GET \\ HTTP/1.1"):
        answer = raw_request(port, line + b"\r\nHost: x\r\nConnection: close\r\n\r\n")
        status = int(answer.split(b" ", 2)[1])
        assert status in (400, 403, 404) and SECRET.encode() not in answer


def test_folders_are_never_listed(port):
    for target in ("/empty/", "/topics/", "/empty"):
        status, _, body = request(port, "GET", target)
        assert status == 404, target
        assert b"Directory listing" not in body and b"backprop.html" not in body


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "FOO"])
def test_methods_other_than_get_and_head_get_405(port, method):
    status, headers, body = request(port, method, "/index.html")
    assert status == 405 and headers["Allow"] == "GET, HEAD" and body == b""


def test_post_with_a_body_is_refused_and_the_connection_closed(port):
    answer = raw_request(
        port,
        b"POST /index.html HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n\r\n"
        b"GET /../secret.txt HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.0 405") and answer.count(b"HTTP/1.") == 1
    assert SECRET.encode() not in answer


def test_default_bind_is_loopback(site):
    server = make_server(site, 0)
    try:
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.server_close()
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.10")


def test_a_folder_without_a_site_is_refused(tmp_path):
    with pytest.raises(NoSiteError, match="mlatlas report"):
        make_server(tmp_path, 0)


def test_cli_serve_default_host_and_explicit_host_warning(site, monkeypatch, capsys):
    seen = []

    def stop_at_once(server):
        seen.append(server.server_address[0])
        raise KeyboardInterrupt

    monkeypatch.setattr(serve.SiteServer, "serve_forever", stop_at_once)
    assert main(["serve", "--dir", str(site), "--port", "0"]) == 0
    captured = capsys.readouterr()
    assert seen == ["127.0.0.1"] and "http://127.0.0.1:" in captured.out and captured.err == ""
    assert main(["serve", "--dir", str(site), "--port", "0", "--host", "0.0.0.0"]) == 0
    captured = capsys.readouterr()
    assert seen[-1] == "0.0.0.0"
    assert captured.err.startswith("mlatlas: warning: listening on 0.0.0.0")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--port", "70000"], "expected a port from 0 to 65535"),
        (["--port", "-1"], "expected a port from 0 to 65535"),
        (["--port", "http"], "expected a port from 0 to 65535"),
        (["--host", "example.com"], "expected an IP address"),
        (["--host", "192.0.2.1"], "cannot listen on 192.0.2.1"),  # not this machine's address
    ],
)
def test_cli_serve_bad_port_or_host_is_one_line(site, capsys, args, needle):
    assert main(["serve", "--dir", str(site), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mlatlas: error:") and needle in err and err.count("\n") == 1


def test_cli_serve_port_in_use_is_one_line(site, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--dir", str(site), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mlatlas: error: cannot listen on 127.0.0.1 port {port}")
    assert err.count("\n") == 1 and "in use" in err
