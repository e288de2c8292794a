"""Answers that state the field of the result the request asked about (:attr:`ControllerConfig.lead_answers`).

A tool registered from its schema alone has no real answers to learn from: after its result the backbone
answers in the style of the tools it knows ("A 6.5% annual interest rate over 30 years = 1.58 total paid"
for a monthly payment of 1,580.17; "I can't do that here" after a BMI it was given). When the turn after
such a result answers in text, it is the sentence registration's synthetic answers are written in
(:func:`~tokmem_agent.synth_phrasing.state_field`) for the field the request asks about, and ends there:
"The monthly payment is 1,580.17." The result's other short string fields are noted after the figure, since
they say what it means: "The bmi is 23.1 (category: normal weight).", "The time is 19:30 (day: previous
day)." Allowed to go on, the model added sentences in the style of the tools it knows that were wrong more
often than not ("…, so the total is 5, 6, and 3", "The time is 12:15, or 12:15 in both cities").

Which field (:func:`lead_texts`): the one whose name shares the most words with the latest user message
("monthly payment", "BMI", "what time"; even one that echoes an argument), else the first field that does
not echo one, since a tool lists its headline figure first. Left to choose among all fields, the model took
the one its training answers favour: "The total paid is …" for every loan, "The day is same day" for every
time zone.

Only the text is led: when the first token the model prefers is a memory token (another call), nothing
changes. Results that are errors, lists or empty are not led; a short message ("Reminder set for 07:30") is
said as it is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..synth_phrasing import answer_leads, name_tokens, reported_fields, state_field

__all__ = ["WRITTEN_NUMBER", "LeadTrie", "asked_field", "last_results", "lead_texts", "unstated_figures"]

#: a result's other string fields up to this long are noted after the figure asked for
MAX_NOTE = 40


def call_arguments(call: Any) -> dict[str, Any] | None:
    """A call's arguments (a :class:`~tokmem_agent.traces.Call` or a dict), None when they are no object."""
    args = call.get("arguments") if isinstance(call, dict) else getattr(call, "arguments", None)
    return args if isinstance(args, dict) else None


def _name_of(call: Any) -> str | None:
    return call.get("name") if isinstance(call, dict) else getattr(call, "name", None)


def last_results(messages: Sequence[dict[str, Any]]) -> tuple[tuple[str, Any, dict[str, Any]], ...]:
    """The tool results that end ``messages`` as (tool, parsed result, the call's arguments); () when the
    conversation does not end with tool results."""
    end = len(messages)
    start = end
    while start > 0 and messages[start - 1].get("role") == "tool":
        start -= 1
    if start == end:
        return ()
    calls = list(messages[start - 1].get("calls") or []) if start > 0 else []
    out = []
    for i, m in enumerate(messages[start:end]):
        content = m.get("content")
        try:
            result = json.loads(content) if isinstance(content, str) else content
        except ValueError:
            result = content
        name = str(m.get("name") or "")
        call = next((c for c in calls if _name_of(c) == name), calls[i] if i < len(calls) else None)
        out.append((name, result, (call_arguments(call) if call is not None else None) or {}))
    return tuple(out)


def _stem(word: str) -> str:
    return word[:5] if len(word) > 5 else word.rstrip("s")


def asked_field(fields: Sequence[str], request: str) -> int | None:
    """Which of a result's ``fields`` the ``request`` names: the one sharing the most words with it (stems:
    "month" is "monthly"'s), the first on a tie; None when none shares any."""
    said = {_stem(w) for w in re.findall(r"[a-z0-9%]+", request.lower())}
    scores = [sum(_stem(w) in said for w in name_tokens(f)) for f in fields]
    if not any(scores):
        return None
    return max(range(len(fields)), key=lambda i: (scores[i], -i))


def lead_texts(results: Sequence[tuple[str, Any, dict[str, Any]]], tools: Callable[[str], bool],
               request: str = "") -> list[str]:
    """The opening for the first of ``results`` whose tool ``tools`` accepts: the field the ``request`` names
    (:func:`asked_field`; even one that echoes an argument: "what *time* is 09:30 Paris in Berlin" is the
    same 09:30), else its first reported field (a tool lists its headline figure first), with the result's
    other short string fields noted ("The bmi is 23.1 (category: normal weight)"); [] when any result is an
    error."""
    if any(isinstance(r, dict) and "error" in r for _, r, _ in results):
        return []
    for name, result, args in results:
        if not tools(name):
            continue
        if not isinstance(result, dict):
            leads = answer_leads(result, args)
            if leads:
                return leads[:1]
            continue
        scalars = reported_fields(result, {})  # every scalar field, echoes too
        reported = reported_fields(result, args)
        named = asked_field([k for k, _ in scalars], request)
        asked = scalars[named] if named is not None else (reported[0] if reported else None)
        if asked is None:
            continue
        lead = state_field(*asked)
        notes = [f"{' '.join(name_tokens(k))}: {v}" for k, v in reported
                 if k != asked[0] and isinstance(v, str) and v.strip() and len(v) <= MAX_NOTE and "\n" not in v]
        if notes:  # what a figure means ("category: normal weight", "day: previous day")
            lead += f" ({'; '.join(notes)})"
        return [lead]
    return []


#: a number as an answer writes it: digits, thousands separators, decimals ("1,580.17")
WRITTEN_NUMBER = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?")


def _figures(result: Any, args: dict[str, Any]) -> list[tuple[str, Any]]:
    """The numbers a result reports: its numeric fields that echo no argument and are no id."""
    return [(k, v) for k, v in reported_fields(result, args) if isinstance(v, (int, float))
            and "id" not in name_tokens(k)]


def _written(value: Any, said: Sequence[str]) -> bool:
    """Whether one of ``said`` (the numbers of an answer, unsigned, without separators) is ``value`` rounded to
    its own decimals ("7.75", "7.8"; "8" only from 10 up or for an integer: "2" is no statement of 2.4)."""
    x = abs(float(value))
    for s in said:
        d = len(s.split(".")[1]) if "." in s else 0
        if abs(round(x, d) - float(s)) < 1e-9 and (d or x == int(x) or x >= 10):
            return True
    return False


#: the field that names a listed record ("title" of a note, "name" of a restaurant), and how many are named
NAME_KEYS = ("title", "name")
MAX_LISTED = 10


def _plain(text: str) -> str:
    return " ".join(text.lower().replace("’", "'").split())


def _unnamed(result: Any, text: str) -> str | None:
    """A sentence naming the records a result lists that the answer ``text`` does not name ("Also: “Grandma's
    chili”."), or None: a list of at most :data:`MAX_LISTED` records with a title or name each."""
    lists = [v for v in result.values() if isinstance(v, list)] if isinstance(result, dict) else [result]
    for items in lists:
        if not isinstance(items, list) or not items or len(items) > MAX_LISTED:
            continue
        names = [next((str(it[k]).strip() for k in NAME_KEYS if isinstance(it.get(k), str)), "")
                 for it in items if isinstance(it, dict)]
        if len(names) != len(items) or not all(names):
            continue
        said = _plain(text)
        missing = [n for n in names if _plain(n) not in said]
        if missing:
            listed = "; ".join(f"“{n}”" for n in missing)
            return f"Also: {listed}" if len(missing) < len(names) else f"Listed: {listed}"
    return None


def unstated_figures(results: Sequence[tuple[str, Any, dict[str, Any]]], request: str, text: str) -> list[str]:
    """Sentences for what the answer ``text`` leaves out of the results (:attr:`ControllerConfig.state_results`):
    for each result that reports numbers (:func:`_figures`) of which ``text`` writes none, its figure the
    ``request`` names, else the one named ``result``, else its first ("The result is 7.75"); for each that
    lists records by title or name, the ones ``text`` does not name (:func:`_unnamed`); [] when any result
    is an error."""
    if any(isinstance(r, dict) and "error" in r for _, r, _ in results):
        return []
    said = [m.replace(",", "") for m in WRITTEN_NUMBER.findall(text)]
    out = []
    for _, result, args in results:
        figures = _figures(result, args)
        if figures and not any(_written(v, said) for _, v in figures):
            named = asked_field([k for k, _ in figures], request)
            if named is None:
                named = next((i for i, (k, _) in enumerate(figures) if k == "result"), 0)
            out.append(state_field(*figures[named]))
        listed = _unnamed(result, text)
        if listed:
            out.append(listed)
    return out


class LeadTrie:
    """The openings as token ids, walked one chosen token at a time. :attr:`open` while the answer is still
    inside an opening; it closes at the end of one (or when one opening is a prefix of another, there)."""

    _END = -1  # marks where an opening ends

    def __init__(self, sequences: Sequence[Sequence[int]]):
        self.root: dict[int, dict] = {}
        for seq in sequences:
            node = self.root
            for tok in seq:
                node = node.setdefault(int(tok), {})
            node[self._END] = {}
        self.node = self.root
        self.open = any(k != self._END for k in self.root)

    def mask(self, scores: torch.Tensor) -> torch.Tensor:
        """``scores`` [V+N] with every text id but the opening's next ones set to -inf, memory ids too."""
        keep = torch.tensor([k for k in self.node if k != self._END], dtype=torch.long, device=scores.device)
        out = torch.full_like(scores, float("-inf"))
        out[keep] = scores[keep]
        return out

    def advance(self, tok: int) -> None:
        """After ``tok`` was chosen: step into the trie, or close at an opening's end."""
        nxt = self.node.get(tok)
        if nxt is None or self._END in nxt:
            self.open = False
            return
        self.node = nxt
