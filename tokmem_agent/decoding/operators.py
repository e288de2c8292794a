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

import math
import re
from collections.abc import Iterable
from typing import Any

from .params import free_string, param_words

__all__ = ["CONSTANTS", "LATE_OPERATORS", "expression_operators", "expression_pattern", "has_expression_param",
           "is_expression_param", "needed_operators",
           "number_literals", "percent_change", "stated_operators"]

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
    if not free_string(spec):
        return False
    return bool(param_words(name) & _EXPRESSION_NAMES) or bool(_EXPRESSION_DESC.search(str(spec.get("description") or "")))


#: pieces of a well-formed arithmetic string: a name (``sqrt``, ``pi``, ``log10``), a number written plainly
#: (no thousands separator, no unit glued on: ``1199``, not ``1,199`` or ``2.4m``), and what may follow a number
_NAME = "[A-Za-z_][A-Za-z_0-9]*"
_NUMBER = "[0-9]+(\\.[0-9]+)?"
_SPACES = "[ ()]"  # spaces and brackets
_OPS = "*/+%-"


#: numbers an expression may use beyond the conversation's: small counts and the usual unit factors (a dozen,
#: hours in a day, days in a month, weeks in a year, minutes in an hour, percent, days in a year, thousand)
CONSTANTS = (*range(13), 24, 30, 52, 60, 100, 365, 1000)


def number_literals(numbers: Iterable[float]) -> tuple[str, ...]:
    """The ways an expression may write each of ``numbers`` and :data:`CONSTANTS`: an integer as an integer,
    a fraction as Python prints it and, from 1 up, also with two decimals ("25.00", "19.90", "4.73" for 4.7318)."""
    out: set[str] = set()
    for x in (*numbers, *CONSTANTS):
        x = abs(float(x))  # a sign is an operator of its own
        if not math.isfinite(x) or "e" in repr(x):
            continue
        out.add(str(int(x)) if x == int(x) else repr(x))
        if x >= 1:
            out.add(f"{x:.2f}")  # "25.00", "19.90", "4.73"
    return tuple(sorted(out, key=lambda t: (-len(t), t)))


def _stream(ops: str, number: str) -> str:
    """Regex of a run of names, numbers, spaces, brackets and the operator characters ``ops``, in which every
    number ends at a space, a bracket or one of ``ops`` (or at the end); ", " only between the arguments of
    a function ("max(3, 4)", "round(2.5 ** 2, 1)"), never between two bare numbers ("1026.21 - 1, 1199")."""
    after = _SPACES + (f"|[{re.escape(ops)}]" if ops else "")
    plain = f"({_NAME}|{after}|{number}({after}))*({number})?"
    call = f"{_NAME}\\({plain}(, {plain})+\\)"  # a function of several arguments
    return f"({call}|{_NAME}|{after}|{number}({after}))*({number})?"


_PERCENT = re.compile(r"\d\s*%|\bper\s?cent\b|\bpct\b", re.IGNORECASE)


def percent_change(text: str) -> str | None:
    """The sign of a change by a percentage ``text`` states: "+" for a rise ("goes up by 4.5%"), "-" for a
    fall ("20% off"); None when it states neither, or both."""
    if not _PERCENT.search(text):
        return None
    ops = stated_operators(text)
    rise, fall = "+*" in ops, "-*" in ops
    return "+" if rise and not fall else "-" if fall and not rise else None


def _containing(rest: str, sign: str | None) -> str:
    """Regex: ``rest`` holding the character ``sign`` somewhere (``rest`` itself when None)."""
    return f"{rest}{re.escape(sign)}{rest}" if sign else rest


def expression_pattern(need: Iterable[str] = (), numbers: Iterable[float] | None = None,
                       sign: str | None = None) -> str:
    """A JSON-schema ``pattern`` (matched whole) for an arithmetic expression: numbers written plainly
    (``1199``, not ``1,199``, a tuple in Python; ``2.4``, not ``2.4m``); when ``need`` is not empty, a
    *first* operator among ``need``'s: numbers, names, spaces and brackets, then one of its operators, then
    anything well-formed (a pattern that only asked for the operator somewhere let the model write its
    habitual ``*`` first and then pad the string with a stray ``%`` to pass); with ``numbers``, only those
    numbers and the :data:`CONSTANTS` (:func:`number_literals`). ``sign`` ("+" or "-", with ``numbers``): a
    change by a percentage (:func:`percent_change`) writes that sign somewhere, ``1150 * (1 + 4.5 / 100)``,
    not ``1150 * 4.5 / 100`` (the factor ``1.045`` is no number of the conversation).

    Asking for *every* stated operation (the first among them) was tried and dropped: after "12 squared plus
    5 squared" the model chose ``+`` first and then wrote ``12 + 5 + 12 + …`` to the token budget, never the
    ``*`` it still owed."""
    number = _NUMBER if numbers is None else "(" + "|".join(re.escape(t) for t in number_literals(numbers)) + ")"
    rest = _stream(_OPS, number)
    sign = sign if numbers is not None else None
    firsts = sorted({c for op in need for c in _FIRST[op]})
    if not firsts:
        return _containing(rest, sign)
    alternatives = [re.escape(c) + _containing(rest, None if c == sign else sign) for c in firsts]
    return f"{_stream('', number)}({'|'.join(alternatives)})"


def has_expression_param(schema: Any) -> bool:
    """Whether a tool's parameters ``schema`` holds an arithmetic expression parameter."""
    props = schema.get("properties") if isinstance(schema, dict) else None
    return isinstance(props, dict) and any(is_expression_param(k, v) for k, v in props.items())


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
