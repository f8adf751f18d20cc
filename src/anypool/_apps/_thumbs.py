"""``anypool thumbs``: thumbnails of a folder of images with Pillow, on an anypool pool.

A plan (which sources need a thumbnail, where it goes) is made in the caller's thread by
walking SRC; then ``Executor(backend).map(make_thumbnail, jobs)`` does the work. With
``backend="auto"`` anypool measures the first images and picks the pool: Pillow releases
the GIL while it decodes, resizes and encodes, so threads usually scale (no pickling, no
start-up), and ``explain()`` says what was measured.

Each job is self-contained (paths and settings, all picklable), so the same function runs
on threads, processes or in a loop. A file that Pillow cannot read comes back as a
failed result, not an exception, so one bad file never stops the batch.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "EXTENSIONS",
    "FORMATS",
    "Plan",
    "Report",
    "ThumbJob",
    "ThumbResult",
    "make_thumbnail",
    "make_thumbnails",
    "plan",
]

#: File name endings read as images; other files are counted and left alone.
EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".jfif"})
#: --format -> (Pillow's format name, the thumbnail's file name ending).
FORMATS = {"jpeg": ("JPEG", ".jpg"), "png": ("PNG", ".png"), "webp": ("WEBP", ".webp")}


@dataclass(frozen=True)
class ThumbJob:
    """One thumbnail to make: picklable, so it runs on any backend."""

    source: str
    target: str
    size: int
    format: str  # a key of FORMATS
    quality: int


@dataclass(frozen=True)
class ThumbResult:
    source: str
    target: str
    error: str | None = None
    original: tuple[int, int] | None = None
    thumbnail: tuple[int, int] | None = None


def make_thumbnail(job: ThumbJob) -> ThumbResult:
    """Write ``job.target``: the image fitted in a ``size`` square, turned upright as its
    EXIF orientation says. A file Pillow cannot read gives a result with ``error``."""
    from PIL import Image, ImageOps

    try:
        with Image.open(job.source) as image:
            original = _upright_size(image)
            # Thumbnail first, turn upright after: the box is square, so the scale is the
            # same either way, and turning a small image is cheap. thumbnail() also lets
            # the JPEG decoder scale down while decoding (draft mode).
            image.thumbnail((job.size, job.size))
            upright = ImageOps.exif_transpose(image)
            _save(upright, job)
            return ThumbResult(job.source, job.target, None, original, upright.size)
    except Exception as exc:  # a corrupt, truncated or non-image file: reported, skipped
        return ThumbResult(job.source, job.target, _describe(exc))


def _upright_size(image: Any) -> tuple[int, int]:
    width, height = image.size
    orientation = image.getexif().get(0x0112, 1)
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def _save(image: Any, job: ThumbJob) -> None:
    pillow_format, _ = FORMATS[job.format]
    image = _for_format(image, pillow_format)
    target = Path(job.target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the target and renamed over it: a run killed midway never leaves a
    # half-written thumbnail that a later run would take for up to date.
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        image.save(partial, format=pillow_format, quality=job.quality)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def _for_format(image: Any, pillow_format: str) -> Any:
    """The image in a mode the format can store: JPEG has no alpha (transparent parts
    become white), WebP takes RGB or RGBA, PNG almost anything."""
    from PIL import Image

    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    if pillow_format == "JPEG":
        if has_alpha:
            rgba = image.convert("RGBA")
            flat = Image.new("RGB", rgba.size, "white")
            flat.paste(rgba, mask=rgba.getchannel("A"))
            return flat
        return image if image.mode in ("RGB", "L") else image.convert("RGB")
    if pillow_format == "WEBP":
        wanted = "RGBA" if has_alpha else "RGB"
        return image if image.mode == wanted else image.convert(wanted)
    return image.convert("RGB") if image.mode == "CMYK" else image


def _describe(exc: Exception) -> str:
    from PIL import UnidentifiedImageError

    if isinstance(exc, UnidentifiedImageError):
        return "not an image Pillow can read"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


# ── planning: what to make ──────────────────────────────────────────────────────


@dataclass
class Plan:
    jobs: list[ThumbJob] = field(default_factory=list)
    up_to_date: int = 0
    ignored: int = 0  # files whose names do not end like an image


def plan(source: Path, dest: Path, size: int, fmt: str, quality: int, force: bool = False) -> Plan:
    """The thumbnails to make for the images under ``source``, at the same relative
    paths under ``dest`` with the format's ending; up-to-date ones (newer than their
    source) are skipped unless ``force``."""
    _, ending = FORMATS[fmt]
    result = Plan()
    images = []
    for path in _walk(source, dest):
        if path.suffix.lower() in EXTENSIONS:
            images.append(path)
        else:
            result.ignored += 1
    for path, target in _targets(images, source, dest, ending):
        if not force and _is_newer(target, path):
            result.up_to_date += 1
            continue
        result.jobs.append(ThumbJob(str(path), str(target), size, fmt, quality))
    return result


def _walk(source: Path, dest: Path) -> Iterator[Path]:
    """Files under ``source`` in a stable order, never descending into ``dest`` (which
    may lie inside it: its thumbnails are not sources)."""
    skip = dest.resolve()
    for root, dirs, files in os.walk(source):
        dirs[:] = sorted(d for d in dirs if (Path(root) / d).resolve() != skip)
        for name in sorted(files):
            yield Path(root) / name


def _targets(
    images: list[Path], source: Path, dest: Path, ending: str
) -> Iterator[tuple[Path, Path]]:
    """Each image and its thumbnail's path. Two sources that would share one (``a.png``
    and ``a.jpg`` made into ``a.jpg``) keep their own endings: ``a.png.jpg``, ``a.jpg.jpg``."""
    plain = [dest / path.relative_to(source).with_suffix(ending) for path in images]
    counts: dict[Path, int] = {}
    for target in plain:
        counts[target] = counts.get(target, 0) + 1
    for path, target in zip(images, plain, strict=True):
        yield path, target.with_name(path.name + ending) if counts[target] > 1 else target


def _is_newer(target: Path, source: Path) -> bool:
    try:
        return target.stat().st_mtime >= source.stat().st_mtime
    except FileNotFoundError:
        return False


# ── running ─────────────────────────────────────────────────────────────────────


@dataclass
class Report:
    made: list[ThumbResult] = field(default_factory=list)
    failed: list[ThumbResult] = field(default_factory=list)
    seconds: float = 0.0
    backend: str = ""
    workers: int = 0
    reason: str = ""


def make_thumbnails(
    jobs: list[ThumbJob], backend: str = "auto", workers: int | None = None, progress: bool = False
) -> Report:
    """Run ``make_thumbnail`` over ``jobs`` on an anypool Executor; what was made, what
    failed, and which backend ran it (with auto: why)."""
    from PIL import Image

    from .._executor import Executor

    # Pillow imports its format plugins on first use: tens of ms of Python holding the
    # GIL. Done here, first, so that auto measures thumbnailing, not that import.
    Image.init()
    report = Report()
    start = time.perf_counter()
    if backend == "serial":
        workers = None  # one loop in this thread, whatever --workers says
    with Executor(backend, workers=workers, progress=progress) as ex:
        for result in ex.map(make_thumbnail, jobs):
            (report.failed if result.error else report.made).append(result)
        profile = ex.explain()
        report.backend, report.workers = ex.backend, ex.workers
        report.reason = profile.reason
    report.seconds = time.perf_counter() - start
    return report
