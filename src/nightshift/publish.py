"""Atomic publishing: a reader sees the old output or the new one, never half of either.

Files are written aside and renamed into place. A night's report folder `reports/<D>` is a
symbolic link to a complete build under `reports/.builds/`; re-running D builds a new folder
and swaps the link in one rename, so a killed run leaves the last good report in place.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import polars as pl


def fsync_dir(path: Path) -> None:
    """Make a rename in `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes_atomic(data: bytes, path: Path) -> None:
    """Write `path` via a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes files private; reports are for every reader
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_text_atomic(text: str, path: Path) -> None:
    """Write a text file atomically (UTF-8)."""
    write_bytes_atomic(text.encode(), path)


def write_json_atomic(obj: Any, path: Path) -> None:
    """Write JSON atomically; dates and paths become strings."""
    write_text_atomic(json.dumps(obj, indent=2, default=str, sort_keys=True), path)


def write_parquet_atomic(frame: pl.DataFrame, path: Path, mode: int | None = None) -> None:
    """Write a Parquet file atomically (with file permissions `mode`, set before it appears)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        frame.write_parquet(tmp)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_private_parquet(frame: pl.DataFrame, path: Path) -> Path:
    """Write `frame` atomically where only the owner can read it (folders 0700, file 0600)."""
    for folder in reversed([path.parent, *path.parent.parents]):
        if not folder.exists():
            folder.mkdir(mode=0o700)
    os.chmod(path.parent, 0o700)
    write_parquet_atomic(frame, path, mode=0o600)
    return path


def new_build_dir(reports_dir: Path, name: str) -> Path:
    """A fresh, private folder to build one night's report in."""
    builds = reports_dir / ".builds"
    builds.mkdir(parents=True, exist_ok=True)
    path = builds / f"{name}.{uuid.uuid4().hex[:8]}"
    path.mkdir()
    return path


def swap_in(build: Path, link: Path) -> None:
    """Point `link` at the complete `build` in one rename; the build it replaced is removed."""
    old = link.resolve() if link.is_symlink() else None
    if link.exists() and not link.is_symlink():  # a plain folder from elsewhere: move it aside
        link.rename(link.with_name(f".{link.name}.replaced-{uuid.uuid4().hex[:6]}"))
    tmp_link = link.with_name(f".{link.name}.{uuid.uuid4().hex[:8]}.link")
    os.symlink(os.path.relpath(build, link.parent), tmp_link)
    os.replace(tmp_link, link)
    fsync_dir(link.parent)
    if old is not None and old != build.resolve() and old.is_dir():
        shutil.rmtree(old, ignore_errors=True)


def sweep_orphans(reports_dir: Path, name: str) -> int:
    """Remove builds of `name` that its link does not point at (left by killed runs).

    Call it holding that name's lock: builds of other names may be in progress.
    """
    builds = reports_dir / ".builds"
    if not builds.is_dir():
        return 0
    link = reports_dir / name
    live = link.resolve() if link.is_symlink() else None
    removed = 0
    for b in builds.glob(f"{name}.*"):
        if b.resolve() != live:
            shutil.rmtree(b, ignore_errors=True)
            removed += 1
    # A run killed inside `swap_in` leaves its temporary link (never the live name) behind.
    for tmp_link in reports_dir.glob(f".{name}.*.link"):
        tmp_link.unlink(missing_ok=True)
    return removed
