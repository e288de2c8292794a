"""Registering tools into a running server: ``POST /v1/tools`` (our extension to the OpenAI API).

A registration job trains the new tools' rows on a copy of the serving bank (``TokMem.register``: only the
new rows learn, anchors keep the old ones safe; traces if the request brings them, synthetic ones from the
schema if not), then hands the copy to the :class:`~.engine.Engine`, which switches between batches:
requests in flight finish on the old bank. One job runs at a time, in a background thread; it shares the
CPU with decoding, so serving slows while it trains. With ``save_to`` each new bank is also saved there
(atomically), so a restart can serve it.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import RegisterConfig
from .engine import Engine

log = logging.getLogger("tokmem_agent")

#: jobs kept for GET /v1/tools/{id} (the oldest finished ones are forgotten first)
MAX_JOBS = 100


@dataclass
class Job:
    id: str
    tools: list[str]
    status: str = "queued"  # queued, training, ready, failed
    error: str | None = None
    result: dict[str, Any] = field(default_factory=dict)
    created: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "object": "tool_registration", "tools": self.tools, "status": self.status,
                "error": self.error, "result": self.result, "created": int(self.created)}


class Registrar:
    """Registration jobs for an :class:`Engine`'s bank, one at a time."""

    def __init__(self, engine: Engine, config: RegisterConfig | None = None, *, save_to: str | Path | None = None):
        self.engine, self.config, self.save_to = engine, config, save_to
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._work = threading.Semaphore(1)

    def submit(self, tools: list[dict[str, Any]], traces: list[Any] | None = None) -> Job:
        """Start registering ``tools`` (dicts with name, description, parameters) in the background."""
        job = Job(f"reg-{uuid.uuid4().hex[:16]}", [t["name"] for t in tools])
        with self._lock:
            self.jobs[job.id] = job
            while len(self.jobs) > MAX_JOBS:
                oldest = next(iter(self.jobs))
                if self.jobs[oldest].status in ("queued", "training"):
                    break
                del self.jobs[oldest]
        threading.Thread(target=self._run, args=(job, tools, traces), name=f"tokmem-{job.id}", daemon=True).start()
        return job

    def get(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

    def pending_for(self, names: list[str]) -> Job | None:
        """A queued or running job that registers every one of ``names``, if there is one."""
        with self._lock:
            for job in reversed(self.jobs.values()):
                if job.status in ("queued", "training") and set(names) <= set(job.tools):
                    return job
        return None

    def _run(self, job: Job, tools: list[dict[str, Any]], traces: list[Any] | None) -> None:
        from ..tokmem import TokMem

        with self._work:
            job.status = "training"
            t0 = time.perf_counter()
            try:
                current = self.engine.tm
                with tempfile.TemporaryDirectory(prefix="tokmem-register-") as tmp:
                    current.save(tmp)  # a copy of the serving bank: decoding goes on with the original
                    new = TokMem.load(tmp, current.loaded)
                res = new.register(tools, traces, config=self.config)
                if self.save_to is not None:
                    new.save(self.save_to)
                swapped = self.engine.swap(new, timeout=600)
                job.result = {"added": res.added, "replaced": res.replaced, "unchanged": res.unchanged,
                              "traces": res.n_traces, "synthetic_traces": res.n_synthetic,
                              "anchors": res.n_anchors, "train_seconds": round(res.seconds, 2),
                              "seconds": round(time.perf_counter() - t0, 2), "serving": swapped,
                              **({"saved_to": str(self.save_to)} if self.save_to is not None else {})}
                job.status = "ready" if swapped else "failed"
                if not swapped:
                    job.error = "the server did not switch to the new bank in 600 s"
            except Exception as exc:
                log.exception("registration %s failed", job.id)
                job.status, job.error = "failed", f"{type(exc).__name__}: {exc}"
