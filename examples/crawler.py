"""The guide's §8.1 crawler, fetching real pages.

The guide simulates each page with ``time.sleep``. Here every page is a real HTTP request
(stdlib ``urllib``) to a small server this script starts on 127.0.0.1, which answers
after 20-80 ms like the guide's simulated pages (scaled down tenfold) and hangs on one
page. The crawl keeps the guide's shape (``submit`` + ``as_completed``) on an
``anypool.Executor``, which adds what a real crawler needs: a per-task timeout, so the
hanging page fails with ``anypool.TaskTimeout`` instead of holding the crawl, retries,
and errors that arrive as themselves.

For real crawling (per-host limits, Retry-After, resuming, links) use
``anypool crawl URLS.txt --out results.jsonl`` (docs/crawl.md).

Run: python examples/crawler.py
"""

from __future__ import annotations

import random
import threading
import time
import urllib.request
from concurrent.futures import as_completed
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import anypool

PAGES = 30
HANGING = 13  # this page never answers


class DemoSite(BaseHTTPRequestHandler):
    """Pages that take 20-80 ms, of 1-50 kB; /page/13 hangs for a long time."""

    def do_GET(self) -> None:
        number = int(self.path.rsplit("/", 1)[1])
        time.sleep(5 if number == HANGING else random.uniform(0.02, 0.08))
        body = b"x" * random.randint(1_000, 50_000)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet


def crawl_page(url: str) -> dict[str, Any]:
    thread = threading.current_thread()
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=10) as response:
        size = len(response.read())
        status = response.status
    return {
        "url": url,
        "status": status,
        "size": size,
        "thread": thread.name,
        "time": time.perf_counter() - start,
    }


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), DemoSite)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    urls = [f"{base}/page/{i}" for i in range(PAGES)]
    print(f"crawling {len(urls)} pages...\n")
    start = time.perf_counter()
    try:
        # The guide's ThreadPoolExecutor(max_workers=10), plus a deadline and a retry.
        with anypool.Executor("threads", workers=10, task_timeout=0.5, retries=1) as ex:
            futures = {ex.submit(crawl_page, url): url for url in urls}
            for completed, future in enumerate(as_completed(futures), 1):
                try:
                    result = future.result()
                except anypool.TaskTimeout as exc:
                    print(f"[{completed:2d}/{len(urls)}] {futures[future]:35s} | {exc}")
                    continue
                print(
                    f"[{completed:2d}/{len(urls)}] {result['url']:35s} | "
                    f"status={result['status']} | {result['size']:5d} bytes | "
                    f"{result['time']:.2f}s | {result['thread']}"
                )
    finally:
        server.shutdown()
        server.server_close()
    print(f"\ntotal: {time.perf_counter() - start:.2f}s")
    # 30 pages of ~50 ms on 10 threads: ~0.2 s, while the hanging page uses its two tries
    # of 0.5 s (its thread cannot be killed: the pool abandons it); one thread would need
    # ~1.5 s for the others, and would wait on the hanging one for 5 s.


if __name__ == "__main__":
    main()
