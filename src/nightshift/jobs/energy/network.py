"""The load network: device and strategy selection, the Keras model, seeded training.

The model reads a week of hourly history (scaled load, temperature, calendar), the known calendar
of the next week and the seasonal-naive forecast. It forecasts each of the next 168 hours as the
day-type profile (that hour's mean over the past week's days of the same type) plus a learned
correction shaped after how load arises: a linear blend of the known load forecasts and an
occupancy-gated heating/cooling response to an estimated felt temperature (see `build_model`):
the interaction of temperature with hour and day type that the linear baseline cannot express.
Without a temperature column the response is replaced by occupancy-gated blend weights. The job
trains one such network (`train` can average several trained at once from different seeds).

GPU: `MirroredStrategy` over every visible GPU with mixed precision; CPU: the default strategy,
with op determinism so a seed gives the same model.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nightshift.native_stderr import held

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
with held():  # TensorFlow's start-up lines go to the night's log, not the terminal
    import keras
    import tensorflow as tf
    from keras import layers

from nightshift.jobs.energy.dataset import (  # noqa: E402
    FELT_ALPHA,
    FUTURE_FEATURES,
    HORIZON,
    LOOKBACK,
    PAST_FEATURES,
    Windows,
    make_dataset,
)


@dataclass
class StrategyInfo:
    """The distribution strategy chosen for this machine and what it runs on."""

    strategy: Any
    name: str  # "mirrored" or "default"
    devices: list[str]
    replicas: int
    mixed_precision: bool

    def describe(self) -> dict[str, Any]:
        """Plain facts for the manifest and the page."""
        return {"strategy": self.name, "devices": self.devices, "replicas": self.replicas,
                "mixed_precision": self.mixed_precision, "tensorflow": tf.__version__, "keras": keras.__version__}


def _cpu_name() -> str:
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"CPU: {name} ({os.cpu_count()} cores)"


def select_strategy() -> StrategyInfo:
    """MirroredStrategy across all visible GPUs (mixed precision), else the default strategy."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        names = []
        for g in gpus:
            try:
                details = tf.config.experimental.get_device_details(g)
            except Exception:  # details are best effort (e.g. a mocked device list)
                details = {}
            names.append(f"GPU: {details.get('device_name', g.name)}")
        strategy = tf.distribute.MirroredStrategy()
        return StrategyInfo(strategy, "mirrored", names, strategy.num_replicas_in_sync, True)
    return StrategyInfo(tf.distribute.get_strategy(), "default", [_cpu_name()], 1, False)


def set_determinism(seed: int, gpu: bool) -> None:
    """Seed Python, NumPy and TensorFlow; on CPU also make every op deterministic."""
    keras.utils.set_random_seed(seed)
    if not gpu:
        tf.config.experimental.enable_op_determinism()


HEATING_BELOW, COOLING_ABOVE = 15.0, 22.0  # °C: the usual comfort band, where the hinges start


def build_model(temp_mean: float, temp_std: float, *, width: int = 16, mixed: bool = False,
                name: str = "energy_load", temperature: bool = True) -> keras.Model:
    """The network (inputs past/future/naive → scaled load for the next HORIZON hours).

    Forecast = the day-type profile (the `load_daytype_mean` input: each hour's mean over the past
    week's days of the same type, an average with nothing fitted) + a learned correction, per
    horizon hour, built after the demand in the data: load is a day-type/hour profile plus heating
    below and cooling above comfort temperatures on a smoothed ("felt") temperature, scaled by
    occupancy. So, per hour:

    * a linear blend of the known load forecasts (the same hour last week, the profile, yesterday):
      a handful of weights, quick to learn and hard to overfit;
    * a temperature response: the hour's felt temperature is estimated (the future is unknown: from
      the current felt temperature, an exponential smoothing of the past week; the last day's and the
      week's means; that hour's felt temperature yesterday; a learned summary of the week; and the lead,
      as weather drifts back to normal), put through hinge units (heating below / cooling above learned
      thresholds that start spread over the comfort band), minus the same units at the felt temperature
      of the profile's hours (the profile already holds their heating and cooling);
    * weighted per hinge by an occupancy gate (hour, day type, holiday, the profile's load at that
      hour, the lead): heating and cooling follow occupancy, and far-ahead estimates deserve less.

    Without a temperature column (`temperature=False`) there is no temperature response: the blend's
    weights are instead gated by occupancy and the lead (which of last week, the profile and yesterday
    to trust depends on the hour, the day type and how far ahead), and the temperature inputs (NaN)
    are never read.

    The output layers start at zero, so training starts from the profile. Every input statistic
    (temperature standardisation, the smoothing kernel) lives in the model: the artifact is
    self-contained.
    """
    policy = "mixed_float16" if mixed else "float32"
    past = keras.Input((LOOKBACK, len(PAST_FEATURES)), name="past")
    future = keras.Input((HORIZON, len(FUTURE_FEATURES)), name="future")
    naive = keras.Input((HORIZON,), name="naive")
    i_p = FUTURE_FEATURES.index("load_daytype_mean")
    profile = layers.Flatten(name="profile_forecast")(future[..., i_p:i_p + 1])
    corr = _correction(past, future, naive, temp_mean, temp_std, width=width, policy=policy, temperature=temperature)
    out = layers.Add(name="forecast", dtype="float32")([corr, profile])
    model = keras.Model({"past": past, "future": future, "naive": naive}, out, name=name)
    if temperature:
        _set_start_weights(model, width)
    return model


def _correction(past, future, naive, temp_mean: float, temp_std: float, *, width: int, policy: str,
                temperature: bool):
    """The learned correction to the profile (N × HORIZON); see `build_model`."""
    f_mean, f_var = np.zeros(len(FUTURE_FEATURES)), np.ones(len(FUTURE_FEATURES))
    for name in ("felt_recent", "temp_day_mean", "felt_daytype_mean"):
        f_mean[FUTURE_FEATURES.index(name)], f_var[FUTURE_FEATURES.index(name)] = temp_mean, max(temp_std, 1e-3) ** 2
    i_lead = FUTURE_FEATURES.index("lead")
    f_mean[i_lead], f_var[i_lead] = HORIZON / 48, (HORIZON / 24) ** 2 / 12  # days ahead, about unit scale
    fx = layers.Normalization(axis=-1, mean=f_mean, variance=f_var, name="standardise_future")(future)
    col = lambda name: fx[..., FUTURE_FEATURES.index(name):FUTURE_FEATURES.index(name) + 1]  # noqa: E731

    # Linear blend of the per-hour load forecasts.
    blend_in = layers.Concatenate(axis=-1, name="blend_inputs")(
        [layers.Reshape((HORIZON, 1), name="last_week_load")(naive), col("load_daytype_mean"), col("load_yesterday")])
    linear = layers.Dense(1, dtype="float32", kernel_initializer="zeros", name="correction_linear")(blend_in)

    # Occupancy: hour, day type, holiday, the profile's load at that hour, the lead.
    occ_cols = [FUTURE_FEATURES.index(c) for c in ("hour_sin", "hour_cos", "dow_sin", "dow_cos",
                                                   "load_daytype_mean", "holiday", "lead")]
    occ = layers.Concatenate(axis=-1, name="occupancy_inputs")([fx[..., i:i + 1] for i in occ_cols])
    g = layers.Dense(width, activation="relu", dtype=policy, name="occupancy")(occ)
    if temperature:
        response = _temperature_response(past, future, g, temp_mean, temp_std, width=width)
    else:  # the blend's weights per hour, from occupancy and the lead
        weights = layers.Dense(3, dtype="float32", kernel_initializer="zeros", name="blend_gate")(g)
        response = keras.ops.sum(layers.Multiply(name="gate_x_blend")([weights, blend_in]), axis=-1, keepdims=True)
    out = layers.Add(name="correction_sum", dtype="float32")([linear, response])
    return layers.Flatten(name="correction")(out)


def _temperature_response(past, future, g, temp_mean: float, temp_std: float, *, width: int):
    """Heating and cooling: degree hours of the estimated felt temperature, weighted per hinge by occupancy `g`."""
    mean, var = np.zeros(len(PAST_FEATURES)), np.ones(len(PAST_FEATURES))
    mean[1], var[1] = temp_mean, max(temp_std, 1e-3) ** 2
    x = layers.Normalization(axis=-1, mean=mean, variance=var, name="standardise")(past)
    raw = lambda name: future[..., FUTURE_FEATURES.index(name):FUTURE_FEATURES.index(name) + 1]  # noqa: E731

    # The felt temperature now and the week's mean (a frozen layer: the smoothing kernel and a mean),
    # a learned summary of the week's temperatures, and the hour's felt-temperature estimate (°C).
    temp_past = layers.Flatten(name="past_temperature")(past[..., 1:2])
    now_week = layers.Dense(2, use_bias=False, trainable=False, dtype="float32", name="felt_now_and_week_mean")
    now_week = layers.RepeatVector(HORIZON, name="felt_per_hour")(now_week(temp_past))
    felt_now, week_mean = now_week[..., :1], now_week[..., 1:]
    lead = raw("lead")
    reversion = layers.Multiply(name="lead_x_anomaly")([lead, layers.Subtract(name="anomaly")([felt_now, week_mean])])
    summary = layers.Dense(4, dtype="float32", kernel_regularizer=keras.regularizers.L2(1e-3),
                           name="temperature_summary")(layers.Flatten(name="past_temperature_std")(x[..., 1:2]))
    summary = layers.RepeatVector(HORIZON, name="summary_per_hour")(summary)
    drift = layers.Multiply(name="lead_x_summary")([layers.Concatenate(name="lead_rep")([lead] * 4), summary])
    est_in = layers.Concatenate(axis=-1, name="felt_inputs")(
        [felt_now, raw("temp_day_mean"), week_mean, raw("felt_recent"), reversion, summary, drift])
    felt = layers.Dense(1, dtype="float32", name="felt_estimate")(est_in)

    # Degree hours of that estimate minus those of the felt temperature of the profile's hours.
    hinge = layers.Dense(width, activation="relu", dtype="float32", name="degree_hinges")
    change = layers.Subtract(name="degree_change")([hinge(felt), hinge(raw("felt_daytype_mean"))])
    response = layers.Dense(width, dtype="float32", kernel_initializer="zeros", name="degree_response")(g)
    return keras.ops.sum(layers.Multiply(name="response_x_degrees")([response, change]), axis=-1, keepdims=True)


def _set_start_weights(model: keras.Model, width: int) -> None:
    """The frozen smoothing kernel, the felt estimate starting at the felt temperature now, the hinges."""
    k = np.arange(LOOKBACK)[::-1]
    ema = FELT_ALPHA * (1 - FELT_ALPHA) ** k
    smooth = np.stack([ema / ema.sum(), np.full(LOOKBACK, 1 / LOOKBACK)], axis=1)
    model.get_layer("felt_now_and_week_mean").set_weights([smooth.astype(np.float32)])
    felt = model.get_layer("felt_estimate")
    start = np.zeros(felt.get_weights()[0].shape, np.float32)
    start[0] = 1.0
    felt.set_weights([start, np.zeros(1, np.float32)])
    half = width // 2
    sign = np.r_[-np.ones(half), np.ones(width - half)]
    theta = np.r_[np.linspace(HEATING_BELOW - 8, HEATING_BELOW + 2, half),
                  np.linspace(COOLING_ABOVE - 2, COOLING_ABOVE + 6, width - half)]
    model.get_layer("degree_hinges").set_weights([sign[None, :].astype(np.float32), (-sign * theta).astype(np.float32)])


def compiled_model(train_w: Windows, info: StrategyInfo, *, members: int = 1, seed: int = 0, width: int = 16,
                   learning_rate: float = 1e-3, weight_decay: float = 1e-4) -> tuple[keras.Model, list[keras.Model]]:
    """The job's `members` networks side by side in one Keras model, compiled as the job trains them.

    The joint model's output is (N × members × HORIZON) and its loss each member's own MAE, averaged:
    every member learns as if alone (its own initial weights, from `seed + 100 k`), but one fit drives
    them all, so the per-step overhead of Keras is paid once, not once per member. Also `make bench`.
    Without temperature (NaN in the windows: the source has none) the networks have no temperature response.
    """
    temp = train_w.past[:, :, 1]
    temperature = bool(np.isfinite(temp).all())
    with info.strategy.scope():
        nets = []
        for k in range(members):
            keras.utils.set_random_seed(seed + 100 * k)
            nets.append(build_model(float(temp.mean()) if temperature else 0.0,
                                    float(temp.std()) if temperature else 1.0, width=width,
                                    mixed=info.mixed_precision, name=f"energy_load_{k + 1}", temperature=temperature))
        inputs = {name: keras.Input(t.shape[1:], name=name) for name, t in nets[0].input.items()}
        stacked = layers.Concatenate(axis=1, name="members", dtype="float32")(
            [layers.Reshape((1, HORIZON), name=f"member_{k + 1}")(n(inputs)) for k, n in enumerate(nets)])
        joint = keras.Model(inputs, stacked, name="energy_members")
        opt = keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay)
        if info.mixed_precision:
            opt = keras.optimizers.LossScaleOptimizer(opt)
        joint.compile(optimizer=opt, loss=_members_mae, jit_compile=False)
    return joint, nets


def _members_mae(y_true, y_pred):
    """Per window: the mean over members of each member's MAE (members learn independently)."""
    return keras.ops.mean(keras.ops.abs(y_pred - keras.ops.expand_dims(y_true, 1)), axis=(1, 2))


# What one night's training costs is windows x epochs x members (a step's cost grows with its
# windows, not with the network's width). Measured on the small demo (2 cores, `make bench`, seeds
# 7/1/2): 3 members over 4,722 windows at 1e-3 with patience 6 took 66 s for a holdout MAE of 4.23 kWh;
# one network over 2,361 windows at 2e-3 with patience 4 stops after 7-10 epochs, ~12 s, at
# 3.82-4.04 kWh. A single network's error moves with its seed more than the mean of three, but the
# bake-off judges it on the holdout like any candidate: a poor draw loses to a baseline, not published.
MAX_EPOCHS, PATIENCE, LEARNING_RATE = 40, 4, 2e-3
# Windows fitted per epoch and validated on, at most: neighbouring origins (3 h apart, hourly in
# validation) are near-copies, so evenly thinned windows teach nearly as much for a fraction of the time.
FIT_WINDOWS, VALIDATION_WINDOWS = 2500, 700


def default_batch_size(n_windows: int) -> int:
    """About 32 steps an epoch, whatever the history length (per replica)."""
    return int(np.clip(n_windows // 32, 32, 128))


@dataclass
class TrainResult:
    """A trained network and how training went."""

    model: keras.Model
    epochs: int
    best_epoch: int
    seconds: float
    windows: int
    windows_per_s: float
    history: dict[str, list[float]] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)  # what was asked for (the registry fingerprints it)
    validation: dict[str, Any] = field(default_factory=dict)  # what came out: validation MAE, best epochs


MEMBERS = 1  # networks averaged by the job (see above: more cost proportionally more seconds)


def train(train_w: Windows, val_w: Windows, info: StrategyInfo, *, seed: int, members: int = MEMBERS,
          max_epochs: int = MAX_EPOCHS, patience: int = PATIENCE, batch_size: int | None = None,
          learning_rate: float = LEARNING_RATE, width: int = 16, weight_decay: float = 1e-4) -> TrainResult:
    """Fit `members` networks from different seeds at once, with early stopping on the validation windows.

    With so little data to validate on, where one network ends up depends on its seed (initial
    occupancy weights); the mean of a few is a steadier forecast than any one of them, and is the
    model returned (a single network when `members` is 1). Windows are weighted by their level, so
    the loss of scaled values weighs like kWh, the measure the holdout is judged on. The weights of
    the best validation epoch are kept (`best_epoch` >= 1); the profile's own validation MAE (the
    untrained model) is kept in `validation` next to the trained one, so the page shows what training
    added. `seconds` is the Keras fit alone.
    """
    set_determinism(seed, gpu=info.name == "mirrored")
    train_w, val_w = _thin(train_w, FIT_WINDOWS), _thin(val_w, VALIDATION_WINDOWS)
    global_batch = (batch_size or default_batch_size(len(train_w))) * info.replicas
    joint, nets = compiled_model(train_w, info, members=members, seed=seed, width=width,
                                 learning_rate=learning_rate, weight_decay=weight_decay)
    ds = make_dataset(train_w, global_batch, shuffle=True, seed=seed)
    vds = make_dataset(val_w, 1024 * info.replicas, shuffle=False, seed=seed)
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", mode="min", patience=patience, restore_best_weights=True)
    t0 = time.perf_counter()
    # shuffle=False: the tf.data pipeline shuffles (seeded); Keras would only warn that it ignores it
    with _gradients_released():
        hist = joint.fit(ds, validation_data=vds, epochs=max_epochs, callbacks=[stop], verbose=0, shuffle=False)
    seconds = time.perf_counter() - t0
    model = nets[0] if members == 1 else _average(nets, info)
    epochs, val = len(hist.history["loss"]), [float(v) for v in hist.history["val_loss"]]
    best_epoch = int(np.argmin(val)) + 1
    params = {"lookback": LOOKBACK, "horizon": HORIZON, "width": width, "batch_size": global_batch,
              "learning_rate": learning_rate, "weight_decay": weight_decay, "max_epochs": max_epochs,
              "patience": patience, "seed": seed, "base": "day-type profile", "members": members,
              "member_seeds": [seed + 100 * k for k in range(members)],
              "temperature": bool(np.isfinite(train_w.past[:, :, 1]).all())}
    i_p = FUTURE_FEATURES.index("load_daytype_mean")
    validation = {"mae_profile": _weighted_mae(val_w.future[:, :, i_p].astype(np.float64), val_w),
                  "mae": _weighted_mae(predict(model, val_w), val_w), "best_epochs": [best_epoch]}
    history = {"training": [float(v) for v in hist.history["loss"]], "validation": val}
    return TrainResult(model, epochs, best_epoch, seconds, len(train_w), len(train_w) * epochs / seconds,
                       history, params, validation)


@contextmanager
def _gradients_released() -> Iterator[None]:
    """Forget the custom gradients a fit registered, so its traced graphs can be freed when it returns.

    TensorFlow registers a gradient function in a global registry for every `tf.custom_gradient` traced
    into a graph (Keras' train step traces one through tf.distribute's all_reduce) and never removes it;
    the function holds the traced graph, so every training night kept its train-step graphs for the life
    of the process (about 23,000 Python objects a night in a backfill; tensorflow/tensorflow#97697).
    Once the fit has returned nothing traces those steps again: the trained model is only predicted with.
    The energy job is the only user of TensorFlow in a night and trains once, so no other fit is
    tracing meanwhile.
    """
    from tensorflow.python.framework import ops  # the registry is not public API: skipped if it moves

    registry = getattr(getattr(ops, "gradient_registry", None), "_registry", None)
    before = set(registry) if isinstance(registry, dict) else None
    try:
        yield
    finally:
        if before is not None:
            for name in [n for n in registry if n not in before and n.startswith("CustomGradient-")]:
                del registry[name]


def _thin(w: Windows, at_most: int) -> Windows:
    """Every k-th window (k the smallest step that keeps at most `at_most`), spread evenly over time."""
    step = -(-len(w) // at_most)
    return w if step == 1 else w.subset(np.arange(len(w)) % step == 0)


def _average(nets: list[keras.Model], info: StrategyInfo) -> keras.Model:
    """One Keras model whose forecast is the mean of the members' (what is stored and scored)."""
    with info.strategy.scope():
        inputs = {name: keras.Input(t.shape[1:], name=name) for name, t in nets[0].input.items()}
        out = layers.Average(name="forecast_mean", dtype="float32")([n(inputs) for n in nets])
        return keras.Model(inputs, out, name="energy_load")


def _weighted_mae(pred: np.ndarray, w: Windows) -> float:
    """The validation measure Keras reports in training: per-window MAE of scaled load, level-weighted."""
    weight = w.level / np.mean(w.level)
    return float(np.sum(np.nanmean(np.abs(pred - w.target), axis=1) * weight) / np.sum(weight))


def predict(model: keras.Model, w: Windows, batch_size: int = 2048) -> np.ndarray:
    """Scaled forecasts (N × H) as float64."""
    return np.asarray(model.predict(w.inputs(), batch_size=batch_size, verbose=0), dtype=np.float64)
