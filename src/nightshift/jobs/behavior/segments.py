"""Behaviour segments: k-means on scaled recency, frequency, monetary value and channel mix.

k is chosen by silhouette (on a sample, to stay fast) within `K_RANGE` on a training night of the
job's cadence (`[retrain] behavior`); the nights after it keep that k (`kept_k`) and fit only it,
re-fitting the centroids on tonight's users. Segment ids are kept
stable across nights: tonight's centroids are matched to the last saved centroids before the run
date by a minimum-cost assignment (Hungarian method), so "segment 2" means the same kind of user
tomorrow.

Segments are fitted on the users they describe, so a segment id is not a public key: one user more
or less can move every centroid and every other user's label. Their profiles (`profiles`) are
therefore exact, team-only figures: never released through the privacy layer, never shareable. Centroids are saved in raw feature units (the scaler changes nightly) under
the job's state store (`nightshift.state`, name "segments"); they never go into a report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

from nightshift.state import JobState
from nightshift.tables import CHANNELS

K_RANGE = (2, 8)
NAME = "segments"  # the centroids' name in the job's state store
SILHOUETTE_SAMPLE = 2000
SHARES = [f"share_{c}" for c in CHANNELS]
# Heavy-tailed counts and money enter on a log scale, so one big spender doesn't own a centroid.
FEATURES = ["recency_days", "log_sessions", "log_purchases", "log_revenue", *SHARES]
# After scaling, the six channel shares together weigh about as much as one RFM feature (1/sqrt(6)
# each): channel mix colours a segment but should not split users by where they signed up.
WEIGHTS = np.array([1.0] * 4 + [1 / math.sqrt(len(SHARES))] * len(SHARES))


@dataclass
class Segmentation:
    """Per-user segment labels (stable ids), raw-unit centroids per id, and how k was chosen."""

    labels: pl.DataFrame  # user_id, segment
    centroids: dict[int, list[float]]  # stable id -> centroid in FEATURES (raw units)
    k: int
    silhouettes: dict[int, float]
    matched: int  # how many ids were carried over from the previous night
    previous_day: str | None = None  # the night whose centroids the ids follow
    kept_k: bool = False  # k kept from the training night's choice (a night between training nights)


def feature_frame(users: pl.DataFrame) -> pl.DataFrame:
    """Model features from `behavior_user_features` rows (canonical columns)."""
    return users.select(
        "user_id",
        pl.col("recency_days").cast(pl.Float64),
        pl.col("sessions").cast(pl.Float64).log1p().alias("log_sessions"),
        pl.col("purchases").cast(pl.Float64).log1p().alias("log_purchases"),
        (pl.col("revenue_cents").cast(pl.Float64) / 100).log1p().alias("log_revenue"),
        *[pl.col(s).cast(pl.Float64).fill_null(0) for s in SHARES],
    )


def choose_k(z: np.ndarray, seed: int, k_range: tuple[int, int] = K_RANGE) -> tuple[int, dict[int, float], dict]:
    """Fit k-means for each k in range; pick the best silhouette (scored on a fixed sample)."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    rng = np.random.default_rng(seed)
    sample = rng.choice(len(z), min(SILHOUETTE_SAMPLE, len(z)), replace=False)
    scores, fits = {}, {}
    for k in range(k_range[0], min(k_range[1], len(z) - 1) + 1):
        km = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(z)
        fits[k] = km
        labels = km.labels_[sample]
        scores[k] = float(silhouette_score(z[sample], labels)) if len(set(labels)) > 1 else -1.0
    best = max(scores, key=lambda k: (scores[k], -k))
    return best, scores, fits


def match_ids(new_raw: np.ndarray, old: dict[int, list[float]], scale: np.ndarray) -> list[int]:
    """Stable ids for new centroids: Hungarian match to yesterday's (in today's scaled units), new ids after."""
    from scipy.optimize import linear_sum_assignment

    ids = [-1] * len(new_raw)
    if old:
        old_ids = sorted(old)
        old_raw = np.array([old[i] for i in old_ids], float)
        cost = np.linalg.norm((new_raw[:, None, :] - old_raw[None, :, :]) / scale, axis=2)
        rows, cols = linear_sum_assignment(cost)
        for r, c in zip(rows, cols, strict=True):
            ids[r] = old_ids[c]
    nxt = max(old, default=-1) + 1
    for i in range(len(ids)):
        if ids[i] < 0:
            ids[i], nxt = nxt, nxt + 1
    return ids


def kept_k(previous: dict[int, list[float]] | None, previous_day: str | None, last_trained: date | None) -> int | None:
    """Between training nights, the k of the last segmentation if it was made in this period (on or
    after its training night); None when tonight chooses k afresh."""
    if not previous or previous_day is None or last_trained is None:
        return None
    return len(previous) if date.fromisoformat(previous_day) >= last_trained else None


def segment(users: pl.DataFrame, previous: dict[int, list[float]] | None, seed: int = 7,
            k_range: tuple[int, int] = K_RANGE) -> Segmentation:
    """Cluster users, choose k by silhouette within `k_range` (one k: keep it) and give clusters ids
    stable against `previous`."""

    from threadpoolctl import threadpool_limits

    # One BLAS/OpenMP thread: on small shared machines k-means runs ~40x faster than oversubscribed.
    with threadpool_limits(1):
        return _segment(users, previous, seed, k_range)


def _segment(users: pl.DataFrame, previous: dict[int, list[float]] | None, seed: int,
             k_range: tuple[int, int]) -> Segmentation:
    from sklearn.preprocessing import StandardScaler

    feats = feature_frame(users)
    x = feats.select(FEATURES).to_numpy()
    scaler = StandardScaler().fit(x)
    z = scaler.transform(x) * WEIGHTS
    k, scores, fits = choose_k(z, seed, k_range)
    km = fits[k]
    raw = scaler.inverse_transform(km.cluster_centers_ / WEIGHTS)
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0) / WEIGHTS
    ids = match_ids(raw, previous or {}, scale)
    labels = feats.select("user_id").with_columns(
        segment=pl.Series(np.array(ids)[km.labels_], dtype=pl.Int32)
    )
    centroids = {ids[i]: [float(v) for v in raw[i]] for i in range(k)}
    matched = len(set(ids) & set(previous or {}))
    return Segmentation(labels, centroids, k, scores, matched)


def profiles(seg: Segmentation, users: pl.DataFrame) -> pl.DataFrame:
    """Exact per-segment size and averages, and each segment's most common main channel (team page only)."""
    main = pl.concat_list(SHARES).list.arg_max().replace_strict(dict(enumerate(CHANNELS)), return_dtype=pl.String)
    rows = seg.labels.join(users, on="user_id").with_columns(main.alias("channel"),
                                                               revenue=pl.col("revenue_cents") / 100)
    return rows.group_by("segment").agg(
        pl.len().alias("users"), pl.col("recency_days").mean(), pl.col("sessions").mean(),
        pl.col("purchases").mean(), pl.col("revenue").mean(), pl.col("channel").mode().first().alias("top_channel"),
    ).sort("segment")


def load_previous(store: JobState, run_date: date) -> tuple[dict[int, list[float]] | None, str | None]:
    """The last saved centroids strictly before `run_date` (so a backfill matches its own past)."""
    found = store.latest(NAME, before=run_date)
    if found is None:
        return None, None
    day, data = found
    if data.get("features") != FEATURES:
        return None, None  # features changed: ids start afresh
    return {int(k): v for k, v in data["centroids"].items()}, day.isoformat()


def save(store: JobState, run_date: date, seg: Segmentation) -> Path:
    """Save tonight's centroids (replacing a rerun's)."""
    return store.save(NAME, run_date, {"features": FEATURES, "k": seg.k, "silhouettes": seg.silhouettes,
                                       "centroids": {str(k): v for k, v in seg.centroids.items()}})


def describe(profile: dict[str, float | None], window_days: int, top_channel: str | None) -> str:
    """A plain-words profile of one segment from its (noisy) averages."""
    rec, ses, rev, pur = (profile.get(k) for k in ("recency_days", "sessions", "revenue", "purchases"))
    if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in (rec, ses, rev)):
        return "too few users to describe reliably"
    if rec > window_days / 3:
        activity = "lapsed (last seen long ago)"
    elif ses >= 15:
        activity = "very active"
    elif ses >= 5:
        activity = "regular visitors"
    else:
        activity = "occasional visitors"
    spend = "big spenders" if rev >= 500 else "modest spenders" if rev >= 50 else "rarely buy"
    words = f"{activity}, {spend}"
    if top_channel:
        words += f", mostly via {top_channel}"
    return words
