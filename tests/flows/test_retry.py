"""Which failures the nightly flow retries: transient I/O and locks, not bugs or missing files."""

from __future__ import annotations

import duckdb
import pytest

from flows.nightly import RETRY, _transient
from nightshift.warehouse import WarehouseBusy


class _State:
    def __init__(self, exc: BaseException):
        self.exc = exc

    def result(self):
        raise self.exc


@pytest.mark.parametrize(
    "exc, retried",
    [
        (OSError(5, "I/O error"), True),
        (TimeoutError("slow disk"), True),
        (duckdb.IOException("Could not set lock on file"), True),
        (WarehouseBusy("in use by another nightshift process"), True),
        (FileNotFoundError("data/landing/sales"), False),
        (PermissionError("reports/"), False),
        (ValueError("a bug"), False),
        (KeyError("column"), False),
    ],
)
def test_only_transient_failures_are_retried(exc, retried):
    assert _transient(None, None, _State(exc)) is retried


def test_retries_back_off():
    assert RETRY["retries"] >= 2
    delays = RETRY["retry_delay_seconds"](RETRY["retries"])
    assert len(delays) == RETRY["retries"] and all(b > a for a, b in zip(delays, delays[1:], strict=False))
