"""evals.report (cache, metrics.json schema, report files) and the `tokmem eval` command on a tiny model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from toydata import ADD, ECHO  # tests/toydata.py
from typer.testing import CliRunner

from evals.methods import Method, MethodOutput
from evals.report import PredictionCache, run_eval
from tokmem_agent.errors import ConfigError
from tokmem_agent.traces import Call, load_traces

WEATHER = {"name": "get_weather", "description": "Current weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
REPO = Path(__file__).resolve().parents[2]


def records() -> list[dict]:
    out = []
    for i in range(3):
        out.append({"id": f"add-{i}", "query": f"add {i} and {i}", "tools": [ADD, ECHO],
                    "answers": [{"name": "add", "arguments": {"a": i, "b": i}}]})
        out.append({"id": f"echo-{i}", "query": f"say {i}", "tools": [ECHO],
                    "answers": [{"name": "echo", "arguments": {"text": str(i)}}]})
    out.append({"id": "two", "query": "say hi and add 1 and 1", "tools": [ADD, ECHO, WEATHER],
                "answers": [{"name": "echo", "arguments": {"text": "hi"}}, {"name": "add", "arguments": {"a": 1, "b": 1}}]})
    out.append({"id": "wx", "query": "weather in Oslo", "tools": [WEATHER],
                "answers": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]})
    return out


class Oracle(Method):
    """Gold calls for ids in ``right``, a wrong call otherwise; counts its predictions."""

    def __init__(self, name: str, right: set[str], known: set[str] | None = None, setting: int = 0):
        self.name, self.right, self.known_tools, self.setting = name, right, known, setting
        self.calls = 0
        self.trainable_params, self.train_seconds = 1234, 5.0

    def config(self):
        return {"name": self.name, "setting": self.setting}

    def predict(self, trace):
        self.calls += 1
        if trace.id in self.right:
            calls = list(trace.calls)
            raw = [json.dumps(c.arguments) for c in calls]
        else:
            calls, raw = [Call("echo", {})], ["{not json"]
        return MethodOutput(calls, raw, prompt_tokens=10 + len(trace.tools), latency_s=0.01, text="x",
                            generated_tokens=3)


@pytest.fixture()
def traces():
    return load_traces(records())


def test_report_files_and_metrics_schema(tmp_path, traces):
    a = Oracle("good", {t.id for t in traces})
    b = Oracle("half", {"add-0", "add-1", "two"}, known={"add", "echo"})
    metrics = run_eval([a, b], traces, tmp_path, dataset="tiny", progress=False)
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk == metrics and list(on_disk) == ["good", "half"]
    for m in on_disk.values():
        assert set(m) == {"overall", "by_n_calls"}
        assert list(m["by_n_calls"]) == ["1", "2"]
        for block in [m["overall"], *m["by_n_calls"].values()]:
            for key in ("tool_f1", "arg_f1", "exact_match", "json_valid", "schema_valid"):
                assert 0.0 <= block[key] <= 1.0
            assert isinstance(block["n"], int)
    g, h = on_disk["good"]["overall"], on_disk["half"]["overall"]
    assert g["n"] == 8 and g["tool_f1"] == g["arg_f1"] == g["exact_match"] == g["json_valid"] == g["schema_valid"] == 1.0
    assert h["exact_match"] == pytest.approx(3 / 8) and h["json_valid"] == pytest.approx(3 / 8)
    assert on_disk["half"]["by_n_calls"]["2"]["exact_match"] == 1.0
    assert g["n_missing_tool"] == 0 and h["n_missing_tool"] == 1  # get_weather has no training in "half"

    results = json.loads((tmp_path / "results.json").read_text())
    assert results["n_examples"] == 8 and [e["id"] for e in results["examples"]] == [t.id for t in traces]
    ex = results["examples"][-1]
    assert ex["n_tools"] == 1 and ex["gold"] == [{"name": "get_weather", "arguments": {"city": "Oslo"}}]
    assert ex["predictions"]["good"]["scores"]["exact_match"] is True
    assert ex["predictions"]["half"]["scores"]["missing_token"] == ["get_weather"]
    half = results["methods"]["half"]
    assert half["missing_tools"] == ["get_weather"] and half["n_missing_tool_examples"] == 1
    assert half["subsets"]["all_tools_known"]["n"] == 7 and half["subsets"]["missing_token"]["n"] == 1
    assert half["cost"]["prompt_tokens_mean"] == pytest.approx(10 + sum(len(t.tools) for t in traces) / 8)
    assert half["description"]["trainable_params"] == 1234

    report = (tmp_path / "report.md").read_text()
    assert "| good | 100.0 | 100.0 | 100.0 |" in report
    assert "`get_weather`" in report and "1,234" in report and "By number of gold calls" in report
    for png in ("accuracy_by_calls.png", "cost.png", "accuracy_by_tools.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"
        assert f"]({png})" in report


def test_rerun_uses_the_cache(tmp_path, traces):
    m = Oracle("m", {"add-0"})
    run_eval([m], traces, tmp_path, progress=False)
    assert m.calls == 8
    lines = (tmp_path / "predictions" / "m.jsonl").read_text().splitlines()
    assert len(lines) == 8
    # an interrupted run: the last line cut in half, one line missing → only those two are predicted again
    (tmp_path / "predictions" / "m.jsonl").write_text("\n".join(lines[:6]) + "\n" + lines[6][:20])
    again = Oracle("m", {"add-0"})
    metrics = run_eval([again], traces, tmp_path, progress=False)
    assert again.calls == 2 and metrics["m"]["overall"]["n"] == 8
    third = Oracle("m", {"add-0"})
    run_eval([third], traces, tmp_path, progress=False)
    assert third.calls == 0
    # more examples later: only the new ones are predicted
    more = load_traces([*records(), {"id": "new", "query": "say x", "tools": [ECHO],
                                     "answers": [{"name": "echo", "arguments": {"text": "x"}}]}])
    fourth = Oracle("m", {"add-0"})
    assert run_eval([fourth], more, tmp_path, progress=False)["m"]["overall"]["n"] == 9 and fourth.calls == 1


def test_cache_refuses_other_settings_unless_fresh(tmp_path, traces):
    run_eval([Oracle("m", set())], traces, tmp_path, progress=False)
    with pytest.raises(ConfigError, match="setting"):
        run_eval([Oracle("m", set(), setting=1)], traces, tmp_path, progress=False)
    m = Oracle("m", set(), setting=1)
    run_eval([m], traces, tmp_path, progress=False, fresh=True)
    assert m.calls == 8
    cache = PredictionCache(tmp_path, "m", m.config())
    assert len(cache.load()) == 8


def test_duplicate_ids_are_refused(tmp_path, traces):
    with pytest.raises(ConfigError, match="unique"):
        run_eval([Oracle("m", set())], [*traces, traces[0]], tmp_path, progress=False)


def test_bfcl_accuracy_uses_bfcls_checker(tmp_path):
    pytest.importorskip("bfcl_eval")
    from evals.datasets import bfcl

    traces = bfcl("simple", limit=3)
    metrics = run_eval([Oracle("gold", {t.id for t in traces}), Oracle("wrong", set())], traces, tmp_path,
                       progress=False)
    assert metrics["gold"]["overall"]["bfcl_accuracy"] == 1.0 and metrics["wrong"]["overall"]["bfcl_accuracy"] == 0.0
    assert "BFCL acc." in (tmp_path / "report.md").read_text()


# ----- the command ------------------------------------------------------------------------------------------
def test_tokmem_eval_end_to_end(tmp_path, tiny_dir):
    from tokmem_agent.cli import app

    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records()))
    out, bank = tmp_path / "report", tmp_path / "bank"
    args = ["eval", "--data", str(data), "--train-data", str(data), "--bank", str(bank), "--out", str(out),
            "--methods", "tokmem,tokmem-free,icl,rag,lora", "--limit", "3", "--max-new-tokens", "4",
            "--model", str(tiny_dir), "--no-progress"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert (bank / "memory.safetensors").exists() and (out / "lora-adapter" / "lora_meta.json").exists()
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics) == ["tokmem", "tokmem-free", "icl", "rag", "lora"]
    assert all(m["overall"]["n"] == 3 for m in metrics.values())
    results = json.loads((out / "results.json").read_text())
    assert results["methods"]["tokmem"]["description"]["trainable_params"] == 3 * 32  # 3 tools × hidden 32
    assert results["methods"]["lora"]["description"]["trainable_params"] == 1792
    assert results["methods"]["icl"]["description"]["pool"] == "all"
    assert (out / "report.md").exists() and "tokmem" in r.output
    # a second run trains nothing and predicts nothing: everything is cached
    sizes = {p.name: p.stat().st_size for p in (out / "predictions").glob("*.jsonl")}
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "training" not in r.output
    assert {p.name: p.stat().st_size for p in (out / "predictions").glob("*.jsonl")} == sizes


def test_tokmem_eval_clear_errors(tmp_path, tiny_dir):
    from tokmem_agent.cli import app

    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records()))
    base = ["eval", "--data", str(data), "--out", str(tmp_path / "o"), "--model", str(tiny_dir)]
    r = CliRunner().invoke(app, [*base, "--methods", "tokmem"])
    assert r.exit_code == 2 and "need --bank" in r.output
    r = CliRunner().invoke(app, [*base, "--methods", "tokmem", "--bank", str(tmp_path / "nope")])
    assert r.exit_code == 2 and "--train-data" in r.output
    r = CliRunner().invoke(app, [*base, "--methods", "magic"])
    assert r.exit_code == 2 and "unknown method" in r.output
    r = CliRunner().invoke(app, [*base, "--methods", "lora"])
    assert r.exit_code == 2 and "no LoRA adapter" in r.output


def test_plugin_loader(monkeypatch):
    import importlib.metadata

    import typer

    from tokmem_agent import cli

    class EP:
        def __init__(self, name, value, obj=None, error=None):
            self.name, self.value, self.obj, self.error = name, value, obj, error

        def load(self):
            if self.error:
                raise self.error
            return self.obj

    def hello() -> None:
        """Say hello."""
        typer.echo("hello from a plugin")

    eps = [EP("hello", "x:hello", hello), EP("broken", "x:y", error=ImportError("nope")),
           EP("train", "x:train", hello)]
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: eps if group == cli.PLUGIN_GROUP else [])
    target = typer.Typer()

    @target.command()
    def train() -> None:
        typer.echo("built-in train")

    assert cli.load_plugins(target) == ["hello"]  # broken skipped, built-in name kept
    r = CliRunner().invoke(target, ["hello"])
    assert r.exit_code == 0 and "hello from a plugin" in r.output
    assert "built-in train" in CliRunner().invoke(target, ["train"]).output


def test_eval_is_registered_and_python_m_evals_works():
    from tokmem_agent.cli import app

    assert "eval" in {c.name for c in app.registered_commands}, "pip install -e . registers the entry point"
    r = subprocess.run([sys.executable, "-m", "evals", "--help"], cwd=REPO, capture_output=True, text=True, check=True)
    assert "--data" in r.stdout and "--methods" in r.stdout
