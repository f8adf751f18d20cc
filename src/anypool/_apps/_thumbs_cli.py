"""``anypool thumbs SRC DEST``: the command line of ``_thumbs``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ._common import MissingExtra, positive_int, rate, report_missing, require, seconds

if TYPE_CHECKING:
    from ._thumbs import Plan, Report

__all__ = ["register", "run", "summary"]

#: Backends that run a plain function (asyncio runs coroutine functions only).
BACKENDS = ("auto", "threads", "processes", "serial")
#: Failed files listed one by one in the summary; the rest are counted.
SHOWN_FAILURES = 20


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "thumbs",
        help="make thumbnails of a folder of images (Pillow) on the pool auto picks",
        description="Make a thumbnail of every image under SRC at the same place under "
        "DEST, upright as the EXIF orientation says, skipping thumbnails newer than their "
        "image. Files Pillow cannot read are listed and skipped. Needs anypool[apps].",
    )
    p.add_argument("source", metavar="SRC", help="folder of images (searched recursively)")
    p.add_argument("dest", metavar="DEST", help="folder for the thumbnails (created if needed)")
    p.add_argument(
        "--size", type=positive_int, default=256, help="fit in a square this many pixels wide"
    )
    p.add_argument("--format", choices=("jpeg", "png", "webp"), default="jpeg", help="default jpeg")
    p.add_argument(
        "--quality", type=_quality, default=85, help="JPEG/WebP quality, 1-100 (default 85)"
    )
    p.add_argument("--workers", type=positive_int, help="pool size (default: per backend)")
    p.add_argument("--backend", choices=BACKENDS, default="auto", help="default auto")
    p.add_argument("--force", action="store_true", help="remake thumbnails that are up to date")
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a progress bar on stderr (default: when stderr is a terminal)",
    )
    p.set_defaults(handler=run)


def _quality(text: str) -> int:
    value = positive_int(text)
    if value > 100:
        raise argparse.ArgumentTypeError(f"expected 1 to 100, got {text!r}")
    return value


def run(args: argparse.Namespace) -> int:
    try:
        require("PIL.Image", "thumbs", "Pillow")
    except MissingExtra as exc:
        return report_missing(exc)
    from ._thumbs import make_thumbnails, plan

    source, dest = Path(args.source), Path(args.dest)
    problem = _check_folders(source, dest) or _check_format(args.format)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    work = plan(source, dest, args.size, args.format, args.quality, args.force)
    if not work.jobs:
        print(summary(work, None, dest), file=sys.stderr)
        return 0
    show = sys.stderr.isatty() if args.progress is None else args.progress
    report = make_thumbnails(work.jobs, args.backend, args.workers, show)
    print(summary(work, report, dest, source), file=sys.stderr)
    return 0


def _check_folders(source: Path, dest: Path) -> str | None:
    if not source.is_dir():
        return f"SRC {source} is not a folder"
    if dest.exists() and not dest.is_dir():
        return f"DEST {dest} exists and is not a folder"
    if dest.resolve() == source.resolve():
        return "DEST must be another folder than SRC (thumbnails would mix with the images)"
    return None


def _check_format(fmt: str) -> str | None:
    from PIL import features

    if fmt == "webp" and not features.check("webp"):
        return "this Pillow was built without WebP support; use --format jpeg or png"
    return None


def summary(work: Plan, report: Report | None, dest: Path, source: Path | None = None) -> str:
    """The lines printed at the end: counts, the backend and why, every failed file."""
    made = len(report.made) if report else 0
    failed = report.failed if report else []
    head = f"thumbs: {made:,} made, {work.up_to_date:,} up to date, {len(failed):,} failed"
    if report is not None:
        head += f" in {seconds(report.seconds)} ({rate(made + len(failed), report.seconds)}/s)"
    lines = [f"{head} -> {dest}"]
    if report is not None:
        workers = f"{report.workers} worker{'' if report.workers == 1 else 's'}"
        lines.append(f"  backend: {report.backend} ({workers}): {report.reason}")
    if failed:
        lines.append("  skipped, could not be read:")
        for result in failed[:SHOWN_FAILURES]:
            name = Path(result.source).relative_to(source) if source else result.source
            lines.append(f"    {name}: {result.error}")
        if len(failed) > SHOWN_FAILURES:
            lines.append(f"    ... and {len(failed) - SHOWN_FAILURES} more")
    if work.ignored:
        lines.append(f"  ignored: {work.ignored:,} file(s) not named like an image")
    return "\n".join(lines)
