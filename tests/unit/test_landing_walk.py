"""The landing zone's walk: a backfill lists every drop every night, but reads an unchanged drop once."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pytest

from nightshift import sources
from nightshift.settings import load_settings


@pytest.fixture
def home(tmp_path: Path) -> Path:
    for day in ("2026-11-01", "2026-11-02", "2026-11-03"):
        drop = tmp_path / "data" / "landing" / "sales" / f"date={day}"
        drop.mkdir(parents=True)
        (drop / "part-0.csv").write_text(f"store_id,sku,day,units\nS1,A,{day},3\n")
    (tmp_path / "data" / "landing" / "sales" / "date=2026-02-30").mkdir()  # no real date: skipped
    (tmp_path / "data" / "landing" / "sales" / "date=2026-11-01" / ".part-1.csv.crc").write_text("x")
    return tmp_path


def _walk(settings, until: date) -> list[tuple[date, str, str]]:
    return [(p.day, Path(p.origin).name, p.input_hash) for p in sources.landing_partitions(settings, "sales", until)]


def test_drops_up_to_the_date_oldest_first_with_one_hash_each(home: Path) -> None:
    settings = load_settings(home=home)
    walked = _walk(settings, date(2026, 11, 2))
    assert [(d, name) for d, name, _ in walked] == [(date(2026, 11, 1), "date=2026-11-01"),
                                                     (date(2026, 11, 2), "date=2026-11-02")]
    assert len({h for _, _, h in walked}) == 2  # the rows differ, so do the hashes


def test_an_unchanged_drop_is_read_once_a_rewritten_one_again(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(home=home)
    opened: list[str] = []

    def counting_open(path, *args, **kwargs):
        opened.append(os.path.basename(path))
        return open(path, *args, **kwargs)

    monkeypatch.setattr(sources, "_HASHED", {})
    monkeypatch.setattr(sources, "open", counting_open, raising=False)
    first = _walk(settings, date(2026, 11, 3))
    assert len(opened) == 3  # each drop's one visible file (hidden files are not part of the drop)
    assert _walk(settings, date(2026, 11, 3)) == first and len(opened) == 3  # the second night reads nothing
    redelivered = home / "data" / "landing" / "sales" / "date=2026-11-02" / "part-0.csv"
    redelivered.write_text("store_id,sku,day,units\nS1,A,2026-11-02,4\n")  # same size, new content
    os.utime(redelivered, ns=(1, 1))  # and a modification time of its own
    again = _walk(settings, date(2026, 11, 3))
    assert len(opened) == 4 and again[0] == first[0] and again[2] == first[2]
    assert again[1][2] != first[1][2]  # the re-delivery is told apart from the drop loaded


def test_input_stamp_follows_names_sizes_and_times_up_to_the_date(home: Path) -> None:
    settings = load_settings(home=home)
    before = sources.input_stamp(settings, date(2026, 11, 2))
    assert sources.input_stamp(settings, date(2026, 11, 2)) == before
    later = home / "data" / "landing" / "sales" / "date=2026-11-03" / "part-0.csv"
    later.write_text("store_id,sku,day,units\nS1,A,2026-11-03,9\n")
    assert sources.input_stamp(settings, date(2026, 11, 2)) == before  # a drop after the date is not its input
    earlier = home / "data" / "landing" / "sales" / "date=2026-11-01" / "part-0.csv"
    os.utime(earlier, ns=(1, 1))
    assert sources.input_stamp(settings, date(2026, 11, 2)) != before
