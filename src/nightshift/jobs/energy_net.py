"""The load network: device and strategy selection, the Keras model, seeded training.

The model reads a week of hourly history (scaled load, temperature, calendar), the known calendar
of the next week, and the seasonal-naive forecast; it predicts a correction to seasonal naive for
each of the next 168 hours. A daily-patch Conv1D encoder summarises the week; a small MLP shared
across horizon hours turns (summary, that hour's calendar, the same hour last week) into the
correction, so holiday and weekday effects are learned per hour rather than per position.

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


def build_model(temp_mean: float, temp_std: float, *, width: int = 32, mixed: bool = False,
                ridge: LinearBaseline | None = None, base: str = "seasonal naive", dropout: float = 0.3) -> keras.Model:
    """The network (inputs past/future/naive → scaled load for the next HORIZON hours).

    `base` is the forecast the network corrects: "seasonal naive", "day-type profile" (the
    `load_daytype_mean` input) or "ridge" (the fitted `ridge` baseline as a frozen layer inside the
    model, so the saved artifact is self-contained).
    """
    policy = "mixed_float16" if mixed else "float32"
    past = keras.Input((LOOKBACK, len(PAST_FEATURES)), name="past")
    future = keras.Input((HORIZON, len(FUTURE_FEATURES)), name="future")
    naive = keras.Input((HORIZON,), name="naive")
    # Temperatures are standardised inside the model, so the saved artifact carries their statistics.
    mean, var = np.zeros(len(PAST_FEATURES)), np.ones(len(PAST_FEATURES))
    mean[1], var[1] = temp_mean, max(temp_std, 1e-3) ** 2
    x = layers.Normalization(axis=-1, mean=mean, variance=var, name="standardise")(past)
    f_mean, f_var = np.zeros(len(FUTURE_FEATURES)), np.ones(len(FUTURE_FEATURES))
    i_t = FUTURE_FEATURES.index("temp_recent")
    f_mean[i_t], f_var[i_t] = temp_mean, max(temp_std, 1e-3) ** 2
    fx = layers.Normalization(axis=-1, mean=f_mean, variance=f_var, name="standardise_future")(future)
    if base == "ridge":
        flat = layers.Concatenate(name="ridge_inputs")([layers.Flatten(name="flat_past")(past),
                                                        layers.Flatten(name="flat_future")(future)])
        ridge_corr = layers.Dense(HORIZON, trainable=False, dtype="float32", name="ridge")(flat)
        base_f = layers.Add(name="ridge_forecast", dtype="float32")([ridge_corr, naive])
    elif base == "day-type profile":
        i_p = FUTURE_FEATURES.index("load_daytype_mean")
        base_f = layers.Flatten(name="profile_forecast")(future[..., i_p:i_p + 1])
    else:
        base_f = naive
    base_kind, base = base, base_f
    reg = keras.regularizers.L2(1e-4)
    # Daily patches: one 24-hour kernel per day, then mixing across the seven days.
    z = layers.Conv1D(width, 24, strides=24, activation="relu", dtype=policy, kernel_regularizer=reg,
                      name="day_patches")(x)
    z = layers.Conv1D(width, 3, padding="same", activation="relu", dtype=policy, name="across_days")(z)
    z = layers.Flatten(name="flat")(z)
    z = layers.Dropout(dropout, name="drop")(z)
    z = layers.Dense(width, activation="relu", dtype=policy, kernel_regularizer=reg, name="summary")(z)
    ctx = layers.RepeatVector(HORIZON, name="per_hour")(z)
    # The same hour last week, aligned with each horizon hour (crops nothing while LOOKBACK == HORIZON).
    last_week = layers.Cropping1D((LOOKBACK - HORIZON, 0), name="last_week")(x)
    base_h = layers.Reshape((HORIZON, 1), name="base_per_hour")(base)
    # Per horizon hour: the week's summary, that hour's calendar and recent temperature (heating and
    # cooling depend on both: an interaction the linear baseline cannot express), last week, the base.
    h = layers.Concatenate(axis=-1, name="hour_inputs")([ctx, fx, last_week, base_h])
    # A linear blend of the per-hour load forecasts (last week, the day-type profile, yesterday, the
    # base: a handful of weights, quick to learn and hard to overfit) plus an MLP for interactions;
    # both zero-initialised, so training starts from the base forecast and moves only where it helps.
    picks = [FUTURE_FEATURES.index("load_daytype_mean"), FUTURE_FEATURES.index("load_yesterday")]
    blend_in = layers.Concatenate(axis=-1, name="blend_inputs")(
        [layers.Cropping1D((LOOKBACK - HORIZON, 0), name="last_week_load")(past)[..., :1],
         *[fx[..., i:i + 1] for i in picks], base_h])
    lin = layers.Dense(1, dtype="float32", kernel_initializer="zeros", name="correction_linear")(blend_in)
    h = layers.Dense(2 * width, activation="relu", dtype=policy, kernel_regularizer=reg, name="hour_mlp_1")(h)
    h = layers.Dropout(dropout / 2, name="hour_drop")(h)
    h = layers.Dense(width, activation="relu", dtype=policy, name="hour_mlp_2")(h)
    h = layers.Dense(1, dtype="float32", kernel_initializer="zeros", name="correction")(h)
    h = layers.Add(name="correction_sum", dtype="float32")([lin, h])
    out = layers.Add(name="forecast", dtype="float32")([layers.Flatten(name="per_horizon")(h), base])
    model = keras.Model({"past": past, "future": future, "naive": naive}, out, name="energy_load")
    if base_kind == "ridge":
        model.get_layer("ridge").set_weights(list(ridge_weights(ridge)))
    return model


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
          max_epochs: int = 30, patience: int = 3, batch_size: int | None = None, learning_rate: float = 3e-4,
          width: int = 32, weight_decay: float = 1e-2, dropout: float = 0.5) -> TrainResult:
    """Fit with early stopping on the validation windows (restoring the best weights).

    If no epoch beats the untrained model on validation (the base forecast itself, since the
    correction starts at zero), the untrained weights are kept: the network never does worse on
    validation than its base.
    """
    set_determinism(seed, gpu=info.name == "mirrored")
    temp = train_w.past[:, :, 1]
    if batch_size is None:  # about 32 steps an epoch, whatever the history length
        batch_size = int(np.clip(len(train_w) // 32, 32, 256))
    global_batch = batch_size * info.replicas
    with info.strategy.scope():
        model = build_model(float(temp.mean()), float(temp.std()), width=width, mixed=info.mixed_precision,
                            ridge=ridge, base=base, dropout=dropout)
        opt = keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay)
        if info.mixed_precision:
            opt = keras.optimizers.LossScaleOptimizer(opt)
        model.compile(optimizer=opt, loss="mean_absolute_error", jit_compile=False)
    ds = make_dataset(train_w, global_batch, shuffle=True, seed=seed)
    vds = make_dataset(val_w, 1024 * info.replicas, shuffle=False, seed=seed)
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)
    t0 = time.perf_counter()
    start_weights = model.get_weights()
    start_val = float(model.evaluate(vds, verbose=0))
    # shuffle=False: the tf.data pipeline shuffles (seeded); Keras would only warn that it ignores it
    hist = model.fit(ds, validation_data=vds, epochs=max_epochs, callbacks=[stop], verbose=0, shuffle=False)
    seconds = time.perf_counter() - t0
    epochs = len(hist.history["loss"])
    val = hist.history["val_loss"]
    best_epoch = int(np.argmin(val)) + 1
    if min(val) >= start_val:
        model.set_weights(start_weights)
        best_epoch = 0
    params = {"lookback": LOOKBACK, "horizon": HORIZON, "width": width, "batch_size": global_batch,
              "learning_rate": learning_rate, "weight_decay": weight_decay, "max_epochs": max_epochs,
              "patience": patience, "seed": seed, "base": base,
              "ridge_alpha": None if base != "ridge" or ridge is None else ridge.alpha, "start_val_loss": start_val}
    return TrainResult(model, epochs, best_epoch, seconds, len(train_w),
                       len(train_w) * epochs / seconds, {k: [float(v) for v in vs] for k, vs in hist.history.items()},
                       params)


def predict(model: keras.Model, w: Windows, batch_size: int = 2048) -> np.ndarray:
    """Scaled forecasts (N × H) as float64."""
    return np.asarray(model.predict(w.inputs(), batch_size=batch_size, verbose=0), dtype=np.float64)
