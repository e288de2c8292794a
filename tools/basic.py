"""The example tool pack: ten small, offline, deterministic tools.

Pure tools (no state): ``calculate``, ``convert_units``, ``convert_currency``, ``add_tip``, ``date_add``,
``days_between``. Stateful tools (a SQLite file ``tools.sqlite3`` in a working directory): ``add_todo``,
``list_todos``, ``add_note``, ``search_notes``.

Nothing here reads the wall clock or the network:

* "today" is the fixed reference date :data:`TODAY` (2025-06-02, a Monday), so the same call always
  gives the same result;
* currency rates are a fixed, illustrative table (:data:`USD_RATES`), not market data.

Every tool takes typed arguments (its JSON schema comes from the signature and the docstring through
:meth:`tokmem_agent.Tool.from_function`), returns JSON-serialisable data and raises :class:`ValueError`
with a readable message on bad input. Use :func:`make_tools` to get the tools bound to a store directory;
:data:`TOOLS` is a ready-made set whose store lives in a private temporary directory.
"""

# ruff: noqa: TRY004  (bad input of any kind is reported as ValueError, the pack's documented contract)
from __future__ import annotations

import ast
import datetime as dt
import math
import operator
import re
import sqlite3
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

__all__ = ["PURE_TOOLS", "STATEFUL_TOOL_NAMES", "TODAY", "TOOLS", "UNITS", "USD_RATES", "add_tip", "calculate",
           "clear_store", "convert_currency", "convert_units", "date_add", "days_between", "make_tools"]

#: The pack's "today": a fixed reference date, so that results never depend on the wall clock.
TODAY = dt.date(2025, 6, 2)

DATE_PATTERN = r"^(today|\d{4}-\d{2}-\d{2})$"
#: An ISO date (YYYY-MM-DD) or the word "today" (= :data:`TODAY`).
DateArg = Annotated[str, Field(pattern=DATE_PATTERN)]

Currency = Literal["USD", "EUR", "GBP", "JPY", "CHF", "CAD", "AUD", "CNY", "INR", "MXN", "SEK"]

#: Units per 1 US dollar. FIXED AND ILLUSTRATIVE (roughly mid-2024 levels); not live market rates.
USD_RATES: dict[str, float] = {"USD": 1.0, "EUR": 0.92, "GBP": 0.79, "JPY": 155.0, "CHF": 0.9, "CAD": 1.37,
                               "AUD": 1.5, "CNY": 7.25, "INR": 83.5, "MXN": 17.0, "SEK": 10.6}

Unit = Literal["mm", "cm", "m", "km", "in", "ft", "yd", "mi",
               "mg", "g", "kg", "t", "oz", "lb", "st",
               "ml", "l", "tsp", "tbsp", "fl_oz", "cup", "pt", "qt", "gal",
               "celsius", "fahrenheit", "kelvin"]

#: unit -> (dimension, size in the dimension's base unit: metre, kilogram, litre). US customary volumes.
UNITS: dict[str, tuple[str, float]] = {
    "mm": ("length", 0.001), "cm": ("length", 0.01), "m": ("length", 1.0), "km": ("length", 1000.0),
    "in": ("length", 0.0254), "ft": ("length", 0.3048), "yd": ("length", 0.9144), "mi": ("length", 1609.344),
    "mg": ("mass", 1e-6), "g": ("mass", 0.001), "kg": ("mass", 1.0), "t": ("mass", 1000.0),
    "oz": ("mass", 0.028349523125), "lb": ("mass", 0.45359237), "st": ("mass", 6.35029318),
    "ml": ("volume", 0.001), "l": ("volume", 1.0), "tsp": ("volume", 0.00492892159375),
    "tbsp": ("volume", 0.01478676478125), "fl_oz": ("volume", 0.0295735295625), "cup": ("volume", 0.2365882365),
    "pt": ("volume", 0.473176473), "qt": ("volume", 0.946352946), "gal": ("volume", 3.785411784),
    "celsius": ("temperature", 1.0), "fahrenheit": ("temperature", 1.0), "kelvin": ("temperature", 1.0),
}

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


# ----- helpers ------------------------------------------------------------------------------------------
def _num(x: float) -> float | int:
    """Normalise a computed number: no float noise, integral values as int."""
    if isinstance(x, bool):
        raise ValueError("expected a number, got a boolean")
    if isinstance(x, int):
        return x
    if not math.isfinite(x):
        raise ValueError("the result is not a finite number")
    x = round(x, 10)
    if x.is_integer() and abs(x) < 1e15:
        return int(x)
    return x


def _sig(x: float, digits: int = 6) -> float | int:
    """Round to ``digits`` significant digits."""
    return _num(float(f"{x:.{digits}g}"))


def _check_number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return value


def parse_date(value: str, name: str = "date") -> dt.date:
    """An ISO date (YYYY-MM-DD) or ``"today"`` (:data:`TODAY`) as a :class:`datetime.date`."""
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string YYYY-MM-DD or 'today', got {value!r}")
    text = value.strip().lower()
    if text == "today":
        return TODAY
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        raise ValueError(f"invalid {name} {value!r}: expected YYYY-MM-DD or 'today'")
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"invalid {name} {value!r}: no such calendar date") from None


# ----- calculate: a safe arithmetic evaluator -----------------------------------------------------------
_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}
_UNARY: dict[type, Callable[[Any], Any]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCS: dict[str, tuple[Callable[..., Any], int, int]] = {  # name -> (function, min args, max args)
    "sqrt": (math.sqrt, 1, 1), "abs": (abs, 1, 1), "round": (round, 1, 2), "floor": (math.floor, 1, 1),
    "ceil": (math.ceil, 1, 1), "min": (min, 1, 20), "max": (max, 1, 20), "log": (math.log, 1, 2),
    "log10": (math.log10, 1, 1), "exp": (math.exp, 1, 1),
}
_CONSTS = {"pi": math.pi, "e": math.e}
_MAX_MAGNITUDE = 1e100


def _eval(node: ast.AST) -> float | int:
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise ValueError(f"unsupported constant {node.value!r}: only numbers are allowed")
        return node.value
    if isinstance(node, ast.Name):
        if node.id in _CONSTS:
            return _CONSTS[node.id]
        raise ValueError(f"unknown name '{node.id}': allowed are {', '.join([*_CONSTS, *_FUNCS])}")
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, ast.BitXor):
            raise ValueError("'^' is not a power operator here: use ** (e.g. 2 ** 8)")
        if type(node.op) not in _BINOPS:
            raise ValueError(f"unsupported operator {type(node.op).__name__}: use + - * / // % **")
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and (abs(right) > 1000 or (abs(left) > 1 and abs(right) > 330)):
            raise ValueError("exponent too large")
        if isinstance(node.op, (ast.Div, ast.FloorDiv, ast.Mod)) and right == 0:
            raise ValueError("division by zero")
        try:
            value = _BINOPS[type(node.op)](left, right)
        except (OverflowError, ZeroDivisionError) as exc:
            raise ValueError(f"cannot compute: {exc}") from None
        if isinstance(value, complex):
            raise ValueError("the result is not a real number")
        if abs(value) > _MAX_MAGNITUDE:
            raise ValueError("result too large")
        return value
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCS or node.keywords:
            raise ValueError(f"unsupported function call: allowed are {', '.join(_FUNCS)}")
        fn, lo, hi = _FUNCS[node.func.id]
        if not lo <= len(node.args) <= hi:
            raise ValueError(f"{node.func.id}() takes {lo}" + (f" to {hi}" if hi > lo else "") + " argument(s)")
        args = [_eval(a) for a in node.args]
        try:
            return fn(*args)
        except (ValueError, OverflowError) as exc:
            raise ValueError(f"{node.func.id}(): {exc}") from None
    raise ValueError(f"unsupported syntax: {type(node).__name__}")


def calculate(expression: str) -> dict[str, Any]:
    """Evaluate an arithmetic expression exactly as written and return the number.

    Args:
        expression: Arithmetic in Python syntax: numbers, + - * / // % ** and parentheses, the constants
            pi and e, and the functions sqrt, abs, round, floor, ceil, min, max, log, log10, exp. For
            example "(12.5 + 7) * 3" or "sqrt(2) / 2".
    """
    if not isinstance(expression, str) or not expression.strip():
        raise ValueError("expression must be a non-empty string")
    if len(expression) > 300:
        raise ValueError("expression is too long (max 300 characters)")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"cannot parse expression {expression!r}: {exc.msg}") from None
    return {"expression": expression, "result": _num(_eval(tree))}


# ----- conversions ----------------------------------------------------------------------------------------
def _to_celsius(value: float, unit: str) -> float:
    return {"celsius": value, "fahrenheit": (value - 32) * 5 / 9, "kelvin": value - 273.15}[unit]


def _from_celsius(value: float, unit: str) -> float:
    return {"celsius": value, "fahrenheit": value * 9 / 5 + 32, "kelvin": value + 273.15}[unit]


def convert_units(value: float, from_unit: Unit, to_unit: Unit) -> dict[str, Any]:
    """Convert a length, mass, volume or temperature from one unit to another.

    Args:
        value: The amount to convert.
        from_unit: Unit of the value. Length: mm, cm, m, km, in, ft, yd, mi. Mass: mg, g, kg, t (metric
            tonne), oz, lb, st (stone). Volume (US customary): ml, l, tsp, tbsp, fl_oz, cup, pt, qt, gal.
            Temperature: celsius, fahrenheit, kelvin.
        to_unit: Unit to convert to; must measure the same thing as from_unit.
    """
    value = _check_number(value, "value")
    for name, unit in (("from_unit", from_unit), ("to_unit", to_unit)):
        if unit not in UNITS:
            raise ValueError(f"unknown {name} {unit!r}; known units: {', '.join(UNITS)}")
    dim_from, size_from = UNITS[from_unit]
    dim_to, size_to = UNITS[to_unit]
    if dim_from != dim_to:
        raise ValueError(f"cannot convert {dim_from} ({from_unit}) to {dim_to} ({to_unit})")
    if dim_from == "temperature":
        celsius = _to_celsius(value, from_unit)
        if celsius < -273.15 - 1e-9:
            raise ValueError(f"{value} {from_unit} is below absolute zero")
        result = _from_celsius(celsius, to_unit)
    else:
        if value < 0:
            raise ValueError(f"a {dim_from} cannot be negative, got {value}")
        result = value * size_from / size_to
    return {"value": value, "from_unit": from_unit, "to_unit": to_unit, "result": _sig(result)}


def convert_currency(amount: float, from_currency: Currency, to_currency: Currency) -> dict[str, Any]:
    """Convert money between currencies at a fixed, illustrative rate table (not live market rates).

    Args:
        amount: The amount of money in from_currency.
        from_currency: ISO 4217 code of the currency the amount is in.
        to_currency: ISO 4217 code of the currency to convert to.
    """
    amount = _check_number(amount, "amount")
    if amount < 0:
        raise ValueError(f"amount cannot be negative, got {amount}")
    for name, code in (("from_currency", from_currency), ("to_currency", to_currency)):
        if code not in USD_RATES:
            raise ValueError(f"unknown {name} {code!r}; known currencies: {', '.join(USD_RATES)}")
    rate = USD_RATES[to_currency] / USD_RATES[from_currency]
    return {"amount": amount, "from_currency": from_currency, "to_currency": to_currency,
            "rate": _sig(rate), "result": _num(round(amount * rate, 2))}


def add_tip(bill: float, percent: float = 15.0,
            people: Annotated[int, Field(ge=1)] = 1) -> dict[str, Any]:
    """Add a tip to a bill and optionally split the total between several people.

    Args:
        bill: The bill before the tip.
        percent: Tip in percent of the bill (15 when not given).
        people: How many people share the total (1 when not given).
    """
    bill = _check_number(bill, "bill")
    percent = _check_number(percent, "percent")
    if bill < 0:
        raise ValueError(f"bill cannot be negative, got {bill}")
    if not 0 <= percent <= 100:
        raise ValueError(f"percent must be between 0 and 100, got {percent}")
    if isinstance(people, bool) or not isinstance(people, int) or people < 1:
        raise ValueError(f"people must be a whole number of at least 1, got {people!r}")
    tip = round(bill * percent / 100, 2)
    total = round(bill + tip, 2)
    return {"bill": bill, "percent": percent, "tip": _num(tip), "total": _num(total),
            "people": people, "per_person": _num(round(total / people, 2))}


# ----- dates ---------------------------------------------------------------------------------------------
def date_add(date: DateArg, days: int) -> dict[str, Any]:
    """Add a number of days to a date (negative days go back) and give the weekday of the result.

    Args:
        date: Start date as YYYY-MM-DD, or "today" (the pack's fixed reference date, 2025-06-02).
        days: Days to add; negative to count backwards. A week is 7 days.
    """
    start = parse_date(date)
    if isinstance(days, bool) or not isinstance(days, int):
        raise ValueError(f"days must be a whole number, got {days!r}")
    try:
        end = start + dt.timedelta(days=days)
    except OverflowError:
        raise ValueError(f"{days} days from {start.isoformat()} is outside the calendar") from None
    return {"date": start.isoformat(), "days": days, "result": end.isoformat(), "weekday": WEEKDAYS[end.weekday()]}


def days_between(start: DateArg, end: DateArg) -> dict[str, Any]:
    """Count the days from one date to another (negative when end is before start).

    Args:
        start: First date as YYYY-MM-DD, or "today" (the pack's fixed reference date, 2025-06-02).
        end: Second date as YYYY-MM-DD, or "today".
    """
    a, b = parse_date(start, "start"), parse_date(end, "end")
    return {"start": a.isoformat(), "end": b.isoformat(), "days": (b - a).days}


# ----- the SQLite store -----------------------------------------------------------------------------------
_SCHEMA = """
CREATE TABLE IF NOT EXISTS todos (id INTEGER PRIMARY KEY AUTOINCREMENT, title TEXT NOT NULL, due TEXT);
CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY AUTOINCREMENT, title TEXT NOT NULL, text TEXT NOT NULL);
"""


class _Store:
    """``tools.sqlite3`` in ``workdir`` (a private temporary directory when None), created on first use.

    One connection, opened on first use and shared under a lock, so tools may run in worker threads. Each
    :meth:`session` is one transaction: committed when it ends, rolled back on an exception.
    """

    def __init__(self, workdir: str | None, durable: bool = True):
        self._workdir = workdir
        self._durable = durable
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        if self._workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="tokmem-tools-")  # removed at exit
            self._workdir = self._tmp.name
        return Path(self._workdir) / "tools.sqlite3"

    @contextmanager
    def session(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._conn is None:
                path = self.path
                path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(path, timeout=10, check_same_thread=False)
                conn.row_factory = sqlite3.Row
                if not self._durable:  # no fsync: much faster on slow disks, but a power cut may lose data
                    conn.execute("PRAGMA synchronous=OFF")
                    conn.execute("PRAGMA journal_mode=MEMORY")
                conn.executescript(_SCHEMA)
                self._conn = conn
            with self._conn:
                yield self._conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def _text(value: Any, name: str, max_len: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string")
    value = value.strip()
    if len(value) > max_len:
        raise ValueError(f"{name} is too long ({len(value)} characters, max {max_len})")
    return value


def _make_stateful(store: _Store) -> list[Callable[..., Any]]:
    def add_todo(title: str, due: DateArg | None = None) -> dict[str, Any]:
        """Add an item to the to-do list.

        Args:
            title: What to do, e.g. "call the dentist".
            due: Due date as YYYY-MM-DD, or "today" (the pack's fixed reference date, 2025-06-02); leave
                out when there is none.
        """
        title = _text(title, "title", 200)
        due_iso = None if due is None else parse_date(due, "due").isoformat()
        with store.session() as conn:
            cur = conn.execute("INSERT INTO todos (title, due) VALUES (?, ?)", (title, due_iso))
            return {"id": cur.lastrowid, "title": title, "due": due_iso}

    def list_todos(due_by: DateArg | None = None) -> dict[str, Any]:
        """List the to-do items, soonest due first (items without a due date last).

        Args:
            due_by: Only items due on or before this date (YYYY-MM-DD or "today"); leave out for all.
        """
        limit = None if due_by is None else parse_date(due_by, "due_by").isoformat()
        with store.session() as conn:
            if limit is None:
                rows = conn.execute("SELECT id, title, due FROM todos").fetchall()
            else:
                rows = conn.execute("SELECT id, title, due FROM todos WHERE due IS NOT NULL AND due <= ?",
                                    (limit,)).fetchall()
        todos = sorted((dict(r) for r in rows), key=lambda r: (r["due"] is None, r["due"] or "", r["id"]))
        return {"due_by": limit, "count": len(todos), "todos": todos}

    def add_note(title: str, text: str) -> dict[str, Any]:
        """Save a short note.

        Args:
            title: A few words naming the note, e.g. "Wifi password".
            text: The content of the note.
        """
        title = _text(title, "title", 200)
        text = _text(text, "text", 2000)
        with store.session() as conn:
            cur = conn.execute("INSERT INTO notes (title, text) VALUES (?, ?)", (title, text))
            return {"id": cur.lastrowid, "title": title}

    def search_notes(query: str, limit: Annotated[int, Field(ge=1, le=50)] = 5) -> dict[str, Any]:
        """Find saved notes whose title or text contains every word of the query (case-insensitive).

        Args:
            query: One or more keywords, e.g. "wifi".
            limit: At most this many notes, oldest first (5 when not given).
        """
        words = _text(query, "query", 200).lower().split()
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 50:
            raise ValueError(f"limit must be a whole number from 1 to 50, got {limit!r}")
        with store.session() as conn:
            rows = conn.execute("SELECT id, title, text FROM notes ORDER BY id").fetchall()
        hits = [dict(r) for r in rows if all(w in f"{r['title']} {r['text']}".lower() for w in words)]
        return {"query": query, "count": len(hits[:limit]), "notes": hits[:limit]}

    return [add_todo, list_todos, add_note, search_notes]


def clear_store(workdir: str | Path, *, durable: bool = True) -> None:
    """Delete every to-do and note in the store of ``workdir`` and restart the ids at 1 (no-op if none)."""
    path = Path(workdir) / "tools.sqlite3"
    if not path.exists():
        return
    store = _Store(str(workdir), durable)
    try:
        _clear(store)
    finally:
        store.close()


def _clear(store: _Store) -> None:
    with store.session() as conn:
        conn.execute("DELETE FROM todos")
        conn.execute("DELETE FROM notes")
        conn.execute("DELETE FROM sqlite_sequence WHERE name IN ('todos', 'notes')")


#: The tools that need no store.
PURE_TOOLS: list[Callable[..., Any]] = [calculate, convert_units, convert_currency, add_tip, date_add, days_between]
STATEFUL_TOOL_NAMES = ("add_todo", "list_todos", "add_note", "search_notes")


def make_tools(workdir: str | None = None, *, durable: bool = True) -> list[Callable[..., Any]]:
    """The ten tools, in a fixed order; the stateful ones keep their SQLite store in ``workdir``.

    ``workdir=None`` puts the store in a private temporary directory (removed at exit), so each call of
    ``make_tools()`` starts with an empty to-do list and no notes. The directory is created on first use.
    ``durable=False`` turns off SQLite's fsync (for throw-away stores: trace generation, tests).
    """
    return [*PURE_TOOLS, *_make_stateful(_Store(workdir, durable))]


#: A ready-made set of the tools (store in a private temporary directory).
TOOLS: list[Callable[..., Any]] = make_tools()
