"""The guide's §6.1, §6.3 and §6.4: futures, as_completed, map, callbacks and wait.

``anypool.Executor`` is a real ``concurrent.futures.Executor``, so the guide's code runs
unchanged on it; only the constructor differs. Sleeps are a tenth of the guide's.

Run: python examples/futures.py
"""

from __future__ import annotations

import random
import time
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, Future, as_completed, wait

import anypool


def fetch_url(url: str) -> str:
    """Stands in for a network request, as in the guide."""
    time.sleep(random.uniform(0.03, 0.1))
    return f"{url} -> 200 OK"


def task(n: int) -> int:
    time.sleep(random.uniform(0.05, 0.2))
    return n * 2


def check_done(future: Future[None]) -> None:
    try:
        print(f"callback: result = {future.result()}")
    except Exception as exc:
        print(f"callback: exception = {exc}")


def main() -> None:
    urls = [f"https://api.example.com/v1/item/{i}" for i in range(10)]

    # §6.1, way one: submit + as_completed (in the order they finish)
    with anypool.Executor("threads", workers=5) as executor:
        futures = {executor.submit(fetch_url, url): url for url in urls}
        for future in as_completed(futures):
            try:
                print(f"ok   {future.result(timeout=5)}")
            except Exception as exc:
                print(f"fail {futures[future]}: {exc}")

    # §6.1, way two: map (in the order submitted)
    with anypool.Executor("threads", workers=5) as executor:
        for url, result in zip(urls, executor.map(fetch_url, urls, timeout=10), strict=True):
            print(f"{url}: {result}")

    # §6.3: a callback when the future is done
    with anypool.Executor("threads") as executor:
        sleeper = executor.submit(time.sleep, 0.1)
        sleeper.add_done_callback(check_done)
        print("main thread carries on...")
        time.sleep(0.15)
        print("main thread checks: done =", sleeper.done())

    # §6.4: wait for the first, then for the rest
    with anypool.Executor("threads", workers=5) as executor:
        futures_list = [executor.submit(task, i) for i in range(10)]
        done, not_done = wait(futures_list, return_when=FIRST_COMPLETED)
        print(f"first done: {[f.result() for f in done]}")
        done, not_done = wait(not_done, return_when=ALL_COMPLETED)
        print(f"the rest: {sorted(f.result() for f in done)}")


if __name__ == "__main__":
    main()
