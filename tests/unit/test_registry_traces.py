"""Tool registry, schema checks, argument validation and the trace reader (no torch needed)."""

from __future__ import annotations

import json
import warnings
from typing import Literal

import pydantic
import pytest

from tokmem_agent import DataFormatError, SchemaError, Tool, ToolNotFoundError, ToolRegistry, load_traces
from tokmem_agent.traces import ConflictingToolsWarning, Trace, tools_in, write_jsonl, xlam_type_to_schema
from tokmem_agent.validation import check_arguments


def convert(amount: float, to: Literal["EUR", "USD"] = "EUR", note: str | None = None) -> float:
    """Convert money.

    Args:
        amount: how much
        to: target currency,
            one of two.
        note: optional note
    """
    return amount


class Search(pydantic.BaseModel):
    """Search the web."""

    query: str = pydantic.Field(description="what to look for")
    k: int = 5


def test_tool_from_function_schema():
    t = Tool.from_function(convert)
    assert t.name == "convert" and t.description == "Convert money."
    props = t.parameters["properties"]
    assert props["amount"] == {"type": "number", "description": "how much"}
    assert props["to"]["enum"] == ["EUR", "USD"] and props["to"]["description"] == "target currency, one of two."
    assert t.parameters["required"] == ["amount"]
    assert "title" not in json.dumps(t.parameters)


def test_tool_from_pydantic_and_dicts():
    t = Tool.from_pydantic(Search)
    assert t.name == "Search" and t.parameters["required"] == ["query"]
    d = {"type": "function", "function": {"name": "f", "description": "d",
                                          "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}}}}
    assert Tool.coerce(d).name == "f"
    assert Tool.coerce(t) is t


@pytest.mark.parametrize("params,match", [
    ({"type": "array"}, "type 'object'"),
    ({"type": "object", "properties": {"x": {"type": "nonsense"}}}, "invalid JSON schema at properties/x/type"),
    ({"type": "object", "properties": {}, "required": ["y"]}, r"required names \['y'\]"),
    ("not a dict", "must be a JSON schema object"),
])
def test_schema_checked_at_registration(params, match):
    with pytest.raises(SchemaError, match=match):
        Tool(name="bad", parameters=params)


def test_registry_conflicts_and_lookup():
    reg = ToolRegistry([convert])
    reg.register(convert)  # same schema: fine
    with pytest.raises(SchemaError, match="different schema"):
        reg.register({"name": "convert", "parameters": {"type": "object", "properties": {}}})
    with pytest.raises(ToolNotFoundError, match="unknown tool 'nope'"):
        reg.get("nope")
    with pytest.raises(SchemaError, match="invalid tool name"):
        Tool(name="has space")


def test_schema_hash_ignores_description():
    a = Tool(name="t", description="one", parameters={"type": "object", "properties": {"x": {"type": "string"}}})
    b = Tool(name="t", description="two", parameters={"type": "object", "properties": {"x": {"type": "string"}}})
    c = Tool(name="t", parameters={"type": "object", "properties": {"x": {"type": "integer"}}})
    assert a.hash == b.hash != c.hash


def test_check_arguments():
    schema = Tool.from_function(convert).parameters
    assert check_arguments('{"amount": 3}', schema).ok
    assert check_arguments('{"amount": "3"}', schema).kind == "schema"
    assert check_arguments('{"amount": 3, "zzz": 1}', schema).kind == "schema"
    assert check_arguments('{"amount": 3', schema).kind == "invalid_json"
    assert check_arguments("[1]", schema).kind == "invalid_json"
    assert check_arguments("  ", schema).kind == "empty"
    assert "amount" in check_arguments('{"to": "EUR"}', schema).error


def test_traces_both_shapes(tmp_path):
    ours = {"id": "a", "query": "q", "tools": [Tool.from_function(convert).to_dict()],
            "answers": [{"name": "convert", "arguments": {"amount": 1}}]}
    xlam = {"id": 7, "query": "q2",
            "tools": json.dumps([{"name": "f", "description": "d",
                                  "parameters": {"n": {"type": "int", "description": "N"},
                                                 "s": {"type": "List[str], optional", "description": "S"}}}]),
            "answers": json.dumps([{"name": "f", "arguments": {"n": 2}}])}
    path = tmp_path / "t.jsonl"
    write_jsonl([ours, xlam], path)
    a, b = load_traces(path)
    assert a.calls[0].arguments == {"amount": 1} and a.messages == [{"role": "user", "content": "q"}]
    assert b.id == "7" and b.tools[0]["parameters"]["properties"]["s"]["type"] == "array"
    assert b.tools[0]["parameters"]["required"] == ["n"]


@pytest.mark.parametrize("line,field", [
    ('{"query": "q", "answers": "not json"}', "answers"),
    ('{"query": "q", "answers": [{"arguments": {}}]}', "answers[0].name"),
    ('{"query": "q", "tools": [{"name": "f"}], "answers": [{"name": "g"}]}', "answers[0].name"),
    ('{"answers": []}', "query"),
    ('{"query": "q", "answers": [], "messages": [{"role": "robot", "content": "x"}]}', "messages[0].role"),
    ('{"query": "q", "answers": [{"name": "f"}, {"name": "f"}], "between": []}', "between"),
])
def test_bad_records_name_file_line_and_field(tmp_path, line, field):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"query": "ok", "answers": []}\n' + line + "\n")
    with pytest.raises(DataFormatError) as err:
        load_traces(path)
    assert err.value.line == 2 and err.value.field == field and str(path) in str(err.value)


def test_bad_json_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"query": "ok", "answers": []}\n\n{oops\n')
    with pytest.raises(DataFormatError, match=r"bad.jsonl:3: invalid JSON"):
        load_traces(path)


def test_missing_file():
    with pytest.raises(DataFormatError, match="no such file"):
        load_traces("/nonexistent/traces.jsonl")


def test_xlam_types():
    assert xlam_type_to_schema("int, optional") == ({"type": "integer"}, True)
    assert xlam_type_to_schema("List[int]") == ({"type": "array", "items": {"type": "integer"}}, False)
    assert xlam_type_to_schema("Dict[str, Any]")[0] == {"type": "object"}
    assert xlam_type_to_schema("Union[int, float]")[0] == {"type": "number"}
    assert xlam_type_to_schema("Callable[[int], int]")[0] == {"type": "string"}


def test_shared_sgd_reads(shared_data):
    traces = load_traces(shared_data / "sgd" / "dev.jsonl", limit=20)
    assert len(traces) == 20 and all(t.calls for t in traces)


# ----- validation on load (issue 14) ---------------------------------------------------------------------------
TWO_INTS = {"name": "add", "description": "", "parameters": {
    "type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"],
    "additionalProperties": False}}


def _load_one(tmp_path, rec):
    p = tmp_path / "t.jsonl"
    p.write_text(json.dumps({"query": "q", "tools": [TWO_INTS], **rec}) + "\n")
    return load_traces(p)


def test_arguments_that_violate_the_schema_name_file_line_and_path(tmp_path):
    with pytest.raises(DataFormatError, match=r"t.jsonl:1: arguments violate the schema of 'add': 'five' is not of "
                                              r"type 'integer' \(field 'answers\[0\].arguments.a'\)"):
        _load_one(tmp_path, {"answers": [{"name": "add", "arguments": {"a": "five", "b": 1}}]})
    with pytest.raises(DataFormatError, match=r"'b' is a required property \(field 'answers\[1\].arguments'\)"):
        _load_one(tmp_path, {"answers": [{"name": "add", "arguments": {"a": 1, "b": 2}},
                                         {"name": "add", "arguments": {"a": 1}}]})
    assert _load_one(tmp_path, {"answers": [{"name": "add", "arguments": {"a": 1, "b": 2}}]})[0].calls


def test_an_invalid_json_schema_is_an_error_not_an_xlam_guess(tmp_path):
    bad = {"name": "greet", "parameters": {"type": "objekt", "properties": {"who": {"type": "string"}}}}
    p = tmp_path / "t.jsonl"
    p.write_text(json.dumps({"query": "q", "tools": [bad], "answers": [{"name": "greet", "arguments": {}}]}) + "\n")
    with pytest.raises(DataFormatError, match=r"t.jsonl:1: .*type 'object', got 'objekt' \(field 'tools\[0\].parameters'\)"):
        load_traces(p)


def test_conflicting_definitions_are_reported():
    other = {**TWO_INTS, "parameters": {"type": "object", "properties": {"x": {"type": "number"}}}}
    ts = [Trace(id="r1", messages=[{"role": "user", "content": "q"}], calls=[], tools=[TWO_INTS]),
          Trace(id="r2", messages=[{"role": "user", "content": "q"}], calls=[], tools=[other]),
          Trace(id="r3", messages=[{"role": "user", "content": "q"}], calls=[], tools=[{**TWO_INTS, "description": "x"}])]
    with pytest.warns(ConflictingToolsWarning, match=r"1 tool name\(s\) .*'add' \(records 'r1' and 'r2'\)"):
        defs = tools_in(ts)
    assert defs["add"] is TWO_INTS
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tools_in([ts[0], ts[2]])  # only the description differs: no warning


def test_skipped_collects_bad_records_and_keeps_the_good_ones(tmp_path):
    p = tmp_path / "mixed.jsonl"
    good = {"query": "q", "tools": [TWO_INTS], "answers": [{"name": "add", "arguments": {"a": 1, "b": 2}}]}
    bad_args = {**good, "answers": [{"name": "add", "arguments": {"a": "five", "b": 1}}]}
    p.write_text("\n".join([json.dumps(good), "{not json", json.dumps(bad_args), json.dumps(good), ""]))
    with pytest.raises(DataFormatError, match="mixed.jsonl:2: invalid JSON"):
        load_traces(p)
    skipped: list = []
    traces = load_traces(p, skipped=skipped)
    assert len(traces) == 2 and [t.calls[0].arguments for t in traces] == [{"a": 1, "b": 2}] * 2
    assert [e.line for e in skipped] == [2, 3] and "violate the schema" in str(skipped[1])
    skipped = []
    assert len(load_traces([good, bad_args, good], skipped=skipped)) == 2 and skipped[0].line == 2
