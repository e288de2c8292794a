"""From/to parameter pairs never take one value twice (:attr:`ControllerConfig.ground_distinct`).

A conversion from a unit to the same unit, a currency into itself, the days between a date and that same
date: each is a call that cannot be what anyone asked for, and a small model writes them ("How many days
until my wedding on 20/09/2025?" → ``days_between(start="2025-09-20", end="2025-09-20")``; "26°C … the sea
was 71°F" → ``convert_units(26, "celsius", "celsius")``). Parameters pair up by name: ``from_unit`` /
``to_unit``, ``source_x`` / ``target_x``, ``start`` / ``end`` (``start_date`` / ``end_date``),
``origin`` / ``destination``, ``fromCity`` / ``toCity``. When both members of a pair are enums (the tool's
own, or the dates and places grounding left them), the schema becomes an ``anyOf`` over the first member's
values, each with the second member's other values (:func:`distinct_schema`; ~30 ms to compile for 27 units).
Pairs of more than :data:`MAX_VALUES` values (a place enum of the conversation's word runs) are left alone.

When both members' values are dates (ISO dates, or "today" / "tomorrow" / "yesterday" resolved against the
turn's today), the second is also no earlier than the first: a span runs forward. "How many days to go until
my wedding on 20/09/2025?" had become ``start="2025-09-20", end="today"`` (−110 days); none of the 217 gold
start/end pairs of the pack's traces and sets runs backwards.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..synth_phrasing import name_tokens

__all__ = ["MAX_VALUES", "distinct_pairs", "distinct_schema"]

#: the word of a pair's first member → its second's
_PARTNER = {"from": "to", "source": "target", "src": "dest", "origin": "destination", "start": "end"}
_WORDS = frozenset(_PARTNER) | frozenset(_PARTNER.values())
#: pairs with more values than this are left alone (the anyOf grows with the square: a place enum of the
#: conversation's word runs holds hundreds)
MAX_VALUES = 64


def _role(name: str) -> tuple[str, tuple[str, ...]] | None:
    """(the pair word, the rest of the name's words), or None: ``from_unit`` → ("from", ("unit",))."""
    words = [w.lower() for w in name_tokens(name)]
    for i in (0, -1):
        if words and words[i] in _WORDS:
            return words[i], tuple(words[1:] if i == 0 else words[:-1])
    return None


def distinct_pairs(props: dict[str, Any]) -> list[tuple[str, str]]:
    """The (from, to) pairs among ``props``'s names whose other words agree (``from_unit``/``to_unit``)."""
    roles = {name: _role(name) for name in props}
    out = []
    for a, ra in roles.items():
        if ra is None or ra[0] not in _PARTNER:
            continue
        b = next((n for n, rb in roles.items() if rb == (_PARTNER[ra[0]], ra[1])), None)
        if b is not None:
            out.append((a, b))
    return out


_RELATIVE = {"today": 0, "tomorrow": 1, "yesterday": -1}


def _as_date(value: Any, today: dt.date | None) -> dt.date | None:
    """``value`` as a date: an ISO date, or a relative day word resolved against ``today``; else None."""
    if not isinstance(value, str):
        return None
    word = value.strip().lower()
    if word in _RELATIVE:
        return today + dt.timedelta(days=_RELATIVE[word]) if today is not None else None
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        return None


def _follows(first: Any, second: Any, today: dt.date | None) -> bool:
    """Whether ``second`` may pair with ``first``: another value, and not an earlier date."""
    if repr(first) == repr(second):
        return False
    a, b = _as_date(first, today), _as_date(second, today)
    return a is None or b is None or b > a


def _enum(spec: Any) -> list[Any] | None:
    return spec["enum"] if isinstance(spec, dict) and isinstance(spec.get("enum"), list) else None


def distinct_schema(schema: dict[str, Any], today: dt.date | None = None) -> dict[str, Any]:
    """``schema`` with its first from/to pair of enums made to differ, dates in order (an ``anyOf`` over the
    first member's values); the schema itself when it has no such pair, or combinators of its own.
    ``today``: what "today" in a date enum means (None: such a value is not ordered)."""
    props = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(props, dict) or any(k in schema for k in ("anyOf", "oneOf", "allOf")):
        return schema
    for a, b in distinct_pairs(props):
        first, second = _enum(props[a]), _enum(props[b])
        if not first or not second or not set(map(repr, first)) & set(map(repr, second)) \
                or max(len(first), len(second)) > MAX_VALUES:
            continue
        alternatives = []
        for v in first:
            others = [w for w in second if _follows(v, w, today)]
            if others:
                alternatives.append({**schema, "properties": {**props, a: {**props[a], "enum": [v]},
                                                               b: {**props[b], "enum": others}}})
        if not alternatives:
            return schema
        return {"type": "object", "anyOf": alternatives}
    return schema
