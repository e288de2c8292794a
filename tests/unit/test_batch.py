"""Batched decoding (BatchSession, Controller.generate_turns / run_many, TokMemMethod.predict_many) gives
what one sequence at a time gives, on the tiny random model."""

from __future__ import annotations

import pytest
import torch
from toydata import add, get_weather  # tests/toydata.py

from tokmem_agent import ControllerConfig
from tokmem_agent.agent import TokMemAgent
from tokmem_agent.decoding.batch import BatchSession
from tokmem_agent.decoding.generate import DecodeSession
from tokmem_agent.model.loader import LoadedModel, tokenizer_fingerprint
from tokmem_agent.tokmem import TokMem


@pytest.fixture()
def tm(tiny_model, tiny_tokenizer):
    loaded = LoadedModel(tiny_model, tiny_tokenizer, "tiny", tokenizer_fingerprint(tiny_tokenizer))
    tm = TokMem.create([add, get_weather], loaded)
    with torch.no_grad():  # rows as large as the vocabulary's, so the random model calls now and then
        tm.bank.steer.mul_(3.0)
    return tm


PROMPTS = ["what is 2 + 3?", "weather in Oslo please", "hello there, how are you today my friend?", "sum 7 and 9"]


def test_batch_session_logits_equal_single_sessions(tm):
    prompts = [tm.chat.prompt_ids([{"role": "user", "content": p}]) for p in PROMPTS]
    singles = [DecodeSession(tm.model) for _ in prompts]
    batch = BatchSession(tm.model, len(prompts), pad_id=tm.chat.eot_id)
    batch.feed(dict(enumerate(prompts)))
    for s, p in zip(singles, prompts):
        s.feed(p)
    steps = [{0: [5, 6], 2: [7]}, {1: [8, 9, 10]}, {0: [11], 1: [12], 2: [13], 3: [14, 15]}]
    for feed in steps:
        batch.feed(feed)
        for r, ids in feed.items():
            singles[r].feed(ids)
        for r, s in enumerate(singles):
            assert torch.allclose(batch.logits(r), s.logits, atol=1e-4), (feed, r)
    batch.rollback(3, 2)
    singles[3].rollback(2)
    batch.feed({3: [20], 0: [21]})
    singles[3].feed([20])
    singles[0].feed([21])
    for r, s in enumerate(singles):
        assert batch.ids[r] == s.ids
        assert torch.allclose(batch.logits(r), s.logits, atol=1e-4), r


def test_batch_session_errors(tm):
    with pytest.raises(ValueError, match="at least one row"):
        BatchSession(tm.model, 0)
    b = BatchSession(tm.model, 2)
    with pytest.raises(ValueError, match="nothing fed to row 1"):
        b.logits(1)
    with pytest.raises(ValueError, match="outside this batch"):
        b.feed({2: [1]})


def test_keep_drops_rows_and_their_padding(tm):
    prompts = [tm.chat.prompt_ids([{"role": "user", "content": p}]) for p in PROMPTS]
    batch = BatchSession(tm.model, len(prompts), pad_id=tm.chat.eot_id)
    batch.feed(dict(enumerate(prompts)))
    batch.keep([2, 0])
    assert batch.rows == 2 and batch.mask.shape == (2, max(len(prompts[0]), len(prompts[2])))
    batch.feed({0: [5], 1: [6, 7]})
    for r, (p, extra) in enumerate([(prompts[2], [5]), (prompts[0], [6, 7])]):
        s = DecodeSession(tm.model)
        s.feed(p + extra)
        assert batch.ids[r] == p + extra and torch.allclose(batch.logits(r), s.logits, atol=1e-4)
    with pytest.raises(ValueError, match="non-empty subset"):
        batch.keep([3])


@pytest.mark.parametrize(("constrained", "release"), [(True, False), (False, False), (True, True)])
def test_generate_turns_equal_generate_turn(tm, constrained, release):
    agent = TokMemAgent(tm, [add, get_weather], ControllerConfig(constrained=constrained, max_new_tokens=40))
    ctl = agent.controller
    choices = ["any", None, "add", "none"]
    prompts = [tm.chat.prompt_ids([{"role": "user", "content": p}]) for p in PROMPTS]
    bound = [["add", "get_weather"]] * len(prompts)
    batch = BatchSession(tm.model, len(prompts), pad_id=tm.chat.eot_id)
    batch.feed(dict(enumerate(prompts)))
    turns = ctl.generate_turns(batch, list(range(len(prompts))), bound, tool_choice=choices, after="user",
                               release=release)
    for p, c, got in zip(prompts, choices, turns):
        s = DecodeSession(tm.model)
        s.feed(p)
        want = ctl.generate_turn(s, bound[0], tool_choice=c, after="user")
        assert got.ids == want.ids
        assert (got.text, [(x.tool, x.text, x.cut) for x in got.calls], got.ended, got.out_of_budget) == \
            (want.text, [(x.tool, x.text, x.cut) for x in want.calls], want.ended, want.out_of_budget)
    assert any(t.calls for t in turns) and any(not t.calls for t in turns)  # both paths were exercised


def test_run_many_equals_run(tm):
    cfg = ControllerConfig(max_new_tokens=60, max_steps=2)
    agent = TokMemAgent(tm, [add, get_weather], cfg)
    queries = [*PROMPTS, "add 1 and 1, then add 2 and 2"]
    seen: list[tuple[int, str]] = []
    many = agent.run_many(queries, tool_choice="any", on_step=lambda i, st: seen.append((i, st.tool)))
    for q, got in zip(queries, many):
        want = agent.run(q, tool_choice="any")
        assert (got.answer, got.outcome, got.generated_tokens, got.fed_tokens, got.suppressed_repeats) == \
            (want.answer, want.outcome, want.generated_tokens, want.fed_tokens, want.suppressed_repeats)
        assert [(s.tool, s.argument_text, s.status, s.result) for s in got.steps] == \
            [(s.tool, s.argument_text, s.status, s.result) for s in want.steps]
        assert got.messages == want.messages
    assert sorted(seen) == sorted((i, s.tool) for i, r in enumerate(many) for s in r.steps)
    assert agent.run_many([]) == []
