"""Shared model plumbing: how an artifact is saved and loaded, and which device to train on.

The registry stores any model family through an `ArtifactFormat` (a name plus `save(model, dir)`
and `load(dir)`), so XGBoost, scikit-learn and Keras models all fit without the registry knowing
them. Family-specific helpers live beside this file (`xgb.py`); metrics live in `metrics.py`.
"""

from __future__ import annotations

import functools
import os
import pickle
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class ArtifactFormat(Protocol):
    """How one model family writes itself into a folder and reads itself back."""

    name: str

    def save(self, model: Any, directory: Path) -> None: ...

    def load(self, directory: Path) -> Any: ...


@dataclass(frozen=True)
class FnFormat:
    """An `ArtifactFormat` from two plain functions (handy for one-off model bundles)."""

    name: str
    save_fn: Callable[[Any, Path], None]
    load_fn: Callable[[Path], Any]

    def save(self, model: Any, directory: Path) -> None:
        """Write `model` into `directory`."""
        self.save_fn(model, directory)

    def load(self, directory: Path) -> Any:
        """Read the model back from `directory`."""
        return self.load_fn(directory)


def _pickle_save(model: Any, directory: Path) -> None:
    with (directory / "model.pkl").open("wb") as fh:
        pickle.dump(model, fh, protocol=pickle.HIGHEST_PROTOCOL)


def _pickle_load(directory: Path) -> Any:
    # Only our own registry folders are read (checksummed by the registry); never untrusted files.
    with (directory / "model.pkl").open("rb") as fh:
        return pickle.load(fh)  # noqa: S301


# scikit-learn models have no portable format of their own; pickle is what sklearn documents.
PICKLE = FnFormat("pickle", _pickle_save, _pickle_load)


def _keras_save(model: Any, directory: Path) -> None:
    model.save(directory / "model.keras")


def _keras_load(directory: Path) -> Any:
    import keras  # heavy: imported only when a Keras model is loaded

    return keras.models.load_model(directory / "model.keras")


KERAS = FnFormat("keras", _keras_save, _keras_load)


@functools.lru_cache(maxsize=1)
def has_gpu() -> bool:
    """True when an NVIDIA GPU is visible (cheap: device files or `nvidia-smi -L`, no framework import)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    if Path("/dev/nvidia0").exists() or Path("/proc/driver/nvidia/gpus").is_dir():
        return True
    exe = shutil.which("nvidia-smi")
    if not exe:
        return False
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and "GPU" in out.stdout


__all__ = ["ArtifactFormat", "FnFormat", "PICKLE", "KERAS", "has_gpu"]
