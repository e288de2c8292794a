"""`tokmem serve`: the OpenAI-compatible endpoint, driven by the real openai and langchain-openai clients
against a server on 127.0.0.1 (tiny random model)."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx  # fastapi, uvicorn, openai, langchain-openai: make test installs them (the dev and serve extras)
import openai
import pytest
import torch
import uvicorn
from toydata import add, get_weather  # tests/toydata.py

from tokmem_agent import ControllerConfig
from tokmem_agent.decoding.generate import DecodeSession
from tokmem_agent.decoding.schedule import TurnSpec
from tokmem_agent.model.loader import LoadedModel, tokenizer_fingerprint
from tokmem_agent.serving.engine import Engine, Overloaded, Request
from tokmem_agent.serving.openai_api import create_app
from tokmem_agent.serving.registration import Registrar
from tokmem_agent.tokmem import TokMem

TOOLS = [{"type": "function", "function": {"name": t.__name__, "description": (t.__doc__ or "").strip(),
                                           "parameters": {"type": "object"}}} for t in (add, get_weather)]


@pytest.fixture()
def tm(tiny_model, tiny_tokenizer):
    loaded = LoadedModel(tiny_model, tiny_tokenizer, "tiny", tokenizer_fingerprint(tiny_tokenizer))
    tm = TokMem.create([add, get_weather], loaded)
    with torch.no_grad():
        tm.bank.steer.mul_(3.0)
    return tm


class Served:
    def __init__(self, tm, *, batch_size=4, max_queue=8, api_key=None, max_new_tokens=40, register=None,
                 register_unknown=False, default_tools=None):
        self.engine = Engine(tm, ControllerConfig(max_new_tokens=max_new_tokens), batch_size=batch_size,
                             max_queue=max_queue)
        registrar = Registrar(self.engine, **register) if register is not None else None
        app = create_app(self.engine, model_name="tiny", api_key=api_key, registrar=registrar,
                         register_unknown=register_unknown, default_tools=default_tools)
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started:
            assert time.time() < deadline, "server did not start"
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/v1"
        self.client = openai.OpenAI(base_url=self.url, api_key=api_key or "unused", max_retries=0)

    def close(self):
        self.server.should_exit = True
        self.thread.join(10)
        self.engine.close()


@pytest.fixture()
def served(tm):
    s = Served(tm)
    yield s
    s.close()


def _want(tm, messages, choice, budget=40):
    """What the library's controller decodes for these messages (one session, batch of one)."""
    from tokmem_agent.decoding.controller import Controller
    from tokmem_agent.decoding.grounding import grounding_for

    ctl = Controller(tm, ControllerConfig(max_new_tokens=budget))
    s = DecodeSession(tm.model)
    s.feed(tm.chat.prompt_ids(messages))
    return ctl.generate_turn(s, ["add", "get_weather"], tool_choice=choice, budget=budget, after="user",
                             ground=grounding_for(messages))


def test_models_and_health(served):
    assert [m.id for m in served.client.models.list().data] == ["tiny"]
    h = httpx.get(served.url.replace("/v1", "/health")).json()
    assert h["status"] == "ok" and h["tools"] == 2


def test_tool_calls_stream_and_results(served, tm):
    msgs = [{"role": "user", "content": "add 2 and 3"}]
    r = served.client.chat.completions.create(model="tiny", messages=msgs, tools=TOOLS, tool_choice="required")
    choice = r.choices[0]
    want = _want(tm, msgs, "any")
    complete = not (want.out_of_budget or any(c.cut for c in want.calls))
    assert choice.finish_reason == ("tool_calls" if complete else "length")
    assert [(c.function.name, c.function.arguments) for c in choice.message.tool_calls] == \
        [(c.tool, c.text) for c in want.calls]
    assert all(c.id.startswith("call_") for c in choice.message.tool_calls)
    for c in choice.message.tool_calls if complete else ():
        json.loads(c.function.arguments)  # schema-constrained: valid JSON
    assert r.usage.prompt_tokens == len(tm.chat.prompt_ids(msgs)) and r.usage.completion_tokens == want.generated

    # streaming: the deltas merge into the same calls; the usage chunk comes last
    calls: dict[int, dict] = {}
    usage = None
    finish = None
    for ch in served.client.chat.completions.create(model="tiny", messages=msgs, tools=TOOLS,
                                                    tool_choice="required", stream=True,
                                                    stream_options={"include_usage": True}):
        if ch.usage is not None:
            usage = ch.usage
        for c in ch.choices:
            finish = c.finish_reason or finish
            for d in c.delta.tool_calls or []:
                slot = calls.setdefault(d.index, {"name": "", "arguments": "", "id": None})
                slot["id"] = slot["id"] or d.id
                slot["name"] += d.function.name or ""
                slot["arguments"] += d.function.arguments or ""
    assert [(c["name"], c["arguments"]) for _, c in sorted(calls.items())] == [(c.tool, c.text) for c in want.calls]
    assert finish == choice.finish_reason and usage.completion_tokens == want.generated

    # the results go back; the next turn is decoded after them
    tc = {"id": choice.message.tool_calls[0].id, "type": "function",
          "function": {"name": "add", "arguments": '{"a":2,"b":3}'}}
    follow = msgs + [{"role": "assistant", "content": None, "tool_calls": [tc]},
                     {"role": "tool", "tool_call_id": tc["id"], "content": "5"}]
    r2 = served.client.chat.completions.create(model="tiny", messages=follow, tools=TOOLS, tool_choice="none",
                                               max_tokens=12)
    assert r2.choices[0].message.tool_calls is None and r2.usage.completion_tokens <= 12
    from tokmem_agent.traces import Call

    ours = msgs + [{"role": "assistant", "content": "", "calls": [Call("add", {"a": 2, "b": 3})]},
                   {"role": "tool", "name": "add", "content": "5"}]
    assert r2.usage.prompt_tokens == len(tm.chat.prompt_ids(ours))  # the history reached the model as trained
    bad = follow[:1] + [{**follow[1], "tool_calls": [{**tc, "function": {"name": "add", "arguments": "{oops"}}]}]
    with pytest.raises(openai.BadRequestError) as e:
        served.client.chat.completions.create(model="tiny", messages=bad + follow[2:], tools=TOOLS)
    assert e.value.body["param"] == "messages[1].tool_calls[0].function.arguments"


def test_text_stream_equals_plain(served, tm):
    msgs = [{"role": "user", "content": "hello there"}]
    plain = served.client.chat.completions.create(model="tiny", messages=msgs, tools=TOOLS, tool_choice="none")
    text = "".join(c.choices[0].delta.content or "" for c in served.client.chat.completions.create(
        model="tiny", messages=msgs, tools=TOOLS, tool_choice="none", stream=True) if c.choices)
    assert text == plain.choices[0].message.content == _want(tm, msgs, "none").text
    assert plain.choices[0].finish_reason in ("stop", "length")


def test_concurrent_clients_get_their_own_answers(served, tm):
    queries = ["add 1 and 2", "weather in Oslo", "hi", "sum 4 and 4", "rain in Rome?", "add 7 and 8",
               "good day", "weather Paris"]
    choices = ["required", "auto", "none"]

    def ask(i):
        msgs = [{"role": "user", "content": queries[i]}]
        r = served.client.chat.completions.create(model="tiny", messages=msgs, tools=TOOLS,
                                                  tool_choice=choices[i % 3], max_tokens=24)
        m = r.choices[0].message
        return m.content or "", [(c.function.name, c.function.arguments) for c in m.tool_calls or []]

    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(ask, range(len(queries))))
    for i, (content, calls) in enumerate(got):
        want = _want(tm, [{"role": "user", "content": queries[i]}], {"required": "any", "auto": None,
                                                                      "none": "none"}[choices[i % 3]], 24)
        assert calls == [(c.tool, c.text) for c in want.calls], queries[i]
        assert content == (want.text if want.text or not want.calls else ""), queries[i]


def test_errors_name_the_field(served):
    c = served.client
    msgs = [{"role": "user", "content": "x"}]
    bad = [{"type": "function", "function": {"name": "launch_rocket", "parameters": {"type": "object"}}}]
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model="tiny", messages=msgs, tools=bad)
    assert "launch_rocket" in str(e.value) and e.value.body["param"] == "tools"
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model="tiny", messages=msgs, max_tokens=0)
    assert e.value.body["param"] == "max_tokens"
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model="tiny", messages=msgs, tools=TOOLS,
                                  tool_choice={"type": "function", "function": {"name": "nope"}})
    assert e.value.body["param"] == "tool_choice.function.name"
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model="tiny", messages=[{"role": "wizard", "content": "x"}])
    assert e.value.body["param"].startswith("messages.0.role")
    r = httpx.post(served.url + "/chat/completions", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "error" in r.json()


def test_api_key(tm):
    s = Served(tm, api_key="sekret")
    try:
        assert s.client.models.list().data[0].id == "tiny"
        bad = openai.OpenAI(base_url=s.url, api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            bad.models.list()
        assert httpx.get(s.url.replace("/v1", "/health")).status_code == 200  # health needs no key
    finally:
        s.close()


def test_overload_answers_429_and_recovers(tm):
    s = Served(tm, batch_size=1, max_queue=1)
    gate = threading.Event()
    try:
        prompt = tm.chat.prompt_ids([{"role": "user", "content": "hi"}])
        # a request whose result callback holds the engine thread: the queue then fills up
        blocker = Request(prompt, TurnSpec(["add"], "none", 4, "user"), lambda ev: gate.wait(20))
        s.engine.submit(blocker)
        time.sleep(0.3)
        s.engine.submit(Request(prompt, TurnSpec(["add"], "none", 4, "user"), lambda ev: None))
        with pytest.raises(Overloaded):
            s.engine.submit(Request(prompt, TurnSpec(["add"], "none", 4, "user"), lambda ev: None))
        r = httpx.post(s.url + "/chat/completions", json={"model": "tiny", "messages": [{"role": "user",
                                                                                        "content": "x"}]})
        assert r.status_code == 429 and r.headers["retry-after"] == "1"
        assert r.json()["error"]["type"] == "rate_limit_error"
        gate.set()
        deadline = time.time() + 20
        while s.engine.waiting:  # the queued request takes its row: there is room again
            assert time.time() < deadline
            time.sleep(0.01)
        ok = s.client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "x"}],
                                              max_tokens=4)
        assert ok.choices[0].finish_reason in ("stop", "length")
    finally:
        gate.set()
        s.close()


def _long_turn(tm, budget: int) -> tuple[ControllerConfig, list[int]]:
    """A config and prompt whose text turn, undisturbed, runs the whole budget (checked here)."""
    from tokmem_agent.decoding.controller import Controller

    cfg = ControllerConfig(max_new_tokens=budget, stop_text_loops=False)
    prompt = tm.chat.prompt_ids([{"role": "user", "content": "tell me a long story"}])
    sess = DecodeSession(tm.model)
    sess.feed(prompt)
    assert Controller(tm, cfg).generate_turn(sess, ["add"], tool_choice="none", budget=budget).out_of_budget
    return cfg, prompt


def test_cancelled_requests_leave_the_queue_and_their_row(tm):
    cfg, prompt = _long_turn(tm, 400)
    engine = Engine(tm, cfg, batch_size=2)
    try:
        seen: list = []
        gone = Request(prompt, TurnSpec(["add"], "none", 400, "user"), seen.append)
        gone.cancel()  # cancelled while waiting: never decoded
        engine.submit(gone)
        done = threading.Event()
        turns: list = []
        req = Request(prompt, TurnSpec(["add"], "none", 400, "user"),
                      lambda ev: ev[0] == "done" and (turns.append(ev[1]), done.set()))
        engine.submit(req)
        deadline = time.time() + 20
        while engine.active == 0 and not done.is_set():
            assert time.time() < deadline
            time.sleep(0.005)
        req.cancel()  # a client that went away mid-turn: its row ends at the next step
        assert done.wait(20)
        assert turns[0].generated < 400 and not turns[0].out_of_budget
        assert seen == [] and engine.active == 0 and engine.served == 1
    finally:
        engine.close()


def test_langchain_chat_openai_against_the_server(tm):
    """ChatOpenAI pointed at the server, alone and inside create_agent (the model's tokens scripted, so the
    random model makes a complete call; one row, so the server decodes on the scripted session)."""
    from langchain.agents import create_agent
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI
    from scripted import EOT, Script, plan_of

    s = Served(tm, batch_size=1)
    try:
        s.engine.controller.session_factory = Script(tm, plan_of(tm, "add", '{"a":2,"b":3}', EOT))
        llm = ChatOpenAI(base_url=s.url, api_key="unused", model="tiny", max_retries=0, max_tokens=40)
        msg = llm.bind_tools(TOOLS, tool_choice="required").invoke("add 2 and 3")
        assert [(c["name"], c["args"]) for c in msg.tool_calls] == [("add", {"a": 2, "b": 3})]
        assert msg.tool_calls[0]["id"].startswith("call_")

        @tool
        def add(a: int, b: int) -> int:
            """Add two integers."""
            return a + b

        s.engine.controller.session_factory = Script(
            tm, plan_of(tm, "add", '{"a":2,"b":3}', EOT, "The sum is 5.", EOT))
        out = create_agent(llm, [add]).invoke({"messages": [{"role": "user", "content": "add 2 and 3"}]})
        kinds = [m.type for m in out["messages"]]
        assert kinds == ["human", "ai", "tool", "ai"]
        assert out["messages"][2].content == "5" and out["messages"][-1].content == "The sum is 5."
    finally:
        s.close()


def test_register_a_tool_into_the_running_server(tm, tmp_path):
    from toydata import ECHO

    from tokmem_agent import RegisterConfig, TrainConfig
    from tokmem_agent.tokmem import TokMem as _TokMem

    old_rows = tm.bank.steer.detach().clone()
    cfg = RegisterConfig(train=TrainConfig(epochs=2, batch_size=4, progress=False, eval_fraction=0.0,
                                           no_call_share=0.0, autocast=None))
    s = Served(tm, register={"config": cfg, "save_to": tmp_path / "bank"})
    try:
        echo = [{"type": "function", "function": ECHO}]
        msgs = [{"role": "user", "content": "echo hello"}]
        with pytest.raises(openai.BadRequestError):  # no token for it yet
            s.client.chat.completions.create(model="tiny", messages=msgs, tools=echo)
        traces = [{"query": f"echo {w}", "tools": [ECHO], "answers": [{"name": "echo", "arguments": {"text": w}}]}
                  for w in ("hi", "yes", "blue", "seven", "cat", "moon")]
        r = httpx.post(s.url + "/tools", json={"tools": echo, "traces": traces})
        assert r.status_code == 202 and r.json()["status"] in ("queued", "training")
        job = r.json()["id"]
        deadline = time.time() + 120
        while (st := httpx.get(f"{s.url}/tools/registrations/{job}").json())["status"] in ("queued", "training"):
            assert time.time() < deadline, st
            time.sleep(0.1)
        assert st["status"] == "ready" and st["result"]["added"] == ["echo"] and st["result"]["traces"] == 6, st
        out = s.client.chat.completions.create(model="tiny", messages=msgs, tools=echo, tool_choice="required")
        assert out.choices[0].message.tool_calls[0].function.name == "echo"
        assert "echo" in [t["function"]["name"] for t in httpx.get(s.url + "/tools").json()["data"]]
        assert torch.equal(s.engine.tm.bank.steer[:2].detach(), old_rows)  # the old rows did not move
        assert tm.tool_names == ["add", "get_weather"]  # the bank it started with is untouched
        assert _TokMem.load(tmp_path / "bank", tm.loaded).tool_names == ["add", "get_weather", "echo"]
        bad = httpx.post(s.url + "/tools", json={"tools": echo, "traces": [{"query": 3}]})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "traces"
        assert httpx.get(s.url + "/tools/registrations/nope").status_code == 404
    finally:
        s.close()


def test_unknown_tools_registered_on_request_when_enabled(tm):
    from toydata import ECHO

    from tokmem_agent import RegisterConfig, TrainConfig

    cfg = RegisterConfig(synth_per_tool=8, train=TrainConfig(epochs=1, batch_size=4, progress=False,
                                                             eval_fraction=0.0, no_call_share=0.0, autocast=None))
    s = Served(tm, register={"config": cfg}, register_unknown=True)
    try:
        body = {"model": "tiny", "messages": [{"role": "user", "content": "echo hi"}],
                "tools": [{"type": "function", "function": ECHO}], "tool_choice": "required", "max_tokens": 8}
        r = httpx.post(s.url + "/chat/completions", json=body)
        assert r.status_code == 503 and r.headers["retry-after"] == "15"
        err = r.json()["error"]
        assert err["code"] == "tool_registering" and err["param"] == "tools" and "echo" in err["message"]
        job = err["message"].split("job ")[1].split(",")[0]
        deadline = time.time() + 120
        while (st := httpx.get(f"{s.url}/tools/registrations/{job}").json())["status"] in ("queued", "training"):
            assert time.time() < deadline, st
            again = httpx.post(s.url + "/chat/completions", json=body)
            assert again.status_code in (503, 200)
            if again.status_code == 503:  # asked again meanwhile: the same job, not a second one
                assert job in again.json()["error"]["message"]
            time.sleep(0.1)
        assert st["status"] == "ready" and st["result"]["synthetic_traces"] > 0, st
        ok = httpx.post(s.url + "/chat/completions", json=body)
        assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "echo"
    finally:
        s.close()


def test_a_swap_waits_for_the_rows_in_flight(tm):
    cfg = ControllerConfig(max_new_tokens=200, stop_text_loops=False)
    engine = Engine(tm, cfg, batch_size=2)
    try:
        done_at: list[float] = []
        prompt = tm.chat.prompt_ids([{"role": "user", "content": "tell me a long story"}])
        engine.submit(Request(prompt, TurnSpec(["add"], "none", 200, "user"),
                              lambda ev: ev[0] == "done" and done_at.append(time.perf_counter())))
        deadline = time.time() + 20
        while engine.active == 0 and not done_at:
            assert time.time() < deadline
            time.sleep(0.005)
        other = TokMem.create([add, get_weather], tm.loaded)
        assert engine.swap(other, timeout=60)
        swapped_at = time.perf_counter()
        assert done_at and done_at[0] <= swapped_at and engine.tm is other and engine.swaps == 1
    finally:
        engine.close()


def test_a_client_that_drops_its_stream_frees_its_row(tm):
    from tokmem_agent.decoding.controller import Controller

    cfg, _ = _long_turn(tm, 600)
    s = Served(tm, max_new_tokens=600)
    s.engine.controller = Controller(tm, cfg)
    try:
        body = {"model": "tiny", "messages": [{"role": "user", "content": "tell me a long story"}],
                "tools": TOOLS, "tool_choice": "none", "stream": True}
        with httpx.Client() as c, c.stream("POST", s.url + "/chat/completions", json=body) as r:
            assert r.status_code == 200
            next(r.iter_lines())  # the first chunk: the request is queued or decoding
            deadline = time.time() + 20
            while s.engine.active == 0 and s.engine.served == 0:
                assert time.time() < deadline
                time.sleep(0.005)
        # the connection is closed: the row ends at the next step, long before 600 tokens
        deadline = time.time() + 20
        while s.engine.active:
            assert time.time() < deadline
            time.sleep(0.01)
        assert s.engine.served == 1 and s.engine.cancelled == 1  # ended by the cancel, not by its budget
        assert httpx.get(s.url.replace("/v1", "/health")).json()["cancelled"] == 1
    finally:
        s.close()


def test_tools_offered_to_requests_without_tools(tm):
    s = Served(tm, default_tools=["add"])
    try:
        msgs = [{"role": "user", "content": "add 2 and 3"}]
        r = s.client.chat.completions.create(model="tiny", messages=msgs, tool_choice="required", max_tokens=8)
        assert r.choices[0].message.tool_calls[0].function.name == "add"  # the offered tool, no 'tools' sent
        none = s.client.chat.completions.create(model="tiny", messages=msgs, tools=[], max_tokens=8)
        assert none.choices[0].message.tool_calls is None  # tools=[]: none, as asked
    finally:
        s.close()
