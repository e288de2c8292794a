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
    expression_pattern,
    is_expression_param,
    needed_operators,
    number_literals,
    percent_change,
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
    assert expression_pattern(()) == expression_pattern(set())  # no operation asked: well-formed only
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


def _accepts(tok, pattern: str, text: str) -> bool:
    """Whether the argument grammar of an expression with ``pattern`` takes ``text``, token by real token."""
    schema = {"type": "object", "required": ["expression"],
              "properties": {"expression": {"type": "string", "pattern": pattern}}}
    m = SchemaConstraint(tok, len(tok)).matcher(schema)
    for tid in tok.encode(json.dumps({"expression": text}, separators=(",", ":")), add_special_tokens=False):
        if not m.allowed_mask()[tid]:
            return False
        m.advance(tid)
    return m.is_done()


@pytest.mark.parametrize("need, text, ok", [
    ({"/"}, "276 / 4", True), ({"/"}, "276 * 4", False), ({"/"}, "276 * 4 / 1", False),  # the first operation
    ({"/"}, "206 * 7}%||{", False), ({"/"}, "198 % 36", False), ({"%"}, "198 % 36", True),
    ({"/"}, "sqrt(2) / 2", True), ({"-"}, "(97650 - 84000) / 84000", True),
    ({"*", "+"}, "12 ** 2 + 5 ** 2", True), ({"*", "+"}, "12 + 5", True), ({"*", "+"}, "12 / 5", False),
    ({"*", "+", "-"}, "3 * 4 + 2 - 1", True), ({"*", "-"}, "(3 - 1) * 4", True),
    ({"-"}, "1199 - 1026.21", True), ({"-"}, "(3 + 4) * 2", False),
    ({"+*"}, "1150 * 1.045", True), ({"+*"}, "1150 - 4.5 / 100", False), ({"-*"}, "80 - 16", True),
    # numbers written plainly: no thousands separator (a tuple in Python), no unit glued on
    ({"-"}, "1026.21 - 1,199", False), ({"-"}, "1026.21 - 1199", True), ((), "97,650 / 84,000", False),
    ((), "2.4m * 1.85m", False), ((), "2.4 * 1.85", True), ((), "max(3, 4) + min(1,2)", False),
    ((), "max(3, 4) + log10(2)", True), ((), "round(2.5 ** 2, 1)", True), ((), "-5 + 3", True),
    ((), "3 x 4", True),  # a name after a space is well-formed (the tool reports it unknown)
    ({"-"}, "1026.21 - 1, 1199 * 11", False), ((), "max(3, 4, 5)", True),  # a comma only between arguments
])
def test_the_grammar_enforces_the_pattern_on_real_tokens(smollm2_tokenizer, need, text, ok):
    assert _accepts(smollm2_tokenizer, expression_pattern(need), text) is ok


@pytest.mark.parametrize("text, ok", [
    ("12 * 0.35 + 3 * 2.80", True), ("12 * 0.35 + 3 * 2.8", True), ("20 + 3", False), ("3 * 2.80 * 100", True),
    ("0.35 * 1.57", False), ("(12 + 3) / 2", True), ("13 * 0.35", False), ("123 * 0.35", False),
])
def test_the_grammar_keeps_expression_numbers_to_the_conversations(smollm2_tokenizer, text, ok):
    numbers = ArgEvidence.of(["I bought a dozen eggs at 0.35 each and 3 loaves at 2.80 a loaf"]).numbers
    assert _accepts(smollm2_tokenizer, expression_pattern((), numbers), text) is ok


@pytest.mark.parametrize("said, need, text, ok", [
    ("the rent goes up by 4.5% and I pay 1,150", {"+*"}, "1150 * (1 + 4.5 / 100)", True),
    ("the rent goes up by 4.5% and I pay 1,150", {"+*"}, "1150 + 1150 * 4.5 / 100", True),
    ("the rent goes up by 4.5% and I pay 1,150", {"+*"}, "1150 * 4.5 / 100", False),
    ("the rent goes up by 4.5% and I pay 1,150", {"+*"}, "1150 * 1.045", False),
    ("80 with 20% off", {"-*"}, "80 * (1 - 20 / 100)", True), ("80 with 20% off", {"-*"}, "80 * 20 / 100", False),
])
def test_a_change_by_a_percentage_writes_its_sign(smollm2_tokenizer, said, need, text, ok):
    ev = ArgEvidence.of([said])
    assert ev.percent_sign == percent_change(said) == ("+" if "up" in said else "-")
    assert _accepts(smollm2_tokenizer, expression_pattern(need, ev.numbers, ev.percent_sign), text) is ok
    assert percent_change("the rent goes up by 40 pounds") is None and percent_change("what is 20% of 80") is None


def test_number_literals_write_each_number_as_an_expression_would():
    lits = number_literals([1150.0, 4.5, 21.6667, -6.1111, 0.00645161])
    assert {"1150", "4.5", "21.6667", "21.67", "6.1111", "6.11", "0.00645161", "100", "12", "365"} <= set(lits)
    assert "0.01" not in lits and "1150.0" not in lits and "13" not in lits and "1150.00" in lits


CALC = {"type": "object", "required": ["expression"], "properties": {"expression": {"type": "string"}}}
SPLIT = "Turn 5 gallons into litres and then split it between 4 containers - how much in each?"


def _expr(messages, **kw):
    ev = grounding_for(messages).args
    return ground_schema(CALC, ev, optional=False, times=False, **{"operators": True, **kw})["properties"]["expression"]


def test_the_schema_asks_for_the_stated_operation_after_a_result_only():
    first = [{"role": "user", "content": SPLIT}]
    assert _expr(first)["pattern"] == expression_pattern(())  # a split before any result may be another tool's
    after = first + [{"role": "assistant", "content": "", "calls": [
        {"name": "convert_units", "arguments": {"value": 5, "from_unit": "gal", "to_unit": "l"}}]},
        {"role": "tool", "content": {"value": 18.9271, "unit": "l"}}]
    assert expression_pattern({"/"}) == _expr(after)["pattern"]
    assert "pattern" not in _expr(after, operators=False)
    done = after + [{"role": "assistant", "content": "", "calls": [
        {"name": "calculate", "arguments": {"expression": "18.9271 / 4"}}]},
        {"role": "tool", "content": {"result": 4.73}}]
    assert _expr(done)["pattern"] == expression_pattern(())  # the division is done
    squares = [{"role": "user", "content": "How much is 12 squared plus 5 squared?"}]
    assert _expr(squares)["pattern"] == expression_pattern({"*", "+"})
    # only the latest user message asks: an earlier "divide" is an earlier request's
    later = [{"role": "user", "content": "divide 10 by 4"}, {"role": "assistant", "content": "2.5"},
             {"role": "user", "content": "and what is 3 plus 4?"}]
    assert _expr(later)["pattern"] == expression_pattern({"+"})
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
        ctl = Controller(tm, ControllerConfig(call_threshold="off", max_arg_tokens=24, ground_operators=on,
                                              ground_expression_numbers=on))
        session = ctl.session_factory(tm.model)
        session.feed(tm.chat.prompt_ids(convo))
        turn = ctl.generate_turn(session, ["calculate"], tool_choice="calculate", budget=30,
                                 ground=grounding_for(convo))
        return turn.calls[0].text

    expr(False)
    assert "pattern" not in seen[-1]["properties"]["expression"]
    expr(True)
    assert seen[-1]["properties"]["expression"]["pattern"] == expression_pattern({"-", "*"}, {12.0, 5.0, 3.0})


def test_an_expression_does_not_follow_its_own_result_unless_words_ask_for_more(make_tiny_model, tiny_tokenizer):
    from scripted import EOT, Script, plan_of  # tests/scripted.py

    from tokmem_agent.agent import TokMemAgent

    def calc(expression: str) -> float:
        """Evaluate an arithmetic expression.

        Args:
            expression: Arithmetic, e.g. "(2 + 3) * 4".
        """
        return {"2.4 * 1.85": 4.44, "4.44 + 2": 6.44}[expression]

    tm = TokMem.create([calc], LoadedModel(make_tiny_model(len(tiny_tokenizer), seed=0), tiny_tokenizer,
                                           "tiny", tokenizer_fingerprint(tiny_tokenizer)))

    def run(request: str, **cfg):
        plan = plan_of(tm, "calc", '{"expression":"2.4 * 1.85"}', EOT, "calc", '{"expression":"4.44 + 2"}', EOT,
                       "Done.", EOT)
        agent = TokMemAgent(tm, [calc], ControllerConfig(constrained=False, call_threshold="off",
                                                         continue_threshold="off", **cfg))
        agent.controller.session_factory = Script(tm, plan)
        return [s.arguments["expression"] for s in agent.run(request).steps]

    assert run("the floor is 2.4 by 1.85, what's the area?") == ["2.4 * 1.85"]  # no operation left to do
    assert run("the floor is 2.4 by 1.85, what's the area?", ground_operators=False) == ["2.4 * 1.85", "4.44 + 2"]
    assert run("what is 2.4 times 1.85, plus 2?") == ["2.4 * 1.85", "4.44 + 2"]  # "plus" is not done yet
