"""The model registry on disk: versioned artifacts with metadata, champion/challenger, rollback.

Layout, per job (`models/<job>/`):
    v0003-20260301/        one training run: the artifact files plus metadata.json
    champion.json          the champion stack (top = champion) and an audit history
    .lock                  serialises pointer updates and version numbering across processes
Versions are written into a temp folder beside them, fsynced, then renamed, so a crash never
leaves a half-written version; the pointer is replaced with `os.replace`. The registry knows no
model family: artifacts go through an `ArtifactFormat` (see `nightshift.modeling`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import json
import math
import os
import platform
import re
import shutil
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from nightshift.modeling import ArtifactFormat
from nightshift.publish import fsync_dir, write_json_atomic

_VERSION = re.compile(r"^v(\d{4,})-(\d{8})$")
_LIBRARIES = ("numpy", "polars", "duckdb", "scikit-learn", "xgboost", "statsmodels", "tensorflow-cpu", "keras")
METADATA = "metadata.json"
POINTER = "champion.json"


class RegistryError(RuntimeError):
    """A registry operation cannot be done; the message says which job, which version, what to do."""


class ModelLoadError(RegistryError):
    """A model artifact is missing or corrupt."""


@dataclass(frozen=True)
class ModelVersion:
    """One stored training run."""

    version: str
    path: Path
    metadata: dict[str, Any]

    @property
    def metrics(self) -> dict[str, float]:
        return self.metadata.get("metrics", {})


@dataclass(frozen=True)
class Decision:
    """The outcome of a champion/challenger comparison on one holdout, with a reason for people."""

    promoted: bool
    champion: str  # the champion after the decision
    challenger: str
    previous: str | None
    metric: str
    challenger_value: float
    champion_value: float | None
    margin: float
    reason: str


@dataclass
class LoadedModel:
    """A loaded model, its version and metadata; unpacks as `model, version = ...`."""

    model: Any
    version: str
    metadata: dict[str, Any]
    warnings: list[str] = field(default_factory=list)

    def __iter__(self) -> Iterator[Any]:
        return iter((self.model, self.version))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, Path):
        return str(v)
    if hasattr(v, "item"):  # numpy scalars
        return v.item()
    return v


def _write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    write_json_atomic(_jsonable(payload), path)


def _file_hashes(directory: Path) -> dict[str, str]:
    out = {}
    for p in sorted(directory.rglob("*")):
        if p.is_file() and p.name != METADATA:
            out[p.relative_to(directory).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def library_versions() -> dict[str, str]:
    """Versions of Python and the modelling libraries installed (recorded with every model)."""
    out = {"python": platform.python_version()}
    for lib in _LIBRARIES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out[lib] = importlib.metadata.version(lib)
    return out


def _as_loader(loader: ArtifactFormat | Callable[[Path], Any]) -> Callable[[Path], Any]:
    return loader.load if isinstance(loader, ArtifactFormat) else loader


class ModelRegistry:
    """Versions, metadata and the champion of one job's models under `<models_dir>/<job>/`."""

    def __init__(self, models_dir: Path, job: str, margin: float = 0.0):
        if not re.match(r"^[a-z][a-z0-9_]*$", job):
            raise RegistryError(f"not a job name: {job!r}")
        self.root = Path(models_dir) / job
        self.job = job
        self.margin = float(margin)

    # -- locking and the pointer -------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _pointer(self, lost_ok: bool = False) -> dict[str, Any]:
        path = self.root / POINTER
        if not path.exists():
            if not lost_ok and self.root.is_dir() and any(_VERSION.match(p.name) for p in self.root.iterdir()):
                # Versions without a pointer: the champion was lost, not never chosen. Promoting
                # tonight's challenger would silently change the scores; refuse and say how to fix it.
                raise RegistryError(
                    f"the champion pointer {path} is missing though versions of {self.job!r} exist; restore it "
                    f"from backup, or choose the champion with `nightshift models promote {self.job} <version>` "
                    f"(`nightshift models list {self.job}` lists them)")
            return {"job": self.job, "stack": [], "history": []}
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise RegistryError(f"{path} is not valid JSON ({e}); restore it or delete it and promote a version") from None
        data.setdefault("stack", [])
        data.setdefault("history", [])
        return data

    def _set_pointer(self, data: dict[str, Any]) -> None:
        data["champion"] = data["stack"][-1] if data["stack"] else None
        _write_json_atomic(self.root / POINTER, data)

    # -- reading -----------------------------------------------------------------------------------
    def versions(self) -> list[str]:
        """Stored version ids, oldest first (only complete ones: with metadata)."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if _VERSION.match(p.name) and (p / METADATA).is_file())

    def get(self, version: str) -> ModelVersion:
        """One stored version with its metadata, or a clear error."""
        path = self.root / version
        if not _VERSION.match(version) or not (path / METADATA).is_file():
            known = ", ".join(self.versions()) or "none"
            raise RegistryError(f"job {self.job!r} has no model version {version!r} (known: {known})")
        try:
            meta = json.loads((path / METADATA).read_text())
        except json.JSONDecodeError as e:
            raise ModelLoadError(f"{path / METADATA} is corrupt ({e})") from None
        return ModelVersion(version, path, meta)

    def list(self) -> list[ModelVersion]:
        """Every stored version, oldest first."""
        out = []
        for v in self.versions():
            try:
                out.append(self.get(v))
            except ModelLoadError as e:
                out.append(ModelVersion(v, self.root / v, {"error": str(e)}))
        return out

    def champion(self) -> str | None:
        """The current champion's version, or None."""
        stack = self._pointer()["stack"]
        return stack[-1] if stack else None

    def history(self) -> list[dict[str, Any]]:
        """Every promotion, rollback and challenge, oldest first."""
        return list(self._pointer()["history"])

    # -- writing a version -------------------------------------------------------------------------
    def save(self, model: Any, fmt: ArtifactFormat, *, run_date: date, training_window: tuple[date, date],
             data_hash: str, features: list[str], params: dict[str, Any], metrics: dict[str, float],
             holdout: dict[str, Any] | None = None, extra: dict[str, Any] | None = None) -> ModelVersion:
        """Store one training run atomically; an identical earlier run for the same date is reused."""
        fingerprint = hashlib.sha256(
            json.dumps(_jsonable([run_date, data_hash, features, params, fmt.name]), sort_keys=True).encode()
        ).hexdigest()
        for v in reversed(self.versions()):
            if v.endswith(run_date.strftime("%Y%m%d")):
                with contextlib.suppress(RegistryError):
                    mv = self.get(v)
                    if mv.metadata.get("fingerprint") == fingerprint and self._verify(mv) is None:
                        return mv
        self.root.mkdir(parents=True, exist_ok=True)
        self._sweep_temps()
        tmp = self.root / f".tmp-{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            fmt.save(model, tmp)
            for p in tmp.rglob("*"):
                if p.is_file():
                    with p.open("rb+") as fh:
                        os.fsync(fh.fileno())
            meta = {
                "job": self.job, "created_at": _now(), "run_date": run_date, "format": fmt.name,
                "training_window": {"start": training_window[0], "end": training_window[1]},
                "data_hash": data_hash, "features": list(features), "params": params, "metrics": metrics,
                "holdout": holdout or {}, "libraries": library_versions(), "files": _file_hashes(tmp),
                "fingerprint": fingerprint, **({"extra": extra} if extra else {}),
            }
            with self._locked():
                if not (self.root / POINTER).exists() and not self.versions():
                    # The first version: the pointer exists from now on, so a missing one means lost.
                    self._set_pointer({"job": self.job, "stack": [], "history": []})
                version = self._next_version(run_date)
                meta["version"] = version
                _write_json_atomic(tmp / METADATA, meta)
                os.rename(tmp, self.root / version)
                fsync_dir(self.root)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return self.get(version)

    def _next_version(self, run_date: date) -> str:
        nums = [int(m.group(1)) for p in self.root.iterdir() if (m := _VERSION.match(p.name))]
        return f"v{max(nums, default=0) + 1:04d}-{run_date.strftime('%Y%m%d')}"

    def _sweep_temps(self, older_than_s: float = 3600) -> None:
        # Temp folders of crashed runs; young ones may belong to a run still writing.
        for p in self.root.glob(".tmp-*"):
            with contextlib.suppress(OSError):
                if time.time() - p.stat().st_mtime > older_than_s:
                    shutil.rmtree(p)

    # -- loading -----------------------------------------------------------------------------------
    def _verify(self, mv: ModelVersion) -> str | None:
        expected = mv.metadata.get("files")
        if not expected:
            return f"{mv.path / METADATA} lists no artifact files"
        actual = _file_hashes(mv.path)
        missing = sorted(set(expected) - set(actual))
        if missing:
            return f"artifact files missing from {mv.path}: {', '.join(missing)}"
        changed = sorted(k for k in expected if expected[k] != actual.get(k))
        if changed:
            return f"artifact files of {mv.path} do not match their checksums (corrupt): {', '.join(changed)}"
        return None

    def load(self, version: str, loader: ArtifactFormat | Callable[[Path], Any]) -> LoadedModel:
        """Load one version after checking its files against the checksums in its metadata."""
        try:
            mv = self.get(version)
        except RegistryError as e:
            raise ModelLoadError(f"model {self.job}/{version} is missing: {e}") from None
        problem = self._verify(mv)
        if problem:
            raise ModelLoadError(f"model {self.job}/{version} cannot be used: {problem}")
        try:
            model = _as_loader(loader)(mv.path)
        except Exception as e:
            raise ModelLoadError(f"model {self.job}/{version} failed to load: {type(e).__name__}: {e}") from e
        return LoadedModel(model, version, mv.metadata)

    def load_champion(self, loader: ArtifactFormat | Callable[[Path], Any]) -> LoadedModel:
        """Load the champion; if it is missing or corrupt, warn and fall back to the previous champion."""
        stack = self._pointer()["stack"]
        if not stack:
            raise ModelLoadError(
                f"job {self.job!r} has no champion model yet; run the job to train one or "
                f"`nightshift models promote {self.job} <version>`"
            )
        problems: list[str] = []
        for version in dict.fromkeys(reversed(stack)):  # newest champion first, each once
            try:
                loaded = self.load(version, loader)
            except ModelLoadError as e:
                problems.append(str(e))
                continue
            if problems:
                msg = (f"champion {stack[-1]} of {self.job!r} could not be loaded ({'; '.join(problems)}); "
                       f"using the previous champion {version}. Retrain, or `nightshift models rollback {self.job}`")
                warnings.warn(msg, RuntimeWarning, stacklevel=2)
                loaded.warnings.append(msg)
            return loaded
        raise ModelLoadError(f"no champion of job {self.job!r} could be loaded: " + "; ".join(problems))

    # -- champion / challenger ---------------------------------------------------------------------
    def decide(self, challenger: str, *, metric: str, challenger_value: float, champion_value: float | None,
               higher_is_better: bool = True, champion: str | None = None,
               holdout: dict[str, Any] | None = None) -> Decision:
        """Promote `challenger` only if it beats the champion by `margin` on the same holdout."""
        self.get(challenger)
        with self._locked():
            data = self._pointer()
            current = data["stack"][-1] if data["stack"] else None
            compared = champion or current
            improvement = None
            if challenger == current:
                promoted, reason = False, f"{challenger} is already the champion"
            elif compared is None:
                promoted, reason = True, f"no champion yet: {challenger} becomes the first"
            elif champion_value is None or not math.isfinite(champion_value):
                promoted, reason = True, f"the champion {compared} could not be evaluated on the holdout"
            elif not math.isfinite(challenger_value):
                promoted, reason = False, f"the challenger's {metric} is not a number"
            else:
                improvement = (challenger_value - champion_value) * (1 if higher_is_better else -1)
                promoted = improvement > self.margin
                word = "beats" if promoted else "does not beat"
                reason = (f"challenger {challenger} {metric} {challenger_value:.4f} vs champion {compared} "
                          f"{champion_value:.4f}: {word} it by the margin {self.margin:g} "
                          f"({'+' if improvement >= 0 else ''}{improvement:.4f})")
            if promoted:
                data["stack"].append(challenger)
            data["history"].append({
                "at": _now(), "action": "challenge", "challenger": challenger, "champion": compared,
                "metric": metric, "challenger_value": challenger_value, "champion_value": champion_value,
                "margin": self.margin, "promoted": promoted, "reason": reason, "holdout": holdout or {},
            })
            self._set_pointer(data)
        return Decision(promoted, challenger if promoted else (current or challenger), challenger, current,
                        metric, challenger_value, champion_value, self.margin, reason)

    def keep(self, challenger: str, *, metric: str, reason: str) -> Decision:
        """Record that the champion stays without a comparison (the reason says why)."""
        self.get(challenger)
        with self._locked():
            data = self._pointer()
            current = data["stack"][-1] if data["stack"] else challenger
            data["history"].append({"at": _now(), "action": "challenge", "challenger": challenger, "champion": current,
                                    "metric": metric, "promoted": False, "reason": reason})
            self._set_pointer(data)
        return Decision(False, current, challenger, current, metric, math.nan, None, self.margin, reason)

    def promote(self, version: str, reason: str = "promoted by hand") -> None:
        """Make `version` the champion (the previous one stays underneath for rollback)."""
        mv = self.get(version)
        problem = self._verify(mv)
        if problem:
            raise ModelLoadError(f"refusing to promote {self.job}/{version}: {problem}")
        with self._locked():
            data = self._pointer(lost_ok=True)  # promoting by hand is how a lost pointer is restored
            if data["stack"] and data["stack"][-1] == version:
                return
            data["stack"].append(version)
            data["history"].append({"at": _now(), "action": "promote", "version": version, "reason": reason})
            self._set_pointer(data)

    def rollback(self) -> str:
        """Restore the previous champion; returns it. Refused when there is none to go back to."""
        with self._locked():
            data = self._pointer()
            if len(data["stack"]) < 2:
                raise RegistryError(f"job {self.job!r} has no previous champion to roll back to")
            dropped = data["stack"].pop()
            data["history"].append({"at": _now(), "action": "rollback", "from": dropped, "to": data["stack"][-1]})
            self._set_pointer(data)
            return data["stack"][-1]
