"""Quantities with units: a number argument whose parameter names a unit takes the numbers the user stated in
that unit's dimension, converted (:attr:`ControllerConfig.ground_quantities`).

A token learned from a schema alone has never seen its numbers written: asked for the BMI of someone "1.65 m
tall weighing 68 kilos", it wrote ``height_cm: 1.65``; for "183 cm tall and 95 kg heavy", ``weight_kg: 183``;
for "250k at 6.5 %", ``principal: 250``. The units are in the words, so the words decide:

* :func:`stated_quantities` reads each number of the user's messages with its magnitude ("250k", "1.2
  million") and the unit written after it ("1.65 m", "68 kilos", "15-year", "6.5%", "5 ft 10") or the
  currency sign before it ("$18,000"): a :class:`Quantity` with its dimensions (length, mass, duration,
  percent, money; "pounds" is mass or money) and its value in the dimension's base unit.
* :func:`param_unit` reads the unit a number parameter is in from its name (``weight_kg``, ``height_cm``,
  ``years``) or its description ("in centimetres", "in percent", "how many years"); a sum of money from its
  words ("amount", "principal", "price", …).
* :func:`quantity_values` gives the values such a parameter may take: the stated quantities of its dimension
  converted to its unit (1.65 m → 165 for ``height_cm``; 18 months → 1.5 for ``years``); when the user stated
  none of its dimension, the numbers stated with no unit at all (never another dimension's: 183 cm is no
  weight). The result becomes the parameter's ``enum``; an empty result leaves it free.

Which tools: "zero_data" (default) applies it to tools registered from their schema alone; True to every
tool. Measured in docs/benchmarks.md (session 18).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..synth_phrasing import name_tokens
from .dates import WORD_NUMBERS

__all__ = ["Quantity", "param_unit", "quantity_values", "stated_quantities"]

#: unit word → (dimension, size in the dimension's base unit): metres, kilograms, years, percent, money
UNITS: dict[str, tuple[tuple[str, float], ...]] = {}


def _unit(dimension: str, size: float, *words: str) -> None:
    for w in words:
        UNITS[w] = UNITS.get(w, ()) + ((dimension, size),)


_unit("length", 0.001, "mm", "millimeter", "millimeters", "millimetre", "millimetres")
_unit("length", 0.01, "cm", "cms", "centimeter", "centimeters", "centimetre", "centimetres")
_unit("length", 1.0, "m", "meter", "meters", "metre", "metres")
_unit("length", 1000.0, "km", "kms", "kilometer", "kilometers", "kilometre", "kilometres")
_unit("length", 0.0254, "inch", "inches")
_unit("length", 0.3048, "ft", "foot", "feet")
_unit("length", 0.9144, "yd", "yds", "yard", "yards")
_unit("length", 1609.344, "mi", "mile", "miles")
_unit("mass", 1e-6, "mg", "milligram", "milligrams")
_unit("mass", 0.001, "g", "gram", "grams", "gramme", "grammes")
_unit("mass", 1.0, "kg", "kgs", "kilo", "kilos", "kilogram", "kilograms", "kilogramme", "kilogrammes")
_unit("mass", 0.45359237, "lb", "lbs", "pound", "pounds")
_unit("mass", 0.028349523125, "oz", "ounce", "ounces")
_unit("mass", 6.35029318, "stone", "st")
_unit("duration", 1 / 31_557_600, "s", "sec", "secs", "second", "seconds")
_unit("duration", 1 / 525_960, "min", "mins", "minute", "minutes")
_unit("duration", 1 / 8766, "h", "hr", "hrs", "hour", "hours")
_unit("duration", 1 / 365.25, "day", "days")
_unit("duration", 7 / 365.25, "wk", "wks", "week", "weeks")
_unit("duration", 1 / 12, "mo", "mos", "month", "months")
_unit("duration", 1.0, "y", "yr", "yrs", "year", "years")
_unit("duration", 10.0, "decade", "decades")
_unit("percent", 1.0, "%", "percent", "pct", "per cent")
_unit("money", 1.0, "pound", "pounds", "dollar", "dollars", "euro", "euros", "quid", "bucks", "usd", "eur", "gbp",
      "cad", "aud", "chf", "jpy", "yen")

#: words of a parameter that make it a sum of money (no unit to convert: the numbers the user wrote as money,
#: else those written with no unit)
MONEY_WORDS = frozenset({"amount", "principal", "price", "cost", "salary", "income", "budget", "fee", "balance",
                         "deposit", "payment", "loan", "borrowed", "money", "spend", "rent", "revenue", "bill",
                         "savings", "investment", "invested", "debt"})
#: unit words never read in a parameter's name or description ("min_rating", "the 1st")
_NOT_PARAM_UNITS = frozenset({"min", "mins", "s", "h", "y", "st", "mo", "mos", "sec", "secs", "pound", "pounds"})
#: the short unit words read in a description (others need three letters: "in", "mi" are words of prose)
_SHORT_IN_PROSE = frozenset({"kg", "cm", "mm", "km", "lb", "ft", "%"})
_MAGNITUDE = {"k": 1e3, "thousand": 1e3, "grand": 1e3, "million": 1e6, "mn": 1e6, "m": 1e6, "billion": 1e9,
              "bn": 1e9, "b": 1e9}
_NUMBER = re.compile(r"(?<![\w.,:])(\d+(?:,\d{3})*(?:\.\d+)?)(?!\d|:\d)")  # not a clock time's
_WORDS = "|".join(sorted((w for w in WORD_NUMBERS if w != "zero"), key=len, reverse=True))
#: "a"/"an" counts one only after these ("for a year"; "how much a month" is a rate, not a span)
_A_AFTER = r"(?:(?<=\bfor )|(?<=\bover )|(?<=\bin )|(?<=\bwithin )|(?<=\bafter )|(?<=\babout ))"
_WORD_NUMBER = re.compile(r"\b(" + _WORDS + r"|" + _A_AFTER + r"an?)\b", re.IGNORECASE)
_UNIT_WORDS = "|".join(re.escape(w) for w in sorted(UNITS, key=len, reverse=True) if w != "%")
_AFTER = re.compile(r"\s*-?\s*(%|(?:" + _UNIT_WORDS + r")\b)", re.IGNORECASE)
_MAGNITUDE_AFTER = re.compile(r"(k|m|bn|b)\b|\s*(thousand|grand|million|mn|billion|bn)\b", re.IGNORECASE)
_MONEY_BEFORE = re.compile(r"(?:[$€£¥]|\b(?:usd|eur|gbp|us\$|aud|cad|chf))\s*$", re.IGNORECASE)
_FEET_INCHES = re.compile(r"(?<![\w.])(\d+)\s*(?:ft|foot|feet|')\s*(?:and\s+)?(\d+(?:\.\d+)?)"
                          r"\s*(?:in\b|inch(?:es)?\b|\"|”|″)?", re.IGNORECASE)


@dataclass(frozen=True)
class Quantity:
    """A number the user stated: ``value`` as written (magnitude applied), and for each dimension its unit
    could be of, the value in that dimension's base unit. No dimensions: written with no unit."""

    value: float
    dims: tuple[tuple[str, float], ...] = ()

    def in_dimension(self, dimension: str) -> float | None:
        return next((v for d, v in self.dims if d == dimension), None)


def stated_quantities(text: str) -> list[Quantity]:
    """The numbers of ``text`` (digits, or the words one to twenty and "a"/"an" before a unit) with their units,
    in order of appearance."""
    found: list[tuple[int, Quantity]] = []  # (where, what)
    taken: list[tuple[int, int]] = []
    for m in _FEET_INCHES.finditer(text):  # 5 ft 10 → 70 inches
        if float(m.group(2)) >= 12:
            continue
        metres = int(m.group(1)) * 0.3048 + float(m.group(2)) * 0.0254
        found.append((m.start(), Quantity(metres, (("length", metres),))))
        taken.append(m.span())
    numbers = [(m.start(), m.end(), float(m.group(1).replace(",", "")), True) for m in _NUMBER.finditer(text)]
    numbers += [(m.start(), m.end(), float(WORD_NUMBERS.get(m.group(1).lower(), 1)), False)
                for m in _WORD_NUMBER.finditer(text)]
    for start, end, value, digits in sorted(numbers):
        if any(a <= start < b for a, b in taken):
            continue
        money = _MONEY_BEFORE.search(text[max(0, start - 4):start]) is not None
        mag = _MAGNITUDE_AFTER.match(text, end) if digits else None
        if mag is not None:
            word = (mag.group(1) or mag.group(2)).lower()
            if word in ("m", "b") and not money:  # "1.65 m" is metres; "$2m" is money
                mag = None
            else:
                value *= _MAGNITUDE[word]
                end = mag.end()
        unit = _AFTER.match(text, end)
        if unit is None and not digits:
            continue  # "three" with no unit may be anything ("the three of us"); "a" surely is
        dims: list[tuple[str, float]] = []
        if unit is not None:
            dims += [(d, value * size) for d, size in UNITS[unit.group(1).lower()]]
        if money and not any(d == "money" for d, _ in dims):
            dims.append(("money", value))
        found.append((start, Quantity(value, tuple(dims))))
    return [q for _, q in sorted(found, key=lambda f: f[0])]


def param_unit(name: str, spec: dict[str, Any]) -> tuple[str, float] | None:
    """The (dimension, unit size) a number parameter is in, from its name's words ("kg" in ``weight_kg``,
    "years"), else the first unit word of its description ("in centimetres", "in percent"); ("money", 1) for
    a sum of money; None when neither says."""
    for w in name_tokens(name):
        if w in UNITS and w not in _NOT_PARAM_UNITS:  # "pound" names money or mass: neither is assumed
            return UNITS[w][0]
    desc = str(spec.get("description") or "")
    for w in re.findall(r"%|per cent|[a-z]+", desc.lower()):
        if w in UNITS and w not in _NOT_PARAM_UNITS and (len(w) >= 3 or w in _SHORT_IN_PROSE):
            return UNITS[w][0]
    words = set(name_tokens(name)) | set(re.findall(r"[a-z]+", desc.lower()))
    if words & MONEY_WORDS:
        return ("money", 1.0)
    return None


def _number(x: float, integer: bool, digits: int) -> int | float | None:
    x = round(x, digits)
    if x.is_integer():
        return int(x)
    return None if integer else x


def quantity_values(name: str, spec: dict[str, Any], quantities: Iterable[Quantity],
                    results: Iterable[float] = ()) -> list[int | float]:
    """The values the number parameter ``name`` (``spec``, unwrapped) may take, in the order stated: the
    quantities of its dimension converted to its unit, else those stated with no unit (and the tool
    results' numbers, which carry none); [] when its name and description state no unit."""
    unit = param_unit(name, spec)
    if unit is None:
        return []
    dimension, size = unit
    integer = spec.get("type") == "integer"
    quantities = list(quantities)
    values: list[tuple[float, int]] = []  # (value, decimals kept): converted to 2 (150 lb → 68.04 kg)
    for q in quantities:
        base = q.in_dimension(dimension)
        if base is not None:
            converted = abs(base - q.value * size) > 1e-9 * max(1.0, abs(base))
            values.append((base / size, 2 if converted else 6))
    if not values:
        values = [(q.value, 6) for q in quantities if not q.dims] + [(r, 6) for r in results]
    lo, hi = spec.get("minimum"), spec.get("maximum")
    out: list[int | float] = []
    for v, digits in values:
        n = _number(v, integer, digits)
        if n is not None and (lo is None or n >= lo) and (hi is None or n <= hi) and n not in out:
            out.append(n)
    return out
