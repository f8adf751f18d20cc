"""``anypool thumbs`` on real image files made by the tests with Pillow."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from PIL import Image

from anypool._apps._thumbs import ThumbJob, make_thumbnail
from anypool._cli import main

ORIENTATION = 0x0112


def jpeg(path: Path, size: tuple[int, int], color: str = "red", orientation: int = 1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    exif = Image.Exif()
    if orientation != 1:
        exif[ORIENTATION] = orientation
    Image.new("RGB", size, color).save(path, quality=90, exif=exif)
    return path


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """Images in nested folders: landscape, portrait, transparent, EXIF-rotated, plus a
    truncated JPEG, a text file named .jpg and a file that is not named like an image."""
    src = tmp_path / "photos"
    jpeg(src / "a.jpg", (60, 40))
    jpeg(src / "trips" / "b.jpeg", (40, 60), "green")
    jpeg(src / "trips" / "2024" / "rotated.jpg", (60, 40), "blue", orientation=6)
    transparent = Image.new("RGBA", (50, 50), (0, 0, 255, 0))
    transparent.paste((255, 0, 0, 255), (0, 0, 25, 50))  # left half red, right transparent
    transparent.save(src / "trips" / "half.png")
    whole = jpeg(tmp_path / "whole.jpg", (400, 300), "purple").read_bytes()
    (src / "cut.jpg").write_bytes(whole[: len(whole) // 2])
    (src / "notes.jpg").write_text("this is not a picture\n")
    (src / "README.txt").write_text("holiday photos\n")
    return src


def thumbs(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str]:
    status = main(["thumbs", *map(str, args)])
    return status, capsys.readouterr().err


def sizes(dest: Path) -> dict[str, tuple[int, int]]:
    found = {}
    for path in sorted(dest.rglob("*")):
        if path.is_file():
            with Image.open(path) as image:
                found[path.relative_to(dest).as_posix()] = image.size
    return found


def test_thumbnails_keep_the_folders_and_turn_upright(
    photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "thumbs"
    status, err = thumbs(capsys, photos, dest, "--size", "30", "--backend", "threads")
    assert status == 0
    assert sizes(dest) == {
        "a.jpg": (30, 20),
        "trips/b.jpg": (20, 30),
        "trips/half.jpg": (30, 30),
        "trips/2024/rotated.jpg": (20, 30),  # stored 60x40, EXIF says turn it: portrait
    }
    assert "thumbs: 4 made, 0 up to date, 2 failed" in err
    assert "  cut.jpg: OSError: image file is truncated" in err
    assert "  notes.jpg: not an image Pillow can read" in err
    assert "ignored: 1 file(s) not named like an image" in err
    assert not list(dest.rglob("*.partial"))


def test_the_exif_orientation_is_applied_not_copied(
    photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    thumbs(capsys, photos, tmp_path / "t", "--size", "30")
    with Image.open(tmp_path / "t" / "trips" / "2024" / "rotated.jpg") as image:
        assert image.getexif().get(ORIENTATION, 1) == 1  # a viewer must not turn it again


def test_jpeg_thumbnails_of_transparent_images_are_white_behind(
    photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    thumbs(capsys, photos, tmp_path / "t", "--size", "50", "--quality", "95")
    with Image.open(tmp_path / "t" / "trips" / "half.jpg") as image:
        red = image.getpixel((5, 25))
        white = image.getpixel((45, 25))
    assert isinstance(red, tuple) and isinstance(white, tuple)
    assert red[0] > 200 and red[1] < 60
    assert min(white) > 230


@pytest.mark.parametrize(
    ("fmt", "ending", "mode"), [("png", ".png", "RGBA"), ("webp", ".webp", "RGBA")]
)
def test_png_and_webp_keep_transparency(
    photos: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    fmt: str,
    ending: str,
    mode: str,
) -> None:
    dest = tmp_path / "t"
    status, _ = thumbs(capsys, photos, dest, "--format", fmt, "--size", "20")
    assert status == 0
    assert sorted(p.suffix for p in dest.rglob("*") if p.is_file()) == [ending] * 4
    with Image.open(dest / "trips" / f"half{ending}") as image:
        assert image.mode == mode
        assert image.getpixel((18, 10))[3] == 0  # type: ignore[index]


def test_up_to_date_thumbnails_are_skipped_unless_forced(
    photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "t"
    thumbs(capsys, photos, dest)
    made = {p: p.stat().st_mtime_ns for p in dest.rglob("*.jpg")}
    _, err = thumbs(capsys, photos, dest)
    assert "thumbs: 0 made, 4 up to date, 2 failed" in err
    assert {p: p.stat().st_mtime_ns for p in dest.rglob("*.jpg")} == made
    later = made[dest / "a.jpg"] / 1e9 + 10
    os.utime(photos / "a.jpg", (later, later))  # the photo was edited since
    _, err = thumbs(capsys, photos, dest)
    assert "thumbs: 1 made, 3 up to date" in err
    _, err = thumbs(capsys, photos, dest, "--force")
    assert "thumbs: 4 made, 0 up to date" in err


def test_nothing_to_do_says_so(
    photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for bad in ("cut.jpg", "notes.jpg"):
        (photos / bad).unlink()
    thumbs(capsys, photos, tmp_path / "t")
    status, err = thumbs(capsys, photos, tmp_path / "t")
    assert status == 0
    assert err.startswith("thumbs: 0 made, 4 up to date, 0 failed ->")
    assert "backend" not in err  # no pool was started


@pytest.mark.parametrize("backend", ["serial", "threads", "processes"])
def test_every_backend_makes_the_same_thumbnails(
    photos: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    backend: str,
) -> None:
    dest = tmp_path / backend
    status, err = thumbs(capsys, photos, dest, "--backend", backend, "--workers", "2")
    assert status == 0
    assert len(sizes(dest)) == 4
    workers = "1 worker" if backend == "serial" else "2 workers"
    assert f"backend: {backend} ({workers}): backend='{backend}' was named" in err


def test_auto_says_what_it_chose_and_why(
    photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, err = thumbs(capsys, photos, tmp_path / "t", "--progress")
    line = next(line for line in err.splitlines() if line.startswith("  backend: "))
    backend = line.split()[1]
    assert backend in ("serial", "threads", "processes")
    assert len(line.split(": ", 2)[2]) > 20  # the reason, in words


def test_a_dest_inside_src_is_not_read_as_images(
    photos: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = photos / "thumbs"
    thumbs(capsys, photos, dest)
    _, err = thumbs(capsys, photos, dest)
    assert "4 up to date" in err
    assert not (dest / "thumbs").exists()


def test_images_that_would_share_a_thumbnail_keep_their_endings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "src"
    jpeg(src / "x.jpg", (20, 20))
    Image.new("RGB", (20, 20)).save(src / "x.png")
    thumbs(capsys, src, tmp_path / "t")
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == ["x.jpg.jpg", "x.png.jpg"]


def test_make_thumbnail_reports_instead_of_raising(tmp_path: Path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    job = ThumbJob(str(tmp_path / "empty.png"), str(tmp_path / "out.jpg"), 10, "jpeg", 80)
    result = make_thumbnail(job)
    assert result.error == "not an image Pillow can read"
    assert not (tmp_path / "out.jpg").exists()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "SRC {src} is not a folder"),
        ("dest-file", "DEST {dest} exists and is not a folder"),
        ("same", "DEST must be another folder than SRC"),
    ],
)
def test_bad_folders_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], setup: str, message: str
) -> None:
    src, dest = tmp_path / "src", tmp_path / "dest"
    if setup != "missing":
        src.mkdir()
    if setup == "dest-file":
        dest.write_text("")
    if setup == "same":
        dest = src
    status, err = thumbs(capsys, src, dest)
    assert status == 2
    assert err.startswith(f"error: {message.format(src=src, dest=dest)}")
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    "args",
    [
        ["--quality", "0"],
        ["--quality", "101"],
        ["--format", "gif"],
        ["--backend", "asyncio"],
        ["--size", "0"],
    ],
)
def test_bad_options_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["thumbs", str(tmp_path), str(tmp_path / "t"), *args])
    assert exit_info.value.code == 2
    assert args[0] in capsys.readouterr().err


def test_without_pillow_it_says_what_to_install(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "PIL.Image", None)
    status, err = thumbs(capsys, tmp_path, tmp_path / "t")
    assert status == 2
    assert err == (
        "error: anypool thumbs needs Pillow, which is not installed: pip install 'anypool[apps]'\n"
    )
