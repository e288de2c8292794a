"""How synthetic requests and answers are worded (zero-data registration; no torch here).

A tool's schema gives names, descriptions, types and sometimes units; people asking for the tool use none
of those words the way the schema does. This module turns one sampled argument object into one of many
surface forms of a request:

* an *intent* phrase from the tool's description (a noun phrase — "the monthly payment" — or a verb
  phrase — "convert a clock time") or from its name's words, in question, imperative and terse forms;
* one *mention* per argument: a value with its unit ("6.5%", "30 years", "75 kg", "3 pm"), in written
  forms people use ("250,000", "250k", "$1,200"), or after the parameter's own words ("amount borrowed
  250000"), or "from X" / "to Y" for paired parameters;
* a check that the request carries no number that is not an argument (descriptions such as "(5 for 5 %)"
  would otherwise teach the model to copy stray numbers).

It also words an answer from a tool's result (the figures, once), for traces whose tool was run.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Unit kinds: words in a parameter's name (split on _ and case) or description → kind.
_UNIT_WORDS: list[tuple[str, tuple[str, ...]]] = [
    ("percent", ("percent", "percentage", "pct", "%")),
    ("years", ("years", "year", "yrs")),
    ("months", ("months", "month")),
    ("weeks", ("weeks", "week")),
    ("days", ("days",)),
    ("hours", ("hours", "hrs")),
    ("minutes", ("minutes", "mins")),
    ("kg", ("kg", "kilograms", "kilogram", "kilos")),
    ("cm", ("cm", "centimetres", "centimeters", "centimetre", "centimeter")),
    ("km", ("km", "kilometres", "kilometers")),
    ("miles", ("miles",)),
    ("celsius", ("celsius",)),
    ("fahrenheit", ("fahrenheit",)),
]
_MONEY_NAMES = {"amount", "price", "cost", "principal", "bill", "salary", "balance", "budget", "fee", "income",
                "payment", "fare", "rent", "deposit", "loan", "revenue", "spend", "spending", "savings"}
#: sampling ranges of numbers by unit kind (clipped to the schema's bounds)
UNIT_RANGES: dict[str, tuple[float, float, int]] = {  # lo, hi, decimals allowed
    "percent": (0.5, 25, 2), "years": (1, 40, 0), "months": (1, 48, 0), "weeks": (1, 16, 0), "days": (1, 120, 0),
    "hours": (1, 48, 0), "minutes": (5, 180, 0), "kg": (40, 130, 1), "cm": (140, 205, 0), "km": (1, 800, 1),
    "miles": (1, 500, 1), "celsius": (-15, 40, 1), "fahrenheit": (10, 100, 0),
}
_UNIT_FORMS: dict[str, list[str]] = {
    "percent": ["{v}%", "{v} %", "{v} percent", "{v} per cent"],
    "years": ["{v} years", "{v} yrs", "over {v} years", "for {v} years", "a {v}-year term"],
    "months": ["{v} months", "over {v} months", "for {v} months"],
    "weeks": ["{v} weeks", "for {v} weeks"],
    "days": ["{v} days", "for {v} days"],
    "hours": ["{v} hours", "{v} h"],
    "minutes": ["{v} minutes", "{v} min"],
    "kg": ["{v} kg", "{v}kg", "{v} kilos", "{v} kilograms"],
    "cm": ["{v} cm", "{v}cm", "{v} centimetres"],
    "km": ["{v} km", "{v} kilometres"],
    "miles": ["{v} miles", "{v} mi"],
    "celsius": ["{v}°C", "{v} degrees C", "{v} °C"],
    "fahrenheit": ["{v}°F", "{v} degrees F"],
}
_VERBS = {"get", "find", "search", "look", "convert", "compute", "calculate", "add", "create", "make", "list",
          "send", "book", "reserve", "check", "set", "delete", "remove", "update", "return", "fetch",
          "translate", "schedule", "estimate", "count", "generate", "play", "buy", "order", "cancel", "show",
          "give", "tell", "work", "turn", "lookup", "retrieve", "post", "write", "read", "open", "close",
          "start", "stop", "split", "round", "sum", "measure", "predict", "plan", "track", "log", "record",
          "save", "load", "move", "rename", "share", "notify", "call", "pay", "transfer", "rate"}
_UNIT_TAIL = {w for _, ws in _UNIT_WORDS for w in ws} | {"dollars", "euros", "usd", "eur", "format", "hh:mm",
                                                         "iso", "yyyy-mm-dd", "units", "seconds", "degrees"}
_NUM_RE = re.compile(r"(?<![\w.])[-+]?\d(?:,?\d)*(?:\.\d+)?")  # "250,000", not "19," of "19, 3"


def name_tokens(name: str) -> list[str]:
    """``weight_kg`` → ["weight", "kg"]; ``getWeather`` → ["get", "weather"] (digits kept)."""
    s = re.sub(r"([a-z])([A-Z])", r"\1 \2", name)
    return [w for w in re.split(r"[^A-Za-z0-9%]+", s.lower()) if w]


def split_words(name: str) -> str:
    """``Restaurants_1_FindRestaurants`` → ``restaurants find restaurants``; ``getWeather`` → ``get weather``."""
    return " ".join(name_tokens(re.sub(r"\d+", " ", name)))


def action_words(tool_name: str) -> str:
    """The words of a tool name's action: ``Restaurants_2_ReserveRestaurant`` → ``reserve restaurant``,
    ``pkg.mod.add_tip`` → ``add tip`` (a service prefix ending in a version number goes)."""
    return split_words(re.split(r"_\d+_", tool_name.split(".")[-1])[-1])


def render_value(v: Any) -> str:
    """A non-scalar argument value as words: lists joined, objects as "key words value" pairs."""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, list):
        return ", ".join(render_value(x) for x in v) if v else "none"
    if isinstance(v, dict):
        return "; ".join(f"{split_words(k)} {render_value(x)}" for k, x in v.items())
    return str(v)


def unit_kind(name: str, schema: Mapping[str, Any]) -> str | None:
    """The unit a numeric parameter is in, from its name's words, then its description's words."""
    desc = str(schema.get("description", "")).lower()
    for source in (name_tokens(name), re.findall(r"[a-z%]+|%", desc)):
        for kind, words in _UNIT_WORDS:
            if any(w in source for w in words):
                return kind
    if set(name_tokens(name)) & _MONEY_NAMES:
        return "money"
    return None


def counts_something(name: str, schema: Mapping[str, Any]) -> bool:
    """A parameter that holds a count ("Number of seats", ``num_tickets``), whatever its JSON type."""
    toks = name_tokens(name)
    desc = str(schema.get("description", "")).strip().lower()
    return bool(toks) and (toks[0] in ("num", "count", "n") or toks[:2] == ["number", "of"]) \
        or desc.startswith(("number of", "how many", "count of", "the number of"))


def clock_param(name: str, schema: Mapping[str, Any]) -> bool:
    desc = str(schema.get("description", ""))
    return "HH:MM" in desc.upper() or schema.get("format") == "time" or name.lower() in ("time", "clock") \
        or name.lower().endswith("_time")


def description_examples(schema: Mapping[str, Any]) -> list[str]:
    """Quoted examples in a parameter's description: ``e.g. "09:30" or "17:00"`` → ["09:30", "17:00"]."""
    desc = str(schema.get("description", ""))
    m = re.search(r"\b(?:e\.g\.|for example|such as|like)\s*[,:]?\s*(.*)", desc, flags=re.IGNORECASE)
    if not m:
        return []
    return [q for q in re.findall(r"[\"“']([^\"”']{1,40})[\"”']", m.group(1)) if q.strip()]


# ----- how numbers and values are written -----------------------------------------------------------------
def plain_number(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def number_forms(v: float, kind: str | None) -> list[str]:
    """Ways to write ``v`` (of unit ``kind``) that a reader maps back to exactly ``v``."""
    p = plain_number(v)
    forms = [p]
    big = float(v).is_integer() and abs(v) >= 1000
    if big:
        forms.append(f"{int(v):,}")
        if int(v) % 1000 == 0:
            forms.append(f"{int(v) // 1000}k")
    if kind == "money":
        forms += [f"${f}" for f in list(forms)]
    elif kind in _UNIT_FORMS:
        forms = [t.format(v=f) for t in _UNIT_FORMS[kind] for f in forms[:2]]
    return forms


def clock_forms(hhmm: str) -> list[str]:
    """"15:00" → "15:00", "3 pm", "3pm", "3:00 pm"; "09:30" → "09:30", "9:30", "9:30 am", "9:30am"."""
    m = re.fullmatch(r"(\d{1,2}):(\d{2})(?::\d{2})?", hhmm)
    if not m:
        return [hhmm]
    h, mi = int(m.group(1)), int(m.group(2))
    ap = "am" if h < 12 else "pm"
    h12 = h % 12 or 12
    forms = [hhmm, f"{h12}:{mi:02d} {ap}", f"{h12}:{mi:02d}{ap}", f"{h12}:{mi:02d} {ap.upper()}"]
    if mi == 0:
        forms += [f"{h12} {ap}", f"{h12}{ap}"]
    if h >= 10:
        forms.append(f"{h}:{mi:02d}")
    # as people say them: always with the part of the day, else "half past 4" is two times
    part = "in the morning" if h < 12 else "in the afternoon" if h < 17 else "in the evening" if h < 21 else "at night"
    spoken = {0: f"{h12} o'clock", 15: f"quarter past {h12}", 30: f"half past {h12}",
              45: f"quarter to {h12 % 12 + 1}"}.get(mi, f"{h12}:{mi:02d}")
    if not (mi == 45 and h in (11, 23)):  # "quarter to 12 in the morning" would be the wrong half of the day
        forms.append(f"{spoken} {part}")
    return forms


_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"]


def date_forms(iso: str) -> list[str]:
    """"2026-03-07" → "2026-03-07", "March 7, 2026", "7 March 2026", "Mar 7 2026", "March 7th, 2026" (the year is
    always said: a request without one would teach the model to invent it)."""
    m = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", iso)
    if not m or not 1 <= int(m.group(2)) <= 12:
        return [iso]
    y, mo, d = m.group(1), _MONTHS[int(m.group(2)) - 1], int(m.group(3))
    nth = "th" if 10 <= d % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(d % 10, "th")
    return [iso, f"{mo} {d}, {y}", f"{d} {mo} {y}", f"{mo[:3]} {d} {y}", f"{mo} {d}{nth}, {y}"]


@dataclass
class Mention:
    """One argument as the request words it; ``numbers`` are the numbers it may contain."""

    text: str
    numbers: set[str]


def _param_words(name: str, schema: Mapping[str, Any]) -> str:
    """The parameter's own short noun phrase: its description cut to a few words, else its name's words."""
    doc = str(schema.get("description", "")).strip()
    doc = re.split(r"\s*\(|,|;|\.\s|\be\.g\.|\bfor example\b", doc, maxsplit=1)[0].strip().rstrip(".")
    doc = re.sub(r"^(the|a|an)\s+", "", doc, flags=re.IGNORECASE)
    tail = re.search(r"\s+(in|as)\s+([A-Za-z%:\- ]+)$", doc)  # "Body weight in kilograms" → "Body weight"
    if tail and set(tail.group(2).lower().split()) & _UNIT_TAIL:  # not "Check in date for reservation"
        doc = doc[: tail.start()]
    if doc and 1 <= len(doc.split()) <= 6 and not _NUM_RE.search(doc):
        return doc[0].lower() + doc[1:]
    return " ".join(name_tokens(name))


def mention(name: str, schema: Mapping[str, Any], value: Any, rng: random.Random) -> Mention:
    """One surface form of ``name = value``."""
    words = _param_words(name, schema)
    toks = name_tokens(name)
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        text = render_value(value)
        return Mention(f"{words} {text}" if rng.random() < 0.7 else f"{words}: {text}", set(_NUM_RE.findall(text)))
    if isinstance(value, (int, float)):
        kind = unit_kind(name, schema)
        surface = rng.choice(number_forms(value, kind))
        nums = set(_NUM_RE.findall(surface))
        if kind not in (None, "money"):
            unit_words = {w for _, ws in _UNIT_WORDS for w in ws} | {"in", "of"}
            words = " ".join(w for w in words.split() if w.lower() not in unit_words)
            toks = [w for w in toks if w not in unit_words]
            if not words or rng.random() < 0.75:
                return Mention(surface, nums)
        style = rng.random()
        if style < 0.4:
            return Mention(f"{words} {surface}", nums)
        if style < 0.6:
            return Mention(f"{words}: {surface}", nums)
        if style < 0.8:
            return Mention(f"{words} of {surface}", nums)
        return Mention(f"{' '.join(toks)} {surface}", nums)
    if re.fullmatch(r"\d{1,7}(\.\d{1,2})?", value) and (counts_something(name, schema) or unit_kind(name, schema)):
        number = float(value) if "." in value else int(value)
        return mention(name, schema, number, rng)  # a number held as a string ("1030"): worded as the number
    if clock_param(name, schema):
        surface = rng.choice(clock_forms(value))
    elif re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        surface = rng.choice(date_forms(value))
    else:
        surface = value
    nums = set(_NUM_RE.findall(surface))
    if toks and toks[0] in ("from", "source", "origin", "src"):
        return Mention(f"from {surface}", nums)
    if toks and toks[0] in ("to", "target", "destination", "dest"):
        return Mention(rng.choice([f"to {surface}", f"in {surface}", f"for {surface}"]), nums)
    style = rng.random()
    if schema.get("enum") and style < 0.5:
        return Mention(surface, nums)
    if clock_param(name, schema) and style < 0.6:
        return Mention(rng.choice([f"at {surface}", surface]), nums)
    if style < 0.45:
        return Mention(f"{words} {surface}", nums)
    if style < 0.7:
        return Mention(f"{words}: {surface}", nums)
    if style < 0.85:
        return Mention(f'"{surface}"' if len(surface.split()) > 1 else surface, nums)
    return Mention(f"{words} is {surface}", nums)


# ----- intents and templates ------------------------------------------------------------------------------
def _clause(desc: str) -> str:
    first = re.split(r"(?<=[.!?])\s|\n", desc.strip(), maxsplit=1)[0].rstrip(".!? ")
    first = re.sub(r"\s*\((?![A-Z]{2,6}\))[^)]*\)", "", first)  # asides go; "(BMI)" stays
    first = re.split(r",\s|;\s|\s-\s|\s—\s", first, maxsplit=1)[0].strip()
    return re.sub(r"\s+(and|or|and/or)$", "", first)  # "Find movies by genre and, optionally, …"


def intents(tool_name: str, description: str) -> list[tuple[str, str]]:
    """(kind, phrase) pairs, kind "np" (a thing to get) or "vp" (an action), lower-case."""
    out: list[tuple[str, str]] = []
    for text in (_clause(description), action_words(tool_name)):
        words = text.split()
        if not words or len(words) > 18:
            continue
        first = words[0].lower()
        base = re.sub(r"(?<=[^aeiou])es$|s$", "", first) if first not in _VERBS else first
        phrase = text[0].lower() + text[1:]
        if first in _VERBS or base in _VERBS:
            phrase = " ".join([base if base in _VERBS else first, *words[1:]])
            short = re.split(r"\s(?:from|for|with|in|on|by|to|into|between|using)\s", phrase, maxsplit=1)[0]
            out += [("vp", phrase)] + ([("vp", short)] if len(short.split()) > 1 else [])  # not a bare "look"
        else:
            short = re.split(r"\s(?:of|from|for|with|in|on|by|given|using)\s", phrase, maxsplit=1)[0]
            out += [("np", phrase), ("np", short)]
            acronym = re.search(r"\(([A-Z]{2,6})\)", text)
            if acronym:
                out.append(("np", acronym.group(1)))
                out.append(("np", re.sub(r"\s*\([A-Z]{2,6}\)", "", short)))
    unique: dict[str, str] = {}
    for kind, phrase in out:
        if phrase and phrase not in unique:
            unique[phrase] = kind
    return [(kind, phrase) for phrase, kind in unique.items()]


_NP_TEMPLATES = [
    "What's the {i} for {m}?", "what is the {i} with {m}", "{m} — what's the {i}?", "{I} for {m}, please.",
    "Can you work out the {i}? {M}.", "I need the {i}: {m}.", "{M}. {I}?", "Tell me the {i} for {m}.",
    "Find the {i} for {m}.", "{m}: what would the {i} be?", "give me the {i}, {m}", "{I} — {m}",
]
_VP_TEMPLATES = [
    "{I}: {m}.", "Can you {i}? {M}.", "Please {i} — {m}.", "I need to {i}, {m}.", "{M}. Can you {i}?",
    "Could you {i} for me? {M}", "{i} {m}", "I'd like to {i}: {m}", "{M} — {i}, please.", "help me {i}. {m}",
]
_BARE_NP = ["What's the {i}?", "{I}, please.", "Tell me the {i}."]
_BARE_VP = ["{I}.", "Can you {i}?", "Please {i}."]


def join_mentions(parts: list[str], rng: random.Random) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    style = rng.random()
    if style < 0.45:
        return ", ".join(parts[:-1]) + " and " + parts[-1]
    if style < 0.8:
        return ", ".join(parts)
    return "; ".join(parts)


def field_phrases(tool_name: str, field: str) -> list[str]:
    """How a request names ``field`` of the tool's result: a name of two words or more by itself ("total
    interest"), or with what it belongs to when the tool's name is a thing ("total interest of the loan
    payment"); a one-word name only so ("category of the body mass index": "category" alone could be
    anything's). [] when a one-word field belongs to a tool named for an action (``convert_timezone``)."""
    words = " ".join(name_tokens(field))
    owners = [p for k, p in intents(tool_name, "") if k == "np"]
    owned = [f"{words} of the {o}" for o in owners]
    return ([words] + owned) if len(words.split()) > 1 else owned


def request(tool_name: str, description: str, mentions: list[Mention], rng: random.Random,
            field: str | None = None) -> str:
    """One request for the tool carrying every mention; ``field``: a field of the result it asks for by name
    ("What's the total interest for …?") instead of the tool's intent."""
    if field is not None:
        kind, phrase = "np", rng.choice(field_phrases(tool_name, field) or [" ".join(name_tokens(field))])
    else:
        kind, phrase = rng.choice(intents(tool_name, description) or [("vp", "use " + tool_name)])
    m = join_mentions([x.text for x in mentions], rng)
    if not m:
        template = rng.choice(_BARE_NP if kind == "np" else _BARE_VP)
    else:
        template = rng.choice(_NP_TEMPLATES if kind == "np" else _VP_TEMPLATES)
    if rng.random() < 0.25:  # casual lower case (never the values: "Tokyo" stays "Tokyo")
        template, phrase = template.lower(), phrase if phrase.isupper() else phrase.lower()
    text = template.format(i=phrase, I=phrase[:1].upper() + phrase[1:], m=m, M=m[:1].upper() + m[1:])
    text = " ".join(text.split())
    if rng.random() < 0.15:
        text = text.rstrip(".?!") + rng.choice([", thanks", " please", " — cheers", "?"])
    return text


def stray_numbers(text: str, mentions: list[Mention]) -> list[str]:
    """Numbers in ``text`` that no mention accounts for (the request would teach copying them)."""
    allowed = {n for x in mentions for n in x.numbers}
    return [n for n in _NUM_RE.findall(text) if n not in allowed]


# ----- dialogues: slot filling and confirmation -------------------------------------------------------------
# Verbs of lookups (nothing changes when they run); an intent led by any other verb is an action, which an
# assistant confirms before it acts ("Just to confirm: reserve a table at …?" — "Yes.").
_LOOKUP_VERBS = {"get", "find", "search", "look", "lookup", "check", "show", "list", "retrieve", "fetch",
                 "discover", "compute", "calculate", "convert", "estimate", "count", "tell", "read", "predict",
                 "measure", "translate", "give", "work", "return", "sum", "round", "split"}
_ASK = ["What {w} would you like?", "Which {w}?", "Sure — what {w}?", "What's the {w}?",
        "Could you tell me the {w}?", "And the {w}?"]
_CONFIRM_VP = ["Just to confirm: {i} with {m}?", "Please confirm: {i} — {m}.", "So you want me to {i}: {m}. Is that right?",
               "To confirm, {i} with {m}. Shall I go ahead?"]
_CONFIRM_NP = ["Just to confirm: the {i} for {m}?", "Please confirm — {m}.", "So that's {m}. Is that right?"]
_AFFIRM = ["Yes.", "Yes please.", "Correct.", "That's right.", "Yes, go ahead.", "Sounds good.", "yep", "Perfect, do it.",
           "That is correct.", "Sure."]


def is_action(tool_name: str, description: str) -> bool:
    """Whether a tool changes something (its intent's verb is not a lookup verb): actions get confirmed."""
    found = intents(tool_name, description)
    verbs = [p.split()[0] for k, p in found if k == "vp"]
    return bool(verbs) and verbs[0] not in _LOOKUP_VERBS


def ask_for(name: str, schema: Mapping[str, Any], rng: random.Random) -> str:
    """The assistant asking for one missing argument, in the parameter's own words."""
    return rng.choice(_ASK).format(w=_param_words(name, schema))


def confirm(tool_name: str, description: str, mentions: list[Mention], rng: random.Random) -> str:
    """The assistant restating a request's arguments before an action."""
    kind, phrase = rng.choice(intents(tool_name, description) or [("vp", "go ahead")])
    m = join_mentions([x.text for x in mentions], rng)
    return rng.choice(_CONFIRM_NP if kind == "np" else _CONFIRM_VP).format(i=phrase, m=m)


def affirm(rng: random.Random) -> str:
    return rng.choice(_AFFIRM)


# ----- answers --------------------------------------------------------------------------------------------
def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.2f}" if abs(v) >= 1000 else plain_number(round(v, 4))
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}" if abs(v) >= 10000 else str(v)
    return str(v)


def reported_fields(result: Any, args: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The scalar fields of a dict result an answer reports, in order: those that only echo an argument of
    the call are left out."""
    if not isinstance(result, Mapping):
        return []
    return [(k, v) for k, v in result.items() if not (k in args and args[k] == v)
            and isinstance(v, (str, int, float)) and not isinstance(v, bool)]


#: a string result longer than this (or of several lines) is not led: the model tells it in its own words
MAX_LEAD_STRING = 60


def state_field(key: str, value: Any) -> str:
    """One field stated as :func:`answer` states it: "The monthly payment is 1,580.17"."""
    return f"The {' '.join(name_tokens(key))} is {_fmt(value)}"


def answer_leads(result: Any, args: Mapping[str, Any]) -> list[str]:
    """The ways an answer to ``result`` may open, one per reported field, as :func:`answer` opens:
    "The monthly payment is 1,580.17" (a number or a word or two: "The result is …"; a short message as it
    is); [] for lists, empty dicts and long text."""
    if isinstance(result, Mapping):
        return [state_field(k, v) for k, v in reported_fields(result, args)]
    if isinstance(result, str) and len(result.split()) >= 3 and len(result) <= MAX_LEAD_STRING \
            and "\n" not in result:
        return [result.strip().rstrip(".")]  # a message ("Reminder set for 07:30") is said as it is
    if isinstance(result, (int, float)) and not isinstance(result, bool) or \
            isinstance(result, str) and result.strip() and len(result) <= MAX_LEAD_STRING and "\n" not in result:
        return [f"The result is {_fmt(result)}"]
    return []


def answer(result: Any, args: Mapping[str, Any], rng: random.Random, brief: bool = True,
           field: str | None = None) -> str:
    """An answer stating a result's figures once; keys that only echo an argument are left out. ``brief``:
    the first figure only (what the new token learns from an answer is mostly *to* answer after its result;
    each token of answer costs training time). ``field``: the field the request asked for, stated first."""
    if isinstance(result, Mapping):
        items = reported_fields(result, args)
        items.sort(key=lambda kv: kv[0] != field)  # the asked field first, the rest in order
        lists = [(k, v) for k, v in result.items() if isinstance(v, list)]
        if not items and not lists:
            return "Done."
        parts = []
        if items:
            k, v = items[0]
            words = " ".join(name_tokens(k))
            parts.append(rng.choice([f"The {words} is {_fmt(v)}.", f"{words[:1].upper() + words[1:]}: {_fmt(v)}."]))
            rest = [f"{' '.join(name_tokens(k2))} {_fmt(v2)}" for k2, v2 in items[1:3]]
            if rest and brief is False:
                parts.append(rest[0][:1].upper() + rest[0][1:] + "".join(f", {r}" for r in rest[1:]) + ".")
        for k, v in lists[:1]:
            shown = "; ".join(_fmt(x) if not isinstance(x, Mapping) else ", ".join(_fmt(y) for y in x.values())
                              for x in v[:3])
            parts.append(f"{len(v)} {' '.join(name_tokens(k))}" + (f": {shown}." if shown else "."))
        return " ".join(parts)
    if isinstance(result, list):
        shown = "; ".join(_fmt(x) for x in result[:3])
        return f"{len(result)} results" + (f": {shown}." if shown else ".")
    return rng.choice([f"The result is {_fmt(result)}.", f"It's {_fmt(result)}.", f"{_fmt(result)}."])
