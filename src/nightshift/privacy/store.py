"""The privacy ledger on disk, apart from the warehouse: a hash-chained append-only file and the releases.

Layout under `<home>/data/privacy/` (rebuilding or deleting `warehouse.duckdb` leaves it alone):

- `ledger.jsonl`: one JSON entry per line, never rewritten. Each entry carries `seq` (its line
  number) and `prev`, the SHA-256 of the previous line's bytes, so an edited, removed or reordered
  entry breaks the chain. Every append is fsynced before the values it pays for are shown.
- `releases/<release id>.arrow`: the noisy table of each charged release (Arrow IPC), written
  atomically before its entry; the entry records the file's SHA-256 and size.
- `.lock`: `flock`ed exclusively around every check-and-charge, shared around every read, so threads
  and processes see whole entries and charge one at a time.

The anchor `<home>/reports/.privacy-anchor.json` holds the entry count and head hash after the last
append. It lives in another folder on purpose: a ledger that is missing, truncated or replaced while
the anchor says entries existed fails closed instead of starting again from nothing.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from nightshift.publish import fsync_dir, write_bytes_atomic, write_json_atomic

GENESIS = "0" * 64  # the `prev` of the first entry
ANCHOR = ".privacy-anchor.json"


class LedgerBroken(RuntimeError):
    """The ledger or a stored release is missing or does not verify; nothing may be charged or served."""

    def __init__(self, store: Store, problem: str):
        super().__init__(
            f"the privacy ledger in {store.folder} cannot be trusted: {problem}. Nothing was charged or "
            f"released. Restore the folder {store.folder} (ledger.jsonl and releases/) from a backup, then "
            f"run `nightshift privacy verify`: the right backup verifies and reaches the anchor "
            f"{store.anchor_path} ({store.anchor_text()}). Never delete the anchor to get past this: that "
            "forgets the budget already spent (see docs/PRIVACY.md)."
        )


@dataclass(frozen=True)
class Entry:
    """One verified ledger entry: its position, the hash of its line and its fields."""

    seq: int
    hash: str
    data: dict[str, Any]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Store:
    """The ledger folder and its anchor."""

    def __init__(self, folder: Path, anchor_path: Path):
        self.folder, self.anchor_path = Path(folder), Path(anchor_path)
        self.ledger_path = self.folder / "ledger.jsonl"

    @classmethod
    def for_home(cls, data_dir: Path, reports_dir: Path) -> Store:
        """The store of a home, from its settings' `data_dir` and `reports_dir`."""
        return cls(Path(data_dir) / "privacy", Path(reports_dir) / ANCHOR)

    # -- locking -----------------------------------------------------------------------------------
    @contextmanager
    def _flock(self, mode: int) -> Iterator[None]:
        self.folder.mkdir(parents=True, exist_ok=True)
        # A fresh open file per holder: flock then excludes other threads of this process too.
        with open(self.folder / ".lock", "a") as fh:
            fcntl.flock(fh, mode)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    @contextmanager
    def writing(self) -> Iterator[list[Entry]]:
        """Hold the writer lock; yields the verified entries as they are under it."""
        with self._flock(fcntl.LOCK_EX):
            yield self._read()

    def entries(self) -> list[Entry]:
        """Every entry, verified (chain, anchor, release files present), oldest first."""
        if not self.folder.exists():  # a reader never creates the folder: check the anchor only
            return self._read()
        with self._flock(fcntl.LOCK_SH):
            return self._read()

    # -- reading and verifying ---------------------------------------------------------------------
    def anchor(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.anchor_path.read_text())
        except FileNotFoundError:
            return None
        except ValueError:
            raise LedgerBroken(self, f"the anchor {self.anchor_path} is not valid JSON") from None

    def anchor_text(self) -> str:
        try:  # not through anchor(): the LedgerBroken it raises asks for this text again (endless recursion)
            a = json.loads(self.anchor_path.read_text())
        except FileNotFoundError:
            return "absent"
        except ValueError:
            return "unreadable"
        return f"{a['entries']} entries, head {a['head'][:16]}…"

    def _read(self) -> list[Entry]:
        raw = self.ledger_path.read_bytes() if self.ledger_path.exists() else b""
        entries = self._chain(raw)
        self._check_anchor(entries)
        for e in entries:
            if e.data["kind"] == "charge":
                self._check_file(e, full=False)
        return entries

    def _chain(self, raw: bytes) -> list[Entry]:
        lines = raw.split(b"\n")
        complete, tail = lines[:-1], lines[-1]
        entries: list[Entry] = []
        prev = GENESIS
        for i, line in enumerate(complete):
            try:
                data = json.loads(line)
            except ValueError:
                raise LedgerBroken(self, f"entry {i} of {self.ledger_path} is not valid JSON") from None
            if data.get("seq") != i or data.get("prev") != prev:
                raise LedgerBroken(self, f"the hash chain breaks at entry {i} (an entry was edited, removed or "
                                         "reordered)")
            prev = sha256(line)
            entries.append(Entry(i, prev, data))
        if tail:
            kept = len(raw) - len(tail)
            raise LedgerBroken(self, f"{self.ledger_path} ends in an incomplete entry after byte {kept}: the file "
                                     "was cut, or a charge was interrupted while being written. If the anchor "
                                     f"matches its {len(entries)} whole entries, that charge was never shown and "
                                     f"`truncate -s {kept} {self.ledger_path}` drops it")
        return entries

    def _check_anchor(self, entries: list[Entry]) -> None:
        a = self.anchor()
        if a is None or a["entries"] == 0:
            return
        n = a["entries"]
        if len(entries) < n:
            what = "is missing" if not self.ledger_path.exists() else f"has {len(entries)} entries"
            raise LedgerBroken(self, f"the ledger {what} but the anchor records {n}: releases were made and "
                                     "charged here before")
        if entries[n - 1].hash != a["head"]:
            raise LedgerBroken(self, f"entry {n - 1} does not match the anchor's head hash (the ledger was "
                                     "replaced or edited)")

    def _check_file(self, e: Entry, *, full: bool) -> bytes:
        path = self.folder / e.data["file"]
        try:
            data = path.read_bytes() if full else b""
            size = len(data) if full else path.stat().st_size
        except FileNotFoundError:
            raise LedgerBroken(self, f"the stored release {path} of entry {e.seq} is missing") from None
        if size != e.data["bytes"] or (full and sha256(data) != e.data["sha256"]):
            raise LedgerBroken(self, f"the stored release {path} of entry {e.seq} does not match its hash")
        return data

    def table(self, e: Entry) -> pl.DataFrame:
        """The stored noisy table of a charge entry, after checking its hash."""
        return pl.read_ipc(io.BytesIO(self._check_file(e, full=True)))

    def verify(self) -> list[Entry]:
        """Every entry and every stored release checked in full (hashes too)."""
        entries = self.entries()
        for e in entries:
            if e.data["kind"] == "charge":
                self._check_file(e, full=True)
        return entries

    # -- writing (hold `writing()`) ----------------------------------------------------------------
    def save_table(self, release_id: str, table: pl.DataFrame) -> dict[str, Any]:
        """Write a release's noisy table atomically; returns the fields its entry records."""
        buf = io.BytesIO()
        table.write_ipc(buf)
        data = buf.getvalue()
        name = f"releases/{release_id}.arrow"
        write_bytes_atomic(data, self.folder / name)
        return {"file": name, "sha256": sha256(data), "bytes": len(data)}

    def append(self, entries: list[Entry], records: list[dict[str, Any]]) -> list[Entry]:
        """Append records after `entries` (read under the writer lock), fsync, then move the anchor."""
        new = list(entries)
        lines = []
        for record in records:
            seq, prev = len(new), new[-1].hash if new else GENESIS
            line = json.dumps({**record, "seq": seq, "prev": prev}, sort_keys=True, separators=(",", ":"),
                              default=str).encode()
            lines.append(line + b"\n")
            new.append(Entry(seq, sha256(line), {**record, "seq": seq, "prev": prev}))
        created = not self.ledger_path.exists()
        with open(self.ledger_path, "ab") as fh:
            fh.write(b"".join(lines))
            fh.flush()
            os.fsync(fh.fileno())
        if created:
            fsync_dir(self.folder)
        write_json_atomic({"entries": len(new), "head": new[-1].hash, "ledger": str(self.ledger_path)},
                          self.anchor_path)
        return new
