"""``anypool crawl URLS.txt --out results.jsonl``: the command line of ``_crawl``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import IO, TYPE_CHECKING

from ._common import (
    MissingExtra,
    non_negative_int,
    positive_float,
    positive_int,
    rate,
    report_missing,
    require,
    seconds,
)
from ._crawl import TRANSPORTS
from ._urls import BadURL, check_url

if TYPE_CHECKING:
    from ._crawl import Tally

__all__ = ["read_urls", "register", "run", "summary"]

#: Bad input lines shown one by one; the rest are only counted.
SHOWN_BAD_LINES = 20


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "crawl",
        help="fetch many URLs concurrently (httpx on asyncio), one JSON line per URL",
        description="Fetch URLs concurrently with httpx on anypool's asyncio backend: a "
        "limit per host, retries with back-off (honouring Retry-After), redirects "
        "followed, optionally the links of HTML pages. Writes one JSON line per URL; "
        "running it again skips the URLs already written. Needs anypool[apps].",
    )
    p.add_argument("urls", metavar="URLS", help="a file with one URL per line, or - for stdin")
    p.add_argument(
        "--out",
        required=True,
        metavar="PATH",
        help="results, one JSON line per URL, appended; URLs already in it are skipped",
    )
    p.add_argument(
        "--concurrency", type=positive_int, default=50, help="fetches at once (default 50)"
    )
    p.add_argument(
        "--per-host", type=positive_int, default=8, help="fetches at once per host (default 8)"
    )
    p.add_argument(
        "--timeout",
        type=positive_float,
        default=10.0,
        help="seconds for one attempt, connect to last byte (default 10)",
    )
    p.add_argument(
        "--retries",
        type=non_negative_int,
        default=2,
        help="more attempts after a network error, a timeout, a 5xx or a 429 (default 2)",
    )
    p.add_argument(
        "--backoff",
        type=positive_float,
        default=0.5,
        help="seconds before the first retry, doubling after each (default 0.5)",
    )
    p.add_argument(
        "--depth",
        type=non_negative_int,
        default=0,
        help="follow links of HTML pages this many levels deep (default 0: only the input)",
    )
    p.add_argument(
        "--same-host", action="store_true", help="with --depth: follow links only on the same host"
    )
    p.add_argument(
        "--transport",
        choices=TRANSPORTS,
        default="anypool",
        help="anypool: a light HTTP/1.1 connection pool, ~4x less CPU per request; httpx: "
        "httpx's own (HTTP proxies; used anyway when *_PROXY is set) (default anypool)",
    )
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a progress bar on stderr (default: when stderr is a terminal)",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        require("httpx", "crawl", "httpx")
    except MissingExtra as exc:
        return report_missing(exc)
    from .._progress import make_progress
    from ._crawl import CrawlOptions, crawl, done_urls

    out = Path(args.out)
    try:
        urls, bad = read_urls(args.urls)
        _check_writable(out)
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _report_bad_lines(bad, "<stdin>" if args.urls == "-" else args.urls)
    done, unreadable = done_urls(out)
    if unreadable:
        print(f"warning: {out}: {unreadable} unreadable line(s) ignored", file=sys.stderr)
    options = CrawlOptions(
        concurrency=args.concurrency,
        per_host=args.per_host,
        timeout=args.timeout,
        retries=args.retries,
        depth=args.depth,
        same_host=args.same_host,
        backoff=args.backoff,
        transport=args.transport,
    )
    show = sys.stderr.isatty() if args.progress is None else args.progress
    progress = make_progress(show, "crawl")
    try:
        with _open_results(out) as stream:
            tally = crawl(urls, stream, options, progress, done)
    finally:
        progress.close()
    tally.bad_lines = len(bad)
    print(summary(tally, out), file=sys.stderr)
    return 130 if tally.interrupted else 0


def read_urls(source: str) -> tuple[list[str], list[tuple[int, str, str]]]:
    """The URLs of a file (``-``: standard input), and its bad lines as (line number,
    text, why). Blank lines and ``#`` comments are skipped."""
    if source == "-":
        return _parse_lines(sys.stdin)
    with open(source, encoding="utf-8", errors="replace") as stream:
        return _parse_lines(stream)


def _parse_lines(lines: Iterable[str]) -> tuple[list[str], list[tuple[int, str, str]]]:
    urls: list[str] = []
    bad: list[tuple[int, str, str]] = []
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        try:
            urls.append(check_url(text))
        except BadURL as exc:
            bad.append((number, text, str(exc)))
    return urls, bad


def _report_bad_lines(bad: list[tuple[int, str, str]], name: str) -> None:
    for number, text, why in bad[:SHOWN_BAD_LINES]:
        shown = text if len(text) <= 80 else text[:77] + "..."
        print(f"{name}:{number}: skipped {shown!r}: {why}", file=sys.stderr)
    if len(bad) > SHOWN_BAD_LINES:
        print(f"{name}: ... and {len(bad) - SHOWN_BAD_LINES} more bad lines", file=sys.stderr)


def _check_writable(out: Path) -> None:
    if out.is_dir():
        raise IsADirectoryError(f"--out {out} is a directory; give a file name")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"--out {out}: the directory {out.parent} does not exist")


def _open_results(out: Path) -> IO[str]:
    """Open for appending; a last line cut short by a killed run gets its newline first."""
    stream = out.open("a+", encoding="utf-8")
    if stream.tell() > 0:
        stream.seek(stream.tell() - 1)
        if stream.read(1) != "\n":
            stream.write("\n")
    return stream


def summary(tally: Tally, out: Path) -> str:
    """The few lines printed at the end."""
    lines = [
        f"crawl: {tally.fetched:,} URLs in {seconds(tally.seconds)}, "
        f"{rate(tally.fetched, tally.seconds)} pages/s: {tally.ok:,} ok, {tally.failed:,} failed"
        if tally.fetched or tally.interrupted
        else "crawl: nothing to fetch"
    ]
    if tally.by_status:
        statuses = ", ".join(f"{s} x {n:,}" for s, n in sorted(tally.by_status.items()))
        lines.append(f"  by status: {statuses}")
    if tally.errors:
        errors = ", ".join(f"{kind} x {n:,}" for kind, n in tally.errors.most_common())
        lines.append(f"  errors: {errors}")
    skipped = [
        f"{tally.already_done:,} already in {out}" if tally.already_done else "",
        f"{tally.duplicates:,} duplicate(s)" if tally.duplicates else "",
        f"{tally.bad_lines:,} bad input line(s)" if tally.bad_lines else "",
    ]
    if any(skipped):
        lines.append(f"  skipped: {', '.join(s for s in skipped if s)}")
    if tally.interrupted:
        lines.append(
            f"  interrupted: {tally.abandoned:,} fetch(es) stopped and {tally.waiting:,} "
            "URL(s) not started are not in the file; run the same command again to resume"
        )
    lines.append(f"  results: {out}")
    return "\n".join(lines)
