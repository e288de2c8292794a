"""The wheel: only prefixed top-level packages (no generic ``tools`` / ``evals`` in site-packages), with the
example pack's data and demo bank, and the ``tokmem eval`` plugin pointing at the installed harness."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_installs_only_prefixed_packages(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                           str(ROOT), "-w", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = tmp_path.glob("tokmem_agent-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"tokmem_agent", "tokmem_examples", "tokmem_evals"}
    for need in ("tokmem_agent/data/no_call.txt", "tokmem_examples/basic.py", "tokmem_examples/data/train.jsonl",
                 "tokmem_examples/data/calibration_no_call.txt", "tokmem_examples/banks/demo/memory.safetensors",
                 "tokmem_examples/banks/demo/adapter/adapter_model.safetensors", "tokmem_evals/cli.py",
                 "tokmem_evals/continual.py"):
        assert need in names, need
    meta = next(n for n in names if n.endswith("entry_points.txt"))
    entry = zipfile.ZipFile(wheel).read(meta).decode()
    assert "tokmem_evals.cli:eval_command" in entry and "tokmem_agent.cli:app" in entry
    # the installed harness and pack import by their prefixed names, with their relative imports
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    code = ("import tokmem_evals.continual, tokmem_examples.demo;"
            "print(tokmem_examples.demo.__file__)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                         env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().startswith(str(target))
