"""Zero-data registration: synthesise training traces for a tool from its schema alone (no torch here).

For a tool with a name, a description and a JSON schema but no traces, each synthetic trace is

* arguments sampled from the schema — ``enum``/``const``/``examples``/``default`` first, then values that
  fit the type and its bounds (``minimum``, ``maxLength``, ``format`` …), with plausible strings chosen from
  the parameter's name (a city for ``city``, a date for ``date`` …), quoted examples in its description
  ("e.g. \"09:30\""), and ranges by unit (a percentage, years, kilograms, money …);
* a user request worded by :mod:`tokmem_agent.synth_phrasing` — an intent from the description or the name,
  each value in a form that maps back to it exactly (units, "250k", "3 pm", "from X"), and no number that is
  not an argument;
* with ``run=True`` (tools without side effects), the tool's real result and an answer stating it;
* optionally paraphrased by a language model (``paraphrase=`` a ``str -> str`` callable); a paraphrase is
  kept only if it still contains every string value verbatim.

Every sampled argument object is validated against the schema; a schema whose arguments cannot be
sampled raises :class:`~tokmem_agent.errors.SchemaError` naming the tool and the path.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import random
import re
import string
from collections.abc import Callable, Mapping
from typing import Any

import jsonschema

from . import synth_phrasing as P
from .errors import SchemaError
from .executor import execute, serialize
from .registry import Tool
from .synth_phrasing import render_value, split_words
from .traces import Call, Trace

# Plausible values keyed by words that appear in a parameter's name.
_WORDS: dict[str, list[str]] = {
    "city": ["Paris", "San Jose", "Berlin", "Tokyo", "Chicago", "Lisbon", "Seattle", "Toronto", "Madrid"],
    "country": ["France", "Japan", "Canada", "Brazil", "Kenya", "Norway"],
    "location": ["downtown Seattle", "Palo Alto", "Brooklyn", "central London"],
    "address": ["12 Market Street", "450 Oak Avenue", "9 Rue de Rivoli"],
    "name": ["Alex Kim", "Maria Lopez", "Sam Patel", "Jordan Lee", "Priya Shah"],
    "title": ["Quarterly report", "Weekend plans", "Project kickoff"],
    "email": ["alex@example.com", "maria.lopez@example.org", "sam@example.net"],
    "phone": ["+1 415 555 0101", "+44 20 7946 0958"],
    "currency": ["USD", "EUR", "GBP", "JPY"],
    "language": ["English", "Spanish", "French", "German"],
    "genre": ["comedy", "drama", "jazz", "thriller", "pop"],
    "cuisine": ["Italian", "Thai", "Mexican", "Indian", "Japanese"],
    "movie": ["The Matrix", "Inception", "Amelie"],
    "song": ["Yellow", "Imagine", "Hey Jude"],
    "artist": ["Adele", "Coldplay", "Miles Davis"],
    "restaurant": ["Blue Plate", "Sakura House", "La Terrazza"],
    "hotel": ["Hotel Azure", "Park Inn", "The Grand"],
    "accommodation": ["Hotel Azure", "Park Inn", "The Grand", "Harbor Lodge"],
    "actor": ["Tom Hanks", "Meryl Streep", "Denzel Washington", "Emma Stone"],
    "starring": ["Tom Hanks", "Meryl Streep", "Denzel Washington", "Emma Stone"],
    "director": ["Greta Gerwig", "Christopher Nolan", "Ang Lee", "Sofia Coppola"],
    "food": ["Italian", "Thai", "Mexican", "Indian", "Japanese"],
    "airline": ["Delta Airlines", "United Airlines", "Alaska Airlines"],
    "query": ["cheap flights", "vegan recipes", "python tutorials", "museum hours"],
    "text": ["buy milk", "call the dentist", "finish the slides"],
    "message": ["running late", "see you at noon", "thanks for the help"],
    "note": ["pick up the package", "renew the passport"],
    "unit": ["km", "miles", "kg", "lb", "celsius", "fahrenheit"],
    "symbol": ["AAPL", "MSFT", "GOOG"],
    "url": ["https://example.com", "https://example.org/page"],
    "id": ["A1234", "42", "X-77"],
    "type": ["standard", "premium", "basic"],
    "amount": ["$120", "$45.50", "300 dollars"],
    "price": ["$25", "$80", "under $50"],
    "category": ["sports", "news", "travel"],
}
_GENERIC = ("name", "title", "type", "id", "text", "query", "message", "note", "location", "address", "category")


def _word_key(name: str, description: str) -> str | None:
    """Which value list fits a string parameter: specific words in its name, then in its description, then
    generic ones in its name (``song_name`` is a song, not a person's name; ``place_name`` described as
    "Name of the accommodation" is a hotel; ``category`` described as "category of food" a cuisine)."""
    specific = [k for k in _WORDS if k not in _GENERIC]
    for keys, text in ((specific, name), (specific, description), (_GENERIC, name)):
        hits = [(text.find(k), k) for k in keys if k in text]
        if hits:  # the word said first: "category of food offered by the restaurant" is food
            return min(hits)[1]
    return None


_FORMAT_SAMPLERS: dict[str, Callable[[random.Random], str]] = {
    "date": lambda r: (_dt.date(2025, 1, 1) + _dt.timedelta(days=r.randrange(730))).isoformat(),
    "date-time": lambda r: (_dt.datetime(2025, 1, 1) + _dt.timedelta(minutes=15 * r.randrange(70000))).isoformat(),
    "time": lambda r: f"{r.randrange(7, 22):02d}:{r.choice(['00', '15', '30', '45'])}:00",
    "email": lambda r: r.choice(_WORDS["email"]),
    "uri": lambda r: r.choice(_WORDS["url"]),
    "url": lambda r: r.choice(_WORDS["url"]),
    "clock": lambda r: f"{r.randrange(7, 22):02d}:{r.choice(['00', '15', '30', '45'])}",  # name hint, no format
}
_NAME_HINTS = [("date", "date"), ("day", "date"), ("time", "clock"), ("email", "email"), ("url", "uri"),
               ("link", "uri")]

# ----- value sampling -------------------------------------------------------------------------------------
class _Sampler:
    def __init__(self, root: Mapping[str, Any], rng: random.Random, tool: str, optional_rate: float):
        self.root, self.rng, self.tool, self.optional_rate = root, rng, tool, optional_rate

    def resolve(self, schema: Mapping[str, Any], path: str) -> Mapping[str, Any]:
        seen = 0
        while "$ref" in schema:
            ref = str(schema["$ref"])
            if not ref.startswith("#/") or seen > 20:
                raise SchemaError(f"tool '{self.tool}': cannot synthesise arguments at {path}: "
                                  f"only local $ref are supported, got {ref!r}")
            node: Any = self.root
            for part in ref[2:].split("/"):
                node = node.get(part.replace("~1", "/").replace("~0", "~")) if isinstance(node, Mapping) else None
            if not isinstance(node, Mapping):
                raise SchemaError(f"tool '{self.tool}': unresolvable $ref {ref!r} at {path}")
            schema = {**node, **{k: v for k, v in schema.items() if k != "$ref"}}
            seen += 1
        return schema

    def value(self, schema: Mapping[str, Any], name: str, path: str) -> Any:
        s = self.resolve(schema, path)
        r = self.rng
        if "const" in s:
            return s["const"]
        if s.get("enum"):
            return r.choice(list(s["enum"]))
        pool = [*(s.get("examples") or [])] + ([s["default"]] if "default" in s else [])
        if pool and r.random() < 0.5:
            return r.choice(pool)
        for key in ("anyOf", "oneOf"):
            if s.get(key):
                options = [o for o in s[key] if self.resolve(o, path).get("type") != "null"] or list(s[key])
                return self.value(r.choice(options), name, path)
        if s.get("allOf"):
            merged: dict[str, Any] = {}
            for part in s["allOf"]:
                merged.update(self.resolve(part, path))
            return self.value(merged, name, path)
        typ = s.get("type")
        if isinstance(typ, list):
            non_null = [t for t in typ if t != "null"]
            typ = r.choice(non_null) if non_null else "null"
        if typ is None:
            typ = "object" if "properties" in s else "string"
        return getattr(self, f"_{typ}", self._unsupported)(s, name, path)

    def _unsupported(self, s: Mapping[str, Any], name: str, path: str) -> Any:
        raise SchemaError(f"tool '{self.tool}': cannot synthesise arguments at {path}: type {s.get('type')!r}")

    def _null(self, s: Mapping[str, Any], name: str, path: str) -> None:
        return None

    def _boolean(self, s: Mapping[str, Any], name: str, path: str) -> bool:
        return self.rng.random() < 0.5

    def _unit_value(self, s: Mapping[str, Any], name: str, integer: bool) -> float | int | None:
        """A plausible number for a parameter with a unit (percent, years, kg, money …), inside the schema's
        bounds; None when it has no known unit or the unit's range misses the bounds."""
        kind = P.unit_kind(name, s)
        if kind is None or "multipleOf" in s:
            return None
        r = self.rng
        if kind == "money":
            v: float = r.choice([r.randint(1, 99) * 10 ** r.randint(0, 4), r.randint(10, 999) * 10 ** r.randint(0, 3),
                                 round(r.uniform(5, 500), 2)])
        else:
            lo, hi, dec = P.UNIT_RANGES[kind]
            v = round(r.uniform(lo, hi), r.choice([0, 0, *range(1, dec + 1)]) if dec else 0)
        if integer:
            v = round(v)
        elif float(v).is_integer():
            v = int(v)
        lo_b = s.get("minimum", s.get("exclusiveMinimum"))
        hi_b = s.get("maximum", s.get("exclusiveMaximum"))
        if (lo_b is not None and v <= lo_b and (v < lo_b or "exclusiveMinimum" in s)) or \
           (hi_b is not None and v >= hi_b and (v > hi_b or "exclusiveMaximum" in s)):
            return None
        return v

    def _integer(self, s: Mapping[str, Any], name: str, path: str) -> int:
        unit = self._unit_value(s, name, integer=True)
        if unit is not None:
            return int(unit)
        lo = s.get("minimum", s["exclusiveMinimum"] + 1 if "exclusiveMinimum" in s else None)
        hi = s.get("maximum", s["exclusiveMaximum"] - 1 if "exclusiveMaximum" in s else None)
        lo = int(lo) if lo is not None else (1 if hi is None or hi >= 1 else int(hi) - 100)
        hi = int(hi) if hi is not None else max(lo + 1, min(lo + 99, 100 if lo < 100 else lo * 2))
        if lo > hi:
            raise SchemaError(f"tool '{self.tool}': empty integer range at {path}")
        step = int(s.get("multipleOf", 1)) or 1
        return int(self._multiple_in(lo, hi, step, path))

    def _multiple_in(self, lo: float, hi: float, step: float, path: str) -> float:
        """A uniformly random multiple of ``step`` in [lo, hi], without listing candidates (ranges may be huge)."""
        k_lo, k_hi = math.ceil(lo / step), math.floor(hi / step)
        if k_lo > k_hi:
            raise SchemaError(f"tool '{self.tool}': no multiple of {step} in [{lo}, {hi}] at {path}")
        return self.rng.randint(k_lo, k_hi) * step

    def _number(self, s: Mapping[str, Any], name: str, path: str) -> float | int:
        unit = self._unit_value(s, name, integer=False)
        if unit is not None:
            return unit
        lo = float(s.get("minimum", s.get("exclusiveMinimum", 0.0)))
        hi = float(s.get("maximum", s.get("exclusiveMaximum", lo + 1000.0)))
        if lo > hi:
            raise SchemaError(f"tool '{self.tool}': empty number range at {path}")
        if "multipleOf" in s:  # exclusive bounds hit exactly are resampled by sample_arguments' validation
            return self._multiple_in(lo, hi, s["multipleOf"], path)
        raw = self.rng.uniform(lo, hi)
        v = round(raw, self.rng.choice([0, 1, 2]))
        if not lo <= v <= hi:  # rounding left a narrow range
            v = raw
        if ("exclusiveMinimum" in s and v <= s["exclusiveMinimum"]) or ("exclusiveMaximum" in s and v >= s["exclusiveMaximum"]):
            v = (lo + hi) / 2
        return int(v) if float(v).is_integer() and self.rng.random() < 0.3 else float(v)

    def _string(self, s: Mapping[str, Any], name: str, path: str) -> str:
        r = self.rng
        fmt = s.get("format")
        low = name.lower()
        if fmt is None:
            fmt = next((f for key, f in _NAME_HINTS if key in low.split("_") or low.endswith(key)), None)
        described = P.description_examples(s)
        unit = P.unit_kind(name, s) if fmt is None else None
        if described and r.random() < 0.35:
            v = r.choice(described)
        elif unit is not None or (fmt is None and P.counts_something(name, s)):
            # a number written as a string: "Length of stay in days" → "3", "Number of tickets" → "2", a
            # "transfer_amount" → "1030" (plain digits: the request says "$1,030" or "1030 dollars")
            number = self._unit_value({"description": s.get("description", "")}, name, integer=unit != "money")
            v = P.plain_number(number) if number is not None else str(r.randint(1, 6))
        elif fmt in _FORMAT_SAMPLERS:
            v = _FORMAT_SAMPLERS[fmt](r)
        else:
            key = _word_key(low, str(s.get("description", "")).lower())
            v = r.choice(_WORDS[key]) if key else self._word(name)
        lo, hi = int(s.get("minLength", 0)), s.get("maxLength")
        if hi is not None and len(v) > int(hi):
            v = v[: int(hi)]
        if len(v) < lo:
            v = v + "".join(r.choice(string.ascii_lowercase) for _ in range(lo - len(v)))
        if "pattern" in s and not re.search(s["pattern"], v):
            fits = [x for x in [*(s.get("examples") or []), s.get("default")]
                    if isinstance(x, str) and re.search(s["pattern"], x)]
            if fits:
                return r.choice(fits)
            raise SchemaError(f"tool '{self.tool}': cannot synthesise arguments at {path}: no string matching "
                              f"pattern {s['pattern']!r}; give traces or 'examples' in the schema")
        return v

    def _word(self, name: str) -> str:
        base = split_words(name) or "value"
        return f"{base} {self.rng.choice(['alpha', 'blue', 'north', 'seven', 'delta', 'oak', 'river'])}"

    def _array(self, s: Mapping[str, Any], name: str, path: str) -> list[Any]:
        lo = int(s.get("minItems", 1))
        hi = int(s.get("maxItems", max(lo, 3)))
        n = self.rng.randint(lo, max(lo, hi))
        items = s.get("items", {"type": "string"})
        singular = name.removesuffix("s")
        out: list[Any] = []
        for i in range(n * 5):
            if len(out) >= n:
                break
            v = self.value(items, singular, f"{path}[{i}]")
            if s.get("uniqueItems") and v in out:
                continue
            out.append(v)
        return out

    def _object(self, s: Mapping[str, Any], name: str, path: str) -> dict[str, Any]:
        props: Mapping[str, Any] = s.get("properties", {})
        required = set(s.get("required", []))
        out: dict[str, Any] = {}
        for key, sub in props.items():
            if key in required or self.rng.random() < self.optional_rate:
                out[key] = self.value(sub, key, f"{path}.{key}" if path else key)
        return out


def sample_arguments(tool: Tool, rng: random.Random, *, optional_rate: float = 0.5, tries: int = 20) -> dict[str, Any]:
    """Arguments for ``tool`` sampled from its schema, validated against it."""
    validator = jsonschema.validators.validator_for(tool.parameters)(tool.parameters)
    sampler = _Sampler(tool.parameters, rng, tool.name, optional_rate)
    last = ""
    for _ in range(tries):
        args = sampler._object(sampler.resolve(tool.parameters, "<root>"), tool.name, "")
        errors = sorted(validator.iter_errors(args), key=lambda e: list(e.path))
        if not errors:
            return args
        last = f"{'/'.join(map(str, errors[0].path)) or '<root>'}: {errors[0].message}"
    raise SchemaError(f"tool '{tool.name}': could not sample arguments that satisfy its schema ({last}); "
                      "give traces, or 'examples'/'enum' for that parameter")


def render_query(tool: Tool, args: Mapping[str, Any], rng: random.Random, tries: int = 8,
                 field: str | None = None) -> str:
    """A user request asking for ``tool`` with ``args`` (:mod:`tokmem_agent.synth_phrasing`): every value is
    mentioned in a form that maps back to it exactly, and no other number appears. ``field``: a field of the
    tool's result the request asks for by name, instead of the tool's intent."""
    props = tool.parameters.get("properties", {})
    text = ""
    for _ in range(tries):
        mentions = [P.mention(k, props.get(k, {}), v, rng) for k, v in args.items()]
        if rng.random() < 0.3:
            rng.shuffle(mentions)
        text = P.request(tool.name, tool.description or "", mentions, rng, field=field)
        if not P.stray_numbers(text, mentions):
            return text
    pieces = [f"{' '.join(P.name_tokens(k))} {render_value(v)}" for k, v in args.items()]  # plain fallback
    return f"Use {P.action_words(tool.name)} with {', '.join(pieces)}." if pieces else text


def render_dialogue(tool: Tool, args: Mapping[str, Any], rng: random.Random, tries: int = 8) -> list[dict[str, str]]:
    """A short conversation ending where ``tool`` is called with ``args``, in the shapes assistants hold:

    * slot filling: the request leaves one argument out, the assistant asks for it, the user gives it;
    * confirmation (tools whose intent is an action, not a lookup): the assistant restates the arguments and
      the user agrees ("Correct.") — the call then follows a turn that names no tool at all;
    * both. Empty when no form fits (no arguments and no action), or when every try left a stray number.
    """
    props = tool.parameters.get("properties", {})
    action = not tool.read_only and P.is_action(tool.name, tool.description or "")
    forms = (["slot"] if args else []) + (["confirm"] + (["both"] if args else []) if action else [])
    if not forms:
        return []
    required = [k for k in tool.parameters.get("required", []) if k in args]
    for _ in range(tries):
        form = rng.choice(forms)
        mentions = {k: P.mention(k, props.get(k, {}), v, rng) for k, v in args.items()}
        held = rng.choice(required or list(args)) if form in ("slot", "both") else None
        first = [m for k, m in mentions.items() if k != held]
        msgs = [{"role": "user", "content": P.request(tool.name, tool.description or "", first, rng)}]
        used = list(mentions.values())
        if held is not None:
            given = mentions[held].text
            msgs += [{"role": "assistant", "content": P.ask_for(held, props.get(held, {}), rng)},
                     {"role": "user", "content": rng.choice([given[:1].upper() + given[1:], f"{given}, please.",
                                                             f"{given}."])}]
        if form in ("confirm", "both"):
            again = [P.mention(k, props.get(k, {}), v, rng) for k, v in args.items()]
            used += again
            msgs += [{"role": "assistant", "content": P.confirm(tool.name, tool.description or "", again, rng)},
                     {"role": "user", "content": P.affirm(rng)}]
        if not any(P.stray_numbers(m["content"], used) for m in msgs):
            return msgs
    return []


def _string_values(v: Any) -> list[str]:
    if isinstance(v, str):
        return [v]
    if isinstance(v, list):
        return [s for x in v for s in _string_values(x)]
    if isinstance(v, dict):
        return [s for x in v.values() for s in _string_values(x)]
    return []


def synthesize_traces(tool: Any, n: int = 40, *, seed: int = 0, optional_rate: float = 0.5,
                      paraphrase: Callable[[str], str] | None = None, run: bool = False,
                      timeout: float = 5.0, dialogue_rate: float = 0.0, field_rate: float = 0.0) -> list[Trace]:
    """``n`` single-call traces for ``tool`` (a Tool, function, pydantic model or tool dict).

    run: call the tool's function on each sampled argument object (only for tools without side effects:
        see :attr:`Tool.read_only`); a trace then carries the result and an answer stating its figures, so
        the model also learns to stop calling and report. Arguments the function rejects (it raises, or times
        out after ``timeout`` s) are resampled; if it rejects nearly all, the traces end at the call.
    paraphrase: optional ``query -> rewritten query`` (e.g. the base model); a rewrite is used only if
        it keeps every string argument value verbatim, else the templated query stays.
    field_rate: with ``run``, share of the traces whose result has several reported fields that ask for one of
        the others by name and get it answered first ("What's the total interest for …?").
    dialogue_rate: share of traces that are short conversations (:func:`render_dialogue`: the assistant asks
        for a missing argument, or confirms an action) instead of one request.
    """
    t = Tool.coerce(tool)
    rng = random.Random(f"{seed}:{t.name}")
    runnable = run and t.fn is not None
    traces: list[Trace] = []
    seen: set[str] = set()
    failures = tries = 0
    while len(traces) < n and tries < n * 4:
        tries += 1
        args = sample_arguments(t, rng, optional_rate=optional_rate)
        dialogue = render_dialogue(t, args, rng) if dialogue_rate and rng.random() < dialogue_rate else []
        result, response, field = None, None, None
        if runnable:
            out = execute(t.fn, args, timeout=timeout)
            if not out.ok:
                failures += 1
                tries -= 1  # a rejected sample does not count; resample
                if failures > 3 * n + len(traces):  # it rejects what the schema allows: stop running it
                    runnable = False
                continue
            result = out.value
            fields = [k for k, _ in P.reported_fields(result, args)]
            others = [k for k in fields[1:] if P.field_phrases(t.name, k)]
            if not dialogue and others and field_rate and rng.random() < field_rate:
                field = rng.choice(others)  # "how much interest in total …": the question names an output
            response = P.answer(result, args, rng, field=field)
            try:
                json.dumps(result)
            except (TypeError, ValueError):  # a dataclass, a datetime inside a dict …: the text the model sees
                result = serialize(result)
        query = ("\n".join(m["content"] for m in dialogue) if dialogue
                 else render_query(t, args, rng, field=field))
        if query in seen:
            continue
        seen.add(query)
        if paraphrase is not None and not dialogue:
            alt = (paraphrase(query) or "").strip()
            if alt and all(s in alt for s in _string_values(args)):
                query = alt
        messages = dialogue or [{"role": "user", "content": query}]
        query = messages[-1]["content"] if dialogue else query
        traces.append(Trace(id=f"synth-{t.name}-{len(traces)}", messages=messages,
                            calls=[Call(t.name, args)], tools=[t.to_dict()], query=query, source="synthetic",
                            results=None if response is None else [result],
                            between=None if response is None else [], response=response))
    return traces
