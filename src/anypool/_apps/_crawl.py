"""``anypool crawl``: fetch many URLs concurrently with httpx on anypool's asyncio backend.

::

    caller's thread: the dispatcher                 anypool-asyncio thread: the event loop
    ───────────────────────────────                 ──────────────────────────────────────
    Frontier: a queue per host, taken in turn
      from hosts under their --per-host limit
    while fewer than --concurrency run:
      ex.submit(session.fetch, url, lane, ...) ──►  _Session.fetch: GET with the lane's
                                                      client; redirects; a deadline per
                                                      attempt; retries with back-off,
                                                      waiting out Retry-After
    completions.get()  ◄── Future done callback ◄─  Fetched (status, bytes, ..., html)
    write its JSON line, count it, advance the bar,
    give its links to the Frontier (--depth)

Why a dispatcher and not one ``map()``: with ``--depth`` the work grows as pages are read
(a feedback loop), and with a per-host limit the next URL to start depends on which hosts
have room. Neither fits a map over a fixed input, so the dispatcher submits one fetch at
a time to an ``Executor("asyncio")`` and refills as futures finish. It owns every piece
of mutable state (frontier, output file, counts), so nothing is locked; the loop only
fetches. Ctrl-C only sets a flag and wakes the dispatcher (a signal handler), which then
cancels the fetches still running, writes every result that had arrived, and closes the
clients; a second Ctrl-C stops at once.

Why several httpx clients ("lanes"): httpcore's connection pool scans all its
connections for every request it places (encode/httpx#3215), so one client carrying 100
requests at once spends about 13 ms of CPU per request on this machine. Lane ``i`` uses
client ``i // LANE_SHARE``; a lane is held by one fetch at a time, so no client ever
carries more than ``LANE_SHARE`` requests.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import email.utils
import json
import math
import queue
import random
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from concurrent.futures import CancelledError, Future
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
#: Event-loop slots kept for the session's own coroutines (open, cancel, close).
SESSION_SLOTS = 2
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
    progress: bool = False


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


# ── the fetching side (runs on the event loop) ──────────────────────────────────


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

    def __init__(self, clients: list[Any], options: CrawlOptions) -> None:
        self.clients = clients
        self.options = options
        self.tasks: set[asyncio.Task[Any]] = set()
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

        ssl_context = httpx.create_ssl_context()  # shared: loading CA certificates costs ~40 ms
        limits = httpx.Limits(max_connections=LANE_SHARE, max_keepalive_connections=LANE_SHARE)
        count = math.ceil(options.concurrency / LANE_SHARE)
        clients = [
            httpx.AsyncClient(
                verify=ssl_context,
                follow_redirects=True,
                timeout=None,  # the deadline is per attempt, below: it also bounds a trickle
                limits=limits,
                headers={"User-Agent": USER_AGENT},
            )
            for _ in range(count)
        ]
        return cls(clients, options)

    async def fetch(self, url: str, lane: int, want_html: bool) -> Fetched:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            return await self._fetch(url, self.clients[lane // LANE_SHARE], want_html)
        finally:
            self.tasks.discard(task)

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

    async def cancel_running(self) -> None:
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)  # their outcomes still reach their futures

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


# ── the dispatching side (the caller's thread) ──────────────────────────────────


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


def _outcome(future: Future[Fetched], url: str) -> Fetched | None:
    """The future's Fetched; None for a fetch cancelled by Ctrl-C; a bug in the fetch
    (which catches what the network can do) becomes an ``internal:`` error line."""
    try:
        return future.result()
    except (CancelledError, asyncio.CancelledError):
        return None
    except Exception as exc:
        return Fetched(url=url, error=f"internal: {type(exc).__name__}: {exc}")


class _Dispatcher:
    def __init__(self, options: CrawlOptions, out: IO[str], progress: Any) -> None:
        self.options = options
        self.out = out
        self.progress = progress
        self.frontier = Frontier(options.per_host)
        self.seen: set[str] = set()
        self.tally = Tally()
        # Finished futures, put by their done callbacks on the loop thread; None: Ctrl-C.
        self.completions: queue.SimpleQueue[Future[Fetched] | None] = queue.SimpleQueue()
        self.stop = threading.Event()
        self.running: dict[Future[Fetched], tuple[str, str, int, int]] = {}
        self.free_lanes = list(range(options.concurrency - 1, -1, -1))

    def offer(self, url: str, depth: int) -> bool:
        """Queue ``url`` unless it was seen before; whether it was queued."""
        key, host = key_and_host(url)
        if key in self.seen:
            return False
        self.seen.add(key)
        self.frontier.push(url, depth, host)
        return True

    def run(self, submit: Callable[..., Future[Fetched]], session: _Session) -> None:
        """Until every URL is done, or Ctrl-C sets ``self.stop``."""
        while not self.stop.is_set():
            self._start_ready(submit, session)
            if not self.running:
                return
            self._finish(self.completions.get())
            while True:  # everything else that has arrived, before refilling
                try:
                    self._finish(self.completions.get_nowait())
                except queue.Empty:
                    break
            self.out.flush()

    def _start_ready(self, submit: Callable[..., Future[Fetched]], session: _Session) -> None:
        while len(self.running) < self.options.concurrency:
            item = self.frontier.pop()
            if item is None:
                return
            url, depth, host = item
            lane = self.free_lanes.pop()
            future = submit(session.fetch, url, lane, depth < self.options.depth)
            self.running[future] = (url, host, depth, lane)
            future.add_done_callback(self.completions.put)

    def _finish(self, future: Future[Fetched] | None) -> None:
        if future is None:
            return  # the wake-up Ctrl-C sends; run() sees self.stop
        url, host, depth, lane = self.running.pop(future)
        self.free_lanes.append(lane)
        self.frontier.done(host)
        fetched = _outcome(future, url)
        if fetched is None:
            self.tally.abandoned += 1  # stopped by Ctrl-C: not written, so a resume fetches it
            return
        self.out.write(_to_json(fetched.record()) + "\n")
        self.tally.add(fetched)
        self.progress.advance(1)
        if fetched.html is not None:
            self._follow(fetched, depth + 1)

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
        """Ctrl-C: ask run() to stop at its next safe point (a signal handler: only sets
        an event and puts to a SimpleQueue, whose put() is reentrant)."""
        if self.stop.is_set():
            raise KeyboardInterrupt  # the second Ctrl-C: stop at once
        self.stop.set()
        self.completions.put(None)

    def interrupted(self, cancel: Callable[[], None]) -> None:
        """After Ctrl-C: stop the fetches, then write every result that had arrived."""
        self.tally.interrupted = True
        self.tally.waiting = self.frontier.waiting
        cancel()
        while self.running:
            self._finish(self.completions.get())
        self.out.flush()


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
    # Two slots more than the fetches can take, so that the session's own coroutines
    # (cancel_running on Ctrl-C, close) never wait behind a full house of slow fetches.
    with Executor("asyncio", workers=options.concurrency + SESSION_SLOTS) as ex:
        session: _Session = _on_loop(ex, _Session.open, options)
        try:
            with _on_ctrl_c(dispatcher.on_interrupt):
                dispatcher.run(ex.submit, session)
                if dispatcher.stop.is_set():
                    dispatcher.interrupted(lambda: _on_loop(ex, session.cancel_running))
        finally:
            _on_loop(ex, session.close)
    dispatcher.tally.seconds = time.perf_counter() - start
    return dispatcher.tally


@contextlib.contextmanager
def _on_ctrl_c(handler: Callable[[], None]) -> Iterator[None]:
    """Run ``handler`` on Ctrl-C (SIGINT) instead of raising KeyboardInterrupt wherever the
    main thread happens to be: raised between a submit and the bookkeeping of its future,
    it would lose track of a fetch (and could leave a pool's wake-up half done). Only the
    main thread can set a signal handler; elsewhere Ctrl-C is left as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: handler())
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _on_loop(ex: Executor, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
    """Await ``fn(*args)`` on the executor's event loop; its result. (``submit``'s type
    says it returns what calling ``fn`` returns, a coroutine: the backend awaits it.)"""
    return ex.submit(fn, *args).result()


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
