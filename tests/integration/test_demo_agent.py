"""The `make demo` bank on the real default model: a two-step chain through the controller, a greeting that
needs no tool, and the same tools through LangChain's create_agent.

The bank is the one `make demo` uses (tools.demo.demo_bank): the bank shipped in tools/banks/demo while it
matches the data and recipe (tests/unit/test_demo_bank.py checks that), else one trained by the same recipe
into the user cache (``$TOKMEM_CACHE_DIR/test-banks/demo``) and reused afterwards.
"""

from __future__ import annotations

import pytest
import torch
from demo_checks import assert_converted_120_usd  # tests/integration/demo_checks.py

from tokmem_agent.agent import TokMemAgent
from tokmem_agent.model.loader import cache_root, load_base_model
from tools.basic import make_tools

pytestmark = pytest.mark.slow

QUERY = "Convert 250 GBP to USD and then add a 15% tip to the converted amount."


@pytest.fixture(scope="module")
def demo_tm():
    from tools.demo import demo_bank

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        loaded = load_base_model(None)
        yield demo_bank(loaded, cache_root() / "test-banks" / "demo")
    finally:
        torch.set_num_threads(before)


def test_chain_starts_with_the_right_call_and_feeds_its_result_back(demo_tm, tmp_path):
    agent = TokMemAgent(demo_tm, make_tools(tmp_path))
    r = agent.run(QUERY)
    first = r.steps[0]
    assert first.tool == "convert_currency" and first.ok, r.pretty()
    assert first.arguments == {"amount": 250, "from_currency": "GBP", "to_currency": "USD"}, r.pretty()
    assert "316.46" in "".join(m.get("content", "") for m in r.messages if m.get("role") == "tool")


def test_two_step_chain_gives_right_calls_and_answer(demo_tm, tmp_path):
    agent = TokMemAgent(demo_tm, make_tools(tmp_path))
    r = agent.run(QUERY)
    tools = [s.tool for s in r.steps]
    assert tools[:2] == ["convert_currency", "add_tip"], r.pretty()
    first, second = r.steps[0], r.steps[1]
    assert first.ok and first.arguments == {"amount": 250, "from_currency": "GBP", "to_currency": "USD"}, r.pretty()
    converted = first.result["result"]
    assert second.ok and second.arguments["bill"] == pytest.approx(converted) and second.arguments["percent"] == 15, \
        r.pretty()  # the second call uses the first call's result
    assert r.outcome == "answer" and f"{second.result['total']:.2f}" in r.answer, r.pretty()


def test_a_greeting_gets_a_short_answer_and_no_call(demo_tm, tmp_path):
    agent = TokMemAgent(demo_tm, make_tools(tmp_path))
    r = agent.run("Good morning! How are you today?")
    assert r.steps == [] and r.outcome == "answer" and r.answer.strip(), r.pretty()
    assert r.call_prob is not None and r.call_prob < demo_tm.meta["call_threshold"]  # the calibrated decision


def test_create_agent_with_the_example_pack(demo_tm, tmp_path):
    from langchain.agents import create_agent

    from tokmem_agent.integrations.langchain import ChatTokMem, as_langchain_tools

    agent = create_agent(ChatTokMem(tm=demo_tm), tools=as_langchain_tools(make_tools(tmp_path)))
    out = agent.invoke({"messages": [("user", "Convert 120 USD to EUR.")]})
    assert_converted_120_usd(out)
