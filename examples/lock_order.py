"""The guide's §9.3 deadlock, found by anypool without hanging.

Run: python examples/lock_order.py   (or: anypool lockcheck -- python examples/lock_order.py
with plain threading locks)
"""

from __future__ import annotations

import threading
import time
import warnings

import anypool.sync

lock_a = anypool.sync.Lock(name="lock_a")
lock_b = anypool.sync.Lock(name="lock_b")


def thread1() -> None:
    with lock_a:
        time.sleep(0.01)
        with lock_b:  # waits for lock_b
            pass


def thread2() -> None:
    with lock_b:
        time.sleep(0.01)
        with lock_a:  # waits for lock_a: the opposite order
            pass


def thread2_fixed() -> None:
    with lock_a, lock_b:  # the same order as thread1
        pass


def run(second: object) -> list[anypool.sync.Inversion]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", anypool.sync.LockOrderWarning)
        with anypool.sync.lockcheck() as check:
            for target in (thread1, second):  # one after the other: nothing hangs
                t = threading.Thread(target=target)  # type: ignore[arg-type]
                t.start()
                t.join()
    return check.inversions


if __name__ == "__main__":
    for inversion in run(thread2):
        print("found:", inversion.summary())
    print("fixed version, inversions:", len(run(thread2_fixed)))
