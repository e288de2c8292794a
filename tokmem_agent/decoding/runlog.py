"""What a controller run did: steps (calls), outcome, tokens and timings. JSON-serialisable."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

#: Status of one call. ok: executed and returned; the others are failures fed back to the model.
CALL_STATUSES = ("ok", "empty", "invalid_json", "schema", "unknown_tool", "exception", "timeout", "token_budget")
#: How a run ended.
OUTCOMES = ("answer", "max_steps", "token_budget")


@dataclass
class Step:
    """One tool call."""

    round: int
    tool: str
    argument_text: str
    arguments: dict[str, Any] | None
    status: str
    result: Any = None
    result_text: str = ""
    error: str | None = None
    tokens: int = 0  # argument tokens generated
    decode_s: float = 0.0
    execute_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass
class RunResult:
    """The outcome of :meth:`TokMemAgent.run`."""

    answer: str
    steps: list[Step]
    outcome: str
    text: str  # everything generated, memory tokens shown as [tool_name]
    prompt_tokens: int
    generated_tokens: int
    fed_tokens: int  # tool-turn tokens appended to the context after the prompt
    timings: dict[str, float] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    suppressed_repeats: int = 0  # repeated calls not run again (ControllerConfig.stop_repeats)
    call_prob: float | None = None  # memory-token mass at the first decision, when a call threshold decided

    @property
    def errors(self) -> list[Step]:
        return [s for s in self.steps if not s.ok]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["messages"] = [_jsonable_message(m) for m in self.messages]
        return json.loads(json.dumps(d, default=str))

    def to_json(self, **kw: Any) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, **kw)

    def pretty(self) -> str:
        """A human-readable account: each call, its result, then the answer."""
        lines = []
        for s in self.steps:
            args = s.argument_text if s.arguments is None else json.dumps(s.arguments, ensure_ascii=False)
            lines.append(f"→ [{s.round}] {s.tool}({args})")
            lines.append(f"  ← {s.result_text}" if s.ok else f"  ✗ {s.status}: {s.error}")
        lines.append(f"answer: {self.answer}" if self.answer else f"(no answer: {self.outcome})")
        lines.append(f"[{self.outcome}; {self.prompt_tokens} prompt + {self.generated_tokens} generated + "
                     f"{self.fed_tokens} tool-turn tokens; {self.timings.get('total_s', 0):.2f} s]")
        return "\n".join(lines)


def _jsonable_message(m: dict[str, Any]) -> dict[str, Any]:
    out = dict(m)
    if "calls" in out:
        out["calls"] = [c.to_dict() if hasattr(c, "to_dict") else c for c in out["calls"]]
    return out
