"""Operations the user's words ask for, enforced on an arithmetic expression argument (decoding/operators.py)."""

from __future__ import annotations

import json

import pytest

from tokmem_agent import ControllerConfig, TokMem
from tokmem_agent.decoding.constraint import SchemaConstraint
from tokmem_agent.decoding.controller import Controller
from tokmem_agent.decoding.ground_args import ArgEvidence, ground_schema
from tokmem_agent.decoding.grounding import grounding_for
from tokmem_agent.decoding.operators import (
    expression_operators,
    is_expression_param,
    needed_operators,
    operator_pattern,
    stated_operators,
)
from tokmem_agent.model.loader import LoadedModel, tokenizer_fingerprint


@pytest.mark.parametrize("said, ops", [
    ("Turn 5 gallons into litres and then split it between 4 containers", {"/"}),
    ("convert 10 km to miles, then divide 52 by that", {"/"}),
    ("how much does each of us pay if we share it between 3 roommates", {"/"}),
    ("what's the average of 4, 8 and 9", {"/"}),
    ("and how many weeks is that?", {"/"}),
    ("how many days does that last if I spend 5000 yen a day?", {"/"}),
    ("then tell me how many 1,500 yen lunches that buys", {"/"}),
    ("what's the remainder when 646 is divided by 21?", {"%", "/"}),
    ("what's left over when you divide 198 by 36", {"%", "/"}),
    ("convert it and tell me how much more it is than my old rent", {"-"}),
    ("how many degrees warmer is the pool than the sea", {"-"}),
    ("how much cheaper is it than the UK price", {"-"}),
    ("what's the difference between them", {"-"}),
    ("I had 200, how much is left after that", {"-"}),
    ("How much is 12 squared plus 5 squared?", {"*", "+"}),
    ("multiply that out", {"*"}),
    ("what is 2 to the power of 20", {"*"}),
    ("add those up and give me the total in miles", {"+"}),
    ("the rent goes up by 4.5% from next month, what will it be", {"+*"}),
    ("20% off a 80 pound jacket", {"-*"}),
    ("What's 634 more than 34", set()),  # adds: "more than" alone is no difference
    # words that say nothing: "per" divides or multiplies, "each", "total", "of", "less 10%"
    ("what it costs per year", set()),
    ("6 packs at 4.25 each, what's the total", set()),
    ("what is 17.5% of 240, less 10%", set()),
    ("how many times bigger is the first", {"/"}),  # a ratio, not "times" for multiplying
])
def test_stated_operators(said, ops):
    assert stated_operators(said) == ops


def test_expression_operators_read_binary_operations_only():
    assert expression_operators("3 * 18.50 + 4 * 4.25") == {"*", "+"}
    assert expression_operators("(97650 - 84000) / 84000") == {"-", "/"}
    assert expression_operators("3 * -2") == {"*"}  # a sign, not a subtraction
    assert expression_operators("1e-5 + 2") == {"+"}
    assert expression_operators("646 % 21") == {"%", "/"}  # a remainder is a division too
    assert expression_operators("2 ** 20") == {"*"}


def test_needed_operators_leave_division_to_after_a_result_and_skip_what_is_done():
    assert needed_operators(frozenset({"+", "/"}), (), after_result=False) == {"+"}  # sum it, tip, split 5 ways
    assert needed_operators(frozenset({"+", "/"}), (), after_result=True) == {"+", "/"}
    assert needed_operators(frozenset({"+", "/"}), {"+"}, after_result=True) == {"/"}
    assert needed_operators(frozenset({"/"}), {"/"}, after_result=True) == frozenset()
    assert needed_operators(frozenset({"%", "/"}), (), after_result=False) == {"%"}  # "remainder … divided by"
    assert operator_pattern(()) is None
    # one character serves two classes when one holds the other
    assert needed_operators(frozenset({"+*", "+"}), (), after_result=False) == {"+"}
    assert needed_operators(frozenset({"+*"}), {"*"}, after_result=True) == frozenset()


def test_expression_parameters():
    assert is_expression_param("expression", {"type": "string"})
    assert is_expression_param("formula", {"type": "string", "description": "What to compute."})
    assert is_expression_param("q", {"type": "string", "description": "An arithmetic expression."})
    assert not is_expression_param("title", {"type": "string", "description": "The note's title."})
    assert not is_expression_param("expression", {"type": "number"})
    assert not is_expression_param("expression", {"type": "string", "enum": ["1 + 1"]})
    assert not is_expression_param("expression", {"type": "string", "pattern": "^[0-9+]+$"})


@pytest.mark.parametrize("need, text, ok", [
    ({"/"}, "276 / 4", True), ({"/"}, "276 * 4", False), ({"/"}, "276 * 4 / 1", False),  # the first operation
    ({"/"}, "206 * 7}%||{", False), ({"/"}, "198 % 36", False), ({"%"}, "198 % 36", True),
    ({"/"}, "sqrt(2) / 2", True), ({"-"}, "(97650 - 84000) / 84000", True),
    ({"*", "+"}, "12 ** 2 + 5 ** 2", True), ({"*", "+"}, "12 + 5", True), ({"*", "+"}, "12 / 5", False),
    ({"-"}, "1199 - 1026.21", True), ({"-"}, "(3 + 4) * 2", False),
    ({"+*"}, "1150 * 1.045", True), ({"+*"}, "1150 - 4.5 / 100", False), ({"-*"}, "80 - 16", True),
])
def test_the_grammar_enforces_the_pattern_on_real_tokens(smollm2_tokenizer, need, text, ok):
    tok = smollm2_tokenizer
    schema = {"type": "object", "required": ["expression"],
              "properties": {"expression": {"type": "string", "pattern": operator_pattern(need)}}}
    m = SchemaConstraint(tok, len(tok)).matcher(schema)
    accepted = True
    for tid in tok.encode(json.dumps({"expression": text}, separators=(",", ":")), add_special_tokens=False):
        if not m.allowed_mask()[tid]:
            accepted = False
            break
        m.advance(tid)
    assert (accepted and m.is_done()) is ok


CALC = {"type": "object", "required": ["expression"], "properties": {"expression": {"type": "string"}}}
SPLIT = "Turn 5 gallons into litres and then split it between 4 containers - how much in each?"


def _expr(messages, **kw):
    ev = grounding_for(messages).args
    return ground_schema(CALC, ev, optional=False, times=False, **{"operators": True, **kw})["properties"]["expression"]


def test_the_schema_asks_for_the_stated_operation_after_a_result_only():
    first = [{"role": "user", "content": SPLIT}]
    assert "pattern" not in _expr(first)  # a split before any result may be another tool's step
    after = first + [{"role": "assistant", "content": "", "calls": [
        {"name": "convert_units", "arguments": {"value": 5, "from_unit": "gal", "to_unit": "l"}}]},
        {"role": "tool", "content": {"value": 18.9271, "unit": "l"}}]
    assert operator_pattern({"/"}) == _expr(after)["pattern"]
    assert "pattern" not in _expr(after, operators=False)
    done = after + [{"role": "assistant", "content": "", "calls": [
        {"name": "calculate", "arguments": {"expression": "18.9271 / 4"}}]},
        {"role": "tool", "content": {"result": 4.73}}]
    assert "pattern" not in _expr(done)  # the division is done
    squares = [{"role": "user", "content": "How much is 12 squared plus 5 squared?"}]
    assert _expr(squares)["pattern"] == operator_pattern({"*", "+"})
    # only the latest user message asks: an earlier "divide" is an earlier request's
    later = [{"role": "user", "content": "divide 10 by 4"}, {"role": "assistant", "content": "2.5"},
             {"role": "user", "content": "and what is 3 plus 4?"}]
    assert _expr(later)["pattern"] == operator_pattern({"+"})
    assert ArgEvidence.of(["split it"]).operators == {"/"}


def calculate(expression: str) -> str:
    """Evaluate an arithmetic expression.

    Args:
        expression: Arithmetic, e.g. "(2 + 3) * 4".
    """
    return "ok"


def test_a_turn_decodes_the_expression_under_the_stated_operations(make_tiny_model, tiny_tokenizer, monkeypatch):
    tm = TokMem.create([calculate], LoadedModel(make_tiny_model(len(tiny_tokenizer), seed=0), tiny_tokenizer,
                                                "tiny", tokenizer_fingerprint(tiny_tokenizer)))
    convo = [{"role": "user", "content": "what is 12 minus 5, times 3?"}]
    seen: list[dict] = []
    real = SchemaConstraint.matcher
    monkeypatch.setattr(SchemaConstraint, "matcher", lambda self, schema: seen.append(schema) or real(self, schema))

    def expr(on: bool) -> str:
        ctl = Controller(tm, ControllerConfig(call_threshold="off", max_arg_tokens=24, ground_operators=on))
        session = ctl.session_factory(tm.model)
        session.feed(tm.chat.prompt_ids(convo))
        turn = ctl.generate_turn(session, ["calculate"], tool_choice="calculate", budget=30,
                                 ground=grounding_for(convo))
        return turn.calls[0].text

    expr(False)
    assert "pattern" not in seen[-1]["properties"]["expression"]
    expr(True)
    assert seen[-1]["properties"]["expression"]["pattern"] == operator_pattern({"-", "*"})
