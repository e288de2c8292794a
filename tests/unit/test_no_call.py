"""No-call traces (requests that need no tool), backbone replies as their targets, and the lr schedule."""

from __future__ import annotations

import pytest
import torch
from toydata import TOOLS, toy_records

from tokmem_agent import TokMem, TrainConfig, load_traces
from tokmem_agent.chat import trace_conversation
from tokmem_agent.errors import ConfigError
from tokmem_agent.model.loader import LoadedModel, tokenizer_fingerprint
from tokmem_agent.traces import parse_record
from tokmem_agent.training.dataset import encode_traces
from tokmem_agent.training.replies import (
    FALLBACK_REPLY,
    fill_replies,
    generic_negatives,
    no_call_pool,
    trim_reply,
)
from tokmem_agent.training.trainer import lr_scale, with_no_call_traces

NO_CALL = {"query": "good morning!", "answers": [], "results": [], "between": [], "tools": TOOLS}


@pytest.fixture()
def tm(tiny_model, tiny_tokenizer):
    return TokMem.create(TOOLS, LoadedModel(tiny_model, tiny_tokenizer, "tiny-llama",
                                            tokenizer_fingerprint(tiny_tokenizer)))


def test_trim_reply():
    assert trim_reply("Hello! How can I help?", True) == "Hello! How can I help?"
    assert trim_reply("It is blue. Light scatters in the", False) == "It is blue."  # cut: last full sentence
    assert trim_reply("I'm not sure. I'm not sure. I'm not sure.", True) == "I'm not sure."
    assert trim_reply("Alemaneté, açúcar, açúcar, açúcar, açúcar, aç", False) == FALLBACK_REPLY
    assert trim_reply("The sky is blue because of the air, and the sea is blue because of the sky.", True) \
        .startswith("The sky")


def test_pool_and_generic_negatives():
    pool = no_call_pool()
    assert len(pool) >= 100 and len(set(pool)) == len(pool) and not any(q.startswith("#") for q in pool)
    neg = generic_negatives(20, seed=3, exclude={pool[0]})
    assert len(neg) == 20 and len({t.query for t in neg}) == 20 and pool[0] not in {t.query for t in neg}
    assert all(not t.calls and t.response is None and t.results == [] for t in neg)
    assert [t.query for t in generic_negatives(20, seed=3, exclude={pool[0]})] == [t.query for t in neg]
    assert len(generic_negatives(10_000)) == len(pool)


def test_no_call_record_parses_and_targets_the_reply(tm):
    t = parse_record({**NO_CALL, "response": "Good morning to you too."})
    assert t.calls == [] and t.results == []
    for reading in ("compositional", "chain"):
        conv = trace_conversation(t, reading)
        assert conv[-1] == {"role": "assistant", "content": "Good morning to you too.", "target": True}
    (ex,), _ = encode_traces(tm.chat, [t], max_length=256)
    targets = [i for i, lab in zip(ex.ids, ex.labels) if lab != -100]
    assert tm.tokenizer.decode(targets[:-1]) == "Good morning to you too."
    assert targets[-1] == tm.chat.eot_id and ex.decisions  # the first answer token is a decision target
    with pytest.raises(ConfigError, match="no calls and no response"):
        trace_conversation(parse_record(NO_CALL), "chain")


def test_fill_replies_uses_the_backbone_and_leaves_others(tm):
    traces = load_traces([*toy_records()[:3], NO_CALL, {**NO_CALL, "query": "thanks", "response": "You're welcome."}])
    out = fill_replies(tm, traces, max_new_tokens=8, progress=False)
    assert out[:3] == traces[:3] and out[4].response == "You're welcome."
    assert isinstance(out[3].response, str) and out[3].response
    again = fill_replies(tm, traces, max_new_tokens=8, progress=False)
    assert again[3].response == out[3].response  # greedy: deterministic


def test_with_no_call_traces_adds_the_configured_share(tm):
    traces = load_traces(toy_records())  # 41 traces with calls
    out = with_no_call_traces(tm, traces, TrainConfig(no_call_share=0.2, progress=False))
    extra = out[len(traces):]
    assert len(extra) == round(0.2 * 41) and all(not t.calls and t.response for t in extra)
    assert with_no_call_traces(tm, traces, TrainConfig(no_call_share=0.0, progress=False)) == traces


def test_training_on_no_call_traces_lowers_the_call_logit(tm):
    """Trained on requests that need no tool, the memory tokens lose their first-token probability there."""
    traces = load_traces([{**NO_CALL, "query": q, "response": "Hello."} for q in ("hi", "hello", "hey")])
    prompt = tm.chat.prompt_ids([{"role": "user", "content": "hi"}])

    def p_call() -> float:
        with torch.no_grad():
            logits, _ = tm.model(torch.tensor([prompt]))
        return float(torch.softmax(logits[0, -1], -1)[tm.model.vocab_size:].sum())

    before = p_call()
    tm.train(traces, TrainConfig(epochs=3, batch_size=3, eval_fraction=0.0, lr=5e-2, no_call_share=0.0,
                                 renormalize=False, progress=False), active_tools=tm.tool_names)
    assert p_call() < before


def test_lr_schedule():
    total = 100
    scales = [lr_scale(s, total, 0.1, "linear") for s in range(total)]
    assert scales[0] < scales[5] < scales[9] <= 1.0  # warmup
    assert scales[10] == pytest.approx(1.0) and scales[-1] < 0.05 and all(a >= b for a, b in zip(scales[10:], scales[11:]))
    assert [lr_scale(s, total, 0.0, "constant") for s in (0, 50, 99)] == [1.0, 1.0, 1.0]
    with pytest.raises(ConfigError):
        TrainConfig(warmup=1.0)
    with pytest.raises(ConfigError):
        TrainConfig(schedule="cosine")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        TrainConfig(no_call_share=1.5)
