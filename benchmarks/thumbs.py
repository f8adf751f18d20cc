"""``anypool thumbs`` on every backend: 40 photo-sized JPEGs (2000x1500) to 256 px (issue 8).

Run: .venv/bin/python benchmarks/thumbs.py [--images 40] [--repeat 3] [--workers 2]

Makes the images once (noise over gradients, so they compress like photos: ~1 MB each),
then times the thumbnailing (``--force``: every image, every run) on serial, threads,
processes and auto, best of ``--repeat``, and prints each one's speed-up over serial
and what auto chose and why.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from PIL import Image

from anypool._apps._thumbs import make_thumbnails, plan


def make_images(folder: Path, count: int, size: tuple[int, int]) -> None:
    width, height = size
    for i in range(count):
        bands = [
            Image.blend(
                Image.linear_gradient("L").resize(size).rotate(40 * (i + k), expand=False),
                Image.effect_noise(size, 40 + 10 * k),
                0.35,
            )
            for k in range(3)
        ]
        Image.merge("RGB", bands).save(folder / f"photo_{i:03d}.jpg", quality=90)
    del width, height


def best_time(
    source: Path, dest: Path, backend: str, workers: int | None, repeat: int
) -> tuple[float, str]:
    times, why = [], ""
    for _ in range(repeat):
        work = plan(source, dest, 256, "jpeg", 85, force=True)
        start = time.perf_counter()
        report = make_thumbnails(work.jobs, backend, workers)
        times.append(time.perf_counter() - start)
        assert not report.failed and len(report.made) == len(work.jobs)
        why = f"{report.backend} ({report.workers} workers): {report.reason}"
    return min(times), why


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        source, dest = Path(tmp) / "photos", Path(tmp) / "thumbs"
        source.mkdir()
        make_images(source, args.images, (2000, 1500))
        megabytes = sum(p.stat().st_size for p in source.iterdir()) / 1e6
        size = f"{args.images} JPEGs of 2000x1500 ({megabytes:.0f} MB)"
        print(f"{size} -> 256 px, best of {args.repeat}")
        serial, _ = best_time(source, dest, "serial", None, args.repeat)
        print(f"  serial                 {serial:6.3f} s   1.00x")
        for backend in ("threads", "processes", "auto"):
            workers = None if backend == "auto" else args.workers
            seconds, why = best_time(source, dest, backend, workers, args.repeat)
            label = f"{backend} ({workers or 'auto'} workers)"
            print(f"  {label:22s} {seconds:6.3f} s   {serial / seconds:.2f}x")
            if backend == "auto":
                print(f"  auto chose {why}")


if __name__ == "__main__":
    main()
