"""What kind of parameter a schema property is, from its name and spec: the pieces the grounding rules share
(:mod:`.ground_args`, :mod:`.grounding`, :mod:`.operators`, :mod:`.titles`)."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["free_string", "param_words"]


def param_words(name: str) -> set[str]:
    """The lower-case letter runs of a parameter name: ``from_city`` → {"from", "city"}, ``petsWelcome`` →
    {"pets", "welcome"} (digits and other characters split words and are dropped)."""
    return set(re.split(r"[^a-z]+", re.sub(r"([a-z])([A-Z])", r"\1 \2", name).lower()))


def free_string(spec: Any) -> bool:
    """A string parameter whose value is free: no enum, const, pattern or format of its own."""
    return isinstance(spec, dict) and spec.get("type") == "string" \
        and not any(k in spec for k in ("enum", "const", "pattern", "format"))
