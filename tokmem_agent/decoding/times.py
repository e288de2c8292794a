"""Clock times in the user's words, and the forms a time argument may take (:mod:`.ground_args`' ``times``).

"half past 9 in the morning", "about 2 pm", "14:00", "3 in the afternoon", "noon" → (hour, minute) pairs
(:func:`conversation_times`); a time without a part of the day ("at 5:30") gives both readings. Each is
written ``"14:00"`` or ``"2:00 PM"`` (:func:`time_forms`), only the one a parameter's description asks for
when it says (:func:`clock_of`).
"""

from __future__ import annotations

import re
from typing import Any

from .dates import WORD_NUMBERS

__all__ = ["clock_of", "conversation_times", "time_forms"]

_HOUR = r"(\d{1,2}|" + "|".join(w for w, i in WORD_NUMBERS.items() if 1 <= i <= 12) + r")"
_AMPM = r"(a\.?\s?m\.?|p\.?\s?m\.?)(?![a-z])"
_PART = r"(?:in the |at |this |tomorrow |tonight)?(morning|afternoon|evening|night)"
_TIME_RES = [
    # 14:00, 9:30 am, 9:30 in the morning
    re.compile(r"\b(\d{1,2}):(\d{2})(?!\d)\s*(?:" + _AMPM + r"|" + _PART + r")?"),
    # half past 9 (in the morning), quarter past / to 4
    re.compile(r"\b(half past|quarter past|quarter to)\s+" + _HOUR + r"\b(?:\s*" + _AMPM + r"|\s*" + _PART + r")?"),
    # 2 pm, 2pm, 11 a.m.
    re.compile(r"\b" + _HOUR + r"\s*(?:o'?clock\s*)?" + _AMPM),
    # 3 in the afternoon, 7 o'clock in the evening, seven at night
    re.compile(r"\b" + _HOUR + r"\s*(?:o'?clock\s*)?" + r"(?:in the |at )(morning|afternoon|evening|night)\b"),
    # 7 o'clock
    re.compile(r"\b" + _HOUR + r"\s*o'?clock\b"),
]
_NOON = re.compile(r"\b(noon|midday|midnight)\b")

def _hour(text: str) -> int:
    return int(text) if text.isdigit() else WORD_NUMBERS[text]


def _is_pm(marker: str | None) -> bool | None:
    """True (afternoon/evening/night/pm), False (morning/am) or None (not said)."""
    if not marker:
        return None
    m = marker.replace(".", "").replace(" ", "")
    if m in ("am", "morning"):
        return False
    return True if m in ("pm", "afternoon", "evening", "night") else None


def _readings(h: int, m: int, pm: bool | None) -> list[tuple[int, int]]:
    if not (0 <= h <= 23 and 0 <= m <= 59):
        return []
    if h > 12 or h == 0:
        return [(h, m)]
    if pm is None:  # "5:30": either
        return [(h % 12, m), (h % 12 + 12, m)] if h != 12 else [(12, m), (0, m)]
    if pm:
        return [(12 if h == 12 else h + 12, m)]
    return [(0 if h == 12 else h, m)]


def conversation_times(text: str) -> list[tuple[int, int]]:
    """The clock times ``text`` states, as (hour 0-23, minute), in order of appearance, without repeats."""
    t = text.lower()
    found: list[tuple[int, tuple[int, int]]] = []
    taken: list[tuple[int, int]] = []  # spans already read, so "9:30 am" is not also read as "30 am"

    def add(pos: int, end: int, hm: list[tuple[int, int]]) -> None:
        if any(a < end and pos < b for a, b in taken):
            return
        taken.append((pos, end))
        found.extend((pos, x) for x in hm)

    for mt in _TIME_RES[0].finditer(t):
        add(mt.start(), mt.end(), _readings(int(mt.group(1)), int(mt.group(2)), _is_pm(mt.group(3) or mt.group(4))))
    for mt in _TIME_RES[1].finditer(t):
        h = _hour(mt.group(2))
        kind = mt.group(1)
        pm = _is_pm(mt.group(3) or mt.group(4))
        if kind == "half past":
            hm = _readings(h, 30, pm)
        elif kind == "quarter past":
            hm = _readings(h, 15, pm)
        else:
            hm = [((hh - 1) % 24, 45) for hh, _ in _readings(h, 0, pm)]
        add(mt.start(), mt.end(), hm)
    for rx in _TIME_RES[2:]:
        for mt in rx.finditer(t):
            marker = mt.group(2) if mt.lastindex and mt.lastindex >= 2 else None
            h = _hour(mt.group(1))
            if h > 12 and marker:
                continue
            add(mt.start(), mt.end(), _readings(h, 0, _is_pm(marker)))
    for mt in _NOON.finditer(t):
        add(mt.start(), mt.end(), [(0, 0)] if mt.group(1) == "midnight" else [(12, 0)])
    out: list[tuple[int, int]] = []
    for _, hm in sorted(found, key=lambda x: x[0]):
        if hm not in out:
            out.append(hm)
    return out


def time_forms(h: int, m: int, clock: str | None = None) -> list[str]:
    """The written forms a time argument may take: ``"14:00"`` and ``"2:00 PM"``; only the first with
    ``clock="24"``, only the second with ``clock="12"`` (see :func:`clock_of`)."""
    h12 = h % 12 or 12
    forms = [f"{h:02d}:{m:02d}", f"{h12}:{m:02d} {'PM' if h >= 12 else 'AM'}"]
    return forms[:1] if clock == "24" else forms[1:] if clock == "12" else forms


_CLOCK_24 = re.compile(r"24[- ]?h(our)?|\bhh:mm\b(?!\s*(am|pm|a\.m|p\.m))|\b([01]\d|2[0-3]):[0-5]\d\b(?!\s*[ap]\.?m)",
                       re.IGNORECASE)
_CLOCK_12 = re.compile(r"12[- ]?h(our)?|\bam\s*/\s*pm\b|\d\s*[ap]\.?m\.?\b", re.IGNORECASE)


def clock_of(spec: dict[str, Any]) -> str | None:
    """The clock a time parameter's description asks for: "24" ("HH:MM in 24-hour form", "e.g. 17:00"), "12"
    ("e.g. 5:00 PM", "AM/PM") or None (not said, or both)."""
    text = str(spec.get("description") or "")
    is24, is12 = bool(_CLOCK_24.search(text)), bool(_CLOCK_12.search(text))
    return "24" if is24 and not is12 else "12" if is12 and not is24 else None
