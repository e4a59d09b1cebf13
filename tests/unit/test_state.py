"""The state store: saved atomically per night, read point in time (never the run's own date or later)."""

from __future__ import annotations

from datetime import date

import polars as pl

from nightshift.state import JobState

D = date(2026, 3, 10)


def test_latest_sees_only_nights_before_the_run_date(tmp_path) -> None:
    store = JobState(tmp_path, "job")
    assert store.latest("x", before=D) is None
    for day in (date(2026, 3, 8), D, date(2026, 3, 12)):
        store.save("x", day, {"day": day.isoformat()})
    assert store.latest("x", before=D) == (date(2026, 3, 8), {"day": "2026-03-08"})
    assert store.latest("x", before=date(2026, 3, 13))[0] == date(2026, 3, 12)
    assert store.latest("other", before=date(2027, 1, 1)) is None


def test_a_rerun_replaces_its_night_and_old_nights_are_pruned(tmp_path) -> None:
    store = JobState(tmp_path, "job")
    for k in range(5):
        store.save("x", date(2026, 3, 1 + k), {"k": k}, keep=3)
    store.save("x", date(2026, 3, 5), {"k": "rerun"}, keep=3)
    files = sorted(p.name for p in (tmp_path / "job" / "state" / "x").iterdir())
    assert files == ["2026-03-03.json", "2026-03-04.json", "2026-03-05.json"]
    assert store.latest("x", before=date(2026, 3, 6)) == (date(2026, 3, 5), {"k": "rerun"})


def test_frames_are_read_for_a_window_of_earlier_nights(tmp_path) -> None:
    store = JobState(tmp_path, "job")
    for k in range(1, 6):
        store.save_frame("t", date(2026, 3, k), pl.DataFrame({"k": [k]}))
    got = store.frames("t", since=date(2026, 3, 2), before=date(2026, 3, 5))
    assert [d.day for d, _ in got] == [2, 3, 4] and [f["k"][0] for _, f in got] == [2, 3, 4]


def test_strangers_in_the_folder_are_skipped_not_the_end_of_the_listing(tmp_path) -> None:
    store = JobState(tmp_path, "job")
    folder = tmp_path / "job" / "state" / "x"
    for k in range(1, 7):  # strangers between the nights: whatever order the folder lists them in
        store.save("x", date(2026, 3, k), {"k": k})
        (folder / f"notes-{k}.json").write_text("{}")
    (folder / "2026-13-01.json").write_text("{}")  # not a date either
    assert [d.day for d, _ in store._dated("x", ".json")] == [1, 2, 3, 4, 5, 6]
    assert store.latest("x", before=date(2026, 3, 7)) == (date(2026, 3, 6), {"k": 6})


def test_a_night_pruned_by_another_writer_meanwhile_is_not_an_error(tmp_path, monkeypatch) -> None:
    store = JobState(tmp_path, "job")
    for k in range(1, 4):
        store.save("x", date(2026, 3, k), {"k": k})
    listed = store._dated

    def racing(name: str, suffix: str):
        out = listed(name, suffix)
        out[0][1].unlink()  # another writer pruned the oldest night between our listing and our unlink
        return out

    monkeypatch.setattr(store, "_dated", racing)
    store.save("x", date(2026, 3, 4), {"k": 4}, keep=2)
    assert sorted(p.name for p in (tmp_path / "job" / "state" / "x").glob("2026-*")) == [
        "2026-03-03.json", "2026-03-04.json"]
