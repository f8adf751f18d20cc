"""S6 Pillow: 40 JPEGs of 2000x1500 thumbnailed to 256 px.

The JPEGs are written once per run (``prepare``, outside every timing) into the
scenario's shared directory; each task opens one, shrinks it and saves the thumbnail
beside it. Pillow releases the GIL while it decodes, resizes and encodes.
"""

from __future__ import annotations

from pathlib import Path

from .framework import Job, Scenario, Settings
from .s5_native import CONTENDERS
from .work import thumbnail

__all__ = ["scenarios"]

IMAGES = 40
QUICK_IMAGES = 8
WIDTH, HEIGHT = 2000, 1500
QUICK_WIDTH, QUICK_HEIGHT = 800, 600
THUMB = 256


def _sizes(settings: Settings) -> tuple[int, int, int]:
    if settings.quick:
        return QUICK_IMAGES, QUICK_WIDTH, QUICK_HEIGHT
    return IMAGES, WIDTH, HEIGHT


def _paths(settings: Settings, shared: Path) -> list[str]:
    count, _, _ = _sizes(settings)
    return [str(shared / f"photo-{i:03d}.jpg") for i in range(count)]


def prepare(settings: Settings, shared: Path) -> None:
    """Photo-like JPEGs: a gradient with noise, so they neither compress to nothing
    nor decode unusually fast."""
    from PIL import Image

    _, width, height = _sizes(settings)
    for i, path in enumerate(_paths(settings, shared)):
        gradient = Image.linear_gradient("L").resize((width, height))
        noise = Image.effect_noise((width, height), 40 + i)
        red = Image.blend(gradient, noise, 0.3)
        image = Image.merge("RGB", (red, gradient, noise))
        image.save(path, "JPEG", quality=90)


def make_job(settings: Settings, workers: int, shared: Path) -> Job:
    _, width, height = _sizes(settings)
    scale = THUMB / max(width, height)
    expected = (round(width * scale), round(height * scale))
    return Job(
        fn=thumbnail,
        items=_paths(settings, shared),
        workers=workers,
        check=lambda results: all(tuple(size) == expected for size in results),
    )


def scenarios(settings: Settings) -> list[Scenario]:
    count, width, height = _sizes(settings)
    return [
        Scenario(
            key="S6",
            id="S6",
            title="S6 Pillow thumbnails",
            workload=f"{count} JPEGs of {width}x{height} thumbnailed to {THUMB} px",
            make_job=make_job,
            contenders=CONTENDERS,
            prepare=prepare,
            notes=(
                "The JPEGs are written once before the first trial; pools are created "
                "inside the timing.",
            ),
        )
    ]
