"""Memory tokens on the real default model: a short training run on a few SGD tools, then save/load."""

from __future__ import annotations

import random

import pytest
import torch

from tokmem_agent import TrainConfig, load_traces
from tokmem_agent.model.loader import load_base_model
from tokmem_agent.tokmem import TokMem
from tokmem_agent.traces import tools_in

pytestmark = pytest.mark.slow

TOOLS = ["Restaurants_1_FindRestaurants", "Events_1_FindEvents", "RideSharing_2_GetRide"]


@pytest.fixture(scope="module")
def loaded():
    torch.set_num_threads(2)
    yield load_base_model(None)
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def sgd_split(shared_data):
    traces = load_traces(shared_data / "sgd" / "train.jsonl", limit=6000)
    single = [t for t in traces if len(t.calls) == 1 and t.calls[0].name in TOOLS and not t.between]
    random.Random(0).shuffle(single)
    train, test = [], []
    for name in TOOLS:
        mine = [t for t in single if t.calls[0].name == name]
        train += mine[:30]
        test += mine[30:36]
    return train, test, tools_in(traces)


@pytest.fixture(scope="module")
def trained(loaded, sgd_split):
    train, _, defs = sgd_split
    tm = TokMem.create([defs[n] for n in TOOLS], loaded)
    result = tm.train(train, TrainConfig(epochs=1, batch_size=4, max_length=320, eval_fraction=0.0,
                                   no_call_share=0.0, schedule="constant", warmup=0.0, decision_weight=1.0,
                                   progress=False))
    # the recipe this was measured with: the paper's uniform loss (decision weight 1, the default then),
    # constant lr (the default warmup + linear decay halves the mean lr,
    # too little for 22 steps: 0/12 measured), and exactly the SGD traces (no_call_share=0: the generic
    # no-call traces would add 8 records and a reply pass; tests/unit/test_no_call.py covers them)
    return tm, result


def test_training_learns_tool_selection_on_the_real_model(trained, sgd_split):
    tm, result = trained
    _, test, _ = sgd_split
    train, _, _ = sgd_split
    assert result.steps == -(-len(train) // 4) and result.skipped == 0
    correct = sum([c.name for c in tm.predict(t.messages, max_new_tokens=1).calls] == t.tool_names for t in test)
    print(f"\nheld-out first-token tool selection: {correct}/{len(test)}")
    # measured 9/12 here (1 epoch, 85 traces, 22 steps); 0.5 is well above what an untrained or broken
    # memory gives on 3 tools, below the run-to-run spread of such a short run
    assert correct / len(test) >= 0.5, f"{correct}/{len(test)}"


def test_backbone_untouched_and_rows_finite(trained, loaded):
    tm, _ = trained
    assert all(not p.requires_grad for p in loaded.model.parameters())
    assert tm.bank.steer.dtype == torch.float32 and torch.isfinite(tm.bank.steer).all()


def test_save_load_roundtrip_on_the_real_model(trained, loaded, tmp_path):
    tm, _ = trained
    tm.save(tmp_path / "bank")
    again = TokMem.load(tmp_path / "bank")  # loads the base model named in the bank (the default)
    q = [{"role": "user", "content": "Find me an Italian restaurant in San Jose"}]
    ids = torch.tensor([tm.chat.prompt_ids(q)])
    assert torch.equal(tm.model(ids)[0], again.model(ids)[0])
    assert tm.predict(q, max_new_tokens=20).ids == again.predict(q, max_new_tokens=20).ids
