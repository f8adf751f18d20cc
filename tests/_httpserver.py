"""A small HTTP/1.1 server on 127.0.0.1 for testing and benchmarking ``anypool crawl``.

Written on asyncio streams rather than ``http.server`` because a crawl test needs 100+
connections open at once, each waiting out a latency: one coroutine per connection
costs a kilobyte, one thread per connection (ThreadingHTTPServer) costs a thread and
the GIL hand-offs between them. Keep-alive is supported, as real servers do.

::

    test thread                       server thread (its own event loop)
    ───────────                       ──────────────────────────────────
    Server().start() ─ started ─────► asyncio.start_server: one _serve() per connection
    server.site.max_in_flight  ◄──── _serve(): read request, Site.respond(), write reply
    server.stop() ───────────────────► close listener, cancel connections, stop loop

Pages (every one waits ``latency`` seconds first, plus ``?delay=S`` if given):

    /page/N                 200 text/html, a few hundred bytes
    /text/N                 200 text/plain
    /redirect?to=PATH       302 to PATH (relative or absolute)
    /loop                   302 to itself, forever
    /status/CODE            that status
    /flaky/KEY?fails=N      500 for the first N requests of KEY, then 200 (&code= another 5xx)
    /busy/KEY?retry_after=S 429 with Retry-After: S the first time, then 200 (&code=503)
    /hang                   never answers
    /site/...               HTML pages linking to each other (see SITE), for --depth
    /stats                  what the server saw, as JSON (for a server in another process)

Run it on its own (the benchmark and the docs do): ``python -m tests._httpserver
--latency 0.05`` prints its base URL and serves until interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

#: /site/: each page and the links on it. Relative, absolute, duplicate, fragment,
#: off-site and non-HTTP links, as real pages have.
SITE: dict[str, list[str]] = {
    "/site/": ["a", "b", "/site/b#top", "mailto:me@example.com", "javascript:void(0)"],
    "/site/a": ["a/1", "a/2", "http://{other}/site/elsewhere", "/site/"],
    "/site/b": ["b/1", "/site/a"],
    "/site/a/1": ["2"],  # relative: /site/a/2
    "/site/a/2": ["deeper"],
    "/site/b/1": [],
    "/site/a/deeper": [],
    "/site/elsewhere": [],
}

REASONS = {
    200: "OK",
    302: "Found",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


@dataclass
class Reply:
    status: int
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Site:
    """The pages, and what the server saw (read it from the test thread)."""

    latency: float = 0.0
    other_host: str = "localhost"
    hits: collections.Counter[str] = field(default_factory=collections.Counter)
    hit_times: dict[str, list[float]] = field(default_factory=dict)
    in_flight: collections.Counter[str] = field(default_factory=collections.Counter)
    max_in_flight: collections.Counter[str] = field(default_factory=collections.Counter)
    max_total_in_flight: int = 0

    def stats(self) -> dict[str, object]:
        return {
            "hits": dict(self.hits),
            "max_in_flight": dict(self.max_in_flight),
            "max_total_in_flight": self.max_total_in_flight,
        }

    @contextlib.contextmanager
    def counting(self, host: str) -> Iterator[None]:
        self.in_flight[host] += 1
        self.max_in_flight[host] = max(self.max_in_flight[host], self.in_flight[host])
        self.max_total_in_flight = max(self.max_total_in_flight, sum(self.in_flight.values()))
        try:
            yield
        finally:
            self.in_flight[host] -= 1

    async def respond(self, target: str, host: str) -> Reply:
        parts = urlsplit(target)
        path, query = parts.path, {k: v[-1] for k, v in parse_qs(parts.query).items()}
        key = f"{host}{path}"
        self.hits[key] += 1
        self.hit_times.setdefault(key, []).append(time.monotonic())
        if path == "/stats":
            return Reply(200, json.dumps(self.stats()).encode(), "application/json")
        if path == "/hang":
            await asyncio.Event().wait()  # until the server stops or the client leaves
        await asyncio.sleep(self.latency + float(query.get("delay", 0)))
        return self._page(path, query, self.hits[key])

    def _page(self, path: str, query: dict[str, str], hit: int) -> Reply:
        head, _, rest = path.lstrip("/").partition("/")
        if head == "page":
            return Reply(200, html(f"page {rest}", ["/page/0"]))
        if head == "text":
            return Reply(200, f"text {rest}\n".encode(), "text/plain")
        if head == "redirect":
            return Reply(302, b"", headers={"Location": query.get("to", "/page/0")})
        if head == "loop":
            return Reply(302, b"", headers={"Location": "/loop"})
        if head == "status":
            return Reply(int(rest), f"status {rest}\n".encode(), "text/plain")
        if head == "flaky":
            failing = hit <= int(query.get("fails", 1))
            return Reply(int(query.get("code", 500)) if failing else 200, html("flaky", []))
        if head == "busy":
            if hit == 1:
                wait = {"Retry-After": query.get("retry_after", "1")}
                return Reply(int(query.get("code", 429)), b"slow down\n", headers=wait)
            return Reply(200, html("not busy now", []))
        if head == "site" and path in SITE:
            links = [link.format(other=self.other_host) for link in SITE[path]]
            return Reply(200, html(path, links))
        return Reply(404, b"no such page\n", "text/plain")


def html(title: str, links: list[str]) -> bytes:
    anchors = "".join(f'<li><a href="{link}">{link}</a></li>' for link in links)
    return (
        f"<!doctype html><html><head><title>{title}</title></head>"
        f"<body><h1>{title}</h1><ul>{anchors}</ul></body></html>"
    ).encode()


# ── the server ──────────────────────────────────────────────────────────────────


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, dict[str, str]] | None:
    line = await reader.readline()
    if not line.strip():
        return None
    _method, target, _version = line.decode("latin-1").split(" ", 2)
    headers = {}
    while (header := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = header.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return target, headers


def _encode(reply: Reply, keep_alive: bool) -> bytes:
    lines = [
        f"HTTP/1.1 {reply.status} {REASONS.get(reply.status, 'Status')}",
        f"Content-Type: {reply.content_type}",
        f"Content-Length: {len(reply.body)}",
        f"Connection: {'keep-alive' if keep_alive else 'close'}",
        *(f"{k}: {v}" for k, v in reply.headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + reply.body


class Server:
    """The site on 127.0.0.1 at a free port, in a thread with its own event loop.

    Use as a context manager; ``url(path, host=...)`` builds an address on it.
    """

    def __init__(self, latency: float = 0.0, port: int = 0) -> None:
        self.site = Site(latency=latency)
        self.port = port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="test-http-server", daemon=True)
        self._ready = threading.Event()
        self._connections: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def __enter__(self) -> Server:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", self.port, backlog=1024)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self.site.other_host = f"localhost:{self.port}"
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.run_until_complete(self._close())
            self._loop.close()

    async def _close(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while (request := await _read_request(reader)) is not None:
                target, headers = request
                host = headers.get("host", "").rsplit(":", 1)[0]
                with self.site.counting(host):
                    reply = await self.site.respond(target, host)
                keep_alive = headers.get("connection", "").lower() != "close"
                writer.write(_encode(reply, keep_alive))
                await writer.drain()
                if not keep_alive:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass  # the client went away, or sent something that is not HTTP
        except asyncio.CancelledError:
            pass  # the server is stopping
        finally:
            self._connections.discard(task)
            writer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each reply")
    parser.add_argument("--port", type=int, default=0, help="default: a free port")
    args = parser.parse_args()
    with Server(latency=args.latency, port=args.port) as server:
        print(server.url(""), flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
