"""Continual memory (register / replace / forget) and zero-data trace synthesis, on a tiny random Llama."""

from __future__ import annotations

import json
import random
import re
from typing import Literal

import jsonschema
import pydantic
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from toydata import TOOLS, toy_records  # tests/toydata.py
from typer.testing import CliRunner

from tokmem_agent import (
    ConfigError,
    DataFormatError,
    RegisterConfig,
    SchemaError,
    Tool,
    ToolNotFoundError,
    TrainConfig,
    load_traces,
)
from tokmem_agent.cli import app
from tokmem_agent.model.loader import LoadedModel, tokenizer_fingerprint
from tokmem_agent.synth import render_query, sample_arguments, split_words, synthesize_traces
from tokmem_agent.tokmem import TokMem

#: registration trains at the paper's uniform loss (RegisterConfig's default decision weight 1)
FAST = TrainConfig(epochs=1, batch_size=4, eval_fraction=0.0, progress=False, decision_weight=1.0)


@pytest.fixture()
def loaded(tiny_model, tiny_tokenizer) -> LoadedModel:
    return LoadedModel(tiny_model, tiny_tokenizer, "tiny-llama", tokenizer_fingerprint(tiny_tokenizer))


@pytest.fixture()
def trained(loaded) -> TokMem:
    """A bank trained on get_weather and add (the 'old' tools)."""
    tm = TokMem.create(TOOLS[:2], loaded)
    recs = [r for r in toy_records() if {a["name"] for a in r["answers"]} <= {"get_weather", "add"}]
    tm.train(load_traces(recs), FAST)
    return tm


def snapshot(tm: TokMem) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    rows = {n: torch.stack([m.detach()[i].clone() for m in tm.bank.matrices()]) for i, n in enumerate(tm.bank.names)}
    backbone = {k: v.detach().clone() for k, v in tm.model.base.state_dict().items()}
    return rows, backbone


def assert_untouched(tm: TokMem, before: tuple[dict, dict], names: list[str]) -> None:
    rows, backbone = before
    for n in names:
        i = tm.bank.index(n)
        now = torch.stack([m.detach()[i] for m in tm.bank.matrices()])
        assert torch.equal(now, rows[n]), f"row of {n} changed"
    for k, v in tm.model.base.state_dict().items():
        assert torch.equal(v, backbone[k]), f"backbone {k} changed"


# ----- registration ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["tied", "decoupled"])
def test_register_with_traces_leaves_old_rows_and_backbone_bit_identical(loaded, mode):
    from tokmem_agent import MemoryConfig

    tm = TokMem.create(TOOLS[:2], loaded, memory=MemoryConfig(mode=mode))
    tm.train(load_traces([r for r in toy_records() if r["answers"][0]["name"] in ("get_weather", "add")
                          and len(r["answers"]) == 1]), FAST)
    before = snapshot(tm)
    new = [r for r in toy_records() if r["answers"][0]["name"] == "send_email"]
    res = tm.register([TOOLS[2]], load_traces(new), config=RegisterConfig(train=FAST))
    assert res.added == ["send_email"] and res.n_synthetic == 0 and res.n_traces == len(new)
    assert_untouched(tm, before, ["get_weather", "add"])
    i = tm.bank.index("send_email")
    old_norm = torch.stack([tm.bank.address[tm.bank.index(n)] for n in ("get_weather", "add")]).norm(dim=-1).mean()
    assert tm.bank.address[i].norm() == pytest.approx(float(old_norm), rel=1e-4)  # eq. 5-6


def test_zero_data_registration_synthesises_valid_traces_and_trains(trained):
    before = snapshot(trained)
    res = trained.register([TOOLS[3]], config=RegisterConfig(synth_per_tool=12, train=FAST))
    assert res.added == ["play_song"] and res.n_synthetic == 12
    assert_untouched(trained, before, ["get_weather", "add"])
    assert not torch.equal(trained.bank.steer[trained.bank.index("play_song")], torch.zeros(trained.bank.hidden_size))
    assert trained.meta["versions"][-1]["added"] == ["play_song"]


def test_registering_on_a_calibrated_bank_says_its_thresholds_are_dropped(trained):
    trained.meta["call_threshold"] = 0.7
    res = trained.register([TOOLS[3]], config=RegisterConfig(synth_per_tool=4, train=FAST))
    assert "call_threshold" not in trained.meta
    assert any("tokmem calibrate" in w for w in res.warnings)
    again = trained.register([{**TOOLS[3], "name": "play_song_2"}], config=RegisterConfig(synth_per_tool=4, train=FAST))
    assert not any("calibrate" in w for w in again.warnings)  # nothing left to drop


def test_replay_traces_are_capped_and_only_old_tools(trained):
    old = load_traces(toy_records())
    res = trained.register([TOOLS[2]], load_traces([r for r in toy_records() if r["answers"][0]["name"] == "send_email"]),
                           replay=old, config=RegisterConfig(replay_per_tool=2, train=FAST))
    assert res.n_replay == 4  # 2 per old tool; traces calling new or unknown tools are not replayed


def test_register_round_trips_through_save_and_load(trained, loaded, tmp_path):
    trained.register([TOOLS[3]], config=RegisterConfig(synth_per_tool=8, train=FAST), out_dir=tmp_path / "bank")
    back = TokMem.load(tmp_path / "bank", loaded)
    assert back.tool_names == ["get_weather", "add", "play_song"]
    assert torch.equal(back.bank.steer, trained.bank.steer)
    assert back.meta["versions"][-1]["synthetic"] == 8


def test_unchanged_tool_is_skipped_and_changed_schema_is_replaced(trained):
    before = snapshot(trained)
    res = trained.register([TOOLS[0]], config=RegisterConfig(train=FAST))
    assert res.unchanged == ["get_weather"] and not res.trained
    changed = {**TOOLS[1], "parameters": {"type": "object", "properties": {"x": {"type": "number"},
                                                                            "y": {"type": "number"}},
                                          "required": ["x", "y"]}}
    res = trained.register([changed], config=RegisterConfig(synth_per_tool=8, train=FAST))
    assert res.replaced == ["add"]
    assert trained.tool_names == ["get_weather", "add"]  # same row index
    assert trained.tools.get("add").hash == Tool.from_dict(changed).hash
    assert_untouched(trained, before, ["get_weather"])
    assert not torch.equal(trained.bank.steer[1], before[0]["add"][0])


def test_trace_calling_an_unknown_tool_is_refused(trained):
    bad = load_traces([{"id": "r7", "query": "email and play", "tools": TOOLS,
                        "answers": [{"name": "send_email", "arguments": {"to": "a"}},
                                    {"name": "play_song", "arguments": {"title": "b"}}]}])
    with pytest.raises(DataFormatError, match="r7.*play_song"):
        trained.register([TOOLS[2]], bad, config=RegisterConfig(train=FAST))


def test_tool_given_twice_is_an_error(trained):
    with pytest.raises(ConfigError, match="twice"):
        trained.register([TOOLS[2], TOOLS[2]])


def test_forget_removes_only_that_row(trained):
    trained.register([TOOLS[3]], config=RegisterConfig(synth_per_tool=4, train=FAST))
    before = snapshot(trained)
    trained.forget("add")
    assert trained.tool_names == ["get_weather", "play_song"] and "add" not in trained.tools
    assert_untouched(trained, before, ["get_weather", "play_song"])
    with pytest.raises(ToolNotFoundError, match="nope"):
        trained.forget("nope")


def test_agent_register_binds_the_callable(trained):
    from tokmem_agent import TokMemAgent

    def play_song(title: str) -> str:
        """Play a song.

        Args:
            title: Song title.
        """
        return f"playing {title}"

    agent = TokMemAgent(trained)
    agent.register([play_song], config=RegisterConfig(synth_per_tool=4, train=FAST))
    assert [t.name for t in agent.tools] == ["play_song"]


def test_register_config_trains_only_rows_at_the_measured_registration_recipe(trained):
    from tokmem_agent import LoraSettings

    default = RegisterConfig().train
    assert default.lora is None and default.decision_weight == 5.0 and default.no_call_share == 0.0
    assert default.renormalize == "cap" and default.schedule == "constant"
    with pytest.raises(ConfigError, match="lora must be None"):
        RegisterConfig(train=TrainConfig.recipe())
    cfg = RegisterConfig(train=FAST)
    cfg.train = TrainConfig(epochs=1, progress=False, lora=LoraSettings(r=2))  # assigned after the check
    with pytest.raises(ConfigError, match="only the new memory rows"):
        trained.register([TOOLS[3]], config=cfg)


# ----- CLI -----------------------------------------------------------------------------------------------
def test_cli_register_and_forget(trained, loaded, tmp_path, monkeypatch):
    bank = tmp_path / "bank"
    trained.save(bank)
    monkeypatch.setattr("tokmem_agent.tokmem._load", lambda model: loaded)
    (tmp_path / "t.json").write_text(json.dumps([TOOLS[3]]))
    runner = CliRunner()
    r = runner.invoke(app, ["register", str(bank), "--tool", str(tmp_path / "t.json"), "--synth", "6",
                            "--epochs", "1"])
    assert r.exit_code == 0, r.output
    assert "registered play_song" in r.output and "6 synthetic" in r.output
    assert TokMem.load(bank, loaded).tool_names == ["get_weather", "add", "play_song"]
    cfg = json.loads((bank / "tokmem_config.json").read_text())  # registering never starts a LoRA round
    assert cfg["lora"] is None and not (bank / "adapter").exists()
    assert cfg["meta"]["training"]["config"]["lora"] is None
    assert cfg["meta"]["training"]["config"]["decision_weight"] == RegisterConfig().train.decision_weight
    assert cfg["meta"]["training"]["config"]["renormalize"] == "cap"  # tokmem register = RegisterConfig()
    r = runner.invoke(app, ["register", str(bank), "--tool", str(tmp_path / "t.json")])
    assert r.exit_code == 0 and "nothing to train" in r.output
    r = runner.invoke(app, ["forget", str(bank), "add"])
    assert r.exit_code == 0, r.output
    assert TokMem.load(bank, loaded).tool_names == ["get_weather", "play_song"]
    r = runner.invoke(app, ["forget", str(bank), "nope"])
    assert r.exit_code == 2 and "nope" in r.output


# ----- synthesis -------------------------------------------------------------------------------------------
def test_split_words():
    assert split_words("Restaurants_1_FindRestaurants") == "restaurants find restaurants"
    assert split_words("getWeather") == "get weather"


def test_synthetic_queries_mention_every_value_and_validate():
    tool = Tool.from_dict({"name": "book_table", "description": "Reserve a table at a restaurant.",
                           "parameters": {"type": "object", "properties": {
                               "restaurant_name": {"type": "string", "description": "Name of the restaurant"},
                               "party_size": {"type": "integer", "enum": [1, 2, 3, 4]},
                               "date": {"type": "string", "format": "date"}},
                               "required": ["restaurant_name", "party_size"]}})
    traces = synthesize_traces(tool, 20, seed=1)
    assert len(traces) == 20 and len({t.query for t in traces}) == 20
    for t in traces:
        args = t.calls[0].arguments
        jsonschema.validate(args, tool.parameters)
        for v in args.values():  # a date may be worded ("August 2nd, 2025"), always with its year
            assert str(v) in t.query or (re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(v)) and str(v)[:4] in t.query)
    assert synthesize_traces(tool, 5, seed=1)[0].query == traces[0].query  # deterministic


def test_paraphrase_is_kept_only_when_values_survive():
    tool = Tool.from_dict({"name": "get_weather", "description": "Weather for a city",
                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                          "required": ["city"]}})
    kept = synthesize_traces(tool, 3, paraphrase=lambda q: "weather pls " + q.split(": ")[-1])
    assert all(t.query.startswith("weather pls") for t in kept)
    dropped = synthesize_traces(tool, 3, paraphrase=lambda q: "what's the weather")
    assert not any(t.query == "what's the weather" for t in dropped)


def test_pydantic_schema_with_nested_model_and_refs():
    class Address(pydantic.BaseModel):
        street: str
        zip_code: str = pydantic.Field(pattern=r"^\d{5}$", examples=["94107"])

    class Order(pydantic.BaseModel):
        """Ship an order."""

        items: list[str]
        address: Address
        priority: Literal["low", "high"] = "low"
        gift: bool | None = None

    tool = Tool.from_pydantic(Order)
    for t in synthesize_traces(tool, 10):
        jsonschema.validate(t.calls[0].arguments, tool.parameters)


def test_unsatisfiable_pattern_names_tool_and_path():
    tool = Tool.from_dict({"name": "lookup", "parameters": {"type": "object", "properties": {
        "code": {"type": "string", "pattern": "^[A-Z]{3}-\\d{4}$"}}, "required": ["code"]}})
    with pytest.raises(SchemaError, match="lookup.*code.*pattern"):
        synthesize_traces(tool, 2)


# Property-based: every JSON-schema type we support yields arguments that validate.
_scalar = st.one_of(
    st.just({"type": "string"}),
    st.builds(lambda lo, n: {"type": "string", "minLength": lo, "maxLength": lo + n},
              st.integers(0, 5), st.integers(0, 10)),
    st.sampled_from([{"type": "string", "format": f} for f in ("date", "date-time", "time", "email", "uri")]),
    st.builds(lambda lo, n: {"type": "integer", "minimum": lo, "maximum": lo + n}, st.integers(-50, 50), st.integers(0, 50)),
    st.builds(lambda m: {"type": "integer", "multipleOf": m, "minimum": 0, "maximum": 100}, st.integers(1, 10)),
    st.just({"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 5}),
    st.just({"type": "integer", "minimum": 0, "maximum": 10**12}),  # huge range: no candidate list
    st.builds(lambda m, lo: {"type": "number", "multipleOf": m, "minimum": lo, "maximum": lo + 100},
              st.integers(1, 10), st.integers(-50, 50)),
    st.builds(lambda lo, n: {"type": "number", "minimum": lo, "maximum": lo + n},
              st.floats(-100, 100, allow_nan=False), st.floats(0, 100, allow_nan=False)),
    st.just({"type": "boolean"}),
    st.just({"type": "null"}),
    st.builds(lambda xs: {"enum": xs}, st.lists(st.one_of(st.integers(), st.text(max_size=5)), min_size=1,
                                                 max_size=4, unique=True)),
    st.builds(lambda x: {"const": x}, st.integers()),
    st.just({"type": ["string", "null"]}),
)


def _schemas(children):
    return st.one_of(
        st.builds(lambda it, lo: {"type": "array", "items": it, "minItems": lo}, children, st.integers(0, 2)),
        st.builds(lambda props, req: {"type": "object", "properties": props,
                                      "required": [k for k in props if req]},
                  st.dictionaries(st.sampled_from(["city", "date", "name", "count", "tags", "x"]), children,
                                  min_size=1, max_size=3), st.booleans()),
        st.builds(lambda a, b: {"anyOf": [a, b]}, children, children),
    )


_schema = st.recursive(_scalar, _schemas, max_leaves=6)


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(props=st.dictionaries(st.sampled_from(["city", "start_date", "title", "amount", "n", "items", "opts"]),
                             _schema, min_size=1, max_size=4),
       required=st.booleans(), seed=st.integers(0, 10_000))
def test_sampled_arguments_always_validate(props, required, seed):
    params = {"type": "object", "properties": props, "required": list(props) if required else []}
    tool = Tool.from_dict({"name": "t", "description": "Do a thing with some values.", "parameters": params})
    rng = random.Random(seed)
    args = sample_arguments(tool, rng)
    jsonschema.validate(args, params)
    assert isinstance(render_query(tool, args, rng), str)


# ----- anchors ------------------------------------------------------------------------------------------------
def test_training_keeps_anchors_per_tool_and_they_round_trip(trained, loaded, tmp_path):
    a = trained.anchors
    assert a is not None and set(a.tools) == {"get_weather", "add"}
    assert max(a.counts().values()) <= FAST.anchors_per_tool
    assert a.h.shape == (len(a), trained.bank.hidden_size) and a.h.dtype == torch.float16
    trained.save(tmp_path / "bank")
    back = TokMem.load(tmp_path / "bank", loaded)
    assert back.anchors.tools == a.tools and torch.equal(back.anchors.h, a.h)


def test_anchor_states_are_the_hidden_states_at_gold_tool_positions(trained):
    from tokmem_agent.training.anchors import collect_anchors
    from tokmem_agent.training.dataset import encode_traces

    tr = [t for t in load_traces(toy_records()) if [c.name for c in t.calls] == ["add"]][:1]
    ex, _ = encode_traces(trained.chat, tr, max_length=512)
    got = collect_anchors(trained.model, ex, 0, per_tool=5)
    pos = ex[0].labels.index(trained.model.memory_id("add")) - 1  # the position that predicts the token
    with torch.no_grad():
        h, _ = trained.model.hidden(torch.tensor([ex[0].ids]))
    assert got.tools == ["add"]
    torch.testing.assert_close(got.h[0].float(), h[0, pos], atol=2e-3, rtol=1e-3)  # float16 storage


def test_anchor_loss_is_the_full_cross_entropy_and_reaches_only_active_rows(trained):
    from tokmem_agent.training.anchors import AnchorLoss

    trained.add_tools([TOOLS[2]])
    active = torch.tensor([n == "send_email" for n in trained.bank.names])
    loss_fn = AnchorLoss(trained.model, trained.anchors, active)
    h = trained.anchors.h.float()
    gold = torch.tensor([trained.model.memory_id(t) for t in trained.anchors.tools])
    with torch.no_grad():
        full = torch.nn.functional.cross_entropy(trained.model.logits(h), gold)
    trained.bank.steer.requires_grad_(True)
    loss = loss_fn()
    torch.testing.assert_close(loss.detach(), full, atol=1e-5, rtol=1e-5)
    loss.backward()
    g = trained.bank.steer.grad
    assert g[~active].abs().sum() == 0 and g[active].abs().sum() > 0
    trained.bank.steer.requires_grad_(False)


def test_register_trains_against_the_banks_anchors(trained, loaded, tmp_path):
    from tokmem_agent.training.anchors import AnchorLoss

    trained.save(tmp_path / "bank")
    new = load_traces([r for r in toy_records() if r["answers"][0]["name"] == "send_email"])
    after = {}
    for weight in (0.0, 5.0):
        tm = TokMem.load(tmp_path / "bank", loaded)
        cfg = RegisterConfig(train=TrainConfig(epochs=3, batch_size=4, eval_fraction=0.0, progress=False,
                                               decision_weight=1.0, anchor_weight=weight))
        res = tm.register([TOOLS[2]], new, config=cfg)
        assert res.n_anchors == len(trained.anchors)
        active = torch.tensor([n == "send_email" for n in tm.bank.names])
        with torch.no_grad():
            after[weight] = float(AnchorLoss(tm.model, trained.anchors, active)())
    assert after[5.0] < after[0.0]  # the anchor loss was minimised only when weighted in


def test_forget_drops_that_tools_anchors_and_replay_adds_anchors(trained):
    old = load_traces(toy_records())
    n_before = len(trained.anchors)
    res = trained.register([TOOLS[2]], load_traces([r for r in toy_records() if r["answers"][0]["name"] == "send_email"]),
                           replay=old, config=RegisterConfig(replay_per_tool=2, train=FAST))
    assert res.n_anchors == n_before + 4  # the bank's, plus 2 positions per old tool from replay
    assert "send_email" in trained.anchors.tools  # collected after registering
    trained.forget("add")
    assert "add" not in trained.anchors.tools and "get_weather" in trained.anchors.tools


def test_bank_listing_anchors_without_the_file_is_refused(trained, loaded, tmp_path):
    from tokmem_agent import BankFormatError

    trained.save(tmp_path / "bank")
    (tmp_path / "bank" / "anchors.safetensors").unlink()
    with pytest.raises(BankFormatError, match="anchors.safetensors: missing"):
        TokMem.load(tmp_path / "bank", loaded)


def test_anchors_cannot_train_with_lora(trained):
    from tokmem_agent import LoraSettings

    with pytest.raises(ConfigError, match="anchors"):
        trained.train(load_traces(toy_records()[:4]), TrainConfig(epochs=1, eval_fraction=0.0, progress=False,
                                                                  lora=LoraSettings(r=2)),
                      anchors=trained.anchors)
