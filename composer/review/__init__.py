"""The review page written beside every film (``film.review.html``): timeline, segments,
seams and colour drift, from the render manifest, with thumbnails in ``film.review/``.
``write_review`` is what the render pipeline and ``composer review`` call.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_text
from ..errors import ComposerError, ManifestError, MediaError
from ..manifest import scrub
from .page import build_page, wanted_frames
from .thumbs import extract_thumbs

__all__ = ["build_page", "review_path_for", "write_review"]


def review_path_for(output: Path) -> Path:
    output = Path(output)
    return output.with_name(output.stem + ".review.html")


def _film_of(manifest: dict[str, Any], manifest_path: Path) -> Path | None:
    """The film the manifest describes: where it was written, else beside the manifest."""
    recorded = Path((manifest.get("output") or {}).get("path") or "")
    stem = manifest_path.name.removesuffix(".manifest.json")
    for candidate in (recorded, manifest_path.with_name(recorded.name), manifest_path.with_name(stem + ".mp4"),
                      manifest_path.with_name(stem + ".mov")):
        if candidate.name and candidate.is_file():
            return candidate
    return None


def _board_arg(manifest: dict[str, Any], manifest_path: Path) -> str | None:
    """The storyboard path for the page's commands: as recorded, made absolute when it can be found."""
    source = (manifest.get("storyboard") or {}).get("source")
    if not source:
        return None
    path = Path(source)
    if not path.is_absolute():
        for base in (Path.cwd(), manifest_path.parent):
            if (base / path).is_file():
                return str((base / path).resolve())
    return source


def write_review(manifest: dict[str, Any] | str | Path, page: str | Path | None = None, *,
                 manifest_path: str | Path | None = None, film: str | Path | None = None) -> Path:
    """Write the review page for a manifest (a dict, or the path of a ``.manifest.json``).

    ``page`` defaults to ``FILM.review.html`` beside the manifest; thumbnails go to a
    folder named like the page without ``.html``. ``film`` overrides where the frames come from.
    """
    if not isinstance(manifest, dict):
        manifest_path = Path(manifest)
        manifest = _read(manifest_path)
    if manifest_path is None:
        raise ComposerError("write_review: give manifest_path with a manifest dict")
    manifest_path = Path(manifest_path)
    stem = manifest_path.name.removesuffix(".manifest.json")
    page = Path(page) if page is not None else manifest_path.with_name(stem + ".review.html")
    film_path = Path(film) if film is not None else _film_of(manifest, manifest_path)
    folder = page.with_name(page.name.removesuffix(".html") + (".files" if page.suffix != ".html" else ""))
    thumbs = _thumbs(manifest, film_path, folder) if film_path is not None else {}
    video = None
    if film_path is not None and film_path.resolve().parent == page.resolve().parent:
        video = film_path.name
    html = build_page(manifest, {f: f"{folder.name}/{name}" for f, name in thumbs.items()}, video=video,
                      board=_board_arg(manifest, manifest_path))
    atomic_write_text(page, scrub(html))  # the manifest is scrubbed already; a page is shared more widely
    return page


def _read(path: Path) -> dict[str, Any]:
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"{path}: no such manifest (a render writes FILM.manifest.json beside FILM.mp4)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{path}:{exc.lineno}:{exc.colno}: not a manifest: {exc.msg}") from None
    if not isinstance(data, dict) or not isinstance(data.get("plan"), dict) or "segments" not in data:
        raise ManifestError(f"{path}: not a composer render manifest (no plan or segments)")
    return data


def _thumbs(manifest: dict[str, Any], film: Path, folder: Path) -> dict[int, str]:
    """Extract into a fresh folder and swap it in, so a page never points at a stale thumbnail."""
    output = manifest.get("output") or {}
    fps = int(output.get("fps") or manifest["plan"]["fps"])
    staging = folder.with_name(f".{folder.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    wanted = wanted_frames(manifest)
    try:
        names: dict[int, str] = {}
        at = 0  # a part holds its film ranges one after another
        for first, end in output.get("ranges") or [(output.get("range") or [0, None])[:2]]:
            inside = [f for f in wanted if f >= int(first or 0)]
            names.update(extract_thumbs(film, inside, fps, staging, first_frame=int(first or 0) - at,
                                        end_frame=int(end) if end is not None else None))
            at += int(end) - int(first or 0) if end is not None else 0
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(staging, folder)
    except MediaError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return names
