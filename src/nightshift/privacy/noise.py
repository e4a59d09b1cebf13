"""Noise from OpenDP's discrete Laplace on integers, and its 95% margin of error.

Floating-point Laplace leaks through the low bits of its output (Mironov 2012), so every noisy value
here is an integer (counts, money in cents, other sums in integer units of a declared resolution)
and the sampler is OpenDP's vetted one. This module never uses numpy.random or `random`.
"""

from __future__ import annotations

import math

# The same functions as `opendp.prelude`'s `dp.m.make_laplace`, `dp.vector_domain`, ... imported from
# their modules: the prelude also imports OpenDP's scikit-learn extras, which cost seconds at start.
from opendp import domains, measurements, metrics
from opendp.mod import Measurement, enable_features

CONFIDENCE = 0.95


def mechanism(scale: float) -> Measurement:
    """OpenDP's vector discrete Laplace mechanism on 64-bit integers at `scale`."""
    enable_features("contrib")
    # i64, not Python int's default i32: sums of money in cents outgrow 2^31.
    return measurements.make_laplace(
        domains.vector_domain(domains.atom_domain(T="i64")), metrics.l1_distance(T="i64"), scale=scale
    )


def privacy_loss(scale: float, sensitivity: int) -> float:
    """The ε OpenDP's own privacy map assigns to `sensitivity` at `scale` (a cross-check of the plan)."""
    return float(mechanism(scale).map(int(sensitivity)))


def add_noise(values: list[int], scale: float) -> list[int]:
    """Each integer plus an independent discrete Laplace(scale) draw."""
    if not values:
        return []
    return [int(v) for v in mechanism(scale)([int(v) for v in values])]


def margin_of_error(scale: float, confidence: float = CONFIDENCE) -> int:
    """The smallest integer a with P(|Z| > a) <= 1 - confidence for Z ~ discrete Laplace(scale).

    For P(Z = z) ∝ exp(-|z|/s): P(|Z| > a) = 2·exp(-(a+1)/s) / (1 + exp(-1/s)).
    """
    alpha = 1.0 - confidence
    q = math.exp(-1.0 / scale)
    a = -scale * math.log(alpha * (1.0 + q) / 2.0) - 1.0
    return max(0, math.ceil(a - 1e-12))


