"""The kw-router baseline: the TF-IDF router alone, the method on the tiny random model, the eval command."""

from __future__ import annotations

import json

import pytest
from toydata import TOOLS, toy_records  # tests/toydata.py
from typer.testing import CliRunner

from evals.methods import (
    NO_CALL,
    KeywordRouter,
    KeywordRouterMethod,
    MethodOutput,
    call_prefix,
    last_user_text,
    parse_tool_calls,
    router_text,
    tool_inventory,
)
from evals.metrics import json_valid, schema_valid
from tokmem_agent.errors import ConfigError
from tokmem_agent.model.loader import LoadedModel, tokenizer_fingerprint
from tokmem_agent.traces import load_traces

CHATTER = ["hello there", "thanks, bye", "hi, how are you", "ok thank you", "good morning", "bye bye"]


def _records(no_call: bool = True) -> list[dict]:
    recs = toy_records()
    if no_call:
        recs += [{"query": q, "tools": TOOLS, "answers": []} for q in CHATTER]
    for i, r in enumerate(recs):
        r["id"] = f"r{i}"
    return recs


@pytest.fixture()
def train():
    return load_traces(_records())


@pytest.fixture()
def loaded(tiny_model, tiny_tokenizer):
    return LoadedModel(tiny_model, tiny_tokenizer, "tiny", tokenizer_fingerprint(tiny_tokenizer))


def _trace(query: str, answers: list[dict] | None = None, **kw):
    return load_traces([{"id": "q", "query": query, "tools": TOOLS, "answers": answers or [], **kw}])[0]


# ----- the router -------------------------------------------------------------------------------------------
def test_router_learns_the_toy_split(train):
    r = KeywordRouter().fit(train)
    assert set(r.classes) == {"get_weather", "add", "send_email", "play_song", NO_CALL}
    assert r.tools == {"get_weather", "add", "send_email", "play_song"}
    assert r.train_accuracy == 1.0 and r.n_train == len(train) and r.n_params > 0
    assert r.predict("what is the weather in Cairo?") == "get_weather"
    assert r.predict("please add 7 and 9") == "add"
    assert r.predict("send an email to alice") == "send_email"
    assert r.predict("play the song Lima") == "play_song"
    assert r.predict("thanks, bye") is None  # the no-call class
    top = r.top_k("weather in Rome?", 3)
    assert len(top) == 3 and top[0][0] == "get_weather" and top[0][1] > top[1][1] >= top[2][1]
    assert abs(sum(p for _, p in r.top_k("weather in Rome?", 10)) - 1.0) < 1e-6
    held_out = load_traces([{"query": "weather in Lima?", "tools": TOOLS,
                             "answers": [{"name": "get_weather", "arguments": {"city": "Lima"}}]},
                            {"query": "hello there", "tools": TOOLS, "answers": []}])
    assert r.accuracy(held_out) == 1.0


def test_router_labels_and_determinism(train):
    multi = next(t for t in train if len(t.calls) == 2)
    assert KeywordRouter.label(multi) == "get_weather"  # the FIRST gold tool
    a, b = KeywordRouter(seed=3).fit(train), KeywordRouter(seed=3).fit(train)
    assert a.config() == b.config() and a.top_k("add 3 and 4", 4) == b.top_k("add 3 and 4", 4)
    assert a.config()["no_call_class"] is True
    assert KeywordRouter().fit(load_traces(_records(no_call=False))).config()["no_call_class"] is False


def test_router_text_modes():
    t = load_traces([{"id": "d", "query": "ignored", "tools": TOOLS, "answers": [],
                      "messages": [{"role": "user", "content": "I want the weather"},
                                   {"role": "assistant", "content": "Which city?"},
                                   {"role": "user", "content": "Oslo"}]}])[0]
    assert last_user_text(t) == router_text(t, "last-user") == "Oslo"
    assert router_text(t, "context") == "I want the weather\nWhich city?\nOslo"
    with pytest.raises(ConfigError, match="router text"):
        KeywordRouter(text="everything")


def test_router_with_one_class_and_untrained():
    with pytest.raises(ConfigError, match="not trained"):
        KeywordRouter().predict("x")
    with pytest.raises(ConfigError, match="no training traces"):
        KeywordRouter().fit([])
    recs = [r for r in _records(no_call=False) if r["answers"][0]["name"] == "add"]
    r = KeywordRouter().fit(load_traces(recs))
    assert r.predict("anything at all") == "add" and r.n_params == 0


# ----- the method on the tiny random model ------------------------------------------------------------------
def test_method_writes_schema_valid_arguments_for_the_routed_tool(loaded, train):
    m = KeywordRouterMethod(loaded, tool_inventory(train), KeywordRouter().fit(train), max_new_tokens=200)
    assert m.name == "kw-router" and m.known_tools == {"get_weather", "add", "send_email", "play_song"}
    tools = {t["name"]: t for t in TOOLS}
    for query, tool in (("weather in Paris?", "get_weather"), ("email to alice", "send_email")):
        trace = _trace(query)
        out = m.predict(trace)
        assert isinstance(out, MethodOutput) and out.extra["routed"] == tool and not out.extra.get("cut")
        assert [c.name for c in out.calls] == [tool] and len(out.raw_args) == 1
        # the random model's arguments, constrained: valid JSON, valid against the routed tool's schema
        assert json_valid(out.raw_args[0]) and schema_valid(out.raw_args[0], tools[tool])
        assert out.text.startswith(call_prefix(tool)) and out.text.endswith("}</tool_call>")
        assert parse_tool_calls(out.text).calls == out.calls  # the in-context call format, parseable
        # only the routed tool's schema is in the prompt
        prompt = m.tokenizer.decode(m.prompt_ids(trace.compositional_context(), [m.by_name[tool]]))
        assert tool in prompt and not any(t in prompt for t in tools if t != tool)
        assert out.prompt_tokens > len(m.tokenizer(prompt)["input_ids"]) // 2 and 0 < out.generated_tokens <= 200
        assert MethodOutput.from_dict(json.loads(json.dumps(out.to_dict()))) == out
    none = m.predict(_trace("thanks, bye"))
    assert none.calls == [] and none.extra["routed"] is None and none.generated_tokens == 0
    assert m.describe()["router_train_accuracy"] == 1.0 and m.describe()["trainable_params"] > 0
    assert m.config()["router"]["C"] == 10.0


def test_method_budget_cuts_the_arguments(loaded, train):
    m = KeywordRouterMethod(loaded, tool_inventory(train), KeywordRouter().fit(train), max_new_tokens=2)
    out = m.predict(_trace("add 3 and 5"))
    assert out.extra.get("cut") and out.generated_tokens == 2 and out.calls[0].name == "add"
    assert not out.text.endswith("</tool_call>")


def test_method_needs_a_definition_for_every_routed_tool(loaded, train):
    inventory = [t for t in tool_inventory(train) if t["name"] != "play_song"]
    with pytest.raises(ConfigError, match="play_song"):
        KeywordRouterMethod(loaded, inventory, KeywordRouter().fit(train))


# ----- the command -----------------------------------------------------------------------------------------
def test_eval_kw_router_needs_train_data_then_runs(tmp_path, tiny_dir):
    from tokmem_agent.cli import app

    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _records()))
    out = tmp_path / "report"
    base = ["eval", "--data", str(data), "--out", str(out), "--methods", "kw-router", "--model", str(tiny_dir),
            "--no-progress"]
    r = CliRunner().invoke(app, base)
    assert r.exit_code == 2 and "kw-router needs --train-data" in r.output
    r = CliRunner().invoke(app, [*base, "--train-data", str(data), "--router-text", "nope"])
    assert r.exit_code == 2 and "--router-text" in r.output
    args = [*base, "--train-data", str(data), "--limit", "3", "--max-new-tokens", "8"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "keyword router: 5 classes" in r.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics) == ["kw-router"] and metrics["kw-router"]["overall"]["n"] == 3
    assert metrics["kw-router"]["overall"]["tool_f1"] == 1.0  # the router alone picks the tools
    results = json.loads((out / "results.json").read_text())
    assert results["methods"]["kw-router"]["description"]["router"]["n_train"] == len(_records())
    assert "kw-router" in (out / "report.md").read_text()
    cache = (out / "predictions" / "kw-router.jsonl").read_text()
    r = CliRunner().invoke(app, args)  # the same router config: nothing predicted again
    assert r.exit_code == 0, r.output
    assert (out / "predictions" / "kw-router.jsonl").read_text() == cache


def test_router_bind_record_limits_the_choice(loaded, train):
    r = KeywordRouter().fit(train)
    # among=: only those tools (and no-call) compete, probabilities as before
    full = dict(r.top_k("weather in Rome?", 10))
    only = r.top_k("weather in Rome?", 3, among=["add", "send_email"])
    assert {n for n, _ in only} <= {"add", "send_email", NO_CALL} and len(only) == 3
    assert all(abs(full[n] - p) < 1e-9 for n, p in only)
    m = KeywordRouterMethod(loaded, tool_inventory(train), r, max_new_tokens=200, bind="record")
    small = [t for t in TOOLS if t["name"] in ("add", "play_song")]
    trace = load_traces([{"id": "b", "query": "weather in Paris?", "tools": small, "answers": []}])[0]
    out = m.predict(trace)
    assert out.extra["routed"] in (None, "add", "play_song")  # never get_weather: it is not bound
    assert m.config()["bind"] == "record"
    assert KeywordRouterMethod(loaded, tool_inventory(train), r).predict(trace).extra["routed"] == "get_weather"
    with pytest.raises(ConfigError, match="bind must be one of"):
        KeywordRouterMethod(loaded, tool_inventory(train), r, bind="all")
