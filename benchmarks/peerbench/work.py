"""The work every contender runs: module-level functions, so worker processes (forkserver,
spawn, loky) import them by name instead of receiving pickled code.

Standard library only at import time: NumPy and Pillow are imported inside the functions
that need them, so the scenarios that do not (S1-S3, S7, S8) run where they are absent.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from typing import Any

__all__ = [
    "fib",
    "fib_task",
    "matmul_sum",
    "nap",
    "nap_async",
    "noop",
    "sha256_hex",
    "square",
    "strided_sum",
    "strided_sum_pair",
    "thumbnail",
]


def square(x: int) -> int:
    return x * x


def fib(n: int) -> int:
    """Naive Fibonacci: pure Python, holds the GIL the whole time."""
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def fib_task(n: int) -> int:
    return fib(n)


def nap(seconds: float) -> float:
    time.sleep(seconds)  # releases the GIL while it waits, like a socket read
    return seconds


async def nap_async(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


def strided_sum(arr: Any, i: int, step: int = 8) -> float:
    """Sum every ``step``-th element from ``i``: touches the whole array's pages."""
    return float(arr[i::step].sum())


def strided_sum_pair(pair: tuple[Any, int]) -> float:
    """``strided_sum`` for APIs that pass one argument per task (``map``)."""
    arr, i = pair
    return strided_sum(arr, i)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()  # releases the GIL for buffers over 2 KiB


def matmul_sum(matrix: Any) -> float:
    return float((matrix @ matrix).sum())  # BLAS releases the GIL


def thumbnail(path: str, size: int = 256) -> tuple[int, int]:
    """Open a JPEG, shrink it to fit ``size`` px, save it beside the original."""
    from PIL import Image

    with Image.open(path) as image:
        image.thumbnail((size, size))
        root, _ = os.path.splitext(path)
        image.save(root + ".thumb.jpg", "JPEG")
        return image.size


def noop() -> None:
    return None
