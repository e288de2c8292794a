"""Calendar dates a conversation states, resolved against a reference date ("today").

Used by grounded arguments (:mod:`.ground_args`): a date parameter takes one of these, so "next Tuesday",
"the 14th", "2nd of this month", "March 13th" or "20/09/2025" become ISO dates the model picks from instead of
dates it makes up. What is read (case-insensitive):

* ISO dates (``2025-06-02``), ``dd/mm/yyyy`` and ``mm/dd/yyyy`` (both readings when both are valid);
* a month and a day in either order, with or without an ordinal suffix and a year ("March 13th", "13 Mar",
  "the 13th of March 2026"); without a year, the reference's year (and the next one when that date has
  passed);
* a bare ordinal day ("the 14th", "on the 2nd"): that day of the reference month (or the next month, when
  it has passed);
* weekdays ("Friday", "next Tuesday", "this Thursday", "Tuesday next week"): the next such day after the
  reference, and a week later too after "next";
* fixed-day holidays ("Christmas Day 2025", "Halloween", "New Year's Eve": :data:`HOLIDAYS`);
* today, tonight, tomorrow, the day after tomorrow, yesterday; "in 3 days", "10 days from now", "a week from
  today", "in two weeks", "3 weeks ago".

"Tuesday next week" is the Tuesday of the next calendar week; "next Tuesday" gives the next Tuesday and the
one a week later, since people mean either.

Arithmetic the user asks of a tool ("what date is 30 days before …") gives no date here: those are
arguments, not dates to copy. :func:`stated_spans` reads their *spans* instead ("30 days before" → -30,
"a fortnight after" → 14, "3 weeks ago" → -21), for a parameter that counts days.
"""

from __future__ import annotations

import datetime as dt
import re

__all__ = ["ISO_DATE", "WORD_NUMBERS", "conversation_dates", "iso_dates", "unresolved_dates"]

#: holidays on a fixed day (month, day); a year after the name ("Halloween 2025") picks the year, else the
#: next one to come
HOLIDAYS = {"christmas eve": (12, 24), "christmas day": (12, 25), "christmas": (12, 25), "xmas": (12, 25),
            "boxing day": (12, 26), "new year's eve": (12, 31), "new years eve": (12, 31),
            "new year's day": (1, 1), "new years day": (1, 1), "halloween": (10, 31),
            "valentine's day": (2, 14), "valentines day": (2, 14), "valentine's": (2, 14),
            "independence day": (7, 4), "fourth of july": (7, 4), "4th of july": (7, 4),
            "st patrick's day": (3, 17), "st. patrick's day": (3, 17), "bonfire night": (11, 5),
            "guy fawkes night": (11, 5)}
#: date words this module cannot resolve: a conversation holding one keeps its date parameters free
_UNRESOLVED = re.compile(r"\b(easter|thanksgiving|mother'?s day|father'?s day|labou?r day|memorial day|ramadan|"
                         r"diwali|hanukkah|passover|(?:end|start|beginning|middle) of (?:the |this |next )?"
                         r"(?:month|year|week)|mid-?(?:month|year|january|february|march|april|may|june|july|"
                         r"august|september|october|november|december)|business days?|working days?|weekdays)\b")
_HOLIDAY_RE = re.compile(r"\b(" + "|".join(re.escape(h) for h in sorted(HOLIDAYS, key=len, reverse=True)) +
                         r")(?:\s+(?:day\s+)?(\d{4}))?")


def unresolved_dates(text: str) -> bool:
    """Whether ``text`` speaks of dates this module cannot resolve (Easter, "the end of the month" …)."""
    return _UNRESOLVED.search(text.lower()) is not None


MONTHS = {m: i + 1 for i, m in enumerate(
    "january february march april may june july august september october november december".split())}
_MONTH_RE = r"(jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|" \
            r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
_DAY_RE = r"(\d{1,2})(?:st|nd|rd|th)?"
_YEAR_RE = r"(?:,?\s*(\d{4}))?"
WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
#: numbers written as words (the words up to twelve also count days and weeks: "in two weeks")
WORD_NUMBERS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())}
WORD_NUMBERS["dozen"] = 12
_COUNT = {w: i for w, i in WORD_NUMBERS.items() if i <= 12 and w != "dozen"}
_COUNT.update({"a": 1, "an": 1, "a couple of": 2, "couple of": 2})
_N = r"(\d+|a couple of|couple of|a|an|" + "|".join(w for w in _COUNT if " " not in w and len(w) > 2) + r")"

#: an ISO date ("2025-06-02"; one-digit months and days too)
ISO_DATE = re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b")
_PATTERNS = {
    "iso": ISO_DATE,
    "slash": re.compile(r"\b(\d{1,2})/(\d{1,2})/(\d{4})\b"),
    "month_day": re.compile(r"\b" + _MONTH_RE + r"\s+(?:the\s+)?" + _DAY_RE + r"\b" + _YEAR_RE),
    "day_month": re.compile(r"\b(?:the\s+)?" + _DAY_RE + r"\s+(?:of\s+)?" + _MONTH_RE + r"\b" + _YEAR_RE),
    "ordinal": re.compile(r"\b(?:the\s+)(\d{1,2})(?:st|nd|rd|th)\b|\b(\d{1,2})(?:st|nd|rd|th)\b"),
    "weekday": re.compile(r"\b(next\s+|this\s+|coming\s+)?(" + "|".join(WEEKDAYS) + r")(\s+next\s+week)?\b"),
    "relative": re.compile(r"\b(day after tomorrow|today|tonight|tomorrow|yesterday)\b"),
    "offset": re.compile(r"\b(?:in\s+" + _N + r"\s+(day|week)s?|" + _N + r"\s+(day|week)s?\s+(from now|from today|"
                         r"ago))\b"),
}


def _month(text: str) -> int:
    t = text.rstrip(".").lower()
    return next(i for name, i in MONTHS.items() if name.startswith(t[:3]))


def _count(text: str) -> int:
    return int(text) if text.isdigit() else _COUNT[text]


def _safe(y: int, m: int, d: int) -> dt.date | None:
    try:
        return dt.date(y, m, d)
    except ValueError:
        return None


def _yearless(today: dt.date, m: int, d: int) -> list[dt.date]:
    this = _safe(today.year, m, d)
    if this is None:
        return []
    return [this] if this >= today else [this, *filter(None, [_safe(today.year + 1, m, d)])]


def iso_dates(text: str) -> list[dt.date]:
    """The valid ISO dates ``text`` holds, in order (what a tool result states as a date)."""
    return [d for m in ISO_DATE.finditer(text) if (d := _safe(int(m[1]), int(m[2]), int(m[3]))) is not None]


def conversation_dates(text: str, today: dt.date) -> list[dt.date]:
    """The dates ``text`` states, resolved against ``today``, in order of appearance, without repeats."""
    t = text.lower().replace("’", "'")  # "Valentine’s Day" as "Valentine's Day"
    found: list[tuple[int, dt.date]] = []
    taken: list[tuple[int, int]] = []

    def add(span: tuple[int, int], dates: list[dt.date | None]) -> None:
        if any(a < span[1] and span[0] < b for a, b in taken):
            return
        taken.append(span)
        found.extend((span[0], d) for d in dates if d is not None)

    for m in _HOLIDAY_RE.finditer(t):
        month, d = HOLIDAYS[m[1]]
        add(m.span(), [_safe(int(m[2]), month, d)] if m[2] else list(_yearless(today, month, d)))
    for m in _PATTERNS["iso"].finditer(t):
        add(m.span(), [_safe(int(m[1]), int(m[2]), int(m[3]))])
    for m in _PATTERNS["slash"].finditer(t):
        a, b, y = int(m[1]), int(m[2]), int(m[3])
        add(m.span(), [_safe(y, b, a), _safe(y, a, b) if a != b else None])
    for key in ("month_day", "day_month"):
        for m in _PATTERNS[key].finditer(t):
            mon, day = (m[1], m[2]) if key == "month_day" else (m[2], m[1])
            month, d = _month(mon), int(day)
            add(m.span(), [_safe(int(m[3]), month, d)] if m[3] else list(_yearless(today, month, d)))
    for m in _PATTERNS["ordinal"].finditer(t):
        d = int(m[1] or m[2])
        this = _safe(today.year, today.month, d)
        nxt_month = (today.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
        later = _safe(nxt_month.year, nxt_month.month, d)
        add(m.span(), [this] if this is not None and this >= today else [this, later])
    for m in _PATTERNS["weekday"].finditer(t):
        day = WEEKDAYS.index(m[2])
        if m[3]:  # "Tuesday next week": that day of the next calendar week
            add(m.span(), [today + dt.timedelta(days=7 - today.weekday() + day)])
            continue
        first = today + dt.timedelta(days=(day - today.weekday() - 1) % 7 + 1)  # 1..7 days after today
        add(m.span(), [first, first + dt.timedelta(days=7)] if (m[1] or "").strip() == "next" else [first])
    for m in _PATTERNS["offset"].finditer(t):
        if m[1]:
            n, unit, sign = _count(m[1]), m[2], 1
        else:
            n, unit = _count(m[3]), m[4]
            sign = -1 if m[5] == "ago" else 1
        add(m.span(), [today + dt.timedelta(days=sign * n * (7 if unit == "week" else 1))])
    for m in _PATTERNS["relative"].finditer(t):
        shift = {"today": 0, "tonight": 0, "tomorrow": 1, "day after tomorrow": 2, "yesterday": -1}[m[1]]
        add(m.span(), [today + dt.timedelta(days=shift)])
    out: list[dt.date] = []
    for _, d in sorted(found, key=lambda x: x[0]):
        if d not in out:
            out.append(d)
    return out


_SPAN_N = r"(\d+|a couple of|couple of|a|an|" + "|".join(w for w, i in WORD_NUMBERS.items() if 1 <= i <= 20) + r")"
_SPAN_RE = re.compile(r"\b(?:(in|back|go back|within)\s+)?" + _SPAN_N + r"[\s-]+(days?|weeks?|fortnights?)\b"
                      r"(?:\s+(ago|before|earlier|prior|back|previously|from now|from today|after|later|ahead|"
                      r"hence|on|out|from))?")
_BACKWARD = {"ago", "before", "earlier", "prior", "back", "previously"}


def stated_spans(text: str) -> list[int]:
    """The spans of days ``text`` states, signed, in order, without repeats: "30 days before …" → -30, "a
    fortnight after …" → 14, "in two weeks" → 14, "3 weeks ago" → -21, "takes 21 days" → 21. "A day"/"a week"
    count only with a direction ("a week from today", "in a week"): alone they mostly mean *per* ("5000 yen a
    day"). Months and years are no fixed number of days and are not read."""
    out: list[int] = []
    for m in _SPAN_RE.finditer(text.lower()):
        before, n, unit, after = m[1], m[2], m[3], m[4]
        if n in ("a", "an") and not (before or after):
            continue
        count = int(n) if n.isdigit() else _COUNT.get(n, WORD_NUMBERS.get(n, 1))
        days = count * (14 if unit.startswith("fortnight") else 7 if unit.startswith("week") else 1)
        sign = -1 if after in _BACKWARD or (before or "").endswith("back") else 1
        if sign * days not in out:
            out.append(sign * days)
    return out
