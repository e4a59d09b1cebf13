"""Replay actual demand through a replenishment rule to check what service and cost it gives.

All series are simulated together: the state is a vector per series and the loop runs over days
only. Each night the rule sees the inventory position (on-hand plus orders in transit) and may
order up to a level; an order placed on day t is received on day t + lead time and serves that
day's demand. Demand that finds no stock is lost (what the `ordered` column records as demand).
Days before a series' first policy order could arrive are a warm-up: the starting stock was set
by someone else's decisions, so they are simulated but not counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class SimResult:
    """Per series × day arrays of a replay plus the mask of days that count."""

    served: np.ndarray
    lost: np.ndarray
    on_hand: np.ndarray
    orders: np.ndarray
    holding_cost: np.ndarray  # cents per day
    order_cost: np.ndarray  # cents per day
    inventory_value: np.ndarray  # cents, end of day
    counted: np.ndarray  # bool: after the warm-up

    def summary(self) -> dict[str, float]:
        """Fill rate, stock-out days and events, average inventory value and costs (counted days)."""
        c = self.counted
        demand = (self.served + self.lost)[c].sum()
        out_day = (self.lost > 0) & c
        starts = out_day & ~np.concatenate([np.zeros((c.shape[0], 1), bool), out_day[:, :-1]], axis=1)
        days = max(int(c.any(axis=0).sum()), 1)
        holding = float(self.holding_cost[c].sum()) / 100
        ordering = float(self.order_cost[c].sum()) / 100
        return {
            "fill_rate": float(self.served[c].sum() / demand) if demand > 0 else float("nan"),
            "stockout_days": int(out_day.sum()),
            "stockout_events": int(starts.sum()),
            "lost_units": int(self.lost[c].sum()),
            "orders_placed": int(((self.orders > 0) & c).sum()),
            "avg_inventory_value": float(np.where(c, self.inventory_value, 0).sum(axis=0).sum() / days) / 100,
            "holding_cost": holding,
            "ordering_cost": ordering,
            "total_cost": holding + ordering,
        }

    def value_by_day(self) -> np.ndarray:
        """Total inventory value (currency units) per simulated day, all series."""
        return self.inventory_value.sum(axis=0) / 100


def simulate(demand: np.ndarray, lead: np.ndarray, on_hand0: np.ndarray, reorder_point: np.ndarray,
             order_up_to: np.ndarray, unit_cost: np.ndarray, holding_rate: np.ndarray,
             order_cost: np.ndarray) -> SimResult:
    """Replay demand (series × days) under an (s, S) rule whose levels may change daily (series × days)."""
    n, days = demand.shape
    lead = np.maximum(lead.astype(np.int64), 0)
    arrivals = np.zeros((n, days + int(lead.max(initial=0)) + 1))
    pipeline = np.zeros(n)
    stock = on_hand0.astype(float).copy()
    rows = np.arange(n)
    out = {k: np.zeros((n, days)) for k in ("served", "lost", "on_hand", "orders")}
    for t in range(days):
        received = arrivals[:, t]
        pipeline -= received
        stock += received
        served = np.minimum(demand[:, t], stock)
        stock -= served
        position = stock + pipeline
        order = np.where(position <= reorder_point[:, t], np.ceil(np.maximum(order_up_to[:, t] - position, 0)), 0.0)
        arrivals[rows, t + lead] += order
        pipeline += order
        out["served"][:, t], out["lost"][:, t] = served, demand[:, t] - served
        out["on_hand"][:, t], out["orders"][:, t] = stock, order
    daily_rate = unit_cost * holding_rate / 365
    counted = np.arange(days)[None, :] >= lead[:, None]
    return SimResult(
        served=out["served"], lost=out["lost"], on_hand=out["on_hand"], orders=out["orders"],
        holding_cost=out["on_hand"] * daily_rate[:, None],
        order_cost=(out["orders"] > 0) * order_cost[:, None].astype(float),
        inventory_value=out["on_hand"] * unit_cost[:, None],
        counted=counted,
    )


def naive_levels(demand_history: np.ndarray, lead: np.ndarray, window: int = 30) -> np.ndarray:
    """The naive rule's order-up-to level: last month's average daily demand times (lead time + 1).

    `demand_history` holds `window` days before the replay followed by the replay days; the level
    on replay day t uses the `window` days up to and including t. No safety stock.
    """
    cum = np.concatenate([np.zeros((demand_history.shape[0], 1)), np.cumsum(demand_history, axis=1)], axis=1)
    days = demand_history.shape[1] - window
    t = np.arange(days) + window  # index (in history) of replay day t, plus one for cum's leading zero
    avg = (cum[:, t + 1] - cum[:, t + 1 - window]) / window
    return np.ceil(avg * (lead[:, None] + 1))
