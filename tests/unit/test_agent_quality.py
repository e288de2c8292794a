"""The scoring of bench/agent_quality.py (no model) and the hand-written request set it reads."""

from __future__ import annotations

import importlib.util
import json
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import jsonschema
import pytest

from tokmem_agent.decoding.runlog import RunResult, Step
from tokmem_agent.registry import Tool
from tools.basic import make_tools

ROOT = Path(__file__).resolve().parents[2]


def _load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("agent_quality", ROOT / "bench" / "agent_quality.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


aq = _load_bench()

CHAIN = {"id": "t-1", "category": "chain",
         "query": "change 300 bucks into euros and put a 10% tip on that",
         "gold": [{"name": "convert_currency", "arguments": {"amount": 300, "from_currency": "USD",
                                                              "to_currency": "EUR"}},
                  {"name": "add_tip", "arguments": {"bill": 276, "percent": 10}}]}
GOOD_ANSWER = "300 USD is 276.00 EUR. With a 10% tip the total comes to 303.60 EUR."


def predicted(calls: list[dict[str, Any]], setup: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Calls as the agent would report them: executed, status ok, with their results."""
    results = aq.execute(setup or [], calls)
    return [{**c, "status": "ok", "result": r} for c, r in zip(calls, results)]


def test_right_chain_succeeds() -> None:
    results = aq.gold_results(CHAIN)
    pred = predicted([{"name": "convert_currency", "arguments": {"amount": 300.0, "from_currency": "USD",
                                                                 "to_currency": "EUR"}},
                      {"name": "add_tip", "arguments": {"bill": 276.0, "percent": 10}}])
    s = aq.score_record(CHAIN, results, pred, GOOD_ANSWER)
    assert s["calls_right"] and s["tools_right"] and s["answer_states"] and s["faithful"] and s["success"]


def test_wrong_bill_fails_calls_right() -> None:
    results = aq.gold_results(CHAIN)
    pred = predicted([CHAIN["gold"][0], {"name": "add_tip", "arguments": {"bill": 300, "percent": 10}}])
    s = aq.score_record(CHAIN, results, pred, GOOD_ANSWER)
    assert s["tools_right"] and not s["calls_right"] and not s["success"]


def test_failed_calls_are_skipped_and_extra_calls_fail() -> None:
    results = aq.gold_results(CHAIN)
    pred = predicted(CHAIN["gold"])
    failed = {"name": "add_tip", "arguments": None, "status": "invalid_json", "result": None}
    assert aq.calls_right([pred[0], failed, pred[1]], CHAIN["gold"], results)
    assert not aq.calls_right(pred + pred[1:], CHAIN["gold"], results)
    assert not aq.tools_right(pred[:1], CHAIN["gold"])


def test_wrong_figure_fails_answer_states() -> None:
    results = aq.gold_results(CHAIN)
    pred = predicted(CHAIN["gold"])
    s = aq.score_record(CHAIN, results, pred, "That is 276 EUR, and with the tip 330.00 EUR in total.")
    assert s["calls_right"] and not s["answer_states"] and not s["success"]


def test_answer_keys_pick_the_figure() -> None:
    rec = {"category": "single", "gold": [{"name": "add_tip", "arguments": {"bill": 152, "percent": 18,
                                                                             "people": 4}}],
           "answer_keys": ["per_person"]}
    results = aq.gold_results(rec)
    assert aq.answer_states(rec, results, "Each of you pays $44.84.")
    assert not aq.answer_states(rec, results, "The total is $179.36.")


@pytest.mark.parametrize(("value", "text", "ok"), [
    (1234.5, "That comes to 1,234.5 in total.", True),
    (1234.5, "about 1,234.50", True),
    (1234.56, "roughly 1,234.6", True),
    (29.4285714286, "about 29.43 weeks", True),
    (29.4285714286, "about 29 weeks", True),
    (176.667, "set it to 177 °C", False),  # never a different integer part
    (176.667, "176.7 degrees", True),
    (0.000123457, "0.000123 of it", True),
    (42, "it's 24", False),
    (-10, "10 days earlier", True),
    (1048576, "2^20 = 1048576", True),
])
def test_number_stated(value: float, text: str, ok: bool) -> None:
    assert aq.number_stated(value, text) is ok


def test_dates_and_strings_stated() -> None:
    for text in ("It's 2025-06-16.", "Monday, June 16, 2025", "16 June 2025", "the 16th of June 2025", "Jun 16th 2025"):
        assert aq.date_stated("2025-06-16", text), text
    assert not aq.date_stated("2025-06-16", "June 17, 2025")
    assert aq.text_stated("call the plumber", "Added \u201cCall   the Plumber\u201d to your list.")


def test_loose_results() -> None:
    todo = predicted([{"name": "add_todo", "arguments": {"title": "Call the plumber."}}])[0]
    todo["result"]["id"] = 7
    assert aq.call_right(todo, {"name": "add_todo", "arguments": {"title": "call the plumber"}},
                         {"id": 1, "title": "call the plumber", "due": None})
    calc = predicted([{"name": "calculate", "arguments": {"expression": "0.175 * 240"}}])[0]
    gold = {"name": "calculate", "arguments": {"expression": "17.5 / 100 * 240"}}
    assert aq.call_right(calc, gold, aq.execute([], [gold])[0])
    note = {"name": "add_note", "arguments": {"title": "Gate", "text": "4417"}}
    other = predicted([{"name": "add_note", "arguments": {"title": "Gate", "text": "4471"}}])[0]
    assert not aq.call_right(other, note, aq.execute([], [note])[0])


def test_loop_answer_fails() -> None:
    loop = "The total is 303.60 EUR. " * 4
    assert aq.is_loop(loop) and not aq.faithful(loop)
    assert aq.is_loop("so the total with the tip is 303.60, " * 3)
    assert not aq.faithful("x" * 601)
    assert not aq.is_loop(GOOD_ANSWER)
    results = aq.gold_results(CHAIN)
    assert not aq.score_record(CHAIN, results, predicted(CHAIN["gold"]), loop)["success"]


def test_no_tool_record() -> None:
    rec = {"id": "t-2", "category": "no_tool", "query": "hi!", "gold": []}
    ok = aq.score_record(rec, [], [], "Hello! How can I help?")
    assert ok["success"] and ok["no_call"] and ok["answer_states"] is None
    call = [{"name": "calculate", "arguments": {"expression": "1+1"}, "status": "ok", "result": {"result": 2}}]
    bad = aq.score_record(rec, [], call, "Hello!")
    assert not bad["success"] and bad["false_call"]
    assert not aq.score_record(rec, [], [], "  ")["success"]


def test_summary_table_and_targets() -> None:
    rows = [{"category": "single", "seconds": 2.0, **aq.score_record(CHAIN, aq.gold_results(CHAIN),
                                                                     predicted(CHAIN["gold"]), GOOD_ANSWER)},
            {"category": "no_tool", "seconds": 1.0,
             **aq.score_record({"category": "no_tool", "gold": []}, [], [{"name": "calculate"}], "hi")}]
    summary = aq.summarize(rows)
    assert summary["all"]["n"] == 2 and summary["all"]["success"] == 0.5
    assert summary["no_tool"]["false_call"] == 1.0 and summary["single"]["no_call"] is None
    table = aq.format_table(summary)
    assert table.splitlines()[0].startswith("category") and "single" in table and "-" in table
    misses = aq.target_misses(summary)
    assert any(m.startswith("no_tool no_call") for m in misses) and not any("chain" in m for m in misses)


class GoldAgent:
    """Stands in for TokMemAgent: makes a record's gold calls with the tools it is given."""

    answers: ClassVar[dict[str, str]] = {}

    def __init__(self, tm: Any, fns: list[Any], config: Any = None):
        self.fns = {f.__name__: f for f in fns}

    def run(self, query: str) -> RunResult:
        rec = next(r for r in RECORDS if r["query"] == query)
        steps = [Step(round=i, tool=c["name"], argument_text=json.dumps(c["arguments"]), arguments=c["arguments"],
                      status="ok", result=self.fns[c["name"]](**c["arguments"])) for i, c in enumerate(rec["gold"])]
        return RunResult(answer=self.answers[query], steps=steps, outcome="answer", text="", prompt_tokens=0,
                         generated_tokens=0, fed_tokens=0)


def test_run_record_with_a_stand_in_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    import tokmem_agent.agent

    monkeypatch.setattr(tokmem_agent.agent, "TokMemAgent", GoldAgent)
    by_id = {r["id"]: r for r in RECORDS}
    GoldAgent.answers = {by_id["hw-024"]["query"]: "Two things: return the drill to Sam and send the wedding RSVP.",
                         by_id["hw-040"]["query"]: "Added. You have 3 items on your list."}
    rows = [aq.run_record(None, by_id[i]) for i in ("hw-024", "hw-040")]
    assert [r["success"] for r in rows] == [True, True]
    assert rows[1]["pred"][1]["result"]["count"] == 3 and rows[1]["gold"][1]["result"]["count"] == 3
    json.dumps(rows)
    dec = aq.call_decision(rows + [{"category": "no_tool", "pred": rows[0]["pred"]}])
    assert dec == {"n": 3, "calls_made": 3, "precision": 2 / 3, "recall": 1.0}


# ----- the data file ----------------------------------------------------------------------------------------
RECORDS = aq.load_records()
#: the second hand-written set (written after set A's failures were read, before any bank was scored on it)
RECORDS_B = aq.load_records(aq.DATA_B)
#: the third hand-written set (written by someone who had not seen sets A/B nor the templates)
RECORDS_C = aq.load_records(aq.DATA_C)
#: the fourth (session 14, written without seeing the other sets or the generator)
RECORDS_D = aq.load_records(aq.DATA_D)
MINIMUM = {"single": 26, "chain": 16, "no_tool": 24}
MINIMUM_B = {"single": 20, "chain": 12, "no_tool": 20}
MINIMUM_C = {"single": 28, "chain": 16, "no_tool": 22}
MINIMUM_D = {"single": 28, "chain": 18, "no_tool": 24}
SCHEMAS = {f.__name__: Tool.from_function(f).parameters for f in make_tools()}


@pytest.mark.parametrize(("records", "minimum"), [(RECORDS, MINIMUM), (RECORDS_B, MINIMUM_B), (RECORDS_C, MINIMUM_C),
                                                  (RECORDS_D, MINIMUM_D)], ids=["A", "B", "C", "D"])
def test_data_counts_and_fields(records: list[dict[str, Any]], minimum: dict[str, int]) -> None:
    assert len(records) >= 52
    assert len({r["id"] for r in records}) == len(records)
    assert len({r["query"] for r in records}) == len(records)
    counts = Counter(r["category"] for r in records)
    assert set(counts) <= set(aq.CATEGORIES)
    for cat, n in minimum.items():
        assert counts[cat] >= n, cat
    singles = Counter(r["gold"][0]["name"] for r in records if r["category"] == "single")
    assert set(singles) == set(SCHEMAS) and min(singles.values()) >= 2
    for r in records:
        assert set(r) <= {"id", "category", "query", "setup", "gold", "answer_keys"}, r["id"]
        assert r["query"].strip()
        n = len(r["gold"])
        assert {"single": n == 1, "chain": 2 <= n <= 3, "no_tool": n == 0}[r["category"]], r["id"]


@pytest.mark.parametrize("record", [r for r in RECORDS + RECORDS_B + RECORDS_C + RECORDS_D if r["gold"]],
                         ids=lambda r: r["id"])
def test_gold_calls_validate_and_execute(record: dict[str, Any]) -> None:
    for call in record.get("setup", []) + record["gold"]:
        jsonschema.validate(call["arguments"], SCHEMAS[call["name"]])
    results = aq.gold_results(record)
    assert len(results) == len(record["gold"])
    keys = record.get("answer_keys") or aq.DEFAULT_ANSWER_KEYS[record["gold"][-1]["name"]]
    assert all(k in results[-1] for k in keys)


def test_no_query_in_the_training_data() -> None:
    seen = set()
    for name in ("train.jsonl", "test.jsonl"):
        for line in (ROOT / "tools" / "data" / name).read_text(encoding="utf-8").splitlines():
            if line.strip():
                seen.add(" ".join(json.loads(line)["query"].lower().split()))
    assert not [r["id"] for r in RECORDS + RECORDS_B + RECORDS_C + RECORDS_D
                if " ".join(r["query"].lower().split()) in seen]
    assert not {r["query"] for r in RECORDS} & {r["query"] for r in RECORDS_B}
    older = {" ".join(r["query"].lower().split()) for r in RECORDS + RECORDS_B}
    assert not [r["id"] for r in RECORDS_C if " ".join(r["query"].lower().split()) in older]
    older |= {" ".join(r["query"].lower().split()) for r in RECORDS_C}
    assert not [r["id"] for r in RECORDS_D if " ".join(r["query"].lower().split()) in older]


def test_calibration_requests_are_set_a_with_real_results(tmp_path) -> None:
    """tools/data/calibration_requests.jsonl (the demo's hand-written calibration traces) is set A, converted
    by tools/calibration_set.py now: same requests, gold calls and executed results; sets B and C are not in it."""
    from tools.calibration_set import convert

    shipped = ROOT / "tools" / "data" / "calibration_requests.jsonl"
    convert(aq.DATA, tmp_path / "cal.jsonl")
    assert (tmp_path / "cal.jsonl").read_bytes() == shipped.read_bytes(), (
        "stale: python -m tools.calibration_set bench/data/pack_requests.jsonl --out " + str(shipped))
    cal = [json.loads(line) for line in shipped.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert [t["query"] for t in cal] == [r["query"] for r in RECORDS]
    held_out = {r["query"] for r in RECORDS_B + RECORDS_C}
    assert not held_out & {t["query"] for t in cal}
    for t, r in zip(cal, RECORDS):
        assert t["answers"] == r["gold"] and (t["results"] == aq.gold_results(r) if r["gold"] else not t["results"])


# ----- the two paths (--path agent / langchain) report the same calls ---------------------------------------
def test_langchain_messages_give_the_agent_paths_calls() -> None:
    """A create_agent conversation (calls, an error ToolMessage, an invalid call, the answer) converts to the
    pred/answer the agent path reports for the same calls, and so scores the same."""
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

    from bench.agent_paths import Returns, langchain_run, step_calls

    results = aq.gold_results(CHAIN)
    convert, tip = CHAIN["gold"]
    bad_calc = {"expression": "2 +"}
    err = "ValueError: cannot parse expression '2 +': invalid syntax"
    msgs = [HumanMessage(CHAIN["query"]),
            AIMessage("", tool_calls=[{"name": "convert_currency", "args": convert["arguments"], "id": "c1"}]),
            ToolMessage(json.dumps(results[0]), tool_call_id="c1", name="convert_currency"),
            AIMessage("", tool_calls=[{"name": "calculate", "args": bad_calc, "id": "c2"}],
                      invalid_tool_calls=[{"name": "add_tip", "args": '{"bill": 27', "id": "c3",
                                           "error": "arguments are not valid JSON", "type": "invalid_tool_call"}]),
            ToolMessage(err, tool_call_id="c2", name="calculate", status="error"),
            AIMessage("", tool_calls=[{"name": "add_tip", "args": tip["arguments"], "id": "c4"}]),
            ToolMessage(json.dumps(results[1]), tool_call_id="c4", name="add_tip"),
            AIMessage(GOOD_ANSWER, response_metadata={"finish_reason": "stop"})]
    steps = [Step(1, "convert_currency", "", convert["arguments"], "ok", results[0]),
             Step(2, "calculate", "", bad_calc, "exception", error=err),
             Step(2, "add_tip", '{"bill": 27', None, "invalid_json", error="arguments are not valid JSON"),
             Step(3, "add_tip", "", tip["arguments"], "ok", results[1])]
    run = langchain_run(msgs)
    assert (run.answer, run.outcome) == (GOOD_ANSWER, "answer")
    assert run.pred == step_calls(steps)
    assert aq.score_record(CHAIN, results, run.pred, run.answer)["success"]
    # the real return values, when the tools were wrapped, win over the ToolMessage text
    returns = Returns()
    fns = {f.__name__: f for f in returns.wrap(make_tools())}
    fns["convert_currency"](**convert["arguments"])
    fns["add_tip"](**tip["arguments"])
    msgs[2].content = msgs[6].content = "(shown to the model)"
    assert langchain_run(msgs, returns).pred == step_calls(steps)
    # stopped by the recursion limit: no answer, as the agent path after max_steps
    stopped = langchain_run(msgs[:3], stopped=True)
    assert (stopped.answer, stopped.outcome, len(stopped.pred)) == ("", "max_steps", 1)


@pytest.fixture()
def pack_tm(tiny_tokenizer: Any, make_tiny_model: Any) -> Any:
    from tokmem_agent.model.loader import LoadedModel, tokenizer_fingerprint
    from tokmem_agent.tokmem import TokMem

    loaded = LoadedModel(make_tiny_model(len(tiny_tokenizer)), tiny_tokenizer, "tiny",
                         tokenizer_fingerprint(tiny_tokenizer))
    return TokMem.create(make_tools(), loaded)


def _scripted_rows(tm: Any, record: dict[str, Any], plan: tuple[Any, ...], **config: Any) -> list[dict[str, Any]]:
    """run_record on the agent and the LangChain path with the same scripted tokens (tiny random model)."""
    from scripted import Script, plan_of  # tests/scripted.py

    import tokmem_agent.agent
    from bench.agent_paths import agent_path, langchain_path
    from tokmem_agent import ControllerConfig
    from tokmem_agent.integrations.langchain import ChatTokMem

    cfg = ControllerConfig(constrained=False, **config)
    script = Script(tm, plan_of(tm, *plan))

    class ScriptedAgent(tokmem_agent.agent.TokMemAgent):
        def __init__(self, *a: Any, **kw: Any):
            super().__init__(*a, **kw)
            self.controller.session_factory = script

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tokmem_agent.agent, "TokMemAgent", ScriptedAgent)
        agent = aq.run_record(tm, record, cfg, agent_path(tm, cfg))
    llm = ChatTokMem(tm=tm, controller_config=cfg)
    llm.controller.session_factory = Script(tm, plan_of(tm, *plan))  # a fresh copy of the plan
    return [agent, aq.run_record(tm, record, cfg, langchain_path(tm, cfg, llm))]


SCORES = ("success", "calls_right", "tools_right", "answer_states", "faithful")


def test_both_paths_run_a_chain_alike(pack_tm: Any) -> None:
    from scripted import EOT

    convert, tip = CHAIN["gold"]
    plan = ("convert_currency", json.dumps(convert["arguments"]), EOT, "calculate", '{"expression": "2 +"}', EOT,
            "add_tip", json.dumps(tip["arguments"]), EOT, GOOD_ANSWER, EOT)
    agent, lc = _scripted_rows(pack_tm, CHAIN, plan)
    assert [c["status"] for c in lc["pred"]] == ["ok", "exception", "ok"]  # the raising tool did not end the run
    assert lc["pred"] == agent["pred"] and lc["answer"] == agent["answer"] == GOOD_ANSWER
    assert lc["outcome"] == agent["outcome"] == "answer"
    assert [lc[k] for k in SCORES] == [agent[k] for k in SCORES] == [True] * len(SCORES)


def test_both_paths_stop_after_max_steps(pack_tm: Any) -> None:
    from scripted import EOT

    convert, tip = CHAIN["gold"]
    plan = ("convert_currency", json.dumps(convert["arguments"]), EOT, "add_tip", json.dumps(tip["arguments"]), EOT,
            GOOD_ANSWER, EOT)
    agent, lc = _scripted_rows(pack_tm, CHAIN, plan, max_steps=1)
    assert lc["outcome"] == agent["outcome"] == "max_steps" and lc["answer"] == agent["answer"] == ""
    assert lc["pred"] == agent["pred"] and [c["name"] for c in lc["pred"]] == ["convert_currency"]


def test_a_crashing_run_is_a_failed_record() -> None:
    def crash(fns: Any, query: str) -> Any:
        raise RuntimeError("boom")

    row = aq.run_record(None, CHAIN, runner=crash)
    assert row["outcome"] == "error: RuntimeError: boom" and row["pred"] == [] and not row["success"]
