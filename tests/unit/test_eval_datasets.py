"""evals.datasets: APIGen/shared loaders with file:line errors, filters, and BFCL (when installed)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from evals import datasets as ds
from evals.datasets import (
    DatasetNotFoundError,
    MissingDependencyError,
    bfcl_schema,
    cap_per_tool,
    filter_by_tools,
    load_apigen,
    top_tools,
)
from tokmem_agent.errors import DataFormatError
from tokmem_agent.traces import Call, Trace

HAS_BFCL = importlib.util.find_spec("bfcl_eval") is not None
# Both are provided by `make test` (the Makefile installs bfcl-eval; CI has ../shared): missing them is a
# failure, not a skip.
needs_shared = pytest.mark.usefixtures("shared_data")
needs_bfcl = pytest.mark.usefixtures("bfcl_installed")


@pytest.fixture()
def bfcl_installed():
    if not HAS_BFCL:
        pytest.fail("bfcl-eval not installed (make install-dev runs pip install --no-deps bfcl-eval)")


TOOL_A = {"name": "a", "description": "",
          "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}}}
TOOL_B = {"name": "b", "description": "", "parameters": {"type": "object", "properties": {}}}


def _rec(i, names=("a",)):
    return {"id": f"r{i}", "query": f"q{i}", "tools": [TOOL_A, TOOL_B],
            "answers": [{"name": n, "arguments": {"x": i} if n == "a" else {}} for n in names]}


def _write(path, lines):
    path.write_text("".join((ln if isinstance(ln, str) else json.dumps(ln)) + "\n" for ln in lines))
    return path


def _trace(i, names):
    return Trace(id=f"t{i}", messages=[{"role": "user", "content": "q"}], calls=[Call(n, {}) for n in names])


# ----- load_apigen --------------------------------------------------------------------------------------
def test_load_apigen_ours_and_xlam_shapes(tmp_path):
    xlam_rec = {"id": 7, "query": "q", "tools": json.dumps([{"name": "a", "description": "",
                                                             "parameters": {"x": {"type": "int"}}}]),
                "answers": json.dumps([{"name": "a", "arguments": {"x": 1}}])}
    ours = dict(_rec(0, ("a", "b")), n_calls=2, dialogue_id="d1", ungrounded_args=[])
    f = _write(tmp_path / "d.jsonl", [ours, "", xlam_rec])
    traces = load_apigen(f)
    assert [t.id for t in traces] == ["r0", "7"]
    assert traces[0].tool_names == ["a", "b"]
    assert traces[0].extra == {"n_calls": 2, "dialogue_id": "d1", "ungrounded_args": []}
    assert traces[0].to_record()["dialogue_id"] == "d1"
    assert traces[1].tools[0]["parameters"]["properties"]["x"] == {"type": "integer"}
    assert len(load_apigen(f, limit=1)) == 1


@pytest.mark.parametrize("bad,field", [
    ('{"id": "x", "query": "q", "answers": [', None),  # invalid JSON
    ({"id": "x", "query": "q", "tools": [TOOL_A], "answers": [{"name": "zzz", "arguments": {}}]},
     "answers[0].name"),
    ({"id": "x", "query": "q", "answers": [{"name": "a", "arguments": "[1]"}]}, "answers[0].arguments"),
    ({"id": "x", "answers": []}, "query"),
    (dict(_rec(9), n_calls=3), "n_calls"),
])
def test_malformed_line_reports_file_and_line(tmp_path, bad, field):
    f = _write(tmp_path / "bad.jsonl", [_rec(0), _rec(1), bad, _rec(3)])
    with pytest.raises(DataFormatError) as ei:
        load_apigen(f)
    err = ei.value
    assert err.path == str(f) and err.line == 3 and err.field == field
    assert str(err).startswith(f"{f}:3: ")


def test_missing_file(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="no such dataset file"):
        load_apigen(tmp_path / "nope.jsonl")


# ----- shared data --------------------------------------------------------------------------------------
def test_shared_dir_env(monkeypatch, tmp_path):
    (tmp_path / "data" / "sgd").mkdir(parents=True)
    _write(tmp_path / "data" / "sgd" / "dev.jsonl", [_rec(0), _rec(1, ("a", "b"))])
    monkeypatch.setenv(ds.SHARED_ENV, str(tmp_path))
    assert ds.shared_dir() == tmp_path
    assert [t.id for t in ds.sgd("dev")] == ["r0", "r1"]
    with pytest.raises(DatasetNotFoundError, match=r"split 'train' not found.*available: \['dev'\]"):
        ds.sgd("train")
    monkeypatch.setenv(ds.SHARED_ENV, str(tmp_path / "absent"))
    with pytest.raises(DatasetNotFoundError, match="TOKMEM_SHARED_DIR"):
        ds.sgd("dev")


@needs_shared
def test_sgd_dev_loads():
    traces = ds.sgd("dev", limit=50)
    assert len(traces) == 50
    t = traces[0]
    assert t.id.startswith("sgd-dev") and t.calls and t.tools and t.messages[0]["role"] == "user"
    assert t.extra["n_calls"] == len(t.calls) and "ungrounded_args" in t.extra
    assert {c.name for c in t.calls} <= {d["name"] for d in t.tools}


@needs_shared
def test_xlam_test_loads():
    traces = ds.xlam("test", limit=20)
    assert len(traces) == 20 and all(len(t.calls) >= 3 for t in traces)


# ----- filters ------------------------------------------------------------------------------------------
def test_filter_by_tools_and_top_tools():
    traces = [_trace(0, ["a"]), _trace(1, ["a", "b"]), _trace(2, ["c"]), _trace(3, ["b", "b"]), _trace(4, [])]
    assert [t.id for t in filter_by_tools(traces, {"a", "b"})] == ["t0", "t1", "t3", "t4"]
    assert [t.id for t in filter_by_tools(traces, ["a"])] == ["t0", "t4"]
    assert top_tools(traces, 2) == ["b", "a"]  # b: 3 calls, a: 2, c: 1
    assert top_tools(traces, 10) == ["b", "a", "c"]
    assert top_tools([_trace(0, ["y"]), _trace(1, ["x"])], 1) == ["x"]  # ties by name


def test_cap_per_tool():
    traces = [_trace(i, ["a"]) for i in range(20)] + [_trace(100 + i, ["a", "b"]) for i in range(10)] \
        + [_trace(200 + i, ["b"]) for i in range(5)] + [_trace(300, [])]
    kept = cap_per_tool(traces, 6, seed=1)
    per_tool = Counter(name for t in kept for name in {c.name for c in t.calls})
    assert max(per_tool.values()) <= 6 and per_tool["a"] == 6
    assert any(len(t.calls) > 1 for t in kept) and any(len(t.calls) == 1 for t in kept)
    assert all(t.calls for t in kept)
    # input order kept; deterministic; independent of the input order
    idx = {t.id: i for i, t in enumerate(traces)}
    assert [idx[t.id] for t in kept] == sorted(idx[t.id] for t in kept)
    assert [t.id for t in cap_per_tool(traces, 6, seed=1)] == [t.id for t in kept]
    assert {t.id for t in cap_per_tool(list(reversed(traces)), 6, seed=1)} == {t.id for t in kept}
    assert {t.id for t in cap_per_tool(traces, 6, seed=2)} != {t.id for t in kept}
    assert cap_per_tool(traces, 0) == []
    assert len(cap_per_tool(traces, 1000)) == len(traces) - 1


@needs_shared
def test_cap_per_tool_on_sgd():
    traces = ds.sgd("dev", limit=400)
    top = top_tools(traces, 3)
    sub = cap_per_tool(filter_by_tools(traces, top), 20, seed=0)
    per_tool = Counter(n for t in sub for n in {c.name for c in t.calls})
    assert set(per_tool) <= set(top) and max(per_tool.values()) <= 20


# ----- BFCL ---------------------------------------------------------------------------------------------
def test_bfcl_schema_conversion():
    doc = {"type": "dict", "required": ["a"], "properties": {
        "a": {"type": "float", "optional": False}, "b": {"type": "tuple", "items": {"type": "integer"}},
        "c": {"type": "dict", "properties": {"d": {"type": "any"}}}, "e": {"type": "HashMap"},
        "f": {"type": "array", "items": {"type": "dict", "properties": {"g": {"type": "boolean"}}}},
        "h": {"type": "long"}, "i": {"type": "String", "enum": ["x"]}}}
    s = bfcl_schema(doc)
    assert s["type"] == "object" and s["required"] == ["a"]
    p = s["properties"]
    assert p["a"] == {"type": "number"} and p["b"] == {"type": "array", "items": {"type": "integer"}}
    assert p["c"] == {"type": "object", "properties": {"d": {"type": "string"}}}
    assert p["e"] == {"type": "object", "properties": {}}
    assert p["f"]["items"] == {"type": "object", "properties": {"g": {"type": "boolean"}}}
    assert p["h"] == {"type": "integer"} and p["i"] == {"type": "string", "enum": ["x"]}


def test_bfcl_gold_values():
    funcs = [{"name": "f", "parameters": {"type": "dict", "required": ["r"], "properties": {
        "r": {"type": "integer"}, "o": {"type": "string"}, "u": {"type": "string"},
        "d": {"type": "dict", "properties": {"k": {"type": "string"}, "m": {"type": "integer"}}},
        "l": {"type": "array", "items": {"type": "dict"}},
        "n": {"type": "array", "items": {"type": "integer"}}}}}]
    gt = [{"f": {"r": ["", 3, 4], "o": ["", "x"], "u": ["units", ""], "d": [{"k": ["v", "w"], "m": ["", 1]}],
                 "l": [[{"k": ["a"]}, {"k": ["b", "c"]}]], "n": [[1, 2], [2, 1]]}}]
    assert ds._gold_calls(gt, funcs) == [{"name": "f", "arguments": {
        "r": 3, "u": "units", "d": {"k": "v"}, "l": [{"k": "a"}, {"k": "b"}], "n": [1, 2]}}]


def test_bfcl_missing_package(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    monkeypatch.delenv("BFCL_DATA_DIR", raising=False)
    with pytest.raises(MissingDependencyError, match="pip install"):
        ds.bfcl("simple")
    with pytest.raises(ValueError, match="unsupported BFCL category"):
        ds.bfcl("multi_turn_base")


@needs_bfcl
def test_bfcl_simple_loads():
    traces = ds.bfcl("simple", limit=5)
    t = traces[0]
    assert len(traces) == 5 and t.id == "simple_python_0" and t.source == "bfcl:simple_python"
    assert t.messages[0]["role"] == "user" and "triangle" in t.messages[0]["content"]
    assert t.tools[0]["parameters"]["type"] == "object"
    assert t.calls == [Call("calculate_triangle_area", {"base": 10, "height": 5, "unit": "units"})]
    assert t.extra["bfcl_possible_answer"] == [
        {"calculate_triangle_area": {"base": [10], "height": [5], "unit": ["units", ""]}}]
    assert t.extra["bfcl_functions"][0]["parameters"]["type"] == "dict"
    assert traces[2].calls[0].arguments == {"x": 4, "y": 5}  # z: ["", 0] → omitted


@needs_bfcl
@pytest.mark.parametrize("category",
                         ["multiple", "parallel", "parallel_multiple", "live_simple", "irrelevance"])
def test_bfcl_other_categories(category):
    traces = ds.bfcl(category, limit=10)
    assert len(traces) == 10 and all(t.id.startswith(category) for t in traces)
    if category == "irrelevance":
        assert all(t.calls == [] and t.extra["bfcl_possible_answer"] is None for t in traces)
        assert not traces[0].extra["bfcl_expect_call"]
    else:
        assert all(t.calls for t in traces)
        assert all(len(t.calls) == len(t.extra["bfcl_possible_answer"]) for t in traces)
    if category.startswith("parallel"):
        assert any(len(t.calls) > 1 for t in traces)


@needs_bfcl
def test_bfcl_ast_check_real_simple_example():
    t = ds.bfcl("simple", limit=1)[0]
    fdoc, pa = t.extra["bfcl_functions"], t.extra["bfcl_possible_answer"]
    ok = ds.bfcl_ast_check(fdoc, t.calls, pa, "simple")
    assert ok == {"valid": True, "error": [], "error_type": ""}
    # BFCL-native output format, optional "unit" omitted ("" is acceptable)
    native = [{"calculate_triangle_area": {"base": 10, "height": 5}}]
    assert ds.bfcl_ast_check(fdoc, native, pa, "simple")["valid"]
    bad_type = ds.bfcl_ast_check(fdoc, [Call("calculate_triangle_area", {"base": 10, "height": "5"})], pa,
                                 "simple")
    assert not bad_type["valid"] and bad_type["error_type"] == "type_error:simple"
    wrong = ds.bfcl_check_trace(t, [Call("calculate_triangle_area", {"base": 10, "height": 6})])
    assert not wrong["valid"] and wrong["error_type"] == "value_error:others"
    assert ds.bfcl_check_trace(t, [])["error_type"] == "simple_function_checker:wrong_count"
    # BFCL's checker is more lenient on strings than ours (case/punctuation folded)
    assert ds.bfcl_check_trace(t, [Call("calculate_triangle_area",
                                         {"base": 10, "height": 5, "unit": "UNITS"})])["valid"]


@needs_bfcl
def test_bfcl_ast_check_parallel_and_irrelevance():
    t = ds.bfcl("parallel", limit=1)[0]
    assert ds.bfcl_check_trace(t, list(reversed(t.calls)))["valid"]  # BFCL ignores parallel order
    irr = ds.bfcl("irrelevance", limit=1)[0]
    assert ds.bfcl_check_trace(irr, [])["valid"]
    assert not ds.bfcl_check_trace(irr, [Call(irr.tools[0]["name"], {})])["valid"]


@needs_bfcl
def test_bfcl_checker_does_not_import_api_clients():
    code = ("import sys; from evals import datasets as ds; ds._load_ast_checker(); "
            "assert 'bfcl_eval.constants.model_config' not in sys.modules; "
            "bad = [m for m in sys.modules if m.startswith(('openai', 'anthropic', 'torch'))]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


def test_only_tools_takes_names_or_a_tools_file(tmp_path):
    from evals.cli import _tool_names
    from tokmem_agent.errors import ConfigError

    assert _tool_names("a_1, b_2,") == ["a_1", "b_2"]
    f = tmp_path / "tools.json"
    f.write_text('[{"name": "a_1", "parameters": {"type": "object"}}, "b_2"]')
    assert _tool_names(str(f)) == ["a_1", "b_2"]
    f.write_text('{"name": "a_1"}')
    with pytest.raises(ConfigError, match="JSON list"):
        _tool_names(str(f))
    with pytest.raises(ConfigError, match="not a readable JSON"):
        _tool_names(str(tmp_path / "missing.json"))
    with pytest.raises(ConfigError, match="no tool names"):
        _tool_names(" , ")
