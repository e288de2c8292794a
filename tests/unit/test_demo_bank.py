"""The bank shipped for `make demo` (tools/banks/demo) is the one its recipe trains on today's data and tools."""

from __future__ import annotations

import json

import pytest

from tokmem_agent.config import DEFAULT_MODEL
from tokmem_agent.model.loader import tokenizer_fingerprint
from tokmem_agent.registry import Tool
from tools import demo
from tools.basic import make_tools

STALE = "the shipped demo bank is stale: run  python -m tools.demo --retrain --bank tools/banks/demo"


@pytest.fixture(scope="module")
def shipped() -> dict:
    path = demo.SHIPPED / "tokmem_config.json"
    assert path.is_file(), f"{path} is missing: {STALE}"
    return json.loads(path.read_text(encoding="utf-8"))


def test_shipped_bank_was_trained_by_the_current_recipe_on_the_current_data(shipped):
    assert shipped["meta"]["demo_data"] == demo.fingerprint(), STALE
    training = shipped["meta"]["training"]
    assert training["reading"] == "chain" and training["config"]["decision_weight"] == demo.DECISION_WEIGHT


def test_shipped_bank_has_one_token_per_pack_tool_with_the_current_schemas(shipped, tmp_path):
    tools = {t.name: t for t in (Tool.coerce(f) for f in make_tools(tmp_path))}
    stored = {d["name"]: d["hash"] for d in shipped["tools"]}
    assert stored == {n: t.hash for n, t in tools.items()}, STALE


def test_shipped_bank_is_calibrated_and_carries_nothing_to_resume(shipped):
    meta = shipped["meta"]
    assert 0.0 < meta["call_threshold"] < 1.0 and 0.0 < meta["continue_threshold"] < 1.0
    assert meta["call_calibration"]["call"]["at_threshold"]["n_no_call"] >= 60
    assert not (demo.SHIPPED / "checkpoint").exists()


def test_shipped_bank_matches_the_default_model(shipped, smollm2_tokenizer):
    assert shipped["base_model"] == DEFAULT_MODEL
    assert len(shipped["weight_sample"]) == 48  # the base weights are checked on load too (slow tests load it)
    assert shipped["tokenizer_fingerprint"] == tokenizer_fingerprint(smollm2_tokenizer)


def test_fingerprint_follows_data_and_settings():
    base = demo.fingerprint()
    assert demo.fingerprint() == base
    assert demo.fingerprint(epochs=3) != base and demo.fingerprint(lora=False) != base
    assert demo.fingerprint(limit=600) != base
