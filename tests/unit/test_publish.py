"""publish.py on its own, fast: what each atomic write leaves on disk (content, permissions, the names of its
temporary files) and how a report link is swapped and swept. The kill and reader tests in tests/flows/
check the same code under a real night; these pin the details they cannot see."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import stat
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from nightshift import publish

NAME = "2026-03-01"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def failing_replace(monkeypatch) -> list[tuple[str, str]]:
    """Make `os.replace` fail (as a kill or a full disk would) and record what it was asked to rename."""
    calls: list[tuple[str, str]] = []

    def replace(src, dst, *a, **k):
        calls.append((str(src), str(dst)))
        raise OSError("no rename today")

    monkeypatch.setattr(os, "replace", replace)
    return calls


# -- atomic writes -----------------------------------------------------------------------------------------
def test_write_bytes_creates_missing_folders_and_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "f.bin"
    publish.write_bytes_atomic(b"one", path)
    publish.write_bytes_atomic(b"two", path)  # the folder exists now
    assert path.read_bytes() == b"two" and os.listdir(path.parent) == ["f.bin"]


def test_written_files_are_readable_by_everyone(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    publish.write_text_atomic("x", path)
    assert mode(path) == 0o644  # mkstemp's 0600 would hide the report from other readers


def test_the_temporary_file_is_hidden_beside_the_target_and_removed_on_failure(tmp_path: Path, monkeypatch) -> None:
    calls = failing_replace(monkeypatch)
    with pytest.raises(OSError, match="no rename"):
        publish.write_bytes_atomic(b"data", tmp_path / "page.html")
    (src, dst), = calls
    assert Path(src).parent == tmp_path and re.fullmatch(r"\.page\.html\..+\.tmp", Path(src).name)
    assert dst == str(tmp_path / "page.html") and os.listdir(tmp_path) == []


def test_text_is_written_as_utf8(tmp_path: Path) -> None:
    publish.write_text_atomic("Zürich €", tmp_path / "t.txt")
    assert (tmp_path / "t.txt").read_bytes() == "Zürich €".encode()


def test_json_is_indented_sorted_and_turns_dates_and_paths_into_strings(tmp_path: Path) -> None:
    publish.write_json_atomic({"b": date(2026, 3, 1), "a": Path("x/y")}, tmp_path / "m.json")
    assert (tmp_path / "m.json").read_text() == '{\n  "a": "x/y",\n  "b": "2026-03-01"\n}'
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": "x/y", "b": "2026-03-01"}


def test_parquet_is_written_with_the_mode_asked_for(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "t.parquet"
    publish.write_parquet_atomic(pl.DataFrame({"a": [1]}), path, mode=0o640)
    assert mode(path) == 0o640 and pl.read_parquet(path)["a"].to_list() == [1]
    publish.write_parquet_atomic(pl.DataFrame({"a": [2]}), path)  # no mode: left as written, folder exists
    assert pl.read_parquet(path)["a"].to_list() == [2] and os.listdir(path.parent) == ["t.parquet"]


def test_parquet_temporary_file_is_hidden_beside_the_target_and_removed_on_failure(tmp_path: Path,
                                                                                  monkeypatch) -> None:
    calls = failing_replace(monkeypatch)
    with pytest.raises(OSError, match="no rename"):
        publish.write_parquet_atomic(pl.DataFrame({"a": [1]}), tmp_path / "t.parquet", mode=0o600)
    (src, dst), = calls
    assert Path(src).parent == tmp_path and re.fullmatch(r"\.t\.parquet\.[0-9a-f]{8}\.tmp", Path(src).name)
    assert dst == str(tmp_path / "t.parquet") and os.listdir(tmp_path) == []


def test_a_parquet_write_that_fails_before_the_file_exists_raises_its_own_error(tmp_path: Path, monkeypatch) -> None:
    def full(self, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pl.DataFrame, "write_parquet", full)
    with pytest.raises(OSError, match="No space"):  # not a FileNotFoundError from cleaning up a file never made
        publish.write_parquet_atomic(pl.DataFrame({"a": [1]}), tmp_path / "t.parquet")
    assert os.listdir(tmp_path) == []


def test_private_parquet_makes_owner_only_folders_and_file(tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o755)
    (tmp_path / "open").mkdir(mode=0o755)
    os.chmod(tmp_path / "open", 0o755)
    path = tmp_path / "new" / "deeper" / "p.parquet"
    assert publish.write_private_parquet(pl.DataFrame({"a": [1]}), path) == path
    assert mode(tmp_path / "new") == 0o700 and mode(tmp_path / "new" / "deeper") == 0o700 and mode(path) == 0o600
    assert mode(tmp_path) == 0o755  # folders above the new ones are not touched
    inside = tmp_path / "open" / "p.parquet"
    publish.write_private_parquet(pl.DataFrame({"a": [2]}), inside)
    assert mode(tmp_path / "open") == 0o700 and pl.read_parquet(inside)["a"].to_list() == [2]


# -- builds and the report link ----------------------------------------------------------------------------
def test_new_build_dir_is_a_fresh_folder_under_builds(tmp_path: Path) -> None:
    reports = tmp_path / "reports"  # does not exist yet
    first, second = publish.new_build_dir(reports, NAME), publish.new_build_dir(reports, NAME)
    for build in (first, second):
        assert build.is_dir() and build.parent == reports / ".builds"
        assert re.fullmatch(re.escape(NAME) + r"\.[0-9a-f]{8}", build.name)
    assert first != second


def test_swap_in_links_relatively_and_removes_the_build_it_replaced(tmp_path: Path) -> None:
    reports, link = tmp_path / "reports", tmp_path / "reports" / NAME
    first = publish.new_build_dir(reports, NAME)
    publish.swap_in(first, link)
    assert os.readlink(link) == os.path.join(".builds", first.name)  # survives moving the reports folder
    second = publish.new_build_dir(reports, NAME)
    publish.swap_in(second, link)
    assert link.resolve() == second.resolve() and not first.exists()
    assert sorted(os.listdir(reports)) == [".builds", NAME]  # no temporary link, nothing moved aside


def test_swap_in_of_the_build_already_live_keeps_it(tmp_path: Path) -> None:
    reports, link = tmp_path / "reports", tmp_path / "reports" / NAME
    build = publish.new_build_dir(reports, NAME)
    publish.swap_in(build, link)
    publish.swap_in(build, link)
    assert build.is_dir() and link.resolve() == build.resolve()


def test_swap_in_moves_a_plain_folder_aside(tmp_path: Path) -> None:
    reports, link = tmp_path / "reports", tmp_path / "reports" / NAME
    link.mkdir(parents=True)
    (link / "old.html").write_text("old")
    build = publish.new_build_dir(reports, NAME)
    publish.swap_in(build, link)
    assert link.is_symlink() and link.resolve() == build.resolve()
    aside, = [p for p in reports.iterdir() if p.name not in (".builds", NAME)]
    assert re.fullmatch(r"\." + re.escape(NAME) + r"\.replaced-[0-9a-f]{6}", aside.name)
    assert (aside / "old.html").read_text() == "old"


def test_swap_in_tolerates_a_link_to_a_vanished_build(tmp_path: Path) -> None:
    reports, link = tmp_path / "reports", tmp_path / "reports" / NAME
    first = publish.new_build_dir(reports, NAME)
    publish.swap_in(first, link)
    shutil.rmtree(first)
    second = publish.new_build_dir(reports, NAME)
    publish.swap_in(second, link)
    assert link.resolve() == second.resolve()


def test_swap_in_does_not_fail_when_the_old_build_cannot_be_removed(tmp_path: Path, monkeypatch) -> None:
    reports, link = tmp_path / "reports", tmp_path / "reports" / NAME
    first = publish.new_build_dir(reports, NAME)
    (first / "page.html").write_text("x")
    publish.swap_in(first, link)

    def refuse(*a, **k):
        raise PermissionError("busy")

    monkeypatch.setattr(os, "unlink", refuse)
    second = publish.new_build_dir(reports, NAME)
    publish.swap_in(second, link)  # the new night is live; the old build is left for the sweep
    monkeypatch.undo()
    assert link.resolve() == second.resolve() and first.exists()
    assert publish.sweep_orphans(reports, NAME) == 1 and not first.exists()


def test_a_failed_swap_leaves_a_temporary_link_that_the_sweep_removes(tmp_path: Path, monkeypatch) -> None:
    reports, link = tmp_path / "reports", tmp_path / "reports" / NAME
    first = publish.new_build_dir(reports, NAME)
    publish.swap_in(first, link)
    second = publish.new_build_dir(reports, NAME)
    calls = failing_replace(monkeypatch)
    with pytest.raises(OSError, match="no rename"):
        publish.swap_in(second, link)
    monkeypatch.undo()
    (src, dst), = calls
    assert dst == str(link) and re.fullmatch(r"\." + re.escape(NAME) + r"\.[0-9a-f]{8}\.link", Path(src).name)
    assert Path(src).parent == reports and Path(src).is_symlink()
    assert link.resolve() == first.resolve() and second.exists()  # the old night still live
    assert publish.sweep_orphans(reports, NAME) == 1
    assert sorted(os.listdir(reports)) == [".builds", NAME] and os.listdir(reports / ".builds") == [first.name]


# -- the sweep ---------------------------------------------------------------------------------------------
def test_sweep_without_builds_removes_nothing(tmp_path: Path) -> None:
    assert publish.sweep_orphans(tmp_path / "reports", NAME) == 0
    (tmp_path / "reports").mkdir()
    assert publish.sweep_orphans(tmp_path / "reports", NAME) == 0


def test_sweep_counts_every_orphan_and_keeps_the_live_build_and_other_names(tmp_path: Path) -> None:
    reports, link = tmp_path / "reports", tmp_path / "reports" / NAME
    live = publish.new_build_dir(reports, NAME)
    publish.swap_in(live, link)
    orphans = [publish.new_build_dir(reports, NAME) for _ in range(3)]
    other = publish.new_build_dir(reports, "2026-03-02")  # another night's build, maybe in progress
    (reports / ".2026-03-02.0badc0de.link").symlink_to(os.path.join(".builds", other.name))
    assert publish.sweep_orphans(reports, NAME) == 3
    assert not any(o.exists() for o in orphans) and live.is_dir() and other.is_dir()
    assert (reports / ".2026-03-02.0badc0de.link").is_symlink()


def test_sweep_without_a_link_removes_every_build_of_that_name(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    builds = [publish.new_build_dir(reports, NAME) for _ in range(2)]
    assert publish.sweep_orphans(reports, NAME) == 2 and not any(b.exists() for b in builds)


def test_sweep_does_not_fail_on_a_build_it_cannot_remove(tmp_path: Path, monkeypatch) -> None:
    reports = tmp_path / "reports"
    orphan = publish.new_build_dir(reports, NAME)
    (orphan / "page.html").write_text("x")

    def refuse(*a, **k):
        raise PermissionError("busy")

    monkeypatch.setattr(os, "unlink", refuse)
    assert publish.sweep_orphans(reports, NAME) == 1  # the night goes on; the next sweep tries again
    monkeypatch.undo()
    assert orphan.exists() and publish.sweep_orphans(reports, NAME) == 1 and not orphan.exists()
