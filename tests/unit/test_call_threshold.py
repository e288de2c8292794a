"""The calibrated call-or-answer decision: memory-token mass vs a threshold, and its calibration."""

from __future__ import annotations

import math

import pytest
import torch
from scripted import EOT, Script, plan_of  # tests/scripted.py

from tokmem_agent import ControllerConfig
from tokmem_agent.agent import TokMemAgent
from tokmem_agent.decoding.calibrate import (
    calibrate_call_threshold,
    choose_threshold,
    decision_points,
    first_decisions,
    no_call_traces,
    stats,
)
from tokmem_agent.errors import ConfigError, DataFormatError
from tokmem_agent.model.loader import LoadedModel, tokenizer_fingerprint
from tokmem_agent.tokmem import TokMem
from tokmem_agent.traces import Call, Trace


def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: first
        b: second
    """
    return a + b


def mul(a: int, b: int) -> int:
    """Multiply two integers.

    Args:
        a: first
        b: second
    """
    return a * b


def neg(a: int) -> int:
    """Negate an integer.

    Args:
        a: the number
    """
    return -a


@pytest.fixture()
def tm(tiny_model, tiny_tokenizer):
    loaded = LoadedModel(tiny_model, tiny_tokenizer, "tiny", tokenizer_fingerprint(tiny_tokenizer))
    return TokMem.create([add, mul, neg], loaded)


class SplitFirst(Script):
    """The first decision sees one text token at 2.0 and each memory token at 1.5 (all else -inf): argmax
    answers, but the three memory tokens together hold more mass than the text token."""

    def __call__(self, model):  # type: ignore[no-untyped-def]
        s = super().__call__(model)
        tm = self.tm
        first = {"done": False}
        orig = s.feed

        def feed(ids):  # type: ignore[no-untyped-def]
            out = orig(ids)
            if not first["done"]:
                first["done"] = True
                crafted = torch.full_like(out, float("-inf"))
                crafted[tm.chat.text_ids("ok")[0]] = 2.0
                for n in tm.bank.names:
                    crafted[tm.model.memory_id(n)] = 1.5 + (0.01 if n == "mul" else 0.0)
                s._last_logits = crafted
                return crafted
            return out

        s.feed = feed  # type: ignore[method-assign]
        return s


def run(tm, threshold, plan):
    agent = TokMemAgent(tm, [add, mul, neg], ControllerConfig(constrained=False, call_threshold=threshold))
    agent.controller.session_factory = SplitFirst(tm, plan)
    return agent.run("what is 2 times 3?")


def expected_mass() -> float:
    m = [1.5, 1.51, 1.5]
    return sum(math.exp(x) for x in m) / (math.exp(2.0) + sum(math.exp(x) for x in m))


def test_argmax_answers_but_the_mass_calls(tm):
    # the first scripted token is ignored (the crafted logits decide); after it the plan drives
    off = run(tm, "off", plan_of(tm, None, "ok", EOT))
    assert off.steps == [] and off.call_prob is None
    on = run(tm, 0.5, plan_of(tm, None, '{"a":2,"b":3}', EOT, "It is 6.", EOT))
    assert [s.tool for s in on.steps] == ["mul"]  # the best memory token once the mass says "call"
    assert on.call_prob == pytest.approx(expected_mass(), rel=1e-4)
    assert on.steps[0].result == 6 and on.answer == "It is 6."


def test_below_the_threshold_it_answers_without_any_memory_token(tm):
    r = run(tm, 0.9, plan_of(tm, None, "add", "fine", EOT))  # the plan even pushes a memory token later
    assert r.steps == [] and r.call_prob == pytest.approx(expected_mass(), rel=1e-4)
    assert "[add]" not in r.text


def test_bank_value_is_the_default_and_off_ignores_it(tm):
    tm.meta["call_threshold"] = 0.5
    r = run(tm, "bank", plan_of(tm, None, '{"a":2,"b":3}', EOT, "6", EOT))
    assert [s.tool for s in r.steps] == ["mul"]
    assert run(tm, "off", plan_of(tm, None, "ok", EOT)).steps == []
    del tm.meta["call_threshold"]
    assert run(tm, "bank", plan_of(tm, None, "ok", EOT)).steps == []  # no calibrated value: argmax


def after_result(tm, threshold, plan):
    agent = TokMemAgent(tm, [add, mul, neg], ControllerConfig(constrained=False, call_threshold=1.0,
                                                              continue_threshold=threshold))
    agent.controller.session_factory = Script(tm, plan)
    convo = [{"role": "user", "content": "add 1 and 1 then negate"},
             {"role": "assistant", "content": "", "calls": [Call("add", {"a": 1, "b": 1})]},
             {"role": "tool", "name": "add", "content": "2"}]
    return agent.controller.run(convo, agent.tools)


def test_after_a_result_the_continue_threshold_decides_not_the_call_threshold(tm):
    # call_threshold 1.0 would answer a user message unless the memory tokens hold all the mass; after a
    # tool result only continue_threshold counts: "off" is argmax (the plan's call runs) ...
    r = after_result(tm, "off", plan_of(tm, "neg", '{"a":2}', EOT, "-2", EOT))
    assert [s.tool for s in r.steps] == ["neg"] and r.call_prob is None
    # ... and a threshold above the mass there answers instead (the plan's memory token is masked: the
    # scripted +1e4 goes to a masked id, so the model's own text follows)
    plan = [None] + plan_of(tm, "-2", EOT)
    r = after_result(tm, 1.0, plan)
    assert r.steps == []


def test_go_on_threshold_comes_from_the_bank(tm):
    ctl = TokMemAgent(tm, [add]).controller
    assert ctl.call_threshold("tool") is None
    tm.meta.update(call_threshold=0.3, continue_threshold=0.7)
    assert (ctl.call_threshold("user"), ctl.call_threshold("tool")) == (0.3, 0.7)


@pytest.mark.parametrize("bad", [-0.1, 1.5, "sometimes"])
def test_bad_threshold_is_a_config_error(bad):
    with pytest.raises(ConfigError, match="call_threshold"):
        ControllerConfig(call_threshold=bad)
    with pytest.raises(ConfigError, match="continue_threshold"):
        ControllerConfig(continue_threshold=bad)


def test_choose_threshold_separates_and_sits_between_the_classes():
    d = [(0.9, True, True), (0.8, True, True), (0.6, True, False), (0.3, False, True), (0.1, False, False)]
    t = choose_threshold(d)
    assert 0.3 < t <= 0.6
    s = stats(d, t)
    assert (s.recall, s.no_call_rate, s.precision) == (1.0, 1.0, 1.0)
    a = stats(d, None)
    assert (a.true_calls, a.false_calls) == (2, 1) and a.recall == pytest.approx(2 / 3)


def test_choose_threshold_weighs_classes_equally():
    # 10 calls at p=0.4 and 2 no-calls at 0.45: calling everything is right 10/12 times, but balanced
    # accuracy prefers a threshold above 0.45 only if it keeps the calls, which it cannot: it picks <= 0.4
    d = [(0.4, True, True)] * 10 + [(0.45, False, True)] * 2 + [(0.05, False, False)] * 3
    t = choose_threshold(d)
    s = stats(d, t)
    assert s.recall == 1.0 and s.false_calls == 2 and t <= 0.4


def test_choose_threshold_needs_both_classes():
    with pytest.raises(DataFormatError, match="with calls and requests without"):
        choose_threshold([(0.5, True, True)])


def traces():
    calls = [Trace(id=f"c{i}", messages=[{"role": "user", "content": f"add {i} and {i + 1}"}],
                   calls=[Call("add", {"a": i, "b": i + 1})], results=[2 * i + 1]) for i in range(4)]
    chain = [Trace(id=f"m{i}", messages=[{"role": "user", "content": f"add {i} and 1, then negate it"}],
                   calls=[Call("add", {"a": i, "b": 1}), Call("neg", {"a": i + 1})], results=[i + 1, -i - 1])
             for i in range(2)]
    none = [Trace(id=f"n{i}", messages=[{"role": "user", "content": q}], calls=[])
            for i, q in enumerate(["hello there", "thanks!", "who are you?"])]
    return calls + chain + none


def test_decision_points_after_the_user_and_after_each_result():
    pts = decision_points(traces())
    assert [lab for _, lab in pts["user"]] == [True] * 6 + [False] * 3
    # 4 single calls: stop after the result; 2 chains: go on after the first, stop after the second
    assert sorted(lab for _, lab in pts["tool"]) == [False] * 6 + [True] * 2
    go_on = next(m for m, lab in pts["tool"] if lab)
    assert [x["role"] for x in go_on] == ["user", "assistant", "tool"] and go_on[-1]["content"] == "1"


def test_calibration_stores_thresholds_and_stats_that_survive_save_load(tm, tmp_path):
    cal = calibrate_call_threshold(tm, traces())
    d = first_decisions(tm, decision_points(traces())["user"])
    assert len(d) == 9 and all(0.0 <= p <= 1.0 for p, _, _ in d)
    assert cal.call.at_threshold.balanced_accuracy == stats(d, cal.call.threshold).balanced_accuracy
    assert cal.call.at_threshold.balanced_accuracy >= max(stats(d, p).balanced_accuracy for p, _, _ in d) - 1e-12
    assert cal.go_on is not None and cal.go_on.at_threshold.n_call == 2 and cal.go_on.at_threshold.n_no_call == 6
    assert tm.meta["call_threshold"] == cal.call.threshold
    assert tm.meta["continue_threshold"] == cal.go_on.threshold
    assert tm.meta["call_calibration"]["call"]["at_threshold"]["n_no_call"] == 3
    tm.save(tmp_path / "bank")
    again = TokMem.load(tmp_path / "bank", tm.loaded)
    assert again.meta["call_threshold"] == cal.call.threshold
    assert "call again after a result" in cal.summary()


def test_calibration_without_chains_sets_no_go_on_threshold(tm):
    tm.meta["continue_threshold"] = 0.5
    cal = calibrate_call_threshold(tm, [t for t in traces() if len(t.calls) < 2])
    assert cal.go_on is None and "continue_threshold" not in tm.meta


def test_training_drops_a_stale_threshold(tm):
    from tokmem_agent import TrainConfig

    tm.meta.update(call_threshold=0.5, continue_threshold=0.5)
    tm.train(traces()[:4], TrainConfig(epochs=1, batch_size=2, eval_fraction=0.0, no_call_share=0.0,
                                       progress=False, anchors_per_tool=0))
    assert "call_threshold" not in tm.meta and "continue_threshold" not in tm.meta


def test_no_call_text_file(tmp_path):
    p = tmp_path / "msgs.txt"
    p.write_text("# comment\nhello\n\n  thanks a lot  \n", encoding="utf-8")
    ts = no_call_traces(p)
    assert [t.messages[0]["content"] for t in ts] == ["hello", "thanks a lot"] and all(not t.calls for t in ts)
    (tmp_path / "empty.txt").write_text("# nothing\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match="empty.txt"):
        no_call_traces(tmp_path / "empty.txt")
    with pytest.raises(DataFormatError, match="missing.txt"):
        no_call_traces(tmp_path / "missing.txt")


def test_plain_accuracy_objective_for_the_go_on_decision():
    # 2 go-on points at 0.3, 10 stop points at 0.2, one stop point at 0.35: balanced accuracy takes both
    # go-ons (threshold <= 0.3, one false go-on); plain accuracy makes 1 error at <= 0.3 and 2 above 0.35
    d = [(0.3, True, True)] * 2 + [(0.2, False, False)] * 10 + [(0.35, False, True)]
    assert choose_threshold(d, "accuracy") <= 0.3
    d2 = [(0.3, True, True)] + [(0.31, False, True)] * 3 + [(0.1, False, False)] * 5
    assert choose_threshold(d2, "balanced") <= 0.3  # recall 1, no-call 5/8 beats recall 0, no-call 1
    assert choose_threshold(d2, "accuracy") > 0.31  # 1 error (the missed go-on) beats 3 false go-ons


def test_calibration_refuses_held_out_calls_of_tools_the_bank_lacks(tm):
    other = Trace(id="x", messages=[{"role": "user", "content": "q"}], calls=[Call("book_hotel", {})])
    with pytest.raises(DataFormatError, match="no token for: book_hotel"):
        calibrate_call_threshold(tm, [*traces(), other])
    assert "call_threshold" not in tm.meta


def test_call_mass_is_taken_with_unbound_tools_masked(tm):
    from tokmem_agent.decoding.controller import Controller

    ctl = Controller(tm)
    v = tm.model.vocab_size
    logits = torch.full((tm.model.total_vocab,), -5.0)
    logits[0] = 0.0  # one text token
    logits[v + tm.bank.index("add")] = 0.0
    logits[v + tm.bank.index("mul")] = 3.0  # most of the memory mass sits on an unbound tool
    everything = ctl.call_probability(logits, tm.tool_names)
    only_add = ctl.call_probability(logits, ["add"])
    # with mul masked out, add's mass is taken against the text tokens alone, not diluted by mul
    text = torch.logsumexp(logits[:v], 0)  # neg is unbound too: only text competes with add
    assert only_add == pytest.approx(float(1 / (1 + torch.exp(text - logits[v + tm.bank.index("add")]))), rel=1e-5)
    assert everything > only_add > float(torch.softmax(logits, 0)[v + tm.bank.index("add")])
    assert ctl.call_probability(logits, []) == 0.0


def test_parse_threshold_reads_command_line_values():
    from tokmem_agent.config import parse_threshold

    assert parse_threshold("bank") == "bank" and parse_threshold("off") == "off" and parse_threshold("0.3") == 0.3
    with pytest.raises(ConfigError, match="--call-threshold must be bank, off or a probability, got 'high'"):
        parse_threshold("high", "--call-threshold")
