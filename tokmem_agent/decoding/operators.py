"""Arithmetic the user's words ask for, as a constraint on an expression argument
(:attr:`ControllerConfig.ground_operators`).

A small model copies the numbers of "split that between 4" well and the operation badly: after a tool
result it writes ``276 * 4``, because multiplication is what most of its training expressions do next. The
operation is said in closed-class English words ("divide", "split … ways", "minus", "how much more",
"squared", "plus"), so the words decide it and the grammar enforces it:

* :func:`stated_operators` reads the operations of the latest user message: ``/`` (divide, split, share
  between, average, how many times, ratio, into N parts, how many weeks, how many … does that buy, how long
  will it last), ``%`` (remainder, modulo), ``-`` (minus, subtract, take away, difference, how much
  more/cheaper/warmer …, cheaper than, left over), ``*`` (times, multiply, squared, cubed, to the power of,
  double, triple) and ``+`` (plus, add … up/together, sum of, total … up); a rise ("goes up by 4.5 %",
  "increase") asks for ``+`` or ``*``, a fall ("20 % off", "discount", "drops") for ``-`` or ``*``.
  Ambiguous words say nothing: "per" ("per person" divides, "per year" from a monthly figure multiplies),
  "each", "total", "of", "less" ("less 10 %").
* A string parameter that holds an arithmetic expression (:func:`is_expression_param`: named ``expression``,
  ``expr``, ``formula`` or ``equation``, or described as arithmetic/a math expression; no enum or pattern of
  its own) must then *begin* with one of the stated operations that no earlier call for this request wrote:
  its first operator is one of them (:func:`operator_pattern`). The first, not "somewhere": asked only to
  hold a ``/`` somewhere, the model wrote its habitual ``206 * 7`` and then padded the string with a stray
  ``%`` to pass. A remainder or floor division counts as a division already done.
* Division words are only enforced *after a tool result*: in "add these up, put a 20 % tip on and split it 5
  ways" the split belongs to a later step another tool may do (``add_tip``'s ``people``), so the first
  ``calculate`` only adds.

When the words state nothing, the parameter stays free. Measured in docs/benchmarks.md (session 17).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

__all__ = ["LATE_OPERATORS", "expression_operators", "is_expression_param", "needed_operators", "operator_pattern",
           "stated_operators"]

_N = r"(?:\d+|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)"
_COMPARE = (r"(?:longer|shorter|heavier|lighter|further|farther|bigger|smaller|cheaper|dearer|higher|"
            r"lower|warmer|hotter|colder|cooler|older|younger|faster|slower|more expensive)")
_MORE = r"(?:more|less|" + _COMPARE[3:]  # "how much more", but "634 more than 34" adds
_GROUP = (r"(?:people|persons|friends|guests|kids|children|housemates|roommates|flatmates|colleagues|containers|"
          r"jars|bottles|boxes|bags|teams|groups|of us)")

#: operator → phrases that ask for it (matched on the lower-cased request)
OPERATOR_WORDS: dict[str, tuple[re.Pattern[str], ...]] = {op: tuple(re.compile(p) for p in pats) for op, pats in {
    "/": (r"\bdivid(?:e|ed|es|ing)\b", r"\bsplit(?:s|ting)?\b",
          r"\bshar(?:e|ed|ing)\b.{0,40}\b(?:between|among)\b",
          r"\b(?:between|among)\s+(?:the\s+)?" + _N + r"\s+" + _GROUP + r"\b", r"\baverage\b",
          r"\bhow many times\b", r"\bratio\b",
          r"\binto\s+" + _N + r"\s+(?:equal\s+)?(?:parts|pieces|portions|shares|groups|slices|lots)\b",
          r"\bhow many weeks\b", r"\b" + _N + r" ways\b",
          r"\bhow many\b[^.?!]{0,60}?\b(?:buys?|lasts?|covers?|afford)\b", r"\bhow long\b[^.?!]{0,30}?\blast\b"),
    "%": (r"\bremainder\b", r"\bleft over when\b", r"\bmodulo\b", r"\bmod\b"),
    "-": (r"\bminus\b", r"\bsubtract(?:ed|ing|s)?\b", r"\btake away\b", r"\bdifference\b",
          r"\bhow (?:much|many(?: (?!times\b)\w+)?) " + _MORE + r"\b", r"\b" + _COMPARE + r" than\b",
          r"\b(?:is|are|was|were|be|been|have|has|had)\s+left\b(?! when)", r"\bleft over\b(?! when)",
          r"\bremain(?:s|ing)?\b"),
    "*": (r"(?<!how many )\btimes\b", r"\bmultipl(?:y|ied|ies|ying)\b", r"\bsquared\b", r"\bcubed\b",
          r"\bto the power\b", r"\bdouble\b", r"\btriple\b"),
    # a rise or a fall: "+" or "*" ("1150 * 1.045"), "-" or "*" ("80 * 0.8")
    "+*": (r"\b(?:goes|go|going|went|gone) up\b", r"\b(?:rise|rises|rising|rose|risen)\b",
           r"\bincreas(?:e|es|ed|ing)\b", r"\braise[sd]?\b"),
    "-*": (r"\b(?:goes|go|going|went|gone) down\b", r"\b(?:fall|falls|falling|fell|fallen|drops?|dropped)\b",
           r"\bdecreas(?:e|es|ed|ing)\b", r"\bdiscount(?:ed|s)?\b", r"\breduc(?:e|es|ed|ing)\b",
           r"%\s*off\b", r"\bpercent off\b"),
    "+": (r"\bplus\b", r"\badd(?:ed)? (?:\w+ )?(?:up|together)\b", r"\bsum of\b",
          r"\bsum (?:it|them|those|these|that|up)\b",
          r"\btotal (?:it|them|those|these|that) up\b"),
}.items()}
#: operations enforced only after a tool result (the step may belong to a later call of another tool)
LATE_OPERATORS = frozenset({"/"})
# what satisfies each operation in an expression: a remainder or a floor division is a division
_SATISFIES = {"/": "/%", "%": "%", "-": "-", "*": "*", "+": "+", "+*": "+*", "-*": "-*"}
_EXPRESSION_NAMES = frozenset({"expression", "expr", "formula", "equation", "math", "arithmetic"})
_EXPRESSION_DESC = re.compile(r"\b(?:arithmetic|math(?:ematical)? expression|numeric expression)\b", re.IGNORECASE)
_FREE = '[^"\\\\]'  # a character of a JSON string body that needs no escape
_BEFORE = "[0-9A-Za-z_ .,()]"  # what an expression holds before its first operator
#: the operators that may come first for each operation (a stated division is "/", not a remainder)
_FIRST = {**_SATISFIES, "/": "/"}


def stated_operators(text: str) -> frozenset[str]:
    """The operations the words of ``text`` ask for: ``/ % - * +``, and ``+*`` (a rise: add or multiply) and
    ``-*`` (a fall: subtract or multiply)."""
    t = text.lower()
    return frozenset(op for op, pats in OPERATOR_WORDS.items() if any(p.search(t) for p in pats))


def expression_operators(expr: str) -> frozenset[str]:
    """The operations an arithmetic string writes ("3 * 18.5 + 2" → {"*", "+"}; a leading minus sign or an
    exponent's is none)."""
    out = {op for op in "*+/%" if op in expr}
    if re.search(r"[\d)]\s*-", expr):  # a binary minus (not "-5", "3 * -2" or "1e-5")
        out.add("-")
    if "%" in expr:
        out.add("/")
    return frozenset(out)


def is_expression_param(name: str, spec: Any) -> bool:
    """A free string parameter that holds an arithmetic expression."""
    if not isinstance(spec, dict) or spec.get("type") != "string":
        return False
    if any(k in spec for k in ("enum", "const", "pattern", "format")):
        return False
    words = set(re.split(r"[^a-z]+", re.sub(r"([a-z])([A-Z])", r"\1 \2", name).lower()))
    return bool(words & _EXPRESSION_NAMES) or bool(_EXPRESSION_DESC.search(str(spec.get("description") or "")))


def operator_pattern(need: Iterable[str]) -> str | None:
    """A JSON-schema ``pattern`` (matched whole) for an expression whose *first* operation is one of ``need``:
    numbers, names, spaces and parentheses, then one of ``need``'s operators, then anything; None when ``need``
    is empty. (A pattern that only asked for the operator somewhere let the model write its habitual ``*``
    first and then pad the string with a stray ``%`` to pass.)"""
    chars = "".join(sorted({c for op in need for c in _FIRST[op]}))
    if not chars:
        return None
    return _BEFORE + "*[" + re.escape(chars) + "]" + _FREE + "*"


def needed_operators(stated: frozenset[str], done: Iterable[str], after_result: bool) -> frozenset[str]:
    """What the next expression must still write: ``stated`` less what earlier calls ``done`` wrote, less the
    division words before any tool result (:data:`LATE_OPERATORS`)."""
    need = {op for op in stated if not set(_SATISFIES[op]) & set(done)}
    if not after_result:
        need -= LATE_OPERATORS
    # one character serves both when one class holds the other: "remainder … divided by" needs one "%",
    # "goes up by … plus" one "+"
    return frozenset(op for op in need
                     if not any(o != op and set(_SATISFIES[o]) <= set(_SATISFIES[op]) for o in need))
