"""Differentially private aggregates about people, with a persistent budget.

Declare a `Release` (unit, public keys, measures, contribution bound K, ε) and call
`PrivacyLayer.release(release, frame)`. Bounding happens in DuckDB SQL, noise is OpenDP's discrete
Laplace on integers, the ε split and sensitivities are in `spec`, the ledger in `ledger`.
"""

from nightshift.privacy.layer import PrivacyLayer, ReleaseResult
from nightshift.privacy.spec import BudgetExceeded, Count, Mean, Release, Sum

__all__ = ["BudgetExceeded", "Count", "Mean", "PrivacyLayer", "Release", "ReleaseResult", "Sum"]
