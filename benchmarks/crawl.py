"""``anypool crawl`` against hand-written httpx + asyncio.gather (issue 8).

Run: .venv/bin/python benchmarks/crawl.py [--urls 1000] [--concurrency 100] [--latency 0.05]

Starts the test server (tests/_httpserver.py) in another process with a fixed latency per
reply, then times, best of ``--repeat`` runs, alternating:

- anypool crawl's engine (the same call the command makes, results written to a file),
  with its light transport (``crawl``) and with httpx's own (``crawl-httpx``, that is
  ``--transport httpx``);
- the obvious hand-written version: one ``httpx.AsyncClient`` with a pool of
  ``concurrency`` connections, a semaphore, ``asyncio.gather`` (run once: it is slow);
- the same hand-written version with the crawl's trick of several small clients (httpcore
  scans its whole pool for every request, so one pool of 100 is slow).

The ideal is ``urls / concurrency * latency``: the server's waits, nothing else. Each
line also gives the median CPU time (this process, all threads) per URL: on a busy
machine it shows the client's own cost better than the wall time does.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from anypool._apps._crawl import LANE_SHARE, CrawlOptions, crawl
from anypool._backends._asyncio import new_event_loop
from anypool._progress import NullProgress

ROOT = Path(__file__).resolve().parent.parent


def start_server(latency: float) -> tuple[subprocess.Popen[str], str]:
    server = subprocess.Popen(
        [sys.executable, "-m", "tests._httpserver", "--latency", str(latency)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    return server, server.stdout.readline().strip()


def time_crawl(urls: list[str], concurrency: int, transport: str = "anypool") -> float:
    options = CrawlOptions(
        concurrency=concurrency, per_host=concurrency, retries=0, transport=transport
    )
    with tempfile.TemporaryDirectory() as tmp, open(Path(tmp) / "out.jsonl", "w") as out:
        start = time.perf_counter()
        tally = crawl(urls, out, options, NullProgress())
        elapsed = time.perf_counter() - start
    assert tally.ok == len(urls), f"crawl: only {tally.ok} of {len(urls)} ok"
    return elapsed


async def gather(urls: list[str], concurrency: int, per_client: int) -> None:
    limits = httpx.Limits(max_connections=per_client, max_keepalive_connections=per_client)
    ssl_context = httpx.create_ssl_context()
    clients = [
        httpx.AsyncClient(limits=limits, verify=ssl_context)
        for _ in range(math.ceil(concurrency / per_client))
    ]
    lanes = list(range(concurrency))
    semaphore = asyncio.Semaphore(concurrency)

    async def get(url: str) -> int:
        async with semaphore:
            lane = lanes.pop()
            try:
                response = await clients[lane // per_client].get(url)
                return response.status_code
            finally:
                lanes.append(lane)

    statuses = await asyncio.gather(*(get(u) for u in urls))
    assert statuses.count(200) == len(urls)
    for client in clients:
        await client.aclose()


def time_gather(urls: list[str], concurrency: int, per_client: int) -> float:
    loop = new_event_loop()  # uvloop when installed, as the asyncio backend uses
    try:
        start = time.perf_counter()
        loop.run_until_complete(gather(urls, concurrency, per_client))
        return time.perf_counter() - start
    finally:
        loop.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--urls", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    server, base = start_server(args.latency)
    try:
        urls = [f"{base}/page/{i}" for i in range(args.urls)]
        one: dict[str, Any] = {
            "crawl": lambda: time_crawl(urls, args.concurrency),
            "crawl-httpx": lambda: time_crawl(urls, args.concurrency, "httpx"),
            "gather": lambda: time_gather(urls, args.concurrency, args.concurrency),
            "gather-lanes": lambda: time_gather(urls, args.concurrency, LANE_SHARE),
        }
        runs: dict[str, list[float]] = {name: [] for name in one}
        cpu: dict[str, list[float]] = {name: [] for name in one}
        for i in range(args.repeat):
            for name, run in one.items():
                if name != "gather" or i == 0:  # ~20x slower than the others: run once
                    cpu_start = time.process_time()
                    runs[name].append(run())
                    cpu[name].append(time.process_time() - cpu_start)
    finally:
        server.terminate()
        server.wait()
    report(runs, cpu, args)


def report(
    runs: dict[str, list[float]], cpu: dict[str, list[float]], args: argparse.Namespace
) -> None:
    ideal = args.urls / args.concurrency * args.latency
    uvloop = "yes" if importlib.util.find_spec("uvloop") else "no"
    best = {name: min(times) for name, times in runs.items()}
    print(
        f"{args.urls} URLs, {args.latency * 1000:g} ms latency, concurrency "
        f"{args.concurrency}: ideal {ideal:.3f} s (best of {args.repeat}; uvloop: {uvloop})"
    )
    median = {name: statistics.median(times) for name, times in runs.items()}
    for name, seconds in best.items():
        per_url = statistics.median(cpu[name]) / args.urls * 1e6
        print(
            f"  {name:12s} best {seconds:6.3f} s  {args.urls / seconds:5.0f} URLs/s  "
            f"{seconds / ideal:5.2f}x ideal  median {median[name]:6.3f} s  "
            f"CPU {per_url:5.0f} us/URL   runs: {', '.join(f'{t:.3f}' for t in runs[name])}"
        )
    for baseline in ("gather", "gather-lanes"):
        print(
            f"  crawl throughput / {baseline}: best {best[baseline] / best['crawl']:.2f}, "
            f"median {median[baseline] / median['crawl']:.2f}"
        )


if __name__ == "__main__":
    main()
