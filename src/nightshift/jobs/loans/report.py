"""The loans page's pieces: metric tables, ROC and calibration charts, explanations, drift.

Pure functions from frames and predictions to template rows and `Chart`s. Model diagnostics on the
holdout are tables of bins; a bin with fewer than `MIN_CELL` applications is not shown.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import plotly.graph_objects as go
import polars as pl

from nightshift.jobs.loans.features import CATEGORICAL, NUMERIC
from nightshift.modeling import metrics
from nightshift.reporting.charts import Chart, chart

BANDS = (("A", 0.0), ("B", 0.02), ("C", 0.05), ("D", 0.10), ("E", 0.20), ("F", 0.35))  # band, lower bound
PSI_FLAG = 0.2
MIN_CELL = 20


def band_of(p: np.ndarray) -> np.ndarray:
    """Risk band letter for each probability (fixed cut-points, so bands mean the same every night)."""
    edges = np.array([lo for _, lo in BANDS[1:]])
    return np.array([b for b, _ in BANDS])[np.searchsorted(edges, p, side="right")]


def band_table(y: np.ndarray, p: np.ndarray) -> list[dict]:
    """Per band on the holdout: applications, mean predicted and observed default rate."""
    f = pl.DataFrame({"band": band_of(p), "y": y.astype(float), "p": p})
    out = (f.group_by("band").agg(applications=pl.len(), mean_predicted=pl.col("p").mean(),
                                  observed_default_rate=pl.col("y").mean()).sort("band"))
    return out.filter(pl.col("applications") >= MIN_CELL).to_dicts()


def metric_rows(y: np.ndarray, preds: dict[str, np.ndarray]) -> list[dict]:
    """AUC, KS, Brier and log loss per model on the same holdout rows."""
    return [{"model": name, **{k: v for k, v in metrics.binary_metrics(y, p).items() if k != "observed_rate"}}
            for name, p in preds.items()]


def roc_chart(y: np.ndarray, preds: dict[str, np.ndarray]) -> Chart:
    """ROC curves of every model on the holdout, with the chance diagonal."""
    traces = [go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dot", color="#999"), name="chance")]
    for name, p in preds.items():
        r = metrics.roc_points(y, p)
        traces.append(go.Scatter(x=r["fpr"].to_list(), y=r["tpr"].to_list(), mode="lines",
                                 name=f"{name} (AUC {metrics.auc(y, p):.3f})"))
    fig = go.Figure(traces)
    fig.update_xaxes(title="false positive rate")
    fig.update_yaxes(title="true positive rate")
    return chart(fig, "ROC on the holdout")


def calibration_chart(y: np.ndarray, p: np.ndarray, bins: int = 10) -> tuple[Chart, list[dict]]:
    """Observed default rate against mean predicted probability per decile of the prediction."""
    t = metrics.calibration_table(y, p, bins).filter(pl.col("n") >= MIN_CELL)
    top = float(max(t["mean_predicted"].max() or 0, t["observed_rate"].max() or 0, 0.05))
    fig = go.Figure([
        go.Scatter(x=[0, top], y=[0, top], mode="lines", line=dict(dash="dot", color="#999"), name="perfect"),
        go.Scatter(x=t["mean_predicted"].to_list(), y=t["observed_rate"].to_list(), mode="lines+markers",
                   name="model",
                   error_y=dict(type="data", array=(1.96 * t["observed_se"]).to_list())),
    ])
    fig.update_xaxes(title="mean predicted probability")
    fig.update_yaxes(title="observed default rate")
    rows = t.select("n", "mean_predicted", "observed_rate", "gap").to_dicts()
    return chart(fig, "Calibration on the holdout (deciles, 95% intervals)"), rows


def score_distribution(y: np.ndarray, p: np.ndarray, scored: np.ndarray) -> Chart:
    """Share of applications per probability bin: holdout repaid, holdout defaulted, and tonight's."""
    edges = np.linspace(0, 1, 41)

    def share(x: np.ndarray) -> list[float]:
        c = np.histogram(x, edges)[0]
        c = np.where(c >= 5, c, 0)  # tiny bins are dropped, not shown
        return (c / max(c.sum(), 1)).tolist()

    mids = ((edges[:-1] + edges[1:]) / 2).tolist()
    fig = go.Figure([go.Bar(x=mids, y=share(p[y == 0]), name="holdout: repaid", opacity=0.6),
                     go.Bar(x=mids, y=share(p[y == 1]), name="holdout: defaulted", opacity=0.6),
                     go.Scatter(x=mids, y=share(scored), mode="lines", name="scored tonight")])
    fig.update_layout(barmode="overlay")
    fig.update_xaxes(title="probability of default")
    fig.update_yaxes(title="share of applications")
    return chart(fig, "Score distribution")


def importance(contribs: pl.DataFrame, top: int = 12) -> tuple[Chart, list[dict]]:
    """Global importance: mean |contribution| (log-odds) per input feature."""
    imp = contribs.select(pl.all().abs().mean()).transpose(include_header=True, header_name="feature",
                                                           column_names=["mean_abs_contribution"])
    imp = imp.sort("mean_abs_contribution", descending=True).head(top)
    fig = go.Figure([go.Bar(x=imp["mean_abs_contribution"].to_list()[::-1], y=imp["feature"].to_list()[::-1],
                            orientation="h")])
    fig.update_xaxes(title="mean |contribution| (log-odds)")
    return chart(fig, "Global feature importance"), imp.to_dicts()


def partial_dependence(predict: Callable[[pl.DataFrame], np.ndarray], sample: pl.DataFrame, feature: str,
                       grid_points: int = 15) -> Chart:
    """Average predicted probability as one numeric feature is set to each value of a quantile grid."""
    grid = np.unique(np.quantile(sample[feature].drop_nulls().to_numpy(), np.linspace(0.02, 0.98, grid_points)))
    n = sample.height
    stacked = pl.concat([sample] * len(grid)).with_columns(
        pl.Series(feature, np.repeat(grid, n)).cast(sample.schema[feature]))
    mean = predict(stacked).reshape(len(grid), n).mean(axis=1)
    fig = go.Figure([go.Scatter(x=grid.tolist(), y=mean.tolist(), mode="lines+markers", name=feature)])
    fig.update_xaxes(title=feature)
    fig.update_yaxes(title="average probability of default")
    return chart(fig, f"Partial dependence: {feature}")


def drift(train: pl.DataFrame, current: pl.DataFrame) -> list[dict]:
    """PSI of each input feature between the training window and tonight's applications."""
    if current.height == 0:
        return []
    bins = 10 if current.height >= 500 else 5
    rows = [{"feature": c, "psi": metrics.psi(train[c].cast(pl.Float64).to_numpy(), current[c].cast(pl.Float64).to_numpy(), bins)}
            for c in NUMERIC]
    rows += [{"feature": c, "psi": metrics.psi_categorical(train[c].fill_null("").to_numpy(), current[c].fill_null("").to_numpy())}
             for c in CATEGORICAL]
    for r in rows:
        r["flagged"] = bool(np.isfinite(r["psi"]) and r["psi"] > PSI_FLAG)
    return sorted(rows, key=lambda r: -(r["psi"] if np.isfinite(r["psi"]) else -1))


def top_contributions(contribs: pl.DataFrame, k: int = 3) -> pl.DataFrame:
    """The k input features with the largest |contribution| per row: names and log-odds values."""
    names = np.array(contribs.columns)
    values = contribs.to_numpy()
    order = np.argsort(-np.abs(values), axis=1)[:, :k]
    picked = np.take_along_axis(values, order, axis=1)
    cols = {}
    for i in range(min(k, len(names))):
        cols[f"top_feature_{i + 1}"] = names[order[:, i]]
        cols[f"contribution_{i + 1}"] = picked[:, i]
    return pl.DataFrame(cols)
