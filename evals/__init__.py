"""Evaluation harness for tokmem_agent: datasets, metrics and checkers (pure functions), baselines, reports.

``evals`` uses the library; the library never imports ``evals``. :mod:`evals.metrics` and
:mod:`evals.datasets` import no torch.
"""

from .metrics import (
    Example,
    aggregate,
    arg_prf,
    check_calls,
    exact_match,
    json_valid,
    normalize_value,
    schema_valid,
    tool_accuracy,
    tool_prf,
    values_equal,
)

__all__ = [
    "Example", "aggregate", "arg_prf", "check_calls", "exact_match", "json_valid", "normalize_value",
    "schema_valid", "tool_accuracy", "tool_prf", "values_equal",
]
