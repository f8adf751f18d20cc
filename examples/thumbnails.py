"""The guide's §8.2 batch image processing, with real images.

The guide sleeps 0.3 s per "image" on six processes. Here Pillow makes real thumbnails
of photo-sized JPEGs (generated first, in a temporary folder), and ``backend="auto"``
measures the work before choosing a pool: Pillow releases the GIL while it decodes,
resizes and encodes, so threads usually do as well as processes without pickling or
start-up. ``explain()`` says what was measured.

For whole folders use ``anypool thumbs SRC DEST`` (docs/thumbs.md).

Run: python examples/thumbnails.py   (needs Pillow: pip install 'anypool[apps]')
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from PIL import Image

import anypool

IMAGES = 12
SIZE = (1600, 1200)


def process_image(filename: str) -> dict[str, Any]:
    """Shrink to half size, as the guide's case does, and save beside the original."""
    new_name = filename.replace(".jpg", "_thumb.jpg")
    with Image.open(filename) as img:
        old_size = img.size
        img.thumbnail((old_size[0] // 2, old_size[1] // 2))
        img.save(new_name, quality=80)
        new_size = img.size
    return {
        "file": os.path.basename(new_name),
        "old_size": old_size,
        "new_size": new_size,
        "pid": os.getpid(),
        "thread": threading.current_thread().name,
    }


def make_photos(folder: Path) -> list[str]:
    names = []
    for i in range(IMAGES):
        noise = Image.effect_noise(SIZE, 30 + i)
        gradient = Image.linear_gradient("L").resize(SIZE)
        photo = Image.merge("RGB", [noise, gradient, Image.blend(noise, gradient, 0.5)])
        name = str(folder / f"photo_{i}.jpg")
        photo.save(name, quality=90)
        names.append(name)
    return names


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        images = make_photos(Path(folder))
        print(f"processing {len(images)} images...\n")
        start = time.perf_counter()
        with anypool.Executor() as ex:  # backend="auto": measure, then choose
            for i, result in enumerate(ex.map(process_image, images), 1):
                print(
                    f"[{i:2d}/{len(images)}] {result['file']:20s} | "
                    f"{result['old_size']} -> {result['new_size']} | "
                    f"PID={result['pid']} {result['thread']}"
                )
            choice = ex.explain()
        print(f"\ntotal: {time.perf_counter() - start:.2f}s on {choice.backend}: {choice.reason}")


if __name__ == "__main__":
    main()
