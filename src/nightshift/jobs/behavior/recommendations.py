"""Item-to-item recommendations: cosine similarity on a sparse user x item co-cart/co-purchase matrix.

A product's neighbours are the products most often carted or bought by the same users (cosine of
the item columns). A user's scores are the similarity-weighted sum over what they interacted
with; what they already bought is excluded. Users with no cart or purchase yet get the most
popular products. The offline check replays a time split: recommend from data before the last
`TEST_DAYS` days, then count how often a product bought in those days was in the top 10, against
recommending the most popular products.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import polars as pl
import scipy.sparse as sp

TEST_DAYS = 14
CART_WEIGHT = 0.5  # a cart says less about taste than a purchase
CHUNK = 4096  # users (or items) scored per dense block: bounded memory at any size


@dataclass
class ItemModel:
    """The fitted pieces: id maps, the user x item matrix, item similarities and popularity."""

    users: np.ndarray  # user_id per matrix row
    items: np.ndarray  # product_id per matrix column
    x: sp.csr_matrix  # users x items interaction weights
    bought: sp.csr_matrix  # users x items, 1 where the user purchased
    sim: sp.csr_matrix  # items x items cosine, zero diagonal
    popularity: np.ndarray  # distinct buyers (or carters) per item


def fit(rows: pl.DataFrame) -> ItemModel:
    """Build the matrix and item-item cosine from `behavior_interactions` rows."""
    agg = rows.group_by("user_id", "product_id").agg(pl.col("carts").sum(), pl.col("purchases").sum())
    users = np.sort(agg["user_id"].unique().to_numpy())
    items = np.sort(agg["product_id"].unique().to_numpy().astype(str))
    r = np.searchsorted(users, agg["user_id"].to_numpy())
    c = np.searchsorted(items, agg["product_id"].to_numpy().astype(str))
    w = (agg["purchases"].to_numpy() > 0) * 1.0 + (agg["carts"].to_numpy() > 0) * CART_WEIGHT
    shape = (len(users), len(items))
    x = sp.csr_matrix((w, (r, c)), shape=shape)
    b = (agg["purchases"].to_numpy() > 0).astype(float)
    bought = sp.csr_matrix((b, (r, c)), shape=shape)
    bought.eliminate_zeros()
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0))).ravel()
    xn = x @ sp.diags(1.0 / np.where(norms > 0, norms, 1.0))
    sim = (xn.T @ xn).tocsr()
    sim.setdiag(0.0)
    sim.eliminate_zeros()
    popularity = np.asarray(bought.sum(axis=0) + 0.01 * (x > 0).sum(axis=0)).ravel()
    return ItemModel(users, items, x, bought, sim, popularity)


def _top(scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-n column indices per row (best first) and their scores."""
    n = min(n, scores.shape[1])
    idx = np.argpartition(-scores, n - 1, axis=1)[:, :n]
    part = np.take_along_axis(scores, idx, axis=1)
    order = np.argsort(-part, axis=1, kind="stable")
    return np.take_along_axis(idx, order, axis=1), np.take_along_axis(part, order, axis=1)


def similar_items(model: ItemModel, n: int = 10) -> pl.DataFrame:
    """Top-n neighbours per product: for_product_id, rank, product_id, score."""
    out = []
    for lo in range(0, len(model.items), CHUNK):
        block = model.sim[lo:lo + CHUNK].toarray()
        idx, val = _top(block, n)
        src = np.repeat(model.items[lo:lo + CHUNK], idx.shape[1])
        out.append(pl.DataFrame({"for_product_id": src, "rank": np.tile(np.arange(1, idx.shape[1] + 1), len(block)),
                                 "product_id": model.items[idx.ravel()], "score": val.ravel()}))
    frame = pl.concat(out) if out else pl.DataFrame(schema={"for_product_id": pl.String, "rank": pl.Int64,
                                                            "product_id": pl.String, "score": pl.Float64})
    return frame.filter(pl.col("score") > 0).with_columns(pl.col("rank").cast(pl.Int32))


def _score_users(model: ItemModel, rows: np.ndarray, popular_only: bool = False) -> np.ndarray:
    """Dense scores for some matrix rows; already bought items get -inf; ties broken by popularity."""
    pop = model.popularity / max(model.popularity.max(), 1.0) * 1e-6
    if popular_only:
        scores = np.broadcast_to(model.popularity.astype(float), (len(rows), len(model.items))).copy()
    else:
        scores = (model.x[rows] @ model.sim).toarray() + pop
    bought = model.bought[rows]
    scores[bought.nonzero()] = -np.inf
    return scores


def recommend(model: ItemModel, user_ids: np.ndarray, n: int = 10, popular_only: bool = False) -> pl.DataFrame:
    """Top-n products per user (user_id, rank, product_id, score, source), excluding what they bought."""
    user_ids = np.asarray(user_ids)
    known = np.isin(user_ids, model.users)
    frames = []
    rows = np.searchsorted(model.users, user_ids[known])
    for lo in range(0, len(rows), CHUNK):
        part = rows[lo:lo + CHUNK]
        idx, val = _top(_score_users(model, part, popular_only), n)
        frames.append(pl.DataFrame({
            "user_id": np.repeat(model.users[part], idx.shape[1]),
            "rank": np.tile(np.arange(1, idx.shape[1] + 1), len(part)),
            "product_id": model.items[idx.ravel()], "score": val.ravel(),
            "source": "popular" if popular_only else "similar items",
        }))
    cold = user_ids[~known]
    if len(cold):  # no cart or purchase yet: the most popular products
        top = np.argsort(-model.popularity, kind="stable")[:n]
        frames.append(pl.DataFrame({
            "user_id": np.repeat(cold, len(top)), "rank": np.tile(np.arange(1, len(top) + 1), len(cold)),
            "product_id": np.tile(model.items[top], len(cold)),
            "score": np.tile(model.popularity[top].astype(float), len(cold)), "source": "popular",
        }))
    if not frames:
        return pl.DataFrame(schema={"user_id": pl.Int64, "rank": pl.Int32, "product_id": pl.String,
                                    "score": pl.Float64, "source": pl.String})
    return (pl.concat(frames).filter(pl.col("score") > -np.inf)
            .with_columns(pl.col("user_id").cast(pl.Int64), pl.col("rank").cast(pl.Int32)))


def evaluate(rows: pl.DataFrame, run_date: date, k: int = 10) -> dict[str, float]:
    """Hit rate@k and catalogue coverage on a time split, for item-to-item and for popularity."""
    cut = run_date - timedelta(days=TEST_DAYS - 1)
    train = rows.filter(pl.col("day") < cut)
    test = rows.filter((pl.col("day") >= cut) & (pl.col("purchases") > 0))
    if train.is_empty() or test.is_empty():
        return {}
    model = fit(train)
    seen = train.filter(pl.col("purchases") > 0).select("user_id", "product_id").unique()
    # Only new purchases of users the model knows count: re-buying is not a recommendation's job.
    target = (test.select("user_id", "product_id").unique()
              .join(seen, on=["user_id", "product_id"], how="anti")
              .join(pl.DataFrame({"user_id": model.users}), on="user_id", how="semi"))
    users = target["user_id"].unique().sort().to_numpy()
    if len(users) == 0:
        return {}
    out: dict[str, float] = {"test_users": float(len(users)), "catalogue": float(len(model.items))}
    for name, popular in (("item_item", False), ("popularity", True)):
        recs = recommend(model, users, k, popular_only=popular)
        hits = recs.join(target, on=["user_id", "product_id"], how="inner")["user_id"].n_unique()
        out[f"{name}_hit_rate"] = hits / len(users)
        out[f"{name}_coverage"] = recs["product_id"].n_unique() / len(model.items)
    return out
