"""Decoding controller paths, driven by a scripted logits source on the tiny model."""

from __future__ import annotations

import json
import time

import pytest
import torch
from scripted import EOT, Script, plan_of  # tests/scripted.py
from toydata import add, get_weather  # tests/toydata.py

from tokmem_agent import ControllerConfig, GenerationError, ToolCallError
from tokmem_agent.agent import TokMemAgent
from tokmem_agent.decoding.generate import DecodeSession
from tokmem_agent.model.loader import LoadedModel, tokenizer_fingerprint
from tokmem_agent.tokmem import TokMem


def slow_tool(seconds: float) -> str:
    """Sleep.

    Args:
        seconds: how long
    """
    time.sleep(seconds)
    return "done"


@pytest.fixture()
def tm(tiny_model, tiny_tokenizer):
    loaded = LoadedModel(tiny_model, tiny_tokenizer, "tiny", tokenizer_fingerprint(tiny_tokenizer))
    return TokMem.create([add, get_weather, slow_tool], loaded)


def toks(tm, text):
    return tm.chat.text_ids(text)


def mem(tm, name):
    return tm.model.memory_id(name)


def agent_with(tm, plan, **cfg):
    agent = TokMemAgent(tm, [add, get_weather, slow_tool], ControllerConfig(**cfg))
    agent.controller.session_factory = Script(tm, plan)
    return agent


@pytest.mark.parametrize("constrained", [False, True])
def test_single_call_then_answer(tm, constrained):
    plan = plan_of(tm, "add", '{"a":2,"b":3}', EOT, "It is 5.", EOT)
    r = agent_with(tm, plan, constrained=constrained).run("what is 2+3?")
    assert [(s.tool, s.arguments, s.status, s.result) for s in r.steps] == [("add", {"a": 2, "b": 3}, "ok", 5)]
    assert r.answer == "It is 5." and r.outcome == "answer"
    assert r.messages[-2] == {"role": "tool", "name": "add", "content": "5"}
    json.loads(r.to_json())  # serialisable
    assert "add" in r.pretty() and "It is 5." in r.pretty()


def test_parallel_calls_are_all_executed_and_fed_back(tm):
    plan = plan_of(tm, "get_weather", '{"city":"Paris"}', "get_weather", '{"city":"Rome"}', EOT, "ok", EOT)
    r = agent_with(tm, plan, constrained=False).run("weather in Paris and Rome")
    assert [s.arguments["city"] for s in r.steps] == ["Paris", "Rome"] and all(s.round == 1 for s in r.steps)
    assert [m["role"] for m in r.messages] == ["user", "assistant", "tool", "tool", "assistant"]


def test_chained_call_uses_first_result(tm):
    # the second call's argument is the first call's result (5), as a model trained on chains would do
    plan = plan_of(tm, "add", '{"a":2,"b":3}', EOT, "add", '{"a":5,"b":10}', EOT, "Done: 15", EOT)
    r = agent_with(tm, plan, constrained=False).run("add 2 and 3, then add 10")
    assert [s.result for s in r.steps] == [5, 15] and [s.round for s in r.steps] == [1, 2]
    assert r.answer == "Done: 15"


def test_kv_cache_continuation_matches_full_reencoding(tm):
    plan = plan_of(tm, "add", '{"a":2,"b":3}', EOT, "fine", EOT)
    script = Script(tm, plan)
    agent = TokMemAgent(tm, [add], ControllerConfig(constrained=False))
    agent.controller.session_factory = script
    fed: list[list[int]] = []
    real_factory = agent.controller.session_factory

    def counting(model):  # records every feed() of the run's session(s)
        s = real_factory(model)
        inner = s.feed
        s.feed = lambda ids: fed.append(list(ids)) or inner(ids)
        return s

    agent.controller.session_factory = counting
    r = agent.run("2+3?")
    # one session for the whole run (no new prefill after the tool result) ...
    assert len(script.sessions) == 1
    session = script.sessions[0]
    # ... whose ids equal a fresh encoding of the final conversation ...
    assert session.ids == tm.chat.encode(r.messages).ids[: len(session.ids)]
    # ... and every id was fed exactly once: the history is never re-encoded
    assert sum(len(f) for f in fed) == len(session.ids)
    assert len(fed[0]) == len(tm.chat.prompt_ids(tm.messages_for("2+3?")))  # the prompt, then increments
    assert max(len(f) for f in fed[1:]) < len(fed[0])


@pytest.mark.parametrize("args,status", [
    ('{"a":2', "invalid_json"),
    ('{"a":"two","b":3}', "schema"),
    ('{"a":1,"b":2,"c":3}', "schema"),
    ("", "empty"),
])
def test_bad_arguments_become_error_results(tm, args, status):
    plan = plan_of(tm, "add", args, EOT, "sorry", EOT) if args else plan_of(tm, "add", EOT, "sorry", EOT)
    r = agent_with(tm, plan, constrained=False).run("add")
    [step] = r.steps
    assert step.status == status and step.error
    assert "error" in json.loads(r.messages[2]["content"])  # the model sees the error
    assert r.answer == "sorry"


def test_tool_exception_and_timeout_are_results_not_crashes(tm):
    plan = plan_of(tm, "get_weather", '{"city":"Atlantis"}', "slow_tool", '{"seconds":2}', EOT, "hm", EOT)
    r = agent_with(tm, plan, constrained=False, tool_timeout=0.2).run("x")
    assert [s.status for s in r.steps] == ["exception", "timeout"]
    assert "unknown city" in r.steps[0].error and "timed out" in r.steps[1].error


def test_strict_mode_raises(tm):
    plan = plan_of(tm, "get_weather", '{"city":"Atlantis"}', EOT)
    with pytest.raises(ToolCallError) as err:
        agent_with(tm, plan, constrained=False, strict=True).run("x")
    assert err.value.kind == "exception" and err.value.tool == "get_weather"


def test_unbound_tool_is_masked(tm):
    # the script prefers slow_tool, but only add is bound: slow_tool's memory token must not appear
    plan = plan_of(tm, "slow_tool") + [None] * 3
    agent = TokMemAgent(tm, [add], ControllerConfig(constrained=False, max_new_tokens=4))
    agent.controller.session_factory = Script(tm, plan)
    r = agent.run("x", tools=[add])
    assert all(s.tool == "add" for s in r.steps)
    assert mem(tm, "slow_tool") not in tm.chat.text_ids(r.text)


def test_unknown_tool_without_callable(tm):
    agent = TokMemAgent(tm, [], ControllerConfig(constrained=False))  # tokens exist, no callables bound
    agent.controller.session_factory = Script(tm, plan_of(tm, "add", '{"a":1,"b":1}', EOT, "x", EOT))
    from tokmem_agent.registry import Tool
    r = agent.controller.run([{"role": "user", "content": "x"}], [Tool.coerce({**tm.tools["add"].to_dict()})])
    assert r.steps[0].status == "unknown_tool"


def test_repeated_call_is_not_rerun_and_the_model_answers(tm):
    # call, result, the same call again: rolled back, then decoding with tools masked gives the answer
    plan = plan_of(tm, "add", '{"a":2,"b":3}', EOT, "add", '{"a":2,"b":3}', EOT, "Five.", EOT)
    r = agent_with(tm, plan, constrained=False).run("2+3?")
    assert len(r.steps) == 1 and r.suppressed_repeats == 1 and r.outcome == "answer"
    assert "add" not in r.answer
    # the conversation (and so the KV cache) holds no trace of the rolled-back repeat
    assert [m["role"] for m in r.messages] == ["user", "assistant", "tool", "assistant"]


def test_session_rollback_matches_a_fresh_session(tm):
    prompt = tm.chat.prompt_ids([{"role": "user", "content": "hi"}])
    a = DecodeSession(tm.model)
    a.feed(prompt)
    a.feed(toks(tm, "some text to forget"))
    logits = a.rollback(len(toks(tm, "some text to forget")))
    b = DecodeSession(tm.model)
    assert a.ids == prompt and torch.allclose(logits, b.feed(prompt), atol=1e-5)


def test_max_steps(tm):
    plan = plan_of(tm, *(["add", '{"a":1,"b":1}', EOT] * 5))
    r = agent_with(tm, plan, constrained=False, max_steps=2, stop_repeats=False).run("loop")
    assert r.outcome == "max_steps" and len(r.steps) == 2
    with pytest.raises(GenerationError, match="max_steps"):
        agent_with(tm, plan_of(tm, *(["add", '{"a":1,"b":1}', EOT] * 5)), constrained=False, max_steps=2,
                   strict=True, stop_repeats=False).run("loop")


def test_token_budget_and_argument_budget(tm):
    # the tiny random model rambles in a cycle of tokens: loops kept, so only the budget ends the turn
    r = agent_with(tm, [None] * 50, constrained=False, max_new_tokens=10, stop_text_loops=False).run("ramble")
    assert r.outcome == "token_budget" and r.generated_tokens == 10
    plan = plan_of(tm, "add", '{"a":' + "1" * 40)
    r = agent_with(tm, plan, constrained=False, max_arg_tokens=8, max_steps=1).run("x")
    assert r.steps[0].status == "token_budget"


def test_tool_choice_forces_a_call(tm):
    # the script wants to end the turn at once, but tool_choice="any" forbids text and stop first
    plan = [tm.chat.eot_id, None, None]
    agent = agent_with(tm, plan, constrained=False, max_new_tokens=3, max_steps=1)
    r = agent.run("x", tool_choice="any")
    assert r.steps and r.steps[0].tool in {"add", "get_weather", "slow_tool"}
    agent = agent_with(tm, [tm.chat.eot_id, None, None], constrained=False, max_new_tokens=3, max_steps=1)
    r = agent.run("x", tool_choice="get_weather")
    assert r.steps[0].tool == "get_weather"
    agent = agent_with(tm, plan_of(tm, "add") + [None, None], constrained=False, max_new_tokens=3)
    r = agent.run("x", tool_choice="none")
    assert not r.steps


def test_constraint_forces_valid_json_from_a_model_that_prefers_garbage(tm):
    # The script pushes non-JSON text, memory tokens and end-of-turn into the argument span, then keeps
    # pushing '"}' so the object can close. Unconstrained, this is garbage; constrained, every token the
    # grammar forbids is masked and the result must parse and validate.
    garbage = toks(tm, "}}]] not json ,,, ") + [mem(tm, "add"), tm.chat.eot_id] + toks(tm, "]]")
    plan = [mem(tm, "get_weather")] + garbage + toks(tm, '"}') * 10 + [tm.chat.eot_id] * 2
    def run(constrained):
        agent = TokMemAgent(tm, [get_weather], ControllerConfig(constrained=constrained, max_steps=1,
                                                                max_arg_tokens=40))
        agent.controller.session_factory = Script(tm, list(plan))
        return agent.run("weather?", tools=[get_weather])

    assert run(False).steps[0].status != "ok"
    step = run(True).steps[0]  # (a random model may add further calls after it; only this one is scripted)
    assert step.status == "ok", (step.argument_text, step.error)
    assert set(step.arguments) <= {"city", "unit"} and isinstance(step.arguments["city"], str)
    assert step.argument_text == json.dumps(step.arguments, separators=(",", ":"))  # compact


def test_constraint_options_come_from_the_controller_config(tm):
    from tokmem_agent.errors import ConfigError

    agent = TokMemAgent(tm, [], ControllerConfig(property_order="sorted", max_string_bound=4))
    c = agent.controller.constraint()
    assert (c.property_order, c.max_string_bound) == ("sorted", 4)
    default = TokMemAgent(tm, []).controller.constraint()
    assert (default.property_order, default.max_string_bound) == ("declared_or_sorted", 16)
    with pytest.raises(ConfigError, match="property_order must be one of"):
        ControllerConfig(property_order="random")
    with pytest.raises(ConfigError, match="max_string_bound must be >= 0"):
        ControllerConfig(max_string_bound=-1)


async def test_arun_runs_async_tools_on_the_callers_loop(tm):
    import asyncio

    loop = asyncio.get_running_loop()
    on_loop = []

    async def add(a: int, b: int) -> int:
        """Add two integers.

        Args:
            a: first
            b: second
        """
        on_loop.append(asyncio.get_running_loop() is loop)
        return a + b

    agent = TokMemAgent(tm, [add], ControllerConfig(constrained=False))
    agent.controller.session_factory = Script(tm, plan_of(tm, "add", '{"a":2,"b":3}', EOT, "5", EOT))
    r = await agent.arun("2+3?")
    assert [s.result for s in r.steps] == [5] and on_loop == [True] and r.answer == "5"


# ----- text loops (ControllerConfig.stop_text_loops) ------------------------------------------------------
LOOP = "I am glad to help. I am glad to help. I am glad to help."


def test_a_text_loop_is_cut_before_the_repeat(tm):
    plan = plan_of(tm, LOOP, EOT)
    r = agent_with(tm, plan).run("thanks")
    assert r.outcome == "answer" and r.answer == "I am glad to help."
    assert r.generated_tokens < len(plan) - 1  # stopped at the second sentence, not at the end-of-turn token
    assert r.messages[-1] == {"role": "assistant", "content": "I am glad to help."}


def test_text_loops_are_kept_when_switched_off(tm):
    r = agent_with(tm, plan_of(tm, LOOP, EOT), stop_text_loops=False).run("thanks")
    assert r.answer == LOOP


def test_short_or_different_sentences_are_not_loops(tm):
    text = "Yes. Yes. The total is 10.50 and 20.50. The total is 10.50 and 20.75."
    r = agent_with(tm, plan_of(tm, text, EOT)).run("sum?")
    assert r.answer == text


def test_a_final_repeat_is_dropped_too(tm):
    r = agent_with(tm, plan_of(tm, "I am glad to help. I am glad to help.", EOT)).run("thanks")
    assert r.answer == "I am glad to help."


def test_a_phrase_repeated_back_to_back_is_a_loop(tm):
    text = "Added 3 items: how are you today; how are you today; how are you today; how are you today; how"
    r = agent_with(tm, plan_of(tm, text, EOT)).run("hi")
    assert r.outcome == "answer" and r.answer.startswith("Added 3 items: how are you today;")
    assert r.answer.count("how are you") < 3
    digits = plan_of(tm, "200.00 GBP is 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2", EOT)
    assert agent_with(tm, digits).run("convert").answer.count("2,") <= 3
    number = "The total is 1000000000000000 units, 1 2 3 4 5 6 7 8 9."  # one digit repeated is a number
    assert agent_with(tm, plan_of(tm, number, EOT)).run("sum?").answer == number


def test_sentence_loop_watch_on_its_own():
    from tokmem_agent.decoding.turn import SentenceLoop

    pieces = ["Done", ".", " It", " is", " 5", ".", "5", " km", ".", " it", "  is", " 5", ".", "5", " km", ".",
              " More"]
    watch, ids, hit = SentenceLoop(lambda xs: "".join(pieces[i] for i in xs)), [], None
    for i in range(len(pieces)):
        ids.append(i)
        if watch.add(ids):
            hit = i
            break
    assert hit == len(pieces) - 1  # " More" closes the second "it is 5.5 km." (case and spaces ignored)
    assert "".join(pieces[: watch.start]) == "Done. It is 5.5 km."


def test_a_repeat_with_its_keys_in_another_order_is_still_a_repeat(tm):
    plan = plan_of(tm, "add", '{"a":2,"b":3}', EOT, "add", '{"b":3,"a":2}', EOT, "Five.", EOT)
    r = agent_with(tm, plan, constrained=False).run("2+3?")
    assert len(r.steps) == 1 and r.suppressed_repeats == 1 and r.answer == "Five."


def test_an_answer_after_a_result_opens_with_one_of_its_fields(tm):
    from tokmem_agent.config import ZERO_DATA_KEY

    def answer(policy, city="Paris"):
        plan = plan_of(tm, "get_weather", '{"city":"' + city + '"}', EOT, "It is warm.", EOT)
        return agent_with(tm, plan, constrained=False, lead_answers=policy,
                          state_results=False).run("weather in Paris?")

    # "city" only echoes the argument; the request names neither temp nor unit: the first field
    assert answer(False).answer == "It is warm."
    assert answer("zero_data").answer == "It is warm."  # get_weather was not registered from its schema
    r = answer(True)
    assert r.answer == "The temp is 21 (unit: C)." and r.outcome == "answer"  # the opening, a full stop, over
    tm.meta[ZERO_DATA_KEY] = ["get_weather"]
    try:
        assert answer("zero_data").answer == "The temp is 21 (unit: C)."
        assert answer(True, city="Atlantis").steps[0].status != "ok"  # an error result: nothing to lead
        assert answer(True, city="Atlantis").answer == "It is warm."
    finally:
        tm.meta.pop(ZERO_DATA_KEY)


def test_an_answer_that_leaves_out_the_results_figures_goes_on_to_state_one(tm):
    def answer(text, **kw):
        plan = plan_of(tm, "get_weather", '{"city":"Paris"}', EOT, text, EOT)
        return agent_with(tm, plan, constrained=False, **kw).run("weather in Paris?")

    r = answer("It is warm.")
    assert r.answer == "It is warm. The temp is 21." and r.outcome == "answer"
    assert answer("It is warm.", state_results=False).answer == "It is warm."
    assert answer("It is 21 C.").answer == "It is 21 C."  # a figure stated: the answer ends where it ended
    assert answer("It is 21.0 C.").answer == "It is 21.0 C."  # in another usual form


def test_a_call_after_a_result_is_not_led(tm):
    plan = plan_of(tm, "get_weather", '{"city":"Paris"}', EOT, "add", '{"a":2,"b":3}', EOT, "Done.", EOT)
    r = agent_with(tm, plan, constrained=False, lead_answers=True).run("x")
    assert [s.tool for s in r.steps] == ["get_weather", "add"]
    assert r.answer == "The result is 5."  # add's result is a number
