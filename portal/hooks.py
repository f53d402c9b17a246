"""Settings that name a function of a higher layer (`JOB_RESERVATION`, `TRAINING_DATASETS`,
`EVAL_RESULT_GROUPS`, …): how a lower layer asks it without importing it (docs/architecture.md)."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string


@cache
def _load(path: str) -> Callable[..., Any]:
    found: Callable[..., Any] = import_string(path)
    return found


def setting_function(name: str) -> Callable[..., Any] | None:
    """The function the setting `name` names by its dotted path, imported once; None when it is unset."""
    path = getattr(settings, name, "")
    return _load(path) if path else None
