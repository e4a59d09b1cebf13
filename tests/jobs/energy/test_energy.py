"""Energy network: strategy selection (device list mocked), determinism for a seed on CPU, members trained
at once and averaged, the network without temperature, and its registry format."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
tf = pytest.importorskip("tensorflow")

from nightshift.jobs.energy import dataset, network  # noqa: E402


def test_no_gpu_picks_the_default_strategy(monkeypatch):
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])
    info = network.select_strategy()
    assert info.name == "default" and not info.mixed_precision
    assert info.strategy is tf.distribute.get_strategy()
    assert not isinstance(info.strategy, tf.distribute.MirroredStrategy)
    assert info.devices[0].startswith("CPU") and info.describe()["strategy"] == "default"


def test_listed_gpus_pick_mirrored_strategy_with_mixed_precision(monkeypatch):
    fake = [tf.config.PhysicalDevice(name=f"/physical_device:GPU:{i}", device_type="GPU") for i in range(2)]
    real = tf.config.list_physical_devices
    monkeypatch.setattr(tf.config, "list_physical_devices",
                        lambda kind=None: fake if kind == "GPU" else real(kind))
    info = network.select_strategy()
    assert isinstance(info.strategy, tf.distribute.MirroredStrategy)
    assert info.name == "mirrored" and info.mixed_precision
    assert info.devices == ["GPU: /physical_device:GPU:0", "GPU: /physical_device:GPU:1"]


def _windows(n: int, seed: int) -> dataset.Windows:
    """Synthetic windows: a daily cycle plus noise, so there is something to fit."""
    rng = np.random.default_rng(seed)
    t = np.arange(dataset.LOOKBACK + dataset.HORIZON)
    base = 1 + 0.3 * np.sin(2 * np.pi * t / 24)
    load = base + rng.normal(0, 0.05, (n, len(t)))
    past = np.zeros((n, dataset.LOOKBACK, len(dataset.PAST_FEATURES)), np.float32)
    past[:, :, 0] = load[:, :dataset.LOOKBACK]
    past[:, :, 1] = rng.normal(10, 5, (n, dataset.LOOKBACK))
    past[:, :, 2] = np.sin(2 * np.pi * t[:dataset.LOOKBACK] / 24)
    fut = np.zeros((n, dataset.HORIZON, len(dataset.FUTURE_FEATURES)), np.float32)
    fut[:, :, 0] = np.sin(2 * np.pi * t[dataset.LOOKBACK:] / 24)
    return dataset.Windows(past, fut, past[:, -dataset.HORIZON:, 0].copy(), load[:, dataset.LOOKBACK:].astype(np.float32),
                     np.ones(n), np.zeros(n, int), np.zeros(n, int))


def test_training_is_deterministic_for_a_seed_on_cpu():
    info = network.StrategyInfo(tf.distribute.get_strategy(), "default", ["CPU"], 1, False)
    train_w, val_w = _windows(128, 1), _windows(32, 2)
    runs = [network.train(train_w, val_w, info, seed=11, members=1, max_epochs=2, batch_size=64, width=8)
            for _ in range(2)]
    p0, p1 = (network.predict(r.model, val_w) for r in runs)
    np.testing.assert_array_equal(p0, p1)
    assert runs[0].history == runs[1].history and runs[0].epochs == 2
    # different seeds: different weights, different forecasts
    other = network.train(train_w, val_w, info, seed=12, members=1, max_epochs=1, batch_size=64, width=8)
    first = network.train(train_w, val_w, info, seed=11, members=1, max_epochs=1, batch_size=64, width=8)
    assert not np.array_equal(network.predict(other.model, val_w), network.predict(first.model, val_w))


def test_a_fit_leaves_no_traced_graph_behind():
    """TensorFlow keeps each custom gradient traced into a train step in a global registry, and with it
    the step's whole graph (tensorflow/tensorflow#97697): a backfill trained many nights in one process
    and kept every night's graphs. After a fit neither the entries nor the graphs remain."""
    import gc

    from tensorflow.python.framework import ops

    info = network.StrategyInfo(tf.distribute.get_strategy(), "default", ["CPU"], 1, False)
    train_w, val_w = _windows(64, 6), _windows(16, 7)

    def train_step_graphs() -> int:
        gc.collect()
        return sum(type(o).__name__ == "FuncGraph" and o.name == "one_step_on_data" for o in gc.get_objects())

    before, graphs = set(ops.gradient_registry._registry), train_step_graphs()
    r = network.train(train_w, val_w, info, seed=5, members=1, max_epochs=1, batch_size=32, width=8)
    assert network.predict(r.model, val_w).shape == (16, dataset.HORIZON)  # the trained model still forecasts
    del r
    assert [n for n in ops.gradient_registry._registry if n not in before] == []
    assert train_step_graphs() == graphs


def test_model_round_trips_through_the_keras_format(tmp_path):
    from nightshift.modeling import KERAS

    model = network.build_model(10.0, 5.0, width=8)
    rng = np.random.default_rng(0)  # the output layers start at zero: give every weight a value
    model.set_weights([w + rng.normal(0, 0.05, w.shape).astype(w.dtype) for w in model.get_weights()])
    w = _windows(8, 3)
    KERAS.save(model, tmp_path)
    assert (tmp_path / "model.keras").is_file()
    np.testing.assert_allclose(network.predict(KERAS.load(tmp_path), w), network.predict(model, w), rtol=1e-5, atol=1e-6)


def test_the_job_model_averages_networks_trained_at_once_from_different_seeds_and_round_trips(tmp_path):
    from nightshift.jobs.energy import candidates

    info = network.StrategyInfo(tf.distribute.get_strategy(), "default", ["CPU"], 1, False)
    train_w, val_w = _windows(128, 4), _windows(32, 5)
    r = network.train(train_w, val_w, info, seed=11, members=2, max_epochs=2, batch_size=64, width=8)
    members = [r.model.get_layer(f"energy_load_{k}") for k in (1, 2)]
    each = [network.predict(m, val_w) for m in members]
    assert not np.array_equal(each[0], each[1])  # different seeds, different networks
    np.testing.assert_allclose(network.predict(r.model, val_w), (each[0] + each[1]) / 2, rtol=1e-5, atol=1e-6)
    assert r.params["member_seeds"] == [11, 111] and r.epochs == 2 and len(r.history["validation"]) == 2
    candidates.NETWORK.save(candidates.Network(r.model), tmp_path)
    loaded = candidates.NETWORK.load(tmp_path)
    np.testing.assert_allclose(loaded.forecast(val_w), network.predict(r.model, val_w), rtol=1e-5, atol=1e-6)


def test_without_temperature_the_network_never_reads_it():
    train_w, val_w = _windows(128, 6), _windows(32, 7)
    for w in (train_w, val_w):  # the source had no temperature: NaN, not 0 °C
        w.past[:, :, 1] = np.nan
        w.future[:, :, [dataset.FUTURE_FEATURES.index(f) for f in ("felt_recent", "temp_day_mean",
                                                                   "felt_daytype_mean")]] = np.nan
    info = network.StrategyInfo(tf.distribute.get_strategy(), "default", ["CPU"], 1, False)
    r = network.train(train_w, val_w, info, seed=3, members=1, max_epochs=3, batch_size=32, width=8,
                      learning_rate=3e-3)
    pred = network.predict(r.model, val_w)
    assert np.isfinite(pred).all() and not r.params["temperature"]
    assert "degree_hinges" not in {layer.name for layer in r.model.layers}


def test_untrained_network_forecasts_the_profile_and_training_moves_it():
    from nightshift.jobs.energy.dataset import FUTURE_FEATURES

    train_w, val_w = _windows(128, 8), _windows(32, 9)
    for w in (train_w, val_w):  # a profile that misses the daily cycle: something to correct
        w.future[:, :, FUTURE_FEATURES.index("load_daytype_mean")] = 1.0
    model = network.build_model(10.0, 5.0, width=8)
    np.testing.assert_allclose(network.predict(model, val_w), 1.0, atol=1e-6)
    assert not model.get_layer("felt_now_and_week_mean").trainable  # the smoothing kernel is fixed
    info = network.StrategyInfo(tf.distribute.get_strategy(), "default", ["CPU"], 1, False)
    r = network.train(train_w, val_w, info, seed=3, members=1, max_epochs=4, batch_size=32, width=8,
                      learning_rate=3e-3)
    assert r.best_epoch >= 1 and r.validation["mae"] < r.validation["mae_profile"]
    assert np.abs(network.predict(r.model, val_w) - 1.0).max() > 1e-3
