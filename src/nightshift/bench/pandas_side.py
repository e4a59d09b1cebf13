"""Side B: the same work the way a competent analyst writes it with pandas and scikit-learn.

Idiomatic, not a strawman: `pd.read_parquet` of the same drop files, vectorised cleaning,
sort-once sessionisation with `groupby().diff()/cumsum()`, named aggregations, the same XGBoost
model through its scikit-learn API, and a plain loop of statsmodels SARIMAX fits over
`groupby` groups (the "naive loop"). Outputs are checked against side A's (same row counts and
sums), so the two sides demonstrably do the same work.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nightshift.bench import workload
from nightshift.bench.data import BenchData
from nightshift.tables import CHANNELS, DEVICES

HOLDOUT_DAYS = 7  # as the behavior job's click-through split
NUMERIC = ["hour", "day_of_week", "prior_impressions", "prior_clicks", "prior_carts", "prior_purchases",
           "prior_sessions", "days_since_first_seen", "session_impressions_before"]
PRIORS = {"ad_impression": "prior_impressions", "ad_click": "prior_clicks", "add_to_cart": "prior_carts",
          "purchase": "prior_purchases"}


def _read(files: list[Path]) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def _sessionize(ev: pd.DataFrame) -> pd.DataFrame:
    """Sort by user and time; a new session after 30 minutes without an event."""
    ev = ev.sort_values(["user_id", "ts", "event_id"], ignore_index=True)
    gap = ev.groupby("user_id", sort=False)["ts"].diff()
    starts = (gap.isna() | (gap > pd.Timedelta(minutes=30))).astype("int64")
    ev["session_no"] = starts.groupby(ev["user_id"], sort=False).cumsum()
    return ev


class PandasSide:
    """One rep of the workload with pandas + scikit-learn; stages run in `workload.STAGES` order."""

    name = "pandas"

    def __init__(self, data: BenchData, workdir: Path, work: workload.Workload):
        self.data, self.workdir, self.work = data, workdir, work
        self.day = pd.Timestamp(data.run_date)
        self.checks: dict[str, Any] = {}

    def load(self) -> None:
        end = self.day + pd.Timedelta(days=1)
        self.checks["read_seconds"] = 0.0  # pandas' bare read of the files, apart from the cleaning
        users = self._timed_read("users")
        users = users.dropna(subset=["user_id", "signup_date", "signup_channel", "country"])
        self.users = users[pd.to_datetime(users["signup_date"]) < end].drop_duplicates("user_id")
        ev = self._timed_read("events")
        ev = ev.dropna(subset=["event_id", "user_id", "ts", "event_type", "channel"])
        ev = ev[(ev["ts"] < end) & ev["user_id"].isin(self.users["user_id"])]
        self.events = ev.drop_duplicates("event_id")
        sales = self._timed_read("sales").dropna(subset=["date", "store_id", "product_id", "units"])
        sales = sales[(pd.to_datetime(sales["date"]) < end) & (sales["units"] >= 0)]
        self.sales = sales.drop_duplicates(["date", "store_id", "product_id"])
        self.checks["rows_loaded"] = {"users": len(self.users), "events": len(self.events), "sales": len(self.sales)}

    def _timed_read(self, table: str) -> pd.DataFrame:
        t0 = time.perf_counter()
        frame = _read(self.data.files(table))
        self.checks["read_seconds"] += time.perf_counter() - t0
        return frame

    def aggregate(self) -> None:
        self.user_day = self._user_day()
        self.impressions = self._impressions()
        self.series = self._sales_series()
        self.checks.update(
            user_day_rows=len(self.user_day), visits=int(self.user_day["visits"].sum()),
            revenue_cents=int(self.user_day["revenue_cents"].sum()), impression_rows=len(self.impressions),
            clicks=int(self.impressions["clicked"].sum()), series_rows=len(self.series),
            units=float(self.series["units"].sum()),
        )

    def _window(self, days: int, cols: list[str]) -> pd.DataFrame:
        ts = self.events["ts"]
        lo, hi = self.day - pd.Timedelta(days=days - 1), self.day + pd.Timedelta(days=1)
        return self.events.loc[(ts >= lo) & (ts < hi), cols]

    def _user_day(self) -> pd.DataFrame:
        ev = _sessionize(self._window(workload.USER_DAY_DAYS, ["user_id", "ts", "event_id", "event_type", "channel",
                                                        "revenue_cents"]))
        bought = ev["event_type"].eq("purchase")
        ev["purchases"] = bought.astype("int64")
        ev["revenue"] = ev["revenue_cents"].where(bought, 0).fillna(0).astype("int64")
        s = ev.groupby(["user_id", "session_no"], sort=False).agg(
            ts=("ts", "min"), channel=("channel", "first"), purchases=("purchases", "sum"),
            revenue_cents=("revenue", "sum"))
        s["day"] = s["ts"].dt.normalize()
        s["converting"] = s["purchases"] > 0
        return s.groupby(["user_id", "day", "channel"], sort=False).agg(
            visits=("purchases", "size"), converting_visits=("converting", "sum"), purchases=("purchases", "sum"),
            revenue_cents=("revenue_cents", "sum")).reset_index()

    def _impressions(self) -> pd.DataFrame:
        ev = self._window(workload.CTR_HISTORY_DAYS, ["user_id", "ts", "event_id", "event_type", "channel",
                                               "campaign_id", "device"])
        ev = _sessionize(ev.assign(device=ev["device"].fillna("unknown")))
        by_user = ev["user_id"]
        for kind, col in PRIORS.items():
            hit = ev["event_type"].eq(kind).astype("int64")
            ev[col] = hit.groupby(by_user, sort=False).cumsum() - hit
        first = ev.groupby("user_id", sort=False)["ts"].transform("first")
        ev["days_since_first_seen"] = (ev["ts"].dt.normalize() - first.dt.normalize()).dt.days
        imp = ev["event_type"].eq("ad_impression").astype("int64")
        ev["session_impressions_before"] = imp.groupby([by_user, ev["session_no"]], sort=False).cumsum() - imp
        ads = ev[ev["event_type"].isin(["ad_impression", "ad_click"]) & ev["campaign_id"].notna()].copy()
        ads["next_ad_event"] = ads.groupby(["user_id", "session_no", "campaign_id"], sort=False)["event_type"].shift(-1)
        lo = self.day - pd.Timedelta(days=workload.CTR_DAYS - 1)
        rows = ads[ads["event_type"].eq("ad_impression") & (ads["ts"] >= lo)].copy()
        rows["clicked"] = rows["next_ad_event"].eq("ad_click").astype("int64")
        rows["day"] = rows["ts"].dt.normalize()
        rows["hour"] = rows["ts"].dt.hour
        rows["day_of_week"] = rows["ts"].dt.dayofweek + 1
        rows["prior_sessions"] = rows["session_no"] - 1
        if len(rows) > workload.CTR_MAX_ROWS:
            rows = rows.sample(n=workload.CTR_MAX_ROWS, random_state=7)
        return rows.sort_values(["ts", "event_id"], ignore_index=True)

    def _sales_series(self) -> pd.DataFrame:
        daily = self.sales.assign(date=pd.to_datetime(self.sales["date"])).groupby(
            ["store_id", "product_id", "date"], as_index=False).agg(units=("units", "sum"),
                                                                    on_promotion=("on_promotion", "any"))
        span = daily.groupby(["store_id", "product_id"], as_index=False)["date"].agg(first="min", last="max")
        span = span[span["last"] > self.day - pd.Timedelta(days=workload.RETIRE_DAYS)]
        start = span["first"].clip(lower=self.day - pd.Timedelta(days=workload.HISTORY_DAYS - 1))
        n = (self.day - start).dt.days.to_numpy() + 1
        grid = span.loc[span.index.repeat(n), ["store_id", "product_id"]].reset_index(drop=True)
        offset = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
        grid["date"] = np.repeat(start.to_numpy(), n) + pd.to_timedelta(offset, unit="D")
        out = grid.merge(daily, on=["store_id", "product_id", "date"], how="left")
        out["filled"] = out["units"].isna()
        out["units"] = out["units"].fillna(0).astype(float)
        out["on_promotion"] = out["on_promotion"].fillna(False).astype(bool)
        return out.sort_values(["store_id", "product_id", "date"], ignore_index=True)

    def _design(self, df: pd.DataFrame) -> pd.DataFrame:
        def code(col: str, cats: list[str] | tuple[str, ...]) -> pd.Series:
            c = pd.Categorical(df[col], categories=list(cats)).codes.astype("float32")
            return pd.Series(np.where(c < 0, np.nan, c), index=df.index)

        x = pd.DataFrame({"channel_code": code("channel", CHANNELS), "device_code": code("device", DEVICES),
                          "campaign_code": code("campaign_id", self.campaigns)})
        x[NUMERIC] = df[NUMERIC].astype("float32")
        x["prior_ctr"] = (df["prior_clicks"] + 0.5) / (df["prior_impressions"] + 5.0)
        return x.astype("float32")

    def train(self) -> None:
        import xgboost as xgb

        cut = self.day - pd.Timedelta(days=HOLDOUT_DAYS - 1)
        train = self.impressions[self.impressions["day"] < cut]
        self.holdout = self.impressions[self.impressions["day"] >= cut]
        self.campaigns = sorted(train["campaign_id"].unique())
        n_fit = int(len(train) * 0.8)
        fit, valid = train.iloc[:n_fit], train.iloc[n_fit:]
        self.model = xgb.XGBClassifier(
            n_estimators=self.work.rounds, max_depth=4, learning_rate=0.15, max_bin=64, subsample=0.9,
            colsample_bytree=0.9, min_child_weight=5, random_state=7, tree_method="hist",
            eval_metric="logloss", early_stopping_rounds=25)
        self.model.fit(self._design(fit), fit["clicked"], eval_set=[(self._design(valid), valid["clicked"])],
                       verbose=False)

    def forecast(self) -> None:
        from statsmodels.tsa.statespace.sarimax import SARIMAX

        h, rows, self.actual = workload.HORIZON, [], []
        for (store, product), g in self.series.groupby(["store_id", "product_id"], sort=True):
            if len(self.actual) >= self.work.max_series:
                break
            if len(g) <= h:
                continue
            y, x = g["units"].to_numpy(float), g["on_promotion"].to_numpy(float)
            y_fit, x_fit = y[:-h][-workload.FIT_DAYS:], x[:-h][-workload.FIT_DAYS:]
            exog = x_fit if x_fit.std() > 0 else None
            try:
                res = SARIMAX(np.log1p(y_fit), exog=exog, order=workload.ORDER, seasonal_order=workload.SEASONAL).fit(disp=False)
                fc = res.get_forecast(h, exog=x[-h:] if exog is not None else None)
                ci80, ci95 = np.asarray(fc.conf_int(alpha=0.2)), np.asarray(fc.conf_int(alpha=0.05))
                cols = [fc.predicted_mean, ci80[:, 0], ci80[:, 1], ci95[:, 0], ci95[:, 1]]
                cols = [np.clip(np.expm1(np.asarray(c)), 0, None) for c in cols]
            except Exception:  # noqa: BLE001 - an analyst's fallback: repeat last week
                naive = np.resize(y_fit[-7:], h)
                cols = [naive] * 5
            rows.append(pd.DataFrame(dict(zip(["mean", "lower_80", "upper_80", "lower_95", "upper_95"], cols,
                                              strict=True)))
                        .assign(series=f"{store}/{product}", horizon=np.arange(1, h + 1)))
            self.actual.append(y[-h:])
        self.forecasts = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
        self.checks["series"] = len(self.actual)

    def score(self) -> None:
        from sklearn.metrics import log_loss, roc_auc_score

        y = self.holdout["clicked"].to_numpy()
        self.p = self.model.predict_proba(self._design(self.holdout))[:, 1]
        tomorrow = self.holdout.assign(day_of_week=(self.day + timedelta(days=1)).isoweekday())
        self.per_campaign = (tomorrow[["campaign_id"]].assign(p=self.model.predict_proba(self._design(tomorrow))[:, 1])
                             .groupby("campaign_id", as_index=False)["p"].mean()
                             .rename(columns={"p": "predicted_ctr"}))
        actual = np.concatenate(self.actual) if self.actual else np.zeros(0)
        mean = self.forecasts["mean"].to_numpy() if len(self.forecasts) else np.zeros(0)
        self.checks.update(auc=round(float(roc_auc_score(y, self.p)), 4),
                           log_loss=round(float(log_loss(y, np.clip(self.p, 1e-15, 1 - 1e-15))), 5),
                           forecast_mae=round(float(np.mean(np.abs(mean - actual))), 4) if actual.size else None,
                           forecast_units=round(float(mean.sum()), 1))

    def write(self) -> None:
        out = self.workdir / "out-pandas"
        out.mkdir(parents=True, exist_ok=True)
        self.user_day.to_parquet(out / "user_day.parquet", index=False)
        self.holdout[["event_id", "campaign_id"]].assign(p_click=self.p).to_parquet(out / "ctr_scores.parquet",
                                                                                   index=False)
        self.per_campaign.to_parquet(out / "ctr_campaigns.parquet", index=False)
        self.forecasts.to_parquet(out / "forecasts.parquet", index=False)
