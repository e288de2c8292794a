"""Batched decoding (BatchSession, schedule.run_jobs, Controller.run_many, TokMemMethod.predict_many) gives
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
    with pytest.raises(ValueError, match="cannot have -1 rows"):
        BatchSession(tm.model, -1)
    with pytest.raises(ValueError, match="at least one id"):
        BatchSession(tm.model, 0).add([])
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
    with pytest.raises(ValueError, match="subset of 0..1"):
        batch.keep([3])
    batch.keep([])
    assert batch.rows == 0 and batch.mask.shape == (0, 0)
    assert batch.add(prompts[1]) == 0 and batch.ids == [prompts[1]]


def test_add_joins_a_decoding_batch(tm):
    """Rows added to a batch that is decoding (prompts shorter and longer than its cache, and to rows fed
    nothing yet) see what a session of their own sees."""
    prompts = [tm.chat.prompt_ids([{"role": "user", "content": p}]) for p in PROMPTS]
    long = tm.chat.prompt_ids([{"role": "user", "content": " ".join(PROMPTS * 3)}])
    batch = BatchSession(tm.model, 1, pad_id=tm.chat.eot_id)  # a row that has been fed nothing yet
    assert batch.add(prompts[0]) == 1
    batch.feed({0: prompts[2], 1: [5, 6]})
    assert batch.add(prompts[3]) == 2  # shorter than the cache: written into padding columns
    width = batch.mask.shape[1]
    assert batch.add(long) == 3 and batch.mask.shape[1] == len(long) > width  # longer: the cache grows
    batch.feed({1: [7], 2: [8, 9], 3: [10]})
    batch.rollback(3, 1)
    batch.keep([3, 1, 2])
    batch.feed({0: [11], 2: [12]})
    want = [long + [11], prompts[0] + [5, 6, 7], prompts[3] + [8, 9, 12]]
    for r, ids in enumerate(want):
        s = DecodeSession(tm.model)
        s.feed(ids)
        assert batch.ids[r] == ids and torch.allclose(batch.logits(r), s.logits, atol=1e-4), r


@pytest.mark.parametrize(("constrained", "width"), [(True, 4), (False, 4), (True, 2)])
def test_batched_turns_equal_generate_turn(tm, constrained, width):
    """run_jobs' turns (all rows at once, or rows freed and refilled) equal one session's."""
    from tokmem_agent.decoding.schedule import TurnSpec, run_jobs, turn_decoder

    agent = TokMemAgent(tm, [add, get_weather], ControllerConfig(constrained=constrained, max_new_tokens=40))
    ctl = agent.controller
    choices = ["any", None, "add", "none"]
    prompts = [tm.chat.prompt_ids([{"role": "user", "content": p}]) for p in PROMPTS]
    bound = [["add", "get_weather"]] * len(prompts)
    got_turns: dict[int, object] = {}
    run_jobs(turn_decoder(ctl), BatchSession(tm.model, 0, pad_id=tm.chat.eot_id),
             [(p, TurnSpec(bound[0], c, None, "user")) for p, c in zip(prompts, choices)],
             lambda i, turn: got_turns.__setitem__(i, turn), width=width)
    turns = [got_turns[i] for i in range(len(prompts))]
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
    for width in (1, 2):  # continuous batching: conversations wait for a free row
        again = agent.run_many(queries, tool_choice="any", batch_size=width)
        assert [(r.answer, r.outcome, r.generated_tokens, r.messages) for r in again] == \
            [(r.answer, r.outcome, r.generated_tokens, r.messages) for r in many]


def test_predict_a_list_equals_one_by_one(tm):
    convo = [{"role": "user", "content": "add 2 and 3"}]
    queries = [*PROMPTS, convo]
    for width in (2, 8):
        many = tm.predict(queries, max_new_tokens=12, batch_size=width)
        assert isinstance(many, list) and len(many) == len(queries)
        for q, got in zip(queries, many):
            want = tm.predict(q, max_new_tokens=12)
            assert (got.ids, got.text, got.calls, got.stopped, got.prompt_tokens) == \
                (want.ids, want.text, want.calls, want.stopped, want.prompt_tokens)
    assert tm.predict([]) == []
    one = tm.predict(convo, max_new_tokens=4)  # a conversation is one query, not a list of them
    assert not isinstance(one, list)
    with pytest.raises(ValueError, match="batch_size"):
        tm.predict(PROMPTS, batch_size=0)
