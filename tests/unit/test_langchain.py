"""LangChain integration: ChatTokMem on the tiny model with scripted decoding, the standard unit tests,
create_agent end to end (tool errors included) and agent_runnable."""

from __future__ import annotations

import importlib.util
import json
import threading

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from langchain_tests.unit_tests import ChatModelUnitTests
from pydantic import BaseModel, Field
from scripted import EOT, Script, plan_of  # tests/scripted.py

from tokmem_agent import ControllerConfig, ModelMismatchError, ToolNotFoundError
from tokmem_agent.agent import TokMemAgent
from tokmem_agent.decoding.generate import DecodeSession
from tokmem_agent.integrations.langchain import (
    ChatTokMem,
    agent_runnable,
    as_langchain_tools,
    lc_tool,
    to_tokmem_messages,
    tool_error_middleware,
)
from tokmem_agent.integrations.langchain.turn import _Deltas
from tokmem_agent.model.loader import LoadedModel, tokenizer_fingerprint
from tokmem_agent.tokmem import TokMem
from tokmem_agent.traces import Call
from tools.basic import calculate

HAVE_CONSTRAINT = importlib.util.find_spec("tokmem_agent.decoding.constraint") is not None
CONSTRAINED = [False, pytest.param(True, marks=pytest.mark.skipif(
    not HAVE_CONSTRAINT, reason="tokmem_agent.decoding.constraint (constrained decoding) not available"))]


def get_weather(city: str, unit: str = "C") -> dict:
    """Weather for a city.

    Args:
        city: city name
        unit: C or F
    """
    return {"city": city, "temp": 21, "unit": unit}


def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: first
        b: second
    """
    return a + b


lc_get_weather = tool(get_weather)  # LangChain @tool: no argument descriptions, same schema otherwise
lc_add = tool(add)


def make_tm(tokenizer, make_model, tools=(get_weather, add)) -> TokMem:
    loaded = LoadedModel(make_model(len(tokenizer)), tokenizer, "tiny", tokenizer_fingerprint(tokenizer))
    return TokMem.create(list(tools), loaded)


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture()
def tm(tiny_tokenizer, make_tiny_model):
    return make_tm(tiny_tokenizer, make_tiny_model)


def scripted(tm, *parts, constrained=False, **kw) -> tuple[ChatTokMem, Script]:
    llm = ChatTokMem(tm=tm, controller_config=ControllerConfig(constrained=constrained), **kw)
    script = Script(tm, plan_of(tm, *parts))
    llm.controller.session_factory = script
    return llm, script


def collect(stream):
    chunks = list(stream)
    full = None
    for c in chunks:
        full = c if full is None else full + c
    return chunks, full


# ----- plain text ------------------------------------------------------------------------------------
def test_invoke_text_usage_and_metadata(tm):
    llm, script = scripted(tm, "Hello there, friend.", EOT)
    msg = llm.invoke("hi")
    assert isinstance(msg, AIMessage) and msg.content == "Hello there, friend."
    assert msg.tool_calls == [] and msg.invalid_tool_calls == []
    prompt = tm.chat.prompt_ids([{"role": "user", "content": "hi"}])
    assert script.sessions[0].ids[: len(prompt)] == prompt
    n_gen = len(tm.chat.text_ids("Hello there, friend.")) + 1  # + the end-of-turn token
    assert msg.usage_metadata == {"input_tokens": len(prompt), "output_tokens": n_gen,
                                  "total_tokens": len(prompt) + n_gen}
    assert msg.response_metadata["model_name"] == "tiny"
    assert msg.response_metadata["finish_reason"] == "stop"


def test_stream_text_matches_invoke(tm):
    text = "Hello there, friend. How are you?"
    llm, _ = scripted(tm, text, EOT, text, EOT)
    ref = llm.invoke("hi")
    chunks, full = collect(llm.stream("hi"))
    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    assert len([c for c in chunks if c.content]) > 3  # really token by token
    assert full.content == ref.content == text
    assert chunks[-1].chunk_position == "last"
    assert sum(1 for c in chunks if c.usage_metadata) == 1
    assert full.usage_metadata == ref.usage_metadata
    assert full.response_metadata["model_name"] == "tiny"  # set on one chunk only (not concatenated)


def test_streaming_flag_makes_invoke_stream(tm):
    llm, _ = scripted(tm, "Hello there.", EOT, streaming=True)
    seen = []

    class Tokens(BaseCallbackHandler):
        def on_llm_new_token(self, token, **kwargs):
            seen.append(token)

    msg = llm.invoke("hi", config={"callbacks": [Tokens()]})
    assert msg.content == "Hello there." and "".join(seen) == "Hello there." and len(seen) > 1


def test_max_tokens_is_the_turn_budget(tm):
    llm, _ = scripted(tm, *([None] * 20), max_tokens=5)
    msg = llm.invoke("ramble")
    assert msg.usage_metadata["output_tokens"] == 5
    assert msg.response_metadata["finish_reason"] == "length"


@pytest.mark.parametrize("how", ["call", "instance"])
def test_stop_sequences(tm, how):
    text = "Hello there, friend."
    llm, _ = scripted(tm, text, EOT, stop=["friend"] if how == "instance" else None)
    kw = {"stop": ["friend"]} if how == "call" else {}
    msg = llm.invoke("hi", **kw)
    assert msg.content == "Hello there,"
    assert msg.usage_metadata["output_tokens"] < len(tm.chat.text_ids(text))  # stopped early
    llm.controller.session_factory = Script(tm, plan_of(tm, text, EOT))
    _, full = collect(llm.stream("hi", **kw))
    assert full.content == "Hello there,"  # the stop sequence never leaks into the stream


def test_deltas_never_send_what_the_final_text_drops():
    d = _Deltas(hold=2)
    sent = "".join(d.update(t) for t in ["  He", "  Hello", "  Hello wo", "  Hello world  "])
    sent += d.finish("Hello world")
    assert sent == "Hello world"


# ----- tool calls --------------------------------------------------------------------------------
@pytest.mark.parametrize("constrained", CONSTRAINED)
def test_tool_call(tm, constrained):
    llm, _ = scripted(tm, "get_weather", '{"city":"Paris"}', EOT, constrained=constrained)
    msg = llm.bind_tools([lc_get_weather]).invoke("What's the weather in Paris?")
    [call] = msg.tool_calls
    assert call["name"] == "get_weather" and call["args"] == {"city": "Paris"} and call["type"] == "tool_call"
    assert call["id"].startswith("call_") and len(call["id"]) > 10
    assert msg.response_metadata["finish_reason"] == "tool_calls"
    assert [b["type"] for b in msg.content_blocks] == ["tool_call"]


@pytest.mark.parametrize("constrained", CONSTRAINED)
def test_parallel_calls_have_unique_ids_and_can_be_limited(tm, constrained):
    parts = ("get_weather", '{"city":"Paris"}', "get_weather", '{"city":"Rome"}', EOT)
    llm, _ = scripted(tm, *parts, *parts, *parts, *parts, constrained=constrained)
    bound = llm.bind_tools([lc_get_weather, lc_add])
    msg = bound.invoke("Paris and Rome")
    assert [c["args"]["city"] for c in msg.tool_calls] == ["Paris", "Rome"]
    assert len({c["id"] for c in msg.tool_calls}) == 2
    _, full = collect(bound.stream("Paris and Rome"))
    assert [(c["name"], c["args"]) for c in full.tool_calls] == [
        (c["name"], c["args"]) for c in msg.tool_calls]
    assert len({c["id"] for c in full.tool_calls}) == 2
    single = llm.bind_tools([lc_get_weather], parallel_tool_calls=False)
    # (a place argument is copied from the conversation when constrained: the request names the cities)
    assert [c["args"]["city"] for c in single.invoke("Paris or Rome").tool_calls] == ["Paris"]
    _, full = collect(single.stream("Paris or Rome"))
    assert [c["args"]["city"] for c in full.tool_calls] == ["Paris"]


@pytest.mark.parametrize("constrained", CONSTRAINED)
def test_stream_tool_call_chunks(tm, constrained):
    llm, _ = scripted(tm, "Let me check.", "get_weather", '{"city":"Paris","unit":"F"}', EOT,
                      constrained=constrained)
    chunks, full = collect(llm.bind_tools([lc_get_weather]).stream("weather in Paris?"))
    tcc = [tc for c in chunks for tc in c.tool_call_chunks]
    # name and id at the memory token, then the complete arguments, merged by index
    assert [(tc["name"], tc["args"], tc["index"]) for tc in tcc] == [
        ("get_weather", "", 0), (None, '{"city":"Paris","unit":"F"}', 0)]
    assert tcc[0]["id"].startswith("call_") and tcc[1]["id"] is None
    assert full.content == "Let me check."
    assert full.tool_calls == [{"name": "get_weather", "args": {"city": "Paris", "unit": "F"},
                                "id": tcc[0]["id"], "type": "tool_call"}]
    assert chunks[-1].chunk_position == "last"


@pytest.mark.parametrize("args,error", [
    ('{"city":"Par', "not valid JSON"),
    ('{"city":5}', "schema"),
    ('{"town":"Paris"}', "schema"),
])
def test_bad_arguments_become_invalid_tool_calls(tm, args, error):
    llm, _ = scripted(tm, "get_weather", args, EOT)
    msg = llm.bind_tools([lc_get_weather]).invoke("x")
    assert msg.tool_calls == []
    [bad] = msg.invalid_tool_calls
    assert bad["name"] == "get_weather" and bad["args"] == args and error in bad["error"]
    assert bad["id"].startswith("call_")


def test_cut_arguments_are_invalid(tm):
    llm = ChatTokMem(tm=tm, controller_config=ControllerConfig(constrained=False, max_arg_tokens=4))
    llm.controller.session_factory = Script(tm, plan_of(tm, "get_weather", '{"city":"Paris is lovely"}', EOT))
    msg = llm.bind_tools([lc_get_weather]).invoke("x")
    [bad] = msg.invalid_tool_calls
    assert "exceeded 4 tokens" in bad["error"] and msg.response_metadata["finish_reason"] == "length"


def test_turn_budget_inside_arguments(tm):
    parts = ("get_weather", '{"city":"Paris"}', "get_weather", '{"city":"Rome is lovely in spring"}', EOT)
    llm, _ = scripted(tm, *parts, max_tokens=len(plan_of(tm, *parts)) - 4)
    msg = llm.bind_tools([lc_get_weather]).invoke("x")
    assert [c["args"] for c in msg.tool_calls] == [{"city": "Paris"}]  # the complete call survives
    [bad] = msg.invalid_tool_calls
    assert "token budget" in bad["error"] and bad["args"].startswith('{"city":"Rome')


# ----- tool_choice --------------------------------------------------------------------------------
@pytest.mark.parametrize("choice", ["any", "required", True])
def test_tool_choice_forces_a_call(tm, choice):
    llm, _ = scripted(tm, EOT, '{"a":1,"b":2}', EOT)  # the script wants to stop at once
    msg = llm.bind_tools([lc_add], tool_choice=choice).invoke("hello")
    assert [c["name"] for c in msg.tool_calls] == ["add"]


@pytest.mark.parametrize("choice", ["get_weather", {"type": "function", "function": {"name": "get_weather"}}])
def test_tool_choice_names_a_tool(tm, choice):
    llm, _ = scripted(tm, "add", '{"city":"Oslo"}', EOT)  # the script prefers add: masked by the choice
    msg = llm.bind_tools([lc_add, lc_get_weather], tool_choice=choice).invoke("hello")
    assert [c["name"] for c in msg.tool_calls] == ["get_weather"]


def test_tool_choice_none_and_no_bound_tools_give_text(tm):
    llm, _ = scripted(tm, "add", None, None, EOT, "add", None, None, EOT)
    assert not llm.bind_tools([lc_add], tool_choice="none").invoke("x").tool_calls
    assert not llm.invoke("x").tool_calls  # nothing bound: memory tokens are masked


def test_tool_choice_errors(tm):
    llm = ChatTokMem(tm=tm)
    with pytest.raises(ValueError, match="not one of the bound tools"):
        llm.bind_tools([lc_add], tool_choice="get_weather")
    with pytest.raises(ValueError, match="no tools are bound"):
        llm.bind_tools([], tool_choice="any")


# ----- binding: tokens and schemas ---------------------------------------------------------------
def test_bind_tool_forms(tm):
    class GetWeather(BaseModel):
        """Weather for a city."""

        city: str = Field(description="city name")
        unit: str = Field("C", description="C or F")

    GetWeather.__name__ = "get_weather"
    forms = (get_weather, lc_get_weather, GetWeather, tm.tools["get_weather"], "get_weather",
             tm.tools["get_weather"].to_openai(), tm.tools["get_weather"].to_dict())
    for t in forms:
        # every form binds the bank's get_weather token (and only it): the scripted model may call it ...
        llm, _ = scripted(tm, "get_weather", '{"city":"Rome"}', EOT)
        msg = llm.bind_tools([t]).invoke("weather in Rome?")
        assert [(c["name"], c["args"]) for c in msg.tool_calls] == [("get_weather", {"city": "Rome"})], t
        # ... but not add, which none of them binds: its memory token is masked, the model answers instead
        llm, _ = scripted(tm, "add", EOT)
        msg = llm.bind_tools([t]).invoke("weather in Rome?")
        assert not any(c["name"] == "add" for c in msg.tool_calls), t


def test_unknown_tool_has_a_clear_error(tm):
    @tool
    def magic(x: int) -> int:
        """Magic."""
        return x

    with pytest.raises(ToolNotFoundError, match="no memory token.*auto_register"):
        ChatTokMem(tm=tm).bind_tools([magic])


def test_changed_schema_is_a_mismatch(tm):
    changed = {"type": "function", "function": {"name": "get_weather", "description": "w", "parameters": {
        "type": "object", "properties": {"city": {"type": "integer"}}, "required": ["city"]}}}
    with pytest.raises(ModelMismatchError, match="get_weather"):
        ChatTokMem(tm=tm).bind_tools([changed])
    with pytest.raises(ModelMismatchError):
        ChatTokMem(tm=tm, auto_register=True).bind_tools([changed])  # one token per name: no re-register


def test_auto_register_gives_an_untrained_token(tm):
    @tool
    def magic(x: int) -> int:
        """Magic."""
        return x

    llm, _ = scripted(tm, EOT, '{"x":3}', EOT, auto_register=True)
    n = len(tm.bank)
    msg = llm.bind_tools([magic], tool_choice="any").invoke("magic of 3")
    assert "magic" in tm.bank.names and len(tm.bank) == n + 1
    assert msg.tool_calls[0]["name"] == "magic" and msg.tool_calls[0]["args"] == {"x": 3}


def test_auto_registered_token_follows_a_new_schema(tm):
    v1 = {"name": "magic", "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}}}
    v2 = {"name": "magic", "parameters": {"type": "object", "properties": {"y": {"type": "string"}}}}
    llm = ChatTokMem(tm=tm, auto_register=True)
    llm.bind_tools([v1])
    row = tm.model.memory_id("magic")
    llm.bind_tools([v2])  # untrained: nothing learnt about v1, so v2 replaces it on the same token
    assert tm.model.memory_id("magic") == row and tm.tools["magic"].parameters == v2["parameters"]


# ----- conversations ---------------------------------------------------------------------------
def test_message_mapping():
    msgs = [
        SystemMessage("sys"),
        HumanMessage([{"type": "text", "text": "weather in "}, "Paris and Rome?"], name="bob"),
        AIMessage("checking", tool_calls=[
            {"name": "get_weather", "args": {"city": "Paris"}, "id": "c1", "type": "tool_call"},
            {"name": "get_weather", "args": {"city": "Rome"}, "id": "c2", "type": "tool_call"},
            {"name": "elsewhere", "args": {"q": 1}, "id": "c3", "type": "tool_call"}]),
        ToolMessage("rainy", tool_call_id="c2"),  # answers come back out of order, unnamed
        ToolMessage("no such tool", tool_call_id="c3", status="error"),
        ToolMessage([{"type": "text", "text": "sunny"}], tool_call_id="c1", name="get_weather"),
        AIMessage([{"type": "text", "text": "Paris sunny, "}, {"type": "text", "text": "Rome rainy."}]),
    ]
    out = to_tokmem_messages(msgs, known_tools=["get_weather"])
    assert out == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "weather in Paris and Rome?"},
        {"role": "assistant", "content": 'checking\n{"name": "elsewhere", "arguments": {"q": 1}}',
         "calls": [Call("get_weather", {"city": "Paris"}), Call("get_weather", {"city": "Rome"})]},
        {"role": "tool", "name": "get_weather", "content": "sunny"},
        {"role": "tool", "name": "get_weather", "content": "rainy"},
        {"role": "tool", "name": "elsewhere", "content": '{"error": "no such tool"}'},
        {"role": "assistant", "content": "Paris sunny, Rome rainy."},
    ]
    with pytest.raises(ValueError, match="text-only"):
        to_tokmem_messages([HumanMessage([{"type": "image", "url": "http://x/y.png"}])])


def test_multi_turn_prompt_is_the_whole_conversation(tm):
    llm, script = scripted(tm, "It is 21 and sunny.", EOT)
    history = [
        HumanMessage("weather in Paris?"),
        AIMessage("", tool_calls=[{"name": "get_weather", "args": {"city": "Paris"}, "id": "c1"}]),
        ToolMessage('{"temp":21}', tool_call_id="c1"),
    ]
    msg = llm.bind_tools([lc_get_weather]).invoke(history)
    assert msg.content == "It is 21 and sunny."
    expected = tm.chat.prompt_ids([
        {"role": "user", "content": "weather in Paris?"},
        {"role": "assistant", "content": "", "calls": [Call("get_weather", {"city": "Paris"})]},
        {"role": "tool", "name": "get_weather", "content": '{"temp":21}'}])
    assert script.sessions[0].ids[: len(expected)] == expected
    assert tm.model.memory_id("get_weather") in expected  # the past call is its memory token


def test_an_answer_to_a_tool_message_states_its_figure(tm):
    llm, _ = scripted(tm, "It is sunny.", EOT)  # the same decode path as the agent: state_results
    history = [HumanMessage("weather in Paris?"),
               AIMessage("", tool_calls=[{"name": "get_weather", "args": {"city": "Paris"}, "id": "c1"}]),
               ToolMessage('{"temp":21}', tool_call_id="c1")]
    assert llm.bind_tools([lc_get_weather]).invoke(history).content == "It is sunny. The temp is 21."


# ----- construction, metadata, threads --------------------------------------------------------------
def test_from_pretrained_loads_lazily(tm, tmp_path):
    tm.save(tmp_path / "bank")
    llm = ChatTokMem.from_pretrained(tmp_path / "bank", model=tm.loaded, max_tokens=3)
    assert llm._tm_loaded is None
    assert llm._get_ls_params()["ls_model_name"] == "tiny" and llm._tm_loaded is None
    assert llm._get_ls_params()["ls_provider"] == "tokmem"
    msg = llm.bind_tools([lc_get_weather]).invoke("hi")
    assert llm._tm_loaded is not None and msg.usage_metadata["output_tokens"] <= 3


def test_construction_errors(tm):
    with pytest.raises(ValueError, match="needs a model"):
        ChatTokMem()
    with pytest.raises(ValueError, match="only one of"):
        ChatTokMem(tm=tm, bank="x")


def test_model_override_is_refused(tm):
    llm = ChatTokMem(tm=tm, max_tokens=2)
    assert llm._get_ls_params(model="other")["ls_model_name"] == "other"
    with pytest.raises(ValueError, match="cannot switch"):
        llm.invoke("hi", model="other")


def test_batch_from_threads_is_serialised(tm):
    llm = ChatTokMem(tm=tm, max_tokens=6)
    prompts = ["hi", "weather in Paris?", "add 1 and 2", "hello there"]
    sequential = [llm.invoke(p).usage_metadata for p in prompts]
    active, worst = [0], [0]
    guard = threading.Lock()

    class Counting(DecodeSession):
        def feed(self, ids):
            with guard:
                active[0] += 1
                worst[0] = max(worst[0], active[0])
            try:
                return super().feed(ids)
            finally:
                with guard:
                    active[0] -= 1

    llm.controller.session_factory = Counting
    batched = llm.batch(prompts, config={"max_concurrency": 4})
    assert [m.usage_metadata for m in batched] == sequential
    assert worst[0] == 1


async def test_async_paths(tm):
    llm, _ = scripted(tm, "Hi!", EOT, "get_weather", '{"city":"Oslo"}', EOT)
    msg = await llm.ainvoke("hi")
    assert msg.content == "Hi!"
    full = None
    async for c in llm.bind_tools([lc_get_weather]).astream("weather in Oslo"):
        full = c if full is None else full + c
    assert full.tool_calls[0]["args"] == {"city": "Oslo"}


@pytest.mark.parametrize("constrained", CONSTRAINED)
def test_with_structured_output(tm, constrained):
    class Person(BaseModel):
        """A person."""

        name: str
        age: int

    tm.add_tools([Person])  # a token for the schema (untrained: the script plays the trained model)
    llm, _ = scripted(tm, *(["Person", '{"name":"Ann","age":31}', EOT] * 3), constrained=constrained)
    structured = llm.with_structured_output(Person)
    assert structured.invoke("Ann is 31") == Person(name="Ann", age=31)
    assert list(structured.stream("Ann is 31"))[-1] == Person(name="Ann", age=31)
    raw = llm.with_structured_output(Person, include_raw=True).invoke("Ann is 31")
    assert raw["parsed"] == Person(name="Ann", age=31) and raw["raw"].tool_calls


# ----- agents ----------------------------------------------------------------------------------
@pytest.mark.parametrize("constrained", CONSTRAINED)
def test_create_agent_end_to_end(tm, constrained):
    from langchain.agents import create_agent

    llm, script = scripted(tm, "get_weather", '{"city":"Paris"}', EOT, "It is 21 degrees in Paris.", EOT,
                           constrained=constrained)
    agent = create_agent(llm, tools=[lc_get_weather, lc_add])
    out = agent.invoke({"messages": [("user", "What's the weather in Paris?")]})
    msgs = out["messages"]
    assert [type(m).__name__ for m in msgs] == ["HumanMessage", "AIMessage", "ToolMessage", "AIMessage"]
    call = msgs[1].tool_calls[0]
    assert (call["name"], call["args"]) == ("get_weather", {"city": "Paris"})
    assert msgs[2].tool_call_id == call["id"] and json.loads(msgs[2].content)["temp"] == 21
    assert msgs[3].content == "It is 21 degrees in Paris."
    # the second model call saw the tool result
    assert "21" in tm.tokenizer.decode([i for i in script.sessions[1].ids if i < tm.model.vocab_size])


def test_create_agent_streams_messages(tm):
    from langchain.agents import create_agent

    llm, _ = scripted(tm, "add", '{"a":2,"b":3}', EOT, "The sum is 5.", EOT)
    agent = create_agent(llm, tools=[lc_add])
    stream = agent.stream({"messages": [("user", "2+3?")]}, stream_mode="messages")
    pieces = [chunk.content for chunk, meta in stream
              if isinstance(chunk, AIMessageChunk) and meta.get("langgraph_node") == "model"]
    assert "".join(pieces) == "The sum is 5." and len(pieces) > 2


def test_chat_model_over_an_agent_shares_its_controller(tm):
    agent = TokMemAgent(tm, [get_weather], ControllerConfig(constrained=False))
    llm = ChatTokMem(agent=agent)
    assert llm.controller is agent.controller and llm.tokmem is tm
    agent.controller.session_factory = Script(tm, plan_of(tm, "get_weather", '{"city":"Rome"}', EOT))
    assert llm.bind_tools([lc_get_weather]).invoke("Rome?").tool_calls[0]["args"] == {"city": "Rome"}


@pytest.mark.parametrize("form", ["str", "input", "messages", "list"])
def test_agent_runnable(tm, form):
    agent = TokMemAgent(tm, [get_weather, add], ControllerConfig(constrained=False))
    agent.controller.session_factory = Script(tm, plan_of(tm, "add", '{"a":2,"b":3}', EOT, "It is 5.", EOT))
    q = "what is 2+3?"
    value = {"str": q, "input": {"input": q}, "messages": {"messages": [("user", q)]},
             "list": [HumanMessage(q)]}[form]
    out = agent_runnable(agent).invoke(value)
    assert out["answer"] == "It is 5." and out["outcome"] == "answer"
    assert [(s["tool"], s["arguments"], s["result"]) for s in out["steps"]] == [("add", {"a": 2, "b": 3}, 5)]
    json.dumps(out)


async def test_agent_runnable_reports_steps_as_events(tm):
    agent = TokMemAgent(tm, [add], ControllerConfig(constrained=False))
    agent.controller.session_factory = Script(tm, plan_of(tm, "add", '{"a":2,"b":3}', EOT, "5", EOT))
    events = [e async for e in agent_runnable(agent).astream_events("2+3?", version="v2")]
    steps = [e["data"] for e in events if e["event"] == "on_custom_event" and e["name"] == "tokmem_step"]
    assert [(s["tool"], s["result"]) for s in steps] == [("add", 5)]


# ----- tool errors with create_agent ------------------------------------------------------------
def divide(a: int, b: int) -> float:
    """Divide a by b.

    Args:
        a: dividend
        b: divisor
    """
    if b == 0:
        raise ValueError("cannot divide by zero")
    return a / b


@pytest.fixture()
def tm_err(tiny_tokenizer, make_tiny_model):
    return make_tm(tiny_tokenizer, make_tiny_model, tools=(get_weather, divide, calculate))


def seen_by_model(tm, session) -> str:
    return tm.tokenizer.decode([i for i in session.ids if i < tm.model.vocab_size])


def test_create_agent_plain_tool_error_ends_the_run(tm_err):
    """The problem: create_agent's ToolNode re-raises a tool's own exception (only bad arguments come back)."""
    from langchain.agents import create_agent

    llm, _ = scripted(tm_err, "divide", '{"a":1,"b":0}', EOT, "never reached", EOT)
    agent = create_agent(llm, tools=[tool(divide)])
    with pytest.raises(ValueError, match="cannot divide by zero"):
        agent.invoke({"messages": [("user", "1/0?")]})


@pytest.mark.parametrize("how", ["helper", "middleware"])
def test_create_agent_returns_tool_errors_to_the_model(tm_err, how):
    from langchain.agents import create_agent

    llm, script = scripted(tm_err, "divide", '{"a":1,"b":0}', EOT, "You cannot divide by zero.", EOT)
    if how == "helper":
        agent = create_agent(llm, tools=as_langchain_tools([divide]))
    else:
        agent = create_agent(llm, tools=[tool(divide)], middleware=[tool_error_middleware()])
    out = agent.invoke({"messages": [("user", "1/0?")]})  # no exception: the run goes on
    msgs = out["messages"]
    assert [type(m).__name__ for m in msgs] == ["HumanMessage", "AIMessage", "ToolMessage", "AIMessage"]
    err = msgs[2]
    assert err.status == "error" and err.content == "ValueError: cannot divide by zero"
    assert err.tool_call_id == msgs[1].tool_calls[0]["id"] and err.name == "divide"
    assert msgs[3].content == "You cannot divide by zero."  # the model got another turn
    # … and saw the error as the controller writes failures
    assert '{"error": "ValueError: cannot divide by zero"}' in seen_by_model(tm_err, script.sessions[1])


async def test_create_agent_returns_tool_errors_async(tm_err):
    from langchain.agents import create_agent

    llm, _ = scripted(tm_err, "calculate", '{"expression":"2 +"}', EOT, "Invalid expression.", EOT)
    agent = create_agent(llm, tools=as_langchain_tools([calculate]))
    out = await agent.ainvoke({"messages": [("user", "2 + ?")]})
    msgs = out["messages"]
    assert msgs[2].status == "error" and "cannot parse expression '2 +'" in msgs[2].content
    assert msgs[-1].content == "Invalid expression."


def test_lc_tool_turns_a_bad_calculate_expression_into_an_error_message(tm_err):
    calc = lc_tool(calculate)
    assert calc.name == "calculate" and calc.handle_tool_error is True
    assert calc.tool_call_schema.model_json_schema() == tool(calculate).tool_call_schema.model_json_schema()
    ChatTokMem(tm=tm_err).bind_tools([calc])  # same schema as the bank's token
    msg = calc.invoke({"name": "calculate", "args": {"expression": "2 +"}, "id": "c1", "type": "tool_call"})
    assert isinstance(msg, ToolMessage) and msg.status == "error" and msg.tool_call_id == "c1"
    assert msg.content == "ValueError: cannot parse expression '2 +': invalid syntax"
    assert calc.invoke({"expression": "(1 + 2) * 3"}) == {"expression": "(1 + 2) * 3", "result": 9}
    with pytest.raises(ValueError, match="cannot parse"):
        tool(calculate).invoke({"expression": "2 +"})  # without the helper


async def test_lc_tool_error_types_async_and_copies():
    def picky(x: int) -> int:
        """Picky."""
        if x < 0:
            raise TypeError("negative")
        raise ValueError("odd") if x % 2 else KeyError("even")

    only_value = lc_tool(picky, handle_errors=ValueError)
    assert only_value.invoke({"x": 1}) == "ValueError: odd"
    with pytest.raises(TypeError, match="negative"):
        only_value.invoke({"x": -1})
    assert lc_tool(picky, handle_errors=(TypeError, KeyError)).invoke({"x": -1}) == "TypeError: negative"
    with pytest.raises(ValueError):
        lc_tool(picky, handle_errors=False).invoke({"x": 1})
    assert lc_tool(picky).invoke({"x": 2}) == "KeyError: 'even'"

    async def afail(x: int) -> int:
        """Async fail."""
        raise ValueError(f"bad {x}")

    assert await lc_tool(afail).ainvoke({"x": 3}) == "ValueError: bad 3"
    plain = tool(picky)
    wrapped = lc_tool(plain)
    assert wrapped is not plain and plain.handle_tool_error is False and plain.func is picky
    with pytest.raises(TypeError, match="handle_errors"):
        lc_tool(picky, handle_errors="yes")


# ----- LangChain's standard unit tests ----------------------------------------------------------------
@pytest.fixture(scope="module")
def standard_tm(tiny_tokenizer, make_tiny_model):
    """Shared by the standard tests; they bind their own tools (auto-registered: untrained tokens)."""
    return make_tm(tiny_tokenizer, make_tiny_model)


class TestChatTokMemStandard(ChatModelUnitTests):
    @pytest.fixture(autouse=True)
    def _tm(self, standard_tm):
        self.tm = standard_tm

    @property
    def chat_model_class(self) -> type[ChatTokMem]:
        return ChatTokMem

    @property
    def chat_model_params(self) -> dict:
        return {"tm": self.tm, "auto_register": True}

    @property
    def supports_model_override(self) -> bool:
        return False  # one local model per instance


# ----- async: ainvoke / astream -----------------------------------------------------------------------------
def _slow(script: Script, seconds: float) -> Any:
    """The script's sessions, each token fed ``seconds`` late (a model slow enough to cancel mid-turn)."""
    import time

    def factory(model):
        session = script(model)
        feed = session.feed

        def slow_feed(ids):
            time.sleep(seconds)
            return feed(ids)

        session.feed = slow_feed
        return session

    return factory


def test_ainvoke_and_astream_match_invoke_and_stream(tm):
    import asyncio

    parts = ("Let me check.", "get_weather", '{"city":"Paris","unit":"F"}', EOT)
    llm, _ = scripted(tm, *parts * 4)
    bound = llm.bind_tools([lc_get_weather])
    ref = bound.invoke("weather?")
    ref_chunks, _ = collect(bound.stream("weather?"))

    async def go():
        msg = await bound.ainvoke("weather?")
        chunks = [c async for c in bound.astream("weather?")]
        return msg, chunks

    msg, chunks = asyncio.run(go())
    assert msg.content == ref.content and msg.usage_metadata == ref.usage_metadata
    assert [(c["name"], c["args"]) for c in msg.tool_calls] == [(c["name"], c["args"]) for c in ref.tool_calls]

    def shape(cs):
        return [(c.content, [(t["name"], t["args"], t["index"]) for t in c.tool_call_chunks]) for c in cs]

    assert shape(chunks) == shape(ref_chunks) and chunks[-1].chunk_position == "last"


def test_an_async_stream_closed_early_stops_decoding(tm):
    import asyncio

    text = " ".join(f"word{i}" for i in range(60))  # no phrase repeats, so only closing the stream stops it
    llm, script = scripted(tm, text, EOT, "Second.", EOT)
    llm.controller.session_factory = _slow(script, 0.002)
    total = len(tm.chat.text_ids(text))

    async def first_chunk():
        stream = llm.astream("hi")
        async for c in stream:
            if c.content:
                break
        await stream.aclose()

    asyncio.run(first_chunk())
    assert llm.invoke("again").content  # the model was freed (the lock released)
    fed = len(script.sessions[0].ids) - len(tm.chat.prompt_ids([{"role": "user", "content": "hi"}]))
    assert fed < total / 2


def test_a_cancelled_ainvoke_stops_decoding(tm):
    import asyncio

    text = " ".join(f"word{i}" for i in range(200))  # no phrase repeats, so only the cancel stops it
    llm, script = scripted(tm, text, EOT, "Next.", EOT)
    llm.controller.session_factory = _slow(script, 0.005)

    async def cancel_it():
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(llm.ainvoke("hi"), timeout=0.1)

    asyncio.run(cancel_it())
    assert llm.invoke("again").content  # waits for the cancelled decode to stop, then runs
    prompt = len(tm.chat.prompt_ids([{"role": "user", "content": "hi"}]))
    assert len(script.sessions[0].ids) - prompt < len(tm.chat.text_ids(text)) / 2
