"""Tonight's candidates as one kind of object, and how the registry stores each family.

Every candidate forecasts scaled load for a set of windows (`forecast(w)`, N × HORIZON), so the
bake-off, the champion, the interval and the live forecast treat a network and a baseline alike.
Baselines are stored as plain files (JSON, NumPy npz), never pickles, so a baseline champion
loads like any model and `nightshift models` can roll back to or from it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nightshift.jobs.energy import baselines
from nightshift.jobs.energy.dataset import Windows
from nightshift.modeling import KERAS, FnFormat

NAIVE_NAME = "seasonal naive (same hour last week)"
PROFILE_NAME = "day-type profile (past week, untrained)"
RIDGE_NAME = "ridge (linear on the network's inputs)"


@dataclass
class Network:
    """The Keras network (an average of seeded members) behind the common `forecast` interface."""

    model: Any

    def forecast(self, w: Windows) -> np.ndarray:
        from nightshift.jobs.energy import network

        return network.predict(self.model, w)


@dataclass(frozen=True)
class Fixed:
    """A baseline with nothing fitted: `seasonal naive` or `day-type profile`."""

    family: str

    def forecast(self, w: Windows) -> np.ndarray:
        return baselines.FIXED[self.family](w)


def forecast(model: Any, w: Windows) -> np.ndarray:
    """Scaled forecasts (N × H) of any candidate."""
    return model.forecast(w)


def _save_network(model: Network, directory: Path) -> None:
    KERAS.save(model.model, directory)


def _load_network(directory: Path) -> Network:
    return Network(KERAS.load(directory))


def _save_fixed(model: Fixed, directory: Path) -> None:
    (directory / "baseline.json").write_text(json.dumps({"family": model.family}))


def _load_fixed(directory: Path) -> Fixed:
    family = json.loads((directory / "baseline.json").read_text())["family"]
    if family not in baselines.FIXED:
        raise ValueError(f"unknown energy baseline {family!r}")
    return Fixed(family)


def _save_ridge(model: baselines.LinearBaseline, directory: Path) -> None:
    np.savez(directory / "ridge.npz", mean=model.mean, scale=model.scale, coef=model.coef,
             intercept=model.intercept, alpha=np.float64(model.alpha), keep=model.keep)


def _load_ridge(directory: Path) -> baselines.LinearBaseline:
    with np.load(directory / "ridge.npz") as f:
        return baselines.LinearBaseline(f["mean"], f["scale"], f["coef"], f["intercept"], float(f["alpha"]), f["keep"])


# "keras": the name versions stored before baselines competed carry, so those champions still load.
NETWORK = FnFormat("keras", _save_network, _load_network)
FIXED = FnFormat("energy-fixed-baseline-json", _save_fixed, _load_fixed)
RIDGE = FnFormat("energy-ridge-npz", _save_ridge, _load_ridge)
FORMATS = {f.name: f for f in (NETWORK, FIXED, RIDGE)}
