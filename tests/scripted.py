"""A scripted logits source for controller and LangChain tests."""

from __future__ import annotations

from typing import Any

from tokmem_agent.decoding.generate import DecodeSession


class Script:
    """Forces the next generated tokens: each feed() returns logits preferring the next scripted id.

    None lets the (random) model choose; when the plan runs out the end-of-turn token is forced. The plan
    is shared by all sessions (one per model call), so it scripts a whole multi-call conversation.
    Use as ``controller.session_factory = Script(tm, plan)``.
    """

    def __init__(self, tm: Any, plan: list[int | None]):
        self.tm, self.plan, self.sessions = tm, list(plan), []

    def __call__(self, model: Any) -> DecodeSession:
        script = self

        class _Session(DecodeSession):
            def feed(self, ids):  # type: ignore[no-untyped-def]
                logits = super().feed(ids).clone()
                nxt = script.plan.pop(0) if script.plan else script.tm.chat.eot_id
                if nxt is not None:
                    logits[nxt] += 1e4
                self._last_logits = logits
                return logits

        s = _Session(model)
        self.sessions.append(s)
        return s


#: Marker for the end-of-turn token in :func:`plan_of`.
EOT = object()


def plan_of(tm: Any, *parts: Any) -> list[int | None]:
    """A token plan: tool names become their memory tokens, EOT the end-of-turn token, None a free
    choice, any other string its text tokens."""
    out: list[int | None] = []
    for p in parts:
        if p is EOT:
            out.append(tm.chat.eot_id)
        elif p is None:
            out.append(None)
        elif isinstance(p, str) and p in tm.bank.names:
            out.append(tm.model.memory_id(p))
        else:
            out += tm.chat.text_ids(p)
    return out
