"""A light HTTP/1.1 transport for httpx, on asyncio: what ``anypool crawl`` fetches with.

httpx itself (the client: URLs, headers, redirects, cookies, decoding) costs ~150 µs of
CPU per request here; its default transport (httpcore on anyio, h11) another ~550 µs.
On two cores that transport alone is more than the whole budget of a 1,000-URL crawl, so
the crawl plugs this one in instead: a keep-alive pool over asyncio connections (uvloop's
when installed) and a response parser of a few ``bytes`` operations, ~60 µs per request.
It speaks what a crawler needs and no more:

- HTTP/1.1 (and 1.0 replies), plain or TLS; a request body is sent with its length, or
  chunked when httpx asked for chunked;
- response framing as RFC 9112 §6.3 orders it: no body for HEAD, 1xx, 204 and 304, then
  chunked, then Content-Length, else the body runs to the end of the connection; head
  lines may end with CRLF or a bare LF;
- a connection is reused only after its whole response was read, with nothing unread
  behind it, neither side having asked to close it (nor a 101 or a chunked HTTP/1.0 reply
  having made it unusable); an idle one the server has closed, or older than
  ``KEEPALIVE_EXPIRY``, is dropped, and a full pool (``max_idle``, all hosts together)
  closes its oldest to keep the newest; an idempotent request (GET, HEAD, ...) that fails
  on a reused connection before any byte of the reply came back is sent again on another
  connection (the server closed this one as we picked it up);
- failures are httpx's exceptions: ``ConnectError``, ``ReadError`` and
  ``RemoteProtocolError``, so a client catching ``httpx.HTTPError`` sees no difference.

No proxies, no HTTP/2, no timeouts of its own (the crawl bounds every attempt with
``asyncio.timeout``; a cancelled request closes its connection). ``anypool crawl
--transport httpx`` goes back to httpx's own transport, which the crawl also uses by
itself when a proxy is configured in the environment.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import ssl
import time
from collections.abc import AsyncIterator
from typing import Any, cast

import httpx

__all__ = ["Client", "LightTransport", "proxies_configured"]

#: Seconds an idle connection is kept for reuse (servers commonly close after 5-15 s).
KEEPALIVE_EXPIRY = 5.0
#: The longest status line plus headers read; a longer head is a protocol error.
MAX_HEAD = 64 * 1024
#: Seconds ``aclose`` waits for TLS connections to say goodbye before cutting them off.
CLOSE_WAIT = 1.0
#: Bytes buffered unread on a connection before it stops reading from the socket.
PAUSE_READING_AT = 256 * 1024
#: The most bytes one body chunk handed to httpx holds.
READ_SIZE = 64 * 1024
_DEFAULT_PORTS = {"http": 80, "https": 443}
_NO_BODY_STATUS = frozenset({204, 304})
#: Methods sent again when a kept-alive connection turns out closed (RFC 9110 §9.2.2).
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})


def proxies_configured() -> bool:
    """Whether the environment names a proxy that httpx would use (``*_PROXY``)."""
    return any(
        value and name.lower() in ("http_proxy", "https_proxy", "all_proxy")
        for name, value in os.environ.items()
    )


class _SetCookiesOnly(httpx.Cookies):
    """httpx's cookie jar, reading a response for cookies only when it sets some.

    httpx hands every response to the jar through ``urllib.request`` stand-ins, ~60 µs
    of CPU each here (a third of the client's own cost), even when it sets no cookie,
    as most pages do not."""

    def extract_cookies(self, response: httpx.Response) -> None:
        headers = response.headers
        if "set-cookie" in headers or "set-cookie2" in headers:
            super().extract_cookies(response)


class Client(httpx.AsyncClient):
    """``httpx.AsyncClient`` whose cookie jar skips responses that set no cookie.

    httpx reaches the jar only through the public ``cookies`` property, which this
    overrides; cookies are kept and sent exactly as with httpx's own client."""

    def __init__(self, **kwargs: Any) -> None:
        self._jar: httpx.Cookies = _SetCookiesOnly()
        super().__init__(**kwargs)
        cookies = kwargs.get("cookies")
        self.cookies = {} if cookies is None else cookies  # a CookieJar given stays shared

    @property
    def cookies(self) -> httpx.Cookies:
        return self._jar

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        self._jar = _SetCookiesOnly(cookies)


class _Closed(Exception):
    """The connection ended (EOF, or the error it ended with, as ``__cause__``) before
    what was being read was complete; ``partial``: some of it had come."""

    def __init__(self, partial: bool) -> None:
        super().__init__(partial)
        self.partial = partial


class _Stream(asyncio.Protocol):
    """One connection's bytes, what asyncio's StreamReader and StreamWriter would do,
    with two differences the transport needs: the buffer is in view (a connection goes
    back to the pool only when no byte is left in it: a server that sent more than it
    framed would otherwise shift every later reply on it), and a reply head whose lines
    end with a bare LF is read as well as one with CRLF."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False
        self.error: BaseException | None = None
        self.lost: asyncio.Future[None] = loop.create_future()
        self._waiter: asyncio.Future[None] | None = None
        self._reading_paused = False
        self._writing_paused = False

    # ── asyncio.Protocol ──

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's is not an asyncio.Transport subclass).
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._wake()
        if len(self.buffer) > PAUSE_READING_AT and not self._reading_paused:
            assert self.transport is not None
            self._reading_paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        if exc is not None:
            self.error = exc
        self._wake()
        if not self.lost.done():
            self.lost.set_result(None)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._wake()

    # ── reading and writing ──

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self) -> None:
        if self._reading_paused:
            assert self.transport is not None
            self._reading_paused = False
            self.transport.resume_reading()
        self._waiter = self.loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    async def _more(self, partial: bool) -> None:
        """Wait for more bytes; ``_Closed`` if none will come."""
        if self.eof:
            raise _Closed(partial) from self.error
        await self._wait()

    async def write(self, data: bytes) -> None:
        assert self.transport is not None
        if self.eof:  # closed by the server: write() would drop the bytes silently
            raise _Closed(False) from self.error
        self.transport.write(data)
        while self._writing_paused and not self.eof:
            await self._wait()

    async def read_head(self) -> bytes:
        """The bytes up to and including the empty line that ends a reply's head."""
        start = 0
        while True:
            buffer = self.buffer
            end = _head_end(buffer, start)
            if 0 < end <= MAX_HEAD:
                head = bytes(buffer[:end])
                del buffer[:end]
                return head
            if end or len(buffer) > MAX_HEAD:
                raise httpx.RemoteProtocolError(f"the response head is over {MAX_HEAD // 1024} KiB")
            start = max(0, len(buffer) - 2)
            await self._more(bool(buffer))

    async def readline(self) -> bytes:
        """One line, its LF included (a chunk-size line or a trailer)."""
        start = 0
        while True:
            end = self.buffer.find(b"\n", start) + 1
            if end:
                line = bytes(self.buffer[:end])
                del self.buffer[:end]
                return line
            if len(self.buffer) > MAX_HEAD:
                raise httpx.RemoteProtocolError("a chunk-size line is too long")
            start = len(self.buffer)
            await self._more(True)

    async def read(self, n: int) -> bytes:
        """Up to ``n`` bytes, at least one; b"" at the end of the connection."""
        while not self.buffer:
            if self.eof:
                if self.error is not None:
                    raise self.error
                return b""
            await self._wait()
        chunk = bytes(self.buffer[:n])
        del self.buffer[:n]
        return chunk

    @property
    def reusable(self) -> bool:
        """Open, and nothing unread in the buffer."""
        transport = self.transport
        return not (self.eof or self.buffer or transport is None or transport.is_closing())

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


def _head_end(buffer: bytearray, start: int) -> int:
    """Where the first empty line ends ("\\r\\n\\r\\n", or LFs without CRs), or 0."""
    crlf = buffer.find(b"\n\r\n", start)
    lf = buffer.find(b"\n\n", start)
    if crlf == -1:
        return 0 if lf == -1 else lf + 2
    if lf == -1 or crlf < lf:
        return crlf + 3
    return lf + 2


class _Connection:
    __slots__ = ("idle_since", "origin", "reused", "stream")

    def __init__(self, stream: _Stream, origin: tuple[str, str, int]) -> None:
        self.stream = stream
        self.origin = origin
        self.idle_since = 0.0
        self.reused = False

    def usable(self, now: float) -> bool:
        return now - self.idle_since < KEEPALIVE_EXPIRY and self.stream.reusable

    def close(self) -> None:
        self.stream.close()


class LightTransport(httpx.AsyncBaseTransport):
    """An httpx transport: ``httpx.AsyncClient(transport=LightTransport())``.

    ``ssl_context`` verifies HTTPS servers (default: ``httpx.create_ssl_context()``);
    ``max_idle`` bounds the connections kept open for reuse, all origins together.
    """

    def __init__(self, ssl_context: ssl.SSLContext | None = None, max_idle: int = 100) -> None:
        self._ssl_context = ssl_context
        self._max_idle = max_idle
        # Idle connections by origin (the most recent last), and all of them oldest
        # first, for closing expired ones and making room in a full pool.
        self._idle: dict[tuple[str, str, int], collections.deque[_Connection]] = {}
        self._lru: collections.OrderedDict[_Connection, None] = collections.OrderedDict()
        self._busy: set[_Connection] = set()
        self._closed = False

    # ── the pool ──

    def _take_idle(self, origin: tuple[str, str, int]) -> _Connection | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            conn = idle.pop()  # the most recently used: the least likely to be closed
            del self._lru[conn]
            if conn.usable(now):
                conn.reused = True
                return conn
            conn.close()
        return None

    async def _connect(self, origin: tuple[str, str, int]) -> _Connection:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        stream = _Stream(loop)
        try:
            transport, _ = await loop.create_connection(lambda: stream, host, port)
        except OSError as exc:  # refused, unreachable, no such name
            raise httpx.ConnectError(f"{host}:{port}: {exc}") from exc
        if scheme == "https":
            # TLS on the connection made above rather than by create_connection(ssl=...):
            # a failed handshake there can leave its socket for the collector to close.
            if self._ssl_context is None:
                self._ssl_context = httpx.create_ssl_context()
            try:
                tls = await loop.start_tls(
                    transport, stream, self._ssl_context, server_hostname=host
                )
            except BaseException as exc:
                transport.abort()
                if isinstance(exc, OSError):  # ssl.SSLError is one: a bad certificate, ...
                    raise httpx.ConnectError(f"{host}:{port}: {exc}") from exc
                raise
            assert tls is not None
            stream.transport = tls  # start_tls does not call connection_made again
        return _Connection(stream, origin)

    def _release(self, conn: _Connection, reusable: bool) -> None:
        self._busy.discard(conn)
        if not (reusable and conn.stream.reusable) or self._closed or self._max_idle < 1:
            conn.close()
            return
        now = time.monotonic()
        lru = self._lru
        while lru:  # the oldest first: expired, or pushed out by this one
            oldest = next(iter(lru))
            if len(lru) < self._max_idle and now - oldest.idle_since < KEEPALIVE_EXPIRY:
                break
            self._forget(oldest)
            oldest.close()
        conn.idle_since = now
        self._idle.setdefault(conn.origin, collections.deque()).append(conn)
        lru[conn] = None

    def _forget(self, conn: _Connection) -> None:
        """Take an idle connection out of the pool."""
        del self._lru[conn]
        idle = self._idle[conn.origin]
        idle.remove(conn)
        if not idle:
            del self._idle[conn.origin]

    # ── one request ──

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._closed:
            raise RuntimeError("LightTransport is closed")
        url = request.url
        scheme = url.scheme
        if scheme not in _DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {scheme!r}: http or https")
        # raw_host: the ASCII (IDNA) form, for DNS and TLS; IPv6 without brackets.
        origin = (scheme, url.raw_host.decode("ascii"), url.port or _DEFAULT_PORTS[scheme])
        payload, close = _encode_request(request, await request.aread())
        head_only = request.method == "HEAD"
        resend = request.method in _IDEMPOTENT
        while True:
            conn = self._take_idle(origin)
            if conn is None:
                conn = await self._connect(origin)
            self._busy.add(conn)
            try:
                reply = await _exchange(conn, payload, head_only, resend)
            except _Stale:
                self._release(conn, False)
                continue  # the server had closed this kept-alive connection: another one
            except BaseException:
                self._release(conn, False)  # cancelled or failed half-way: unusable
                raise
            break
        status, version, headers, framing = reply
        keep_alive = (
            not close
            and framing[0] != "close"
            and status != 101  # the connection now speaks another protocol
            and _keeps_alive(version, headers)
            # RFC 9112 §6.1: a chunked HTTP/1.0 reply closes its connection after it
            and not (framing[0] == "chunked" and version != b"HTTP/1.1")
        )
        return httpx.Response(
            status,
            headers=headers,
            stream=_Body(self, conn, framing, keep_alive),
            extensions={"http_version": version},
        )

    async def aclose(self) -> None:
        """Close every connection; TLS ones get up to ``CLOSE_WAIT`` s for their goodbye."""
        self._closed = True
        conns = [*self._lru, *self._busy]
        self._idle.clear()
        self._lru.clear()
        self._busy.clear()
        for conn in conns:
            conn.close()
        closing = {asyncio.ensure_future(_closed(conn)): conn for conn in conns}
        if closing:
            _, late = await asyncio.wait(closing, timeout=CLOSE_WAIT)
            for task in late:
                task.cancel()
                closing[task].stream.abort()


async def _closed(conn: _Connection) -> None:
    with contextlib.suppress(Exception):  # reset by the peer, say: closed all the same
        await conn.stream.lost


class _Stale(Exception):
    """A reused connection failed before any byte of the reply: send again on a new one."""


def _encode_request(request: httpx.Request, body: bytes) -> tuple[bytes, bool]:
    """The request's bytes, and whether it asks to close the connection after."""
    headers = request.headers.raw
    chunked = close = False
    for name, value in headers:
        lower = name.lower()
        if lower == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif lower == b"connection":
            close = b"close" in value.lower()
    lines = [b"%s %s HTTP/1.1" % (request.method.encode("ascii"), request.url.raw_path)]
    lines.extend(b"%s: %s" % (name, value) for name, value in headers)
    head = b"\r\n".join(lines) + b"\r\n\r\n"
    if chunked:
        if body:
            return head + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body), close
        return head + b"0\r\n\r\n", close
    return head + body, close


async def _exchange(
    conn: _Connection, payload: bytes, head_only: bool, resend: bool
) -> tuple[int, bytes, list[tuple[bytes, bytes]], tuple[str, int]]:
    """Send the request and read the reply's head: status, version, headers, framing."""
    stream = conn.stream
    try:
        await stream.write(payload)
        while True:
            head = await stream.read_head()
            status, version, headers = _parse_head(head)
            if 100 <= status < 200 and status != 101:
                continue  # 100 Continue, 103 Early Hints: the real reply follows
            return status, version, headers, _framing(status, headers, head_only)
    except _Closed as exc:
        if conn.reused and resend and not exc.partial:
            raise _Stale from exc
        error = exc.__cause__
        if isinstance(error, OSError):  # reset by the peer, ...
            raise httpx.ReadError(str(error) or type(error).__name__) from error
        raise httpx.RemoteProtocolError(
            "the server closed the connection without sending a complete response"
        ) from exc


def _parse_head(head: bytes) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    lines = [line.removesuffix(b"\r") for line in head.rstrip(b"\r\n").split(b"\n")]
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise httpx.RemoteProtocolError(f"not an HTTP/1.x status line: {lines[0][:100]!r}")
    headers: list[tuple[bytes, bytes]] = []
    for line in lines[1:]:
        if line[:1] in (b" ", b"\t") and headers:  # obsolete line folding
            name, value = headers[-1]
            headers[-1] = (name, value + b" " + line.strip())
            continue
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip():
            raise httpx.RemoteProtocolError(f"malformed response header: {line[:100]!r}")
        headers.append((name, value.strip()))
    return int(parts[1]), parts[0], headers


def _framing(status: int, headers: list[tuple[bytes, bytes]], head_only: bool) -> tuple[str, int]:
    """How the body ends: ("none", 0), ("chunked", 0), ("length", N) or ("close", 0)."""
    if head_only or status in _NO_BODY_STATUS or status < 200:
        return ("none", 0)
    lengths: set[bytes] = set()
    encoding = None
    for name, value in headers:
        lower = name.lower()
        if lower == b"transfer-encoding":
            encoding = value
        elif lower == b"content-length":
            lengths.update(v.strip() for v in value.split(b","))
    if encoding is not None:
        if encoding.rsplit(b",", 1)[-1].strip().lower() == b"chunked":
            return ("chunked", 0)
        return ("close", 0)
    if lengths:
        if len(lengths) > 1 or not next(iter(lengths)).isdigit():
            raise httpx.RemoteProtocolError(f"invalid Content-Length: {sorted(lengths)!r}")
        return ("length", int(next(iter(lengths))))
    return ("close", 0)


def _keeps_alive(version: bytes, headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether the server lets the connection be used again (RFC 9112 §9.3)."""
    tokens: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            tokens.update(token.strip().lower() for token in value.split(b","))
    if b"close" in tokens:
        return False
    return version == b"HTTP/1.1" or b"keep-alive" in tokens


class _Body(httpx.AsyncByteStream):
    """The reply's body as httpx reads it; the connection goes back to the pool (or is
    closed) when httpx closes the response."""

    def __init__(
        self,
        transport: LightTransport,
        conn: _Connection,
        framing: tuple[str, int],
        keep_alive: bool,
    ) -> None:
        self._transport = transport
        self._conn = conn
        self._framing = framing
        self._keep_alive = keep_alive
        self._complete = framing[0] == "none"
        self._released = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        kind, length = self._framing
        stream = self._conn.stream
        try:
            if kind == "length":
                async for chunk in _exactly(stream, length):
                    yield chunk
            elif kind == "chunked":
                async for chunk in _chunks(stream):
                    yield chunk
            elif kind == "close":
                while chunk := await stream.read(READ_SIZE):
                    yield chunk
        except _Closed as exc:
            raise _incomplete() from exc
        except OSError as exc:
            raise httpx.ReadError(str(exc) or type(exc).__name__) from exc
        self._complete = True

    async def aclose(self) -> None:
        if not self._released:
            self._released = True
            self._transport._release(self._conn, self._complete and self._keep_alive)


async def _chunks(stream: _Stream) -> AsyncIterator[bytes]:
    while True:
        line = await stream.readline()
        size_text = line.split(b";", 1)[0].strip()
        if not size_text or size_text.strip(b"0123456789abcdefABCDEF"):
            raise httpx.RemoteProtocolError(f"bad chunk size: {size_text[:40]!r}")
        size = int(size_text, 16)
        if size == 0:
            while (await stream.readline()).strip():
                pass  # trailer fields: not used
            return
        async for chunk in _exactly(stream, size):
            yield chunk
        if (await stream.readline()).strip():
            raise httpx.RemoteProtocolError("a chunk does not end with CRLF")


async def _exactly(stream: _Stream, size: int) -> AsyncIterator[bytes]:
    """``size`` bytes, in the pieces they arrive in (at most ``READ_SIZE`` each)."""
    while size:
        chunk = await stream.read(min(size, READ_SIZE))
        if not chunk:
            raise _incomplete()
        size -= len(chunk)
        yield chunk


def _incomplete() -> httpx.RemoteProtocolError:
    return httpx.RemoteProtocolError(
        "the server closed the connection before the end of the response body"
    )
