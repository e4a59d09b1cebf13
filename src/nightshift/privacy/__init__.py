"""Differentially private aggregates about people, with a persistent budget.

Declare a `Release` (unit, public keys, measures, contribution bound K, ε) and call
`PrivacyLayer.release(release, frame)`. Bounding happens in DuckDB SQL, noise is OpenDP's discrete
Laplace on integers, the ε split and sensitivities are in `spec`, the budget rules in `budget`, the
ledger in `ledger`, kept on disk apart from the warehouse by `store` (see docs/PRIVACY.md).
"""

from nightshift.privacy import keys
from nightshift.privacy.budget import BudgetExceeded, BudgetRaiseRefused, PrivacyRefused
from nightshift.privacy.keys import KeySelection
from nightshift.privacy.layer import PrivacyLayer, ReleaseResult
from nightshift.privacy.spec import Count, Mean, Release, Sum
from nightshift.privacy.store import LedgerBroken

__all__ = ["BudgetExceeded", "BudgetRaiseRefused", "Count", "KeySelection", "LedgerBroken", "Mean", "PrivacyLayer",
           "PrivacyRefused", "Release", "ReleaseResult", "Sum", "keys"]
