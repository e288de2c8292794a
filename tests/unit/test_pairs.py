"""From/to parameter pairs never take one value twice (ground_distinct)."""

from __future__ import annotations

import json

from tokmem_agent.decoding.constraint import SchemaConstraint
from tokmem_agent.decoding.pairs import distinct_pairs, distinct_schema

UNITS = ["km", "mi", "celsius", "fahrenheit"]
CONVERT = {"type": "object", "required": ["value", "from_unit", "to_unit"], "properties": {
    "value": {"type": "number"}, "from_unit": {"type": "string", "enum": UNITS},
    "to_unit": {"type": "string", "enum": UNITS}}}


def test_pairs_by_name():
    names = dict.fromkeys(["from_unit", "to_unit", "start", "end", "origin", "destination", "fromCity",
                           "toCity", "source_lang", "target_lang", "start_date", "end_time", "value"])
    assert distinct_pairs(names) == [("from_unit", "to_unit"), ("start", "end"), ("origin", "destination"),
                                     ("fromCity", "toCity"), ("source_lang", "target_lang")]
    assert distinct_pairs(dict.fromkeys(["from_unit", "to_currency"])) == []  # other words differ


def _accepts(constraint, tok, schema, args) -> bool:
    m = constraint.matcher(schema)
    for tid in tok.encode(json.dumps(args, separators=(",", ":")), add_special_tokens=False):
        if not m.allowed_mask()[tid]:
            return False
        m.advance(tid)
    return m.is_done()


def test_the_grammar_keeps_a_pair_apart(smollm2_tokenizer):
    tok = smollm2_tokenizer
    schema = distinct_schema(CONVERT)
    assert len(schema["anyOf"]) == len(UNITS)
    c = SchemaConstraint(tok, len(tok))
    assert _accepts(c, tok, schema, {"value": 26, "from_unit": "fahrenheit", "to_unit": "celsius"})
    assert not _accepts(c, tok, schema, {"value": 26, "from_unit": "celsius", "to_unit": "celsius"})
    assert _accepts(c, tok, CONVERT, {"value": 26, "from_unit": "celsius", "to_unit": "celsius"})
    days = {"type": "object", "required": ["start", "end"], "properties": {
        "start": {"type": "string", "enum": ["today", "2025-09-20"]},
        "end": {"type": "string", "enum": ["today", "2025-09-20"]}}}
    assert not _accepts(c, tok, distinct_schema(days), {"start": "2025-09-20", "end": "2025-09-20"})
    assert _accepts(c, tok, distinct_schema(days), {"start": "today", "end": "2025-09-20"})


def test_free_members_and_combinators_are_left_alone():
    free = {"type": "object", "properties": {"start": {"type": "string"}, "end": {"type": "string"}}}
    assert distinct_schema(free) is free
    one = {"type": "object", "properties": {"start": {"enum": ["a"]}, "end": {"enum": ["a"]}}}
    assert distinct_schema(one) is one  # no two values to keep apart
    assert distinct_schema({**CONVERT, "anyOf": [{}]})["anyOf"] == [{}]
    many = [f"place {i}" for i in range(100)]
    places = {"type": "object", "properties": {"origin": {"enum": many}, "destination": {"enum": many}}}
    assert distinct_schema(places) is places  # too many values: left alone


def test_a_pair_of_dates_runs_forward(smollm2_tokenizer):
    import datetime as dt

    tok = smollm2_tokenizer
    c = SchemaConstraint(tok, len(tok))
    days = {"type": "object", "required": ["start", "end"], "properties": {
        "start": {"type": "string", "enum": ["today", "2025-06-02", "2025-09-20", "2025-01-15"]},
        "end": {"type": "string", "enum": ["today", "2025-06-02", "2025-09-20", "2025-01-15"]}}}
    ordered = distinct_schema(days, dt.date(2025, 6, 2))
    assert _accepts(c, tok, ordered, {"start": "today", "end": "2025-09-20"})
    assert not _accepts(c, tok, ordered, {"start": "2025-09-20", "end": "today"})  # backwards
    assert not _accepts(c, tok, ordered, {"start": "today", "end": "2025-06-02"})  # the same day
    assert _accepts(c, tok, ordered, {"start": "2025-01-15", "end": "today"})
    # without a today, "today" is not ordered (other values still are)
    loose = distinct_schema(days)
    assert _accepts(c, tok, loose, {"start": "2025-09-20", "end": "today"})
    assert not _accepts(c, tok, loose, {"start": "2025-09-20", "end": "2025-01-15"})
