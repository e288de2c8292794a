"""The trainer under several processes (DDP on CPU, gloo): equal step counts per rank, gradients all-reduced,
only rank 0 writes. Two processes of ``tests/ddp/worker.py`` under ``accelerate launch`` against one process
with the same global batch (``grad_accum`` = world size)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
WORKER = REPO / "tests" / "ddp" / "worker.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cmd: list[str], out: Path) -> dict[int, dict]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {int(p.stem[4:]): json.loads(p.read_text()) for p in out.glob("rank*.json")}


def launch(out: Path, *args: str) -> dict[int, dict]:
    """Two processes (accelerate's torchrun launcher; on CPU the trainer's Accelerator(cpu=True) uses gloo)."""
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or "accelerate"
    return _run([accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                 "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_ip", "127.0.0.1",
                 "--main_process_port", str(_free_port()), str(WORKER), str(out), *args], out)


def single(out: Path, *args: str) -> dict[int, dict]:
    return _run([sys.executable, str(WORKER), str(out), *args], out)


def params(out: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(out / "params.safetensors"))


@pytest.mark.parametrize("lora", [False, True], ids=["rows", "rows+lora"])
def test_two_processes_equal_one_process_on_the_same_global_batch(tmp_path: Path, lora: bool) -> None:
    extra = ["--lora"] if lora else []
    ranks = launch(tmp_path / "ddp", "--grad-accum", "1", *extra)  # 40 records: 10 batches of 4 per epoch
    ref = single(tmp_path / "one", "--grad-accum", "2", *extra)
    assert sorted(ranks) == [0, 1] and all(r["world"] == 2 for r in ranks.values())
    assert ranks[0]["steps"] == ranks[1]["steps"] == ref[0]["steps"] == 10  # 5 per epoch, 2 epochs
    a, b = params(tmp_path / "ddp"), params(tmp_path / "one")
    assert a.keys() == b.keys() and (len(a) > 1) == lora  # steer (+ the LoRA matrices)
    start = single(tmp_path / "zero", "--epochs", "0")
    assert start[0]["steps"] == 0
    moved = (a["steer"] - params(tmp_path / "zero")["steer"]).abs().max()
    assert moved > 1e-3  # training moved the rows, so equal rows below are not trivially equal
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)
    assert (tmp_path / "ddp" / "bank" / "memory.safetensors").is_file()  # rank 0 wrote the bank


def test_uneven_batch_counts_give_every_rank_the_same_steps(tmp_path: Path) -> None:
    ranks = launch(tmp_path / "ddp", "--records", "41")  # 11 batches: padded to 12, 6 per rank per epoch
    assert ranks[0]["steps"] == ranks[1]["steps"] == 12


def test_shard_pads_by_wrapping() -> None:
    from tokmem_agent.training.trainer import shard

    batches, keys = list("abcde"), [0, 1, 2, 3, 4]
    assert shard(batches, keys, 0, 2) == (["a", "c", "e"], [0, 2, 4])
    assert shard(batches, keys, 1, 2) == (["b", "d", "a"], [1, 3, 0])
    assert shard(batches, keys, 0, 1) == (batches, keys)
    assert [len(shard(batches, keys, r, 3)[0]) for r in range(3)] == [2, 2, 2]


def test_a_bare_cuda_device_is_the_processs_own_gpu_under_a_launcher(monkeypatch: pytest.MonkeyPatch) -> None:
    from tokmem_agent.config import resolve_device

    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert resolve_device("cuda") == "cuda" and resolve_device("cpu") == "cpu"
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert resolve_device("cuda") == "cuda:3"
    assert resolve_device("cuda:1") == "cuda:1" and resolve_device("cpu") == "cpu"
