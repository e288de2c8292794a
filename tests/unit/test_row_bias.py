"""Calibrated logit biases of rows registered from their schemas alone (tokmem_agent/row_bias.py)."""

from __future__ import annotations

import pytest
import torch
from toydata import TOOLS, toy_records  # tests/toydata.py

from tokmem_agent import ConfigError, RegisterConfig, TrainConfig, load_traces
from tokmem_agent.config import ROW_BIAS_KEY
from tokmem_agent.decoding.controller import Controller
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
