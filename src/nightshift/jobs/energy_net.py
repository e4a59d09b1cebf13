"""The load network: device and strategy selection, the Keras model, seeded training.

The model reads a week of hourly history (scaled load, temperature, calendar), the known calendar
of the next week, and the seasonal-naive forecast; it predicts a correction to a base forecast
(seasonal naive, the day-type profile or the frozen ridge) for each of the next 168 hours. A
daily-patch Conv1D encoder summarises the week; a small MLP shared across horizon hours turns
(summary, that hour's calendar and lead, the same hour last week, the base and ridge forecasts) into
the correction, so holiday and weekday effects are learned per hour rather than per position. A
gated branch multiplies occupancy (hour, day type, usual load) with a temperature response, the
interaction the linear baseline cannot express. Optionally several members are averaged.

GPU: `MirroredStrategy` over every visible GPU with mixed precision; CPU: the default strategy,
with op determinism so a seed gives the same model.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass, field
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import layers  # noqa: E402

from nightshift.jobs.energy_baselines import LinearBaseline  # noqa: E402
from nightshift.jobs.energy_data import (  # noqa: E402
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


def ridge_weights(ridge: LinearBaseline) -> tuple[np.ndarray, np.ndarray]:
    """The ridge baseline folded into one dense layer on raw flattened inputs: kernel and bias."""
    kernel = ridge.coef / ridge.scale[:, None]
    bias = ridge.intercept - (ridge.mean / ridge.scale) @ ridge.coef
    return kernel.astype(np.float32), bias.astype(np.float32)


MIN_GAIN = 0.05  # a correction must lower the validation MAE by 5% to be kept


def build_model(temp_mean: float, temp_std: float, *, width: int = 32, mixed: bool = False,
                ridge: LinearBaseline | None = None, base: str = "seasonal naive", dropout: float = 0.3,
                members: int = 1, gated: bool = True, with_members: bool = False):
    """The network (inputs past/future/naive → scaled load for the next HORIZON hours).

    `base` is the forecast the network corrects: "seasonal naive", "day-type profile" (the
    `load_daytype_mean` input) or "ridge". A fitted `ridge` baseline sits in the model as a frozen
    layer (so the saved artifact is self-contained); its forecast is also an input of the correction
    whatever the base. `members` independent correction networks (own weights, own dropout) are
    averaged: an ensemble inside one model.

    With `with_members`, also returns the training model: its output stacks the members
    (N × HORIZON × members, so each member is fitted on its own loss rather than co-adapting through
    the average), and it takes the ridge forecast as an extra input `ridge_fit`, so training can feed
    out-of-fold ridge forecasts (ridge's in-sample errors on its own training windows are smaller
    and differently shaped than on new weeks: corrections learned on them do not carry over).
    """
    policy = "mixed_float16" if mixed else "float32"
    past = keras.Input((LOOKBACK, len(PAST_FEATURES)), name="past")
    future = keras.Input((HORIZON, len(FUTURE_FEATURES)), name="future")
    naive = keras.Input((HORIZON,), name="naive")
    ridge_f = None
    if ridge is not None:
        flat = layers.Concatenate(name="ridge_inputs")([layers.Flatten(name="flat_past")(past),
                                                        layers.Flatten(name="flat_future")(future)])
        ridge_corr = layers.Dense(HORIZON, trainable=False, dtype="float32", name="ridge")(flat)
        ridge_f = layers.Add(name="ridge_forecast", dtype="float32")([ridge_corr, naive])
    i_p = FUTURE_FEATURES.index("load_daytype_mean")
    profile = layers.Flatten(name="profile_forecast")(future[..., i_p:i_p + 1])

    def base_of(ridge_forecast):
        if base == "ridge":
            if ridge_forecast is None:
                raise ValueError("base='ridge' needs the fitted ridge baseline")
            return ridge_forecast
        return profile if base == "day-type profile" else naive

    corrector = _corrector(temp_mean, temp_std, width=width, dropout=dropout, policy=policy, gated=gated,
                           members=members, with_ridge=ridge is not None)
    base_f = base_of(ridge_f)
    stacked = corrector([past, future, base_f] + ([ridge_f] if ridge is not None else []))
    corr = layers.GlobalAveragePooling1D(data_format="channels_first", name="ensemble_mean")(stacked)
    out = layers.Add(name="forecast", dtype="float32")([corr, base_f])
    inputs = {"past": past, "future": future, "naive": naive}
    model = keras.Model(inputs, out, name="energy_load")
    if ridge is not None:
        model.get_layer("ridge").set_weights(list(ridge_weights(ridge)))
    if not with_members:
        return model
    fit_inputs = dict(inputs)
    ridge_fit = None
    if ridge is not None:
        ridge_fit = fit_inputs["ridge_fit"] = keras.Input((HORIZON,), name="ridge_fit")
    base_fit = base_of(ridge_fit)
    stacked_fit = corrector([past, future, base_fit] + ([ridge_fit] if ridge is not None else []))
    per_member = layers.Add(name="member_forecasts", dtype="float32")(
        [stacked_fit, layers.Reshape((HORIZON, 1), name="base_fit_per_hour")(base_fit)])
    return model, keras.Model(fit_inputs, per_member, name="energy_load_members")


def _corrector(temp_mean: float, temp_std: float, *, width: int, dropout: float, policy: str, gated: bool,
               members: int, with_ridge: bool) -> keras.Model:
    """The members' corrections to the base (N × HORIZON × members) from past, future, base [, ridge]."""
    past = keras.Input((LOOKBACK, len(PAST_FEATURES)), name="past")
    future = keras.Input((HORIZON, len(FUTURE_FEATURES)), name="future")
    base = keras.Input((HORIZON,), name="base")
    ins = [past, future, base]
    # Temperatures are standardised inside the model, so the saved artifact carries their statistics.
    mean, var = np.zeros(len(PAST_FEATURES)), np.ones(len(PAST_FEATURES))
    mean[1], var[1] = temp_mean, max(temp_std, 1e-3) ** 2
    x = layers.Normalization(axis=-1, mean=mean, variance=var, name="standardise")(past)
    f_mean, f_var = np.zeros(len(FUTURE_FEATURES)), np.ones(len(FUTURE_FEATURES))
    for name in ("temp_recent", "temp_day_mean", "temp_daytype_mean"):
        f_mean[FUTURE_FEATURES.index(name)], f_var[FUTURE_FEATURES.index(name)] = temp_mean, max(temp_std, 1e-3) ** 2
    i_lead = FUTURE_FEATURES.index("lead")
    f_mean[i_lead], f_var[i_lead] = HORIZON / 48, (HORIZON / 24) ** 2 / 12  # days ahead, about unit scale
    fx = layers.Normalization(axis=-1, mean=f_mean, variance=f_var, name="standardise_future")(future)
    loads = [layers.Reshape((HORIZON, 1), name="base_per_hour")(base)]
    if with_ridge:
        ridge = keras.Input((HORIZON,), name="ridge")
        ins.append(ridge)
        loads.append(layers.Reshape((HORIZON, 1), name="ridge_per_hour")(ridge))
    corrections = [_member(k, x, fx, past, loads, width=width, dropout=dropout, policy=policy, gated=gated)
                   for k in range(members)]
    stacked = corrections[0] if members == 1 else layers.Concatenate(axis=-1, name="members")(corrections)
    return keras.Model(ins, stacked, name="corrector")


def _member(k: int, x, fx, past, loads, *, width: int, dropout: float, policy: str, gated: bool):
    """One correction network: (N × HORIZON × 1) scaled load to add to the base forecast."""
    n = f"_{k}" if k else ""
    reg = keras.regularizers.L2(1e-4)
    # Daily patches: one 24-hour kernel per day, then mixing across the seven days.
    z = layers.Conv1D(width, 24, strides=24, activation="relu", dtype=policy, kernel_regularizer=reg,
                      name=f"day_patches{n}")(x)
    z = layers.Conv1D(width, 3, padding="same", activation="relu", dtype=policy, name=f"across_days{n}")(z)
    z = layers.Flatten(name=f"flat{n}")(z)
    z = layers.Dropout(dropout, name=f"drop{n}")(z)
    z = layers.Dense(width, activation="relu", dtype=policy, kernel_regularizer=reg, name=f"summary{n}")(z)
    ctx = layers.RepeatVector(HORIZON, name=f"per_hour{n}")(z)
    # The same hour last week, aligned with each horizon hour (crops nothing while LOOKBACK == HORIZON).
    last_week = layers.Cropping1D((LOOKBACK - HORIZON, 0), name=f"last_week{n}")(x)
    # Per horizon hour: the week's summary, that hour's calendar, recent temperature and lead (how far
    # persistence holds), last week, the base (and ridge) forecasts.
    h = layers.Concatenate(axis=-1, name=f"hour_inputs{n}")([ctx, fx, last_week, *loads])
    # A linear blend of the per-hour load forecasts (last week, the day-type profile, yesterday, the
    # base, ridge: a handful of weights, quick to learn and hard to overfit) plus an MLP for
    # interactions; zero-initialised, so training starts from the base forecast and moves only where
    # it helps.
    picks = [FUTURE_FEATURES.index("load_daytype_mean"), FUTURE_FEATURES.index("load_yesterday")]
    blend_in = layers.Concatenate(axis=-1, name=f"blend_inputs{n}")(
        [layers.Cropping1D((LOOKBACK - HORIZON, 0), name=f"last_week_load{n}")(past)[..., :1],
         *[fx[..., i:i + 1] for i in picks], *loads])
    parts = [layers.Dense(1, dtype="float32", kernel_initializer="zeros", name=f"correction_linear{n}")(blend_in)]
    if gated:
        # Heating and cooling scale with occupancy: a gate from the hour's calendar and its usual load
        # (occupancy) times a response to temperatures now, last week at that hour, and the lead.
        occ_cols = [FUTURE_FEATURES.index(c) for c in ("hour_sin", "hour_cos", "dow_sin", "dow_cos",
                                                       "load_daytype_mean", "holiday")]
        # Temperatures as changes from what the day-type profile's hours saw (the profile already
        # holds their heating and cooling), plus the level (heating below, cooling above thresholds).
        t = {c: fx[..., FUTURE_FEATURES.index(c):FUTURE_FEATURES.index(c) + 1]
             for c in ("temp_recent", "temp_day_mean", "temp_daytype_mean", "lead")}
        occ = layers.Concatenate(axis=-1, name=f"occupancy_inputs{n}")([fx[..., i:i + 1] for i in occ_cols])
        tmp = layers.Concatenate(axis=-1, name=f"temperature_inputs{n}")(
            [layers.Subtract(name=f"temp_change{n}")([t["temp_recent"], t["temp_daytype_mean"]]),
             layers.Subtract(name=f"temp_day_change{n}")([t["temp_day_mean"], t["temp_daytype_mean"]]),
             t["temp_recent"], t["temp_day_mean"], t["lead"], last_week[..., 1:2]])
        g = layers.Dense(width // 2, activation="relu", dtype=policy, name=f"occupancy{n}")(occ)
        u = layers.Dense(width // 2, activation="relu", dtype=policy, name=f"temperature_response{n}")(tmp)
        gu = layers.Multiply(name=f"occupancy_x_temperature{n}")([g, u])
        parts.append(layers.Dense(1, dtype="float32", kernel_initializer="zeros", name=f"correction_gated{n}")(gu))
    h = layers.Dense(2 * width, activation="relu", dtype=policy, kernel_regularizer=reg, name=f"hour_mlp_1{n}")(h)
    h = layers.Dropout(dropout / 2, name=f"hour_drop{n}")(h)
    h = layers.Dense(width, activation="relu", dtype=policy, name=f"hour_mlp_2{n}")(h)
    parts.append(layers.Dense(1, dtype="float32", kernel_initializer="zeros", name=f"correction{n}")(h))
    return layers.Add(name=f"correction_sum{n}", dtype="float32")(parts)


def _members_last(y_true, y_pred):
    """Target as N × HORIZON × 1 and forecasts as N × HORIZON × members (Keras squeezes one member)."""
    y_true, y_pred = keras.ops.cast(y_true, "float32"), keras.ops.cast(y_pred, "float32")
    if len(y_pred.shape) == len(y_true.shape):
        y_pred = keras.ops.expand_dims(y_pred, -1)
    return keras.ops.expand_dims(y_true, -1), y_pred


def member_mae(y_true, y_pred):
    """Mean absolute error of every member (N × HORIZON × members) against the target (N × HORIZON)."""
    y_true, y_pred = _members_last(y_true, y_pred)
    return keras.ops.mean(keras.ops.abs(y_true - y_pred), axis=(1, 2))


def ensemble_mae(y_true, y_pred):
    """Mean absolute error of the members' average: what the saved model forecasts."""
    y_true, y_pred = _members_last(y_true, y_pred)
    return keras.ops.mean(keras.ops.abs(y_true - keras.ops.mean(y_pred, axis=-1, keepdims=True)), axis=(1, 2))


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
    params: dict[str, Any] = field(default_factory=dict)


def train(train_w: Windows, val_w: Windows, info: StrategyInfo, *, seed: int, base: str = "seasonal naive",
          ridge: LinearBaseline | None = None,
          max_epochs: int = 10, patience: int = 3, batch_size: int | None = None, learning_rate: float = 1e-3,
          width: int = 32, weight_decay: float = 1e-2, dropout: float = 0.5, members: int = 1,
          gated: bool = True, ridge_fit: np.ndarray | None = None, min_gain: float = MIN_GAIN) -> TrainResult:
    """Fit with early stopping on the validation windows (restoring the best weights).

    `ridge_fit`: the ridge forecasts the correction learns from on the training windows, best out of
    fold (`energy_baselines.out_of_fold`); ridge's own in-sample forecasts if not given. Validation
    uses ridge's forecasts (new weeks to ridge as well). Windows are weighted by their level, so the
    loss of scaled values weighs like kWh, the measure the holdout is judged on.

    Early stopping watches the ensemble's validation MAE. Unless the best epoch beats the untrained
    model on validation (the base forecast itself, since every correction starts at zero) by
    `min_gain` (relative), the untrained weights are kept: a correction that barely helps on the
    validation weeks is as likely noise fitted to the training weeks as a real gain. On demo draws
    at several run dates, corrections that won 1-2.5% on validation lost 6-29% on the holdout,
    while those that won 6% or more carried over.
    """
    set_determinism(seed, gpu=info.name == "mirrored")
    temp = train_w.past[:, :, 1]
    if batch_size is None:  # about 32 steps an epoch, whatever the history length
        batch_size = int(np.clip(len(train_w) // 32, 32, 256))
    global_batch = batch_size * info.replicas
    with info.strategy.scope():
        model, fit_model = build_model(float(temp.mean()), float(temp.std()), width=width, mixed=info.mixed_precision,
                                       ridge=ridge, base=base, dropout=dropout, members=members, gated=gated,
                                       with_members=True)
        opt = keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay)
        if info.mixed_precision:
            opt = keras.optimizers.LossScaleOptimizer(opt)
        fit_model.compile(optimizer=opt, loss=member_mae, weighted_metrics=[ensemble_mae], jit_compile=False)
    extra = val_extra = None
    if ridge is not None:
        extra = {"ridge_fit": ridge.predict(train_w) if ridge_fit is None else ridge_fit}
        val_extra = {"ridge_fit": ridge.predict(val_w)}
    ds = make_dataset(train_w, global_batch, shuffle=True, seed=seed, extra=extra, weighted=True)
    vds = make_dataset(val_w, 1024 * info.replicas, shuffle=False, seed=seed, extra=val_extra, weighted=True)
    stop = keras.callbacks.EarlyStopping(monitor="val_ensemble_mae", mode="min", patience=patience, restore_best_weights=True)
    t0 = time.perf_counter()
    start_weights = model.get_weights()
    start_val = float(fit_model.evaluate(vds, verbose=0, return_dict=True)["ensemble_mae"])
    # shuffle=False: the tf.data pipeline shuffles (seeded); Keras would only warn that it ignores it
    hist = fit_model.fit(ds, validation_data=vds, epochs=max_epochs, callbacks=[stop], verbose=0, shuffle=False)
    seconds = time.perf_counter() - t0
    epochs = len(hist.history["loss"])
    val = hist.history["val_ensemble_mae"]
    best_epoch = int(np.argmin(val)) + 1
    if min(val) > (1 - min_gain) * start_val:
        model.set_weights(start_weights)
        best_epoch = 0
    params = {"lookback": LOOKBACK, "horizon": HORIZON, "width": width, "batch_size": global_batch,
              "learning_rate": learning_rate, "weight_decay": weight_decay, "max_epochs": max_epochs,
              "patience": patience, "seed": seed, "base": base, "members": members, "gated": gated, "min_gain": min_gain,
              "ridge_out_of_fold": ridge_fit is not None,
              "ridge_alpha": None if base != "ridge" or ridge is None else ridge.alpha, "start_val_loss": start_val}
    history = {"loss": hist.history["loss"], "val_loss": val}
    return TrainResult(model, epochs, best_epoch, seconds, len(train_w),
                       len(train_w) * epochs / seconds, {k: [float(v) for v in vs] for k, vs in history.items()},
                       params)


def predict(model: keras.Model, w: Windows, batch_size: int = 2048) -> np.ndarray:
    """Scaled forecasts (N × H) as float64."""
    return np.asarray(model.predict(w.inputs(), batch_size=batch_size, verbose=0), dtype=np.float64)
