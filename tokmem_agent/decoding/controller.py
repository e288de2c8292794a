"""The decoding controller: watch for memory tokens, decode arguments under the tool's schema, validate,
execute, feed results back as a tool turn (reusing the KV cache), and go on until a final answer.

Per assistant turn the state machine is::

    text ──memory token k──► args(k) ──JSON object complete──► after-call ──memory token──► args(…)
      │                                                            │
      └──────────── end of turn ◄──────────────────────────────────┘

Outside arguments, memory tokens of tools not bound to this run are masked. Inside arguments (constrained
mode) the schema's grammar masks every other token, memory tokens included; in unconstrained mode (the
paper's protocol) decoding is free and a memory token starts the next call.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from ..config import ControllerConfig
from ..errors import GenerationError, ToolCallError
from ..executor import execute_many, serialize
from ..registry import Tool
from ..traces import Call, Message, last_role
from ..validation import ArgCheck, check_arguments
from .generate import DecodeSession
from .runlog import RunResult, Step

if TYPE_CHECKING:
    from ..tokmem import TokMem

#: tool_choice values: None/"auto" (model decides), "none" (no tools), "any"/"required" (must call one),
#: or a tool name (must call that one first).
ToolChoice = str | None


@dataclass
class PendingCall:
    tool: str
    arg_ids: list[int] = field(default_factory=list)
    cut: bool = False  # hit max_arg_tokens
    decode_s: float = 0.0
    text: str = ""
    check: ArgCheck | None = None


@dataclass
class Turn:
    """One generated assistant turn."""

    text: str
    calls: list[PendingCall]
    ended: bool  # produced an end-of-turn token
    generated: int
    out_of_budget: bool = False
    decode_s: float = 0.0
    ids: list[int] = field(default_factory=list)
    call_prob: float | None = None  # memory-token mass at the first token, when the call threshold decided


class Controller:
    """Runs a :class:`TokMem` model as a tool-using agent."""

    def __init__(self, tm: TokMem, config: ControllerConfig | None = None,
                 session_factory: Callable[[Any], DecodeSession] = DecodeSession):
        self.tm = tm
        self.config = config or ControllerConfig()
        self.session_factory = session_factory  # tests inject scripted sessions
        self._constraint: Any = None
        self._constraint_width = -1

    # ----- masks ----------------------------------------------------------------------------------------
    def constraint(self) -> Any:
        """The JSON-schema constraint for the current logit width (rebuilt when tools are added)."""
        if self._constraint is None or self._constraint_width != self.tm.model.total_vocab:
            from .constraint import SchemaConstraint

            self._constraint = SchemaConstraint(self.tm.tokenizer, self.tm.model.total_vocab,
                                                property_order=self.config.property_order,
                                                max_string_bound=self.config.max_string_bound)
            self._constraint_width = self.tm.model.total_vocab
        return self._constraint

    def _memory_bias(self, allowed: set[str], *, allow_text: bool = True, allow_stop: bool = True) -> torch.Tensor:
        """Additive mask [V+N]: 0 where allowed, -inf elsewhere."""
        model = self.tm.model
        bias = torch.zeros(model.total_vocab, device=model.device)  # [V+N]
        for i, name in enumerate(self.tm.bank.names):
            if name not in allowed:
                bias[model.vocab_size + i] = float("-inf")
        if not allow_text:
            bias[: model.vocab_size] = float("-inf")
            if allow_stop:
                for s in self.tm.chat.stop_ids:
                    bias[s] = 0.0
        elif not allow_stop:
            for s in self.tm.chat.stop_ids:
                bias[s] = float("-inf")
        return bias

    def call_threshold(self, after: str = "user") -> float | None:
        """The effective threshold of the call decision after a ``"user"`` message or a ``"tool"`` result
        (ControllerConfig.call_threshold / continue_threshold resolved against the bank), or None (argmax)."""
        t = self.config.call_threshold if after == "user" else self.config.continue_threshold
        if t == "off":
            return None
        if t == "bank":
            v = self.tm.meta.get("call_threshold" if after == "user" else "continue_threshold")
            return None if v is None else float(v)
        return float(t)

    def call_probability(self, logits: torch.Tensor, bound: Sequence[str], *,
                         bias: torch.Tensor | None = None) -> float:
        """Probability mass of the bound tools' memory tokens in ``logits`` [V+N] (the "call" mass), in the
        distribution the turn samples from: unbound tools' tokens are masked out (as they are for the argmax),
        so the mass is over the text tokens and the bound tools only. With every tool bound (how thresholds
        are calibrated) this is the plain softmax mass. ``bias``: ``_memory_bias(set(bound))``, when the caller
        has it already."""
        model = self.tm.model
        wanted = set(bound)
        idx = [model.vocab_size + i for i, n in enumerate(self.tm.bank.names) if n in wanted]
        if not idx:
            return 0.0
        if bias is None:
            bias = self._memory_bias(wanted)
        lp = torch.log_softmax(logits.float() + bias, dim=-1)  # [V+N], unbound masked
        return float(torch.logsumexp(lp[idx], dim=0).exp())

    # ----- one assistant turn ---------------------------------------------------------------------
    def generate_turn(self, session: DecodeSession, bound: Sequence[str], *, tool_choice: ToolChoice = None,
                      budget: int | None = None, after: str | None = None) -> Turn:
        """Generate one assistant turn from the session's current position (no execution).

        after: what this turn answers, ``"user"`` (a user message) or ``"tool"`` (a tool result); with
        tool_choice auto its first token is then the thresholded call decision of :meth:`call_threshold`,
        when one is set. None: argmax.
        """
        cfg = self.config
        model, chat = self.tm.model, self.tm.chat
        budget = cfg.max_new_tokens if budget is None else budget
        bound_set = set(bound)
        bound_bias = self._memory_bias(bound_set)  # [V+N]: text and the bound tools
        call_prob = None
        threshold = (self.call_threshold(after) if after in ("user", "tool") and tool_choice in (None, "auto")
                     and bound_set else None)
        if threshold is not None:
            call_prob = self.call_probability(session.logits, bound, bias=bound_bias)
            if call_prob < threshold:
                tool_choice = "none"  # answer: no memory token for the rest of this turn
            else:
                tool_choice = "any"  # call: the argmax among the bound tools' tokens
        open_bias = self._memory_bias(set()) if tool_choice == "none" else bound_bias
        first_bias = open_bias
        if tool_choice in ("any", "required"):
            first_bias = self._memory_bias(bound_set, allow_text=False, allow_stop=False)
        elif tool_choice not in (None, "auto", "none"):
            first_bias = self._memory_bias({tool_choice}, allow_text=False, allow_stop=False)
        after_bias = self._memory_bias(bound_set, allow_text=False) if cfg.constrained else open_bias

        text_ids: list[int] = []
        calls: list[PendingCall] = []
        ids: list[int] = []
        matcher = None
        state = "text"
        logits = session.logits
        t0 = time.perf_counter()
        t_call = t0
        ended = out_of_budget = False
        while True:
            if len(ids) >= budget:
                out_of_budget = True
                break
            if state == "args" and matcher is not None:
                scores = matcher.mask_logits(logits)
            else:
                scores = logits + (first_bias if not ids else after_bias if state == "after" else open_bias)
            tok = int(torch.argmax(scores))
            if not torch.isfinite(scores[tok]):
                raise GenerationError("every token is masked; the schema grammar and tool masks disagree")
            ids.append(tok)
            if state == "args" and matcher is not None:
                matcher.advance(tok)
                call = calls[-1]
                call.arg_ids.append(tok)
                if matcher.is_done():
                    call.decode_s = time.perf_counter() - t_call
                    state, matcher = "after", None
                elif len(call.arg_ids) >= cfg.max_arg_tokens:
                    call.cut, call.decode_s = True, time.perf_counter() - t_call
                    logits = session.feed([tok])
                    break
            elif tok in chat.stop_ids:  # not fed: the tool turn's text starts with the end-of-turn token
                ended = True
                if calls and not calls[-1].decode_s:
                    calls[-1].decode_s = time.perf_counter() - t_call
                break
            elif model.is_memory(tok):
                if calls and not calls[-1].decode_s:
                    calls[-1].decode_s = time.perf_counter() - t_call
                name = model.tool_of(tok)
                calls.append(PendingCall(name))
                t_call = time.perf_counter()
                state = "args"
                matcher = None
                if cfg.constrained:
                    tool = self.tm.tools.get(name)
                    matcher = self.constraint().matcher(tool.parameters)
            elif state == "args":  # unconstrained argument text
                calls[-1].arg_ids.append(tok)
                if len(calls[-1].arg_ids) >= cfg.max_arg_tokens:
                    calls[-1].cut = True
                    logits = session.feed([tok])
                    break
            else:
                text_ids.append(tok)
            logits = session.feed([tok])
        dec = self.tm.tokenizer.decode
        for c in calls:
            c.text = dec(c.arg_ids).strip()
        return Turn(dec(text_ids).strip(), calls, ended, len(ids), out_of_budget, time.perf_counter() - t0, ids,
                    call_prob)

    # ----- the loop -------------------------------------------------------------------------------------
    def run(self, messages: Sequence[Message], tools: Sequence[Tool], *, tool_choice: ToolChoice = None,
            on_step: Callable[[Step], None] | None = None, loop: Any = None) -> RunResult:
        """Answer ``messages`` calling ``tools`` (which need callables) as often as needed.

        on_step: called with each :class:`Step` as soon as its call has run (for live display).
        loop: a running event loop of another thread: ``async def`` tools run there (``TokMemAgent.arun``).
        """
        cfg = self.config
        t_start = time.perf_counter()
        chat, tm = self.tm.chat, self.tm
        by_name = {t.name: t for t in tools}
        bound = [t.name for t in tools]
        convo: list[Message] = list(messages)
        session = self.session_factory(tm.model)
        prompt = chat.prompt_ids(convo)
        session.feed(prompt)
        timings = {"prefill_s": time.perf_counter() - t_start, "decode_s": 0.0, "execute_s": 0.0, "feed_s": 0.0}
        steps: list[Step] = []
        generated = fed = 0
        rounds = 0
        answer, outcome = "", "answer"
        all_ids: list[int] = []
        choice = tool_choice
        done_calls: set[tuple[str, str]] = set()
        suppressed = 0
        call_prob: float | None = None
        while True:
            turn = self.generate_turn(session, bound, tool_choice=choice, budget=cfg.max_new_tokens - generated,
                                      after=last_role(convo))
            if turn.call_prob is not None and not steps:
                call_prob = turn.call_prob
            choice = None if tool_choice not in ("none",) else "none"  # forcing applies to the first turn only
            if (cfg.stop_repeats and turn.calls and not turn.out_of_budget
                    and all((c.tool, c.text) in done_calls for c in turn.calls)):
                # only repeats of calls whose results are already in the context: answer instead
                suppressed += len(turn.calls)
                generated += turn.generated
                session.rollback(len(turn.ids) - int(turn.ended))
                turn = self.generate_turn(session, bound, tool_choice="none",
                                          budget=max(cfg.max_new_tokens - generated, 1))
            generated += turn.generated
            all_ids += turn.ids
            timings["decode_s"] += turn.decode_s
            if not turn.calls:
                answer = turn.text
                convo.append({"role": "assistant", "content": turn.text})
                outcome = "token_budget" if turn.out_of_budget else "answer"
                break
            rounds += 1
            new_steps = self._execute(turn, by_name, rounds, loop)
            steps += new_steps
            done_calls.update((s.tool, s.argument_text) for s in new_steps if s.ok)
            for st in new_steps if on_step else ():
                on_step(st)
            timings["execute_s"] += sum(s.execute_s for s in new_steps)
            convo.append({"role": "assistant", "content": turn.text,
                          "calls": [Call(s.tool, s.arguments if s.arguments is not None else {}) for s in new_steps]})
            convo += [{"role": "tool", "name": s.tool, "content": s.result_text} for s in new_steps]
            if turn.out_of_budget or generated >= cfg.max_new_tokens:
                outcome = "token_budget"
                break
            if rounds >= cfg.max_steps:
                outcome = "max_steps"
                break
            t_feed = time.perf_counter()
            tail = chat.continuation_ids(convo, eot_generated=False)  # the stop token was not fed
            session.feed(tail)
            fed += len(tail)
            timings["feed_s"] += time.perf_counter() - t_feed
        timings["total_s"] = time.perf_counter() - t_start
        if cfg.strict and outcome != "answer":
            raise GenerationError(f"run ended with outcome '{outcome}' after {rounds} rounds")
        return RunResult(answer=answer, steps=steps, outcome=outcome, text=self.render(all_ids),
                         prompt_tokens=len(prompt), generated_tokens=generated, fed_tokens=fed,
                         timings=timings, messages=convo, suppressed_repeats=suppressed, call_prob=call_prob)

    def _execute(self, turn: Turn, tools: dict[str, Tool], round_no: int, loop: Any = None) -> list[Step]:
        """Validate each call of a turn and run the valid ones (concurrently when configured)."""
        steps: list[Step] = []
        runnable: list[tuple[Step, Any, dict[str, Any]]] = []
        for c in turn.calls:
            tool = tools.get(c.tool)
            step = Step(round=round_no, tool=c.tool, argument_text=c.text, arguments=None, status="ok",
                        tokens=len(c.arg_ids), decode_s=c.decode_s)
            if c.cut:
                step.status, step.error = "token_budget", f"arguments exceeded {self.config.max_arg_tokens} tokens"
            elif tool is None or tool.fn is None:
                step.status = "unknown_tool"
                step.error = f"tool '{c.tool}' is not available in this run"
            else:
                chk = check_arguments(c.text, tool.parameters)
                step.arguments = chk.arguments
                if not chk.ok:
                    step.status, step.error = chk.kind, chk.error
                else:
                    runnable.append((step, tool.fn, chk.arguments or {}))
            steps.append(step)
        results = execute_many([(fn, a) for _, fn, a in runnable], timeout=self.config.tool_timeout,
                               parallel=self.config.parallel, loop=loop)
        for (step, _, _), res in zip(runnable, results):
            step.execute_s = res.seconds
            if res.ok:
                step.result = res.value
            else:
                step.status, step.error = res.kind, res.error
        for step in steps:
            step.result_text = (serialize(step.result, self.config.max_result_chars) if step.ok
                                else serialize({"error": step.error}, self.config.max_result_chars))
            if self.config.strict and not step.ok:
                raise ToolCallError(f"call to '{step.tool}' failed ({step.status}): {step.error}",
                                    kind=step.status, tool=step.tool)
        return steps

    def render(self, ids: Sequence[int]) -> str:
        """Generated ids as text with memory tokens shown as ``[tool_name]``."""
        out: list[str] = []
        run: list[int] = []
        for i in ids:
            if self.tm.model.is_memory(i):
                out.append(self.tm.tokenizer.decode(run))
                run = []
                out.append(f"[{self.tm.model.tool_of(i)}]")
            else:
                run.append(i)
        out.append(self.tm.tokenizer.decode(run))
        return "".join(out)
