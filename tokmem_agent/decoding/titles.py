"""Titles the user gives in words ("a note titled Boiler: …", "… call it Bike key"), copied as given
(:attr:`ControllerConfig.ground_titles`).

A small model copies a title well when it stands alone and badly when the words around it run on: "a note
titled Boiler: the engineer comes Thursday" became the title "Boiler: the engineer comes Thursday between 8
and 12", and "note to self: the spare bike key is under the drawer. call it Bike key" the title "Spare bike
key". The user marks a title with a few fixed words — *titled*, *called*, *named*, *title*, *call it*,
*name it*, *label it*, *under the heading* — followed by the title, quoted or not. :func:`stated_titles`
reads them from the latest user message: a quoted title whole, an unquoted one up to the first ``:``,
``,``, ``;``, sentence end, or a word that starts the rest of the request ("with", "that", "saying",
"text", "and", "then", "for", "due", "about").

A string parameter whose name says it is a title (:func:`is_title_param`: ``title``, ``subject``,
``heading``, ``label``; no enum, pattern or format of its own) then takes only those titles
(:func:`stated_spec`). When the user marks none, the parameter stays free.

The same for the text of a note (:func:`stated_texts`, :func:`is_text_param`: ``text``, ``body``,
``content``): after *with the text*, *text:*, *that says*, *saying*, *that reads*, or the colon after a
title ("titled 'Dentist': appointment moved to Thursday"), quoted or up to ", then …" or the end, as
written: "with the text 7 7 1 9 hash, then search my notes" is "7 7 1 9 hash", not "7 7 1 9".
"""

from __future__ import annotations

import re
from typing import Any

from .params import free_string, param_words

__all__ = [
    "TEXT_WORDS",
    "TITLE_WORDS",
    "is_text_param",
    "is_title_param",
    "stated_spec",
    "stated_texts",
    "stated_titles",
]

#: words of a parameter name that make it a title, or the text of a note
TITLE_WORDS = frozenset({"title", "subject", "heading", "label"})
TEXT_WORDS = frozenset({"text", "body", "content"})

_CUE = (r"\b(?:titled|entitled|called|named|title(?:\s+(?:is|was|it)\b|\s*[:=])?|call\s+it|name\s+it|label\s+it|"
        r"under\s+the\s+(?:title|heading|name))")


def _quoted(most: int) -> str:
    """Regex of a span of 1 to ``most`` characters in straight or curly quotes, one group per kind of quote."""
    return (rf"(?:'([^'\n]{{1,{most}}})'|\"([^\"\n]{{1,{most}}})\"|‘([^’\n]{{1,{most}}})’|“([^”\n]{{1,{most}}})”)")


_QUOTED = re.compile(_CUE + r"\s*[:=]?\s*" + _quoted(80), re.IGNORECASE)
_STOP = r"(?:with|that|which|saying|says|text|and|then|for|due|about|to|on|in|of|please|pls|thanks)"
_PLAIN = re.compile(_CUE + r"\s+(?!['\"‘“])((?:(?!" + _STOP + r"\b)[^\s:,;.!?]+\s*){1,6}?)"
                    r"(?=\s*(?:[:,;!?]|\.(?:\s|$)|$|\s" + _STOP + r"\b))", re.IGNORECASE)


def stated_titles(text: str) -> tuple[str, ...]:
    """The titles ``text`` gives after a title word, as written ("Boiler", "Bike key", "Gate code"), in order."""
    out: dict[str, None] = {}
    spans: list[tuple[int, int]] = []
    for m in _QUOTED.finditer(text):
        title = next(g for g in m.groups() if g is not None).strip()
        if title:
            out[title] = None
            spans.append(m.span())
    for m in _PLAIN.finditer(text):
        if any(a <= m.start() < b for a, b in spans):
            continue
        title = m.group(1).strip()
        if title:
            out[title] = None
    return tuple(out)


_TEXT_CUE = (r"\b(?:with\s+(?:the\s+)?text|the\s+text\s+(?:is|was)|text\s*[:=]|(?:that|which)\s+(?:says|reads)|saying|"
             r"body\s*[:=]|content\s*[:=])\s*:?\s*")
_QUOTE = _quoted(300)
_TEXT_QUOTED = re.compile(_TEXT_CUE + _QUOTE, re.IGNORECASE)
_TEXT_PLAIN = re.compile(_TEXT_CUE + r"(?!['\"‘“])(\S.{0,299}?)(?=,?\s+(?:and\s+)?then\b|\s*$)",
                         re.IGNORECASE | re.DOTALL)
#: the colon right after a title: "titled 'Dentist': appointment moved …"
_AFTER_TITLE = re.compile(_CUE + r"\s*[:=]?\s*(?:" + _QUOTE + r"|[^\s:,;.!?'\"‘“][^:\n]{0,80}?)\s*:\s*"
                          r"(\S.{0,299}?)(?=,?\s+(?:and\s+)?then\b|\s*$)", re.IGNORECASE | re.DOTALL)


#: a pleasantry that ends a request, not the note ("… daily. cheers", "… .com. Much appreciated.")
_CLOSER = re.compile(r"[\s,;—-]*\b(?:thanks?(?: you)?(?: in advance)?|thx|ty|ta|cheers|pls|please|much appreciated|"
                     r"many thanks|if you don't mind|asap please|thank you!?)[.!…\s]*$", re.IGNORECASE)


def stated_texts(text: str) -> tuple[str, ...]:
    """The texts ``text`` gives for a note after a text word or a title's colon, as written, in order; an
    unquoted one that runs to the end of the request also without a closing pleasantry ("… daily. cheers")."""
    out: dict[str, None] = {}
    for m in _TEXT_QUOTED.finditer(text):
        out[next(g for g in m.groups() if g is not None)] = None
    for rx in (_TEXT_PLAIN, _AFTER_TITLE):
        for m in rx.finditer(text):
            body = m.groups()[-1].strip()
            if not body or any(body in t or t in body for t in out):
                continue
            bare = _CLOSER.sub("", body).strip()
            for t in (bare, body) if bare and bare != body else (body,):
                out[t] = None
    return tuple(out)


def is_title_param(name: str, spec: Any) -> bool:
    """A free string parameter that holds a title."""
    return free_string(spec) and bool(param_words(name) & TITLE_WORDS)


def is_text_param(name: str, spec: Any) -> bool:
    """A free string parameter that holds the text of a note (``text``, ``body``, ``content``)."""
    return free_string(spec) and bool(param_words(name) & TEXT_WORDS)


def stated_spec(spec: dict[str, Any], stated: tuple[str, ...]) -> dict[str, Any] | None:
    """``spec`` limited to the ``stated`` titles or texts that fit its length bounds; None when none does."""
    lo, hi = spec.get("minLength", 0), spec.get("maxLength")
    values = [t for t in stated if len(t) >= lo and (hi is None or len(t) <= hi)]
    if not values:
        return None
    return {**{k: v for k, v in spec.items() if k not in ("minLength", "maxLength")}, "enum": values}
