"""The example tool pack (tools/basic.py) and its generated traces (tools/make_traces.py, tools/data)."""

from __future__ import annotations

import functools
import json
import operator
from pathlib import Path

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokmem_agent import Tool, ToolRegistry
from tokmem_agent.executor import execute
from tokmem_agent.traces import load_traces, parse_record
from tools import TODAY, TOOLS, make_tools
from tools import make_traces as mt
from tools.basic import UNITS, calculate, clear_store, convert_units

DATA = Path(mt.__file__).resolve().parent / "data"
NAMES = ["calculate", "convert_units", "convert_currency", "add_tip", "date_add", "days_between", "add_todo",
         "list_todos", "add_note", "search_notes"]


@pytest.fixture
def tools(tmp_path):
    return {f.__name__: f for f in make_tools(str(tmp_path), durable=False)}


@functools.cache
def _records(split: str) -> list[dict]:
    """The committed records (parsed once; tests must not modify them)."""
    return [json.loads(line) for line in (DATA / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()]


# ----- schemas ----------------------------------------------------------------------------------------------
def test_schemas_valid_and_names_unique():
    ts = [Tool.from_function(f) for f in TOOLS]
    assert [t.name for t in ts] == NAMES == [f.__name__ for f in make_tools()]
    assert len(ToolRegistry(TOOLS)) == len(NAMES)
    for t in ts:
        assert t.description and t.parameters["type"] == "object"
        jsonschema.Draft202012Validator.check_schema(t.parameters)
        for name, prop in t.parameters["properties"].items():
            assert prop.get("description"), f"{t.name}.{name} has no description (Args: section)"
    by = {t.name: t.parameters for t in ts}
    assert "kelvin" in by["convert_units"]["properties"]["from_unit"]["enum"]
    assert by["convert_currency"]["properties"]["to_currency"]["enum"][:2] == ["USD", "EUR"]
    assert by["add_tip"]["required"] == ["bill"] and by["add_tip"]["properties"]["people"]["minimum"] == 1
    assert by["date_add"]["properties"]["date"]["pattern"] == "^(today|\\d{4}-\\d{2}-\\d{2})$"
    assert "required" not in by["list_todos"]  # no required argument


# ----- happy paths --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,args,expected", [
    ("calculate", {"expression": "(12.5 + 7) * 3"}, {"expression": "(12.5 + 7) * 3", "result": 58.5}),
    ("calculate", {"expression": "0.1 + 0.2"}, {"expression": "0.1 + 0.2", "result": 0.3}),
    ("calculate", {"expression": "6 / 2"}, {"expression": "6 / 2", "result": 3}),
    ("calculate", {"expression": "sqrt(16) + max(1, 2, 3) - -1"}, {"expression": "sqrt(16) + max(1, 2, 3) - -1",
                                                                   "result": 8}),
    ("convert_units", {"value": 10, "from_unit": "km", "to_unit": "mi"},
     {"value": 10, "from_unit": "km", "to_unit": "mi", "result": 6.21371}),
    ("convert_units", {"value": 212, "from_unit": "fahrenheit", "to_unit": "celsius"},
     {"value": 212, "from_unit": "fahrenheit", "to_unit": "celsius", "result": 100}),
    ("convert_units", {"value": 1, "from_unit": "gal", "to_unit": "cup"},
     {"value": 1, "from_unit": "gal", "to_unit": "cup", "result": 16}),
    ("convert_currency", {"amount": 100, "from_currency": "USD", "to_currency": "EUR"},
     {"amount": 100, "from_currency": "USD", "to_currency": "EUR", "rate": 0.92, "result": 92}),
    ("add_tip", {"bill": 84.5, "percent": 18, "people": 3},
     {"bill": 84.5, "percent": 18, "tip": 15.21, "total": 99.71, "people": 3, "per_person": 33.24}),
    ("add_tip", {"bill": 40}, {"bill": 40, "percent": 15.0, "tip": 6, "total": 46, "people": 1, "per_person": 46}),
    ("date_add", {"date": "2024-02-28", "days": 2},
     {"date": "2024-02-28", "days": 2, "result": "2024-03-01", "weekday": "Friday"}),
    ("date_add", {"date": "today", "days": -2},
     {"date": "2025-06-02", "days": -2, "result": "2025-05-31", "weekday": "Saturday"}),
    ("days_between", {"start": "today", "end": "2025-12-25"}, {"start": "2025-06-02", "end": "2025-12-25",
                                                               "days": 206}),
    ("days_between", {"start": "2024-03-01", "end": "2024-02-01"}, {"start": "2024-03-01", "end": "2024-02-01",
                                                                    "days": -29}),
])
def test_pure_tools(tools, name, args, expected):
    out = tools[name](**args)
    assert out == expected
    assert json.loads(json.dumps(out)) == out


def test_today_is_fixed():
    assert TODAY.isoformat() == "2025-06-02" and TODAY.weekday() == 0


def test_todos(tools, tmp_path):
    assert tools["list_todos"]() == {"due_by": None, "count": 0, "todos": []}
    assert tools["add_todo"]("buy milk") == {"id": 1, "title": "buy milk", "due": None}
    assert tools["add_todo"]("  pay rent ", due="2025-06-30") == {"id": 2, "title": "pay rent", "due": "2025-06-30"}
    assert tools["add_todo"]("call mum", due="today")["due"] == "2025-06-02"
    listed = tools["list_todos"]()
    assert [t["title"] for t in listed["todos"]] == ["call mum", "pay rent", "buy milk"] and listed["count"] == 3
    assert tools["list_todos"](due_by="2025-06-10") == {"due_by": "2025-06-10", "count": 1, "todos": [
        {"id": 3, "title": "call mum", "due": "2025-06-02"}]}
    # the store persists across make_tools() on the same directory, is separate from others, and clears
    again = {f.__name__: f for f in make_tools(str(tmp_path))}
    assert again["list_todos"]()["count"] == 3
    other = {f.__name__: f for f in make_tools(str(tmp_path / "other"), durable=False)}
    assert other["list_todos"]()["count"] == 0
    clear_store(tmp_path, durable=False)
    assert again["list_todos"]()["count"] == 0
    assert again["add_todo"]("x")["id"] == 1


def test_notes(tools):
    assert tools["add_note"]("Wifi password", "The guest wifi is blue-falcon-42.") == {"id": 1,
                                                                                     "title": "Wifi password"}
    tools["add_note"]("Parking", "Level 3, spot C12.")
    tools["add_note"]("Guest room", "Wifi router is behind the TV.")
    hits = tools["search_notes"]("WIFI")
    assert hits["count"] == 2 and [n["id"] for n in hits["notes"]] == [1, 3]
    assert tools["search_notes"]("wifi router")["notes"][0]["title"] == "Guest room"  # every word must match
    assert tools["search_notes"]("wifi", limit=1)["count"] == 1
    assert tools["search_notes"]("nothing here") == {"query": "nothing here", "count": 0, "notes": []}


def test_tools_run_in_the_executor_thread(tools):
    r = execute(tools["add_todo"], {"title": "from a worker thread"})
    assert r.ok and r.value["id"] == 1
    bad = execute(tools["convert_units"], {"value": 1, "from_unit": "km", "to_unit": "kg"})
    assert not bad.ok and "ValueError: cannot convert length (km) to mass (kg)" in bad.error


# ----- error paths --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,args,match", [
    ("calculate", {"expression": "__import__('os').system('true')"}, "unsupported function call"),
    ("calculate", {"expression": "1 / 0"}, "division by zero"),
    ("calculate", {"expression": "2 ^ 8"}, r"use \*\*"),
    ("calculate", {"expression": "2 ** 10000"}, "exponent too large"),
    ("calculate", {"expression": "10 ** 300 * 10 ** 300"}, "too large"),
    ("calculate", {"expression": "x + 1"}, "unknown name 'x'"),
    ("calculate", {"expression": "'a' * 3"}, "only numbers"),
    ("calculate", {"expression": "(1 + "}, "cannot parse"),
    ("calculate", {"expression": "  "}, "non-empty"),
    ("calculate", {"expression": "sqrt(-1)"}, r"sqrt\(\)"),
    ("convert_units", {"value": 1, "from_unit": "parsec", "to_unit": "m"}, "unknown from_unit 'parsec'"),
    ("convert_units", {"value": 1, "from_unit": "km", "to_unit": "kg"}, "cannot convert length"),
    ("convert_units", {"value": -500, "from_unit": "celsius", "to_unit": "kelvin"}, "absolute zero"),
    ("convert_units", {"value": -2, "from_unit": "m", "to_unit": "ft"}, "cannot be negative"),
    ("convert_units", {"value": "ten", "from_unit": "m", "to_unit": "ft"}, "must be a number"),
    ("convert_currency", {"amount": 5, "from_currency": "BTC", "to_currency": "USD"}, "unknown from_currency"),
    ("convert_currency", {"amount": -5, "from_currency": "EUR", "to_currency": "USD"}, "cannot be negative"),
    ("add_tip", {"bill": 50, "percent": 150}, "between 0 and 100"),
    ("add_tip", {"bill": 50, "people": 0}, "at least 1"),
    ("add_tip", {"bill": -1}, "cannot be negative"),
    ("date_add", {"date": "2025-02-30", "days": 1}, "no such calendar date"),
    ("date_add", {"date": "June 5", "days": 1}, "expected YYYY-MM-DD or 'today'"),
    ("date_add", {"date": "today", "days": 1.5}, "whole number"),
    ("date_add", {"date": "9999-12-31", "days": 1}, "outside the calendar"),
    ("days_between", {"start": "today", "end": "tomorrow"}, "invalid end 'tomorrow'"),
    ("add_todo", {"title": "   "}, "title must be a non-empty string"),
    ("add_todo", {"title": "x", "due": "next week"}, "invalid due"),
    ("list_todos", {"due_by": "2025-13-01"}, "invalid due_by"),
    ("add_note", {"title": "t", "text": ""}, "text must be a non-empty string"),
    ("search_notes", {"query": "x", "limit": 0}, "from 1 to 50"),
    ("search_notes", {"query": ""}, "query must be a non-empty string"),
])
def test_errors(tools, name, args, match):
    with pytest.raises(ValueError, match=match):
        tools[name](**args)


@settings(max_examples=60, deadline=None)
@given(a=st.integers(-10**6, 10**6), b=st.integers(-10**6, 10**6).filter(bool),
       op=st.sampled_from([("+", operator.add), ("-", operator.sub), ("*", operator.mul), ("//", operator.floordiv),
                           ("%", operator.mod)]))
def test_calculate_matches_python_on_integers(a, b, op):
    sym, fn = op
    assert calculate(f"{a} {sym} ({b})")["result"] == fn(a, b)


def test_unit_round_trip():
    for u, (dim, _) in UNITS.items():
        other = next(v for v, (d, _) in UNITS.items() if d == dim and v != u)
        there = convert_units(300, u, other)["result"]
        assert convert_units(there, other, u)["result"] == pytest.approx(300, rel=1e-5)


# ----- generated traces ---------------------------------------------------------------------------------------
def test_committed_traces_are_valid():
    schemas = mt.tool_schemas()
    validators = {s["name"]: jsonschema.Draft202012Validator(s["parameters"]) for s in schemas}
    for split, n_lo, n_hi in (("train", 900, 1700), ("test", 90, 140)):
        recs = _records(split)
        assert n_lo <= len(recs) <= n_hi
        assert len({r["id"] for r in recs}) == len(recs) and len({r["query"] for r in recs}) == len(recs)
        for i, rec in enumerate(recs):
            t = parse_record(rec, path=split, line=i + 1)
            assert rec["tools"] == schemas and rec["source"] == "tokmem-tools"
            assert rec["n_calls"] == len(rec["answers"]) == len(rec["results"])
            assert rec["messages"] == [{"role": "user", "content": rec["query"]}]
            assert rec["between"] == [[] for _ in rec["answers"][1:]]
            if rec["answers"]:
                assert isinstance(rec["response"], str) and rec["response"]
            else:  # needs no tool: a fixed "can't do that" reply, or none (training uses the backbone's own)
                assert rec["results"] == [] and rec.get("response") in (None, mt.ph.CANT)
            for a in rec["answers"]:
                validators[a["name"]].validate(a["arguments"])
            assert t.results == rec["results"] and t.between == rec["between"]
    assert len(load_traces(DATA / "test.jsonl")) == len(_records("test"))


def test_trace_mix():
    train, test = _records("train"), _records("test")
    for recs, lo, hi in ((train, 150, 340), (test, 5, 30)):
        per_tool = {n: sum(any(a["name"] == n for a in r["answers"]) for r in recs) for n in NAMES}
        assert all(lo <= v <= hi for v in per_tool.values()), per_tool
        multi = sum(r["n_calls"] > 1 for r in recs) / len(recs)
        assert 0.25 <= multi <= 0.4
        assert {r["n_calls"] for r in recs} == {0, 1, 2, 3}
        assert 0.03 <= sum(r["n_calls"] == 0 for r in recs) / len(recs) <= 0.15  # requests that need no tool
    assert not {r["query"] for r in train} & {r["query"] for r in test}
    # chains: some later call takes an argument value straight out of an earlier call's result
    def chained(r):
        earlier = {json.dumps(v) for res in r["results"][:-1] for v in (res.values() if isinstance(res, dict) else [])}
        return any(json.dumps(v) in earlier for a in r["answers"][1:] for v in a["arguments"].values())
    assert sum(chained(r) for r in train) >= 100
    # held-out pools: test to-do titles / notes do not occur in train
    train_args = {json.dumps(a["arguments"].get("title")) for r in train for a in r["answers"]}
    assert not {json.dumps(t) for t in mt.TODO_TITLES["test"]} & train_args


def test_results_equal_re_execution(tmp_path):
    rp = mt.Replayer(tmp_path)
    for split in ("train", "test"):
        for rec in _records(split):
            assert rp.replay(rec) == rec["results"], rec["id"]


def test_regeneration_is_byte_identical(tmp_path):
    mt.generate(tmp_path / "a")
    mt.generate(tmp_path / "b")
    for name in ("train.jsonl", "test.jsonl"):
        a = (tmp_path / "a" / name).read_bytes()
        assert a == (tmp_path / "b" / name).read_bytes()
        assert a == (DATA / name).read_bytes(), f"tools/data/{name} is stale: run python -m tools.make_traces"


def test_plain_variant(tmp_path):
    """The plain variant (--plain, for ablations): templates only, every record calls a tool."""
    recs = mt.build_split("test", free=False, workroot=str(tmp_path))
    assert recs and all(r["answers"] for r in recs) and len({r["query"] for r in recs}) == len(recs)
    assert {r["query"] for r in recs} != {r["query"] for r in _records("test")}
    with pytest.raises(SystemExit):
        mt.main(["--plain", "--out", str(DATA)])  # the committed data is the free-phrasing variant


def test_free_phrasing_variant(tmp_path):
    """The free-phrasing variant (tools/phrasing.py): valid records, unique queries, no-call requests."""
    schemas = mt.tool_schemas()
    validators = {s["name"]: jsonschema.Draft202012Validator(s["parameters"]) for s in schemas}
    recs = mt.build_split("test", free=True, workroot=str(tmp_path))
    assert len({r["query"] for r in recs}) == len(recs)
    no_call = [r for r in recs if not r["answers"]]
    assert no_call and all(r["results"] == [] and r["n_calls"] == 0 for r in no_call)
    assert any(r.get("response") == mt.ph.CANT for r in no_call) and any("response" not in r for r in no_call)
    for i, rec in enumerate(recs):
        parse_record(rec, path="free", line=i + 1)
        for a in rec["answers"]:
            validators[a["name"]].validate(a["arguments"])
    assert mt.build_split("test", free=True, workroot=str(tmp_path)) == recs  # deterministic
