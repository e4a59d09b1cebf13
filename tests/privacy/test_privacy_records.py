"""What the privacy modules record and compute, pinned exactly (issue 16: mutants the other tests let through).

Post-processing (`release.build_table`) is deterministic given the noisy vectors, so its tests hand it
chosen "noisy" values and check the table cell by cell. The noise itself is checked through its
distribution (fixed sample sizes, bounds a correct sampler misses with negligible probability); margins
of error against a brute-force search written out here, not imported.
"""

from __future__ import annotations

import json
import math

import polars as pl
import pytest

from nightshift.privacy.release import build_table
from nightshift.privacy.spec import Count, Mean, Query, Release, Sum, sum_key


def moe_of(scale: float, confidence: float = 0.95) -> int:
    """The smallest a with P(|Z| > a) <= 1 - confidence for the discrete Laplace, found by counting up."""
    q = math.exp(-1.0 / scale)
    a = 0
    while 2 * q ** (a + 1) / (1 + q) > 1 - confidence:
        a += 1
    return a


def grid_of(**keys: list) -> pl.DataFrame:
    """A key grid as `bounding.key_grid` makes it for one key column: `_cell` (Int32), then the key."""
    (col, values), = keys.items()
    return pl.DataFrame({col: values}).with_row_index("_cell").with_columns(pl.col("_cell").cast(pl.Int32))


# -- release.build_table: post-processing of given noisy vectors ---------------------------------------


def test_counts_clip_negatives_to_zero_and_carry_their_integer_moe():
    rel = Release("c", "users", "u", keys={"g": ["a", "b", "c"]},
                  measures=[Count("n"), Count("d", distinct=True)], max_rows_per_unit=2, epsilon=1.0)
    queries = {"rows": Query("rows", 2, 0.5), "units": Query("units", 2, 0.25)}
    noisy = {"rows": [12, -3, 0], "units": [-1, 7, 2]}
    table, suppressed = build_table(rel, grid_of(g=["a", "b", "c"]), noisy, queries)
    assert table.columns == ["g", "n", "n_moe", "d", "d_moe"]
    assert table["g"].to_list() == ["a", "b", "c"]
    assert table["n"].to_list() == [12, 0, 0] and table["d"].to_list() == [0, 7, 2]
    assert table["n_moe"].to_list() == [moe_of(4.0)] * 3 and table["d_moe"].to_list() == [moe_of(8.0)] * 3
    assert table.schema["n_moe"] == pl.Int64 and table.schema["d_moe"] == pl.Int64
    assert suppressed == []


def test_sums_clip_to_the_sign_their_bounds_allow_and_scale_by_resolution():
    pos, neg, mixed = Sum("pos", "v", 0, 100), Sum("neg", "w", -50, -2), Sum("mix", "x", -10, 10)
    kwh = Sum("kwh", "y", 0.0, 5.0, resolution=0.01)  # integer units of 0.01
    below = Sum("below", "z", -3.0, 0.0, resolution=0.5)
    tilted = Sum("tilted", "t", -5, 1)  # one above zero is still above zero: no clipping
    rel = Release("s", "users", "u", keys={"g": ["a", "b"]}, measures=[pos, neg, mixed, kwh, below, tilted],
                  epsilon=1.0)
    queries = {sum_key(m): Query(sum_key(m), s, 1.0) for m, s in ((pos, 100), (neg, 50), (mixed, 10), (kwh, 500),
                                                                   (below, 6), (tilted, 5))}
    noisy = {sum_key(pos): [-5, 40], sum_key(neg): [9, -30], sum_key(mixed): [-7, 8],
             sum_key(kwh): [-250, 1234], sum_key(below): [3, -4], sum_key(tilted): [3, -9]}
    table, _ = build_table(rel, grid_of(g=["a", "b"]), noisy, queries)
    assert table["pos"].to_list() == [0, 40]  # lower bound 0: a sum cannot be negative
    assert table["neg"].to_list() == [0, -30]  # upper bound below 0: a sum cannot be positive
    assert table["mix"].to_list() == [-7, 8]  # mixed signs: left alone
    assert table["kwh"].to_list() == [0.0, pytest.approx(12.34)]  # clipped, then back to kWh
    assert table["below"].to_list() == [0.0, pytest.approx(-2.0)]
    assert table["tilted"].to_list() == [3, -9]
    assert table.schema["pos"] == pl.Int64 and table.schema["kwh"] == pl.Float64
    assert table["pos_moe"].to_list() == [moe_of(100.0)] * 2 and table.schema["pos_moe"] == pl.Int64
    assert table["kwh_moe"].to_list() == [pytest.approx(moe_of(500.0) * 0.01)] * 2
    assert table.schema["kwh_moe"] == pl.Float64
    assert table["below_moe"].to_list() == [pytest.approx(moe_of(6.0) * 0.5)] * 2


def test_means_show_clip_and_bound_their_error_or_say_why_they_are_suppressed():
    avg = Mean("avg", "v", -10, 50)
    rel = Release("m", "users", "u", keys={"g": list("abcdefg")}, measures=[avg], epsilon=1.0)
    queries = {"rows": Query("rows", 1, 1.0), sum_key(avg): Query(sum_key(avg), 200, 1.0)}
    m_rows, m_sum = moe_of(1.0), moe_of(200.0)
    assert m_rows == 3  # so a mean shows only when its noisy count is > 6
    rows = [1000, 10, 40, 6, 5, 0, -4]
    sums = [20_000, 1_000, -4_000, 60, 50, 10, 10]
    table, suppressed = build_table(rel, grid_of(g=list("abcdefg")), {"rows": rows, sum_key(avg): sums}, queries)
    assert table.columns == ["g", "avg", "avg_moe", "avg_note"]
    got = table.rows(named=True)
    # a: well measured; b: ratio 100 clipped to the upper bound; c: -100 clipped to the lower bound
    assert got[0]["avg"] == pytest.approx(20.0) and got[0]["avg_note"] is None
    assert got[0]["avg_moe"] == pytest.approx((m_sum + 20.0 * m_rows) / 1000)
    assert got[1]["avg"] == pytest.approx(50.0)
    assert got[1]["avg_moe"] == pytest.approx(60.0)  # (m_sum + 50·3) / 10 is wider than the bounds: 50 - (-10)
    assert got[2]["avg"] == pytest.approx(-10.0)
    assert got[2]["avg_moe"] == pytest.approx((m_sum + 10.0 * m_rows) / 40)
    # d..g: suppressed, with the noisy count (never below 0) and the threshold 2 × 3 in the note
    for row, count in zip(got[3:], [6, 5, 0, 0], strict=True):
        assert row["avg"] is None and row["avg_moe"] is None
        assert row["avg_note"] == f"suppressed: noisy count {count} is not clearly above its noise (needs > 6)"
    assert suppressed == [
        {"release": "m", "measure": "avg", "cell": f"g={g}",
         "reason": f"suppressed: noisy count {c} is not clearly above its noise (needs > 6)"}
        for g, c in zip("defg", [6, 5, 0, 0], strict=True)
    ]


def test_a_mean_in_resolution_units_is_scaled_back_before_dividing():
    kwh = Mean("kwh", "y", 0.0, 5.0, resolution=0.01)
    rel = Release("m", "households", "meter", measures=[Count("n"), kwh], epsilon=1.0)
    queries = {"rows": Query("rows", 1, 0.5), sum_key(kwh): Query(sum_key(kwh), 500, 0.5)}
    m_rows, m_sum = moe_of(2.0), moe_of(1000.0) * 0.01
    grid = pl.DataFrame({"_cell": [0]}, schema={"_cell": pl.Int32})
    table, suppressed = build_table(rel, grid, {"rows": [1000], sum_key(kwh): [250_000]}, queries)
    assert table.columns == ["n", "n_moe", "kwh", "kwh_moe", "kwh_note"]
    row = table.row(0, named=True)
    assert row["kwh"] == pytest.approx(2.5)  # 250 000 hundredths of a kWh over 1000 rows
    assert row["kwh_moe"] == pytest.approx((m_sum + 2.5 * m_rows) / 1000)
    table, suppressed = build_table(rel, grid, {"rows": [1], sum_key(kwh): [100]}, queries)
    assert suppressed == [{"release": "m", "measure": "kwh", "cell": "all",
                           "reason": f"suppressed: noisy count 1 is not clearly above its noise (needs > {2 * m_rows:g})"}]


def test_suppressed_cells_name_every_key_of_their_cell():
    avg = Mean("avg", "v", 0, 10)
    rel = Release("m", "users", "u", keys={"g": ["a", "b"], "h": [1, 2]}, measures=[Count("n"), avg], epsilon=1.0)
    grid = pl.DataFrame({"g": ["a", "a", "b", "b"], "h": [1, 2, 1, 2]}).with_row_index("_cell").with_columns(
        pl.col("_cell").cast(pl.Int32))
    queries = {"rows": Query("rows", 1, 1.0), sum_key(avg): Query(sum_key(avg), 10, 1.0)}
    table, suppressed = build_table(rel, grid, {"rows": [100, 2, 100, 100], sum_key(avg): [500, 5, 500, 500]}, queries)
    assert table.columns == ["g", "h", "n", "n_moe", "avg", "avg_moe", "avg_note"]
    assert [s["cell"] for s in suppressed] == ["g=a, h=2"]
    assert table["avg"].to_list()[0] == pytest.approx(5.0)


# -- spec: declarations, integer bounds, the plan, the description ---------------------------------------


def _release(**kw) -> Release:
    base = dict(name="r", dataset="users", unit="u", keys={"g": ["a", "b"]}, measures=[Count("n")],
                max_rows_per_unit=2, epsilon=0.5)
    return Release(**{**base, **kw})


@pytest.mark.parametrize(("kw", "message"), [
    ({"name": ""}, "release '': needs a name and at least one measure"),
    ({"measures": []}, "release 'r': needs a name and at least one measure"),
    ({"epsilon": 0.0}, "release 'r': epsilon must be a positive number, got 0.0"),
    ({"epsilon": -1.0}, "epsilon must be a positive number, got -1.0"),
    ({"epsilon": math.inf}, "epsilon must be a positive number, got inf"),
    ({"epsilon": math.nan}, "epsilon must be a positive number, got nan"),
    ({"max_rows_per_unit": 0}, "release 'r': max_rows_per_unit must be an integer >= 1"),
    ({"max_rows_per_unit": 1.5}, "max_rows_per_unit must be an integer >= 1"),
    ({"measures": [Count("n"), Count("n", distinct=True)]}, "measure names must be unique and differ from key/unit"),
    ({"measures": [Count("n"), Count("n_moe")]}, "measure names must be unique"),
    ({"measures": [Mean("m", "v", 0, 1), Count("m_note")]}, "measure names must be unique"),
    ({"measures": [Count("g")]}, "release 'r': measure names must be unique and differ from key/unit columns"),
    ({"measures": [Count("u")]}, "measure names must be unique and differ from key/unit columns"),
    ({"measures": [Count("x"), Count("g_moe")], "keys": {"g_moe": [1]}}, "differ from key/unit columns"),
    ({"public_lists": {"h": "regions"}}, "release 'r': public list given for 'h', which is not a key column"),
    ({"keys": {"g": []}}, "release 'r': key 'g' needs a non-empty list of distinct public values"),
    ({"keys": {"g": ["a", "a"]}}, "key 'g' needs a non-empty list of distinct public values"),
    ({"measures": [Sum("s", "v", 5, 1)]}, "release 'r': measure 's' needs lower <= upper and resolution > 0"),
    ({"measures": [Mean("s", "v", 0, 1, resolution=0)]}, "measure 's' needs lower <= upper and resolution > 0"),
    ({"measures": [Sum("s", "v", 0, 1, resolution=-1)]}, "needs lower <= upper and resolution > 0"),
    ({"measures": [Sum("s", "v", 0, 0)]}, "release 'r': measure 's' has bounds that clip every value to 0"),
    ({"measures": [Mean("s", "v", -0.4, 0.4)]}, "measure 's' has bounds that clip every value to 0"),
])
def test_a_bad_declaration_is_refused_with_what_is_wrong(kw, message):
    with pytest.raises(ValueError) as err:
        _release(**kw).validate()
    assert message in str(err.value)


@pytest.mark.parametrize("kw", [
    {}, {"keys": {}}, {"max_rows_per_unit": 1}, {"epsilon": 1e-6}, {"public_lists": {"g": "regions"}},
    {"measures": [Sum("s", "v", 3, 3)]},  # lower == upper is a bound, not an error
    {"measures": [Sum("s", "v", 0, 1)]}, {"measures": [Sum("s", "v", -1, 0)]},
    {"measures": [Mean("m", "v", -1.6, 0.0)]}, {"measures": [Count("n"), Sum("n_sum", "v", 0, 1)]},
    {"measures": [Count("n"), Mean("m", "v", 0, 1)]},
])
def test_a_good_declaration_passes(kw):
    _release(**kw).validate()


def test_integer_bounds_round_inward_but_forgive_float_error():
    from nightshift.privacy.spec import int_bounds

    assert int_bounds(Sum("s", "v", -1.5, 2.5)) == (-1, 2)
    assert int_bounds(Sum("s", "v", 0.1, 0.3, resolution=0.1)) == (1, 3)  # 0.3 / 0.1 = 2.9999999999999996
    assert int_bounds(Sum("s", "v", -0.3, -0.1, resolution=0.1)) == (-3, -1)
    assert int_bounds(Mean("m", "v", 0.0, 5.0, resolution=0.01)) == (0, 500)


def test_the_plan_asks_each_query_once_and_splits_epsilon_equally():
    from nightshift.privacy.spec import plan, sum_columns

    rev, avg = Sum("rev", "cents", -200, 100), Mean("avg", "cents", -200, 100)  # the same clipped column
    kwh = Mean("kwh", "kwh", 0.0, 2.5, resolution=0.5)
    rel = _release(measures=[Count("n"), Count("u", distinct=True), rev, avg, kwh], max_rows_per_unit=3,
                   epsilon=1.2)
    q = plan(rel)
    assert list(q) == ["rows", "units", "sum:cents:-200:100:1.0", "sum:kwh:0:5:0.5"]
    assert {k: v.sensitivity for k, v in q.items()} == {"rows": 3, "units": 3, "sum:cents:-200:100:1.0": 600,
                                                         "sum:kwh:0:5:0.5": 15}
    assert all(v.epsilon == pytest.approx(0.3) and v.key == k for k, v in q.items())
    assert q["sum:cents:-200:100:1.0"].scale == pytest.approx(2000.0)
    assert sum_columns(rel) == [("cents", -200, 100, 1.0), ("kwh", 0, 5, 0.5)]
    only_mean = plan(_release(measures=[Mean("avg", "v", 0, 10)], max_rows_per_unit=2, epsilon=1.0))
    assert {k: (v.sensitivity, v.epsilon) for k, v in only_mean.items()} == {"sum:v:0:10:1.0": (20, 0.5),
                                                                             "rows": (2, 0.5)}
    assert sum_columns(_release()) == []


def test_the_description_is_stable_and_names_everything_declared():
    from nightshift.privacy.spec import describe

    rel = _release(keys={"g": ["a", 2]}, measures=[Count("n", distinct=True), Sum("s", "v", 0, 1.5)],
                   max_rows_per_unit=4.0, epsilon=1)
    assert describe(rel) == {
        "name": "r", "dataset": "users", "unit": "u", "keys": {"g": ["a", "2"]},
        "measures": [{"type": "Count", "name": "'n'", "distinct": "True"},
                     {"type": "Sum", "name": "'s'", "column": "'v'", "lower": "0", "upper": "1.5", "resolution": "1.0"}],
        "k": 4, "epsilon": "1.0",
    }
    assert isinstance(describe(rel)["k"], int)


# -- noise: the margin of error, the sampler's ints, OpenDP's ε --------------------------------------------


@pytest.mark.parametrize("scale", [0.3, 1.0, 2.0, 7.5, 123.0, 4_000.0])
def test_the_margin_of_error_is_the_smallest_covering_integer(scale):
    from nightshift.privacy.noise import margin_of_error

    assert margin_of_error(scale) == moe_of(scale)
    assert margin_of_error(scale, 0.8) == moe_of(scale, 0.8)
    assert margin_of_error(scale, confidence=0.99) == moe_of(scale, 0.99)


def test_the_margin_of_error_of_tiny_scales_is_zero_not_negative():
    from nightshift.privacy.noise import margin_of_error

    assert margin_of_error(0.1) == 0 and margin_of_error(0.2, 0.5) == 0


def test_noise_keeps_integers_and_64_bit_values_and_an_empty_vector_is_empty():
    from nightshift.privacy.noise import add_noise, privacy_loss

    assert add_noise([], 5.0) == []
    big = 3 * 2**40  # money in cents outgrows 32 bits
    out = add_noise([big, 0, -big], 2.0)
    assert all(type(v) is int for v in out) and len(out) == 3
    # |Z| > 60 at scale 2 has probability 2·e^(-30.5)/(1+e^(-0.5)) ≈ 7e-14 per draw
    assert abs(out[0] - big) <= 60 and abs(out[1]) <= 60 and abs(out[2] + big) <= 60
    assert add_noise([1.0, 2.0], 1e-9) == [1, 2]  # float inputs become ints; a vanishing scale adds nothing
    assert privacy_loss(4.0, 2) == pytest.approx(0.5) and privacy_loss(0.5, 1) == pytest.approx(2.0)


def test_noise_has_mean_zero_and_the_declared_spread():
    from nightshift.privacy.noise import add_noise

    s, n = 4.0, 20_000
    draws = add_noise([100] * n, s)
    mean = sum(draws) / n - 100
    q = math.exp(-1 / s)
    var = 2 * q / (1 - q) ** 2  # the discrete Laplace's variance (≈ 31.5 at s = 4)
    assert abs(mean) < 6 * math.sqrt(var / n)  # 6 standard errors: fails with probability ~1e-9
    sample_var = sum((d - 100 - mean) ** 2 for d in draws) / (n - 1)
    assert abs(sample_var / var - 1) < 0.15  # the sample variance's sd is about 2.2% here


# -- budget: the budget in force, raises and lowerings, refusal messages ----------------------------------


def _entry(seq: int, **data):
    from nightshift.privacy.store import Entry

    return Entry(seq, f"h{seq}", data)


def test_a_budget_is_looser_when_it_allows_more_epsilon_or_a_shorter_window():
    from nightshift.privacy.budget import TOLERANCE, Limit

    base = Limit(1.0, 30)
    assert Limit(1.1, 30).looser_than(base) and Limit(1.0, 29).looser_than(base)
    assert not Limit(1.0, 30).looser_than(base) and not Limit(1.0 + TOLERANCE / 2, 30).looser_than(base)
    assert not Limit(0.5, 31).looser_than(base) and not Limit(1.0, 31).looser_than(base)
    assert Limit(1.0 + 3 * TOLERANCE, 30).looser_than(base)

    class Asked:
        epsilon, window_days = "2.5", 7.0

    got = Limit.of(Asked())
    assert got == Limit(2.5, 7) and type(got.epsilon) is float and type(got.window_days) is int


def test_the_recorded_budget_is_the_last_budget_entry_of_its_dataset():
    from nightshift.privacy.budget import Limit, budget_record, effective, in_force, recorded, to_record

    assert recorded([], "users") is None
    entries = [
        _entry(0, **budget_record("users", Limit(2.0, 30), "settings", "first", "2026-03-01")),
        _entry(1, kind="charge", dataset="users", epsilon=0.5),
        _entry(2, **budget_record("households", Limit(9.0, 5), "settings", "first", "2026-03-01")),
        _entry(3, **budget_record("users", Limit(1.0, 60), "ops", "lowered", "2026-03-02")),
    ]
    assert entries[3].data == {"kind": "budget", "dataset": "users", "epsilon": 1.0, "window_days": 60, "by": "ops",
                               "why": "lowered", "at": "2026-03-02"}
    assert recorded(entries, "users") == Limit(1.0, 60)
    assert recorded(entries, "households") == Limit(9.0, 5)
    assert recorded(entries[:1], "households") is None

    assert effective(entries, "users", Limit(0.5, 90)) == Limit(0.5, 90)  # a lowering is allowed
    assert effective(entries, "applicants", Limit(99.0, 1)) == Limit(99.0, 1)  # nothing recorded yet
    assert in_force(entries, "users", Limit(5.0, 60)) == Limit(1.0, 60)  # a raise is not in force
    assert in_force(entries, "users", Limit(0.5, 60)) == Limit(0.5, 60)
    assert in_force(entries, "applicants", Limit(3.0, 2)) == Limit(3.0, 2)

    assert to_record(entries, "users", Limit(1.0, 60), "now") == []  # the same budget: nothing to record
    assert to_record(entries, "users", Limit(0.5, 60), "now") == [
        {"kind": "budget", "dataset": "users", "epsilon": 0.5, "window_days": 60, "by": "settings",
         "why": "the settings lowered the budget", "at": "now"}]
    assert to_record(entries, "applicants", Limit(3.0, 2), "then") == [
        {"kind": "budget", "dataset": "applicants", "epsilon": 3.0, "window_days": 2, "by": "settings",
         "why": "the first release of this dataset", "at": "then"}]


def test_a_raise_is_refused_with_the_command_that_records_it():
    from nightshift.privacy.budget import BudgetRaiseRefused, Limit, PrivacyRefused, budget_record, effective

    entries = [_entry(0, **budget_record("users", Limit(1.0, 60), "settings", "first", "2026-03-01"))]
    with pytest.raises(BudgetRaiseRefused) as err:
        effective(entries, "users", Limit(2.5, 60))
    e = err.value
    assert isinstance(e, PrivacyRefused)
    assert (e.dataset, e.asked, e.recorded) == ("users", Limit(2.5, 60), Limit(1.0, 60))
    assert str(e) == (
        "the settings ask for privacy_budgets.users = ε 2.5 per 60 days, more than the budget in force in the "
        "ledger (ε 1 per 60 days). Raising a budget inside an open window is a policy decision, so nothing is "
        "released until it is recorded: run `nightshift privacy raise-budget users --epsilon 2.5 --window-days 60 "
        "--why \"...\"`, or restore the settings.")
    with pytest.raises(BudgetRaiseRefused, match="per 59 days"):
        effective(entries, "users", Limit(1.0, 59))


def test_budget_exceeded_says_what_was_spent_and_what_is_left():
    from datetime import date

    from nightshift.privacy.budget import BudgetExceeded, PrivacyRefused

    e = BudgetExceeded(dataset="users", release="job/r", needed=0.5, spent=0.75, budget=1.0,
                       window_start=date(2026, 1, 1), window_end=date(2026, 1, 30), window_days=30)
    assert isinstance(e, PrivacyRefused)
    assert (e.dataset, e.release, e.needed, e.spent, e.budget) == ("users", "job/r", 0.5, 0.75, 1.0)
    assert (e.window_start, e.window_end, e.window_days) == (date(2026, 1, 1), date(2026, 1, 30), 30)
    assert str(e) == (
        "privacy budget of dataset 'users' would be exceeded: release 'job/r' needs ε=0.5, but the window "
        "2026-01-01..2026-01-30 has already spent ε=0.75 of its budget ε=1 (left: 0.25). Nothing was spent and "
        "the last good numbers are kept. To publish: wait until older releases leave the 30-day window, lower "
        "this release's epsilon, or (a policy decision) raise privacy_budgets.users.epsilon in the settings and "
        "record it with `nightshift privacy raise-budget users`.")
    over = BudgetExceeded(dataset="d", release="r", needed=1.0, spent=2.0, budget=1.5, window_start=date(2026, 1, 1),
                          window_end=date(2026, 1, 1), window_days=1)
    assert "(left: 0)" in str(over)


# -- keys: the declaration, the threshold mechanism, folding into OTHER ----------------------------------


def _selection(**kw):
    from nightshift.privacy.keys import KeySelection

    base = dict(name="sel", dataset="users", unit="u", column="region", public_list="regions", max_keys_per_unit=2,
                epsilon=0.5, delta=1e-6)
    return KeySelection(**{**base, **kw})


@pytest.mark.parametrize(("kw", "message"), [
    ({"epsilon": 0.0}, "key selection 'sel': needs epsilon > 0 and 0 < delta < 1"),
    ({"epsilon": -1.0, "delta": 0.5}, "key selection 'sel': needs epsilon > 0 and 0 < delta < 1"),
    ({"delta": 0.0}, "needs epsilon > 0 and 0 < delta < 1"),
    ({"delta": 1.0}, "needs epsilon > 0 and 0 < delta < 1"),
    ({"delta": 1.5}, "needs epsilon > 0 and 0 < delta < 1"),
    ({"max_keys_per_unit": 0}, "key selection 'sel': max_keys_per_unit must be an integer >= 1"),
    ({"max_keys_per_unit": 1.5}, "key selection 'sel': max_keys_per_unit must be an integer >= 1"),
])
def test_a_bad_key_selection_is_refused_with_what_is_wrong(kw, message):
    with pytest.raises(ValueError) as err:
        _selection(**kw).validate()
    assert message in str(err.value)


def test_a_key_selection_maps_k_values_per_unit_to_its_scale_and_distance():
    _selection(max_keys_per_unit=1, delta=0.999).validate()
    _selection(max_keys_per_unit=3.0, delta=1e-12).validate()
    sel = _selection(max_keys_per_unit=3, epsilon=0.25)
    assert sel.scale == pytest.approx(12.0) and sel.distance == (3, 3, 1)
    assert _selection(max_keys_per_unit=2.0).distance == (2, 2, 1) and type(_selection(max_keys_per_unit=2.0)
                                                                            .distance[0]) is int


@pytest.mark.parametrize("kw", [{}, {"max_keys_per_unit": 1, "epsilon": 2.0, "delta": 1e-3}])
def test_the_threshold_is_the_smallest_whose_delta_fits(kw):
    from nightshift.privacy import keys

    sel = _selection(**kw)
    at = keys.threshold(sel)
    eps, delta = keys.privacy_loss(sel, at)
    assert type(at) is int and eps == pytest.approx(sel.epsilon) and 0 < delta <= sel.delta
    assert keys.privacy_loss(sel, at - 1)[1] > sel.delta
    # the threshold grows with the scale: log(1/δ)·scale, give or take the sensitivity
    assert sel.scale * math.log(1 / sel.delta) / 2 < at < 2 * sel.scale * math.log(1 / sel.delta) + 10


def test_selection_keeps_values_far_above_the_threshold_with_noisy_counts_and_drops_the_rest():
    from nightshift.privacy import keys

    sel = _selection(max_keys_per_unit=1, epsilon=1.0, delta=1e-6)  # scale 1
    at = keys.threshold(sel)
    kept = keys.select(sel, {"north": at + 200, 7: at + 100, "rare": 1, "none": 0, "neg": -5}, at)
    assert set(kept) == {"north", "7"}  # 1 unit is 199+ scales below the threshold: P(kept) ≈ e^-199
    assert all(type(v) is int for v in kept.values())
    assert abs(kept["north"] - (at + 200)) <= 40 and abs(kept["7"] - (at + 100)) <= 40  # |Z| > 40: ~e^-41
    assert keys.select(sel, {"a": 0, "b": -3}, at) == {}


def test_selection_gives_every_value_held_by_someone_its_chance_and_none_to_absent_ones():
    from nightshift.privacy import keys

    sel = _selection(max_keys_per_unit=1, epsilon=1.0)  # scale 1; a low threshold of 2, passed in
    ones = keys.select(sel, {f"v{i}": 1 for i in range(200)}, 2)
    # each count of 1 clears 2 with P(Z >= 1) = e^-1/(1+e^-1) ≈ 0.27: none of 200 would happen w.p. ~1e-27
    assert 20 < len(ones) < 100
    zeros = keys.select(sel, {**{f"z{i}": 0 for i in range(200)}, "x": 500}, 2)
    assert set(zeros) == {"x"}  # a count of 0 is nobody's value: never a candidate (each would clear w.p. 0.1)


def test_values_outside_the_list_fold_into_other_and_other_is_listed_once_last():
    from nightshift.privacy.keys import OTHER, fold_other, with_other

    frame = pl.DataFrame({"region": ["north", "south", None, "atlantis", "1"], "n": [1, 2, 3, 4, 5]})
    out = fold_other(frame, "region", ["north", 1])
    assert out["region"].to_list() == ["north", OTHER, OTHER, OTHER, "1"] and out["n"].to_list() == [1, 2, 3, 4, 5]
    assert out.columns == ["region", "n"]
    nums = fold_other(pl.DataFrame({"k": [1, 2, None]}), "k", [2])
    assert nums["k"].to_list() == [OTHER, "2", OTHER]
    assert with_other(["b", "a", 3, "b", OTHER]) == ["b", "a", "3", OTHER]
    assert with_other([]) == [OTHER] and OTHER == "other"


# -- bounding: the grid, the prepared input, the bounded true aggregates ---------------------------------


def test_the_key_grid_is_the_cross_product_in_declared_order():
    from nightshift.privacy.bounding import CELL, key_grid

    grid = key_grid(_release(keys={"g": ["b", "a"], "h": [2, 1, 3]}))
    assert grid.columns == [CELL, "g", "h"] and CELL == "_cell"
    assert grid.rows() == [(0, "b", 2), (1, "b", 1), (2, "b", 3), (3, "a", 2), (4, "a", 1), (5, "a", 3)]
    assert grid.schema[CELL] == pl.Int32
    alone = key_grid(_release(keys={}))
    assert alone.rows() == [(0,)] and alone.columns == [CELL] and alone.schema[CELL] == pl.Int32


def test_prepare_keeps_declared_cells_and_turns_values_into_integer_units():
    from nightshift.privacy.bounding import key_grid, prepare

    rel = _release(keys={"h": [1, 2]}, measures=[Sum("s", "cents", 0, 100), Sum("t", "cents", -5, 5),
                                                  Mean("kwh", "kwh", 0.0, 9.0, resolution=0.5)])
    frame = pl.DataFrame({"u": [1, 1, None, 2, 3, 4], "h": ["1", "2", "1", "x", None, "2"],
                          "cents": [7, None, 9, 10, 11, 12], "kwh": [1.26, 2.0, 3.0, 4.0, 5.0, None],
                          "other": ["a"] * 6})
    out = prepare(rel, frame, key_grid(rel))
    assert out.columns == ["unit", "cell", "vals"]
    # unit null, key "x" (not declared) and key null drop out; a missing value is 0; 1.26 kWh = 2.52 half-units → 3
    assert sorted(out.rows()) == [(1, 0, [7, 7, 3]), (1, 1, [0, 0, 4]), (4, 1, [12, 12, 0])]
    assert out.schema["vals"] == pl.List(pl.Int64)
    floats = prepare(_release(keys={}, measures=[Sum("s", "v", 0, 10)]), pl.DataFrame({"u": [1, 2], "v": [2.6, -0.4]}),
                     key_grid(_release(keys={})))
    assert floats.rows() == [(1, 0, [3]), (2, 0, [0])]  # resolution 1 on floats: rounded
    assert floats.schema["cell"] == pl.Int32
    counts = prepare(_release(keys={}), pl.DataFrame({"u": [5, 6]}), key_grid(_release(keys={})))
    assert counts.rows() == [(5, 0, []), (6, 0, [])] and counts.schema["vals"] == pl.List(pl.Int64)


def test_prepare_names_the_missing_columns_and_the_ones_there_are():
    from nightshift.privacy.bounding import key_grid, prepare

    rel = _release(keys={"g": ["a"]}, measures=[Sum("s", "cents", 0, 1)])
    with pytest.raises(ValueError) as err:
        prepare(rel, pl.DataFrame({"u": [1], "x": [2]}), key_grid(rel))
    assert str(err.value) == "release 'r': the frame has no column(s) g, cents (it has u, x)"


def test_bounded_aggregates_count_sum_and_clip_every_declared_cell():
    import duckdb

    from nightshift.privacy.bounding import bound_and_aggregate, key_grid, prepare

    rev, avg, w = Sum("rev", "cents", -10, 100), Mean("avg", "cents", -10, 100), Sum("w", "w", 2, 3)
    rel = _release(keys={"g": ["a", "b", "c"]}, measures=[Count("n"), Count("d", distinct=True), rev, avg, w],
                   max_rows_per_unit=3)
    frame = pl.DataFrame({"u": [1, 1, 1, 2, 2, 3], "g": ["a", "a", "b", "a", "b", "b"],
                          "cents": [500, -50, 40, 20, 30, 7], "w": [0, 9, 2, 3, 1, 5]})
    cur = duckdb.connect()
    grid = key_grid(rel)
    t = bound_and_aggregate(cur, rel, prepare(rel, frame, grid), grid.height, salt="job/r")
    assert list(t.vectors) == ["rows", "units", "sum:cents:-10:100:1.0", "sum:w:2:3:1.0"]
    assert t.vectors["rows"] == [3, 3, 0]  # every unit has at most K = 3 rows: all kept; c has none
    assert t.vectors["units"] == [2, 3, 0]
    assert t.vectors["sum:cents:-10:100:1.0"] == [100 - 10 + 20, 40 + 30 + 7, 0]  # clipped to [-10, 100]
    assert t.vectors["sum:w:2:3:1.0"] == [2 + 3 + 3, 2 + 2 + 3, 0]  # clipped to [2, 3]
    n_rows, _, n_units, _ = t.fingerprint.split(":")
    assert (n_rows, n_units) == ("6", "5")
    # nothing is left behind in the connection
    assert cur.sql("select count(*) from duckdb_tables() where table_name like '_privacy%'").fetchall() == [(0,)]
    with pytest.raises(duckdb.Error):
        cur.sql("select * from _privacy_input")
    # the same input gives the same fingerprint; no salt is the empty salt
    again = bound_and_aggregate(cur, rel, prepare(rel, frame, grid), grid.height, salt="job/r")
    assert again == t
    crowd = pl.DataFrame({"u": [1] * 40, "g": ["a", "b"] * 20, "cents": list(range(40)), "w": [2] * 40})
    unsalted = bound_and_aggregate(cur, rel, prepare(rel, crowd, grid), grid.height)
    empty_salt = bound_and_aggregate(cur, rel, prepare(rel, crowd, grid), grid.height, salt="")
    assert unsalted == empty_salt and unsalted.vectors["rows"][0] + unsalted.vectors["rows"][1] == 3
    salted = bound_and_aggregate(cur, rel, prepare(rel, crowd, grid), grid.height, salt="job/r")
    assert salted.fingerprint != unsalted.fingerprint  # which K of a unit's rows are kept depends on the salt


# -- ledger: windows, charges, what is stored and read back -------------------------------------------------


def _charge_entry(seq: int, day: str, eps: float, dataset: str = "users", **more):
    return _entry(seq, kind="charge", run_date=day, epsilon=eps, dataset=dataset, **more)


def test_the_window_use_is_the_fullest_window_that_holds_the_run_date():
    from datetime import date

    from nightshift.privacy.ledger import WindowUse, window_use

    entries = [
        _charge_entry(0, "2026-02-28", 5.5),  # 10 days before: no 10-day window holds both
        _charge_entry(1, "2026-03-01", 1.0, delta=0.25),  # 9 days before: the trailing window's first day
        _charge_entry(2, "2026-03-15", 2.0, delta=0.5),
        _charge_entry(3, "2026-03-19", 4.0),  # no delta recorded: 0
        _charge_entry(4, "2026-03-20", 8.0),  # 10 days after
        _charge_entry(5, "2026-03-10", 100.0, dataset="households"),
        _entry(6, kind="budget", dataset="users", epsilon=1.0, window_days=10),
    ]
    use = window_use(entries, "users", date(2026, 3, 10), 10)
    assert use == WindowUse(date(2026, 3, 10), date(2026, 3, 19), 6.0, 2, 0.5)
    trailing = window_use(entries[:2], "users", date(2026, 3, 10), 10)
    assert trailing == WindowUse(date(2026, 3, 1), date(2026, 3, 10), 1.0, 1, 0.25)
    assert window_use([], "users", date(2026, 3, 10), 10) == WindowUse(date(2026, 3, 1), date(2026, 3, 10), 0.0, 0)
    # a tie goes to the trailing window (the one people expect to see)
    tie = [_charge_entry(0, "2026-03-07", 1.0), _charge_entry(1, "2026-03-12", 1.0)]
    assert window_use(tie, "users", date(2026, 3, 10), 5).window_start == date(2026, 3, 6)
    assert window_use(tie, "users", date(2026, 3, 8), 5) == WindowUse(date(2026, 3, 4), date(2026, 3, 8), 1.0, 1)
    # a one-day window is the run date alone
    assert window_use(tie, "users", date(2026, 3, 12), 1) == WindowUse(date(2026, 3, 12), date(2026, 3, 12), 1.0, 1)


def _store(tmp_path):
    from nightshift.privacy.store import Store

    return Store.for_home(tmp_path / "data", tmp_path / "reports")


def _charge(rid: str, day: str, eps: float, *, name: str = "r", job: str = "job", limit=(1.0, 30), delta: float = 0.0):
    from datetime import date

    from nightshift.privacy.budget import Limit
    from nightshift.privacy.ledger import Charge

    return Charge(rid, job, name, date.fromisoformat(day), f"hash-{rid}", "users", "user_id", eps, Limit(*limit),
                  delta=delta)


def _table(v: int) -> pl.DataFrame:
    return pl.DataFrame({"g": ["a"], "n": [v]})


def test_a_commit_records_the_charge_and_its_table_and_serves_it_again_for_free(tmp_path):
    from datetime import date

    from nightshift.privacy import ledger

    store = _store(tmp_path)
    assert ledger.has_tables(store) is False and ledger.find(store, "r1") is None
    assert ledger.ledger_rows(store).schema == {
        "run_date": pl.Date, "dataset": pl.String, "privacy_unit": pl.String, "job": pl.String,
        "release_name": pl.String, "epsilon": pl.Float64, "delta": pl.Float64, "release_id": pl.String,
        "charged_at": pl.String}
    stored, charged = ledger.commit(store, _charge("r1", "2026-03-01", 0.25, delta=1e-7), _table(5), {"m": 1})
    assert charged is True and ledger.has_tables(store) is True
    assert (stored.release_id, stored.run_date, stored.epsilon, stored.meta) == ("r1", date(2026, 3, 1), 0.25, {"m": 1})
    assert stored.table.equals(_table(5))
    budget, charge = store.verify()
    assert {k: v for k, v in budget.data.items() if k not in ("at", "seq", "prev")} == {
        "kind": "budget", "dataset": "users", "epsilon": 1.0, "window_days": 30, "by": "settings",
        "why": "the first release of this dataset"}
    d = charge.data
    assert {k: d[k] for k in ("kind", "release_id", "job", "release", "run_date", "dataset", "unit", "epsilon",
                              "delta", "budget", "window_days", "input_hash", "meta")} == {
        "kind": "charge", "release_id": "r1", "job": "job", "release": "r", "run_date": "2026-03-01",
        "dataset": "users", "unit": "user_id", "epsilon": 0.25, "delta": 1e-7, "budget": 1.0, "window_days": 30,
        "input_hash": "hash-r1", "meta": {"m": 1}}
    assert d["file"] == "releases/r1.arrow" and d["at"] == budget.data["at"] and len(d["at"]) == 19
    # the same release id again: served from the store, nothing charged, the new table ignored
    again, charged = ledger.commit(store, _charge("r1", "2026-03-01", 0.25), _table(99), {"m": 2})
    assert charged is False and again.table.equals(_table(5)) and again.meta == {"m": 1}
    assert len(store.verify()) == 2
    found = ledger.find(store, "r1")
    assert (found.release_id, found.epsilon, found.meta) == ("r1", 0.25, {"m": 1}) and found.table.equals(_table(5))
    rows = ledger.ledger_rows(store)
    assert rows.rows() == [(date(2026, 3, 1), "users", "user_id", "job", "r", 0.25, 1e-7, "r1", d["at"])]


def test_a_commit_refuses_past_the_budget_but_fits_it_exactly(tmp_path):
    from datetime import date

    from nightshift.privacy import ledger
    from nightshift.privacy.budget import BudgetExceeded, BudgetRaiseRefused

    store = _store(tmp_path)
    ledger.commit(store, _charge("a", "2026-03-01", 0.5), _table(1), {})
    ledger.commit(store, _charge("b", "2026-03-02", 0.5), _table(2), {})  # exactly the budget: fits
    with pytest.raises(BudgetExceeded) as err:
        ledger.commit(store, _charge("c", "2026-03-03", 0.01, name="late", job="other"), _table(3), {})
    e = err.value
    assert (e.release, e.needed, e.spent, e.budget, e.window_days) == ("other/late", 0.01, 1.0, 1.0, 30)
    assert (e.window_start, e.window_end) == (date(2026, 2, 2), date(2026, 3, 3))
    assert len(store.verify()) == 3  # the budget and two charges: nothing written for the refusal
    # a raise is refused before anything is written; a lowering is recorded even when the charge is refused
    with pytest.raises(BudgetRaiseRefused):
        ledger.commit(store, _charge("d", "2026-03-03", 0.01, limit=(2.0, 30)), _table(4), {})
    assert len(store.verify()) == 3
    with pytest.raises(BudgetExceeded):
        ledger.commit(store, _charge("e", "2026-03-03", 0.01, limit=(0.9, 30)), _table(5), {})
    assert [x.data["kind"] for x in store.verify()] == ["budget", "charge", "charge", "budget"]
    assert store.verify()[-1].data["why"] == "the settings lowered the budget"
    # checked against the budget in force, in the fullest window
    entries = store.verify()
    assert ledger.check(entries, _charge("f", "2026-04-01", 0.9, limit=(0.9, 30))).epsilon == 0.9
    with pytest.raises(BudgetExceeded):
        ledger.check(entries, _charge("f", "2026-03-31", 0.9, limit=(0.9, 30)))  # 03-02 is 29 days before


def test_the_last_good_and_nightly_releases_are_the_newest_per_night(tmp_path):
    from datetime import date

    from nightshift.privacy import ledger

    store = _store(tmp_path)
    for rid, day, v, name in [("a1", "2026-03-01", 1, "r"), ("b1", "2026-03-02", 2, "r"), ("b2", "2026-03-02", 3, "r"),
                              ("x", "2026-03-02", 9, "other"), ("c1", "2026-03-04", 4, "r")]:
        ledger.commit(store, _charge(rid, day, 0.01, name=name, limit=(10.0, 30)), _table(v), {"v": v})
    assert ledger.last_good(store, "job", "r", date(2026, 2, 28)) is None
    assert ledger.last_good(store, "job", "r", date(2026, 3, 1)).release_id == "a1"
    newest = ledger.last_good(store, "job", "r", date(2026, 3, 3))
    assert (newest.release_id, newest.run_date, newest.meta) == ("b2", date(2026, 3, 2), {"v": 3})
    assert ledger.last_good(store, "job", "r", date(2026, 3, 4)).release_id == "c1"
    assert ledger.last_good(store, "elsewhere", "r", date(2026, 3, 4)) is None
    nights = ledger.nightly(store, "job", "r", date(2026, 3, 1), date(2026, 3, 3))
    assert [(d, t["n"][0]) for d, t in nights] == [(date(2026, 3, 1), 1), (date(2026, 3, 2), 3)]
    assert [d for d, _ in ledger.nightly(store, "job", "r", date(2026, 3, 2), date(2026, 3, 4))] == [
        date(2026, 3, 2), date(2026, 3, 4)]
    assert ledger.nightly(store, "job", "other", date(2026, 3, 3), date(2026, 3, 9)) == []


def test_a_cursor_finds_the_store_beside_its_warehouse_file(tmp_path):
    import duckdb

    from nightshift.privacy import ledger

    store = _store(tmp_path)
    assert ledger.store_of(store) is store
    (tmp_path / "data").mkdir()
    with duckdb.connect(str(tmp_path / "data" / "warehouse.duckdb")) as con:
        found = ledger.store_of(con)
    assert found.folder == (tmp_path / "data" / "privacy").resolve()
    assert found.anchor_path == (tmp_path / "reports" / ".privacy-anchor.json").resolve()
    with duckdb.connect() as con, pytest.raises(ValueError) as err:
        ledger.store_of(con)
    assert str(err.value) == "the privacy ledger lives beside a warehouse file; this DuckDB connection has none"


# -- store: the chained file, the anchor, the stored tables -------------------------------------------------


def test_appended_lines_are_compact_sorted_and_chained_and_the_anchor_follows(tmp_path):
    import json
    from datetime import date

    from nightshift.privacy.store import GENESIS, Store, sha256

    store = _store(tmp_path)
    assert store.folder == tmp_path / "data" / "privacy" and store.ledger_path == store.folder / "ledger.jsonl"
    assert store.anchor_path == tmp_path / "reports" / ".privacy-anchor.json"
    assert store.entries() == [] and not store.folder.exists()  # a reader creates nothing
    assert store.anchor() is None and store.anchor_text() == "absent"
    with store.writing() as entries:
        assert entries == [] and store.folder.is_dir()
        new = store.append(entries, [{"kind": "x", "a": "x"}, {"kind": "note", "when": date(2026, 1, 2)}])
    raw = store.ledger_path.read_bytes()
    first = b'{"a":"x","kind":"x","prev":"' + GENESIS.encode() + b'","seq":0}'
    assert raw.split(b"\n")[0] == first and raw.endswith(b"\n") and raw.count(b"\n") == 2
    second = raw.split(b"\n")[1]
    assert json.loads(second) == {"kind": "note", "when": "2026-01-02", "seq": 1, "prev": sha256(first)}
    assert [(e.seq, e.hash) for e in new] == [(0, sha256(first)), (1, sha256(second))]
    assert new[1].data == {"kind": "note", "when": date(2026, 1, 2), "seq": 1,
                           "prev": sha256(first)}
    assert json.loads(store.anchor_path.read_text()) == {"entries": 2, "head": sha256(second),
                                                         "ledger": str(store.ledger_path)}
    assert store.anchor_text() == f"2 entries, head {sha256(second)[:16]}…"
    read = Store(store.folder, store.anchor_path).entries()
    assert [(e.seq, e.hash, e.data["seq"]) for e in read] == [(0, sha256(first), 0), (1, sha256(second), 1)]
    with store.writing() as entries:
        more = store.append(entries, [{"kind": "x", "c": 3}])
    assert more[-1].seq == 2 and more[-1].data["prev"] == sha256(second) and len(store.entries()) == 3


def test_a_new_ledger_file_has_its_folder_synced(tmp_path, monkeypatch):
    from nightshift.privacy import store as store_mod

    synced = []
    monkeypatch.setattr(store_mod, "fsync_dir", lambda path: synced.append(path))
    store = _store(tmp_path)
    with store.writing() as entries:
        entries = store.append(entries, [{"kind": "x"}])
        store.append(entries, [{"kind": "y"}])
    assert synced == [store.folder]  # the first append created the file; the second did not


def test_stored_tables_round_trip_and_are_checked_by_size_then_hash(tmp_path):
    from nightshift.privacy.store import LedgerBroken, sha256

    store = _store(tmp_path)
    table = pl.DataFrame({"g": ["a", "b"], "n": [1, 2]})
    with store.writing() as entries:
        saved = store.save_table("rid", table)
        entries = store.append(entries, [{"kind": "charge", **saved}])
    path = store.folder / "releases" / "rid.arrow"
    assert saved == {"file": "releases/rid.arrow", "sha256": sha256(path.read_bytes()), "bytes": path.stat().st_size}
    (entry,) = store.verify()
    assert store.table(entry).equals(table)
    data = path.read_bytes()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # the same size: only the full check sees it
    assert len(store.entries()) == 1
    with pytest.raises(LedgerBroken) as err:
        store.verify()
    assert f"the stored release {path} of entry 0 does not match its hash" in str(err.value)
    path.write_bytes(data + b"x")  # another size: every read sees it
    with pytest.raises(LedgerBroken, match="does not match its hash"):
        store.entries()
    path.unlink()
    with pytest.raises(LedgerBroken) as err:
        store.entries()
    assert f"the stored release {path} of entry 0 is missing" in str(err.value)


def test_a_broken_ledger_says_where_what_and_how_to_restore(tmp_path):
    from nightshift.privacy.store import LedgerBroken

    store = _store(tmp_path)
    with store.writing() as entries:
        entries = store.append(entries, [{"kind": "x", "i": 0}, {"kind": "x", "i": 1}])
    head = entries[-1].hash
    good = store.ledger_path.read_bytes()
    lines = good.split(b"\n")

    def broken() -> str:
        with pytest.raises(LedgerBroken) as err:
            store.entries()
        return str(err.value)

    store.ledger_path.write_bytes(lines[0] + b"\nnot json\n")
    msg = broken()
    assert msg.startswith(f"the privacy ledger in {store.folder} cannot be trusted: entry 1 of {store.ledger_path} "
                          "is not valid JSON. Nothing was charged or released. Restore the folder ")
    assert (f"{store.folder} (ledger.jsonl and releases/) from a backup, then run `nightshift privacy verify`: the "
            f"right backup verifies and reaches the anchor {store.anchor_path} (2 entries, head {head[:16]}…). Never "
            "delete the anchor to get past this: that forgets the budget already spent (see docs/PRIVACY.md).") in msg
    store.ledger_path.write_bytes(lines[1] + b"\n" + lines[0] + b"\n")
    assert ("cannot be trusted: the hash chain breaks at entry 0 (an entry was edited, removed or reordered)"
            in broken())
    store.ledger_path.write_bytes(good + b'{"kind"')
    assert (f"{store.ledger_path} ends in an incomplete entry after byte {len(good)}: the file was cut, or a charge "
            "was interrupted while being written. If the anchor matches its 2 whole entries, that charge was never "
            f"shown and `truncate -s {len(good)} {store.ledger_path}` drops it") in broken()
    store.ledger_path.write_bytes(lines[0] + b"\n")
    assert ("the ledger has 1 entries but the anchor records 2: releases were made and charged here before"
            in broken())
    store.ledger_path.unlink()
    assert "the ledger is missing but the anchor records 2" in broken()
    store.ledger_path.write_bytes(lines[0] + b"\n" + lines[1] + b"\n" + lines[0].replace(b'"seq":0', b'"seq":2')
                                  .replace(b'"prev":"' + b"0" * 64, b'"prev":"' + head.encode()) + b"\n")
    assert len(store.entries()) == 3  # more entries than the anchor: appended after it, still chained
    store.ledger_path.write_bytes(good)
    store.anchor_path.write_text('{"entries": 2, "head": "' + "f" * 64 + '"}')
    assert "entry 1 does not match the anchor's head hash (the ledger was replaced or edited)" in broken()
    store.anchor_path.write_text('{"entries": 0, "head": "none"}')
    assert len(store.entries()) == 2  # an anchor of no entries asks nothing
    store.anchor_path.write_text("{not json")
    assert store.anchor_text() == "unreadable"
    assert f"the anchor {store.anchor_path} is not valid JSON" in broken()


# -- readability: cells a night's releases publish, and how many read through their noise -------------------


def test_a_night_counts_the_cells_of_its_newest_release_per_job_and_name(tmp_path):
    from datetime import date

    from nightshift.privacy import ledger, readability

    store = _store(tmp_path)
    empty = readability.night(store, date(2026, 3, 2))
    assert empty.height == 0 and empty.schema == {"job": pl.String, "release": pl.String, "epsilon": pl.Float64,
                                                  "delta": pl.Float64, "cells": pl.Int64, "unreadable": pl.Int64}
    old = pl.DataFrame({"g": ["a", "b"], "n": [100, 1], "n_moe": [5, 5]})
    new = pl.DataFrame({"g": ["a", "b", "c"], "n": [100, 4, 6], "n_moe": [5, 5, 5], "m": [1.0, None, -9.0],
                        "m_moe": [0.5, None, 9.0]})
    for rid, day, table, name, job, delta in [("x1", "2026-03-02", old, "r", "job", 0.0),
                                              ("x2", "2026-03-02", new, "r", "job", 1e-7),
                                              ("y", "2026-03-01", new, "r", "job", 0.0),
                                              ("z", "2026-03-02", old, "a", "zjob", 0.0),
                                              ("w", "2026-03-02", old, "b", "job", 0.0)]:
        ledger.commit(store, _charge(rid, day, 0.25, name=name, job=job, limit=(10.0, 30), delta=delta), table, {})
    got = readability.night(store, date(2026, 3, 2))
    assert got.rows() == [("job", "b", 0.25, 0.0, 2, 1), ("job", "r", 0.25, 1e-7, 6, 3), ("zjob", "a", 0.25, 0.0, 2, 1)]
    assert readability.count_cells(pl.DataFrame({"n": [3, -3, 4], "n_moe": [3, 3, 3]})) == (3, 2)
    assert readability.count_cells(pl.DataFrame({"n_moe_x": [1], "a": [2]})) == (0, 0)


# -- legacy: adopting the old in-warehouse ledger once ---------------------------------------------------------


def _old_ledger(con, rows: list[tuple]) -> None:
    con.execute("create table _privacy_ledger (release_id varchar, job varchar, release_name varchar, run_date date, "
                "dataset varchar, privacy_unit varchar, window_days integer, epsilon double, budget double, "
                "charged_at timestamp)")
    con.execute("create table _privacy_releases (release_id varchar, input_hash varchar, meta json, payload blob)")
    for rid, day, dataset, eps, budget, window, at, n in rows:
        con.execute("insert into _privacy_ledger values (?, 'job', ?, ?, ?, 'user_id', ?, ?, ?, ?)",
                    [rid, f"rel_{rid}", day, dataset, window, eps, budget, at])
        con.execute("insert into _privacy_releases values (?, ?, ?, ?)",
                    [rid, f"h_{rid}", json.dumps({"n": n}), _table(n).write_ipc(None).getvalue()])


def test_the_old_ledger_is_copied_once_oldest_first_with_the_last_budget_in_force(tmp_path):
    from datetime import date, datetime

    import duckdb

    from nightshift.privacy import legacy

    store = _store(tmp_path)
    con = duckdb.connect()
    assert legacy.adopt(store, con) == 0  # no old ledger
    _old_ledger(con, [])
    assert legacy.adopt(store, con) == 0 and not store.folder.exists()  # an empty old ledger: nothing to adopt
    con.execute("drop table _privacy_ledger; drop table _privacy_releases")
    _old_ledger(con, [("b", date(2026, 3, 2), "users", 0.5, 2.0, 30, datetime(2026, 3, 2, 4), 2),
                      ("a", date(2026, 3, 1), "users", 0.25, 3.0, 60, datetime(2026, 3, 1, 4), 1),
                      ("c", date(2026, 3, 1), "households", 0.125, 1.0, 365, datetime(2026, 3, 1, 5), 3)])
    assert legacy.adopt(store, con) == 3
    entries = store.verify()
    data = [{k: v for k, v in e.data.items() if k not in ("seq", "prev", "file", "sha256", "bytes")} for e in entries]
    assert data == [
        {"kind": "budget", "dataset": "users", "epsilon": 2.0, "window_days": 30, "by": "warehouse ledger",
         "why": "adopted from _privacy_ledger", "at": "2026-03-02 04:00:00"},
        {"kind": "budget", "dataset": "households", "epsilon": 1.0, "window_days": 365, "by": "warehouse ledger",
         "why": "adopted from _privacy_ledger", "at": "2026-03-01 05:00:00"},
        {"kind": "charge", "release_id": "a", "job": "job", "release": "rel_a", "run_date": "2026-03-01",
         "dataset": "users", "unit": "user_id", "epsilon": 0.25, "budget": 3.0, "window_days": 60,
         "input_hash": "h_a", "meta": {"n": 1}, "at": "2026-03-01 04:00:00"},
        {"kind": "charge", "release_id": "c", "job": "job", "release": "rel_c", "run_date": "2026-03-01",
         "dataset": "households", "unit": "user_id", "epsilon": 0.125, "budget": 1.0, "window_days": 365,
         "input_hash": "h_c", "meta": {"n": 3}, "at": "2026-03-01 05:00:00"},
        {"kind": "charge", "release_id": "b", "job": "job", "release": "rel_b", "run_date": "2026-03-02",
         "dataset": "users", "unit": "user_id", "epsilon": 0.5, "budget": 2.0, "window_days": 30,
         "input_hash": "h_b", "meta": {"n": 2}, "at": "2026-03-02 04:00:00"},
    ]
    assert [store.table(e)["n"][0] for e in entries[2:]] == [1, 3, 2]
    assert legacy.adopt(store, con) == 0 and len(store.verify()) == 5  # once only
    store.anchor_path.unlink()
    assert legacy.adopt(store, con) == 0  # the file ledger has begun, anchor or not
    other = _store(tmp_path / "other")
    other.anchor_path.parent.mkdir(parents=True)
    other.anchor_path.write_text('{"entries": 0, "head": "none"}')
    assert legacy.adopt(other, con) == 0 and not other.ledger_path.exists()  # an anchor alone: restore first


def test_adoption_backs_off_when_another_process_adopted_first(tmp_path, monkeypatch):
    from datetime import date, datetime

    import duckdb

    from nightshift.privacy import legacy

    store = _store(tmp_path)
    con = duckdb.connect()
    _old_ledger(con, [("a", date(2026, 3, 1), "users", 0.25, 3.0, 60, datetime(2026, 3, 1, 4), 1)])
    from contextlib import contextmanager

    @contextmanager
    def writing():  # what the lock shows when another process adopted between the checks and the lock
        yield [_entry(0, kind="budget", dataset="users", epsilon=1.0, window_days=1)]

    monkeypatch.setattr(store, "writing", writing)
    assert legacy.adopt(store, con) == 0
    assert not store.ledger_path.exists() and not (store.folder / "releases").exists()  # nothing written twice


def test_charges_without_a_recorded_delta_read_as_delta_zero(tmp_path):
    from datetime import date, datetime

    import duckdb

    from nightshift.privacy import ledger, legacy, readability

    store = _store(tmp_path)
    con = duckdb.connect()
    _old_ledger(con, [("a", date(2026, 3, 1), "users", 0.25, 3.0, 60, datetime(2026, 3, 1, 4), 1),
                      ("b", date(2026, 3, 1), "users", 0.5, 3.0, 60, datetime(2026, 3, 1, 5), 2)])
    assert legacy.adopt(store, con) == 2
    assert all("delta" not in e.data for e in store.verify())  # the old ledger had no δ
    rows = ledger.ledger_rows(store)
    assert rows["delta"].to_list() == [0.0, 0.0]
    assert rows["charged_at"].to_list() == ["2026-03-01 04:00:00", "2026-03-01 05:00:00"]
    assert readability.night(store, date(2026, 3, 1))["delta"].to_list() == [0.0, 0.0]
    assert ledger.window_use(store.verify(), "users", date(2026, 3, 1), 60).delta_spent == 0.0


def test_a_declared_delta_met_exactly_is_met():
    from nightshift.privacy import keys

    at = keys.threshold(_selection())
    _, exact = keys.privacy_loss(_selection(), at)
    assert exact <= 1e-6 and keys.threshold(_selection(delta=exact)) == at  # δ(at) = declared δ: at fits


def test_a_delta_so_large_that_the_lowest_threshold_meets_it_gives_that_threshold():
    from nightshift.privacy import keys

    # Before: OpenDP's binary_search refused ("the decision boundary ... is outside the bounds").
    for k, delta in ((1, 0.5), (3, 0.9)):
        sel = _selection(max_keys_per_unit=k, epsilon=1.0, delta=delta)
        assert keys.threshold(sel) == k and keys.privacy_loss(sel, k)[1] <= delta
    sel = _selection(max_keys_per_unit=1, epsilon=1.0, delta=0.2)  # δ(1) ≈ 0.27 > 0.2: the search goes on
    assert keys.threshold(sel) == 2


@pytest.mark.parametrize(("scale", "n"), [(3.0, 7), (10.0, 20), (1.0, 2)])
def test_a_margin_of_error_met_exactly_is_not_rounded_up(scale, n):
    from nightshift.privacy.noise import margin_of_error

    q = math.exp(-1 / scale)
    confidence = 1 - 2 * math.exp(-(n + 1) / scale) / (1 + q)  # P(|Z| > n) is exactly 1 - confidence
    assert margin_of_error(scale, confidence) == n


def test_integer_columns_are_divided_by_a_resolution_other_than_one():
    from nightshift.privacy.bounding import key_grid, prepare

    rel = _release(keys={}, measures=[Sum("half", "c", 0, 100, resolution=0.5), Sum("two", "c", 0, 100, resolution=2)])
    out = prepare(rel, pl.DataFrame({"u": [1, 2], "c": [3, 7]}), key_grid(_release(keys={})))
    assert out.rows() == [(1, 0, [6, 2]), (2, 0, [14, 4])]  # 3 / 0.5, 3 / 2 → 2; 7 / 0.5, 7 / 2 → 4


def test_check_refuses_a_raise_itself_and_lets_a_charge_fill_the_budget_to_the_tolerance(tmp_path):
    from nightshift.privacy import ledger
    from nightshift.privacy.budget import TOLERANCE, BudgetExceeded, BudgetRaiseRefused

    store = _store(tmp_path)
    ledger.commit(store, _charge("a", "2026-03-01", 0.5), _table(1), {})
    ledger.commit(store, _charge("b", "2026-03-02", 0.5), _table(2), {})
    entries = store.verify()
    with pytest.raises(BudgetRaiseRefused):  # the layer's early check refuses a raise before drawing noise
        ledger.check(entries, _charge("c", "2026-03-03", 0.01, limit=(2.0, 30)))
    assert ledger.check(entries, _charge("c", "2026-03-03", TOLERANCE)).epsilon == 1.0  # float slack, not budget
    with pytest.raises(BudgetExceeded):
        ledger.check(entries, _charge("c", "2026-03-03", 3 * TOLERANCE))


def test_an_edited_middle_entry_breaks_the_chain_at_the_next_one(tmp_path):
    from nightshift.privacy.store import LedgerBroken

    store = _store(tmp_path)
    with store.writing() as entries:
        store.append(entries, [{"kind": "x", "i": 0}, {"kind": "x", "i": 1}])
    lines = store.ledger_path.read_bytes().split(b"\n")
    # seq and prev of both entries untouched; the anchor's head (entry 1's hash) still matches
    store.ledger_path.write_bytes(lines[0].replace(b'"i":0', b'"i":7') + b"\n" + lines[1] + b"\n")
    with pytest.raises(LedgerBroken, match="the hash chain breaks at entry 1"):
        store.entries()


def test_the_folder_is_synced_when_the_ledger_file_is_created(tmp_path, monkeypatch):
    from nightshift.privacy import store as store_module

    synced = []
    monkeypatch.setattr(store_module, "fsync_dir", synced.append)
    store = _store(tmp_path)
    for i in range(2):
        with store.writing() as entries:
            store.append(entries, [{"kind": "x", "i": i}])
        assert synced == [store.folder]  # at the first append, when the new file's name had to reach the disk
