"""``anypool crawl``: fetch many URLs concurrently with httpx on anypool's asyncio backend.

::

    caller's thread                     anypool-asyncio thread: the event loop
    ───────────────                     ──────────────────────────────────────
    Executor("asyncio")                 _Dispatcher.run(): opens the httpx client, then
      .submit(dispatcher.run) ───────►  --concurrency worker coroutines, each in a loop:
      .result()                           take a URL from the Frontier (a queue per host,
                                            hosts in turn, each under --per-host)
    Ctrl-C: a signal handler sets         _Session.fetch: GET, redirects, a deadline per
      the stop flag and wakes the loop      attempt, retries with back-off, Retry-After
                                          write its JSON line, count it, advance the bar,
                                            give its links to the Frontier (--depth)

Why workers on one loop and not one ``map()``: with ``--depth`` the work grows as pages
are read (a feedback loop), and with a per-host limit the next URL to start depends on
which hosts have room. Neither fits a map over a fixed input. Why not a dispatcher in the
caller's thread submitting a fetch at a time (as the first version did): the hop to the
loop and back for every URL cost ~80 µs of CPU and ~12 ms of waiting per fetch, and at
100 fetches at once the loop is busy enough that such waits add up (see _Dispatcher).
Everything mutable (frontier, output file, counts) lives on the loop, so nothing is
locked. Ctrl-C only sets a flag and wakes the loop (a signal handler); the fetches still
running are cancelled, every result that had arrived is written, and the client closed;
a second Ctrl-C stops at once.

The client is :class:`._http.Client` (httpx's, with a cookie jar that skips responses
setting no cookie) over :class:`._http.LightTransport`, a small HTTP/1.1 connection pool
that costs a quarter of httpx's own transport in CPU (see _http.py). With
``--transport httpx``, or a proxy set in the environment, httpx's own transport is used,
in several clients ("lanes"): httpcore's connection pool scans all its connections for
every request it places (encode/httpx#3215), so one client carrying 100 requests at once
spends about 13 ms of CPU per request on this machine. Worker ``i`` uses client
``i // LANE_SHARE``, so no client carries more than ``LANE_SHARE`` requests.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import email.utils
import http.cookiejar
import json
import math
import random
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from .._executor import Executor
from ._urls import host_of, key_and_host, links_in, url_key

__all__ = ["CrawlOptions", "Fetched", "Frontier", "Tally", "crawl", "done_urls"]

#: Requests one httpx client carries at once. Smaller: less of httpcore's per-request
#: scan of its pool, but more clients and fewer kept-alive connections to reuse.
#: Measured here, 1,000 requests at 100 at once: 4 per client 0.6-0.8 ms of CPU per
#: request, 16 per client 1.6-2.5 ms, 100 in one client 13 ms.
LANE_SHARE = 4
#: The longest Retry-After waited out. Longer, and the 429/503 is recorded as it is:
#: a fetch waiting holds one of its host's slots, and minutes of that stall the crawl.
MAX_RETRY_AFTER = 120.0
#: Bytes of an HTML page kept to look for links; past this the page is still read and
#: counted, not parsed. More finds links further down huge pages, at their memory cost.
MAX_HTML_BYTES = 5_000_000
#: What sends the requests under httpx: anypool's light HTTP/1.1 pool, or httpx's own.
TRANSPORTS = ("anypool", "httpx")
#: Seconds a second Ctrl-C waits for the crawl to stop its fetches and close its files.
CLEANUP_WAIT = 2.0
#: Seconds a result line may wait in the output file's buffer: what a crash can lose.
FLUSH_EVERY = 0.25
USER_AGENT = "anypool-crawl (+https://pypi.org/project/anypool/)"


@dataclass(frozen=True)
class CrawlOptions:
    """What ``anypool crawl``'s options set (see docs/crawl.md)."""

    concurrency: int = 50
    per_host: int = 8
    timeout: float = 10.0
    retries: int = 2
    depth: int = 0
    same_host: bool = False
    backoff: float = 0.5  # the first retry's wait; each next one doubles it
    transport: str = "anypool"  # "httpx": httpx's own transport (httpcore), see _http.py
    progress: bool = False

    def __post_init__(self) -> None:
        if self.transport not in TRANSPORTS:
            raise ValueError(
                f"transport={self.transport!r}: expected one of {', '.join(TRANSPORTS)}"
            )


@dataclass
class Fetched:
    """The outcome for one URL: its JSON line, plus the page's text when links are wanted."""

    url: str
    final_url: str | None = None
    status: int | None = None
    bytes: int = 0
    content_type: str | None = None
    elapsed: float = 0.0
    error: str | None = None
    attempts: int = 0
    html: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None and self.status < 400

    def record(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "final_url": self.final_url,
            "status": self.status,
            "bytes": self.bytes,
            "content_type": self.content_type,
            "elapsed": round(self.elapsed, 4),
            "error": self.error,
            "attempts": self.attempts,
        }


# ── fetching one URL ────────────────────────────────────────────────────────────


@dataclass
class _Reply:
    status: int
    final_url: str
    size: int
    content_type: str | None
    retry_after: str | None
    html: str | None


class _Session:
    """The httpx clients and the fetches running on them; lives on the event loop."""

    def __init__(self, clients: list[Any], options: CrawlOptions, lane_share: int) -> None:
        self.clients = clients
        self.lane_share = lane_share  # 0: one client for every lane
        self.options = options
        import httpx

        # Worth another attempt: the network failed, or no answer came in time.
        self.retryable: tuple[type[BaseException], ...] = (
            httpx.TimeoutException,
            httpx.NetworkError,
            httpx.RemoteProtocolError,
            TimeoutError,
        )
        self.http_error: type[Exception] = httpx.HTTPError

    @classmethod
    async def open(cls, options: CrawlOptions) -> _Session:
        import httpx

        from ._http import Client, LightTransport, proxies_configured

        common: dict[str, Any] = {
            "follow_redirects": True,
            "timeout": None,  # the deadline is per attempt, below: it also bounds a trickle
            "headers": {"User-Agent": USER_AGENT},
        }
        if options.transport == "anypool" and not proxies_configured():
            # One client: the light transport finds a connection without scanning a pool.
            # It loads the CA certificates (~40 ms) only when it meets an https URL.
            transport = LightTransport(max_idle=options.concurrency)
            return cls([Client(transport=transport, **common)], options, lane_share=0)
        ssl_context = httpx.create_ssl_context()  # shared: loading CA certificates costs ~40 ms
        limits = httpx.Limits(max_connections=LANE_SHARE, max_keepalive_connections=LANE_SHARE)
        count = math.ceil(options.concurrency / LANE_SHARE)
        jar = http.cookiejar.CookieJar()  # one for every lane, as with one client
        clients = [
            Client(verify=ssl_context, limits=limits, cookies=jar, **common) for _ in range(count)
        ]
        return cls(clients, options, lane_share=LANE_SHARE)

    async def fetch(self, url: str, lane: int, want_html: bool) -> Fetched:
        client = self.clients[lane // self.lane_share if self.lane_share else 0]
        return await self._fetch(url, client, want_html)

    async def _fetch(self, url: str, client: Any, want_html: bool) -> Fetched:
        start = time.perf_counter()
        retries = self.options.retries
        for attempt in range(retries + 1):
            try:
                reply = await self._attempt(client, url, want_html)
            except self.retryable as exc:
                if attempt == retries:
                    return _failed(url, exc, self.options.timeout, start, attempt + 1)
                await asyncio.sleep(self._backoff(attempt))
                continue
            except self.http_error as exc:  # too many redirects, a bad Location, ...
                return _failed(url, exc, self.options.timeout, start, attempt + 1)
            delay = None if attempt == retries else self._retry_delay(reply, attempt)
            if delay is None:
                return _fetched(url, reply, start, attempt + 1)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable: the last attempt returns")

    async def _attempt(self, client: Any, url: str, want_html: bool) -> _Reply:
        async with asyncio.timeout(self.options.timeout), client.stream("GET", url) as response:
            content_type = response.headers.get("content-type")
            keep = want_html and _is_html(content_type)
            size, chunks = 0, []
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if keep and size <= MAX_HTML_BYTES:
                    chunks.append(chunk)
            html = _decode(b"".join(chunks), response.charset_encoding) if keep else None
            return _Reply(
                response.status_code,
                str(response.url),
                size,
                content_type,
                response.headers.get("retry-after"),
                html,
            )

    def _retry_delay(self, reply: _Reply, attempt: int) -> float | None:
        """Seconds to wait before trying again, or None: keep this reply."""
        status = reply.status
        if status in (429, 503) and reply.retry_after is not None:
            wait = parse_retry_after(reply.retry_after)
            if wait is not None:
                return wait if wait <= MAX_RETRY_AFTER else None
        if status == 429 or status >= 500:
            return self._backoff(attempt)
        return None

    def _backoff(self, attempt: int) -> float:
        # Exponential, with jitter so that many URLs failing together do not all come
        # back at the same instant.
        return float(self.options.backoff * 2**attempt * random.uniform(0.75, 1.25))

    async def close(self) -> None:
        for client in self.clients:
            await client.aclose()


def _is_html(content_type: str | None) -> bool:
    return content_type is not None and content_type.split(";")[0].strip().lower() in (
        "text/html",
        "application/xhtml+xml",
    )


def _decode(body: bytes, charset: str | None) -> str:
    try:
        return body.decode(charset or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        return body.decode("utf-8", errors="replace")


def _fetched(url: str, reply: _Reply, start: float, attempts: int) -> Fetched:
    return Fetched(
        url=url,
        final_url=reply.final_url,
        status=reply.status,
        bytes=reply.size,
        content_type=reply.content_type,
        elapsed=time.perf_counter() - start,
        attempts=attempts,
        html=reply.html,
    )


def _failed(url: str, exc: BaseException, timeout: float, start: float, attempts: int) -> Fetched:
    return Fetched(
        url=url,
        elapsed=time.perf_counter() - start,
        error=describe_error(exc, timeout),
        attempts=attempts,
    )


def describe_error(exc: BaseException, timeout: float) -> str:
    """``'timeout: ...'``, ``'connect: ...'``: a kind, a colon, then the details."""
    name = type(exc).__name__
    if isinstance(exc, TimeoutError) or name.endswith("Timeout"):
        return f"timeout: no complete response within {timeout:g} s"
    detail = str(exc) or name
    if name == "ConnectError":
        return f"connect: {detail}"
    if name == "TooManyRedirects":
        return f"redirects: {detail}"
    if name in ("RemoteProtocolError", "ReadError", "WriteError", "CloseError"):
        return f"protocol: {detail}"
    return f"{name}: {detail}"


def parse_retry_after(value: str) -> float | None:
    """Retry-After as seconds from now: delay-seconds or an HTTP date; None if neither."""
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


# ── the crawl: frontier, workers, results (all on the event loop) ───────────────


class Frontier:
    """URLs waiting, one queue per host; ``pop`` takes hosts in turn, skipping those that
    already have ``per_host`` fetches running."""

    def __init__(self, per_host: int) -> None:
        self.per_host = per_host
        self._queues: dict[str, collections.deque[tuple[str, int]]] = {}
        self._running: collections.Counter[str] = collections.Counter()
        self._ready: collections.deque[str] = collections.deque()  # hosts with room and URLs
        self._in_ready: set[str] = set()
        self.waiting = 0

    def push(self, url: str, depth: int, host: str | None = None) -> None:
        """Queue ``url``; ``host`` is its :func:`host_of`, if already known."""
        host = host_of(url) if host is None else host
        self._queues.setdefault(host, collections.deque()).append((url, depth))
        self.waiting += 1
        self._mark(host)

    def pop(self) -> tuple[str, int, str] | None:
        """The next ``(url, depth, host)`` to fetch, or None if no host has room."""
        if not self._ready:
            return None
        host = self._ready.popleft()
        self._in_ready.discard(host)
        url, depth = self._queues[host].popleft()
        self.waiting -= 1
        self._running[host] += 1
        self._mark(host)  # back of the line if it has more: hosts take turns
        return url, depth, host

    @property
    def ready(self) -> bool:
        """Whether ``pop`` would give a URL."""
        return bool(self._ready)

    def done(self, host: str) -> None:
        self._running[host] -= 1
        if not self._running[host]:
            del self._running[host]
            if not self._queues.get(host):
                self._queues.pop(host, None)
        self._mark(host)

    def _mark(self, host: str) -> None:
        if (
            host not in self._in_ready
            and self._queues.get(host)
            and self._running[host] < self.per_host
        ):
            self._ready.append(host)
            self._in_ready.add(host)


@dataclass
class Tally:
    """What the summary reports."""

    ok: int = 0
    failed: int = 0
    by_status: collections.Counter[int] = field(default_factory=collections.Counter)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    already_done: int = 0  # input URLs an earlier run wrote to the same file
    duplicates: int = 0  # input URLs given more than once
    bad_lines: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    abandoned: int = 0  # fetches cancelled by Ctrl-C (not written: a resume fetches them)
    waiting: int = 0  # URLs never started because of Ctrl-C

    @property
    def fetched(self) -> int:
        return self.ok + self.failed

    def add(self, fetched: Fetched) -> None:
        if fetched.ok:
            self.ok += 1
        else:
            self.failed += 1
        if fetched.status is not None:
            self.by_status[fetched.status] += 1
        if fetched.error is not None:
            self.errors[fetched.error.split(":", 1)[0]] += 1


_to_json = json.JSONEncoder(ensure_ascii=False).encode


class _Dispatcher:
    """The crawl on the event loop: ``concurrency`` worker coroutines share one frontier.

    Each worker takes a URL, fetches it, records the outcome (its JSON line, the counts,
    the page's links) and takes the next, all in one coroutine: a finished fetch starts
    the next one without a task to create or a hop through the loop's queue (at 100
    fetches at once those hops cost ~12 ms per fetch here, a quarter of the 50 ms
    latency). A worker that finds no URL it may start (every waiting URL's host at its
    ``per_host`` limit, or links still to come) waits; each worker that takes a URL wakes
    one more waiter while URLs are ready, so no URL waits while a worker idles. When no
    fetch runs and none is waiting, every worker returns."""

    def __init__(self, options: CrawlOptions, out: IO[str], progress: Any) -> None:
        self.options = options
        self.out = out
        self.progress = progress
        self.frontier = Frontier(options.per_host)
        self.seen: set[str] = set()
        self.tally = Tally()
        self.stop = threading.Event()  # Ctrl-C, set from the main thread
        self.busy = 0  # fetches running
        self.fetching: set[asyncio.Task[Any]] = set()  # the workers in a fetch
        self.waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._flush_timer: asyncio.TimerHandle | None = None

    def offer(self, url: str, depth: int) -> bool:
        """Queue ``url`` unless it was seen before; whether it was queued."""
        key, host = key_and_host(url)
        if key in self.seen:
            return False
        self.seen.add(key)
        self.frontier.push(url, depth, host)
        return True

    async def run(self) -> None:
        """Until every URL is done, or Ctrl-C sets ``self.stop``: then the fetches still
        running are cancelled and every result that had arrived is written."""
        self._loop = asyncio.get_running_loop()
        session = await _Session.open(self.options)
        workers = [
            self._loop.create_task(self._work(session, lane))
            for lane in range(self.options.concurrency)
        ]
        try:
            await asyncio.gather(*workers)
            if self.stop.is_set():
                self.tally.interrupted = True
                self.tally.waiting = self.frontier.waiting
        finally:
            # Normally nothing runs here. If a worker failed (the output file could not
            # be written, say) or run() is cancelled, the other workers are stopped.
            # The file first: a second Ctrl-C may cancel this cleanup at any await.
            for worker in workers:
                worker.cancel()
            try:
                await asyncio.wait(workers)
            finally:
                if self._flush_timer is not None:
                    self._flush_timer.cancel()
                self._flush()
                await session.close()

    async def _work(self, session: _Session, lane: int) -> None:
        task = asyncio.current_task()
        assert task is not None
        while (item := await self._next()) is not None:
            url, depth, host = item
            self.fetching.add(task)
            try:
                fetched = await session.fetch(url, lane, depth < self.options.depth)
            except asyncio.CancelledError:
                if not self.stop.is_set():
                    raise  # run() is stopping the workers
                self.tally.abandoned += 1  # Ctrl-C: not written, so a resume fetches it
                return
            except Exception as exc:  # a bug: the fetch catches what the network can do
                fetched = Fetched(url=url, error=f"internal: {type(exc).__name__}: {exc}")
            finally:
                self.fetching.discard(task)
                self.busy -= 1
                self.frontier.done(host)
            self._record(fetched, depth)

    async def _next(self) -> tuple[str, int, str] | None:
        """The next URL this worker may fetch; None when the crawl is over (or stopped)."""
        while not self.stop.is_set():
            item = self.frontier.pop()
            if item is not None:
                self.busy += 1
                if self.waiters and self.frontier.ready:
                    # More URLs can start (a host had room again, links were found): pass
                    # the baton. A worker that finished a fetch comes here before it
                    # could wait, so it takes the URL its fetch made room for itself.
                    self._wake_one()
                return item
            if not self.busy:  # nothing runs, so nothing waits either (no host is full)
                self._wake_all()
                return None
            assert self._loop is not None
            waiter = self._loop.create_future()
            self.waiters.append(waiter)
            await waiter
        return None

    def _wake_one(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _wake_all(self) -> None:
        while self.waiters:
            self._wake_one()

    def _record(self, fetched: Fetched, depth: int) -> None:
        self.out.write(_to_json(fetched.record()) + "\n")
        self.tally.add(fetched)
        self.progress.advance(1)
        if fetched.html is not None:
            self._follow(fetched, depth + 1)
        if self._flush_timer is None:
            assert self._loop is not None
            self._flush_timer = self._loop.call_later(FLUSH_EVERY, self._flush)

    def _flush(self) -> None:
        self._flush_timer = None
        self.out.flush()

    def _follow(self, fetched: Fetched, depth: int) -> None:
        assert fetched.html is not None and fetched.final_url is not None
        home = host_of(fetched.url)
        added = 0
        for link in links_in(fetched.html, fetched.final_url):
            if self.options.same_host and host_of(link) != home:
                continue
            added += self.offer(link, depth)
        if added:
            self.progress.add_total(added)

    def on_interrupt(self) -> None:
        """Ctrl-C (a signal handler in the main thread): ask run() to stop at its next
        safe point; a second Ctrl-C stops at once."""
        if self.stop.is_set():
            raise KeyboardInterrupt
        self.stop.set()
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has just closed
                loop.call_soon_threadsafe(self._interrupt)

    def _interrupt(self) -> None:
        """On the loop, after Ctrl-C: cancel the fetches; idle workers see ``stop``."""
        for task in self.fetching:
            task.cancel()
        self._wake_all()


def crawl(
    seeds: Iterable[str],
    out: IO[str],
    options: CrawlOptions,
    progress: Any,
    done: Iterable[str] = (),
) -> Tally:
    """Fetch ``seeds`` (checked URLs) and, to ``options.depth``, the links of their
    pages, each once, skipping the URL keys in ``done`` (an earlier run's); one JSON line
    per URL to ``out``. Ctrl-C stops it and returns the tally with ``interrupted`` set,
    every finished result written."""
    dispatcher = _Dispatcher(options, out, progress)
    earlier = set(done)
    dispatcher.seen.update(earlier)
    for url in seeds:
        key, host = key_and_host(url)
        if key in earlier:
            dispatcher.tally.already_done += 1
        elif key in dispatcher.seen:
            dispatcher.tally.duplicates += 1
        else:
            dispatcher.seen.add(key)
            dispatcher.frontier.push(url, 0, host)
    progress.set_total(dispatcher.frontier.waiting)
    if not dispatcher.frontier.waiting:
        return dispatcher.tally  # nothing to fetch: no loop, no clients
    start = time.perf_counter()
    with Executor("asyncio", workers=1) as ex, _on_ctrl_c(dispatcher.on_interrupt):
        finished: Future[Any] = ex.submit(dispatcher.run)  # the backend awaits run()
        try:
            finished.result()
        except KeyboardInterrupt:
            # The second Ctrl-C: cancel run(). Its cleanup (stop the fetches, write what
            # arrived, close the connections) gets a moment, so that the caller does not
            # close the output file under it; a third Ctrl-C cuts that short too.
            ex.terminate()
            concurrent.futures.wait([finished], timeout=CLEANUP_WAIT)
            raise
    dispatcher.tally.seconds = time.perf_counter() - start
    return dispatcher.tally


@contextlib.contextmanager
def _on_ctrl_c(handler: Callable[[], None]) -> Iterator[None]:
    """Run ``handler`` on Ctrl-C (SIGINT) instead of raising KeyboardInterrupt wherever the
    main thread happens to be. Only the main thread can set a signal handler; elsewhere
    Ctrl-C is left as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: handler())
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def done_urls(path: Path) -> tuple[set[str], int]:
    """The URL keys already in a results file, and how many of its lines were unreadable
    (a line cut short when an earlier run was killed, say)."""
    done: set[str] = set()
    unreadable = 0
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return done, 0
    for line in lines:
        if not line.strip():
            continue
        try:
            done.add(url_key(json.loads(line)["url"]))
        except (ValueError, KeyError, TypeError):
            unreadable += 1
    return done, unreadable
