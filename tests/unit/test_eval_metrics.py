"""evals.metrics: strict value comparison, tool/argument P/R/F1, exact match, raw-text validity, the
BFCL-style checker and aggregation (pure functions, no model)."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evals.metrics import (
    Counts,
    Example,
    aggregate,
    align_calls,
    arg_counts,
    arg_prf,
    check_calls,
    exact_match,
    json_valid,
    normalize_value,
    prf,
    schema_errors,
    schema_valid,
    tool_accuracy,
    tool_counts,
    tool_prf,
    values_equal,
)
from tokmem_agent.traces import Call, parse_record

C = Call
WEATHER = {"name": "get_weather", "description": "",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                          "days": {"type": "integer"}},
                          "required": ["city"]}}
ADD = {"name": "add", "description": "",
       "parameters": {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
                      "required": ["a", "b"]}}
TOOLS = [WEATHER, ADD]


# ----- normalize_value / values_equal -------------------------------------------------------------------
@pytest.mark.parametrize("a,b", [
    (1, 1.0), (0, 0.0), (-2.5, -2.5), ("Paris", " Paris "), ("a\n", "a"), (None, None), (True, True),
    ([1, "x"], [1.0, " x"]), ({"a": [1, {"b": " y"}]}, {"a": [1.0, {"b": "y"}]}), ((1, 2), [1, 2]),
    (float("nan"), float("nan")),
])
def test_values_equal(a, b):
    assert values_equal(a, b) and values_equal(b, a)
    assert hash(normalize_value(a)) == hash(normalize_value(b))


@pytest.mark.parametrize("a,b", [
    (1, "1"), (1.0, "1.0"), (True, 1), (False, 0), (True, "true"), (None, ""), (None, 0), (None, "null"),
    ("Paris", "paris"), ("New York", "NewYork"), ("a b", "a  b"), ([1, 2], [2, 1]), ([1], 1), ([], {}),
    ({"a": 1}, {"a": 1, "b": 2}), ({"a": 1}, {"A": 1}), ({" a": 1}, {"a": 1}), ([[1]], [1]), ("1", " 1.0"),
])
def test_values_not_equal(a, b):
    assert not values_equal(a, b) and not values_equal(b, a)


def test_normalize_rejects_non_json():
    with pytest.raises(TypeError):
        normalize_value({1, 2})
    with pytest.raises(TypeError):
        normalize_value(object())


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=3), kids, max_size=3),
    max_leaves=10)


@given(json_values)
def test_values_equal_reflexive_and_hashable(v):
    assert values_equal(v, v)
    hash(normalize_value(v))


# ----- P/R/F1 -------------------------------------------------------------------------------------------
def test_prf_conventions():
    assert prf(Counts(0, 0, 0)) == (1.0, 1.0, 1.0)
    assert prf(Counts(0, 0, 3)) == (0.0, 0.0, 0.0)
    assert prf(Counts(0, 2, 0)) == (0.0, 0.0, 0.0)
    p, r, f = prf(Counts(1, 3, 2))
    assert (p, r) == (1 / 3, 1 / 2) and math.isclose(f, 2 * p * r / (p + r))


def test_tool_prf_multiset():
    gold = [C("a", {}), C("c", {})]
    pred = [C("a", {}), C("a", {}), C("b", {})]
    assert tool_counts(pred, gold) == Counts(1, 3, 2)
    p, r, f = tool_prf(pred, gold)
    assert (p, r) == (1 / 3, 1 / 2) and math.isclose(f, 0.4)
    # order does not matter for tool F1
    assert tool_prf([C("b", {}), C("a", {})], [C("a", {}), C("b", {})]) == (1.0, 1.0, 1.0)
    # repeated names are counted with multiplicity
    assert tool_counts([C("a", {})], [C("a", {}), C("a", {})]) == Counts(1, 1, 2)


def test_empty_predictions_and_gold():
    gold = [C("get_weather", {"city": "Paris"})]
    assert tool_prf([], gold) == (0.0, 0.0, 0.0)
    assert arg_prf([], gold) == (0.0, 0.0, 0.0)
    assert not exact_match([], gold) and not tool_accuracy([], gold)
    assert tool_prf([], []) == (1.0, 1.0, 1.0) and arg_prf([], []) == (1.0, 1.0, 1.0)
    assert exact_match([], []) and tool_accuracy([], [])
    assert tool_prf(gold, []) == (0.0, 0.0, 0.0)


def test_arg_prf_type_strict():
    gold = [C("add", {"a": 1, "b": 2})]
    assert arg_prf([C("add", {"a": 1.0, "b": 2})], gold) == (1.0, 1.0, 1.0)
    assert arg_counts([C("add", {"a": "1", "b": 2})], gold) == Counts(1, 2, 2)
    assert arg_counts([C("add", {"a": True, "b": 2})], [C("add", {"a": 1, "b": 2})]) == Counts(1, 2, 2)
    assert arg_counts([C("f", {"x": "Paris"})], [C("f", {"x": "paris"})]) == Counts(0, 1, 1)
    assert arg_counts([C("f", {"x": " Paris\n"})], [C("f", {"x": "Paris"})]) == Counts(1, 1, 1)
    assert arg_counts([C("f", {"x": [1, 2]})], [C("f", {"x": [2, 1]})]) == Counts(0, 1, 1)
    nested_p, nested_g = [C("f", {"x": {"k": [1, " v"]}})], [C("f", {"x": {"k": [1.0, "v"]}})]
    assert arg_counts(nested_p, nested_g) == Counts(1, 1, 1)


def test_arg_prf_extra_and_missing_keys():
    gold = [C("get_weather", {"city": "Paris", "days": 3})]
    pred = [C("get_weather", {"city": "Paris", "unit": "C"})]
    assert arg_counts(pred, gold) == Counts(1, 2, 2)
    p, r, f = arg_prf(pred, gold)
    assert (p, r, f) == (0.5, 0.5, 0.5)


def test_arg_prf_only_within_same_tool():
    gold = [C("a", {"x": 1})]
    pred = [C("b", {"x": 1})]
    assert arg_counts(pred, gold) == Counts(0, 1, 1)


def test_repeated_tool_names_align_greedily():
    gold = [C("w", {"city": "Paris", "d": 1}), C("w", {"city": "Rome", "d": 2})]
    pred = [C("w", {"city": "Rome", "d": 2}), C("w", {"city": "Paris", "d": 1})]  # swapped order
    assert align_calls(pred, gold) == [(1, 0), (0, 1)]
    assert arg_prf(pred, gold) == (1.0, 1.0, 1.0)
    assert tool_accuracy(pred, gold) and not exact_match(pred, gold)
    # three vs two of the same tool: the best-matching two are paired, the extra one only costs precision
    pred3 = [C("w", {"city": "Oslo", "d": 9}), *pred]
    assert arg_counts(pred3, gold) == Counts(4, 6, 4)
    # identical calls pair in order
    same = [C("w", {"city": "Paris"}), C("w", {"city": "Paris"})]
    assert align_calls(same, same) == [(0, 0), (1, 1)]


def test_greedy_alignment_prefers_more_matches():
    gold = [C("w", {"a": 1, "b": 1}), C("w", {"a": 2, "b": 2})]
    pred = [C("w", {"a": 1, "b": 2}), C("w", {"a": 2, "b": 2})]
    # pred1 matches gold1 fully (2) → taken first; pred0 then pairs with gold0 (1 match)
    assert align_calls(pred, gold) == [(0, 0), (1, 1)]
    assert arg_counts(pred, gold) == Counts(3, 4, 4)


def test_exact_match_and_tool_accuracy():
    gold = [C("get_weather", {"city": "Paris"}), C("add", {"a": 1, "b": 2})]
    assert exact_match([C("get_weather", {"city": " Paris"}), C("add", {"a": 1.0, "b": 2})], gold)
    assert not exact_match([C("get_weather", {"city": "Paris"}), C("add", {"a": "1", "b": 2})], gold)
    assert not exact_match(list(reversed(gold)), gold) and not tool_accuracy(list(reversed(gold)), gold)
    assert not exact_match(gold[:1], gold)
    assert not exact_match([C("get_weather", {"city": "Paris", "days": 1}), gold[1]], gold)
    wrong_args = [C("get_weather", {"city": "Rome"}), C("add", {})]
    assert tool_accuracy(wrong_args, gold) and not exact_match(wrong_args, gold)


# ----- raw texts ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("text,ok", [
    ('{"city": "Paris"}', True), ('  {}\n', True), ('{"a": [1, {"b": null}]}', True),
    ("{'city': 'Paris'}", False), ('{"a": NaN}', False), ('{"a": Infinity}', False), ('[1, 2]', False),
    ('"x"', False), ('{"a": 1', False), ('', False), ('{"a": 1} extra', False),
])
def test_json_valid(text, ok):
    assert json_valid(text) is ok


def test_schema_valid():
    assert schema_valid({"city": "Paris"}, WEATHER)
    assert schema_valid('{"city": "Paris", "days": 2}', WEATHER)
    assert schema_valid({"city": "Paris", "days": 2.0}, WEATHER)  # JSON number 2.0 is an integer
    assert not schema_valid({"city": "Paris", "days": "2"}, WEATHER)
    assert not schema_valid({"city": "Paris", "days": True}, WEATHER)
    assert not schema_valid({}, WEATHER)
    assert not schema_valid({"city": "Paris", "unit": "C"}, WEATHER)  # undeclared argument
    assert schema_valid({"city": "Paris", "unit": "C"}, WEATHER, allow_extra=True)
    assert not schema_valid("{'city': 'Paris'}", WEATHER)
    assert schema_valid({"a": 1, "b": 2.5}, ADD["parameters"])  # a bare parameters schema works too
    errs = schema_errors({"city": 3}, WEATHER)
    assert len(errs) == 1 and errs[0].startswith("city:")


# ----- checker ------------------------------------------------------------------------------------------
def test_check_calls_valid():
    gold = [C("get_weather", {"city": "Paris"}), C("add", {"a": 1, "b": 2})]
    res = check_calls([C("get_weather", {"city": "Paris "}), C("add", {"a": 1.0, "b": 2})], gold, TOOLS)
    assert res == {"valid": True, "error": [], "error_type": ""}


@pytest.mark.parametrize("pred,etype", [
    ([C("get_weather", {"city": "Paris"})], "calls:wrong_count"),
    ([C("add", {"a": 1, "b": 2}), C("get_weather", {"city": "Paris"})], "calls:wrong_order"),
    ([C("get_weather", {"city": "Paris"}), C("get_weather", {"city": "Paris"})], "calls:wrong_tool"),
    ([C("get_weather", {"city": "Paris"}), C("add", {"a": 1, "b": "2"})], "schema:invalid"),
    ([C("get_weather", {}), C("add", {"a": 1, "b": 2})], "schema:invalid"),
    ([C("get_weather", {"city": "Rome"}), C("add", {"a": 1, "b": 2})], "args:wrong_value"),
    ([C("get_weather", {"city": "Paris", "days": 1}), C("add", {"a": 1, "b": 2})], "args:unexpected"),
])
def test_check_calls_errors(pred, etype):
    gold = [C("get_weather", {"city": "Paris"}), C("add", {"a": 1, "b": 2})]
    res = check_calls(pred, gold, TOOLS)
    assert res["valid"] is False and res["error_type"] == etype and res["error"]
    assert all(isinstance(e, str) for e in res["error"])


def test_check_calls_without_tools_and_unordered():
    gold = [C("f", {"x": 1}), C("g", {"y": "a"})]
    assert check_calls([C("f", {"x": "1"}), C("g", {"y": "a"})], gold)["error_type"] == "args:wrong_type"
    assert check_calls([C("f", {}), C("g", {"y": "a"})], gold)["error_type"] == "args:missing"
    assert check_calls([C("h", {}), C("g", {"y": "a"})], gold, [{"name": "h", "parameters": {}}, *TOOLS])[
        "error_type"] == "calls:wrong_tool"
    swapped = [C("g", {"y": "a"}), C("f", {"x": 1})]
    assert check_calls(swapped, gold)["error_type"] == "calls:wrong_order"
    assert check_calls(swapped, gold, ordered=False)["valid"]
    res = check_calls([C("zzz", {})], [C("zzz", {})], TOOLS)
    assert res["error_type"] == "tool:unknown"


# ----- aggregate ----------------------------------------------------------------------------------------
def _examples():
    g1 = [C("get_weather", {"city": "Paris"})]
    g2 = [C("get_weather", {"city": "Paris", "days": 2}), C("add", {"a": 1, "b": 2})]
    return [
        Example("e1", g1, [C("get_weather", {"city": "Paris"})], raw_args=['{"city": "Paris"}'], tools=TOOLS),
        Example("e2", g1, [C("add", {"a": 1, "b": 1})], raw_args=["{'a': 1, 'b': 1}"], tools=TOOLS),
        Example("e3", g2, [C("get_weather", {"city": "Paris", "days": 2}), C("add", {"a": 1, "b": 3})],
                raw_args=['{"city": "Paris", "days": 2}', '{"a": 1, "b": 3}'], tools=TOOLS),
        Example("e4", g2, [], raw_args=[], tools=TOOLS),
    ]


def test_aggregate_overall_and_buckets():
    agg = aggregate(_examples())
    o = agg["overall"]
    assert o["n"] == 4 and list(agg["by_n_calls"]) == ["1", "2"]
    # tools: tp = 1 + 0 + 2 + 0 = 3, n_pred = 1 + 1 + 2 + 0 = 4, n_gold = 1 + 1 + 2 + 2 = 6 (micro)
    assert math.isclose(o["tool_precision"], 3 / 4) and math.isclose(o["tool_recall"], 3 / 6)
    assert math.isclose(o["tool_f1"], 2 * 0.75 * 0.5 / 1.25)
    # args: tp = 1 + 0 + 3 + 0 = 4, n_pred = 1 + 2 + 4 + 0 = 7, n_gold = 1 + 1 + 4 + 4 = 10
    assert math.isclose(o["arg_precision"], 4 / 7) and math.isclose(o["arg_recall"], 4 / 10)
    assert o["exact_match"] == 0.25 and o["tool_accuracy"] == 0.5
    assert o["json_valid"] == 0.75  # e2's raw text is a Python dict; e4 has none (vacuously valid)
    assert o["schema_valid"] == 0.75
    b1, b2 = agg["by_n_calls"]["1"], agg["by_n_calls"]["2"]
    assert b1["n"] == 2 and b1["exact_match"] == 0.5 and b1["tool_f1"] == 0.5
    assert b2["n"] == 2 and b2["exact_match"] == 0.0 and b2["tool_accuracy"] == 0.5
    assert math.isclose(b2["tool_precision"], 1.0) and math.isclose(b2["tool_recall"], 0.5)
    for m in (o, b1, b2):
        assert all(0.0 <= v <= 1.0 for k, v in m.items() if k != "n")


def test_aggregate_rates_unmeasured_and_empty():
    ex = [Example("a", [C("f", {})], [C("f", {})])]
    o = aggregate(ex)["overall"]
    assert o["json_valid"] is None and o["schema_valid"] is None and o["exact_match"] == 1.0
    empty = aggregate([])
    assert empty["overall"]["n"] == 0 and empty["overall"]["tool_f1"] is None and empty["by_n_calls"] == {}


def test_aggregate_bucket_uses_n_calls_and_schema_uses_raw_text():
    ex = Example("a", [C("get_weather", {"city": "Paris"})], [C("get_weather", {"city": "Paris"})],
                 raw_args=['{"city": "Paris", "x": 1}'], n_calls=5, tools=TOOLS)
    agg = aggregate([ex])
    assert list(agg["by_n_calls"]) == ["5"] and agg["overall"]["schema_valid"] == 0.0
    assert agg["overall"]["json_valid"] == 1.0


def test_example_checks_raw_args_length_and_from_trace():
    with pytest.raises(ValueError):
        Example("x", [], [C("f", {})], raw_args=[])
    tr = parse_record({"id": "t1", "query": "q", "tools": TOOLS,
                       "answers": [{"name": "add", "arguments": {"a": 1, "b": 2}}]})
    ex = Example.from_trace(tr, [C("add", {"a": 1, "b": 2})])
    assert ex.id == "t1" and ex.n_calls == 1 and ex.tools == TOOLS
    assert aggregate([ex])["overall"]["schema_valid"] == 1.0


def test_no_torch_import():
    code = "import sys, evals.metrics, evals.datasets; assert 'torch' not in sys.modules, 'torch imported'"
    repo = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=repo)
