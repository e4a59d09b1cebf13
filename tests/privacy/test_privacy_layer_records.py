"""What `PrivacyLayer` records and reports, pinned exactly (issue 16: mutants the other tests let through).

Release ids, input hashes, what a charge stores as its metadata, the page's Privacy section field by
field, refusals and re-served releases. The numbers themselves are noisy: only what does not depend on
the noise (or bounds it with negligible failure probability) is asserted.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest

from nightshift.privacy import (
    BudgetExceeded,
    Count,
    KeySelection,
    Mean,
    PrivacyLayer,
    Release,
    Sum,
    keys,
    layer,
)
from nightshift.privacy.noise import margin_of_error
from nightshift.privacy.spec import describe, plan, sum_key
from nightshift.privacy.store import Store
from nightshift.settings import Budget, Settings
from nightshift.warehouse import Warehouse

RUN = date(2026, 3, 1)


def settings(home: Path, eps: float = 10.0, public: dict | None = None) -> Settings:
    return Settings(home=home, privacy_budgets={"users": Budget(epsilon=eps, window_days=30),
                                                "households": Budget(epsilon=1.0)},
                    privacy_public_keys=public or {})


@pytest.fixture
def wh(tmp_path):
    with Warehouse(settings(tmp_path).warehouse_path) as w:
        yield w


def frame() -> pl.DataFrame:
    """200 users in a, 100 in b, none in c; each with one row of 300 cents."""
    return pl.DataFrame({"u": list(range(300)), "g": ["a"] * 200 + ["b"] * 100, "cents": [300] * 300})


def rel(name: str = "r", eps: float = 1.0, **kw) -> Release:
    base = dict(keys={"g": ["a", "b", "c"]}, measures=[Count("n"), Sum("rev", "cents", 0, 500)], max_rows_per_unit=1,
                epsilon=eps)
    return Release(name, "users", "u", **{**base, **kw})


def campaigns() -> KeySelection:
    """The key selection most tests use: campaigns (column g) chosen with ε 1, δ 1e-6."""
    return KeySelection("sel", "users", "u", "g", "campaigns", epsilon=1.0, delta=1e-6)


def charges(s: Settings) -> list[dict]:
    return [e.data for e in Store.for_home(s.data_dir, s.reports_dir).verify() if e.data["kind"] == "charge"]


def test_the_release_id_is_a_stable_hash_of_job_name_date_and_input():
    rid = layer.release_id("job", "name", RUN, "abc")
    assert rid == hashlib.sha256(b"job\x1fname\x1f2026-03-01\x1fabc").hexdigest()[:32]
    assert len({rid, layer.release_id("job", "name", RUN + timedelta(days=1), "abc"),
                layer.release_id("job", "other", RUN, "abc"), layer.release_id("x", "name", RUN, "abc"),
                layer.release_id("job", "name", RUN, "abd")}) == 5


def test_measure_validates_and_hashes_the_declaration_with_the_bounded_input(wh):
    r = rel()
    m = layer.measure(wh.cursor, r, frame(), "job/r")
    assert m.grid["g"].to_list() == ["a", "b", "c"] and m.queries == plan(r)
    assert m.truth.vectors["rows"] == [200, 100, 0] and m.truth.vectors[sum_key(r.measures[1])] == [60_000, 30_000, 0]
    assert m.input_hash == hashlib.sha256(
        (json.dumps(describe(r), sort_keys=True) + "|" + m.truth.fingerprint).encode()).hexdigest()
    assert layer.measure(wh.cursor, rel(eps=2.0), frame(), "job/r").input_hash != m.input_hash
    with pytest.raises(ValueError, match="needs a name and at least one measure"):
        layer.measure(wh.cursor, rel(measures=[]), frame(), "job/r")


def test_candidate_counts_are_distinct_units_per_value_bounded_to_k(wh):
    sel = KeySelection("sel", "users", "u", "region", "regions", max_keys_per_unit=1)
    f = pl.DataFrame({"u": [1, 1, 2, 3, 4, 4], "region": [2, 2, 1, None, 3, 2]})
    counts, fingerprint = layer.candidate_counts(wh.cursor, sel, f, "job/sel")
    assert list(counts) == ["1", "2", "3"]  # as strings, sorted, nulls not a candidate
    assert counts["1"] == 1 and counts["2"] + counts["3"] == 2  # unit 4 counts towards one value only (K = 1)
    assert counts["2"] >= 1 and fingerprint.count(":") == 3
    two = KeySelection("sel", "users", "u", "region", "regions", max_keys_per_unit=2)
    assert layer.candidate_counts(wh.cursor, two, f, "job/sel")[0] == {"1": 1, "2": 2, "3": 1}
    assert layer.candidate_counts(wh.cursor, sel, f.filter(pl.col("region").is_null()), "s") == ({}, "empty")


def test_a_release_records_its_charge_and_metadata_and_is_served_again_for_free(wh, tmp_path):
    s = settings(tmp_path)
    r = rel(measures=[Count("n"), Mean("avg", "cents", 0, 500)], max_rows_per_unit=2)
    lay = PrivacyLayer(wh, s, "job", RUN)
    res = lay.release(r, frame())
    m = layer.measure(wh.cursor, r, frame(), "job/r")  # the salt is job/name
    assert res.release_id == layer.release_id("job", "r", RUN, m.input_hash)
    assert (res.name, res.dataset, res.reused, res.epsilon, res.delta, res.run_date, res.stale, res.refused) == (
        "r", "users", False, 1.0, 0.0, RUN, False, None)
    assert res.table.columns == ["g", "n", "n_moe", "avg", "avg_moe", "avg_note"]
    assert res.queries == [{"key": k, "sensitivity": q.sensitivity, "epsilon": q.epsilon, "scale": q.scale,
                            "moe": margin_of_error(q.scale)} for k, q in plan(r).items()]
    (charge,) = charges(s)
    assert charge["meta"] == {"queries": res.queries, "suppressed": res.suppressed, "cells": 3, "k": 2, "unit": "u",
                              "declaration": {k: v for k, v in describe(r).items() if k != "epsilon"}}
    assert charge["input_hash"] == m.input_hash and charge["release"] == "r" and charge["job"] == "job"
    assert charge["epsilon"] == 1.0 and charge["unit"] == "u" and charge["budget"] == 10.0
    assert [x["cell"] for x in res.suppressed] == ["g=c"]  # nobody in c: its mean is suppressed
    again = PrivacyLayer(wh, s, "job", RUN).release(r, frame())
    assert (again.reused, again.epsilon, again.release_id) == (True, 0.0, res.release_id)
    assert again.table.equals(res.table) and again.queries == res.queries and again.suppressed == res.suppressed
    assert len(charges(s)) == 1


def test_a_refusal_serves_the_last_good_numbers_or_raises_when_strict(wh, tmp_path):
    s = settings(tmp_path, eps=1.5)
    first = PrivacyLayer(wh, s, "job", RUN - timedelta(days=2)).release(rel(), frame())
    lay = PrivacyLayer(wh, s, "job", RUN)
    with pytest.raises(BudgetExceeded):
        lay.release(rel(), frame().head(250), strict=True)
    res = lay.release(rel(), frame().head(250))
    assert res.refused.startswith("privacy budget of dataset 'users' would be exceeded")
    assert (res.stale, res.reused, res.epsilon, res.release_id, res.run_date) == (
        True, False, 0.0, first.release_id, RUN - timedelta(days=2))
    assert res.table.equals(first.table) and res.queries == first.queries
    none = lay.release(rel("fresh"), frame())
    assert none.refused and none.table is None and none.release_id is None and none.run_date is None
    assert none.stale is False and none.queries == [] and none.suppressed == []
    sec = lay.section()
    assert sec["refusals"] == [
        {"release": "r", "dataset": "users", "message": res.refused, "showing": "2026-02-27"},
        {"release": "fresh", "dataset": "users", "message": none.refused, "showing": None}]
    assert [x["status"] for x in sec["releases"]] == ["refused, showing 2026-02-27", "refused, nothing to show"]
    assert sec["epsilon_spent"] == 0 and len(lay.results) == 2  # the strict refusal raised: not recorded
    assert lay.results[0] is res and lay.results[1] is none


def test_unknown_datasets_and_keys_not_from_their_public_list_are_refused(wh, tmp_path):
    lay = PrivacyLayer(wh, settings(tmp_path), "job", RUN)
    with pytest.raises(ValueError) as err:
        lay.release(Release("x", "patients", "u", measures=[Count("n")]), frame())
    assert str(err.value) == ("no privacy budget for dataset 'patients'; known: users, households. Add "
                              "privacy_budgets.patients to the settings or use a known dataset.")
    listed = rel(public_lists={"g": "campaigns"})
    with pytest.raises(ValueError) as err:
        lay.release(listed, frame())
    assert str(err.value) == ("release 'r': key 'g' names the public list 'campaigns', but no keys were taken from it "
                              "tonight (call PrivacyLayer.public_keys first)")
    lay._lists["campaigns"] = ["a", "b", keys.OTHER]
    with pytest.raises(ValueError) as err:
        lay.release(listed, frame())
    assert str(err.value) == ("release 'r': key 'g' values ['c'] are not in the public list 'campaigns': keys must be "
                              "declared or selected with DP, never read from the data")
    lay._lists["campaigns"] = ["a", "b", "c", keys.OTHER]
    assert lay.release(listed, frame()).refused is None


def test_release_every_serves_the_stored_release_until_days_have_passed(wh, tmp_path):
    s = settings(tmp_path)
    first = PrivacyLayer(wh, s, "job", RUN).release_every(rel(), frame(), 3)
    assert not first.reused and first.epsilon == 1.0
    mid = PrivacyLayer(wh, s, "job", RUN + timedelta(days=2))
    served = mid.release_every(rel(), frame().head(10), 3)
    assert (served.reused, served.epsilon, served.release_id, served.run_date) == (True, 0.0, first.release_id, RUN)
    assert served.table.equals(first.table) and served.queries == first.queries and served.suppressed == []
    assert mid.section()["releases"][0]["status"] == "reused from 2026-03-01 (no new spend)"
    with pytest.raises(ValueError, match="no keys were taken from it tonight"):
        mid.release_every(rel(public_lists={"g": "campaigns"}), frame(), 3)
    changed = mid.release_every(rel(max_rows_per_unit=2), frame(), 3)  # another declaration: a new release
    assert not changed.reused and changed.epsilon == 1.0
    due = PrivacyLayer(wh, s, "job", RUN + timedelta(days=3)).release_every(rel(), frame(), 3)
    assert not due.reused and due.run_date == RUN + timedelta(days=3)
    other_eps = PrivacyLayer(wh, s, "job", RUN + timedelta(days=4)).release_every(rel(eps=0.5), frame(), 3)
    assert other_eps.reused and other_eps.run_date == RUN + timedelta(days=3)  # ε is not part of the shape
    tonight = PrivacyLayer(wh, s, "job", RUN + timedelta(days=3)).release_every(rel(), frame(), 3)
    assert tonight.reused and tonight.release_id == due.release_id  # a re-run re-serves tonight's by id


def test_the_section_reports_spend_budgets_moes_and_suppressions(wh, tmp_path):
    s = settings(tmp_path, eps=3.0)
    lay = PrivacyLayer(wh, s, "job", RUN)
    kwh = Sum("kwh", "cents", 0.0, 5.0, resolution=0.01)
    r = rel(measures=[Count("n"), Count("d", distinct=True), Sum("rev", "cents", 0, 500), kwh,
                      Mean("avg", "cents", 0, 500)], max_rows_per_unit=1, eps=1.25)
    first = lay.release(r, frame())
    lay.release(r, frame())  # asked twice: shown once, charged once
    empty = Release("few", "users", "u", keys={"g": ["x", "y"]}, measures=[Mean("m", "cents", 0, 500)],
                    epsilon=0.5)
    lay.release(empty, frame())  # nobody in x or y: every mean suppressed
    lay.coarsened.append("weekly, not daily")
    sec = lay.section()
    assert sec["job"] == "job" and sec["run_date"] == "2026-03-01" and sec["confidence"] == 0.95
    assert sec["epsilon_spent"] == 1.75 and sec["delta_spent"] == 0.0
    assert sec["coarsened"] == ["weekly, not daily"] and sec["key_lists"] == []
    assert sec["mean_rule"] == "a mean is suppressed unless its noisy count exceeds 2× the count's margin of error"
    assert sec["budgets"] == [{"dataset": "users", "budget": 3.0, "window_days": 30, "window_start": "2026-01-31",
                               "window_end": "2026-03-01", "spent": 1.75, "left": 1.25, "delta_spent": 0.0}]
    assert sec["fully_suppressed"] == [{"release": "few", "values": 2}]
    assert [x["cell"] for x in sec["suppressed"]] == ["g=c"]  # the fully suppressed release is one sentence
    described, few = sec["releases"]
    q = {x["key"]: x for x in first.queries}
    assert {k: described[k] for k in ("name", "dataset", "unit", "status", "epsilon_declared", "epsilon_charged", "k",
                                      "keys", "release_id", "run_date")} == {
        "name": "r", "dataset": "users", "unit": "u", "status": "new", "epsilon_declared": 1.25,
        "epsilon_charged": 1.25, "k": 1, "keys": ["g"], "release_id": first.release_id, "run_date": "2026-03-01"}
    kwh_q = q[sum_key(kwh)]
    assert described["measures"] == [
        {"name": "n", "kind": "count", "moe": q["rows"]["moe"], "epsilon": q["rows"]["epsilon"],
         "sensitivity": 1, "scale": q["rows"]["scale"]},
        {"name": "d", "kind": "distinct count", "moe": q["units"]["moe"], "epsilon": q["units"]["epsilon"],
         "sensitivity": 1, "scale": q["units"]["scale"]},
        {"name": "rev", "kind": "sum", "moe": q[sum_key(r.measures[2])]["moe"], "epsilon": 0.3125,
         "sensitivity": 500, "scale": q[sum_key(r.measures[2])]["scale"]},
        {"name": "kwh", "kind": "sum", "moe": pytest.approx(kwh_q["moe"] * 0.01), "epsilon": 0.3125,
         "sensitivity": 500, "scale": kwh_q["scale"]},
        {"name": "avg", "kind": "mean", "moe": "per row", "epsilon": 0.3125, "sensitivity": 500,
         "scale": q[sum_key(r.measures[2])]["scale"]},
    ]
    assert few["status"] == "new" and few["epsilon_charged"] == 0.5
    with Warehouse(settings(tmp_path / "other").warehouse_path) as w2:
        bare = PrivacyLayer(w2, settings(tmp_path / "other"), "job", RUN).section()
    assert bare["releases"] == [] and bare["budgets"] == [] and bare["epsilon_spent"] == 0


def test_budget_left_is_the_fullest_window_and_never_negative(wh, tmp_path):
    s = settings(tmp_path, eps=1.0)
    PrivacyLayer(wh, s, "job", RUN - timedelta(days=5)).release(rel(eps=0.6), frame())
    lay = PrivacyLayer(wh, s, "job", RUN)
    assert lay.budget_left("users") == {"dataset": "users", "budget": 1.0, "window_days": 30,
                                        "window_start": "2026-01-31", "window_end": "2026-03-01", "spent": 0.6,
                                        "left": 0.4, "delta_spent": 0.0}
    low = PrivacyLayer(wh, settings(tmp_path, eps=0.5), "job", RUN)  # a lowering the ledger has not seen yet
    assert low.budget_left("users")["left"] == 0.0 and low.budget_left("users")["budget"] == 0.5
    high = PrivacyLayer(wh, settings(tmp_path, eps=7.0), "job", RUN)  # a raise is not in force
    assert high.budget_left("users")["budget"] == 1.0
    assert lay.budget_left("households")["spent"] == 0.0


def test_public_keys_say_where_they_came_from(wh, tmp_path):
    sel = campaigns()
    s = settings(tmp_path, public={"campaigns": ["a", "b"]})
    lay = PrivacyLayer(wh, s, "job", RUN)
    assert lay.public_keys(sel, frame()) == ["a", "b", keys.OTHER]
    assert lay.key_lists == [{"list": "campaigns", "column": "g", "how": "declared in the settings", "values": 2,
                              "other": "other"}]
    assert charges(s) == []  # a declared list is free
    dp = PrivacyLayer(wh, settings(tmp_path), "job", RUN)
    chosen = dp.public_keys(sel, frame())
    assert chosen == ["a", "b", keys.OTHER]  # 200 and 100 units, far above the threshold
    at = keys.threshold(sel)
    assert dp.key_lists == [{"list": "campaigns", "column": "g", "values": 2, "other": "other",
                             "how": f"chosen by DP key selection 'sel' (noisy distinct u counts kept at ≥ {at}, "
                                    "ε 1, δ 1e-06)"}]
    (charge,) = charges(s)
    eps, delta = keys.privacy_loss(sel, at)
    assert charge["meta"] == {
        "queries": [{"key": "units", "sensitivity": 1, "epsilon": eps, "scale": 1.0, "moe": margin_of_error(1.0)}],
        "suppressed": [], "k": 1, "unit": "u", "threshold": at, "delta": delta, "kind": "key selection",
        "declaration": {k: repr(v) for k, v in vars(sel).items() if k != "epsilon"}}
    res = dp.results[0]
    assert (res.epsilon, res.delta, res.reused) == (eps, delta, False)
    assert res.table.columns == ["g", "units"] and res.table["g"].to_list() == ["a", "b"]
    sec = dp.section()
    assert sec["delta_spent"] == delta and sec["budgets"][0]["delta_spent"] == delta
    (described,) = sec["releases"]
    assert described == {
        "name": "sel", "dataset": "users", "unit": "u", "status": "new", "epsilon_declared": 1.0,
        "epsilon_charged": eps, "k": 1, "keys": ["g"], "release_id": res.release_id, "delta": 1e-6,
        "run_date": "2026-03-01",
        "measures": [{"name": "units", "kind": f"key selection (kept at ≥ {at}, δ 1e-06)", "moe": margin_of_error(1.0),
                      "epsilon": eps, "sensitivity": 1, "scale": 1.0}]}


def test_a_key_selection_made_every_few_nights_is_served_again_in_between(wh, tmp_path):
    s = settings(tmp_path)
    sel = campaigns()
    first = PrivacyLayer(wh, s, "job", RUN).select_keys(sel, frame(), every=3)
    later = PrivacyLayer(wh, s, "job", RUN + timedelta(days=2))
    again = later.select_keys(sel, frame().head(5), every=3)
    assert (again.reused, again.epsilon, again.release_id, again.run_date) == (True, 0.0, first.release_id, RUN)
    assert again.table.equals(first.table) and later._declared["sel"] is sel
    assert later.section()["releases"][0]["status"] == "reused from 2026-03-01 (no new spend)"
    other = KeySelection("sel", "users", "u", "g", "campaigns", max_keys_per_unit=2, epsilon=1.0, delta=1e-6)
    assert not later.select_keys(other, frame(), every=3).reused  # another declaration: selected again
    due = PrivacyLayer(wh, s, "job", RUN + timedelta(days=3)).select_keys(sel, frame(), every=3)
    assert not due.reused and due.epsilon > 0
    with pytest.raises(ValueError, match="needs epsilon > 0"):
        later.select_keys(KeySelection("bad", "users", "u", "g", "campaigns", epsilon=0.0), frame())
    poor = PrivacyLayer(wh, settings(tmp_path / "poor", eps=0.5), "job", RUN)
    refused = poor.select_keys(sel, frame())
    assert refused.refused and refused.table is None
    assert poor.public_keys(sel, frame()) == [keys.OTHER]  # nothing selected: every value folds into OTHER


def test_means_of_a_fully_suppressed_release_count_cells_times_means():
    r = Release("m", "users", "u", keys={"g": ["a", "b"]}, measures=[Count("n"), Mean("x", "v", 0, 1),
                                                                     Mean("y", "v", 0, 2)])
    assert layer._mean_values(r, pl.DataFrame({"g": ["a", "b", "c"]})) == 6
    assert layer._mean_values(r, None) == 0
    assert layer._mean_values(KeySelection("s", "users", "u", "g", "l"), pl.DataFrame({"g": ["a"]})) == 0


# -- what the salt, the ledger lookup and the cadence decide (mutants of the layer's second pass) ---------------
def crowded() -> pl.DataFrame:
    """60 users with 4 rows each, in mixed groups: with K = 1 the salted hash picks which row each one keeps."""
    return pl.DataFrame({"u": [u for u in range(60) for _ in range(4)],
                         "g": [["a", "b", "c"][(u + r) % 3] for u in range(60) for r in range(4)],
                         "cents": [100 * r for _ in range(60) for r in range(4)]})


def test_the_salt_is_job_and_name_so_the_rows_kept_per_unit_are_the_releases_own(wh, tmp_path):
    sel = campaigns()
    by_salt = {salt: layer.candidate_counts(wh.cursor, sel, crowded(), salt) for salt in ("job/sel", "other")}
    assert by_salt["job/sel"][1] != by_salt["other"][1]  # the salt decides which value each user counts toward
    s = settings(tmp_path)
    lay = PrivacyLayer(wh, s, "job", RUN)
    selected = lay.select_keys(sel, crowded())
    at = keys.threshold(sel)
    described = {**{k: repr(v) for k, v in vars(sel).items()}, "threshold": at}
    input_hash = hashlib.sha256((json.dumps(described, sort_keys=True) + "|" + by_salt["job/sel"][1]).encode()
                                ).hexdigest()
    assert selected.release_id == layer.release_id("job", "sel", RUN, input_hash)
    (charge,) = charges(s)
    assert charge["input_hash"] == input_hash and charge["release_id"] == selected.release_id
    assert charge["unit"] == "u" and charge["delta"] > 0
    r = rel(max_rows_per_unit=1)
    released = lay.release(r, crowded())
    measured = {salt: layer.measure(wh.cursor, r, crowded(), salt).input_hash for salt in ("job/r", "other")}
    assert measured["job/r"] != measured["other"]
    assert released.release_id == layer.release_id("job", "r", RUN, measured["job/r"])


def test_a_release_made_tonight_is_served_again_by_its_id_even_with_no_budget_left(wh, tmp_path):
    s = settings(tmp_path, eps=1.0)
    sel = KeySelection("sel", "users", "u", "g", "campaigns", epsilon=0.5, delta=1e-6)
    eps, _ = keys.privacy_loss(sel, keys.threshold(sel))
    lay = PrivacyLayer(wh, s, "job", RUN)
    first_sel = lay.select_keys(sel, frame())
    first = lay.release(rel(eps=1.0 - eps), frame())  # the budget is now spent to the last ε
    assert not first_sel.refused and not first.refused and not first.reused
    rerun = PrivacyLayer(wh, s, "job", RUN)  # the same night run again: nothing new to spend, nothing refused
    again_sel, again = rerun.select_keys(sel, frame()), rerun.release(rel(eps=1.0 - eps), frame())
    assert (again_sel.refused, again_sel.reused, again_sel.release_id) == (None, True, first_sel.release_id)
    assert (again_sel.epsilon, again_sel.delta, first_sel.delta > 0) == (0.0, 0.0, True)
    assert (again.refused, again.reused, again.release_id) == (None, True, first.release_id)
    assert again.table.equals(first.table) and len(charges(s)) == 2


def test_stored_suppressions_travel_with_a_reserved_or_stale_release(wh, tmp_path):
    s = settings(tmp_path, eps=1.5)
    r = rel(measures=[Count("n"), Mean("avg", "cents", 0, 500)])
    first = PrivacyLayer(wh, s, "job", RUN).release_every(r, frame(), 3)
    assert [x["cell"] for x in first.suppressed] == ["g=c"]
    served = PrivacyLayer(wh, s, "job", RUN + timedelta(days=1)).release_every(r, frame(), 3)
    assert served.reused and served.suppressed == first.suppressed
    stale = PrivacyLayer(wh, s, "job", RUN + timedelta(days=3)).release(r, frame().head(250))  # 1 + 1 > 1.5
    assert stale.refused and stale.stale and stale.suppressed == first.suppressed


def test_a_release_is_due_again_after_exactly_its_days_and_a_rerun_with_new_data_is_new(wh, tmp_path):
    s = settings(tmp_path)
    first = PrivacyLayer(wh, s, "job", RUN).release_every(rel(), frame(), 2)
    assert PrivacyLayer(wh, s, "job", RUN + timedelta(days=1)).release_every(rel(), frame(), 2).reused
    due = PrivacyLayer(wh, s, "job", RUN + timedelta(days=2)).release_every(rel(), frame(), 2)
    assert not due.reused and due.run_date == RUN + timedelta(days=2)
    # Re-running the first night on corrected data is a new release, not tonight's old numbers served again.
    corrected = PrivacyLayer(wh, s, "job", RUN).release_every(rel(), frame().head(250), 2)
    assert not corrected.reused and corrected.release_id != first.release_id and corrected.epsilon == 1.0


def test_public_keys_are_selected_every_night_unless_told_otherwise_and_handed_to_the_release(wh, tmp_path):
    s = settings(tmp_path)
    sel = campaigns()
    PrivacyLayer(wh, s, "job", RUN).public_keys(sel, frame())
    nightly = PrivacyLayer(wh, s, "job", RUN + timedelta(days=1))
    assert nightly.public_keys(sel, frame()) == ["a", "b", keys.OTHER]
    assert not nightly.results[0].reused and nightly.results[0].epsilon > 0  # every = 1: selected again
    weekly = PrivacyLayer(wh, s, "job", RUN + timedelta(days=2))
    assert weekly.public_keys(sel, frame(), every=7) == ["a", "b", keys.OTHER]
    assert weekly.results[0].reused and weekly.results[0].run_date == RUN + timedelta(days=1)
    listed = rel(keys={"g": ["a", "b", keys.OTHER]}, public_lists={"g": "campaigns"})
    assert weekly.release(listed, keys.fold_other(frame(), "g", ["a", "b"])).refused is None


def test_the_section_describes_a_refused_key_selection_with_nothing_to_show(wh, tmp_path):
    sel = campaigns()
    poor = PrivacyLayer(wh, settings(tmp_path, eps=0.5), "job", RUN)
    refused = poor.select_keys(sel, frame())
    assert refused.refused.startswith("privacy budget of dataset 'users' would be exceeded")
    (described,) = poor.section()["releases"]
    assert described["status"] == "refused, nothing to show" and described["run_date"] is None
    assert described["release_id"] is None and described["epsilon_charged"] == 0.0
    assert {k: described["measures"][0][k] for k in ("moe", "epsilon", "sensitivity", "scale")} == dict.fromkeys(
        ("moe", "epsilon", "sensitivity", "scale"))


def test_the_section_finds_each_counts_query_and_rounds_spend_to_six_places(wh, tmp_path):
    lay = PrivacyLayer(wh, settings(tmp_path), "job", RUN)
    rows = lay.release(rel("rows", measures=[Count("n")], eps=1 / 3), frame())
    units = lay.release(rel("units", measures=[Count("d", distinct=True)], eps=1 / 3), frame())
    sec = lay.section()
    assert sec["epsilon_spent"] == 0.666667
    assert (sec["budgets"][0]["spent"], sec["budgets"][0]["left"]) == (0.666667, 9.333333)
    for res, described in zip((rows, units), sec["releases"], strict=True):
        (query,) = res.queries
        (measure,) = described["measures"]
        assert measure["moe"] == query["moe"] and measure["scale"] == query["scale"] and query["moe"] is not None


def test_a_stray_key_message_names_the_first_five_values(wh, tmp_path):
    lay = PrivacyLayer(wh, settings(tmp_path), "job", RUN)
    lay._lists["campaigns"] = ["a", keys.OTHER]
    listed = rel(keys={"g": ["a", *"bcdefgh"]}, public_lists={"g": "campaigns"})
    with pytest.raises(ValueError, match=r"values \['b', 'c', 'd', 'e', 'f'\] are not in the public list"):
        lay._check_public(listed)


def test_a_selection_that_keeps_nothing_is_an_empty_typed_table(wh, tmp_path):
    sel = campaigns()
    few = pl.DataFrame({"u": [1, 2], "g": ["a", "b"]})  # two units: far below any threshold for δ 1e-6
    res = PrivacyLayer(wh, settings(tmp_path), "job", RUN).select_keys(sel, few)
    assert res.table.height == 0 and res.table.schema == {"g": pl.String, "units": pl.Int64}


def test_sums_and_means_scale_their_moe_by_the_resolution_unless_per_row(wh, tmp_path):
    lay = PrivacyLayer(wh, settings(tmp_path), "job", RUN)
    coarse, fine = Sum("coarse", "cents", 0, 500, resolution=2), Mean("fine", "cents", 0, 5.0, resolution=0.01)
    res = lay.release(rel(measures=[Count("n"), coarse, fine]), frame())
    q = {x["key"]: x for x in res.queries}
    by_name = {m["name"]: m for m in lay.section()["releases"][0]["measures"]}
    assert by_name["coarse"]["moe"] == pytest.approx(q[sum_key(coarse)]["moe"] * 2)
    assert by_name["fine"]["moe"] == "per row"


def test_a_key_selection_is_made_every_night_unless_told_otherwise(wh, tmp_path):
    s = settings(tmp_path)
    sel = campaigns()
    first = PrivacyLayer(wh, s, "job", RUN).select_keys(sel, frame())
    second = PrivacyLayer(wh, s, "job", RUN + timedelta(days=1)).select_keys(sel, frame())
    assert not second.reused and second.release_id != first.release_id and second.epsilon > 0
