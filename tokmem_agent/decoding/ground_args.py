"""Arguments grounded in the conversation: clock times the user stated, and optional parameters only when the
conversation mentions them (:attr:`ControllerConfig.ground_times`, :attr:`ControllerConfig.ground_optional`).

Both work by rewriting the schema one call is decoded under (the tool's own schema is untouched), so the
grammar makes the choice and the text the model wrote is the call that runs:

* **Times.** A string parameter that holds a clock time (its name has the word ``time``: ``pickup_time``,
  ``time``; no enum, pattern or format of its own) becomes an ``enum`` of the times the user's messages and
  the tool results state — "half past 9 in the morning", "about 2 pm", "14:00", "3 in the afternoon",
  "noon" — each in the forms ``"14:00"`` and ``"2:00 PM"``, so the model still picks the format it learned;
  only the one the parameter's description asks for when it says ("HH:MM in 24-hour form", "e.g. 5:00 PM").
  A time without a part of the day ("at 5:30") gives both readings. When the conversation states no time
  the parameter stays free.
* **Dates** (``ground_dates``). A date parameter (``date``/``due`` in its name, a date format or an ISO-date
  pattern; optional or not) becomes an ``enum`` of the dates the conversation states, resolved against
  today (:mod:`.dates`: "next Tuesday", "the 14th", "20/09/2025", "today"), as ISO dates; when its pattern
  accepts words, also "today" (and "tomorrow" when said) and today's ISO date. When no date is stated, or one that cannot be
  resolved ("Easter", "the end of the month"), the parameter stays free.
* **Optional parameters.** A small model fills optional parameters nobody asked for (``"has_wifi": true``,
  ``"due": "today"``). An optional parameter stays in the schema only when the conversation gives it
  something to copy: a boolean only when a word of its name occurs ("wifi" for ``has_wifi``); a number only
  as one of the numbers the conversation holds (digits or the words one to twenty), an integer only as one
  the user wrote that is neither a percentage nor a sum of money ("18%", "€92", "130 euros"), within its
  enum or bounds, its default staying a choice (writing it is leaving it out); a date only when the
  conversation speaks of dates at all; a time only when it states one. Other strings are left alone. A
  parameter left with nothing to take is removed, so the object closes without it.
* **Spans of days** (``ground_spans``). A number parameter that counts days (``days``, ``num_days``; no enum)
  takes only the spans the user's words state, signed (:func:`.dates.stated_spans`: "3 weeks ago" → -21,
  "a fortnight after Christmas" → 14), when they state any: a small model copies the "3" of "3 weeks" or
  loses the "ago". Required or optional alike.
* **Operations** (``ground_operators``). A string parameter that holds an arithmetic expression starts with an
  operation the latest user message asks for in words ("split it between 4" → its first operator is ``/``,
  "how much more" → ``-``) that no earlier call for this request did; division only after a tool result
  (:mod:`.operators`).
* **Quantities** (``ground_quantities``). A number parameter whose name or description names a unit
  (``weight_kg``, "in percent", "years", a sum of money) takes only the user's numbers of that dimension,
  converted ("1.65 m" → 165 for ``height_cm``), required or optional alike (:mod:`.quantities`).
* **Titles and texts** (``ground_titles``). A title parameter (``title``, ``subject``) takes only the titles
  the latest user message gives after a title word ("titled Boiler: …", "call it Bike key"), a note's text
  (``text``, ``body``) only the texts it gives after "with the text", "that says" … (:mod:`.titles`).
* **Optional parameters the user asks for** (``ground_named``). The other way round: an optional number or
  date parameter becomes required when a word of its name is in the user's words ("due" for ``due_by``) and
  the user stated a value for it that no call for this request has used yet; it then takes only those.

Conversation text = the user's messages and the tool results (never the assistant's own words).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .dates import ISO_DATE, WORD_NUMBERS, conversation_dates, iso_dates, stated_spans, unresolved_dates
from .operators import (
    expression_operators,
    expression_pattern,
    is_expression_param,
    needed_operators,
    percent_change,
    stated_operators,
)
from .params import free_string, param_words
from .quantities import Quantity, quantity_values, stated_quantities
from .times import clock_of, conversation_times, time_forms
from .titles import is_text_param, is_title_param, stated_spec, stated_texts, stated_titles

__all__ = ["ArgEvidence", "clock_of", "conversation_times", "ground_schema", "is_span_param", "mentions_date",
           "time_forms", "used_values"]

_DATE_WORDS = re.compile(
    r"\b(jan(uary)?|feb(ruary)?|mar(ch)?|apr(il)?|may|june?|july?|aug(ust)?|sept?(ember)?|oct(ober)?|"
    r"nov(ember)?|dec(ember)?)\b|\b\d{1,2}(st|nd|rd|th)\b|"
    r"\b(mon|tues|wednes|thurs|fri|satur|sun)day|\b(mon|tue|wed|thu|fri|sat|sun)\b|"
    r"\b(today|tomorrow|tonight|yesterday|weekend|week|weeks|fortnight|month|months|year|years|days?|"
    r"christmas|easter|halloween|holiday)\b|\d{4}-\d{1,2}-\d{1,2}|\b\d{1,2}/\d{1,2}\b")
_NUM = re.compile(r"(?<![\d.])\d+(?:,\d{3})*(?:\.\d+)?")
#: words of a parameter name that say nothing about what the user asked for
GENERIC_WORDS = frozenset("has have is are can allow allows number num of the name type to from a an in for and "
                          "or with id flag whether if by at on per".split())


def mentions_date(text: str) -> bool:
    """Whether ``text`` speaks of a date or a span of days at all (month, ordinal, weekday, today, week, ISO …)."""
    return bool(_DATE_WORDS.search(text.lower()))


#: a nationality before a currency's name ("1500 Swedish kronor", "250 British pounds")
_NATION = (r"(?:us|u\.s\.|american|canadian|australian|new zealand|swiss|swedish|norwegian|danish|japanese|chinese|"
           r"british|mexican|indian|south african|hong kong|singapore|brazilian|korean|south korean|russian|"
           r"turkish|polish|thai|israeli|emirati|malaysian|czech|hungarian|argentine|chilean|colombian)\s+")
_CURRENCY_NAMES = (r"dollars?|euros?|pounds?|yen|francs?|quid|bucks|pesos?|rupees?|kronor|krona|kroner|krone|yuan|"
                   r"renminbi|won|rand|reais|real|zloty|lira|baht|dirhams?|shekels?|ringgit|rubles?|roubles?|forint|"
                   r"koruna")
_MEASURE_AFTER = re.compile(r"\s*(%|(?:percent|per\s?cent|usd|eur|gbp|jpy|chf|cad|aud|mxn|inr|sek|nok|dkk|cny|krw|brl|"
                            r"zar|nzd|sgd|hkd|" + _CURRENCY_NAMES + r")\b|" + _NATION + r"(?:" + _CURRENCY_NAMES +
                            r")\b)", re.IGNORECASE)
_MONEY_BEFORE = re.compile(r"[$€£¥]\s*$")


def stated_counts(text: str) -> set[float]:
    """The whole numbers of ``text`` that may count something: as :func:`stated_numbers`, less the
    percentages ("18%", "10 percent") and sums of money ("€92", "130 euros")."""
    out: set[float] = set()
    for m in _NUM.finditer(text):
        if _MEASURE_AFTER.match(text, m.end()) or _MONEY_BEFORE.search(text[max(0, m.start() - 3):m.start()]):
            continue
        v = float(m.group().replace(",", ""))
        if v.is_integer():
            out.add(v)
    out |= {float(WORD_NUMBERS[w]) for w in re.findall(r"[a-z]+", text.lower()) if w in WORD_NUMBERS}
    return out


def stated_numbers(text: str) -> set[float]:
    """Numbers ``text`` holds, in digits (thousands separators allowed) or as the words zero to twenty."""
    out = {float(m.replace(",", "")) for m in _NUM.findall(text)}
    out |= {float(WORD_NUMBERS[w]) for w in re.findall(r"[a-z]+", text.lower()) if w in WORD_NUMBERS}
    return out


def name_words(name: str) -> set[str]:
    """The telling words of a parameter name (``has_wifi`` → {"wifi"}; ``petsWelcome`` → {"pets", "welcome"})."""
    return {w for w in param_words(name) if len(w) >= 3 and w not in GENERIC_WORDS}


def _said(word: str, text: str) -> bool:
    stem = word[: max(3, len(word) - 1)]  # "pets" → "pet", "wifi" → "wif"
    return re.search(r"\b" + re.escape(stem), text) is not None


@dataclass(frozen=True)
class ArgEvidence:
    """What one turn's conversation offers its arguments (see the module doc)."""

    text: str  # lower-cased user messages and tool results
    times: tuple[tuple[int, int], ...]
    numbers: frozenset[float]
    counts: frozenset[float]
    has_date: bool
    said: str = ""  # lower-cased user messages alone
    said_numbers: frozenset[float] = frozenset()  # the numbers of the user's messages alone
    result_dates: tuple[dt.date, ...] = ()  # the ISO dates of the tool results
    used: frozenset[str] = frozenset()  # argument values the calls since the last user message wrote
    spans: tuple[int, ...] = ()  # the spans of days the user's words state, signed (dates.stated_spans)
    operators: frozenset[str] = frozenset()  # the operations the latest user message asks for (.operators)
    done_operators: frozenset[str] = frozenset()  # the operations the calls for this request wrote
    after_result: bool = False  # a call (and so a result) came since the latest user message
    quantities: tuple[Quantity, ...] = ()  # the user's numbers with their units (.quantities)
    result_numbers: tuple[float, ...] = ()  # the numbers of the tool results
    titles: tuple[str, ...] = ()  # the titles the latest user message gives ("titled Boiler": .titles)
    texts: tuple[str, ...] = ()  # the note texts it gives ("with the text …": .titles)
    percent_sign: str | None = None  # "+"/"-": the latest user message asks for a rise/fall by a percentage
    _dates: dict[dt.date, tuple[dt.date, ...]] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, texts: Iterable[str], results: Iterable[str] = (),
           calls: Iterable[dict[str, Any]] = ()) -> ArgEvidence:
        """From the user's messages ``texts`` and the tool ``results``; counts come from the user alone (a
        result's figures are amounts: a converted 130 is not a number of people). ``calls``: the arguments
        (dicts) of the calls made for the current request, whose values are :attr:`used`."""
        texts, results, calls = list(texts), list(results), list(calls)
        said = "\n".join(texts).lower()
        text = "\n".join([said, *results]).lower()
        done = frozenset(op for e in _strings(calls) for op in expression_operators(e))
        return cls(text, tuple(conversation_times(text)), frozenset(stated_numbers(text)),
                   frozenset(stated_counts(said)), mentions_date(text), said, frozenset(stated_numbers(said)),
                   tuple(d for r in results for d in iso_dates(r)), used_values(calls), tuple(stated_spans(said)),
                   stated_operators(texts[-1]) if texts else frozenset(), done, bool(calls),
                   tuple(q for t in texts for q in stated_quantities(t)),
                   tuple(sorted(stated_numbers("\n".join(results)))), stated_titles(texts[-1]) if texts else (),
                   stated_texts(texts[-1]) if texts else (), percent_change(texts[-1]) if texts else None)

    def user_dates(self, today: dt.date) -> tuple[dt.date, ...]:
        """The dates the user's messages state, resolved against ``today`` (:mod:`.dates`; cached)."""
        if today not in self._dates:
            self._dates[today] = tuple(conversation_dates(self.said, today))
        return self._dates[today]

    def dates(self, today: dt.date) -> tuple[dt.date, ...]:
        """The dates the conversation states: the user's, and the ISO dates of the tool results (a result's
        "Thursday" or "days" is no new date)."""
        return tuple(dict.fromkeys([*self.user_dates(today), *self.result_dates]))


def _value_key(v: Any) -> str:
    """One spelling of a value for "was it used": numbers as floats, strings lower-cased."""
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, (int, float)):
        return repr(float(v))
    return str(v).strip().lower()


_ARITHMETIC = re.compile(r"[\d)]\s*(?:[-+*/%^]|\*\*)\s*[\d(]")


def used_values(calls: Iterable[dict[str, Any]]) -> frozenset[str]:
    """The values the arguments ``calls`` wrote (and the operands of an arithmetic string, "3 * 18.50"),
    spelled by :func:`_value_key`."""
    out: set[str] = set()

    def walk(v: Any) -> None:
        if isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
        elif v is not None:
            out.add(_value_key(v))
            if isinstance(v, str) and _ARITHMETIC.search(v) and not ISO_DATE.fullmatch(v.strip()):
                out.update(repr(float(m.replace(",", ""))) for m in _NUM.findall(v))
    for args in calls:
        walk(args)
    return frozenset(out)


def _strings(calls: Iterable[dict[str, Any]]) -> list[str]:
    """The arithmetic strings among the argument values of ``calls`` (top level)."""
    return [v for args in calls for v in args.values() if isinstance(v, str) and _ARITHMETIC.search(v)]


def _unwrap(spec: dict[str, Any]) -> dict[str, Any]:
    """An ``Optional[X]`` schema (``anyOf`` of X and null) as X, keeping the outer description; else itself."""
    branches = spec.get("anyOf")
    if isinstance(branches, list) and "type" not in spec:
        real = [b for b in branches if isinstance(b, dict) and b.get("type") != "null"]
        if len(real) == 1:
            outer = {k: v for k, v in spec.items() if k not in ("anyOf", "default")}
            return {**real[0], **outer}
    return spec


def is_time_param(name: str, spec: Any) -> bool:
    """A free-form string parameter whose name has the word ``time``."""
    return free_string(spec) and "time" in name_words(name)


def is_date_param(name: str, spec: Any) -> bool:
    """A string parameter that holds a date (``date``/``due`` in its name, a date format or an ISO-date pattern),
    optional (``anyOf`` with null) or not, without an enum of its own."""
    if not isinstance(spec, dict):
        return False
    spec = _unwrap(spec)
    if spec.get("type") != "string" or "enum" in spec or "const" in spec:
        return False
    words = name_words(name)
    return "date" in words or "due" in words or spec.get("format") == "date" or \
        "\\d{4}-\\d{2}-\\d{2}" in str(spec.get("pattern", ""))


def is_span_param(name: str, spec: Any) -> bool:
    """A number parameter without an enum whose name counts days (``days``, ``num_days``, ``days_ahead``)."""
    if not isinstance(spec, dict):
        return False
    spec = _unwrap(spec)
    words = name_words(name)
    return spec.get("type") in ("integer", "number") and "enum" not in spec and "const" not in spec and \
        bool(words & {"day", "days"})


def _span_values(spec: dict[str, Any], ev: ArgEvidence) -> list[int]:
    """The user's spans of days a day-count parameter (``spec`` unwrapped) may take, within its bounds."""
    lo, hi = spec.get("minimum"), spec.get("maximum")
    return [v for v in ev.spans if (lo is None or v >= lo) and (hi is None or v <= hi)]


def _numeric(spec: dict[str, Any]) -> bool:
    if spec.get("type") in ("integer", "number"):
        return True
    enum = spec.get("enum")
    return isinstance(enum, list) and bool(enum) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                         for v in enum)


def _ground_number(spec: dict[str, Any], ev: ArgEvidence) -> dict[str, Any] | None:
    """An optional numeric parameter limited to the conversation's numbers and its default (writing the
    default is leaving it out), or None when the conversation holds no number for it."""
    integer = spec.get("type") == "integer"
    values = sorted(ev.counts if integer else ev.numbers)
    enum = spec.get("enum")
    if isinstance(enum, list):
        allowed = [v for v in enum if isinstance(v, (int, float)) and float(v) in set(values)]
    else:
        allowed = [int(v) if v.is_integer() else v for v in values]
        lo, hi = spec.get("minimum"), spec.get("maximum")
        allowed = [v for v in allowed if (lo is None or v >= lo) and (hi is None or v <= hi)]
    if not allowed:
        return None
    return {**spec, "enum": _with_default(allowed, spec, integer)}


def _with_default(values: list[Any], spec: dict[str, Any], integer: bool) -> list[Any]:
    """``values`` with the parameter's numeric default among them (writing the default is leaving it out)."""
    default = spec.get("default")
    if isinstance(default, (int, float)) and not isinstance(default, bool) and default not in values:
        values.append(int(default) if integer or float(default).is_integer() else default)
    return values


_TODAY_SAID = re.compile(r"\b(today|tonight|now|this (?:morning|afternoon|evening))\b")


def _date_values(spec: dict[str, Any], ev: ArgEvidence, today: dt.date) -> list[str]:
    """The values a date parameter may take: the conversation's dates as ISO dates, today's too when it says
    "today" (or "tonight", "now"), and, when the parameter's pattern accepts words, "today" (always: the
    tool reads it as its own today) and "tomorrow" (when said). [] when the conversation states no date, or
    speaks of one that cannot be resolved ("Easter", "the end of the month")."""
    stated = ev.dates(today)
    if not stated or unresolved_dates(ev.text):
        return []
    said_today = _TODAY_SAID.search(ev.text) is not None
    values = [d.isoformat() for d in ((today,) if said_today else ()) + stated]
    pattern = spec.get("pattern")
    if isinstance(pattern, str):
        words = ["today"] + (["tomorrow"] if re.search(r"\btomorrow\b", ev.text) else [])
        try:
            values = [v for v in words + [today.isoformat()] + values if re.search(pattern, v)]
        except re.error:
            pass
    return list(dict.fromkeys(values))


#: words of a parameter name that make it a limit on how many results come back (``limit``, ``max_results``)
LIMIT_WORDS = frozenset({"limit", "max", "maximum", "top", "results", "count"})
#: how people ask for at most N results: "just the first 2", "top 3", "only 5", "at most 4", "no more than 10"
_LIMIT_ASKED = re.compile(r"\b(?:first|top|only|at most|up to|no more than|max(?:imum)?(?: of)?|limit(?:ed)? to)\s+"
                          r"(\d+|" + "|".join(w for w in WORD_NUMBERS if w != "zero") + r")\b")


def _limit_asked(name: str, ev: ArgEvidence) -> set[float]:
    """The limits the user's words ask for ("just the first 2" → {2}) when ``name`` is a limit parameter."""
    if not name_words(name) & LIMIT_WORDS:
        return set()
    return {float(WORD_NUMBERS.get(m, m)) for m in _LIMIT_ASKED.findall(ev.said)}


def _named_values(name: str, spec: dict[str, Any], grounded: dict[str, Any], ev: ArgEvidence,
                  today: dt.date) -> list[Any]:
    """The values an optional parameter must take because the user asked for it: a telling word of its name
    is in the user's words ("due" for ``due_by``, "people" for ``people``) and the grounded choices hold a
    value the user's words state (not a tool result's: its "Thursday" is no request) that no call for this
    request has used yet ("add 'x' due the 4th, then show what's due by the 6th": the list takes the 6th).
    A limit parameter (``limit``, ``max_results``) asked for as "the first 2", "top 3" takes that number.
    [] when it stays optional."""
    limits = _limit_asked(name, ev)
    if limits:
        return [v for v in grounded.get("enum") or [] if not isinstance(v, str) and float(v) in limits]
    words = name_words(name)
    if not words or not any(_said(w, ev.said) for w in words):
        return []
    today_iso = today.isoformat()
    said_today = _TODAY_SAID.search(ev.said) is not None
    used = set(ev.used) | ({today_iso, "today"} if ev.used & {today_iso, "today"} else set())
    user_dates = {d.isoformat() for d in ev.user_dates(today)}  # not a result's "Thursday"
    user_numbers = ev.counts if spec.get("type") == "integer" else ev.said_numbers
    out = []
    for v in grounded.get("enum") or []:
        if isinstance(v, str):  # a date
            if not (v in ("today", today_iso) and said_today or v in user_dates and v != today_iso):
                continue
        elif float(v) not in user_numbers:
            continue  # a figure of a tool result, or the default the schema added, is no request
        if _value_key(v) not in used:
            out.append(v)
    return out


def _quantity_spec(name: str, spec: dict[str, Any], ev: ArgEvidence) -> dict[str, Any] | None:
    """A number parameter with a unit limited to the user's quantities of its dimension, converted
    (:mod:`.quantities`), its default kept as a choice; None when there are none."""
    inner = _unwrap(spec)
    if inner.get("type") not in ("integer", "number") or "enum" in inner or "const" in inner:
        return None
    values = quantity_values(name, inner, ev.quantities, ev.result_numbers if ev.after_result else ())
    if not values:
        return None
    values = _with_default(values, inner, inner.get("type") == "integer")
    return {**{k: v for k, v in inner.items() if k not in ("minimum", "maximum", "exclusiveMinimum",
                                                              "exclusiveMaximum", "multipleOf")}, "enum": values}


def ground_schema(schema: dict[str, Any], ev: ArgEvidence | None, *, times: bool = True,
                  optional: bool = True, dates: bool = False, today: dt.date | None = None,
                  named: bool = False, spans: bool = False, operators: bool = False,
                  quantities: bool = False, expression_numbers: bool = False,
                  titles: bool = False) -> dict[str, Any]:
    """``schema`` for one call in this conversation: time and date parameters limited to the stated ones,
    (``spans``) day counts to the stated spans, optional parameters the conversation gives nothing for
    removed, and (``named``) optional number and date parameters the user asked for made required
    (:func:`_named_values`), and (``operators``) an arithmetic expression written well-formed and made to
    start with an operation the request asks for, (``expression_numbers``) with only the conversation's
    numbers and a few constants (:mod:`.operators`), (``titles``) a title or note-text parameter limited to
    the titles or texts the request gives after a marker word (:mod:`.titles`), and (``quantities``) a number parameter with a unit limited to the
    user's quantities of its dimension (:mod:`.quantities`); the schema itself when nothing changes.
    ``today``: what relative dates resolve against (default: this machine's date)."""
    props = schema.get("properties") if isinstance(schema, dict) else None
    if ev is None or not isinstance(props, dict) or not (times or optional or dates or spans or operators
                                                          or quantities or expression_numbers or titles):
        return schema
    today = today or dt.date.today()
    required = set(schema.get("required") or [])
    promoted: list[str] = []
    new: dict[str, Any] = {}
    changed = False
    for name, spec in props.items():
        out: Any = spec
        if isinstance(spec, dict):
            timed = is_time_param(name, spec)
            dated = is_date_param(name, spec)
            measured = _quantity_spec(name, spec, ev) if quantities else None
            if measured is not None:
                out = measured
            if times and timed and ev.times:
                clock = clock_of(spec)
                out = {**spec, "enum": list(dict.fromkeys(f for hm in ev.times for f in time_forms(*hm, clock)))}
            if dates and dated:
                inner = _unwrap(spec)
                values = _date_values(inner, ev, today)
                if values:
                    out = {**{k: v for k, v in inner.items() if k not in ("pattern", "format")}, "enum": values}
            if optional and name not in required and "const" not in spec:
                if timed and not ev.times:
                    out = None
                elif spec.get("type") == "boolean":
                    words = name_words(name)
                    out = spec if words and any(_said(w, ev.text) for w in words) else None
                elif _numeric(spec) and measured is None:
                    out = _ground_number(spec, ev)
                elif dated and not ev.has_date:
                    out = None
                if named and isinstance(out, dict) and (dated or _numeric(spec)) and "enum" in out:
                    values = _named_values(name, spec, out, ev, today)
                    if values:
                        out = {**out, "enum": values}
                        promoted.append(name)
            if spans and ev.spans and is_span_param(name, spec):
                inner = _unwrap(spec)
                values = _span_values(inner, ev)
                if values:  # the stated spans replace whatever the rules above allowed
                    out = {**{k: v for k, v in inner.items() if k != "default"}, "enum": values}
            if titles and ev.titles and isinstance(out, dict) and is_title_param(name, out):
                out = stated_spec(out, ev.titles) or out
            elif titles and ev.texts and isinstance(out, dict) and is_text_param(name, out):
                out = stated_spec(out, ev.texts) or out
            if (operators or expression_numbers) and isinstance(out, dict) and is_expression_param(name, out):
                need = needed_operators(ev.operators, ev.done_operators, ev.after_result) if operators else ()
                sign = ev.percent_sign if operators and ev.percent_sign not in ev.done_operators else None
                out = {**out, "pattern": expression_pattern(need, ev.numbers if expression_numbers else None, sign)}
        if out is None:
            changed = True
            continue
        changed |= out is not spec
        new[name] = out
    if not changed:
        return schema
    if promoted:
        return {**schema, "properties": new, "required": [*(schema.get("required") or []), *promoted]}
    return {**schema, "properties": new}
