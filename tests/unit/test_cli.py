"""`tokmem train | inspect | predict` end to end on a tiny model saved to disk."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from tokmem_agent.cli import app

runner = CliRunner()


@pytest.fixture()
def data(tmp_path):
    tools = [{"name": "add", "description": "Add numbers",
              "parameters": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                             "required": ["a", "b"]}},
             {"name": "echo", "description": "Echo text",
              "parameters": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}}]
    path = tmp_path / "traces.jsonl"
    with open(path, "w") as fh:
        for i in range(6):
            fh.write(json.dumps({"query": f"add {i} {i}", "tools": tools,
                                 "answers": [{"name": "add", "arguments": {"a": i, "b": i}}]}) + "\n")
            fh.write(json.dumps({"query": f"say {i}", "tools": tools,
                                 "answers": [{"name": "echo", "arguments": {"text": str(i)}}]}) + "\n")
    return path


def test_train_inspect_predict(tmp_path, tiny_dir, data):
    out = tmp_path / "bank"
    r = runner.invoke(app, ["train", "--data", str(data), "--out", str(out), "--model", str(tiny_dir),
                            "--epochs", "1", "--autocast", "none"])
    assert r.exit_code == 0, r.output
    assert "trained 2 tool tokens" in r.output and (out / "memory.safetensors").exists()
    r = runner.invoke(app, ["inspect", str(out)])
    assert r.exit_code == 0, r.output
    assert "2 tokens, tied mode" in r.output and "add" in r.output and "echo" in r.output
    assert "anchors      " in r.output and "for 2 tools" in r.output
    r = runner.invoke(app, ["inspect", str(out), "--json"])
    assert json.loads(r.output)["format_version"] == 1
    r = runner.invoke(app, ["predict", str(out), "add 1 1", "--model", str(tiny_dir), "--max-new-tokens", "4"])
    assert r.exit_code == 0, r.output


def test_train_adaptation_round_with_rank_option(tmp_path, tiny_dir, data):
    out = tmp_path / "bank"
    r = runner.invoke(app, ["train", "--data", str(data), "--out", str(out), "--model", str(tiny_dir), "--epochs", "1",
                            "--autocast", "none", "--lora", "--lora-r", "1", "--lora-lr", "2e-3",
                            "--lora-modules", "q_proj,v_proj"])
    assert r.exit_code == 0, r.output
    cfg = json.loads((out / "tokmem_config.json").read_text())
    assert cfg["lora"]["r"] == 1 and cfg["lora"]["alpha"] == 2 and cfg["lora"]["target_modules"] == ["q_proj", "v_proj"]
    assert cfg["meta"]["training"]["config"]["lora_lr"] == 2e-3
    assert cfg["anchors"] and (out / "anchors.safetensors").exists()  # collected after the round


def test_train_defaults_to_the_measured_recipe(tmp_path, tiny_dir, data):
    from tokmem_agent.config import ALL_PROJECTIONS

    out = tmp_path / "bank"
    r = runner.invoke(app, ["train", "--data", str(data), "--out", str(out), "--model", str(tiny_dir)])
    assert r.exit_code == 0, r.output
    cfg = json.loads((out / "tokmem_config.json").read_text())
    assert cfg["lora"] == {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": list(ALL_PROJECTIONS)}
    adapter = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert set(adapter["target_modules"]) == set(ALL_PROJECTIONS)
    training = cfg["meta"]["training"]["config"]
    assert training["lora"] == cfg["lora"] and training["lora_lr"] == 1e-3 and training["decision_weight"] == 5.0
    assert (training["epochs"], training["batch_size"], training["no_call_share"], training["warmup"],
            training["schedule"]) == (2, 4, 0.1, 0.1, "linear")


def test_no_lora_trains_the_memory_rows_only(tmp_path, tiny_dir, data):
    out = tmp_path / "bank"
    args = ["train", "--data", str(data), "--out", str(out), "--model", str(tiny_dir), "--autocast", "none"]
    r = runner.invoke(app, args + ["--epochs", "1", "--no-lora"])
    assert r.exit_code == 0, r.output
    cfg = json.loads((out / "tokmem_config.json").read_text())
    assert cfg["lora"] is None and not (out / "adapter").exists()
    training = cfg["meta"]["training"]["config"]
    assert training["lora"] is None and training["decision_weight"] == 5.0  # the rest of the recipe stays
    # its checkpoint resumes only as it started: without LoRA
    r = runner.invoke(app, args + ["--epochs", "2", "--resume"])
    assert r.exit_code == 2 and "without a LoRA round" in r.output and "--no-lora" in r.output, r.output
    assert "Traceback" not in r.output
    r = runner.invoke(app, args + ["--epochs", "2", "--resume", "--no-lora"])
    assert r.exit_code == 0, r.output


def test_resume_continues_a_checkpoint(tmp_path, tiny_dir, data):
    out = tmp_path / "bank"
    args = ["train", "--data", str(data), "--out", str(out), "--model", str(tiny_dir), "--autocast", "none"]
    assert runner.invoke(app, args + ["--epochs", "1"]).exit_code == 0
    r = runner.invoke(app, args + ["--epochs", "2", "--resume"])
    assert r.exit_code == 0, r.output
    cfg = json.loads((out / "tokmem_config.json").read_text())
    assert len(cfg["meta"]["training"]["history"]) == 2


def test_clear_errors(tmp_path, tiny_dir):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "x", "answers": [{"name": 3}]}\n')
    r = runner.invoke(app, ["train", "--data", str(bad), "--out", str(tmp_path / "o"), "--model", str(tiny_dir)])
    assert r.exit_code == 2 and "bad.jsonl:1" in r.output and "answers[0].name" in r.output
    r = runner.invoke(app, ["inspect", str(tmp_path / "missing")])
    assert r.exit_code == 2 and "no memory bank" in r.output
    r = runner.invoke(app, ["chat", str(tmp_path / "missing"), "--tools", "tools.basic", "--today", "2025-13-01",
                            "-q", "hi"])
    assert r.exit_code == 2 and "today must be a date YYYY-MM-DD" in r.output


@pytest.fixture()
def held_out(tmp_path, data):
    rows = [json.loads(line) for line in data.read_text().splitlines()][:4]
    rows += [{"query": q, "tools": rows[0]["tools"], "answers": []} for q in ("hello", "thanks a lot")]
    path = tmp_path / "held_out.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    msgs = tmp_path / "no_call.txt"
    msgs.write_text("# messages that need no tool\ngood morning\nwho are you?\n")
    return path, msgs


def test_train_calibrates_on_held_out_data_and_inspect_shows_it(tmp_path, tiny_dir, data, held_out):
    out = tmp_path / "bank"
    path, msgs = held_out
    r = runner.invoke(app, ["train", "--data", str(data), "--out", str(out), "--model", str(tiny_dir), "--epochs", "1",
                            "--autocast", "none", "--calibrate-on", str(path), "--no-call", str(msgs)])
    assert r.exit_code == 0, r.output
    assert "call after a user message:   threshold" in r.output and "4 call + 4 no-call points" in r.output
    cfg = json.loads((out / "tokmem_config.json").read_text())
    assert 0.0 <= cfg["meta"]["call_threshold"] <= 1.0
    r = runner.invoke(app, ["inspect", str(out)])
    assert "thresholds   call " in r.output


def test_calibrate_command_and_its_errors(tmp_path, tiny_dir, data, held_out):
    out = tmp_path / "bank"
    path, msgs = held_out
    args = ["train", "--data", str(data), "--out", str(out), "--model", str(tiny_dir), "--epochs", "1", "--autocast",
            "none"]
    assert runner.invoke(app, args).exit_code == 0
    assert "thresholds   none" in runner.invoke(app, ["inspect", str(out)]).output
    r = runner.invoke(app, ["calibrate", str(out), "--data", str(path), "--model", str(tiny_dir),
                            "--out", str(tmp_path / "cal")])
    assert r.exit_code == 0, r.output
    assert "4 call + 2 no-call points" in r.output
    assert "call_threshold" in json.loads((tmp_path / "cal" / "tokmem_config.json").read_text())["meta"]
    assert "call_threshold" not in json.loads((out / "tokmem_config.json").read_text())["meta"]  # --out: untouched
    r = runner.invoke(app, ["calibrate", str(out), "--data", str(data), "--model", str(tiny_dir)])
    assert r.exit_code == 2 and "requests with calls and requests without" in r.output  # no no-call records
    r = runner.invoke(app, ["calibrate", str(out), "--no-call", str(tmp_path / "nope.txt"), "--model", str(tiny_dir)])
    assert r.exit_code == 2 and "nope.txt" in r.output
    r = runner.invoke(app, args[:3] + ["--out", str(tmp_path / "x"), "--no-call", str(msgs)] + args[5:])
    assert r.exit_code == 2 and "--no-call needs --calibrate-on" in r.output


@pytest.mark.parametrize("extra, says", [
    (["--reading", "bogus"], "--reading"), (["--limit", "0"], "--limit"), (["--epochs", "0"], "--epochs"),
    (["--autocast", "fp8"], "--autocast"), (["--mode", "shared"], "--mode"), (["--checkpoint-every", "0"],
                                                                            "--checkpoint-every")])
def test_bad_train_options_are_refused_before_any_work(tmp_path, tiny_dir, data, extra, says):
    out = tmp_path / "bank"
    r = runner.invoke(app, ["train", "--data", str(data), "--out", str(out), "--model", str(tiny_dir), *extra])
    assert r.exit_code == 2 and says in r.output and "Traceback" not in r.output
    assert not out.exists()


def test_checkpoint_every_reaches_the_config(tmp_path, tiny_dir, data):
    out = tmp_path / "bank"
    r = runner.invoke(app, ["train", "--data", str(data), "--out", str(out), "--model", str(tiny_dir), "--epochs", "1",
                            "--autocast", "none", "--checkpoint-every", "7"])
    assert r.exit_code == 0, r.output
    assert json.loads((out / "tokmem_config.json").read_text())["meta"]["training"]["config"]["checkpoint_every"] == 7


def test_predict_refuses_a_negative_token_budget(tmp_path):
    r = runner.invoke(app, ["predict", str(tmp_path), "hi", "--max-new-tokens", "-5"])
    assert r.exit_code == 2 and "--max-new-tokens" in r.output


def test_failure_cases_give_one_line_and_no_traceback(tmp_path, tiny_dir, data):
    out = tmp_path / "bank"
    base = ["--model", str(tiny_dir), "--epochs", "1", "--autocast", "none"]
    assert runner.invoke(app, ["train", "--data", str(data), "--out", str(out), *base]).exit_code == 0
    cases = []
    for name, content in (("trunc", None), ("garbage", b"garbage" * 10), ("missing", b"")):
        b = tmp_path / f"bank_{name}"
        b.mkdir()
        (b / "tokmem_config.json").write_bytes((out / "tokmem_config.json").read_bytes())
        w = (out / "memory.safetensors").read_bytes()
        if name != "missing":
            (b / "memory.safetensors").write_bytes(w[: len(w) // 2] if content is None else content)
        cases.append((["inspect", str(b)], "memory.safetensors"))
    latin = tmp_path / "latin1.jsonl"
    latin.write_bytes('{"query": "caf\xe9"}\n'.encode("latin-1"))
    cases.append((["train", "--data", str(latin), "--out", str(tmp_path / "o1"), *base], "latin1.jsonl:1: not UTF-8"))
    cases.append((["train", "--data", str(tmp_path), "--out", str(tmp_path / "o2"), *base], "is a directory"))
    afile = tmp_path / "afile"
    afile.write_text("x")
    cases.append((["train", "--data", str(data), "--out", str(afile), *base], "is a file"))
    ck = tmp_path / "ck"
    r = runner.invoke(app, ["train", "--data", str(data), "--out", str(ck), *base, "--checkpoint-every", "1"])
    assert r.exit_code == 0 and (ck / "checkpoint" / "trainer_state.pt").exists(), r.output
    (ck / "checkpoint" / "trainer_state.pt").write_bytes(b"not a pickle")
    cases.append((["train", "--data", str(data), "--out", str(ck), "--model", str(tiny_dir), "--epochs", "2",
                   "--autocast", "none", "--resume"], "trainer_state.pt: corrupt or not a trainer state"))
    for args, says in cases:
        r = runner.invoke(app, args)
        assert r.exit_code == 2 and says in r.output, (args, r.output)
        assert r.exception is None or isinstance(r.exception, SystemExit), (args, r.exception)
        assert "Traceback" not in r.output


def test_lora_on_every_projection(tmp_path, tiny_dir, data):
    out = tmp_path / "bank"
    r = runner.invoke(app, ["train", "--data", str(data), "--out", str(out), "--model", str(tiny_dir), "--epochs", "1",
                            "--autocast", "none", "--lora", "--lora-modules", "all"])
    assert r.exit_code == 0, r.output
    cfg = json.loads((out / "tokmem_config.json").read_text())
    assert cfg["lora"]["target_modules"] == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    adapter = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert set(adapter["target_modules"]) == set(cfg["lora"]["target_modules"])


def test_skip_invalid_trains_on_the_valid_records_and_reports_the_rest(tmp_path, tiny_dir, data):
    lines = data.read_text().splitlines()
    bad = json.loads(lines[0])
    bad["answers"][0]["arguments"] = {"a": "five", "b": 1}
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text("\n".join([*lines, json.dumps(bad), "{oops"]) + "\n")
    out = tmp_path / "bank"
    args = ["train", "--data", str(mixed), "--out", str(out), "--model", str(tiny_dir), "--epochs", "1",
            "--autocast", "none"]
    r = runner.invoke(app, args)
    assert r.exit_code == 2 and "mixed.jsonl:13" in r.output and "violate the schema" in r.output
    assert not out.exists()
    r = runner.invoke(app, [*args, "--skip-invalid"])
    assert r.exit_code == 0, r.output
    assert "skipped 2 invalid record(s); first: " in r.output and "mixed.jsonl:13" in r.output
    assert f"{len(lines)} traces, 2 tools" in r.output and (out / "memory.safetensors").exists()
    only_bad = tmp_path / "bad.jsonl"
    only_bad.write_text("{oops\n")
    r = runner.invoke(app, [*args[:2], str(only_bad), *args[3:], "--skip-invalid"])
    assert r.exit_code == 2 and "no valid records" in r.output


def test_device_and_dtype_options(tmp_path, tiny_dir, data):
    import torch

    out = tmp_path / "bank"
    base = ["--data", str(data), "--out", str(out), "--model", str(tiny_dir), "--epochs", "1", "--autocast", "none"]
    r = runner.invoke(app, ["train", *base, "--device", "cpu", "--dtype", "bfloat16"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["predict", str(out), "add 1 1", "--model", str(tiny_dir), "--max-new-tokens", "3",
                            "--device", "auto"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["predict", str(out), "x", "--model", str(tiny_dir), "--dtype", "int8"])
    assert r.exit_code == 2 and "--dtype" in r.output
    if not torch.cuda.is_available():
        r = runner.invoke(app, ["predict", str(out), "x", "--model", str(tiny_dir), "--device", "cuda"])
        assert r.exit_code == 2 and "could not move model" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["predict", str(out), "x", "--model", str(tiny_dir), "--device", "gpu9"])
    assert r.exit_code == 2 and "gpu9" in r.output


def test_a_device_only_model_config_loads_the_banks_own_base_model(tmp_path, tiny_dir, data):
    from tokmem_agent.config import ModelConfig, resolve_device
    from tokmem_agent.tokmem import TokMem

    out = tmp_path / "bank"
    assert runner.invoke(app, ["train", "--data", str(data), "--out", str(out), "--model", str(tiny_dir),
                               "--epochs", "1", "--autocast", "none"]).exit_code == 0
    tm = TokMem.load(out, ModelConfig(device="cpu"))  # no name: the bank's base model, not the default one
    assert tm.loaded.model_id == str(tiny_dir) and tm.model.device.type == "cpu"
    assert resolve_device("auto") in ("cuda", "mps", "cpu") and resolve_device("cuda:1") == "cuda:1"


def _trained_bank(tmp_path, tiny_dir, data, *extra: str):
    """A bank trained by ``tokmem train`` for one epoch on the tiny model (``extra``: more options)."""
    bank = tmp_path / "bank"
    r = runner.invoke(app, ["train", "--data", str(data), "--out", str(bank), "--model", str(tiny_dir), "--epochs", "1",
                            "--autocast", "none", *extra])
    assert r.exit_code == 0, r.output
    return bank


def test_export_writes_a_checkpoint_and_refuses_a_full_folder(tmp_path, tiny_dir, data):
    bank = _trained_bank(tmp_path, tiny_dir, data)
    out = tmp_path / "exported"
    r = runner.invoke(app, ["export", str(bank), "--out", str(out), "--model", str(tiny_dir), "--merge-lora"])
    assert r.exit_code == 0, r.output
    assert "exported 2 tools" in r.output and "LoRA: merged" in r.output
    assert (out / "config.json").is_file() and (out / "tokmem_tools.json").is_file()
    r = runner.invoke(app, ["export", str(bank), "--out", str(out), "--model", str(tiny_dir)])
    assert r.exit_code == 2 and "not empty" in r.output and "Traceback" not in r.output


def test_register_from_a_schema_reports_what_it_synthesised_and_warns_on_a_thin_one(tmp_path, tiny_dir, data):
    bank = _trained_bank(tmp_path, tiny_dir, data, "--no-lora")
    tools = tmp_path / "tools.json"
    tools.write_text(json.dumps([
        {"name": "get_weather", "description": "Current weather for a city",
         "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name",
                                                                   "examples": ["Oslo", "Lima"]}},
                        "required": ["city"]}},
        {"name": "frob", "description": "",
         "parameters": {"type": "object", "properties": {"x": {"type": "string"}}, "required": ["x"]}}]))
    r = runner.invoke(app, ["register", str(bank), "--tool", str(tools), "--model", str(tiny_dir), "--synth", "6",
                            "--epochs", "1"])
    assert r.exit_code == 0, r.output
    assert "get_weather: synthetic requests such as" in r.output and "frob: synthetic requests such as" in r.output
    assert "warning: frob: no description" in r.output and "parameters without a description: x" in r.output
    assert "only free-form string parameters" in r.output and "warning: get_weather" not in r.output
    assert re.search(r"calibrated logit bias: (get_weather|frob) [+-]\d+\.\d\d, (get_weather|frob) ", r.output)


def test_register_dialogues_option(tmp_path, tiny_dir, data):
    bank = _trained_bank(tmp_path, tiny_dir, data, "--no-lora")
    tools = tmp_path / "tools.json"
    tools.write_text(json.dumps([{"name": "book_table", "description": "Reserve a table at a restaurant",
                                  "parameters": {"type": "object", "required": ["restaurant_name"], "properties": {
                                      "restaurant_name": {"type": "string", "description": "Name of the restaurant"}}}}]))
    args = ["register", str(bank), "--tool", str(tools), "--model", str(tiny_dir), "--synth", "4", "--epochs", "1"]
    r = runner.invoke(app, [*args, "--dialogues", "1", "--out", str(tmp_path / "talk")])
    assert r.exit_code == 0, r.output
    shown = r.output.split("book_table: synthetic requests such as", 1)[1].splitlines()[0]
    assert " / " in shown  # every trace is a short conversation, shown turn by turn
    r = runner.invoke(app, [*args, "--dialogues", "1.5", "--out", str(tmp_path / "bad")])
    assert r.exit_code == 2 and "--dialogues" in r.output and "less than or equal to 1" in r.output
    assert "Traceback" not in r.output


def test_register_runs_read_only_tools_for_real_results(tmp_path, tiny_dir, data, monkeypatch):
    bank = _trained_bank(tmp_path, tiny_dir, data, "--no-lora")
    (tmp_path / "geo_tools.py").write_text(
        "from tokmem_agent import read_only\n\n"
        "@read_only\n"
        "def rect_area(width_cm: float, height_cm: float) -> dict:\n"
        "    \"\"\"Area of a rectangle.\n\n    Args:\n        width_cm: Width in centimetres.\n"
        "        height_cm: Height in centimetres.\n    \"\"\"\n"
        "    return {'area_cm2': round(width_cm * height_cm, 2)}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    args = ["register", str(bank), "--tool", "geo_tools:rect_area", "--model", str(tiny_dir), "--synth", "5",
            "--epochs", "1", "--out"]
    r = runner.invoke(app, [*args, str(tmp_path / "ran")])
    assert r.exit_code == 0, r.output
    assert "5 synthetic, 5 of them with real results" in r.output
    meta = json.loads((tmp_path / "ran" / "tokmem_config.json").read_text())["meta"]
    assert meta["zero_data_tools"] == ["rect_area"]  # its place-like arguments would be copied (ground_places)
    r = runner.invoke(app, [*args, str(tmp_path / "not-run"), "--run-tools", "never"])
    assert r.exit_code == 0, r.output
    assert "5 synthetic, 0 of them with real results" in r.output
    r = runner.invoke(app, [*args, str(tmp_path / "bad"), "--run-tools", "sometimes"])
    assert r.exit_code == 2 and "sometimes" in r.output and "Traceback" not in r.output


def test_serve_refuses_offered_tools_without_a_token(tmp_path, tiny_dir, data):
    bank = _trained_bank(tmp_path, tiny_dir, data, "--no-lora")
    tools = tmp_path / "tools.json"
    tools.write_text(json.dumps({"name": "launch_rocket", "description": "Launch a rocket",
                                 "parameters": {"type": "object", "properties": {}}}))
    r = runner.invoke(app, ["serve", str(bank), "--tools", str(tools), "--model", str(tiny_dir), "--port", "0"])
    assert r.exit_code == 2 and "no memory token" in r.output and "launch_rocket" in r.output
