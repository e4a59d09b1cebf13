"""Energy model quality on the small demo, judged against the planted truth and its sampling error.

The demo generator multiplies every meter-hour's expected load by independent lognormal noise. Recording
that noise while it generates gives the oracle: the expected load of the meters that reported, i.e. a
forecast that knows the true weather and every meter's profile. Its error is the irreducible noise; no
honest forecast beats it. The cases are two draws (the default `make demo` data, seed 7, and another) at
three run dates fixed in advance, one per season (the turn of the heating season at END, late winter with
only three months of history, mid-summer), every one of them kept whatever its outcome. Each case must
be no worse than seasonal naive or ridge beyond sampling error and stay above the oracle; over all cases
together the published model must beat seasonal naive beyond sampling error (one four-week holdout is
too short to show it per case). The published model is whichever candidate (network, ridge, day-type
profile, seasonal naive) won the holdout, so it is never worse there than the best baseline. The
interval's holdout coverage must be within sampling error of nominal (per case, and pooled) and its
width between the noise's own and an absurd one. Every check is also run on a degraded model that
must fail it. The training cadence (`[retrain] energy`) is checked on two nights of its own.

Sampling error: holdout forecasts overlap (a forecast each midnight for the next 168 hours) and errors
within a day share that day's weather, so the independent units are whole target days of the holdout
(all regions and forecast leads of one day form one block), not hours. Weather persists for a few days
(the generator's shared weather is AR(1) with 0.985 per hour), so even days are not fully independent;
blocks of BLOCK_DAYS days are used.
"""

from __future__ import annotations

import os
from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
pytestmark = pytest.mark.slow

END = date(2026, 11, 28)
EARLIER = [date(2026, 3, 1), date(2026, 7, 15)]
DRAWS = {"draw1": 1, "default": None}  # None: the stream `make demo` uses (seed 7, energy's generator index)
CASES = [(draw, d) for draw in DRAWS for d in (END, *EARLIER)]
BLOCK_DAYS = 2
NOMINAL = 0.9  # the job's interval (job.COVERAGE); asserted below so a change shows up here
WIDTH_SPREAD_MAX = 2.0  # an interval may be up to twice the width the model's error, relative to the noise, implies


class _NoiseRecorder:
    """Wraps a NumPy generator without changing its draws; keeps the (hours × meters) lognormal noise."""

    def __init__(self, rng: np.random.Generator):
        self._rng, self.calls = rng, []

    def __getattr__(self, name):
        return getattr(self._rng, name)

    def lognormal(self, mean=0.0, sigma=1.0, size=None):
        out = self._rng.lognormal(mean, sigma, size)
        if isinstance(size, tuple) and len(size) == 2:
            self.calls.append((out, np.broadcast_to(sigma, size)))
        return out


def _rng(draw: str):
    from nightshift.demo import GENERATORS

    seed = DRAWS[draw]
    return np.random.default_rng([7, GENERATORS.index("energy")] if seed is None else seed)


def _warehouse(home, draw: str):
    """A fresh home whose warehouse holds the small demo energy table of `draw` up to END, and the truth.

    The truth adds `expected`: per row, the load the meter would have used without the planted noise
    (the noise's mean, exp(sigma^2 / 2), put back in).
    """
    from nightshift.demo import SIZES
    from nightshift.demo.energy import generate
    from nightshift.settings import load_settings
    from nightshift.warehouse import Warehouse

    settings = load_settings(home=home, seed=7)
    size = SIZES["small"]
    start = END - timedelta(days=size.energy_days - 1)
    rec = _NoiseRecorder(_rng(draw))
    out = generate(rec, start, END, size)
    assert len(rec.calls) == 1, "the energy demo no longer draws its noise in one call: update the oracle"
    noise, sigma = rec.calls[0]
    energy = out["energy"]
    t = energy.select((pl.col("ts") - pl.lit(start).cast(pl.Datetime("us"))).dt.total_hours()).to_series().to_numpy()
    m = energy["meter_id"].str.slice(1).cast(pl.Int64).to_numpy()
    expected = energy["kwh"].to_numpy() / noise[t, m] * np.exp(sigma[t, m] ** 2 / 2)
    wh = Warehouse(settings.warehouse_path)
    wh.cursor.register("_e", energy.with_columns(pl.col("ts").dt.date().alias("_partition")).to_arrow())
    wh.cursor.execute("insert into energy select * from _e")
    region_hour = (energy.with_columns(pl.Series("expected", expected))
                   .group_by("region", "ts").agg(pl.col("kwh").sum(), pl.col("expected").sum()))
    return settings, wh, {**out["_truth"], "region_hour": region_hour}


def _run(settings, wh, home, run_date: date, name: str) -> dict:
    """One energy job run, keeping what it judged its models on: the series, holdout forecasts, interval."""
    from nightshift.jobs import JobContext
    from nightshift.jobs.energy import calibration, dataset, job, report

    seen: dict = {}

    def keep(name, fn):
        def wrapper(*args, **kwargs):
            seen[name] = (args, fn(*args, **kwargs))
            return seen[name][1]
        return wrapper

    ctx = JobContext("energy", run_date, settings, wh, home / name)
    with pytest.MonkeyPatch.context() as mp:
        for module, fn in ((dataset, "to_series"), (report, "accuracy_rows"), (calibration, "holdout_halfwidths")):
            mp.setattr(module, fn, keep(fn, getattr(module, fn)))
        result = job.run(ctx)
    (preds, windows), _ = seen["accuracy_rows"]
    return {"ctx": ctx, "result": result, "series": seen["to_series"][1], "preds": preds, "windows": windows,
            "half": seen["holdout_halfwidths"][1]}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Each draw's warehouse and each case's run, made once for the module and in the order first asked."""
    homes: dict[str, dict] = {}
    done: dict[tuple[str, date], dict] = {}

    def get(draw: str, run_date: date) -> dict:
        if draw not in homes:
            home = tmp_path_factory.mktemp(f"energy_{draw}")
            settings, wh, truth = _warehouse(home, draw)
            homes[draw] = {"home": home, "settings": settings, "wh": wh, "truth": truth}
        if (draw, run_date) not in done:
            h = homes[draw]
            out = f"out-{run_date}" if run_date != END else "out"
            done[draw, run_date] = {**h, **_run(h["settings"], h["wh"], h["home"], run_date, out)}
        return done[draw, run_date]

    yield get
    for h in homes.values():
        h["wh"].close()


@pytest.fixture(scope="module")
def night(runs):
    """The draw-1 run for END, shared by the report and registry tests."""
    return runs("draw1", END)


def _cells(run: dict) -> dict[str, np.ndarray]:
    """The holdout as (window × hour) arrays in kWh: truth, each method, the oracle, and each cell's block."""
    w, series, preds = run["windows"], run["series"], run["preds"]
    from nightshift.jobs.energy import candidates

    used = run["result"].context["published"]
    level = w.level[:, None].astype(float)
    t = w.origin[:, None] + np.arange(w.target.shape[1])[None, :]
    rh = run["truth"]["region_hour"]
    start = series.hours[0].astype("datetime64[us]").item()
    n_r, n_t = len(series.regions), len(series.hours)
    actual, expected = np.full((n_r, n_t), np.nan), np.full((n_r, n_t), np.nan)
    rh = rh.filter(pl.col("ts") >= start).with_columns(
        ((pl.col("ts") - pl.lit(start)).dt.total_hours()).alias("t"),
        pl.col("region").replace_strict({r: i for i, r in enumerate(series.regions)}, default=None).alias("r"))
    rh = rh.filter(pl.col("t") < n_t)
    actual[rh["r"].to_numpy(), rh["t"].to_numpy()] = rh["kwh"].to_numpy()
    expected[rh["r"].to_numpy(), rh["t"].to_numpy()] = rh["expected"].to_numpy()
    # The job scales partial hours up to all active meters; the oracle is scaled the same way, and hours
    # with no reading at all (re-estimated by the job) have no oracle.
    with np.errstate(divide="ignore", invalid="ignore"):
        oracle = np.where(actual > 0, expected * series.load / actual, np.nan)
    truth = w.target.astype(float) * level
    return {
        "truth": truth, "level": np.broadcast_to(level, truth.shape),
        "model": preds[used] * level, "seasonal naive": preds[candidates.NAIVE_NAME] * level,
        "ridge": preds[candidates.RIDGE_NAME] * level, "oracle": oracle[w.region[:, None], t],
        "constant": np.broadcast_to(level, truth.shape),  # the past week's mean load, flat
        "half": run["half"] * level,
        "block": t // (24 * BLOCK_DAYS),
    }


def _paired(cases: list[tuple[dict, np.ndarray]], other: str) -> tuple[float, float]:
    """Mean of |model's error| - |other's error| in kWh, and its s.e. over blocks, pooled over cases.

    `cases` pairs each case's cells with the forecast judged on them; blocks of different cases are kept
    apart (the cases are different draws or holdouts months apart, so independent of each other).
    """
    from intervals import block_mean_se

    diffs, blocks = [], []
    for i, (c, model) in enumerate(cases):
        diff = np.abs(model - c["truth"]) - np.abs(c[other] - c["truth"])
        ok = np.isfinite(diff)
        diffs.append(diff[ok])
        blocks.append(c["block"][ok] + i * 1_000_000)
    mean, se, _ = block_mean_se(np.concatenate(diffs), np.concatenate(blocks))
    return mean, se


def no_loss_failures(c: dict, model: np.ndarray) -> list[str]:
    """One case: not worse than seasonal naive or ridge beyond sampling error, not better than the oracle.

    Four weeks of holdout hold about 14 independent blocks: too few to show per case that the published
    model is better (draw 1 at 2026-07-15: 0.32 kWh better than seasonal naive with an s.e. of 0.13,
    2.5 s.e.), enough to catch one that is worse. Being better is asserted over all cases together
    (beats_naive_failures).
    """
    from intervals import K_SE

    out = []
    for other in ("seasonal naive", "ridge"):
        diff, se = _paired([(c, model)], other)
        if diff - K_SE * se > 0:
            out.append(f"MAE - {other}'s = {diff:+.3f} kWh (s.e. {se:.3f}): worse beyond sampling error")
    diff, se = _paired([(c, model)], "oracle")
    if diff + K_SE * se < 0:
        out.append(f"MAE - the oracle's = {diff:+.3f} kWh (s.e. {se:.3f}): better than the planted noise allows")
    return out


def beats_naive_failures(cases: list[tuple[dict, np.ndarray]]) -> list[str]:
    """Over all cases, the model's MAE must be below seasonal naive's by more than K_SE pooled s.e.

    The truth implies seasonal naive is beatable: it carries the noise of two hours (this week's and last
    week's) where the oracle carries one, and it misses every change of weather and day type in a week.
    """
    from intervals import K_SE

    diff, se = _paired(cases, "seasonal naive")
    if diff + K_SE * se < 0:
        return []
    return [f"MAE - seasonal naive's = {diff:+.3f} kWh (s.e. {se:.3f}, {len(cases)} cases): "
            "not better beyond sampling error"]


def interval_failures(c: dict, model: np.ndarray, half: np.ndarray, label: str) -> list[str]:
    """Coverage within sampling error of nominal (n_eff: the holdout's blocks); width between two bounds.

    Width floor: the central 90% of the planted noise (truth minus oracle), the narrowest an honest 90%
    interval can be. Ceiling: that width scaled by how much larger the model's errors are than the
    noise (the width an interval matching the model's error would have), times WIDTH_SPREAD_MAX.
    """
    from intervals import coverage_failures, width_failures

    ok = np.isfinite(c["truth"])
    inside = np.abs(c["truth"] - model) <= half
    coverage = float(np.mean(inside[ok]))
    n_eff = int(np.unique(c["block"][ok]).size)
    both = ok & np.isfinite(c["oracle"])
    noise = c["truth"][both] - c["oracle"][both]
    noise_width = float(np.diff(np.quantile(noise, [(1 - NOMINAL) / 2, (1 + NOMINAL) / 2]))[0])
    ratio = float(np.mean(np.abs(c["truth"][both] - model[both])) / np.mean(np.abs(noise)))
    width = float(np.mean(2 * half[ok]))
    return (coverage_failures(label, coverage, NOMINAL, n_eff)
            + width_failures(label, width, noise_width, WIDTH_SPREAD_MAX * ratio * noise_width))


def _summary(c: dict) -> str:
    mae = {k: float(np.nanmean(np.abs(c[k] - c["truth"]))) for k in ("model", "seasonal naive", "ridge", "oracle")}
    return ", ".join(f"{k} {v:.3f}" for k, v in mae.items())


@pytest.mark.parametrize(("draw", "run_date"), CASES, ids=[f"{d}-{r}" for d, r in CASES])
def test_published_model_is_the_holdout_winner_no_worse_than_any_baseline_and_above_the_noise(runs, draw,
                                                                                              run_date):
    from nightshift.jobs.energy import candidates

    run = runs(draw, run_date)
    c, result = _cells(run), run["result"]
    print(f"{draw} {run_date} holdout MAE kWh: {_summary(c)}")  # shown with -rA / -s: the numbers behind it
    # The cells are the job's own: their MAEs are the ones it reports.
    assert float(np.nanmean(np.abs(c["seasonal naive"] - c["truth"]))) == pytest.approx(
        result.context["mae"][candidates.NAIVE_NAME], abs=1e-3)
    assert no_loss_failures(c, c["model"]) == []
    verdict = result.selections["energy_load"]
    board = {e["name"]: e["value"] for e in verdict["board"]}
    assert board[verdict["winner"]] == min(board.values())  # tonight's challenger: the best on the holdout
    # in use: the winner, or a champion the selection rule kept (a date run after a later one: its model saw
    # tonight's holdout, so too few rows are newer than both and the champion stays)
    assert result.context["published"] == verdict["published"] or result.context["published"].startswith(
        f"{verdict['published']} (champion ")
    assert result.extra["best_epoch"] >= 1  # the network's trained correction, not the untrained profile


@pytest.mark.parametrize(("draw", "run_date"), CASES, ids=[f"{d}-{r}" for d, r in CASES])
def test_interval_covers_near_nominal_with_a_sane_width(runs, draw, run_date):
    from nightshift.jobs.energy import job

    assert job.COVERAGE == NOMINAL
    run = runs(draw, run_date)
    c = _cells(run)
    failures = interval_failures(c, c["model"], c["half"], f"{draw} {run_date}")
    inside = np.abs(c["truth"] - c["model"]) <= c["half"]
    coverage = float(np.mean(inside[np.isfinite(c["truth"])]))
    print(f"{draw} {run_date}: coverage {coverage:.3f}, mean width {np.mean(2 * c['half']):.2f} kWh")
    assert coverage == pytest.approx(run["result"].context["interval"]["holdout_coverage"], abs=1e-3)
    assert failures == []


def test_published_model_beats_seasonal_naive_over_all_cases(runs):
    cases = [(c, c["model"]) for c in (_cells(runs(draw, run_date)) for draw, run_date in CASES)]
    print(f"pooled MAE - seasonal naive's, s.e.: {_paired(cases, 'seasonal naive')}; "
          f"- ridge's: {_paired(cases, 'ridge')}")
    assert beats_naive_failures(cases) == []


def test_interval_coverage_pooled_over_all_cases_is_near_nominal(runs):
    """The cases' holdouts are disjoint in time or drawn apart: pooled, their blocks make a tighter check."""
    from intervals import coverage_failures

    inside, blocks = 0, 0
    for draw, run_date in CASES:
        c = _cells(runs(draw, run_date))
        ok = np.isfinite(c["truth"])
        n = int(np.unique(c["block"][ok]).size)
        # weight each case by its blocks, the units its coverage rests on
        inside += n * float(np.mean((np.abs(c["truth"] - c["model"]) <= c["half"])[ok]))
        blocks += n
    assert coverage_failures("pooled", inside / blocks, NOMINAL, blocks) == []


def test_each_check_fails_for_a_degraded_model(night):
    """Controls on the draw-1 END holdout: each check above rejects an obviously worse model."""
    c = _cells(night)
    assert beats_naive_failures([(c, c["seasonal naive"])])  # seasonal naive published as the model
    assert no_loss_failures(c, c["constant"])  # the past week's mean load, flat
    assert beats_naive_failures([(c, c["constant"])])
    assert any("oracle" in f for f in no_loss_failures(c, c["truth"]))  # a forecast that saw the actuals
    narrow = interval_failures(c, c["model"], c["half"] / 10, "a tenth of the width")
    assert any("coverage" in f for f in narrow) and any("width" in f for f in narrow)
    assert any("width" in f for f in interval_failures(c, c["model"], c["half"] * 10, "ten times the width"))


def test_forecast_parquet_covers_the_next_week_per_region_with_intervals(night):
    f = pl.read_parquet(night["home"] / "out" / "forecast.parquet")
    assert {"region", "hour", "forecast", "lower", "upper"} <= set(f.columns)
    assert f.height == 4 * 168 and f["region"].n_unique() == 4
    assert f["hour"].min().date() == END + timedelta(days=1) and f["hour"].max().date() == END + timedelta(days=7)
    assert (f["lower"] <= f["forecast"]).all() and (f["forecast"] <= f["upper"]).all() and (f["lower"] >= 0).all()


def test_device_strategy_gaps_and_privacy_are_reported(night):
    from nightshift.reporting import render

    r, ctx = night["result"], night["ctx"]
    assert r.extra["strategy"] == "default" and r.extra["device"]["devices"][0].startswith("CPU")
    assert r.extra["epochs"] >= 1 and r.extra["imputed_load_hours"] >= 24 and r.extra["imputed_temperature_hours"] >= 36
    kinds = {(g["kind"], g["region"]) for g in r.context["gaps"]}
    for row in night["truth"]["incidents"].iter_rows(named=True):
        kind = "missing readings" if row["kind"] == "missing_day" else "temperature outage"
        assert (kind, row["region"]) in kinds
    assert len(r.context["privacy_tables"]) == 2
    html = render("energy.html.j2", **r.context, run_date=END, job="energy", warnings=r.warnings,
                  selections=r.selections, privacy=ctx.privacy.section())
    assert "default" in html and "Data gaps repaired" in html and "Privacy" in html
    assert "m0000" not in html  # no meter ids on the page
    verdict = r.selections["energy_load"]
    assert "Which model is used" in html and verdict["runner_up"] in html  # the winner, the runner-up, the gap
    assert f"Forecasts come from <strong>{r.context['published']}</strong>" in html
    assert "the candidates were fitted and judged" in html and "No temperature column" not in html


def test_second_night_runs_champion_challenger(night):
    from nightshift.jobs import JobContext
    from nightshift.jobs.energy import job

    first = night["result"].models["energy_load"]
    ctx = JobContext("energy", END, night["settings"], night["wh"], night["home"] / "out2")
    again = job.run(ctx)
    # same data and seed: the registry reuses the identical version, which stays champion
    assert again.models["energy_load"] == first
    assert night["ctx"].registry.champion() == first


def test_between_training_nights_the_champion_scores_alone(runs, tmp_path):
    """Weekly training: the first night of the week trains and judges, the next one only scores with its model."""
    from nightshift.jobs import JobContext
    from nightshift.jobs.energy import job
    from nightshift.settings import load_settings

    wh = runs("draw1", END)["wh"]
    settings = load_settings(home=tmp_path, seed=7, retrain={"energy": "weekly"})
    assert END.weekday() >= 1  # the two nights fall in one week (Monday to Sunday)
    first = job.run(JobContext("energy", END - timedelta(days=1), settings, wh, tmp_path / "first"))
    second = job.run(JobContext("energy", END, settings, wh, tmp_path / "second"))
    monday = END - timedelta(days=END.weekday())
    assert first.extra["trained"] and first.selections and first.context["cadence"]["next_training"] == str(
        monday + timedelta(days=7))
    assert second.context["cadence"]["last_trained"] == str(END - timedelta(days=1))
    assert not second.extra["trained"] and second.selections == {} and "epochs" not in second.extra
    assert second.models["energy_load"] == first.models["energy_load"]  # the champion scored tonight's data
    assert second.context["published"].endswith(f"(champion {first.models['energy_load']})")
    assert pl.read_parquet(tmp_path / "second" / "forecast.parquet")["model_version"].unique().to_list() == [
        first.models["energy_load"]]
    assert 0 < second.context["interval"]["holdout_coverage"] < 1
