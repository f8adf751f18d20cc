"""The crawl's light HTTP/1.1 transport (anypool._apps._http) against a raw socket server.

The server below answers each path with fixed bytes, so every framing, keep-alive and
failure case the transport must handle is sent exactly as written, byte for byte.
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

httpx = pytest.importorskip("httpx")

from anypool._apps._http import (  # noqa: E402
    MAX_HEAD,
    Client,
    LightTransport,
    proxies_configured,
)

pytestmark = pytest.mark.timeout(60)


def _ok(body: bytes, *headers: str) -> bytes:
    head = "".join(f"{h}\r\n" for h in headers)
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), head.encode(), body)


#: path -> the exact reply, or a function of (request head, body, request number on
#: this connection, socket) that sends its own reply and says whether to keep serving.
REPLIES: dict[str, Any] = {
    "/len": _ok(b"hello"),
    "/chunked": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"6;ext=1\r\nhello \r\n5\r\nworld\r\n0\r\nX-Trailer: yes\r\n\r\n"
    ),
    "/close-delimited": b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end",
    "/http10": b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
    "/continue": b"HTTP/1.1 100 Continue\r\n\r\n" + _ok(b"after 100"),
    "/no-content": b"HTTP/1.1 204 No Content\r\n\r\n",
    "/not-modified": b"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n",
    "/bad-status": b"HELLO THERE\r\n\r\n",
    "/bad-header": b"HTTP/1.1 200 OK\r\nno colon here\r\nContent-Length: 0\r\n\r\n",
    "/two-lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    "/bad-chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nxx\r\n0\r\n\r\n",
    "/big-head": b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (MAX_HEAD + 10) + b"\r\n\r\n",
    "/lf": b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
    "/mixed-line-ends": b"HTTP/1.1 200 OK\r\nX-A: 1\nContent-Length: 5\r\n\nmixed",
    # A server that sends more than it framed: the extra reply must never be read as the
    # answer to the next request.
    "/overlong": _ok(b"hello") + _ok(b"EVIL"),
    "/set-cookie": (
        b"HTTP/1.1 302 Found\r\nLocation: /show-cookie\r\nSet-Cookie: session=abc; Path=/\r\n"
        b"Content-Length: 0\r\n\r\n"
    ),
}


class RawServer:
    """A threaded TCP (or TLS) server on 127.0.0.1 that replies from ``REPLIES``.

    Every reply carries no connection id, so the server counts connections itself:
    ``connections`` is how many were accepted."""

    def __init__(self, context: ssl.SSLContext | None = None) -> None:
        self.context = context
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self._threads: list[threading.Thread] = []
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stopping = False
        self._acceptor = threading.Thread(target=self._accept, name="raw-http-accept")
        self._acceptor.start()

    def url(self, path: str) -> str:
        scheme = "https" if self.context else "http"
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return  # closed: stopping
            with self._lock:
                if self._stopping:
                    conn.close()
                    return
                self.connections += 1
                self._open.add(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), name="raw-http-conn")
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            if self.context is not None:
                conn = self.context.wrap_socket(conn, server_side=True)
            buffer = b""
            number = 0
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, buffer = buffer.split(b"\r\n\r\n", 1)
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(buffer) < length:
                    buffer += conn.recv(65536)
                body, buffer = buffer[:length], buffer[length:]
                number += 1
                if not self._reply(conn, head, body, number):
                    return
        except OSError:
            return
        finally:
            with self._lock:
                self._open.discard(conn)
            conn.close()

    def _reply(self, conn: socket.socket, head: bytes, body: bytes, number: int) -> bool:
        path = head.split(b" ")[1].decode()
        reply = REPLIES.get(path)
        if path == "/show-cookie":
            cookie = b""
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"cookie":
                    cookie = value.strip()
            reply = _ok(cookie)
        elif path == "/echo":
            reply = _ok(b"%s %d %s" % (head.split(b" ")[0], len(body), body))
        elif path == "/drop-second":  # the server closing a kept-alive connection
            if number > 1:
                return False
            reply = _ok(b"first")
        elif path == "/then-close":  # keep-alive promised, then closed anyway
            conn.sendall(_ok(b"bye"))
            return False
        elif path == "/upgrade":  # then another protocol: HTTP is never answered again
            conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n")
            while conn.recv(65536):
                pass
            return False
        elif path == "/http10-chunked":  # "keep-alive", yet RFC 9112 says close after it
            conn.sendall(
                b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
            )
            return True
        elif path == "/truncated":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
            return False
        elif path == "/silent":
            return False
        elif path == "/trickle":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabcde")
            threading.Event().wait(2)
            conn.sendall(b"fghij")
            return True
        if reply is None:
            reply = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
        if head.startswith(b"HEAD "):
            reply = reply.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
        conn.sendall(reply)
        return b"Connection: close" not in reply and not reply.startswith(b"HTTP/1.0")

    def close(self) -> None:
        with self._lock:
            self._stopping = True
            for conn in self._open:
                with _suppress_oserror():
                    conn.shutdown(socket.SHUT_RDWR)
        with _suppress_oserror():
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self.listener.close()
        self._acceptor.join(10)
        for thread in self._threads:
            thread.join(10)


class _suppress_oserror:
    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        return exc_type is not None and issubclass(exc_type, OSError)


@pytest.fixture
def server() -> Iterator[RawServer]:
    raw = RawServer()
    try:
        yield raw
    finally:
        raw.close()


def run(coroutine_fn: Callable[..., Any], *args: Any) -> Any:
    return asyncio.run(coroutine_fn(*args))


async def _get(client: Any, url: str, method: str = "GET", **kwargs: Any) -> tuple[int, bytes]:
    response = await client.request(method, url, **kwargs)
    return response.status_code, response.content


def _client(**kwargs: Any) -> Any:
    return Client(transport=LightTransport(**kwargs), follow_redirects=True)


# ── framing ─────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("path", "status", "body"),
    [
        ("/len", 200, b"hello"),
        ("/chunked", 200, b"hello world"),
        ("/close-delimited", 200, b"until the end"),
        ("/http10", 200, b"ok"),
        ("/http10-chunked", 200, b"ok"),
        ("/lf", 200, b"ok"),
        ("/mixed-line-ends", 200, b"mixed"),
        ("/continue", 200, b"after 100"),
        ("/no-content", 204, b""),
        ("/not-modified", 304, b""),
        ("/nowhere", 404, b""),
    ],
)
def test_each_kind_of_body_is_read_whole(
    server: RawServer, path: str, status: int, body: bytes
) -> None:
    async def go() -> tuple[int, bytes]:
        async with _client() as client:
            return await _get(client, server.url(path))

    assert run(go) == (status, body)


def test_head_has_no_body_even_with_a_length(server: RawServer) -> None:
    async def go() -> list[tuple[int, bytes]]:
        async with _client() as client:
            # The server answers HEAD /len with "Content-Length: 5" and no body: a body
            # wrongly expected would swallow the next reply on the same connection.
            head = await client.head(server.url("/len"))
            return [(head.status_code, head.content), await _get(client, server.url("/len"))]

    assert run(go) == [(200, b""), (200, b"hello")]
    assert server.connections == 1


def test_a_request_body_is_sent_with_its_length(server: RawServer) -> None:
    async def go() -> tuple[int, bytes]:
        async with _client() as client:
            return await _get(client, server.url("/echo"), "POST", content=b"payload")

    assert run(go) == (200, b"POST 7 payload")


# ── keep-alive ──────────────────────────────────────────────────────────────────


def test_a_connection_is_reused_after_a_whole_response(server: RawServer) -> None:
    async def go() -> list[tuple[int, bytes]]:
        async with _client() as client:
            return [await _get(client, server.url(p)) for p in ("/len", "/chunked", "/len")]

    assert [body for _, body in run(go)] == [b"hello", b"hello world", b"hello"]
    assert server.connections == 1


@pytest.mark.parametrize("first", ["/close-delimited", "/http10"])
def test_a_connection_the_reply_closes_is_not_reused(server: RawServer, first: str) -> None:
    async def go() -> list[tuple[int, bytes]]:
        async with _client() as client:
            return [await _get(client, server.url(p)) for p in (first, "/len")]

    assert run(go)[1] == (200, b"hello")
    assert server.connections == 2


@pytest.mark.parametrize("first", ["/upgrade", "/http10-chunked", "/overlong"])
def test_a_connection_left_in_another_state_is_not_reused(server: RawServer, first: str) -> None:
    # After a 101 the connection speaks another protocol; after a chunked HTTP/1.0 reply
    # it must close; after a reply followed by bytes nobody asked for, those bytes would
    # be read as the next answer.
    async def go() -> tuple[int, bytes]:
        async with _client() as client:
            await _get(client, server.url(first))
            await asyncio.sleep(0.1)  # the overlong reply's extra bytes have arrived
            return await _get(client, server.url("/len"))

    assert run(go) == (200, b"hello")
    assert server.connections == 2


def test_a_full_pool_makes_room_by_closing_the_oldest(server: RawServer) -> None:
    async def go() -> list[tuple[int, bytes]]:
        async with Client(transport=LightTransport(max_idle=1)) as client:
            # 127.0.0.1 and localhost are two origins of the same server.
            here = server.url("/len")
            there = here.replace("127.0.0.1", "localhost")
            return [await _get(client, url) for url in (here, there, there)]

    assert run(go) == [(200, b"hello")] * 3
    assert server.connections == 2  # the second "there" reused its connection


def test_a_connection_closed_by_the_server_while_idle_is_replaced(server: RawServer) -> None:
    async def go() -> list[tuple[int, bytes]]:
        async with _client() as client:
            first = await _get(client, server.url("/then-close"))
            await asyncio.sleep(0.2)  # the server's FIN arrives while the connection idles
            return [first, await _get(client, server.url("/len"))]

    assert run(go) == [(200, b"bye"), (200, b"hello")]
    assert server.connections == 2


def test_a_request_the_server_drops_on_a_reused_connection_is_sent_again(
    server: RawServer,
) -> None:
    async def go() -> list[tuple[int, bytes]]:
        async with _client() as client:
            return [await _get(client, server.url("/drop-second")) for _ in range(2)]

    assert run(go) == [(200, b"first"), (200, b"first")]
    assert server.connections == 2


def test_a_post_the_server_drops_on_a_reused_connection_is_not_sent_again(
    server: RawServer,
) -> None:
    async def go() -> None:
        async with _client() as client:
            await _get(client, server.url("/drop-second"), "POST", content=b"1")
            await _get(client, server.url("/drop-second"), "POST", content=b"2")

    with pytest.raises(httpx.RemoteProtocolError, match="without sending a complete response"):
        run(go)
    assert server.connections == 1


def test_idle_connections_expire(server: RawServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("anypool._apps._http.KEEPALIVE_EXPIRY", 0.1)

    async def go() -> None:
        async with _client() as client:
            await _get(client, server.url("/len"))
            await asyncio.sleep(0.2)
            await _get(client, server.url("/len"))

    run(go)
    assert server.connections == 2


def test_a_response_closed_before_its_end_closes_its_connection(server: RawServer) -> None:
    async def go() -> tuple[int, bytes]:
        async with _client() as client:
            async with client.stream("GET", server.url("/chunked")) as response:
                async for _ in response.aiter_raw():
                    break  # stop reading half-way
            return await _get(client, server.url("/len"))

    assert run(go) == (200, b"hello")
    assert server.connections == 2


def test_a_cancelled_read_closes_its_connection(server: RawServer) -> None:
    async def go() -> tuple[int, bytes]:
        async with _client() as client:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.3):
                    await _get(client, server.url("/trickle"))
            return await _get(client, server.url("/len"))

    assert run(go) == (200, b"hello")
    assert server.connections == 2


# ── failures are httpx's exceptions ─────────────────────────────────────────────


@pytest.mark.parametrize(
    ("path", "error", "words"),
    [
        ("/bad-status", "RemoteProtocolError", "not an HTTP/1.x status line"),
        ("/bad-header", "RemoteProtocolError", "malformed response header"),
        ("/two-lengths", "RemoteProtocolError", "invalid Content-Length"),
        ("/bad-chunk", "RemoteProtocolError", "bad chunk size"),
        ("/big-head", "RemoteProtocolError", "over 64 KiB"),
        ("/truncated", "RemoteProtocolError", "before the end of the response body"),
        ("/silent", "RemoteProtocolError", "without sending a complete response"),
    ],
)
def test_a_broken_reply_is_a_clear_httpx_error(
    server: RawServer, path: str, error: str, words: str
) -> None:
    async def go() -> None:
        async with _client() as client:
            await _get(client, server.url(path))

    with pytest.raises(httpx.HTTPError) as info:
        run(go)
    assert type(info.value).__name__ == error
    assert words in str(info.value)


def test_a_refused_connection_is_a_connect_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again below: nothing listens there

    async def go() -> None:
        async with _client() as client:
            await client.get(f"http://127.0.0.1:{port}/")

    with pytest.raises(httpx.ConnectError, match=f"127.0.0.1:{port}"):
        run(go)


def test_an_unsupported_scheme_is_refused() -> None:
    async def go() -> None:
        async with _client() as client:
            await client.get("ftp://127.0.0.1/file")

    with pytest.raises(httpx.UnsupportedProtocol, match="'ftp'"):
        run(go)


# ── cookies, TLS, proxies ───────────────────────────────────────────────────────


def test_cookies_a_page_sets_are_sent_back(server: RawServer) -> None:
    async def go() -> tuple[int, bytes, str | None]:
        async with _client() as client:
            status, body = await _get(client, server.url("/set-cookie"))
            return status, body, client.cookies.get("session")

    assert run(go) == (200, b"session=abc", "abc")


def test_a_client_given_cookies_sends_them(server: RawServer) -> None:
    async def go() -> tuple[int, bytes]:
        transport = LightTransport()
        async with Client(transport=transport, cookies={"a": "1"}) as client:
            return await _get(client, server.url("/show-cookie"))

    assert run(go) == (200, b"a=1")


def test_clients_given_one_cookie_jar_share_it(server: RawServer) -> None:
    jar = http.cookiejar.CookieJar()

    async def go() -> tuple[int, bytes]:
        async with (
            _client_with(cookies=jar) as first,
            _client_with(cookies=jar) as second,
        ):
            await first.get(server.url("/set-cookie"))
            return await _get(second, server.url("/show-cookie"))

    assert run(go) == (200, b"session=abc")


def _client_with(**kwargs: Any) -> Any:
    return Client(transport=LightTransport(), **kwargs)


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def test_https_is_verified_against_the_given_context(tls_files: tuple[Path, Path]) -> None:
    cert, key = tls_files
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    raw = RawServer(server_context)
    try:
        trusting = ssl.create_default_context(cafile=str(cert))

        async def fetch(context: ssl.SSLContext | None) -> tuple[int, bytes]:
            async with _client(ssl_context=context) as client:
                return await _get(client, raw.url("/len"))

        assert run(fetch, trusting) == (200, b"hello")
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            run(fetch, None)  # httpx's default CAs do not know this certificate
    finally:
        raw.close()


def test_proxies_in_the_environment_are_noticed(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("ALL_PROXY", raising=False)
    assert not proxies_configured()
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    assert proxies_configured()


def test_a_closed_transport_refuses_requests(server: RawServer) -> None:
    async def go() -> None:
        transport = LightTransport()
        client = Client(transport=transport)
        await client.aclose()
        await client.get(server.url("/len"))

    with pytest.raises(RuntimeError, match="closed"):
        run(go)
