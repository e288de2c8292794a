"""Calibrated logit biases of rows registered from their schemas alone (tokmem_agent/row_bias.py)."""

from __future__ import annotations

import pytest
import torch
from toydata import TOOLS, toy_records  # tests/toydata.py

from tokmem_agent import ConfigError, RegisterConfig, TrainConfig, load_traces, read_only
from tokmem_agent.config import ANSWER_BIAS_KEY, ROW_BIAS_KEY
from tokmem_agent.decoding.controller import Controller
from tokmem_agent.decoding.grounding import Grounding
from tokmem_agent.decoding.turn import TurnDecoder
from tokmem_agent.model.loader import LoadedModel, tokenizer_fingerprint
from tokmem_agent.row_bias import MAX_BIAS, choose_bias
from tokmem_agent.tokmem import TokMem

FAST = TrainConfig(epochs=1, batch_size=4, eval_fraction=0.0, progress=False, decision_weight=1.0)


def test_choose_bias_sits_in_the_middle_of_the_gap():
    # positives need b > -m, negatives b < -m: the gap here is (-1, 5), its middle 2
    assert choose_bias([1.0, 3.0, 6.0], [-5.0, -9.0, -20.0]) == pytest.approx(2.0)
    # a greedy row (a negative it wins by 2): pulled down to the middle of (-4, -2)
    assert choose_bias([4.0, 7.0], [2.0, -3.0]) == pytest.approx(-3.0)
    # balanced accuracy: one positive weighs as much as many negatives
    many = [-1.0] * 200
    assert -1.0 < choose_bias([-3.0, 2.0], many) < 1.0  # 2 is bought back, not -3 (that would lose 200)
    assert choose_bias([], [-1.0]) == 0.0 and choose_bias([1.0], []) == 0.0
    assert choose_bias([-50.0], [-100.0]) == MAX_BIAS  # clipped
    assert choose_bias([100.0], [50.0]) == -MAX_BIAS
    # never high enough to take a negative not taken already: one old request at -2.5 caps it at 2.0
    # (balanced accuracy alone would buy both positives with it, at 6.5)
    assert choose_bias([-3.0, -2.0], [-2.5] + [-10.0] * 50) == pytest.approx(2.0)
    assert choose_bias([-3.0], [0.5, -10.0]) == 0.0  # a negative it takes already: no positive bias on top


@pytest.fixture()
def trained(tiny_model, tiny_tokenizer) -> TokMem:
    loaded = LoadedModel(tiny_model, tiny_tokenizer, "tiny-llama", tokenizer_fingerprint(tiny_tokenizer))
    tm = TokMem.create(TOOLS[:2], loaded)
    recs = [r for r in toy_records() if {a["name"] for a in r["answers"]} <= {"get_weather", "add"}]
    tm.train(load_traces(recs), FAST)
    return tm


def test_zero_data_registration_calibrates_a_bias_and_training_the_row_drops_it(trained, tmp_path):
    res = trained.register([TOOLS[3]], config=RegisterConfig(synth_per_tool=8, bias_per_tool=3, train=FAST))
    assert set(res.row_bias) == {"play_song"} and abs(res.row_bias["play_song"]) <= MAX_BIAS
    assert trained.meta[ROW_BIAS_KEY] == res.row_bias
    # stored with the bank
    trained.save(tmp_path / "b")
    assert TokMem.load(tmp_path / "b", trained.loaded).meta[ROW_BIAS_KEY] == res.row_bias
    # another registration keeps it; retraining that row drops it
    trained.register([TOOLS[2]], config=RegisterConfig(synth_per_tool=4, bias_per_tool=2, train=FAST))
    assert set(trained.meta[ROW_BIAS_KEY]) == {"play_song", TOOLS[2]["name"]}
    trained.register([TOOLS[3]], config=RegisterConfig(synth_per_tool=4, calibrate_bias=False, train=FAST),
                     retrain=True)
    assert set(trained.meta[ROW_BIAS_KEY]) == {TOOLS[2]["name"]}
    trained.forget(TOOLS[2]["name"])
    assert not trained.meta[ROW_BIAS_KEY]
    with pytest.raises(ConfigError, match="bias_per_tool"):
        RegisterConfig(bias_per_tool=0)


def test_registration_with_traces_gets_no_bias(trained):
    recs = [r for r in toy_records() if {a["name"] for a in r["answers"]} == {TOOLS[2]["name"]}]
    res = trained.register([TOOLS[2]], load_traces(recs), config=RegisterConfig(train=FAST))
    assert res.row_bias == {} and ROW_BIAS_KEY not in trained.meta


def test_the_bias_shifts_that_row_in_turns_on_a_user_message_only(trained):
    trained.meta[ROW_BIAS_KEY] = {"add": 2.5}
    ctl = Controller(trained)
    v, i = trained.model.vocab_size, trained.bank.index("add")
    user = ctl._memory_bias({"add", "get_weather"})  # [V+N]
    assert user[v + i] == 2.5 and user[v + trained.bank.index("get_weather")] == 0.0
    assert ctl._memory_bias({"add"}, rows=False)[v + i] == 0.0  # after a tool result
    assert ctl._memory_bias({"get_weather"})[v + i] == float("-inf")  # unbound stays masked
    # the call mass a calibrated threshold reads includes it
    logits = torch.zeros(trained.model.total_vocab)
    with_bias = ctl.call_probability(logits, ["add"])
    trained.meta.pop(ROW_BIAS_KEY)
    assert with_bias > ctl.call_probability(logits, ["add"])


@read_only
def area(width: float, height: float) -> dict:
    """Area and perimeter of a rectangle.

    Args:
        width: Width in metres.
        height: Height in metres.
    """
    return {"area": round(width * height, 2), "perimeter": round(2 * (width + height), 2)}


def test_a_tool_run_for_results_gets_an_answer_bias_that_training_drops(trained):
    res = trained.register([area], config=RegisterConfig(synth_per_tool=8, bias_per_tool=3, train=FAST))
    assert set(res.answer_bias) == {"area"} and 0.0 <= res.answer_bias["area"] <= MAX_BIAS
    assert trained.meta[ANSWER_BIAS_KEY] == res.answer_bias
    # a tool with no function to run (a schema dict) has no result to answer: no answer bias
    res = trained.register([TOOLS[3]], config=RegisterConfig(synth_per_tool=4, bias_per_tool=2, train=FAST))
    assert res.answer_bias == {} and set(trained.meta[ANSWER_BIAS_KEY]) == {"area"}
    trained.register([area], config=RegisterConfig(synth_per_tool=4, calibrate_bias=False, train=FAST), retrain=True)
    assert not trained.meta.get(ANSWER_BIAS_KEY)


def test_the_answer_bias_holds_the_memory_tokens_back_right_after_that_tools_result(trained):
    trained.meta[ANSWER_BIAS_KEY] = {"add": 3.0}
    ctl = Controller(trained)
    v = trained.model.vocab_size
    logits = torch.zeros(trained.model.total_vocab)
    after_add = Grounding(results=(("add", 5, {"a": 2, "b": 3}),))
    after_weather = Grounding(results=(("get_weather", {"temp": 21}, {}),))
    held = TurnDecoder(ctl, logits, ["add", "get_weather"], after="tool", ground=after_add)
    assert torch.all(held.open_bias[v:] == -3.0) and torch.all(held.open_bias[:v] == 0.0)
    for turn in (TurnDecoder(ctl, logits, ["add", "get_weather"], after="tool", ground=after_weather),
                 TurnDecoder(ctl, logits, ["add", "get_weather"], after="user", ground=after_add)):
        assert torch.all(turn.open_bias[v:] == 0.0)  # another tool's result, or a user message: unchanged
