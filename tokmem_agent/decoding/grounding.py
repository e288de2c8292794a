"""Grounded decoding: an answer after tool results writes only numbers those results (or the user) gave,
and a place argument (a city, an address …) takes only words of the conversation.

A small model reports a result it read badly ("A 6.5% rate over 30 years = 1.58") far more often than it
computes a new figure right. With :attr:`ControllerConfig.ground_numbers`, the text of a turn that follows
a tool result may only write numbers found in the conversation's tool results and user messages, in the
forms people write them: as given, with or without thousands separators, rounded to 2, 1 or 0 decimals,
leading zeros dropped ("06" → "6"), plus the integers 0–10. Words are untouched; arguments are governed
by their schema, not by this.

The check runs on the characters of each candidate token that holds a digit or starts with a separator
(SmolLM2 spells numbers one digit per token; tokenizers with multi-digit tokens work the same): a digit may
follow only if the number so far is a prefix of an allowed one, a separator either continues it or ends a
complete one, and anything else ends a number only if it is complete.

Place arguments: a free-form string parameter whose name or description says it is a place
(:data:`PLACE_WORDS`) is decoded as an ``enum`` of the conversation's runs of 1–4 words, so "Honolulu" is not
written "Houston" nor "Los Angeles" "LA" (:func:`copy_schema`; the enum grammar compiles in ~25 ms).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .ground_args import ArgEvidence
from .lead import WRITTEN_NUMBER, call_arguments, last_results
from .params import free_string, param_words

SMALL = tuple(str(i) for i in range(11))


def number_forms(text: str) -> set[str]:
    """The ways an answer may write the number ``text`` ("1580.166" → 1580.166, 1,580.166, 1580.17, …)."""
    raw = text.replace(",", "")
    try:
        x = float(raw)
    except ValueError:
        return {text}
    out = {text, raw}
    if raw.isdigit():
        out.add(str(int(raw)))
    ints = [round(x)] if "." in raw else [int(x)]
    for n in ints:
        out |= {str(n), f"{n:,}"}
    for d in (1, 2):
        out |= {f"{x:.{d}f}", f"{x:,.{d}f}"}
    if "." in raw:
        out.add(f"{x:,.{len(raw.split('.')[1])}f}")
    return out


def allowed_numbers(texts: Iterable[str]) -> frozenset[str]:
    """Every form of every number in ``texts``, and the integers 0–10."""
    out: set[str] = set(SMALL)
    for t in texts:
        for m in WRITTEN_NUMBER.findall(t):
            out |= number_forms(m)
    return frozenset(out)


#: words in a string parameter's name or description that make it a place, copied from the conversation
PLACE_WORDS = frozenset({"city", "country", "location", "place", "address", "airport", "station", "venue",
                         "town", "region", "destination", "origin", "area", "neighborhood", "neighbourhood"})
MAX_SPAN_WORDS = 4
MAX_SPANS = 600


@dataclass(frozen=True)
class Grounding:
    """What a turn may take from its conversation: ``numbers`` an answer after tool results may write (None:
    not an answer to results), ``spans`` the values a place-like string argument may take, ``args`` the
    times, numbers and dates its arguments may take (:mod:`.ground_args`), ``results`` the tool results the
    turn answers, as (tool, result, arguments), and the ``request`` they answer (:mod:`.lead`)."""

    numbers: frozenset[str] | None = None
    spans: tuple[str, ...] = ()
    args: ArgEvidence | None = None
    results: tuple[tuple[str, Any, dict[str, Any]], ...] = ()
    request: str = ""  # the latest user message


def grounding_for(messages: Sequence[dict[str, Any]]) -> Grounding:
    """The :class:`Grounding` of the next assistant turn of ``messages``."""
    texts = [m.get("content") for m in messages if m.get("role") in ("user", "assistant", "tool")]
    said, results = _heard(messages)
    numbers = allowed_numbers(said + results) if _after_results(messages) else None
    return Grounding(numbers, conversation_spans([t for t in texts if isinstance(t, str)]),
                     ArgEvidence.of(said, results, _request_calls(messages)), last_results(messages),
                     said[-1] if said else "")


def _request_calls(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The arguments of the calls made since the last user message (the current request's)."""
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    out: list[dict[str, Any]] = []
    for m in messages[last_user + 1:]:
        for c in m.get("calls") or [] if m.get("role") == "assistant" else []:
            args = call_arguments(c)
            if args is not None:
                out.append(args)
    return out


def _text(content: Any) -> str:
    return content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)


def _heard(messages: Sequence[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """The user's messages and the tool results of ``messages``, as text."""
    said = [_text(m.get("content")) for m in messages if m.get("role") == "user"]
    results = [_text(m.get("content")) for m in messages if m.get("role") == "tool"]
    return said, results


def _after_results(messages: Sequence[dict[str, Any]]) -> bool:
    return bool(messages) and messages[-1].get("role") == "tool"


#: words no place name starts with (pronouns, question words, verbs of asking): "It's 9am in London" offers
#: no "It's" as a city
NOT_PLACE_START = frozenset({
    "i", "i'm", "i’m", "it", "it's", "it’s", "its", "what", "what's", "what’s", "when", "where", "how", "who",
    "why", "which", "is", "are", "was", "were", "be", "am", "my", "me", "you", "your", "we", "our", "us", "he", "she",
    "they", "their", "if", "then", "and", "or", "but", "to", "from", "in", "at", "for", "of", "on", "by", "with",
    "please", "can", "could", "would", "will", "should", "do", "does", "did", "that", "this", "there", "time",
})


def conversation_spans(texts: Iterable[str]) -> tuple[str, ...]:
    """Runs of 1–4 words in ``texts`` (outer punctuation stripped, each with a letter, not starting with a
    word of :data:`NOT_PLACE_START`): the values a place argument may take. At most :data:`MAX_SPANS`, the
    latest messages first."""
    out: dict[str, None] = {}
    for t in reversed(list(texts)):
        words = re.findall(r"[^\s—–/|(){}\[\]\"“”]+", t)
        for i in range(len(words)):
            if words[i].strip(".,;:!?'’").lower() in NOT_PLACE_START:
                continue
            for j in range(i + 1, min(i + MAX_SPAN_WORDS, len(words)) + 1):
                span = " ".join(words[i:j]).strip(".,;:!?'’")
                if span and any(c.isalpha() for c in span) and len(out) < MAX_SPANS:
                    out[span] = None
    return tuple(out)


def place_params(schema: dict[str, Any]) -> list[str]:
    """Top-level free-form string properties that name a place (``from_city``, "the location of …")."""
    props = schema.get("properties") or {}
    found = []
    for name, spec in props.items():
        if not free_string(spec):
            continue
        words = param_words(name) | set(re.findall(r"[a-z]+", str(spec.get("description", "")).lower()))
        if words & PLACE_WORDS:
            found.append(name)
    return found


def copy_schema(schema: dict[str, Any], spans: Sequence[str]) -> dict[str, Any]:
    """``schema`` with each place parameter limited to ``spans`` (the schema itself when there are none)."""
    names = place_params(schema) if spans else []
    if not names:
        return schema
    props = dict(schema["properties"])
    for n in names:
        props[n] = {**props[n], "enum": list(spans)}
    return {**schema, "properties": props}


def conversation_numbers(messages: Sequence[dict[str, Any]]) -> frozenset[str] | None:
    """The numbers an answer to ``messages`` may write, or None when it is not an answer to tool results
    (the last message is not a tool message): only answers that report results are grounded."""
    if not _after_results(messages):
        return None
    said, results = _heard(messages)
    return allowed_numbers(said + results)


@dataclass(frozen=True)
class NumberVocab:
    """The token ids whose text can write or end a number: those holding a digit, and those starting with a
    separator ("." "," ".\n" …), each with its text. Every other token is plain text."""

    texts: dict[int, str]

    @classmethod
    def of(cls, tokenizer: Any) -> NumberVocab:
        texts: dict[int, str] = {}
        for tok, i in tokenizer.get_vocab().items():
            if any(c in "0123456789.," for c in tok):  # raw token text: cheap filter before decoding
                text = tokenizer.decode([i])
                if any(c.isdigit() for c in text) or text[:1] in ".,":
                    texts[i] = text
        return cls(texts)


class NumberGround:
    """One turn's number state; :meth:`mask` before the argmax, :meth:`advance` with the chosen id."""

    def __init__(self, vocab: NumberVocab, allowed: frozenset[str]):
        self.vocab = vocab
        self.complete = allowed
        self.prefixes = frozenset(a[:i] for a in allowed for i in range(1, len(a) + 1))
        self.run = ""  # the number being written
        self.closed = False  # a separator just ended a number ("360." at a sentence end): no digit next
        self._memo: dict[tuple[str, bool], tuple[list[int], list[int]]] = {}  # state → (allowed, masked) ids

    def _after(self, text: str) -> tuple[str, bool] | None:
        """The state after writing ``text``, or None when it would write an ungrounded number."""
        run, closed = self.run, self.closed
        for ch in text:
            if ch in "0123456789":
                if closed or run + ch not in self.prefixes:
                    return None
                run += ch
            elif ch in ".," and run:
                if run + ch in self.prefixes:
                    run += ch
                elif run in self.complete:
                    run, closed = "", True
                else:
                    return None
            else:
                if run and not self._ended(run):
                    return None
                run, closed = "", False
        return run, closed

    def _ended(self, run: str) -> bool:
        """``run`` may stop here: a complete number, or one followed by a separator that was punctuation
        ("17." at a sentence end, when "17.5" is allowed too)."""
        return run in self.complete or (run[-1:] in ".," and run[:-1] in self.complete)

    def mask(self, scores: torch.Tensor) -> torch.Tensor:
        """``scores`` [V+N] with the ids that would write an ungrounded number set to -inf."""
        key = (self.run, self.closed)
        if key not in self._memo:
            ok = [i for i, t in self.vocab.texts.items() if i < scores.shape[-1] and self._after(t) is not None]
            keep = set(ok)
            self._memo[key] = (ok, [i for i in self.vocab.texts if i < scores.shape[-1] and i not in keep])
        ok, bad = self._memo[key]
        if self.run and not self._ended(self.run):  # mid-number: only what continues it
            out = torch.full_like(scores, float("-inf"))
            if ok:
                out[ok] = scores[ok]
            return out
        if bad:
            scores = scores.clone()
            scores[bad] = float("-inf")
        return scores

    def advance(self, tok: int) -> None:
        text = self.vocab.texts.get(tok)
        if text is None:  # plain text (or a memory token) ends any number
            self.run, self.closed = "", False
            return
        state = self._after(text)
        self.run, self.closed = state if state is not None else ("", False)
