"""The budget in force per dataset is the ledger's, not the settings': raising it is a recorded decision.

Settings only *ask* for a budget. The ledger records the budget in force for each dataset (the first
release records what the settings asked). Asking for less (a smaller ε or a longer window) is
always allowed and recorded by the next charge. Asking for more — a larger ε or a shorter window,
either of which lets more be spent inside a window that is already open — is refused until someone
runs `nightshift privacy raise-budget`, which records who and why in the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

TOLERANCE = 1e-9  # float slack when comparing sums of ε with the budget


class PrivacyRefused(RuntimeError):
    """A release was refused before anything was spent; the message says why and what to do."""


class BudgetExceeded(PrivacyRefused):
    """A release would take a dataset past its privacy budget in some window; nothing was spent."""

    def __init__(self, *, dataset: str, release: str, needed: float, spent: float, budget: float,
                 window_start: date, window_end: date, window_days: int):
        self.dataset, self.release, self.needed = dataset, release, needed
        self.spent, self.budget = spent, budget
        self.window_start, self.window_end, self.window_days = window_start, window_end, window_days
        super().__init__(
            f"privacy budget of dataset {dataset!r} would be exceeded: release {release!r} needs "
            f"ε={needed:g}, but the window {window_start}..{window_end} has already spent ε={spent:g} "
            f"of its budget ε={budget:g} (left: {max(budget - spent, 0.0):g}). Nothing was spent and "
            f"the last good numbers are kept. To publish: wait until older releases leave the "
            f"{window_days}-day window, lower this release's epsilon, or (a policy decision) raise "
            f"privacy_budgets.{dataset}.epsilon in the settings and record it with `nightshift privacy "
            f"raise-budget {dataset}`."
        )


@dataclass(frozen=True)
class Limit:
    """A budget: at most `epsilon` spent on a dataset in any `window_days` consecutive days."""

    epsilon: float
    window_days: int

    @classmethod
    def of(cls, budget: Any) -> Limit:
        return cls(float(budget.epsilon), int(budget.window_days))

    def looser_than(self, other: Limit) -> bool:
        """Whether this budget lets more be spent than `other` in some window."""
        return self.epsilon > other.epsilon + TOLERANCE or self.window_days < other.window_days


class BudgetRaiseRefused(PrivacyRefused):
    """The settings ask for more budget than the ledger records; nothing was spent."""

    def __init__(self, dataset: str, asked: Limit, recorded: Limit):
        self.dataset, self.asked, self.recorded = dataset, asked, recorded
        super().__init__(
            f"the settings ask for privacy_budgets.{dataset} = ε {asked.epsilon:g} per {asked.window_days} days, "
            f"more than the budget in force in the ledger (ε {recorded.epsilon:g} per {recorded.window_days} "
            f"days). Raising a budget inside an open window is a policy decision, so nothing is released "
            f"until it is recorded: run `nightshift privacy raise-budget {dataset} --epsilon {asked.epsilon:g} "
            f"--window-days {asked.window_days} --why \"...\"`, or restore the settings."
        )


def recorded(entries: list[Any], dataset: str) -> Limit | None:
    """The budget in force for `dataset` per the ledger (its last budget entry), if any."""
    last = None
    for e in entries:
        if e.data["kind"] == "budget" and e.data["dataset"] == dataset:
            last = Limit(e.data["epsilon"], e.data["window_days"])
    return last


def budget_record(dataset: str, limit: Limit, by: str, why: str, at: date | str) -> dict[str, Any]:
    return {"kind": "budget", "dataset": dataset, "epsilon": limit.epsilon, "window_days": limit.window_days,
            "by": by, "why": why, "at": str(at)}


def effective(entries: list[Any], dataset: str, asked: Limit) -> Limit:
    """The budget a release is checked against: what the settings ask, unless that is a raise.

    Raises BudgetRaiseRefused when the settings ask for more than the ledger records.
    """
    have = recorded(entries, dataset)
    if have is not None and asked.looser_than(have):
        raise BudgetRaiseRefused(dataset, asked, have)
    return asked


def to_record(entries: list[Any], dataset: str, asked: Limit, at: str) -> list[dict[str, Any]]:
    """The budget entries that make the ledger agree with an accepted ask: the first, or a lowering."""
    have = recorded(entries, dataset)
    if have is None:
        return [budget_record(dataset, asked, "settings", "the first release of this dataset", at)]
    return [] if asked == have else [budget_record(dataset, asked, "settings", "the settings lowered the budget", at)]


def in_force(entries: list[Any], dataset: str, asked: Limit) -> Limit:
    """What a release would be checked against now, for display: a raise is not in force until recorded."""
    have = recorded(entries, dataset)
    return have if have is not None and asked.looser_than(have) else asked
