"""Issue-14 figures: the CLI failure cases a new user met, each run as a real `tokmem` subprocess, with the
message it prints now; plus the hung-tool cases of the executor.

    python bench/failure_cases.py [--out reports/failure_cases.md]

Prints a Markdown table: case, command, exit code, the first line of stderr, whether a Python traceback
reached the user. Needs the shipped demo bank (tools/banks/demo); the cases that load a model use the
default one (cached after `make demo`).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOKMEM = [sys.executable, "-m", "tokmem_agent"]
DEMO = ROOT / "tools" / "banks" / "demo"

HUNG = """
import threading, time
from tokmem_agent.executor import execute
gate = threading.Event()
def hung():
    gate.wait()
def add(a, b):
    return a + b
t0 = time.perf_counter()
res = [execute(hung, {{}}, timeout=0.05) for _ in range({n})]
ok = execute(add, {{"a": 2, "b": 3}}, timeout=5)
print(f"{{sum(r.kind == 'timeout' for r in res)}} timed out, then add -> {{ok.kind}} {{ok.value}}")
"""


def said(err: str) -> str:
    """The line that tells the user what is wrong (an ``error:`` line, typer's ``Invalid value``), else the last."""
    lines = [ln.strip(" │╭╮╰╯─\t") for ln in err.splitlines()]
    lines = [ln for ln in lines if ln and "Loading weights" not in ln and "Warning" not in ln]
    for ln in lines:
        if ln.startswith("error:") or "Invalid value" in ln:
            return ln
    return lines[-1] if lines else ""


def run(args: list[str], cwd: Path, timeout: float = 300) -> tuple[int, str, float]:
    t0 = time.perf_counter()
    p = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    return p.returncode, (p.stderr or p.stdout), time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=None, help="also write the table here")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tokmem-failures-"))
    tool = {"name": "add", "description": "Add", "parameters": {
        "type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]}}
    good = {"query": "add 1 and 2", "tools": [tool], "answers": [{"name": "add", "arguments": {"a": 1, "b": 2}}]}
    (tmp / "good.jsonl").write_text(json.dumps(good) + "\n")
    (tmp / "violates.jsonl").write_text(json.dumps({**good, "answers": [{"name": "add", "arguments": {"a": "five", "b": 1}}]}) + "\n")
    objekt = {**tool, "parameters": {"type": "objekt", "properties": {"who": {"type": "string"}}}}
    (tmp / "objekt.jsonl").write_text(json.dumps({**good, "tools": [objekt]}) + "\n")
    (tmp / "latin1.jsonl").write_bytes('{"query": "caf\xe9"}\n'.encode("latin-1"))
    (tmp / "afile").write_text("x")
    for name in ("trunc", "garbage", "missing"):
        b = tmp / f"bank_{name}"
        b.mkdir()
        shutil.copy(DEMO / "tokmem_config.json", b)
        w = (DEMO / "memory.safetensors").read_bytes()
        if name != "missing":
            (b / "memory.safetensors").write_bytes(w[: len(w) // 2] if name == "trunc" else b"garbage" * 10)
    ck = tmp / "ck" / "checkpoint"
    shutil.copytree(DEMO, ck)
    (ck / "trainer_state.pt").write_bytes(b"not a pickle")
    train = ["train", "--out", str(tmp / "o")]
    cases = [
        ("inspect a truncated memory.safetensors", ["inspect", str(tmp / "bank_trunc")]),
        ("inspect a garbage memory.safetensors", ["inspect", str(tmp / "bank_garbage")]),
        ("inspect a bank without memory.safetensors", ["inspect", str(tmp / "bank_missing")]),
        ("train: arguments violate the schema", [*train, "--data", str(tmp / "violates.jsonl")]),
        ("train: an invalid JSON Schema (type objekt)", [*train, "--data", str(tmp / "objekt.jsonl")]),
        ("train on a non-UTF-8 file", [*train, "--data", str(tmp / "latin1.jsonl")]),
        ("train on a directory", [*train, "--data", str(tmp)]),
        ("train --out an existing file", ["train", "--data", str(tmp / "good.jsonl"), "--out", str(tmp / "afile")]),
        ("train --reading bogus", [*train, "--data", str(tmp / "good.jsonl"), "--reading", "bogus"]),
        ("train --limit 0", [*train, "--data", str(tmp / "good.jsonl"), "--limit", "0"]),
        ("predict --max-new-tokens -5", ["predict", str(DEMO), "hi", "--max-new-tokens", "-5"]),
        ("train --resume on a corrupt trainer_state.pt", ["train", "--data", str(ROOT / "tools" / "data" / "test.jsonl"),
                                                          "--out", str(tmp / "ck"), "--resume"]),
    ]
    rows = []
    for label, argv in cases:
        rc, err, secs = run(TOKMEM + argv, ROOT)
        first = said(err)
        shown = " ".join("…/" + Path(a).name if a.startswith(str(tmp)) or a.startswith(str(ROOT)) else a for a in argv)
        rows.append((label, f"tokmem {shown}", rc, first.replace(str(tmp) + "/", "").replace("|", "\\|")[:160],
                     "Traceback" in err, secs))
    for n in (1, 20):
        t0 = time.perf_counter()
        rc, out, _ = run([sys.executable, "-c", HUNG.format(n=n)], ROOT, timeout=60)
        rows.append((f"{n} hung tool call(s), then add(2, 3); then the process exits", "python -c …", rc,
                     out.strip().splitlines()[-1] if out.strip() else "", "Traceback" in out, time.perf_counter() - t0))
    lines = ["| case | command | exit | what the user sees (first line) | traceback | s |",
             "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {a} | `{b}` | {c} | {d} | {'yes' if e else 'no'} | {f:.1f} |" for a, b, c, d, e, f in rows]
    table = "\n".join(lines)
    print(table)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(table + "\n")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
