"""The SDK's transport adapter against small loopback servers: framing, kept connections, time-outs, TLS, fallback."""

from __future__ import annotations

import contextlib
import gzip
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
import trustme
from requests.adapters import BaseAdapter, HTTPAdapter

from preflight.sdk_transport import SdkAdapter

Handler = Callable[[socket.socket], None]
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}"


def read_head(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        piece = conn.recv(65536)
        if not piece:
            return data
        data += piece
    return data


@contextlib.contextmanager
def serving(handler: Handler, *, wrap: ssl.SSLContext | None = None) -> Iterator[tuple[int, list[int]]]:
    """A loopback server calling `handler` on each connection in a thread; yields its port and accepted count."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    accepted: list[int] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted.append(1)

            def run(conn: socket.socket = conn) -> None:
                with contextlib.suppress(OSError), conn:
                    handler(wrap.wrap_socket(conn, server_side=True) if wrap else conn)

            threading.Thread(target=run, daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield port, accepted
    finally:
        listener.close()


def answering(*answers: bytes, keep: bool = True) -> Handler:
    """Answer each request on a connection with the next answer; close after the last (or after each)."""

    def handler(conn: socket.socket) -> None:
        for answer in answers:
            if not read_head(conn):
                return
            conn.sendall(answer)
            if not keep:
                return
        time.sleep(0.2)

    return handler


def session(adapter: BaseAdapter | None = None) -> requests.Session:
    http = requests.Session()
    http.trust_env = False
    adapter = adapter or SdkAdapter(HTTPAdapter())
    http.mount("http://", adapter)
    http.mount("https://", adapter)
    return http


def test_a_kept_connection_carries_the_next_call() -> None:
    with serving(answering(OK, OK, OK)) as (port, accepted):
        http = session()
        answers = [http.get(f"http://127.0.0.1:{port}/?Action=GetProject", timeout=(1, 2)) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200] and answers[0].json() == {}
    assert len(accepted) == 1
    assert answers[0].headers["content-type"] == "application/json"  # any case, as requests answers


def test_the_request_is_sent_as_the_sdk_built_it() -> None:
    heard: list[bytes] = []

    def handler(conn: socket.socket) -> None:
        head = read_head(conn)
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        body = head.split(b"\r\n\r\n", 1)[1]
        while len(body) < length:
            body += conn.recv(65536)
        heard.append(head.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n" + body)
        conn.sendall(OK)

    with serving(handler) as (port, _):
        session().post(f"http://127.0.0.1:{port}/?a=1", data=b"Name=probe&Tasks=%5B%5D",
                       headers={"host": "dataworks.cn-beijing.aliyuncs.com", "x-acs-action": "Execute"},
                       timeout=(1, 2))
    head, _, body = heard[0].partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /?a=1 HTTP/1.1"
    assert "host: dataworks.cn-beijing.aliyuncs.com" in lines and "x-acs-action: Execute" in lines
    assert "Content-Length: 23" in lines and body == b"Name=probe&Tasks=%5B%5D"
    assert sum(line.lower().startswith("host:") for line in lines) == 1


@pytest.mark.parametrize(("answer", "expected"), [
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\nX-T: 1\r\n\r\n",
     b'{"a":1}'),
    (b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(gzip.compress(b"{}"))
     + gzip.compress(b"{}"), b"{}"),
    (b"HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\nContent-Length: %d\r\n\r\n" % len(zlib.compress(b"{}"))
     + zlib.compress(b"{}"), b"{}"),
    (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", b"{}"),
    (b"HTTP/1.0 200 OK\r\n\r\n{\"until\": \"close\"}", b'{"until": "close"}'),
    (b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", b""),
])
def test_bodies_are_framed_and_decoded_as_requests_would(answer: bytes, expected: bytes) -> None:
    with serving(answering(answer, keep=False)) as (port, _):
        response = session().get(f"http://127.0.0.1:{port}/", timeout=(1, 2))
    assert response.content == expected


def test_repeated_and_folded_headers_are_joined() -> None:
    answer = b"HTTP/1.1 403 Forbidden\r\nX-A: 1\r\nx-a: 2\r\nX-Long: one\r\n two\r\nContent-Length: 0\r\n\r\n"
    with serving(answering(answer)) as (port, _):
        response = session().get(f"http://127.0.0.1:{port}/", timeout=(1, 2))
    assert response.status_code == 403 and response.reason == "Forbidden"
    assert response.headers["X-A"] == "1, 2" and response.headers["x-long"] == "one two"


def test_a_kept_connection_the_server_closed_is_not_used() -> None:
    def close_after_one(conn: socket.socket) -> None:
        read_head(conn)
        conn.sendall(OK)  # then the handler returns and the connection closes

    with serving(close_after_one) as (port, accepted):
        http = session()
        first = http.get(f"http://127.0.0.1:{port}/", timeout=(1, 2))
        time.sleep(0.1)
        second = http.get(f"http://127.0.0.1:{port}/", timeout=(1, 2))
    assert first.status_code == second.status_code == 200 and len(accepted) == 2


def test_a_get_is_sent_again_when_its_kept_connection_fails_before_an_answer_but_a_post_is_not() -> None:
    def drop_the_second(conn: socket.socket) -> None:
        read_head(conn)
        conn.sendall(OK)
        read_head(conn)  # the next request arrives; the server goes away without a word
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")

    with serving(drop_the_second) as (port, accepted):
        http = session()
        http.get(f"http://127.0.0.1:{port}/", timeout=(1, 2))
        assert http.get(f"http://127.0.0.1:{port}/", timeout=(1, 2)).status_code == 200
        assert len(accepted) == 2
        http.get(f"http://127.0.0.1:{port}/", timeout=(1, 2))  # the third connection is kept
        with pytest.raises(requests.ConnectionError, match="not sent again"):
            http.post(f"http://127.0.0.1:{port}/", data=b"x=1", timeout=(1, 2))
    assert len(accepted) == 3


def test_a_silent_server_is_a_read_timeout_in_the_sdks_words() -> None:
    def silent(conn: socket.socket) -> None:
        read_head(conn)
        time.sleep(2)

    with serving(silent) as (port, _):
        started = time.monotonic()
        with pytest.raises(requests.ReadTimeout, match="timed out"):
            session().get(f"http://127.0.0.1:{port}/", timeout=(1, 0.3))
    assert time.monotonic() - started < 1.5


def test_a_refused_connection_is_a_connection_error() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    with pytest.raises(requests.ConnectionError, match="Failed to establish a new connection"):
        session().get(f"http://127.0.0.1:{port}/", timeout=(1, 1))


@pytest.mark.parametrize(("answer", "message"), [
    (b"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP status line"),
    (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "malformed header"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}", "before the end of the body"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "invalid chunk size"),
    (b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\n\r\nnope", "failed to decode"),
    (b"HTTP/1.1 200 OK\r\nX-Pad: " + b"a" * 70000 + b"\r\n\r\n", "exceed"),
    # A chunk-size line past the bound, its CRLF in the same read: bounded all the same.
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"0" * 9000 + b"2\r\nok\r\n0\r\n\r\n",
     "chunk-size line exceeds"),
    (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", "switched protocols"),
])
def test_a_broken_answer_is_a_connection_error_that_says_why(answer: bytes, message: str) -> None:
    with serving(answering(answer, keep=False)) as (port, _), pytest.raises(requests.ConnectionError, match=message):
        session().get(f"http://127.0.0.1:{port}/", timeout=(1, 2))


def test_tls_is_verified_with_the_context_the_sdk_built() -> None:
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server_context)
    trusted = ssl.create_default_context()
    authority.configure_trust(trusted)
    with serving(answering(OK, OK), wrap=server_context) as (port, accepted):
        http = session(SdkAdapter(HTTPAdapter(), ssl_context=trusted))
        assert [http.get(f"https://127.0.0.1:{port}/", timeout=(1, 2)).status_code for _ in range(2)] == [200, 200]
        assert len(accepted) == 1
        with pytest.raises(requests.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
            session(SdkAdapter(HTTPAdapter(), ssl_context=ssl.create_default_context())).get(
                f"https://127.0.0.1:{port}/", timeout=(1, 2))


def test_a_handshake_that_never_comes_is_a_connect_timeout() -> None:
    with serving(lambda conn: time.sleep(2)) as (port, _), pytest.raises(requests.ConnectTimeout):
        session(SdkAdapter(HTTPAdapter(), ssl_context=ssl.create_default_context())).get(
            f"https://127.0.0.1:{port}/", timeout=(0.3, 2))


class Recording(BaseAdapter):
    def __init__(self) -> None:
        super().__init__()
        self.sent: list[dict[str, Any]] = []

    def send(self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None,
             verify: bool | str = True, cert: Any = None, proxies: Any = None) -> requests.Response:
        self.sent.append({"url": request.url, "proxies": proxies, "cert": cert, "verify": verify})
        response = requests.Response()
        response.status_code, response._content, response.request = 299, b"", request
        return response

    def close(self) -> None:
        return None


@pytest.mark.parametrize("options", [
    {"proxies": {"http": "http://proxy.invalid:3128"}},
    {"cert": "/client.pem"},
    {"verify": False},
    {"verify": "/ca-bundle.pem"},
    {"stream": True},
])
def test_proxies_client_certificates_and_other_trust_go_to_the_adapter_it_wraps(options: dict[str, Any]) -> None:
    fallback = Recording()
    answer = session(SdkAdapter(fallback)).get("http://127.0.0.1:9/", timeout=(1, 1), **options)
    assert answer.status_code == 299 and len(fallback.sent) == 1


def test_https_without_a_context_goes_to_the_adapter_it_wraps() -> None:
    fallback = Recording()
    assert session(SdkAdapter(fallback)).get("https://127.0.0.1:9/", timeout=(1, 1)).status_code == 299


def test_an_answer_is_cut_at_the_body_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    import preflight.sdk_transport as transport

    monkeypatch.setattr(transport, "MAX_BODY", 100_000)

    def endless(conn: socket.socket) -> None:
        read_head(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\n\r\n")  # no length: until the connection closes, which it never does
        with contextlib.suppress(OSError):
            while True:
                conn.sendall(b"x" * 65536)

    bomb = gzip.compress(b"\0" * 1_000_000)
    with serving(endless) as (port, _), pytest.raises(requests.ConnectionError, match="exceeds"):
        session().get(f"http://127.0.0.1:{port}/", timeout=(1, 2))
    announced = b"HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n"
    with serving(answering(announced, keep=False)) as (port, _), pytest.raises(requests.ConnectionError,
                                                                                match="announces 200000 bytes"):
        session().get(f"http://127.0.0.1:{port}/", timeout=(1, 2))
    compressed = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(bomb) + bomb
    with serving(answering(compressed, keep=False)) as (port, _), pytest.raises(requests.ConnectionError,
                                                                                 match="decodes to more than"):
        session().get(f"http://127.0.0.1:{port}/", timeout=(1, 2))
    truncated = gzip.compress(b"{}" * 100)[:-8]
    cut = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(truncated) + truncated
    with serving(answering(cut, keep=False)) as (port, _), pytest.raises(requests.ConnectionError, match="truncated"):
        session().get(f"http://127.0.0.1:{port}/", timeout=(1, 2))
