"""Generate the example pack's training and test traces (``tools/data/{train,test}.jsonl``).

    python -m tools.make_traces --out tools/data

Deterministic: a seeded :class:`random.Random`, fixed template and value pools, and tools that never read
the clock or the network, so the files regenerate byte for byte. Every call is really executed (stateful
tools in a fresh SQLite store per record), and the record keeps what came back:

* APIGen fields: ``id``, ``query``, ``tools`` (the schemas of all ten pack tools), ``answers``, ``source``,
  ``n_calls``;
* chain fields: ``messages`` (the user turn), ``results`` (each call's return value), ``between``
  (``n_calls - 1`` lists, all empty: the next call follows its predecessor's result directly) and
  ``response`` (the final answer, written from the results);
* ``setup`` (only on records that need it): calls that fill the store *before* the record (e.g. the to-dos
  that ``list_todos`` then lists). Replay them in a fresh store to reproduce ``results``.

Test records use held-out query templates and held-out to-do titles and notes; no test query occurs in
train.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import functools
import json
import re
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from tokmem_agent.registry import Tool
from tokmem_agent.traces import parse_record, write_jsonl

from . import basic
from . import phrasing as ph
from .basic import STATEFUL_TOOL_NAMES, TODAY, make_tools

SEED = 20250602
SOURCE = "tokmem-tools"
DATA_DIR = Path(__file__).resolve().parent / "data"

#: record counts: multi-call records per split; single-call records per tool.
TRAIN_MULTI = 520
TRAIN_CALLS_PER_TOOL = 150  # single-call records per tool = this minus the tool's multi-call records
TRAIN_MIN_SINGLE = 100
TEST_MULTI = 52
TEST_SINGLE_PER_TOOL = 7
#: share of single-call records from the free-phrasing generators (FREE) and wrapped in a casual preamble
FREE_SHARE = 0.5
CASUAL_SHARE = 0.2
#: share of sampled dates that fall on a fixed-date holiday (tools/phrasing.py HOLIDAYS)
HOLIDAY_SHARE = 0.25
#: share of numbers >= 1000 that a request writes with comma thousands separators ("12,500"; arguments: 12500)
COMMA_SHARE = 0.5
#: a date at most this many days after TODAY may be written without its year ("8 June", "Sunday 8 June"): the
#: reader takes the next such date on or after today; past and farther dates always show their year
YEARLESS_DAYS = 300

Args = dict[str, Any]
ArgSpec = Args | Callable[[list[Any]], Args]  # fixed arguments, or built from the earlier results


@dataclass
class Draft:
    """A record before execution: the query, the calls and how to word the answer from the results."""

    query: str
    calls: list[tuple[str, ArgSpec]]
    respond: Callable[[list[Any]], str]
    setup: list[tuple[str, Args]] = field(default_factory=list)


def tool_schemas() -> list[dict[str, Any]]:
    """The JSON schema dicts of all pack tools, in pack order (what every record's ``tools`` holds)."""
    return copy.deepcopy(_tool_schemas())


@functools.lru_cache(maxsize=1)
def _tool_schemas() -> list[dict[str, Any]]:
    return [Tool.from_function(f).to_dict() for f in make_tools()]


# ----- formatting -------------------------------------------------------------------------------------------
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def num(x: float) -> str:
    """A number written out exactly (shortest round-trip form, no exponent): 12, 12.5, 0.000123457."""
    if isinstance(x, int):
        return str(x)
    if float(x).is_integer():
        return str(int(x))
    text = repr(float(x))
    return text if "e" not in text else f"{x:.12f}".rstrip("0").rstrip(".")


def group(text: str) -> str:
    """A written number with comma thousands separators: '12500' -> '12,500', '1299.99' -> '1,299.99'."""
    sign, body = ("-", text[1:]) if text.startswith("-") else ("", text)
    whole, dot, frac = body.partition(".")
    return f"{sign}{int(whole):,}{dot}{frac}"


def approx(x: float, places: int = 2) -> str:
    """A number for an answer text: exact when short, else rounded ("about 12.14")."""
    text = num(x)
    return text if len(text.partition(".")[2]) <= 4 else f"about {num(round(x, places))}"


def money(x: float) -> str:
    return f"{x:,.2f}"


def ordinal(n: int) -> str:
    return f"{n}{'th' if 11 <= n % 100 <= 13 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def long_date(iso: str) -> str:
    d = dt.date.fromisoformat(iso)
    return f"{MONTHS[d.month - 1]} {d.day}, {d.year}"


CURRENCY_WORDS = {
    "USD": ["US dollars", "dollars", "USD"], "EUR": ["euros", "EUR"], "GBP": ["British pounds", "pounds", "GBP"],
    "JPY": ["Japanese yen", "yen", "JPY"], "CHF": ["Swiss francs", "CHF"], "CAD": ["Canadian dollars", "CAD"],
    "AUD": ["Australian dollars", "AUD"], "CNY": ["Chinese yuan", "yuan", "CNY"],
    "INR": ["Indian rupees", "rupees", "INR"], "MXN": ["Mexican pesos", "pesos", "MXN"],
    "SEK": ["Swedish kronor", "kronor", "SEK"],
}
CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}
#: more symbol prefixes, written less often ("CA$2,750", "₹8,000"); none for CHF (its code is its sign) or SEK
CURRENCY_SYMBOLS_MORE = {"USD": ["US$"], "CAD": ["CA$", "C$"], "AUD": ["A$", "AU$"], "MXN": ["MX$"],
                         "INR": ["₹", "Rs "], "CNY": ["CN¥"]}
BIG_CURRENCIES = {"JPY", "INR", "MXN", "SEK", "CNY"}

UNIT_WORDS = {
    "mm": ["mm", "millimeters", "millimetres"], "cm": ["cm", "centimeters", "centimetres"],
    "m": ["m", "meters", "metres"], "km": ["km", "kilometers", "kilometres"], "in": ["inches", "in"],
    "ft": ["feet", "ft"], "yd": ["yards", "yd"], "mi": ["miles", "mi"],
    "mg": ["mg", "milligrams"], "g": ["grams", "g"], "kg": ["kg", "kilograms", "kilos"],
    "t": ["tonnes", "metric tons"], "oz": ["ounces", "oz"], "lb": ["pounds", "lbs", "lb"], "st": ["stone"],
    "ml": ["ml", "milliliters", "millilitres"], "l": ["liters", "litres", "l"], "tsp": ["teaspoons", "tsp"],
    "tbsp": ["tablespoons", "tbsp"], "fl_oz": ["fluid ounces", "fl oz"], "cup": ["cups"], "pt": ["pints"],
    "qt": ["quarts"], "gal": ["gallons", "gal"],
    "celsius": ["°C", "degrees Celsius", "Celsius"], "fahrenheit": ["°F", "degrees Fahrenheit", "Fahrenheit"],
    "kelvin": ["K", "kelvin"],
}
UNIT_SHOW = {"fl_oz": "fl oz", "cup": "cups", "t": "tonnes", "celsius": "°C", "fahrenheit": "°F", "kelvin": "K"}
UNIT_GROUPS = {
    "length": ["mm", "cm", "m", "km", "in", "ft", "yd", "mi"],
    "mass": ["mg", "g", "kg", "t", "oz", "lb", "st"],
    "volume": ["ml", "l", "tsp", "tbsp", "fl_oz", "cup", "pt", "qt", "gal"],
    "temperature": ["celsius", "fahrenheit", "kelvin"],
}
COMMON_PAIRS = [("km", "mi"), ("mi", "km"), ("kg", "lb"), ("lb", "kg"), ("celsius", "fahrenheit"),
                ("fahrenheit", "celsius"), ("l", "gal"), ("gal", "l"), ("cm", "in"), ("in", "cm"), ("ft", "m"),
                ("m", "ft"), ("oz", "g"), ("g", "oz"), ("cup", "ml"), ("ml", "cup")]
UNIT_RANGES = {  # (low, high) for a value given in this unit
    "mm": (2, 900), "cm": (2, 300), "m": (2, 5000), "km": (2, 500), "in": (2, 120), "ft": (2, 500),
    "yd": (2, 500), "mi": (2, 300), "mg": (10, 5000), "g": (5, 2000), "kg": (2, 200), "t": (2, 50),
    "oz": (2, 64), "lb": (2, 300), "st": (6, 25), "ml": (50, 3000), "l": (2, 100), "tsp": (2, 12),
    "tbsp": (2, 16), "fl_oz": (2, 64), "cup": (2, 12), "pt": (2, 10), "qt": (2, 10), "gal": (2, 50),
    "celsius": (-30, 45), "fahrenheit": (-10, 110), "kelvin": (250, 320),
}


def show_unit(u: str) -> str:
    return UNIT_SHOW.get(u, u)


def qty(v: float, u: str) -> str:
    """A value with its unit for an answer text: '12 km', '21.5 °C'."""
    return f"{num(v)} {show_unit(u)}"


# ----- value pools (train / test) -------------------------------------------------------------------------
TODO_TITLES = {
    "train": [
        "call the dentist", "renew my passport", "buy milk", "pay the electricity bill", "book a haircut",
        "water the plants", "send the quarterly report", "pick up the dry cleaning", "email Sarah about the budget",
        "return the library books", "schedule a car service", "buy a birthday present for Tom",
        "cancel the gym membership", "file the tax return", "order printer ink", "clean the garage",
        "submit the expense report", "call the plumber", "update my CV", "back up the laptop",
        "buy train tickets", "renew the car insurance", "check the smoke alarms", "book flights to Lisbon",
        "reply to the landlord", "prepare slides for the review", "pay rent", "walk the dog", "buy groceries",
        "fix the bike tyre", "take out the recycling", "call grandma", "defrost the freezer",
        "write thank-you cards", "register for the conference", "charge the camera batteries",
        "review the contract", "get the oil changed", "vacuum the car", "book the venue for the party",
    ],
    "test": [
        "repaint the fence", "book a vet appointment for the cat", "renew the domain name", "mail the tax forms",
        "buy a new phone charger", "sign up for the swimming class", "return the rental skis", "order new glasses",
        "call the bank about the card", "plant the tomatoes", "send invoices to clients", "donate old clothes",
        "book a table for Friday", "replace the air filter", "buy stamps",
    ],
}

# (title, text, keywords that occur in the title or text)
NOTES = {
    "train": [
        ("Wifi password", "The guest wifi password is blue-falcon-42.", ["wifi", "password"]),
        ("Parking spot", "Car is parked on level 3, spot C12.", ["parking", "parked"]),
        ("Gift ideas for Mom", "Orchids, a jazz record, or a pottery class.", ["gift", "mom"]),
        ("Locker code", "Gym locker combination is 4-18-27.", ["locker", "gym"]),
        ("Books to read", "Read The Overstory and Piranesi next.", ["books", "piranesi"]),
        ("Doctor visit", "Dr. Alvarez said to take vitamin D daily.", ["doctor", "vitamin"]),
        ("Project Falcon", "Kickoff moved to Thursday; the budget is 40k.", ["falcon", "budget"]),
        ("Pancake recipe", "2 eggs, 1 cup flour, 1 cup milk, a pinch of salt.", ["pancake", "recipe"]),
        ("Landlord contact", "Mr. Jensen, phone 555-0142, jensen@example.com.", ["landlord", "jensen"]),
        ("Bike lock", "The bike lock code is 3091.", ["bike", "lock"]),
        ("Passport details", "Passport number ends in 7781 and expires in March 2027.", ["passport"]),
        ("Team meeting", "Team agreed to ship version 2.1 before the holidays.", ["meeting", "version"]),
        ("Restaurants to try", "Luigi's for pasta and Sakura for sushi.", ["restaurants", "sushi"]),
        ("Car insurance", "Policy number AX-55312 with Northwind Insurance.", ["insurance", "policy"]),
        ("Plant care", "Water the fern twice a week and the cactus once a month.", ["fern", "cactus"]),
        ("Packing list", "Charger, sunscreen, hiking boots, rain jacket.", ["packing", "sunscreen"]),
        ("Birthdays", "Anna on 12 April, Ben on 3 September.", ["birthdays", "anna"]),
        ("Alarm code", "The house alarm code is 8264.", ["alarm"]),
        ("Paint colour", "Living room paint is Sage Mist by Dulux.", ["paint", "living room"]),
        ("Vet reminder", "The cat's next vaccination is due in October.", ["vet", "vaccination"]),
        ("Movies to watch", "Dune Part Two and Past Lives.", ["movies", "dune"]),
        ("Shoe size", "EU 43, US 10 for running shoes.", ["shoe", "size"]),
        ("Dentist", "Dr. Okafor at Smile Clinic, 555-0199.", ["dentist", "okafor"]),
        ("Workout plan", "Monday legs, Wednesday back, Friday chest.", ["workout", "legs"]),
        ("Spare key", "The spare key is with the neighbour at number 14.", ["spare key", "neighbour"]),
        ("Favourite quote", "Simplicity is prerequisite for reliability.", ["quote", "simplicity"]),
        ("Garden plans", "Plant the tulip bulbs in October.", ["tulip", "garden"]),
        ("Train times", "The 7:42 train gets to the city at 8:30.", ["train"]),
        ("Coffee order", "Oat flat white, extra hot.", ["coffee"]),
        ("Electricity meter", "The meter reading on 1 May was 45120.", ["meter", "electricity"]),
    ],
    "test": [
        ("Hotel booking", "Confirmation code HB-99213 at the Harbour Inn.", ["hotel", "confirmation"]),
        ("Boiler service", "The boiler was serviced on 14 February by HeatPro.", ["boiler"]),
        ("Podcast picks", "Hidden Brain and Radiolab.", ["podcast"]),
        ("Office door code", "The office door code is 5521.", ["office", "door code"]),
        ("Allergies", "Sam is allergic to peanuts and shellfish.", ["allergic", "peanuts"]),
        ("Bank branch", "The nearest branch is on King Street, open until 5.", ["bank", "branch"]),
        ("Tyre pressure", "Front tyres 2.3 bar, rear 2.5 bar.", ["tyre", "pressure"]),
        ("Wine to buy again", "The 2019 Rioja from the corner shop.", ["wine", "rioja"]),
        ("Library card", "Library card number 20044178.", ["library"]),
        ("Yoga class", "Yoga is on Tuesdays at 6:30 in studio B.", ["yoga"]),
        ("Printer", "Printer model LaserJet 4100, toner 61X.", ["printer", "toner"]),
        ("Camping gear", "The tent poles are in the blue bag in the attic.", ["tent", "camping"]),
    ],
}
TIP_PERCENTS = [10, 12, 15, 18, 20, 22, 25]


class Ctx:
    """Random choices for one split (train/test)."""

    def __init__(self, rng: Any, split: str):
        self.rng = rng
        self.split = split

    # generic
    def pick(self, seq: Sequence[Any]) -> Any:
        return seq[self.rng.randrange(len(seq))]

    def tpl(self, templates: dict[str, list[Any]]) -> Any:
        return self.pick(templates[self.split])

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def sample(self, seq: Sequence[Any], k: int) -> list[Any]:
        return self.rng.sample(list(seq), k)

    # numbers
    def int_(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)

    def value(self, lo: float, hi: float, p_decimal: float = 0.3) -> float:
        if self.chance(p_decimal):
            x = round(self.rng.uniform(lo, hi), 1)
            return int(x) if x.is_integer() else x
        return self.rng.randint(int(lo), int(hi))

    def price(self, lo: float = 3, hi: float = 300) -> float:
        if self.chance(0.5):
            return self.rng.randint(int(lo), int(hi))
        x = round(self.rng.uniform(lo, hi), 2)
        return int(x) if x.is_integer() else x

    def amount(self, code: str) -> float:
        if code in BIG_CURRENCIES:
            return self.rng.randint(2, 500) * self.pick([10, 10, 50, 100])
        return self.price(1000, 6000) if self.chance(0.2) else self.price(5, 900)

    def num_text(self, x: float) -> str:
        """How a number is written in a query: exact, from 1000 up often with separators (12500 or 12,500)."""
        text = num(x)
        return group(text) if abs(x) >= 1000 and self.chance(COMMA_SHARE) else text

    def price_text(self, x: float) -> str:
        """How a price is written in a query: 48.50, 48.5, 1250 or 1,250, 1,299.99."""
        text = str(x) if isinstance(x, int) else f"{x:.2f}" if self.chance(0.7) else num(x)
        return group(text) if x >= 1000 and self.chance(COMMA_SHARE) else text

    def bill(self) -> float:
        """A restaurant bill; now and then a big one (a party, a wedding: 1,240.50)."""
        return self.price(1000, 3000) if self.chance(0.08) else self.price(8, 400)

    # currencies
    def currencies(self, k: int = 2) -> list[str]:
        codes = list(CURRENCY_WORDS)
        common = ["USD", "EUR", "GBP", "JPY"]
        first = self.pick(common) if self.chance(0.6) else self.pick(codes)
        rest = [c for c in codes if c != first]
        return [first, *self.sample(rest, k - 1)]

    def cur_name(self, code: str) -> str:
        return self.pick(CURRENCY_WORDS[code])

    def money_text(self, x: float, code: str) -> str:
        text = self.price_text(x)
        if code in CURRENCY_SYMBOLS and self.chance(0.4):
            return f"{CURRENCY_SYMBOLS[code]}{text}"
        if code in CURRENCY_SYMBOLS_MORE and self.chance(0.25):
            return f"{self.pick(CURRENCY_SYMBOLS_MORE[code])}{text}"
        if self.chance(0.25):
            return f"{code} {text}"
        return f"{text} {self.cur_name(code)}"

    # units
    def unit_pair(self, group: str | None = None) -> tuple[str, str]:
        if group is None and self.chance(0.45):
            return self.pick(COMMON_PAIRS)
        group = group or self.pick(list(UNIT_GROUPS))
        a, b = self.sample(UNIT_GROUPS[group], 2)
        return a, b

    def unit_value(self, u: str) -> float:
        lo, hi = UNIT_RANGES[u]
        return self.value(lo, hi, 0.25)

    def unit_word(self, u: str) -> str:
        return self.pick(UNIT_WORDS[u])

    def qty_text(self, v: float, u: str) -> str:
        w = self.unit_word(u)
        return f"{self.num_text(v)}{w}" if w.startswith("°") else f"{self.num_text(v)} {w}"

    # dates
    def date(self, lo: str = "2024-01-01", hi: str = "2026-12-31") -> str:
        a, b = dt.date.fromisoformat(lo), dt.date.fromisoformat(hi)
        if self.chance(HOLIDAY_SHARE):  # a fixed-date holiday, often written by its name (date_text)
            days = [h for y in range(a.year, b.year + 1) for _, m, dd in ph.HOLIDAYS
                    if a <= (h := dt.date(y, m, dd)) <= b]
            if days:
                return self.pick(days).isoformat()
        return (a + dt.timedelta(days=self.rng.randint(0, (b - a).days))).isoformat()

    def date_near(self, lo: int, hi: int) -> str:
        """A date ``lo``..``hi`` days from TODAY."""
        if self.chance(HOLIDAY_SHARE):
            a, b = TODAY + dt.timedelta(days=lo), TODAY + dt.timedelta(days=hi)
            return self.date(a.isoformat(), b.isoformat())
        return (TODAY + dt.timedelta(days=self.rng.randint(lo, hi))).isoformat()

    def date_text(self, iso: str, yearless: bool = True) -> str:
        """How a date is written in a query: ISO, long, ordinal, abbreviated, dd/mm/yyyy (day > 12 only),
        with a weekday, a holiday's name; without the year (if ``yearless``) only for a date :func:`soon`."""
        d = dt.date.fromisoformat(iso)
        soon_ = yearless and soon(iso)
        names = [n for ns, m, dd in ph.HOLIDAYS if (m, dd) == (d.month, d.day) for n in ns]
        if names and self.chance(0.7):
            name = self.pick(names)
            return name if soon_ and self.chance(0.4) else f"{name} {d.year}"
        month, y, day, o, wd = MONTHS[d.month - 1], d.year, d.day, ordinal(d.day), WEEKDAYS[d.weekday()]
        mon = month[:3]
        if soon_ and self.chance(0.35):  # no year: the next such date on or after today
            yearless = {
                "train": [f"{day} {month}", f"{month} {o}", f"{month} {day}", f"{mon} {day}", f"{o} {month}",
                          f"the {o} of {month}", f"{wd} {day} {month}", f"{wd}, {month} {o}",
                          f"{wd[:3]} {day} {mon}"],
                "test": [f"{day} {month}", f"{month} {o}", f"{wd} {day} {month}"],
            }
            return self.pick(yearless[self.split])
        styles = {
            "train": [iso, iso, iso, f"{month} {day}, {y}", f"{day} {month} {y}", f"{mon} {day}, {y}",
                      f"{o} {month} {y}", f"{month} {o}, {y}", f"{day} {mon} {y}", f"{wd} {day} {month} {y}",
                      f"{wd}, {month} {day}, {y}"],
            "test": [iso, f"{month} {o}, {y}", f"{day} {mon} {y}", f"{wd} {day} {month} {y}"],
        }[self.split]
        if day > 12:  # day first, never readable as mm/dd
            styles += [f"{day:02d}/{d.month:02d}/{y}", f"{day}/{d.month}/{y}"]
        return self.pick(styles)

    def dates_text(self, a: str, b: str) -> tuple[str, str]:
        """Two dates of one request ("today" stays as is). Either may go without its year only if both are
        today or :func:`soon`: next to '2024-07-31' a bare '27 Oct' would read as 2024."""
        ok = all(x == "today" or soon(x) for x in (a, b))
        ta, tb = (x if x == "today" else self.date_text(x, ok) for x in (a, b))
        return ta, tb

    # pools
    def todo_title(self) -> str:
        return self.pick(TODO_TITLES[self.split])

    def note(self) -> tuple[str, str, list[str]]:
        return self.pick(NOTES[self.split])

    def todo_setup(self, k_lo: int = 0, k_hi: int = 4) -> list[tuple[str, Args]]:
        titles = self.sample(TODO_TITLES[self.split], self.int_(k_lo, k_hi))
        out = []
        for t in titles:
            args: Args = {"title": t}
            if self.chance(0.75):
                args["due"] = self.date_near(-10, 45)
            out.append(("add_todo", args))
        return out

    def note_setup(self, k_lo: int, k_hi: int, *, include: tuple[str, str, list[str]] | None = None,
                   exclude: tuple[str, str, list[str]] | None = None) -> list[tuple[str, Args]]:
        pool = [n for n in NOTES[self.split] if n is not include and n is not exclude]
        notes = self.sample(pool, self.int_(k_lo, k_hi))
        if include is not None:
            notes.insert(self.int_(0, len(notes)), include)
        return [("add_note", {"title": t, "text": x}) for t, x, _ in notes]


def soon(iso: str) -> bool:
    """Whether a date is TODAY or up to YEARLESS_DAYS after it: a request may write it without its year."""
    return 0 <= (dt.date.fromisoformat(iso) - TODAY).days <= YEARLESS_DAYS


def cap(text: str) -> str:
    return text[:1].upper() + text[1:]


_A_NUMBER = re.compile(r"\b([Aa]) (?=[$€£¥₹]?(\d[\d,]*)(?:\.\d+)?\b)")


def fix_articles(text: str) -> str:
    """'a 18% tip' -> 'an 18% tip', 'a 81.28 bill' -> 'an 81.28 bill' (numbers said with a vowel sound)."""
    def repl(m: re.Match[str]) -> str:
        digits = m.group(2).rstrip(",")
        lead = digits.split(",")[0]
        vowel = digits.startswith("8") or lead in ("11", "18") or (len(digits) in (2, 5) and digits[:2] in ("11", "18"))
        return f"{m.group(1)}{'n' * vowel} "
    return _A_NUMBER.sub(repl, text)


# ----- single-call generators -------------------------------------------------------------------------------
CALC_LITERAL = {
    "train": ["What is {e}?", "Calculate {e}", "compute {e}", "{e} = ?", "Can you work out {e}?", "Evaluate {e}.",
              "what's {e}", "Quick math: {e}", "Solve {e} for me", "What does {e} come to?", "{e}?",
              "Please calculate {e}."],
    "test": ["Tell me the value of {e}.", "I need the result of {e}.", "Do the math: {e}"],
}
CALC_WORDS: dict[str, list[tuple[str, str]]] = {
    "train": [
        ("What's {a} times {b}?", "{a} * {b}"), ("Multiply {a} by {b}.", "{a} * {b}"),
        ("What is {a} divided by {b}?", "{a} / {b}"), ("divide {a} by {b}", "{a} / {b}"),
        ("What's the square root of {a}?", "sqrt({a})"), ("What is {a} squared?", "{a} ** 2"),
        ("{a} to the power of {k}", "{a} ** {k}"), ("Add up {a}, {b} and {c}.", "{a} + {b} + {c}"),
        ("What's the sum of {a} and {b}?", "{a} + {b}"), ("Subtract {b} from {a}.", "{a} - {b}"),
        ("What is {p}% of {a}?", "{a} * {p} / 100"), ("What's the average of {a}, {b} and {c}?",
                                                       "({a} + {b} + {c}) / 3"),
        ("How much is {a} minus {b}?", "{a} - {b}"), ("What's the remainder when {a} is divided by {b}?",
                                                     "{a} % {b}"),
        ("how much is {a} plus {b} times {c}", "{a} + {b} * {c}"),
    ],
    "test": [
        ("What do I get if I multiply {a} and {b}?", "{a} * {b}"), ("Take {p} percent of {a}.", "{a} * {p} / 100"),
        ("Find the mean of {a}, {b} and {c}.", "({a} + {b} + {c}) / 3"), ("How much is {a} split {b} ways?",
                                                                           "{a} / {b}"),
        ("Cube {a}.", "{a} ** 3"),
    ],
}
CALC_SHAPES = ["{a} + {b}", "{a} - {b}", "{a} * {b}", "{a} / {b}", "({a} + {b}) * {c}", "{a} * {b} - {c}",
               "({a} - {b}) / {c}", "{a} ** {k}", "sqrt({a})", "{a} % {b}", "{a} + {b} * {c}",
               "round({a} / {b}, 2)", "{a} * ({b} + {c})"]


#: calculate requests that name an amount ({a}): a word of the request -> the range of {a}
CALC_AMOUNTS = {"salary": (18000, 95000), "rent": (600, 3500), "account": (300, 25000), "VAT": (40, 5000),
                "put away": (50, 2500)}
#: share of the other calculate requests whose first operand is 1000 or more (not under ** and not hours)
CALC_BIG_SHARE = 0.25


def _calc_numbers(c: Ctx, expr: str = "", words: str = "") -> tuple[dict[str, str], dict[str, str]]:
    """Operands for a calculate template: (as the expression writes them, as the request shows them: from
    1000 up often with thousands separators). ``expr`` and ``words`` (the expression and request templates)
    decide how big the first operand ``{a}`` may be."""
    def n() -> float:
        return c.value(2, 999, 0.3) if c.chance(0.7) else c.int_(2, 40)
    raw = {"a": n(), "b": n(), "c": n()}
    amount = next((r for w, r in CALC_AMOUNTS.items() if w in words), None)
    if amount and c.chance(0.8):
        raw["a"] = c.int_(*amount)
    elif "**" not in expr and "hour" not in words and c.chance(CALC_BIG_SHARE):
        raw["a"] = c.value(1000, 20000, 0.2)
    fixed = {"k": str(c.int_(2, 5)), "p": str(c.pick([5, 10, 12.5, 15, 20, 25, 30, 40, 75]))}
    return ({**{k: num(v) for k, v in raw.items()}, **fixed},
            {**{k: c.num_text(v) for k, v in raw.items()}, **fixed})


def calc_answer(c: Ctx) -> Callable[[list[Any]], str]:
    def respond(r: list[Any]) -> str:
        res, x = r[0], approx(r[0]["result"], 4)
        eq = f"≈ {x[6:]}" if x.startswith("about ") else f"= {x}"
        return c.pick([f"{res['expression']} {eq}.", f"The result is {x}.", f"That comes to {x}.", f"It's {x}."])
    return respond


def g_calculate(c: Ctx) -> Draft:
    if c.chance(0.5):
        shape = c.pick(CALC_SHAPES)
        vals, shown_vals = _calc_numbers(c, shape)
        # separators only outside function calls: "sqrt(1,444)" and "round(3,480 / 29, 2)" read badly
        expr, shown = shape.format(**vals), shape.format(**(vals if "sqrt(" in shape or "round(" in shape
                                                              else shown_vals))
        if c.chance(0.25):
            expr, shown = expr.replace(" ", ""), shown.replace(" ", "")
        if c.split == "train" and "(" not in expr and ("*" in expr or "/" in expr) and c.chance(0.35):
            shown = shown.replace("*", "×").replace("/", "÷").replace("××", "**")
        query = c.tpl(CALC_LITERAL).format(e=shown)
    else:
        q, e = c.tpl(CALC_WORDS)
        vals, shown_vals = _calc_numbers(c, e, q)
        query, expr = q.format(**shown_vals), e.format(**vals)
    return Draft(query, [("calculate", {"expression": expr})], calc_answer(c))


UNIT_TPL = {
    "train": ["Convert {q} to {u2}", "How many {u2} is {q}?", "{q} in {u2}?", "what is {q} in {u2}",
              "I need {q} expressed in {u2}.", "Please turn {q} into {u2}.", "{q} equals how many {u2}?",
              "how much is {q} in {u2}", "change {q} to {u2}", "Give me {q} converted to {u2}.",
              "Convert {q} into {u2}, please."],
    "test": ["If something measures {q}, what's that in {u2}?", "Express {q} as {u2}.",
             "What do {q} come to in {u2}?"],
}
UNIT_TPL_CONTEXT = {
    "train": {
        "temperature": ["It's {q} outside. What is that in {u2}?", "The oven is set to {q}; what's that in {u2}?"],
        "length": ["I ran {q} today — how far is that in {u2}?", "The shelf is {q} wide. How many {u2} is that?"],
        "mass": ["My suitcase weighs {q}; how much is that in {u2}?", "The baby weighs {q}. What's that in {u2}?"],
        "volume": ["The recipe calls for {q} of milk; how many {u2} is that?",
                   "The tank holds {q}. How many {u2} is that?"],
    },
    "test": {
        "temperature": ["The forecast says {q} tomorrow — in {u2} please."],
        "length": ["The trail is {q} long; convert it to {u2}."],
        "mass": ["A parcel weighs {q}. Convert to {u2}."],
        "volume": ["I drank {q} of water. How much is that in {u2}?"],
    },
}


def units_answer(c: Ctx, i: int = 0) -> Callable[[list[Any]], str]:
    def respond(r: list[Any]) -> str:
        x = r[i]
        a, b = qty(x["value"], x["from_unit"]), qty(x["result"], x["to_unit"])
        return c.pick([f"{a} is {b}.", f"{a} = {b}.", f"That's {b}.", f"{a} comes to about {b}."])
    return respond


def g_convert_units(c: Ctx) -> Draft:
    u1, u2 = c.unit_pair()
    v = c.unit_value(u1)
    q = c.qty_text(v, u1)
    if c.chance(0.3):
        group = next(g for g, us in UNIT_GROUPS.items() if u1 in us)
        t = c.pick(UNIT_TPL_CONTEXT[c.split][group])
    else:
        t = c.tpl(UNIT_TPL)
    query = t.format(q=q, u2=c.unit_word(u2))
    return Draft(cap(query), [("convert_units", {"value": v, "from_unit": u1, "to_unit": u2})], units_answer(c))


CUR_TPL = {
    "train": ["Convert {m} to {c2}", "How much is {m} in {c2}?", "What's {m} worth in {c2}?",
              "exchange {m} into {c2}", "{m} to {c2} please", "I have {m}. How many {c2} is that?",
              "how many {c2} do I get for {m}", "Change {m} into {c2}.", "What does {m} come to in {c2}?",
              "Convert {m} into {c2}.", "{m} in {c2}?"],
    "test": ["If I swap {m} for {c2}, how much do I get?", "The price is {m} — what's that in {c2}?",
             "{m} equals how many {c2}?"],
}


def cur_answer(c: Ctx, i: int = 0) -> Callable[[list[Any]], str]:
    def respond(r: list[Any]) -> str:
        x = r[i]
        a = f"{money(x['amount'])} {x['from_currency']}"
        b = f"{money(x['result'])} {x['to_currency']}"
        return c.pick([f"{a} is {b}.", f"{a} = {b} (fixed rate {num(x['rate'])}).", f"That's {b}.",
                       f"At the pack's fixed rate of {num(x['rate'])}, {a} comes to {b}."])
    return respond


def g_convert_currency(c: Ctx) -> Draft:
    c1, c2 = c.currencies()
    amt = c.amount(c1)
    query = c.tpl(CUR_TPL).format(m=c.money_text(amt, c1), c2=c.cur_name(c2))
    return Draft(cap(query), [("convert_currency", {"amount": amt, "from_currency": c1, "to_currency": c2})],
                 cur_answer(c))


TIP_TPL = {  # (template, uses percent, uses people)
    "train": [("Add a {p}% tip to a {b} bill.", True, False), ("The bill is {b}. What's the total with a {p}% tip?",
                                                                True, False),
              ("calculate a {p} percent tip on {b}", True, False), ("what do I pay with a {p}% tip on {b}?", True,
                                                                     False),
              ("Tip {p}% on {b}, split between {n} people.", True, True),
              ("Our dinner came to {b}; add {p}% tip and split it {n} ways.", True, True),
              ("Add the usual tip to a {b} bill.", False, False), ("What's the total for {b} with a standard tip?",
                                                                    False, False),
              ("{n} of us are paying a {b} bill plus a standard tip. How much each?", False, True),
              ("How much is a {p}% tip on {b}?", True, False), ("Bill: {b}. Tip: {p}%. Total?", True, False)],
    "test": [("We owe {b} for lunch. Include a {p}% gratuity.", True, False),
             ("{n} friends share {b} plus a {p}% tip — what does each pay?", True, True),
             ("Gratuity of {p}% on {b}, please.", True, False)],
}


def tip_answer(c: Ctx, i: int = 0) -> Callable[[list[Any]], str]:
    def respond(r: list[Any]) -> str:
        x = r[i]
        s = c.pick([(f"A {num(x['percent'])}% tip on {money(x['bill'])} is {money(x['tip'])}, so the total is "
                     f"{money(x['total'])}."), f"Tip {money(x['tip'])}; total {money(x['total'])}."])
        if x["people"] > 1:
            s += f" Split {x['people']} ways, that's {money(x['per_person'])} each."
        return s
    return respond


def g_add_tip(c: Ctx) -> Draft:
    t, uses_p, uses_n = c.tpl(TIP_TPL)
    bill = c.bill()
    p, n = c.pick(TIP_PERCENTS), c.int_(2, 8)
    b = c.price_text(bill)
    if c.chance(0.4):
        b = "$" + b
    args: Args = {"bill": bill}
    if uses_p:
        args["percent"] = p
    if uses_n:
        args["people"] = n
    return Draft(cap(t.format(b=b, p=p, n=n)), [("add_tip", args)], tip_answer(c))


DATE_ADD_TPL = {  # (template, sign of days, counts weeks, date is today)
    "train": [("What date is {n} days after {d}?", 1, False, False), ("Add {n} days to {d}.", 1, False, False),
              ("{d} plus {n} days", 1, False, False), ("What's the date {n} days from today?", 1, False, True),
              ("Which date is {n} days before {d}?", -1, False, False),
              ("What will the date be in {w} weeks?", 1, True, True),
              ("If I start on {d}, what day is it {n} days later?", 1, False, False),
              ("Count {n} days back from {d}.", -1, False, False), ("What's {n} days from now?", 1, False, True),
              ("Move {d} forward by {n} days.", 1, False, False), ("What date was it {n} days ago?", -1, False, True),
              ("{w} weeks after {d} is which date?", 1, True, False)],
    "test": [("Go {n} days past {d}: which date is that?", 1, False, False),
             ("Which day falls {w} weeks after {d}?", 1, True, False), ("Subtract {n} days from {d}.", -1, False,
                                                                         False),
             ("In {n} days from today, what's the date?", 1, False, True)],
}


def date_add_answer(c: Ctx, i: int = 0) -> Callable[[list[Any]], str]:
    def respond(r: list[Any]) -> str:
        x = r[i]
        if x["days"] >= 0:
            return c.pick([f"{x['days']} days after {x['date']} is {x['result']}, a {x['weekday']}.",
                           f"It's {x['weekday']}, {long_date(x['result'])}."])
        return c.pick([f"{-x['days']} days before {x['date']} was {x['result']}, a {x['weekday']}.",
                       f"That was {x['weekday']}, {long_date(x['result'])}."])
    return respond


def g_date_add(c: Ctx) -> Draft:
    t, sign, weeks, today = c.tpl(DATE_ADD_TPL)
    w = c.int_(2, 12)
    n = 7 * w if weeks else c.int_(2, 400)
    d = "today" if today else c.date()
    query = t.format(n=n, w=w, d=c.date_text(d) if d != "today" else d)
    return Draft(cap(query), [("date_add", {"date": d, "days": sign * n})], date_add_answer(c))


DAYS_TPL = {  # (template, start is today, end is today)
    "train": [("How many days between {a} and {b}?", False, False), ("Days from {a} to {b}?", False, False),
              ("count the days from {a} until {b}", False, False), ("How many days until {b}?", True, False),
              ("How many days are left until {b}?", True, False), ("How long ago was {a}, in days?", False, True),
              ("Number of days separating {a} and {b}?", False, False),
              ("How many days is it from {a} to {b}?", False, False), ("How many days since {a}?", False, True)],
    "test": [("What's the gap in days between {a} and {b}?", False, False),
             ("How many days do I have until {b}?", True, False), ("Since {a}, how many days have gone by?",
                                                                   False, True)],
}


def days_answer(c: Ctx, i: int = 0) -> Callable[[list[Any]], str]:
    def respond(r: list[Any]) -> str:
        x = r[i]
        if x["days"] >= 0:
            return c.pick([f"There are {x['days']} days from {x['start']} to {x['end']}.", f"{x['days']} days."])
        return f"{x['end']} is {-x['days']} days before {x['start']}."
    return respond


def g_days_between(c: Ctx) -> Draft:
    t, a_today, b_today = c.tpl(DAYS_TPL)
    if a_today:
        a, b = "today", c.date_near(3, 500)
    elif b_today:
        a, b = c.date_near(-600, -3), "today"
    else:
        a, b = sorted([c.date(), c.date()])
        if a == b or c.chance(0.1):
            b = (dt.date.fromisoformat(a) + dt.timedelta(days=c.int_(1, 300))).isoformat()
    ta, tb = c.dates_text(a, b)
    query = t.format(a=ta, b=tb)
    return Draft(cap(query), [("days_between", {"start": a, "end": b})], days_answer(c))


TODO_TPL = {  # (template, has due date)
    "train": [("Add '{t}' to my to-do list.", False), ("Remind me to {t}.", False), ("Add a todo: {t}, due {d}.", True),
              ("Put '{t}' on my list for {d}.", True), ("I need to {t} by {d}.", True), ("New task: {t}", False),
              ("Create a to-do to {t} (due {d}).", True), ("Add a task '{t}' due today.", None),
              ("todo: {t}", False), ("Please add \"{t}\" to my tasks, due {d}.", True),
              ("I have to {t} today — add it to my list.", None)],
    "test": [("Don't let me forget to {t}.", False), ("Could you note down a task to {t} before {d}?", True),
             ("Task for {d}: {t}.", True)],
}


def todo_answer(c: Ctx, i: int = 0) -> Callable[[list[Any]], str]:
    def respond(r: list[Any]) -> str:
        x = r[i]
        due = f", due {x['due']}" if x["due"] else ""
        return c.pick([f"Added \u201c{x['title']}\u201d to your to-do list{due}.",
                       f"Done: \u201c{x['title']}\u201d is on your list{due} (item {x['id']})."])
    return respond


def g_add_todo(c: Ctx) -> Draft:
    t, has_due = c.tpl(TODO_TPL)
    title = c.todo_title()
    args: Args = {"title": title}
    d = c.date_near(1, 120)
    if has_due is None:
        args["due"] = "today"
    elif has_due:
        args["due"] = d
    query = t.format(t=title, d=c.date_text(d))
    return Draft(cap(query), [("add_todo", args)], todo_answer(c), setup=c.todo_setup(0, 3))


LIST_TPL = {  # (template, has due_by: None = today)
    "train": [("What's on my to-do list?", False), ("Show my todos.", False), ("list my tasks", False),
              ("What do I still have to do?", False), ("Which tasks are due by {d}?", True),
              ("Anything due on or before {d}?", True), ("What do I need to get done by {d}?", True),
              ("Show tasks due by {d}.", True), ("What's due today or earlier?", None),
              ("Show me my to-do list.", False)],
    "test": [("Read me my open tasks.", False), ("Is there anything I have to finish by {d}?", True),
             ("Remind me what's on my plate.", False)],
}


def list_answer(c: Ctx, i: int = 0) -> Callable[[list[Any]], str]:
    def respond(r: list[Any]) -> str:
        x = r[i]
        by = f" due by {x['due_by']}" if x["due_by"] else ""
        if not x["count"]:
            return f"Nothing is due by {x['due_by']}." if by else c.pick(["Your to-do list is empty.",
                                                                         "Nothing on the list."])
        items = "; ".join(f"{t['title']}" + (f" (due {t['due']})" if t["due"] else "") for t in x["todos"])
        return f"You have {x['count']} item{'s' * (x['count'] != 1)}{by}: {items}."
    return respond


def g_list_todos(c: Ctx) -> Draft:
    t, has_date = c.tpl(LIST_TPL)
    d = c.date_near(0, 40)
    args: Args = {}
    if has_date is None:
        args["due_by"] = "today"
    elif has_date:
        args["due_by"] = d
    setup = c.todo_setup(0 if c.chance(0.1) else 1, 5)
    limit = args.get("due_by", "9999-12-31").replace("today", TODAY.isoformat())
    if setup and c.chance(0.85) and not any(a.get("due", "9999") <= limit for _, a in setup):
        setup[0][1]["due"] = (dt.date.fromisoformat(limit) - dt.timedelta(days=c.int_(0, 12))).isoformat()
    return Draft(cap(t.format(d=c.date_text(d))), [("list_todos", args)], list_answer(c), setup=setup)


NOTE_TPL = {
    "train": ["Save a note titled '{h}': {x}", "Take a note — {h}: {x}", "Note to self ({h}): {x}",
              "Create a note called {h} with the text: {x}", "Remember this as '{h}': {x}",
              "New note, title \"{h}\": {x}", "Write down under '{h}': {x}", "Add a note '{h}' saying {x}"],
    "test": ["Please file this under '{h}': {x}", "Jot down a note named {h}: {x}"],
}


def note_answer(c: Ctx, i: int = 0) -> Callable[[list[Any]], str]:
    def respond(r: list[Any]) -> str:
        return c.pick([f"Saved your note \u201c{r[i]['title']}\u201d.", f"Noted under \u201c{r[i]['title']}\u201d."])
    return respond


def g_add_note(c: Ctx) -> Draft:
    note = c.note()
    h, x, _ = note
    query = c.tpl(NOTE_TPL).format(h=h, x=x)
    return Draft(query, [("add_note", {"title": h, "text": x})], note_answer(c),
                 setup=c.note_setup(0, 3, exclude=note))


SEARCH_TPL = {  # (template, uses limit)
    "train": [("Find my note about {k}.", False), ("Search my notes for {k}.", False),
              ("What did I write about {k}?", False), ("Look up {k} in my notes.", False),
              ("Do I have any notes mentioning {k}?", False), ("Show me the first {n} notes about {k}.", True),
              ("search notes: {k}", False), ("Check my notes for anything on {k}.", False)],
    "test": [("Pull up whatever I saved about {k}.", False), ("Any notes on {k}? Just the top {n}.", True)],
}


def search_answer(c: Ctx, i: int = 0) -> Callable[[list[Any]], str]:
    def respond(r: list[Any]) -> str:
        x = r[i]
        if not x["count"]:
            return f"I couldn't find any notes matching \u201c{x['query']}\u201d."
        found = " ".join(f"\u201c{n['title']}\u201d: {n['text']}" for n in x["notes"])
        return f"Found {x['count']} note{'s' * (x['count'] != 1)}. {found}"
    return respond


def g_search_notes(c: Ctx) -> Draft:
    note = c.note()
    kw = c.pick(note[2])
    t, uses_n = c.tpl(SEARCH_TPL)
    args: Args = {"query": kw}
    if uses_n:
        args["limit"] = n = c.int_(2, 3)
    else:
        n = 5
    if c.chance(0.15):  # a miss: the note is not in the store
        setup = c.note_setup(1, 4, exclude=note)
    else:
        setup = c.note_setup(1, 5, include=note)
    return Draft(t.format(k=kw, n=n), [("search_notes", args)], search_answer(c), setup=setup)


SINGLE: dict[str, Callable[[Ctx], Draft]] = {
    "calculate": g_calculate, "convert_units": g_convert_units, "convert_currency": g_convert_currency,
    "add_tip": g_add_tip, "date_add": g_date_add, "days_between": g_days_between, "add_todo": g_add_todo,
    "list_todos": g_list_todos, "add_note": g_add_note, "search_notes": g_search_notes,
}


# ----- free phrasings (tools/phrasing.py): the way people type, a second generator per tool ----------------------
def casual(c: Ctx, query: str) -> str:
    """Wrap a request in a casual preamble or tail ("hey, …", "… thanks")."""
    q = query[:1].lower() + query[1:] if query[:2] != "I " and query[1:2].islower() else query
    return c.pick(ph.CASUAL[c.split]).format(q=q)


def free_unit_word(c: Ctx, u: str) -> str:
    return c.pick(ph.UNIT_WORDS_MORE.get(u) or UNIT_WORDS[u])


def free_money(c: Ctx, x: float, code: str) -> str:
    if c.chance(0.5):
        return c.money_text(x, code)
    return f"{c.price_text(x)} {c.pick(ph.CURRENCY_WORDS_MORE[code])}"


def f_calculate(c: Ctx) -> Draft:
    q, e = c.tpl(ph.CALC_FREE)
    vals, shown = _calc_numbers(c, e, q)
    more = {"p": num(c.pick(ph.CALC_PERCENTS)), "x": str(c.int_(2, 12)), "n": str(c.int_(2, 9))}
    more["nw"] = ph.NUM_WORDS[int(more["n"])]
    more["k"] = str(c.int_(2, 20) if int(more["x"]) <= 3 else c.int_(2, 8))
    vals.update(more)
    shown.update(more)
    return Draft(cap(q.format(**shown)), [("calculate", {"expression": e.format(**vals)})], calc_answer(c))


def f_convert_units(c: Ctx) -> Draft:
    u1, u2 = c.unit_pair()
    v = c.unit_value(u1)
    w = free_unit_word(c, u1)
    q = f"{c.num_text(v)}{w}" if w.startswith("°") else f"{c.num_text(v)} {w}"
    query = c.tpl(ph.UNIT_FREE).format(q=q, u1=free_unit_word(c, u1), u2=free_unit_word(c, u2))
    return Draft(cap(query), [("convert_units", {"value": v, "from_unit": u1, "to_unit": u2})], units_answer(c))


def f_convert_currency(c: Ctx) -> Draft:
    c1, c2 = c.currencies()
    amt = c.amount(c1)
    query = c.tpl(ph.CUR_FREE).format(m=free_money(c, amt, c1), c2=c.pick(ph.CURRENCY_WORDS_MORE[c2]))
    return Draft(cap(query), [("convert_currency", {"amount": amt, "from_currency": c1, "to_currency": c2})],
                 cur_answer(c))


def f_add_tip(c: Ctx) -> Draft:
    t, uses_p, uses_n = c.tpl(ph.TIP_FREE)
    bill = c.bill()
    p, n = c.pick(TIP_PERCENTS), c.int_(2, 8)
    if type(uses_p) is int:  # the template names this exact percent ("a fifth")
        p = uses_p
    b = ("$" if c.chance(0.4) else "") + c.price_text(bill)
    args: Args = {"bill": bill, **({"percent": p} if uses_p else {}), **({"people": n} if uses_n else {})}
    nw = ph.NUM_WORDS[n] if c.chance(0.4) else str(n)
    return Draft(cap(t.format(b=b, p=p, pw=ph.PERCENT_WORDS.get(p, p), n=nw)), [("add_tip", args)], tip_answer(c))


def f_date_add(c: Ctx) -> Draft:
    t, sign, unit, base = c.tpl(ph.DATE_FREE)
    k = c.int_(2, 12)
    n = {"d": c.int_(2, 12) if "{nw}" in t else c.int_(2, 300), "w": 7 * k, "f": 14, "1w": 7, "2w": 14, "1d": 1,
         "2d": 2}[unit]
    count = k if unit == "w" else n
    nw = ph.NUM_WORDS[count] if count <= 12 and c.chance(0.7) else str(count)
    d = "today" if base == "today" else c.date()
    query = t.format(n=n, nw=nw, d=c.date_text(d) if d != "today" else d)
    return Draft(cap(query), [("date_add", {"date": d, "days": sign * n})], date_add_answer(c))


def f_days_between(c: Ctx) -> Draft:
    t = c.tpl(ph.DAYS_FREE)
    if t in ph.DAYS_FROM_TODAY:
        a, b = "today", c.date_near(3, 400)
    elif t in ph.DAYS_TO_TODAY:
        a, b = c.date_near(-600, -3), "today"
    else:
        a = c.date()
        b = (dt.date.fromisoformat(a) + dt.timedelta(days=c.int_(1, 400))).isoformat()
    ta, tb = c.dates_text(a, b)
    query = t.format(a=ta, b=tb)
    return Draft(cap(query), [("days_between", {"start": a, "end": b})], days_answer(c))


def f_add_todo(c: Ctx) -> Draft:
    t, has_due = c.tpl(ph.TODO_FREE)
    title, d = c.todo_title(), c.date_near(1, 120)
    args: Args = {"title": title, **({"due": d} if has_due else {"due": "today"} if has_due is None else {})}
    return Draft(cap(t.format(t=title, d=c.date_text(d))), [("add_todo", args)], todo_answer(c),
                 setup=c.todo_setup(0, 3))


def f_list_todos(c: Ctx) -> Draft:
    t, has_date = c.tpl(ph.LIST_FREE)
    d = c.date_near(0, 40)
    args: Args = {"due_by": d} if has_date else {"due_by": "today"} if has_date is None else {}
    setup = c.todo_setup(1, 5)
    return Draft(cap(t.format(d=c.date_text(d))), [("list_todos", args)], list_answer(c), setup=setup)


def f_add_note(c: Ctx) -> Draft:
    note = c.note()
    h, x, _ = note
    return Draft(cap(c.tpl(ph.NOTE_FREE).format(h=h, x=x)), [("add_note", {"title": h, "text": x})],
                 note_answer(c), setup=c.note_setup(0, 3, exclude=note))


def f_search_notes(c: Ctx) -> Draft:
    note = c.note()
    kw = c.pick(note[2])
    return Draft(cap(c.tpl(ph.SEARCH_FREE).format(k=kw)), [("search_notes", {"query": kw})], search_answer(c),
                 setup=c.note_setup(1, 5, include=note))


FREE: dict[str, Callable[[Ctx], Draft]] = {
    "calculate": f_calculate, "convert_units": f_convert_units, "convert_currency": f_convert_currency,
    "add_tip": f_add_tip, "date_add": f_date_add, "days_between": f_days_between, "add_todo": f_add_todo,
    "list_todos": f_list_todos, "add_note": f_add_note, "search_notes": f_search_notes,
}


def no_call_drafts(split: str) -> list[Draft]:
    """Requests that need no tool: unserved ones answered with what the pack can do, near-misses left to the
    backbone (no response: training fills in its own reply)."""
    out = [Draft(q, [], lambda _r: ph.CANT) for q in ph.UNSERVED[split]]
    return out + [Draft(q, [], lambda _r: "") for q in ph.NEAR_MISS[split]]


# ----- multi-call generators ----------------------------------------------------------------------------------
def _res(i: int, key: str = "result") -> Callable[[list[Any]], Any]:
    return lambda r: r[i][key]


def m_currency_tip(c: Ctx) -> Draft:
    tpls = {"train": [("Our dinner cost {m}. Convert that to {c2} and add a {p}% tip.", False),
                      ("Convert the {m} bill to {c2}, then work out a {p}% tip on it.", False),
                      ("The restaurant charged {m}. How much is that in {c2}, and what's the total with a {p}% tip?",
                       False),
                      ("change {m} to {c2} and then add {p} percent for the tip", False),
                      ("Convert {m} to {c2} and then add a {p}% tip to the converted amount.", False),
                      ("Dinner was {m} for {n} of us. Convert it to {c2}, add a {p}% tip and split it.", True),
                      ("we paid {m}. what's that in {c2}? then put {p}% tip on the {c2} amount", False),
                      ("{m} dinner - change it to {c2}, add {p}% and split it {n} ways, what's each share?", True),
                      ("I've got {m} to change into {c2}, then what's the total with {p}% tip on that?", False),
                      ("{m} bill -> {c2}, then {p}% tip", False),
                      ("convert {m} into {c2}, then add a {p} per cent tip to that", False),
                      ("Could you convert {m} to {c2} and then add a {p}% tip to the result, please?", False),
                      (("We're on holiday and dinner was {m}. What's that in {c2}? Once you have that, add {p}% for "
                       "the tip."), False),
                      ("the taxi cost {m}. in {c2} what is that, and the total with {p}% tip?", False),
                      ("{m} meal. {c2} please, plus {p}% tip", False),
                      ("how much in {c2} is the {m} bill, and what does it come to with {p}% tip?", False),
                      ("first convert {m} to {c2}. After that, tip {p}% on it and split it between {n} of us.", True),
                      (("there are {n} of us and the bill is {m}. change it to {c2}, add a {p}% tip, and tell us "
                       "each person's share"), True),
                      ("convert {m} to {c2} then {p}% tip then divide by {n}", True),
                      (("Dinner abroad came to {m} for the {n} of us. In {c2}, with a {p}% tip, how much does each "
                       "pay?"), True),
                      ("the bill is {m}; we want to pay in {c2}, add {p}% and split {n} ways", True)],
            "test": [("The bill came to {m}. Put it in {c2} and add a {p}% gratuity.", False),
                     ("{m} for the meal — what's that in {c2} with a {p}% tip, split between {n}?", True)]}
    t, uses_n = c.tpl(tpls)
    c1, c2 = c.currencies()
    amt, p, n = c.amount(c1), c.pick(TIP_PERCENTS), c.int_(2, 6)

    def tip_args(r: list[Any]) -> Args:
        return {"bill": r[0]["result"], "percent": p, **({"people": n} if uses_n else {})}

    cur, tip = cur_answer(c), tip_answer(c, 1)
    return Draft(cap(t.format(m=c.money_text(amt, c1), c2=c.cur_name(c2), p=p, n=n)),
                 [("convert_currency", {"amount": amt, "from_currency": c1, "to_currency": c2}),
                  ("add_tip", tip_args)],
                 lambda r: f"{cur(r)} {tip(r)}")


def m_date_todo(c: Ctx) -> Draft:
    tpls = {"train": [("Remind me to {t} in {n} days.", "today", 1, "n"),
                      ("Add a to-do to {t}, due {n} days from today.", "today", 1, "n"),
                      ("I need to {t} {w} weeks from now — put it on my list.", "today", 1, "w"),
                      ("Add '{t}' to my list for {n} days after {d}.", "date", 1, "n"),
                      ("Create a task to {t} due one week after {d}.", "date", 1, "1w"),
                      ("Remind me tomorrow to {t}.", "today", 1, "1"),
                      ("Put '{t}' on my to-do list, due {n} days before {d}.", "date", -1, "n"),
                      ("What date is {n} days after {d}? Then add a todo '{t}' due on that date.", "date", 1, "n"),
                      ("remind me in {n} days to {t}", "today", 1, "n"),
                      ("{t} in {w} weeks — add it to my to-do list", "today", 1, "w"),
                      ("Could you add a task to {t}, due {n} days from now?", "today", 1, "n"),
                      ("put '{t}' on my list for a week from today", "today", 1, "1w"),
                      ("add '{t}' due the day after tomorrow", "today", 1, "2"),
                      ("tomorrow I need to {t}, add it to my todos", "today", 1, "1"),
                      ("I have to {t} {n} days before {d}. work out the date, then add it to my list", "date", -1,
                       "n"),
                      ("{t}, {w} weeks after {d}. make a to-do for it", "date", 1, "w"),
                      ("a week before {d} I need to {t} — put that on the list", "date", -1, "1w"),
                      ("what's {n} days from today? add a todo to {t} on that day", "today", 1, "n"),
                      ("Please add '{t}' to my to-do list for {w} weeks from today.", "today", 1, "w"),
                      ("our lease ends on {d} and I must {t} {n} days before that. add it as a task", "date", -1,
                       "n")],
            "test": [("{t}: schedule it {n} days from today on my to-do list.", "today", 1, "n"),
                     ("Make a to-do to {t} that's due {w} weeks after {d}.", "date", 1, "w"),
                     ("Set a task for the day after tomorrow: {t}.", "today", 1, "2")]}
    t, base, sign, how = c.tpl(tpls)
    title, w = c.todo_title(), c.int_(2, 6)
    n = {"n": c.int_(2, 60), "w": 7 * w, "1w": 7, "1": 1, "2": 2}[how]
    d = "today" if base == "today" else c.date_near(5, 200)
    query = t.format(t=title, n=n, w=w, d=c.date_text(d) if d != "today" else d)
    add, todo = date_add_answer(c), todo_answer(c, 1)
    return Draft(cap(query), [("date_add", {"date": d, "days": sign * n}),
                              ("add_todo", lambda r: {"title": title, "due": r[0]["result"]})],
                 lambda r: f"{add(r)} {todo(r)}", setup=c.todo_setup(0, 2))


def m_calc_units(c: Ctx) -> Draft:
    opts = {"train": [("I ran {k} laps of {x} m. How many miles is that?", "{k} * {x}", "m", "mi"),
                      ("Add {a} km and {b} km, then give me the total in miles.", "{a} + {b}", "km", "mi"),
                      ("We drove {a} km and then {b} km more. What's the total distance in miles?", "{a} + {b}",
                       "km", "mi"),
                      ("I bought {k} bags of {x} kg each; how many pounds is that altogether?", "{k} * {x}", "kg",
                       "lb"),
                      ("A recipe needs {a} cups of milk plus {b} cups of water. How many ml is that in total?",
                       "{a} + {b}", "cup", "ml"),
                      ("{k} bottles of {x} liters each: how many gallons in total?", "{k} * {x}", "l", "gal"),
                      ("I walked {a} km and {b} km this week. add them up and tell me the total in miles",
                       "{a} + {b}", "km", "mi"),
                      ("{k} jars of {x} ml each - multiply it out and then tell me how many cups", "{k} * {x}", "ml",
                       "cup"),
                      ("{k} parcels at {x} lb each, work out the total and convert it to kilos", "{k} * {x}", "lb",
                       "kg"),
                      ("{kw} laps of {x} km — total in miles?", "{k} * {x}", "km", "mi"),
                      ("{a} km + {b} km in miles", "{a} + {b}", "km", "mi"),
                      ("Could you add {a} kg and {b} kg and give me the total in pounds?", "{a} + {b}", "kg", "lb"),
                      (("I cycled {a} miles on Saturday and {b} miles on Sunday. Add them up, then convert the total "
                       "to kilometres."), "{a} + {b}", "mi", "km"),
                      ("three runs this week: {a}, {b} and {c} km. total in miles please", "{a} + {b} + {c}", "km",
                       "mi"),
                      ("{k} x {x} lb, total in kg?", "{k} * {x}", "lb", "kg"),
                      ("I need {kw} servings of {x} cups each. how many ml is that altogether?", "{k} * {x}", "cup",
                       "ml"),
                      ("multiply {k} by {x} ft and then convert to metres", "{k} * {x}", "ft", "m"),
                      ("we have {k} planks, each {x} feet long. what's the total length in metres?", "{k} * {x}",
                       "ft", "m"),
                      ("the recipe uses {a} g of flour and {b} g of sugar; total it up and give it in ounces",
                       "{a} + {b}", "g", "oz"),
                      ("{a} gallons plus {b} gallons is how many litres?", "{a} + {b}", "gal", "l"),
                      ("{kw} suitcases at {x} kilos each: what's that in pounds?", "{k} * {x}", "kg", "lb")],
            "test": [("The hike has three legs of {a}, {b} and {c} miles. Total in km?", "{a} + {b} + {c}", "mi",
                      "km"),
                     ("{k} boxes weighing {x} lb each: what's the combined weight in kg?", "{k} * {x}", "lb", "kg")]}
    t, e, u1, u2 = c.tpl(opts)
    raw = {"k": c.int_(2, 12), "x": c.value(1, 50, 0.4), "a": c.value(2, 300, 0.4), "b": c.value(2, 300, 0.4),
           "c": c.value(2, 30, 0.4)}
    if ("drove" in t or " g of " in t) and c.chance(0.3):  # a long drive, a big bag of flour
        raw["a"] = c.value(1000, 2500, 0.2)
    vals, shown = {k: num(v) for k, v in raw.items()}, {k: c.num_text(v) for k, v in raw.items()}
    vals["kw"] = shown["kw"] = ph.NUM_WORDS[raw["k"]]
    expr = e.format(**vals)
    units = units_answer(c, 1)
    return Draft(cap(t.format(**shown)), [("calculate", {"expression": expr}),
                                         ("convert_units", lambda r: {"value": r[0]["result"], "from_unit": u1,
                                                                      "to_unit": u2})],
                 lambda r: f"In total {approx(r[0]['result'])} {show_unit(u1)}. {units(r)}")


def m_units_calc(c: Ctx) -> Draft:
    opts = {"train": [("Convert {v} lb to kg and multiply by the price of {p} per kg.", "lb", "kg"),
                      ("Cheese costs {p} per kg. How much do {v} pounds cost?", "lb", "kg"),
                      ("Fuel is {p} a liter. What do {v} gallons cost?", "gal", "l"),
                      ("Fabric is {p} per meter. How much for {v} yards?", "yd", "m"),
                      ("Apples cost {p} per pound. What do {v} kg of apples cost?", "kg", "lb"),
                      ("petrol is {p} per litre. how much for {v} gallons?", "gal", "l"),
                      ("{v} lbs of beef at {p} a kilo — what does it cost?", "lb", "kg"),
                      ("Could you tell me what {v} kg of coffee costs if it's {p} per pound?", "kg", "lb"),
                      ("The taxi charges {p} per kilometre and the trip is {v} miles. What's the fare?", "mi", "km"),
                      ("I drove {v} km and get paid {p} a mile for it. How much do I get?", "km", "mi"),
                      ("saffron is {p} per gram. what do {v} ounces cost?", "oz", "g"),
                      ("Ribbon is {p} per yard; I need {v} metres. How much?", "m", "yd"),
                      ("convert {v} litres to gallons, then multiply by {p} per gallon", "l", "gal"),
                      ("{v} ft of fencing at {p}/m — total?", "ft", "m")],
            "test": [("Paint costs {p} per liter; what would {v} quarts cost?", "qt", "l"),
                     ("Rope is {p} per foot. What do {v} meters of rope cost?", "m", "ft")]}
    t, u1, u2 = c.tpl(opts)
    v = c.value(2, 40, 0.3)
    p = c.price(1, 30)
    units = units_answer(c, 0)
    return Draft(cap(t.format(v=num(v), p=c.price_text(p))),
                 [("convert_units", {"value": v, "from_unit": u1, "to_unit": u2}),
                  ("calculate", lambda r: {"expression": f"{num(r[0]['result'])} * {num(p)}"})],
                 lambda r: f"{units(r)} At {num(p)} per {show_unit(u2)} that costs {money(r[1]['result'])}.")


def m_days_calc(c: Ctx) -> Draft:
    tpls = {"train": [("How many weeks are there between {a} and {b}?", False, "/ 7", "weeks"),
                      ("How many weeks until {b}?", True, "/ 7", "weeks"),
                      ("Count the days from {a} to {b} and convert that to weeks.", False, "/ 7", "weeks"),
                      ("How many hours are there between {a} and {b}?", False, "* 24", "hours"),
                      ("how many days from {a} to {b}? and how many weeks is that?", False, "/ 7", "weeks"),
                      ("days between {a} and {b}, then turn that into hours please", False, "* 24", "hours"),
                      ("how long until {b}? give me the days and then the weeks", True, "/ 7", "weeks"),
                      ("count the days to {b} from today, then work out the hours", True, "* 24", "hours"),
                      ("weeks between {a} and {b}?", False, "/ 7", "weeks"),
                      ("{a} to {b}: how many hours is that?", False, "* 24", "hours"),
                      ("Could you count the days between {a} and {b} and then tell me how many weeks that is?", False,
                       "/ 7", "weeks"),
                      ("I have until {b}. How many weeks is that from today?", True, "/ 7", "weeks"),
                      ("how many hours left until {b}?", True, "* 24", "hours"),
                      ("From {a} to {b} — how many minutes is that?", False, "* 24 * 60", "minutes"),
                      ("how many minutes until {b}", True, "* 24 * 60", "minutes"),
                      ("the exhibition runs from {a} to {b}. how many weeks is that?", False, "/ 7", "weeks"),
                      ("how many days till {b}? then convert it to hours", True, "* 24", "hours"),
                      ("work out the days between {a} and {b}, then divide by 7 for weeks", False, "/ 7", "weeks")],
            "test": [("In weeks, how far apart are {a} and {b}?", False, "/ 7", "weeks"),
                     ("How many hours from today until {b}?", True, "* 24", "hours")]}
    t, today, op, word = c.tpl(tpls)
    if today:
        a, b = "today", c.date_near(5, 400)
    else:
        a = c.date()
        b = (dt.date.fromisoformat(a) + dt.timedelta(days=c.int_(3, 500))).isoformat()
    ta, tb = c.dates_text(a, b)
    query = t.format(a=ta, b=tb)
    return Draft(cap(query), [("days_between", {"start": a, "end": b}),
                              ("calculate", lambda r: {"expression": f"{r[0]['days']} {op}"})],
                 lambda r: f"That's {r[0]['days']} days, or {approx(r[1]['result'])} {word}.")


def m_note_search(c: Ctx) -> Draft:
    tpls = {"train": ["Save a note '{h}': {x} Then show me everything I have about {k}.",
                      "Note down '{h}' — {x} After that, search my notes for {k}.",
                      "Add a note called {h} saying: {x} Then find all notes mentioning {k}.",
                      "note '{h}': {x} then search notes for {k}",
                      "Could you save this as '{h}': {x} Once that's done, search my notes for {k}.",
                      "Remember this under '{h}': {x} And then what do I have on {k}?",
                      "first jot down '{h}' - {x} then find anything about {k}",
                      "Save '{h}': {x} After that, show me my notes about {k}.",
                      "New note, {h}: {x} Also, search for {k} afterwards."],
            "test": ["Please store this under '{h}': {x} Then look up {k} in my notes."]}
    note = c.note()
    h, x, kws = note
    other = c.pick([n for n in NOTES[c.split] if n is not note])
    k = c.pick(kws) if c.chance(0.75) else c.pick(other[2])
    setup = c.note_setup(0, 3, exclude=note)
    saved, found = note_answer(c, 0), search_answer(c, 1)
    return Draft(c.tpl(tpls).format(h=h, x=x, k=k), [("add_note", {"title": h, "text": x}),
                                                      ("search_notes", {"query": k})],
                 lambda r: f"{saved(r)} {found(r)}", setup=setup)


def m_todo_list(c: Ctx) -> Draft:
    tpls = {"train": [("Add '{t}' to my to-do list and then show me the whole list.", False),
                      ("Put '{t}' on my list for {d}, then list my todos.", True),
                      ("New task: {t} (due {d}). What does my list look like now?", True),
                      ("add {t} then show list", False),
                      ("Could you add '{t}' to my to-do list and then show me everything on it?", False),
                      ("I need to {t} by {d}. Add it, and then show me my whole list.", True),
                      ("put {t} on the list (due {d}) and show me what's there", True),
                      ("new task '{t}', then list all my tasks", False),
                      ("add a to-do for {d}: {t}. after that, what's on my list?", True)],
            "test": [("Add a to-do to {t} and read the list back to me.", False)]}
    t, has_due = c.tpl(tpls)
    title, d = c.todo_title(), c.date_near(1, 60)
    args: Args = {"title": title, **({"due": d} if has_due else {})}
    added, listed = todo_answer(c, 0), list_answer(c, 1)
    return Draft(cap(t.format(t=title, d=c.date_text(d))), [("add_todo", args), ("list_todos", {})],
                 lambda r: f"{added(r)} {listed(r)}", setup=c.todo_setup(0, 3))


def m_two_todos_list(c: Ctx) -> Draft:
    tpls = {"train": [("Add two tasks: {t1} and {t2}. Then show my to-do list.", False, False),
                      ("Put {t1} (due {d1}) and {t2} (due {d2}) on my list, then list everything.", True, True),
                      ("two things to add: {t1}, and {t2}. then show me the list", False, False),
                      ("Please add '{t1}' due {d1} and '{t2}' due {d2}, then list all my tasks.", True, True),
                      ("add '{t1}' and '{t2}' (by {d2}) to my todos and then show them all", False, True),
                      ("I need to {t1} by {d1} and {t2} too. add both, then list everything", True, False)],
            "test": [("I need to {t1} and also {t2} by {d2}. Add both and show the list.", False, True)]}
    t, due1, due2 = c.tpl(tpls)
    t1, t2 = c.sample(TODO_TITLES[c.split], 2)
    d1, d2 = c.date_near(1, 60), c.date_near(1, 60)
    a1: Args = {"title": t1, **({"due": d1} if due1 else {})}
    a2: Args = {"title": t2, **({"due": d2} if due2 else {})}
    listed = list_answer(c, 2)
    return Draft(cap(t.format(t1=t1, t2=t2, d1=c.date_text(d1), d2=c.date_text(d2))),
                 [("add_todo", a1), ("add_todo", a2), ("list_todos", {})],
                 lambda r: f"Added both. {listed(r)}", setup=c.todo_setup(0, 2))


def m_calc_currency_tip(c: Ctx) -> Draft:
    tpls = {"train": ["We ordered dishes for {a}, {b} and {c} {n1}. Convert the total to {n2} and add a {p}% tip.",
                      "Sum {a} + {b} + {c} {c1}, convert it to {c2}, then add a {p}% tip.",
                      "three items: {a}, {b}, {c} {n1}. total in {n2} with {p}% tip?",
                      "Could you add up {a}, {b} and {c} {n1}, convert the total into {n2}, and then add a {p}% tip?",
                      ("we spent {a}, {b} and {c} {c1} on food. total it, change it to {c2} and put a {p} per cent tip "
                      "on"),
                      "{a} + {b} + {c} {c1} -> {c2}, then {p}% tip"],
            "test": ["Three plates at {a}, {b} and {c} {n1}: what's the total in {n2} with a {p}% tip?"]}
    c1, c2 = c.currencies()
    big = c1 in BIG_CURRENCIES
    vals = [c.int_(5, 90) * (100 if big else 1) if c.chance(0.5) or big else round(c.rng.uniform(4, 60), 2)
            for _ in range(3)]
    a, b, cc = (num(v) if isinstance(v, int) else f"{v:.2f}" for v in vals)
    expr = f"{a} + {b} + {cc}"
    sa, sb, sc = (c.num_text(v) if isinstance(v, int) else f"{v:.2f}" for v in vals)
    p = c.pick(TIP_PERCENTS)
    tip = tip_answer(c, 2)
    query = c.tpl(tpls).format(a=sa, b=sb, c=sc, n1=c.cur_name(c1), n2=c.cur_name(c2), c1=c1, c2=c2, p=p)
    return Draft(cap(query),
                 [("calculate", {"expression": expr}),
                  ("convert_currency", lambda r: {"amount": r[0]["result"], "from_currency": c1, "to_currency": c2}),
                  ("add_tip", lambda r: {"bill": r[1]["result"], "percent": p})],
                 lambda r: f"The total is {money(r[0]['result'])} {c1} = {money(r[1]['result'])} {c2}. {tip(r)}")


def m_date_todo_list(c: Ctx) -> Draft:
    tpls = {"train": [("Remind me to {t} in {n} days and then show all my tasks.", "today"),
                      ("Add '{t}' due {n} days after {d}, then list my to-dos.", "date"),
                      ("add '{t}' for {n} days from now and then list everything", "today"),
                      ("Could you put '{t}' on my to-do list, due {n} days after {d}, and then show me all my tasks?",
                       "date"),
                      ("I need to {t} {n} days after {d} — add that and list my todos", "date"),
                      ("in {n} days I have to {t}. put it on the list, then show the list", "today")],
            "test": [("{t} needs doing {n} days from today: add it, then show the list.", "today")]}
    t, base = c.tpl(tpls)
    title, n = c.todo_title(), c.int_(2, 45)
    d = "today" if base == "today" else c.date_near(0, 90)
    listed = list_answer(c, 2)
    return Draft(cap(t.format(t=title, n=n, d=c.date_text(d) if d != "today" else d)),
                 [("date_add", {"date": d, "days": n}),
                  ("add_todo", lambda r: {"title": title, "due": r[0]["result"]}), ("list_todos", {})],
                 lambda r: f"Added \u201c{title}\u201d, due {r[0]['result']}. {listed(r)}", setup=c.todo_setup(0, 3))


def m_units_units(c: Ctx) -> Draft:
    tpls = {"train": ["Convert {q1} to {u2} and {q3} to {u4}.", "What's {q1} in {u2}? Also {q3} in {u4}.",
                      "{q1} in {u2}, and {q3} in {u4}?",
                      "{q1} -> {u2}, {q3} -> {u4}", "Could you convert {q1} into {u2}, and also {q3} into {u4}?",
                      "how much is {q1} in {u2}? and after that, {q3} in {u4}", "convert {q1} to {u2}; then {q3} to {u4}",
                      "first {q1} in {u2}, then {q3} in {u4}", "what's {q1} in {u2} and what's {q3} in {u4}?"],
            "test": ["Two conversions please: {q1} into {u2}, and {q3} into {u4}."]}
    (u1, u2), (u3, u4) = c.unit_pair(), c.unit_pair()
    v1, v3 = c.unit_value(u1), c.unit_value(u3)
    x, y = units_answer(c, 0), units_answer(c, 1)
    return Draft(cap(c.tpl(tpls).format(q1=c.qty_text(v1, u1), u2=c.unit_word(u2), q3=c.qty_text(v3, u3),
                                        u4=c.unit_word(u4))),
                 [("convert_units", {"value": v1, "from_unit": u1, "to_unit": u2}),
                  ("convert_units", {"value": v3, "from_unit": u3, "to_unit": u4})],
                 lambda r: f"{x(r)} {y(r)}")


def m_currency_twice(c: Ctx) -> Draft:
    tpls = {"train": ["How much is {m} in {n2} and in {n3}?", "Convert {m} to both {c2} and {c3}.",
                      "What's {m} in {n2}? And in {n3}?",
                      "{m} in {n2} and {n3}?", "Could you tell me what {m} is in {n2}, and also in {n3}?",
                      "convert {m} to {c2}, and separately to {c3}", "I have {m}. what's it worth in {n2}? and in {n3}?",
                      "{m} -> {c2} / {c3}", "how much is {m} in {n2}, and how much in {n3}?"],
            "test": ["Give me {m} expressed in {n2} as well as {n3}."]}
    c1, c2, c3 = c.currencies(3)
    amt = c.amount(c1)
    return Draft(cap(c.tpl(tpls).format(m=c.money_text(amt, c1), n2=c.cur_name(c2), n3=c.cur_name(c3), c2=c2,
                                        c3=c3)),
                 [("convert_currency", {"amount": amt, "from_currency": c1, "to_currency": c2}),
                  ("convert_currency", {"amount": amt, "from_currency": c1, "to_currency": c3})],
                 lambda r: f"{money(amt)} {c1} is {money(r[0]['result'])} {c2} or {money(r[1]['result'])} {c3}.")


def m_date_and_days(c: Ctx) -> Draft:
    tpls = {"train": [("What's the date {n} days from today, and how many days until {b}?", True),
                      ("Tell me the date {n} days after {a}, and the number of days between {a} and {b}.", False),
                      ("date {n} days from today? also days until {b}", True),
                      (("Could you tell me the date {n} days after {a}, and also how many days there are from {a} to "
                       "{b}?"), False),
                      ("what's {a} plus {n} days? and how many days from {a} until {b}?", False),
                      ("in {n} days what's the date, and how many days is it until {b}?", True)],
            "test": [("Which date is {n} days past {a}? And how many days separate {a} from {b}?", False)]}
    t, today = c.tpl(tpls)
    n = c.int_(2, 200)
    a = "today" if today else c.date()
    b = ((TODAY if today else dt.date.fromisoformat(a)) + dt.timedelta(days=c.int_(3, 400))).isoformat()
    x, y = date_add_answer(c, 0), days_answer(c, 1)
    ta, tb = c.dates_text(a, b)
    return Draft(cap(t.format(n=n, a=ta, b=tb)),
                 [("date_add", {"date": a, "days": n}), ("days_between", {"start": a, "end": b})],
                 lambda r: f"{x(r)} {y(r)}")


def m_search_todo(c: Ctx) -> Draft:
    tpls = {"train": [("Find my note about {k} and add a to-do to follow up on it.", False),
                      ("Look up my {k} note and make a follow-up task from it due {d}.", True),
                      ("find my {k} note, then add a to-do to follow up on it", False),
                      ("Could you look up my note on {k} and create a follow-up task due {d}?", True),
                      ("search notes for {k}, then make a follow-up to-do by {d}", True),
                      ("what did I save about {k}? once you have it, add a task to follow up", False)],
            "test": [("Search my notes for {k}, then create a follow-up to-do for it.", False)]}
    t, has_due = c.tpl(tpls)
    note = c.note()
    k, d = c.pick(note[2]), c.date_near(1, 30)

    def todo_args(r: list[Any]) -> Args:
        return {"title": f"follow up: {r[0]['notes'][0]['title']}", **({"due": d} if has_due else {})}

    found, added = search_answer(c, 0), todo_answer(c, 1)
    return Draft(cap(t.format(k=k, d=c.date_text(d))), [("search_notes", {"query": k}), ("add_todo", todo_args)],
                 lambda r: f"{found(r)} {added(r)}", setup=c.note_setup(1, 4, include=note))


def m_currency_split(c: Ctx) -> Draft:
    tpls = {"train": [("Convert {m} to {c2} and divide it between {n} people.", True),
                      ("The hotel was {m}. What's that in {c2}, and how much per person for {n} of us?", True),
                      ("{m} -> {c2}, split {n} ways", True),
                      ("Could you convert {m} into {c2} and then divide it between {n} people?", True),
                      ("the airbnb was {m} and there are {n} of us. in {c2}, what does each person owe?", True),
                      ("convert {m} to {c2}; then how much each for {n} people?", True),
                      ("we owe {m} for the boat trip. change it to {c2} and split it evenly among {n} of us", True)],
            "test": [("Split {m} {n} ways in {c2}.", True)]}
    t, _ = c.tpl(tpls)
    c1, c2 = c.currencies()
    amt, n = c.amount(c1), c.int_(2, 8)
    cur = cur_answer(c, 0)
    return Draft(cap(t.format(m=c.money_text(amt, c1), c2=c.cur_name(c2), n=n)),
                 [("convert_currency", {"amount": amt, "from_currency": c1, "to_currency": c2}),
                  ("calculate", lambda r: {"expression": f"{num(r[0]['result'])} / {n}"})],
                 lambda r: f"{cur(r)} Split {n} ways: {money(r[1]['result'])} {c2} each.")


def m_calc_tip(c: Ctx) -> Draft:
    tpls = {"train": [("Our items were {a}, {b} and {c}. Add them up and add a {p}% tip.", 3, False),
                      ("Sum {a} and {b}, then put a {p}% tip on top.", 2, False),
                      ("we had drinks for {a}, {b} and {c}. total it, add {p}% tip and split it {n} ways", 3, True),
                      ("add up {a} and {b}, tip {p} percent on that, and divide between {n} of us", 2, True),
                      ("the {n} of us spent {a}, {b} and {c}. what's each share with a {p}% tip?", 3, True),
                      ("{a} + {b} + {c}, then {p}% tip", 3, False),
                      ("Could you add up {a} and {b} and then add a {p} per cent tip?", 2, False),
                      ("two mains at {a} and {b}, plus dessert at {c}. what's the total once I add {p}% tip?", 3,
                       False),
                      ("we ordered {a}, {b} and {c}. sum it, tip {p}%, and split between {n}", 3, True),
                      (("the {n} of us had {a} and {b} worth of food. add them up, then {p}% tip, then tell me each "
                       "share"), 2, True),
                      ("{a} and {b} - total, add {p}% tip", 2, False),
                      ("add {a}, {b} and {c} together. After that, put a {p}% tip on it and divide it {n} ways.", 3,
                       True)],
            "test": [("What's the total of {a} + {b} + {c}, with a {p}% tip on top?", 3, False),
                     ("{a} plus {b}, then {p}% tip, shared by {n}: how much each?", 2, True)]}
    t, k, split_it = c.tpl(tpls)
    vals = [f"{c.rng.uniform(3, 80):.2f}" if c.chance(0.6) else str(c.int_(3, 80)) for _ in range(3)]
    expr = " + ".join(vals[:k])
    p, n = c.pick(TIP_PERCENTS), c.int_(2, 8)
    tip = tip_answer(c, 1)
    return Draft(cap(t.format(a=vals[0], b=vals[1], c=vals[2], p=p, n=n)),
                 [("calculate", {"expression": expr}),
                  ("add_tip", lambda r: {"bill": r[0]["result"], "percent": p, **({"people": n} if split_it else {})})],
                 lambda r: f"Subtotal {money(r[0]['result'])}. {tip(r)}")


def m_note_and_todo(c: Ctx) -> Draft:
    tpls = {"train": [("Save a note '{h}': {x} Also add a to-do to {t}.", False),  # (template, to-do first)
                      ("Add a to-do to {t}, and note down '{h}': {x}", True),
                      ("note '{h}': {x} and todo: {t}", False),
                      ("Could you save a note called '{h}' that says: {x} And please also add '{t}' to my to-do list.",
                       False),
                      ("add '{t}' to my list, then save this as '{h}': {x}", True),
                      ("remind me to {t}. also, note down under '{h}': {x}", True),
                      ("I need to {t}; put it on my tasks. And remember '{h}': {x}", True)],
            "test": [("Put '{t}' on my tasks and file a note '{h}': {x}", True)]}
    t, todo_first = c.tpl(tpls)
    h, x, _ = c.note()
    title = c.todo_title()
    calls: list[tuple[str, ArgSpec]] = [("add_note", {"title": h, "text": x}), ("add_todo", {"title": title})]
    if todo_first:
        calls.reverse()
    return Draft(cap(t.format(h=h, x=x, t=title)), calls,
                 lambda r: f"Saved the note \u201c{h}\u201d and added \u201c{title}\u201d to your to-do list.")


# ----- chains over the result -> argument graph (v12): every pair where a result feeds the next argument ------------
#: notes that hold an amount a later call computes with: (title, text, keywords, amount, what it is per)
AMOUNT_NOTES = {
    "train": [
        ("Flat rent", "Rent is {x} a month, paid by standing order.", ["rent", "flat"], (600, 2400), "month"),
        ("Gym fee", "The gym membership costs {x} a month.", ["gym", "membership"], (20, 90), "month"),
        ("Phone plan", "My phone contract is {x} per month.", ["phone", "contract"], (10, 60), "month"),
        ("Train pass", "The weekly train pass costs {x}.", ["train pass", "commute"], (30, 180), "week"),
        ("Freelance rate", "I charge {x} per hour for design work.", ["rate", "freelance"], (25, 150), "hour"),
        ("Cleaner", "The cleaner charges {x} per visit, once a week.", ["cleaner"], (30, 120), "week"),
        ("Parking permit", "Street parking permit is {x} per year.", ["parking permit", "permit"], (60, 900),
         "year"),
        ("Streaming", "Streaming subscriptions add up to {x} a month.", ["streaming", "subscriptions"], (8, 45),
         "month"),
    ],
    "test": [
        ("Piano lessons", "Piano lessons are {x} per lesson, every week.", ["piano", "lessons"], (20, 70), "week"),
        ("Storage unit", "The storage unit costs {x} a month.", ["storage"], (40, 250), "month"),
    ],
}
#: notes that hold a sum of money in a currency: (title, text, keywords, amount range, currency)
MONEY_NOTES = {
    "train": [
        ("Rome flat deposit", "The deposit for the Rome flat is {x} EUR.", ["rome", "deposit"], (300, 2000), "EUR"),
        ("Tokyo hotel", "The Tokyo hotel is prepaid: {x} JPY in total.", ["tokyo", "hotel"], (20000, 150000),
         "JPY"),
        ("Car repair quote", "The garage quoted {x} GBP for the clutch.", ["garage", "clutch", "quote"], (200, 1500),
         "GBP"),
        ("Laptop price", "The laptop I want costs {x} USD online.", ["laptop"], (500, 2500), "USD"),
        ("Zurich course fee", "The Zurich language course fee is {x} CHF.", ["zurich", "course"], (400, 3000),
         "CHF"),
        ("Sydney flight", "Flight to Sydney quoted at {x} AUD.", ["sydney", "flight"], (600, 2500), "AUD"),
    ],
    "test": [
        ("Stockholm rental", "The Stockholm cabin rental is {x} SEK.", ["stockholm", "cabin"], (3000, 20000), "SEK"),
        ("Toronto tickets", "Concert tickets in Toronto cost {x} CAD.", ["toronto", "concert"], (80, 600), "CAD"),
    ],
}
PER_YEAR = {"month": 12, "week": 52, "year": 1}


def _calc_said(c: Ctx, i: int, text: str) -> Callable[[list[Any]], str]:
    """An answer sentence for calculate call ``i``: ``text`` with {v} = its result."""
    def respond(r: list[Any]) -> str:
        return text.format(v=approx(r[i]["result"]))
    return respond


def _diff(a: float, b: float) -> str:
    """The difference as the larger minus the smaller (how people ask "how much more / cheaper")."""
    return f"{num(a)} - {num(b)}" if a >= b else f"{num(b)} - {num(a)}"


def m_currency_calc(c: Ctx) -> Draft:
    """convert_currency, then arithmetic on the converted amount (times, per, percent of, left over, difference)."""
    tpls = {"train": [
        ("The hotel is {m} a night. Convert that to {n2} and work out {k} nights.", "mul", "For {k} nights: {v}."),
        ("Tickets are {m} each. In {n2}, what do {kw} tickets cost?", "mul", "{kw} tickets come to {v}."),
        ("My salary is {m} a month. What is that in {n2}, and what's the yearly total?", "mul12",
         "Over a year that's {v}."),
        ("convert {m} to {n2} then multiply by {k}", "mul", "Times {k}: {v}."),
        ("{m} in {n2}, times {k}?", "mul", "Times {k} that's {v}."),
        ("I pay {m} a year for insurance. What's that in {n2}, and how much is it per month?", "div12",
         "Per month: {v}."),
        ("The course costs {m} for {k} weeks. Convert it to {n2}: how much per week is that?", "div",
         "That's {v} per week."),
        ("convert {m} into {n2} and divide it by {k}", "div", "Divided by {k}: {v}."),
        ("I earn {m} a week; in {n2} what's that per day over 5 working days?", "div5", "Per day: {v}."),
        ("we raised {m}. change it into {n2}, then tell me what {p}% of it is", "pct", "{p}% of it is {v}."),
        ("Convert {m} to {n2}. I'll spend {o} {n2} of it - how much is left?", "left", "{v} is left."),
        ("a camera costs {m} over there and {o} {n2} here. convert their price and tell me the difference",
         "diff", "The difference is {v}."),
        ("How many {q} {n2} lunches can {m} buy? Convert it to {n2} first.", "per_item", "About {v} lunches."),
        ("Could you turn {m} into {n2} and then work out how much that is for {k} people in total?", "mul",
         "For {k} people: {v}."),
        ("Rent is {m} per month. In {n2}, how much is half of it?", "half", "Half is {v}."),
        ("My budget is {m}. Once it's in {n2}, how many {q} {n2} nights does it cover?", "per_item",
         "About {v} nights."),
    ], "test": [
        ("A season pass is {m}. What's it in {n2}, and what would {k} of them cost?", "mul",
         "{k} of them cost {v}."),
        ("Convert {m} to {n2} and tell me how much that is per week over {k} weeks.", "div", "{v} per week."),
    ]}
    t, op, said = c.tpl(tpls)
    c1, c2 = c.currencies()
    amt = c.amount(c1)
    conv = basic.convert_currency(amt, c1, c2)["result"]
    k, p = c.int_(2, 12), c.pick([5, 10, 15, 20, 25, 30])
    o = round(conv * c.rng.uniform(0.2, 0.8), 2 if conv < 100 else 0)
    o = int(o) if float(o).is_integer() else o
    q = max(1, round(conv / c.int_(3, 15), 0 if conv > 50 else 1))
    q = int(q) if float(q).is_integer() else q
    if op == "diff":
        o = round(conv * c.pick([c.rng.uniform(0.6, 0.9), c.rng.uniform(1.1, 1.5)]))
    exprs: dict[str, Callable[[float], str]] = {
        "mul": lambda r: f"{num(r)} * {k}", "mul12": lambda r: f"{num(r)} * 12", "div12": lambda r: f"{num(r)} / 12",
        "div": lambda r: f"{num(r)} / {k}", "div5": lambda r: f"{num(r)} / 5",
        "pct": lambda r: f"{num(r)} * {p} / 100", "left": lambda r: f"{num(r)} - {num(o)}",
        "diff": lambda r: _diff(r, o), "per_item": lambda r: f"{num(r)} / {num(q)}", "half": lambda r: f"{num(r)} / 2"}
    cur = cur_answer(c, 0)
    n2 = c.cur_name(c2)
    fill = {"k": k, "kw": ph.NUM_WORDS.get(k, str(k)), "p": p}
    calc = _calc_said(c, 1, said.format(v="{v} " + c2, **fill))  # {v}: the result, filled in by _calc_said
    return Draft(cap(t.format(m=c.money_text(amt, c1), n2=n2, o=c.num_text(o), q=c.num_text(q), **fill)),
                 [("convert_currency", {"amount": amt, "from_currency": c1, "to_currency": c2}),
                  ("calculate", lambda r: {"expression": exprs[op](r[0]["result"])})],
                 lambda r: f"{cur(r)} {calc(r)}")


def m_units_calc_more(c: Ctx) -> Draft:
    """convert_units, then arithmetic on the converted value (difference, per, times, portions, plus)."""
    tpls = {"train": [
        (("The pool is {o}{u2s} and the sea is {q}. Convert the sea temperature to {u2w} and tell me how much "
          "warmer the pool is."), "temp", "diff"),
        ("It's {q} outside and {o}{u2s} indoors. convert the outside temp, then what's the difference?", "temp",
         "diff"),
        ("I ran {q} in {t} minutes. Convert the distance to {u2w}, then divide {t} by it for minutes per {u2one}.",
         "run", "pace"),
        ("my ride was {q} and took {t} min. in {u2w} please, and then the minutes per {u2one}", "run", "pace"),
        ("A bag holds {q}. Convert that to {u2w} and multiply by {k} bags.", "any", "mul"),
        ("{q} in {u2w}, then times {k}", "any", "mul"),
        ("There's {q} of soup. Convert it to {u2w}, then how many {s} {u2w} bowls is that?", "soup", "portions"),
        ("I have {q} of juice; in {u2w}, how many {s} {u2w} glasses can I pour?", "soup", "portions"),
        ("My suitcase is {q} and the limit is {o} {u2w}. Convert it and tell me the difference.", "bag", "diff"),
        ("convert {q} to {u2w} and then halve it", "any", "half"),
        ("What's {q} in {u2w}? Then add {o} {u2w} to it.", "any", "plus"),
        ("Could you convert {q} into {u2w} and work out {p}% of that?", "any", "pct"),
    ], "test": [
        ("The fridge is at {q} and the freezer should be {o}{u2s}. Convert the fridge reading, then give the gap.",
         "temp", "diff"),
        ("Convert {q} to {u2w}, then split it into {k} equal parts.", "any", "div"),
    ]}
    t, kind, op = c.tpl(tpls)
    if kind == "temp":
        u1, u2 = c.pick([("fahrenheit", "celsius"), ("celsius", "fahrenheit")])
        v = c.int_(40, 95) if u1 == "fahrenheit" else c.int_(5, 35)
    elif kind == "run":
        u1, u2 = c.pick([("km", "mi"), ("mi", "km")])
        v = c.pick([5, 10, 21.1, 42.2, 3, 8, 15]) if u1 == "km" else c.pick([3, 5, 6.2, 10, 13.1, 26.2])
    elif kind == "soup":
        u1, u2 = c.pick([("l", "ml"), ("qt", "ml"), ("pt", "ml"), ("cup", "ml")])
        v = c.value(1, 6, 0.4) if u1 != "cup" else c.int_(4, 16)
    elif kind == "bag":
        u1, u2 = c.pick([("lb", "kg"), ("kg", "lb")])
        v = c.value(15, 60, 0.4)
    else:
        u1, u2 = c.pick(COMMON_PAIRS[:4] + COMMON_PAIRS[6:]) if c.chance(0.5) else c.unit_pair(
            c.pick(["length", "mass", "volume"]))
        v = c.unit_value(u1)
    conv = basic.convert_units(v, u1, u2)["result"]
    k, p, t_min = c.int_(2, 10), c.pick([10, 20, 25, 50]), c.int_(15, 240)
    s = c.pick([150, 200, 250, 300, 330])
    if kind in ("temp", "bag"):
        o = round(conv + c.pick([-1, 1]) * c.rng.uniform(2, 12), 0)
    else:
        o = round(abs(conv) * c.rng.uniform(0.2, 1.5) + 1, 0)
    o = int(o)
    exprs: dict[str, Callable[[float], str]] = {
        "diff": lambda r: _diff(o, r), "pace": lambda r: f"{t_min} / {num(r)}", "mul": lambda r: f"{num(r)} * {k}",
        "portions": lambda r: f"{num(r)} / {s}", "half": lambda r: f"{num(r)} / 2", "plus": lambda r: f"{num(r)} + {o}",
        "pct": lambda r: f"{num(r)} * {p} / 100", "div": lambda r: f"{num(r)} / {k}"}
    said = {"diff": "The difference is {v}.", "pace": "That's {v} minutes per " + show_unit(u2) + ".",
            "mul": f"Times {k}: {{v}}.", "portions": "That's about {v} portions.", "half": "Half of it is {v}.",
            "plus": "Together that's {v}.", "pct": f"{p}% of it is {{v}}.", "div": "Each part is {v}."}[op]
    u2w = c.unit_word(u2)
    one = {"mi": "mile", "km": "km"}.get(u2, u2)
    units = units_answer(c, 0)
    return Draft(cap(t.format(q=c.qty_text(v, u1), u2w=u2w, u2s=u2w if u2w.startswith("°") else " " + u2w,
                              u2one=one, o=o, t=t_min, k=k, s=s, p=p)),
                 [("convert_units", {"value": v, "from_unit": u1, "to_unit": u2}),
                  ("calculate", lambda r: {"expression": exprs[op](r[0]["result"])})],
                 lambda r: f"{units(r)} {_calc_said(c, 1, said)(r)}")


def m_tip_currency(c: Ctx) -> Draft:
    """add_tip, then convert the total (or one share) into another currency."""
    tpls = {"train": [
        ("Dinner came to {m} and we're leaving {p}%. Work out the total with the tip, then convert it to {n2}.",
         False),
        ("{m} bill plus a {p}% tip - what's the total, and what's that in {n2}?", False),
        ("we were {n} at dinner, {m} in all, {p}% tip. what does each pay, and how much is one share in {n2}?",
         True),
        ("add {p}% tip to {m}, then convert the total into {n2}", False),
        ("Could you add a {p} percent tip to a {m} bill and give me the total in {n2}?", False),
        ("Lunch for {n} of us was {m}. With {p}% on top, what's each share in {n2}?", True),
        ("tip {p}% on {m}, split {n} ways, then convert one person's share to {n2}", True),
        ("The taxi was {m}. Put a {p}% tip on it and tell me the total in {n2} for my expenses.", False),
    ], "test": [
        ("Our meal was {m} with a {p}% gratuity. Total, then in {n2}?", False),
        ("{n} friends, {m} bill, {p}% tip: one share converted to {n2}?", True),
    ]}
    t, split = c.tpl(tpls)
    c1, c2 = c.currencies()
    bill = c.amount(c1) if c1 in BIG_CURRENCIES else c.bill()
    p, n = c.pick(TIP_PERCENTS), c.int_(2, 6)
    args: Args = {"bill": bill, "percent": p, **({"people": n} if split else {})}
    tip, cur = tip_answer(c, 0), cur_answer(c, 1)
    return Draft(cap(t.format(m=c.money_text(bill, c1), p=p, n=n, n2=c.cur_name(c2))),
                 [("add_tip", args),
                  ("convert_currency", lambda r: {"amount": r[0]["per_person" if split else "total"],
                                                  "from_currency": c1, "to_currency": c2})],
                 lambda r: f"{tip(r)} {cur(r)}")


def m_calc_currency(c: Ctx) -> Draft:
    """calculate (a sum, a product, a share), then convert the result into another currency."""
    tpls = {"train": [
        ("I spent {a}, {b} and {c} {n1} on souvenirs. Add it up and convert the total to {n2}.", "{a} + {b} + {c}"),
        ("{k} tickets at {x} {n1} each - total in {n2}?", "{k} * {x}"),
        ("Split {y} {n1} {kw} ways; what's one share in {n2}?", "{y} / {k}"),
        ("add {a} and {b} {n1}, then convert the sum to {n2}", "{a} + {b}"),
        ("Could you work out {k} times {x} {n1} and give me the answer in {n2}?", "{k} * {x}"),
        ("the room is {x} {n1} a night for {k} nights. what's the total in {n2}?", "{k} * {x}"),
        ("{a} + {b} + {c} {c1} -> {c2}", "{a} + {b} + {c}"),
        ("My {y} {n1} budget minus {a} already spent: how much is left, in {n2}?", "{y} - {a}"),
    ], "test": [
        ("Three bills of {a}, {b} and {c} {n1}: total them and express it in {n2}.", "{a} + {b} + {c}"),
        ("{kw} nights at {x} {n1}; how much is that in {n2}?", "{k} * {x}"),
    ]}
    t, e = c.tpl(tpls)
    c1, c2 = c.currencies()
    big = c1 in BIG_CURRENCIES
    v = {key: (c.int_(5, 90) * 100 if big else c.price(4, 200)) for key in "abcx"}
    v["y"] = v["a"] + (c.int_(20, 90) * 100 if big else c.price(50, 900))
    k = c.int_(2, 9)
    vals = {key: num(x) for key, x in v.items()}
    shown = {key: c.price_text(x) for key, x in v.items()}
    expr = e.format(k=k, **vals)
    cur = cur_answer(c, 1)
    return Draft(cap(t.format(k=k, kw=ph.NUM_WORDS.get(k, str(k)), n1=c.cur_name(c1), n2=c.cur_name(c2), c1=c1,
                              c2=c2, **shown)),
                 [("calculate", {"expression": expr}),
                  ("convert_currency", lambda r: {"amount": r[0]["result"], "from_currency": c1, "to_currency": c2})],
                 lambda r: f"That's {money(r[0]['result'])} {c1}. {cur(r)}")


def m_date_list(c: Ctx) -> Draft:
    """date_add, then list the to-dos due by that date."""
    tpls = {"train": [
        ("What do I have due in the next {n} days? Work out the date, then list what's due by then.", "today", "n"),
        ("Show me everything due within {w} weeks.", "today", "w"),
        ("which tasks are due by {n} days from now?", "today", "n"),
        ("list my to-dos due on or before {n} days after {d}", "date", "n"),
        ("Could you tell me what's due in the coming {w} weeks?", "today", "w"),
        ("what's on my list for the next fortnight?", "today", "f"),
        ("anything due in the next {nw} days? list it", "today", "n"),
        ("Work out the date {n} days after {d} and show the tasks due by then.", "date", "n"),
    ], "test": [
        ("Over the next {n} days, what tasks are due?", "today", "n"),
        ("Tasks due within {w} weeks of {d}?", "date", "w"),
    ]}
    t, base, how = c.tpl(tpls)
    n, w = (c.int_(2, 9) if "{nw}" in t else c.int_(3, 40)), c.int_(2, 4)
    days = {"n": n, "w": 7 * w, "f": 14}[how]
    d = "today" if base == "today" else c.date_near(0, 30)
    setup = c.todo_setup(2, 5)
    limit = (TODAY if d == "today" else dt.date.fromisoformat(d)) + dt.timedelta(days=days)
    if setup and not any(a.get("due", "9999") <= limit.isoformat() for _, a in setup):
        setup[0][1]["due"] = (limit - dt.timedelta(days=c.int_(0, min(days, 10)))).isoformat()
    added, listed = date_add_answer(c, 0), list_answer(c, 1)
    return Draft(cap(t.format(n=n, nw=ph.NUM_WORDS.get(n, str(n)), w=w, d=c.date_text(d) if d != "today" else d)),
                 [("date_add", {"date": d, "days": days}), ("list_todos", lambda r: {"due_by": r[0]["result"]})],
                 lambda r: f"{added(r)} {listed(r)}", setup=setup)


def m_date_days(c: Ctx) -> Draft:
    """date_add, then the days from today to that date."""
    tpls = {"train": [
        ("My visa is valid for {n} days from {d}. When does it run out, and how many days from today is that?",),
        ("The warranty lasts {n} days from {d}. What's the end date and how many days are left?",),
        ("a {n}-day trial started on {d}. when does it end, and how long until then?",),
        ("Could you work out {n} days after {d} and then count the days from today to that date?",),
        ("the offer ends {n} days after {d}. what date is that, and how many days away?",),
        ("{d} plus {n} days - what date, and how many days from now?",),
    ], "test": [
        ("My lease notice period is {n} days from {d}. Which date is that, and how many days from today?",),
    ]}
    (t,) = c.tpl(tpls)
    d, n = c.date_near(-40, 20), c.int_(20, 120)
    added, days = date_add_answer(c, 0), days_answer(c, 1)
    return Draft(cap(t.format(n=n, d=c.date_text(d))),
                 [("date_add", {"date": d, "days": n}),
                  ("days_between", lambda r: {"start": "today", "end": r[0]["result"]})],
                 lambda r: f"{added(r)} {days(r)}")


def m_days_cost(c: Ctx) -> Draft:
    """days_between, then a daily amount times the days."""
    tpls = {"train": [
        ("I've spent {p} a day on coffee since {a}. How many days is that, and how much in total?", "since"),
        ("The rental runs from {a} to {b} at {p} per day. How many days is it, and what's the cost?", "span"),
        ("I save {p} a day from today until {b}. How much will I have put away?", "until"),
        ("days from {a} to {b}, then times {p} a day", "span"),
        ("Could you count the days since {a} and multiply by {p}?", "since"),
        ("parking is {p} a day from {a} until {b} - what's the total?", "span"),
        ("I stopped buying lunch on {a}, which was {p} a day. How much have I saved up to today?", "since"),
    ], "test": [
        ("Since {a} I've been putting aside {p} daily. Days so far, and the total?", "since"),
        ("A hire car from {a} to {b} at {p} a day: days and total cost?", "span"),
    ]}
    t, how = c.tpl(tpls)
    p = c.price(2, 60)
    if how == "since":
        a, b = c.date_near(-300, -5), "today"
    elif how == "until":
        a, b = "today", c.date_near(5, 200)
    else:
        a = c.date_near(-60, 120)
        b = (dt.date.fromisoformat(a) + dt.timedelta(days=c.int_(2, 30))).isoformat()
    ta, tb = c.dates_text(a, b)
    days = days_answer(c, 0)
    return Draft(cap(t.format(a=ta, b=tb, p=c.price_text(p))),
                 [("days_between", {"start": a, "end": b}),
                  ("calculate", lambda r: {"expression": f"{r[0]['days']} * {num(p)}"})],
                 lambda r: f"{days(r)} At {num(p)} a day that's {approx(r[1]['result'])}.")


def _setup_without(c: Ctx, note: tuple[str, str, list[str]], k: str) -> list[tuple[str, Args]]:
    """Setup notes with ``note`` among them and no other note that a search for ``k`` would find."""
    others = [s for s in c.note_setup(0, 3) if not all(w in f"{s[1]['title']} {s[1]['text']}".lower()
                                                         for w in k.split())]
    others.insert(c.int_(0, len(others)), ("add_note", {"title": note[0], "text": note[1]}))
    return others


def m_search_calc(c: Ctx) -> Draft:
    """search_notes for a note with an amount, then calculate with it."""
    tpls = {"train": [
        ("Look up my note on {k} and work out the total for {n} {per}s.", "n"),
        ("find the {k} note and tell me what that comes to over a year", "year"),
        ("What did I save about {k}? Work out {p}% of that amount.", "pct"),
        ("check my notes for {k}, then multiply the amount by {n}", "n"),
        ("Could you search my notes for {k} and tell me how much that is for {n} {per}s?", "n"),
        ("my {k} note has a price in it - what is it per year?", "year"),
    ], "test": [
        ("Pull up the {k} note and give me the cost of {n} {per}s.", "n"),
    ]}
    t, how = c.tpl(tpls)
    pools = [n for n in AMOUNT_NOTES[c.split] if how != "year" or n[4] in ("month", "week")]
    title, text, kws, (lo, hi), per = c.pick(pools)
    x = c.price(lo, hi)
    note = (title, text.format(x=c.price_text(x)), kws)
    k, n, p = c.pick(kws), c.int_(2, 12), c.pick([10, 15, 20, 25])
    mult = {"n": n, "year": PER_YEAR.get(per, 12)}
    expr = f"{num(x)} * {p} / 100" if how == "pct" else f"{num(x)} * {mult[how]}"
    said = (f"{p}% of it is {{v}}." if how == "pct" else f"For {n} {per}s that's {{v}}." if how == "n"
            else "Over a year that's {v}.")
    found = search_answer(c, 0)
    return Draft(cap(t.format(k=k, n=n, per=per, p=p)),
                 [("search_notes", {"query": k}), ("calculate", {"expression": expr})],
                 lambda r: f"{found(r)} {_calc_said(c, 1, said)(r)}", setup=_setup_without(c, note, k))


def m_search_currency(c: Ctx) -> Draft:
    """search_notes for a note with a sum of money, then convert it."""
    tpls = {"train": [
        ("Find my note about {k} and convert the amount to {n2}.", ),
        ("what's the {k} amount from my notes in {n2}?", ),
        ("look up {k} in my notes and change the price into {n2}", ),
        ("Could you check my {k} note and tell me what that is in {n2}?", ),
        ("search notes for {k}, then convert it to {n2}", ),
    ], "test": [
        ("Get the {k} figure from my notes and express it in {n2}.", ),
    ]}
    (t,) = c.tpl(tpls)
    title, text, kws, (lo, hi), code = c.pick(MONEY_NOTES[c.split])
    x = c.int_(lo // 10, hi // 10) * 10
    note = (title, text.format(x=x), kws)
    c2 = c.pick([cc for cc in CURRENCY_WORDS if cc != code])
    k = c.pick(kws)
    found, cur = search_answer(c, 0), cur_answer(c, 1)
    return Draft(cap(t.format(k=k, n2=c.cur_name(c2))),
                 [("search_notes", {"query": k}),
                  ("convert_currency", {"amount": x, "from_currency": code, "to_currency": c2})],
                 lambda r: f"{found(r)} {cur(r)}", setup=_setup_without(c, note, k))


MULTI: dict[str, tuple[Callable[[Ctx], Draft], tuple[str, ...]]] = {
    "currency_tip": (m_currency_tip, ("convert_currency", "add_tip")),
    "date_todo": (m_date_todo, ("date_add", "add_todo")),
    "calc_units": (m_calc_units, ("calculate", "convert_units")),
    "units_calc": (m_units_calc, ("convert_units", "calculate")),
    "days_calc": (m_days_calc, ("days_between", "calculate")),
    "note_search": (m_note_search, ("add_note", "search_notes")),
    "todo_list": (m_todo_list, ("add_todo", "list_todos")),
    "two_todos_list": (m_two_todos_list, ("add_todo", "list_todos")),
    "calc_currency_tip": (m_calc_currency_tip, ("calculate", "convert_currency", "add_tip")),
    "date_todo_list": (m_date_todo_list, ("date_add", "add_todo", "list_todos")),
    "units_units": (m_units_units, ("convert_units",)),
    "currency_twice": (m_currency_twice, ("convert_currency",)),
    "date_and_days": (m_date_and_days, ("date_add", "days_between")),
    "search_todo": (m_search_todo, ("search_notes", "add_todo")),
    "currency_split": (m_currency_split, ("convert_currency", "calculate")),
    "calc_tip": (m_calc_tip, ("calculate", "add_tip")),
    "note_and_todo": (m_note_and_todo, ("add_note", "add_todo")),
    "currency_calc": (m_currency_calc, ("convert_currency", "calculate")),
    "units_calc_more": (m_units_calc_more, ("convert_units", "calculate")),
    "tip_currency": (m_tip_currency, ("add_tip", "convert_currency")),
    "calc_currency": (m_calc_currency, ("calculate", "convert_currency")),
    "date_list": (m_date_list, ("date_add", "list_todos")),
    "date_days": (m_date_days, ("date_add", "days_between")),
    "days_cost": (m_days_cost, ("days_between", "calculate")),
    "search_calc": (m_search_calc, ("search_notes", "calculate")),
    "search_currency": (m_search_currency, ("search_notes", "convert_currency")),
}


# ----- execution and records -----------------------------------------------------------------------------------
def _jsonable(x: Any) -> Any:
    return json.loads(json.dumps(x))


def run_calls(tools: dict[str, Callable[..., Any]], setup: Sequence[tuple[str, Args] | dict[str, Any]],
              calls: Sequence[tuple[str, ArgSpec]]) -> tuple[list[Args], list[Any]]:
    """Run ``setup`` then ``calls`` (arguments may be built from earlier results); return (args, results)."""
    for s in setup:
        name, args = (s["name"], s["arguments"]) if isinstance(s, dict) else s
        tools[name](**args)
    used: list[Args] = []
    results: list[Any] = []
    for name, spec in calls:
        args = spec(results) if callable(spec) else spec
        used.append(args)
        results.append(_jsonable(tools[name](**args)))
    return used, results


def is_stateful(names: Sequence[str]) -> bool:
    return any(n in STATEFUL_TOOL_NAMES for n in names)


class Replayer:
    """Runs records' calls; stateful ones in a store that is emptied first (as if new)."""

    def __init__(self, workdir: str | Path):
        self.workdir = str(workdir)
        self.tools = {f.__name__: f for f in make_tools(self.workdir, durable=False)}
        self._store = basic._Store(self.workdir, durable=False)  # same file, kept open for fast clearing

    def tools_for(self, names: Sequence[str]) -> dict[str, Callable[..., Any]]:
        if is_stateful(names):
            basic._clear(self._store)  # same effect as basic.clear_store(workdir)
        return self.tools

    def replay(self, record: dict[str, Any]) -> list[Any]:
        """Re-execute a record's ``setup`` and ``answers`` (fixed arguments); return the results."""
        names = [a["name"] for a in record["answers"]] + [s["name"] for s in record.get("setup", [])]
        calls = [(a["name"], a["arguments"]) for a in record["answers"]]
        return run_calls(self.tools_for(names), record.get("setup", []), calls)[1]


class Builder(Replayer):
    """Executes drafts and turns them into validated records."""

    def __init__(self, workdir: str | Path):
        super().__init__(workdir)
        self.schemas = tool_schemas()
        self.validators = {s["name"]: jsonschema.Draft202012Validator(s["parameters"]) for s in self.schemas}

    def record(self, draft: Draft, rid: str) -> dict[str, Any]:
        names = [n for n, _ in draft.calls] + [n for n, _ in draft.setup]
        args, results = run_calls(self.tools_for(names), draft.setup, draft.calls)
        answers = [{"name": n, "arguments": a} for (n, _), a in zip(draft.calls, args)]
        for a in answers:
            self.validators[a["name"]].validate(a["arguments"])
        query = fix_articles(draft.query)
        rec: dict[str, Any] = {
            "id": rid, "query": query, "tools": self.schemas, "answers": answers, "source": SOURCE,
            "n_calls": len(answers), "messages": [{"role": "user", "content": query}], "results": results,
            "between": [[] for _ in answers[1:]], "response": fix_articles(draft.respond(results)),
        }
        if not rec["response"]:  # a no-call request left to the backbone: training writes its own reply
            del rec["response"]
        if draft.setup:
            rec["setup"] = [{"name": n, "arguments": a} for n, a in draft.setup]
        parse_record(rec)
        return rec


def _check_pools() -> None:
    for split, notes in NOTES.items():
        for title, text, kws in notes:
            for kw in kws:
                assert all(w in f"{title} {text}".lower() for w in kw.split()), (split, title, kw)
    for split, notes in NOTES.items():  # query rewriting (fix_articles) must never touch argument text
        for text in [*TODO_TITLES[split], *(x for n in notes for x in n[:2])]:
            assert fix_articles(text) == text, text
    assert not set(TODO_TITLES["train"]) & set(TODO_TITLES["test"])
    assert not {n[0] for n in NOTES["train"]} & {n[0] for n in NOTES["test"]}


def build_split(split: str, seed: int = SEED, *, exclude_queries: set[str] | None = None,
                workroot: str | None = None, free: bool = True) -> list[dict[str, Any]]:
    """All records of one split ("train" or "test"), in their final order.

    free: the *free-phrasing* variant (``tools/data``): half the single calls from :data:`FREE`
    (``tools/phrasing.py``), a fifth wrapped in casual preambles, plus requests that need no tool. False: the
    plain variant (the templates only), kept for ablations (docs/benchmarks.md).
    """
    import random

    _check_pools()
    rng = random.Random(seed * 10 + (0 if split == "train" else 1))
    c = Ctx(rng, split)
    seen = set(exclude_queries or ())
    drafts: list[Draft] = []

    def unique(make: Callable[[Ctx], Draft]) -> Draft:
        for _ in range(200):
            d = make(c)
            if d.query not in seen:
                seen.add(d.query)
                return d
        raise RuntimeError(f"cannot find a new query for {make.__name__}; add templates or values")

    # multi-call records first, every kind about equally often (each pass over the kinds in a new order)
    usage: Counter[str] = Counter()
    n_multi = TRAIN_MULTI if split == "train" else TEST_MULTI
    order: list[str] = []
    while len(order) < n_multi:
        order += c.sample(list(MULTI), len(MULTI))
    for kind in order[:n_multi]:
        drafts.append(unique(MULTI[kind][0]))
        usage.update(set(MULTI[kind][1]))
    for name, gen in SINGLE.items():
        if split == "train":
            k = max(TRAIN_MIN_SINGLE, TRAIN_CALLS_PER_TOOL - usage[name])
        else:
            k = TEST_SINGLE_PER_TOOL
        for _ in range(k):
            d = unique(FREE[name] if free and c.chance(FREE_SHARE) else gen)
            if free and c.chance(CASUAL_SHARE):
                wrapped = casual(c, d.query)
                if wrapped not in seen:
                    seen.discard(d.query)
                    d.query = wrapped
                    seen.add(wrapped)
            drafts.append(d)
    if free:
        drafts += no_call_drafts(split)
    rng.shuffle(drafts)

    with tempfile.TemporaryDirectory(prefix="tokmem-traces-", dir=workroot) as tmp:
        b = Builder(tmp)
        return [b.record(d, f"tools-{split}-{i:05d}") for i, d in enumerate(drafts)]


def generate(out_dir: str | Path = DATA_DIR, seed: int = SEED, *, free: bool = True) -> dict[str, list[dict[str, Any]]]:
    """Write ``train.jsonl`` and ``test.jsonl`` to ``out_dir``; return the records (``free``: see build_split)."""
    out = Path(out_dir)
    train = build_split("train", seed, free=free)
    test = build_split("test", seed, exclude_queries={r["query"] for r in train}, free=free)
    write_jsonl(train, out / "train.jsonl")
    write_jsonl(test, out / "test.jsonl")
    return {"train": train, "test": test}


def summarize(records: list[dict[str, Any]]) -> str:
    by_n = Counter(r["n_calls"] for r in records)
    per_tool: Counter[str] = Counter()
    for r in records:
        per_tool.update({a["name"] for a in r["answers"]})
    ns = ", ".join(f"{k}: {v}" for k, v in sorted(by_n.items()))
    tools = ", ".join(f"{k} {v}" for k, v in per_tool.items())
    return f"{len(records)} records (n_calls {ns}); records per tool: {tools}"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(DATA_DIR), help="output directory (default: tools/data)")
    ap.add_argument("--seed", type=int, default=SEED, help=f"random seed (default: {SEED})")
    ap.add_argument("--plain", action="store_true",
                    help="the plain variant (templates only, no free phrasings or no-call requests), for ablations")
    a = ap.parse_args(argv)
    if a.plain and Path(a.out).resolve() == DATA_DIR:
        ap.error("--plain writes a variant: give another --out than tools/data")
    recs = generate(a.out, a.seed, free=not a.plain)
    for split, rs in recs.items():
        print(f"{Path(a.out) / (split + '.jsonl')}: {summarize(rs)}")


if __name__ == "__main__":
    main()
