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

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from ..config import ROW_BIAS_KEY, ControllerConfig
from ..errors import GenerationError, ToolCallError
from ..executor import execute_many, serialize
from ..registry import Tool
from ..traces import Call, Message, last_role
from ..validation import check_arguments
from .batch import BatchSession
from .generate import DecodeSession
from .grounding import Grounding, NumberVocab, grounding_for
from .runlog import RunResult, Step
from .schedule import Next, OneRow, Rows, TurnSpec, run_jobs, turn_decoder
from .turn import ToolChoice, Turn, TurnDecoder

if TYPE_CHECKING:
    from ..tokmem import TokMem



class Controller:
    """Runs a :class:`TokMem` model as a tool-using agent."""

    def __init__(self, tm: TokMem, config: ControllerConfig | None = None,
                 session_factory: Callable[[Any], DecodeSession] = DecodeSession):
        self.tm = tm
        self.config = config or ControllerConfig()
        self.session_factory = session_factory  # tests inject scripted sessions
        self._constraint: Any = None
        self._constraint_width = -1
        self._number_vocab: NumberVocab | None = None

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

    def number_vocab(self) -> NumberVocab:
        """The tokens grounded answers watch (:class:`.grounding.NumberVocab`), built once per tokenizer."""
        if self._number_vocab is None:
            self._number_vocab = NumberVocab.of(self.tm.tokenizer)
        return self._number_vocab

    def _memory_bias(self, allowed: set[str], *, allow_text: bool = True, allow_stop: bool = True,
                     rows: bool = True) -> torch.Tensor:
        """Additive mask [V+N]: 0 where allowed, -inf elsewhere; with ``rows`` (the turns that answer a user
        message), an allowed row with a calibrated bias (:data:`~tokmem_agent.config.ROW_BIAS_KEY`, set by
        registration) gets that bias."""
        model = self.tm.model
        bias = torch.zeros(model.total_vocab, device=model.device)  # [V+N]
        row_bias = (self.tm.meta.get(ROW_BIAS_KEY) or {}) if rows else {}
        for i, name in enumerate(self.tm.bank.names):
            if name not in allowed:
                bias[model.vocab_size + i] = float("-inf")
            elif name in row_bias:
                bias[model.vocab_size + i] = float(row_bias[name])
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
                      budget: int | None = None, after: str | None = None,
                      ground: Grounding | None = None) -> Turn:
        """Generate one assistant turn from the session's current position (no execution).

        after: what this turn answers, ``"user"`` (a user message) or ``"tool"`` (a tool result); with
        tool_choice auto its first token is then the thresholded call decision of :meth:`call_threshold`,
        when one is set. None: argmax. The token-by-token logic is :class:`TurnDecoder`'s, shared with the
        batched rows of :func:`.schedule.run_jobs`.
        """
        dec = TurnDecoder(self, session.logits, bound, tool_choice=tool_choice, budget=budget, after=after,
                          ground=ground)
        logits = session.logits
        while True:
            tok = dec.step(logits)
            if tok is None:
                break
            logits = session.feed([tok])
            if dec.done:
                break
        return dec.turn()

    # ----- the loop -------------------------------------------------------------------------------------
    def run(self, messages: Sequence[Message], tools: Sequence[Tool], *, tool_choice: ToolChoice = None,
            on_step: Callable[[Step], None] | None = None, loop: Any = None) -> RunResult:
        """Answer ``messages`` calling ``tools`` (which need callables) as often as needed.

        on_step: called with each :class:`Step` as soon as its call has run (for live display).
        loop: a running event loop of another thread: ``async def`` tools run there (``TokMemAgent.arun``).
        """
        report = (lambda _i, st: on_step(st)) if on_step is not None else None
        return self.run_many([messages], tools, tool_choice=tool_choice, on_step=report, loop=loop)[0]

    def run_many(self, conversations: Sequence[Sequence[Message]], tools: Sequence[Tool], *,
                 tool_choice: ToolChoice = None, on_step: Callable[[int, Step], None] | None = None,
                 loop: Any = None, batch_size: int | None = None) -> list[RunResult]:
        """:meth:`run` for several conversations at once, with continuous batching (:func:`.schedule.run_jobs`):
        up to ``batch_size`` (default ``ControllerConfig.batch_size``) decode together, one forward pass per
        step over a :class:`BatchSession`; each conversation's calls run as soon as its turn ends, it goes on
        until its own answer, and when it is done the next waiting conversation takes its row. One
        conversation (or ``batch_size`` 1) uses ``session_factory``'s session. Greedy, so every result
        equals :meth:`run` on that conversation alone (to float tolerance).

        on_step: called with (conversation index, step) as each call has run.
        """
        cfg, chat, model = self.config, self.tm.chat, self.tm.model
        n = len(conversations)
        if n == 0:
            return []
        width = min(n, batch_size or cfg.batch_size)
        if width < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        by_name = {t.name: t for t in tools}
        bound = [t.name for t in tools]
        runs = [_Run(list(m)) for m in conversations]
        prompts = [chat.prompt_ids(r.convo) for r in runs]
        later = "none" if tool_choice == "none" else None  # forcing a tool: the first turn only

        def spec(run: _Run, choice: ToolChoice, after: str | None) -> TurnSpec:
            return TurnSpec(bound, choice, max(cfg.max_new_tokens - run.generated, 1), after,
                            grounding_for(run.convo))

        def admitted(i: int, seconds: float) -> None:
            runs[i].prompt_tokens, runs[i].timings["prefill_s"] = len(prompts[i]), seconds
            runs[i].t0 = time.perf_counter() - seconds

        def on_turn(i: int, turn: Turn) -> Next | None:
            run = runs[i]
            if turn.call_prob is not None and not run.steps:
                run.call_prob = turn.call_prob
            if (cfg.stop_repeats and turn.calls and not turn.out_of_budget
                    and all((c.tool, call_key(c.text)) in run.done_calls for c in turn.calls)):
                # only repeats of calls whose results are already in the context: answer instead
                run.suppressed += len(turn.calls)
                run.generated += turn.generated
                return Next(spec(run, "none", None), redo=True)
            run.generated += turn.generated
            run.all_ids += turn.ids
            run.timings["decode_s"] += turn.decode_s
            if not turn.calls:
                run.answer = turn.text
                run.convo.append({"role": "assistant", "content": turn.text})
                run.finish("token_budget" if turn.out_of_budget else "answer")
                return None
            run.rounds += 1
            new_steps = self._execute(turn, by_name, run.rounds, loop)
            run.steps += new_steps
            run.done_calls.update((st.tool, call_key(st.argument_text)) for st in new_steps if st.ok)
            for st in new_steps if on_step else ():
                on_step(i, st)
            run.timings["execute_s"] += sum(st.execute_s for st in new_steps)
            run.convo.append({"role": "assistant", "content": turn.text,
                              "calls": [Call(st.tool, st.arguments if st.arguments is not None else {})
                                        for st in new_steps]})
            run.convo += [{"role": "tool", "name": st.tool, "content": st.result_text} for st in new_steps]
            if turn.out_of_budget or run.generated >= cfg.max_new_tokens:
                run.finish("token_budget")
                return None
            if run.rounds >= cfg.max_steps:
                run.finish("max_steps")
                return None
            tail = chat.continuation_ids(run.convo, eot_generated=False)  # the stop token was not fed
            run.fed += len(tail)
            return Next(spec(run, later, last_role(run.convo)), feed=tail)

        def fed(i: int, seconds: float) -> None:
            runs[i].timings["feed_s"] += seconds

        batch: Rows = (OneRow(self.session_factory, model) if width == 1
                       else BatchSession(model, 0, pad_id=chat.eot_id))
        jobs = ((p, spec(r, tool_choice, last_role(r.convo))) for p, r in zip(prompts, runs))
        run_jobs(turn_decoder(self), batch, jobs, on_turn, width=width, on_admit=admitted, on_feed=fed)
        if cfg.strict:
            for r in runs:
                if r.outcome != "answer":
                    raise GenerationError(f"run ended with outcome '{r.outcome}' after {r.rounds} rounds")
        return [RunResult(answer=r.answer, steps=r.steps, outcome=r.outcome, text=self.render(r.all_ids),
                          prompt_tokens=r.prompt_tokens, generated_tokens=r.generated, fed_tokens=r.fed,
                          timings=r.timings, messages=r.convo, suppressed_repeats=r.suppressed,
                          call_prob=r.call_prob) for r in runs]

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


def call_key(argument_text: str) -> str:
    """One spelling of a call's arguments for "was this call made already": the JSON with its keys sorted
    (``{"b": 1, "a": 2}`` repeats ``{"a": 2, "b": 1}``), the text itself when it is no JSON object."""
    try:
        args = json.loads(argument_text)
    except ValueError:
        return argument_text.strip()
    return json.dumps(args, sort_keys=True) if isinstance(args, dict) else argument_text.strip()


@dataclass
class _Run:
    """The bookkeeping of one conversation in :meth:`Controller.run_many`."""

    convo: list[Message]
    steps: list[Step] = field(default_factory=list)
    answer: str = ""
    outcome: str = "answer"
    prompt_tokens: int = 0
    generated: int = 0
    fed: int = 0
    rounds: int = 0
    suppressed: int = 0
    call_prob: float | None = None
    all_ids: list[int] = field(default_factory=list)
    done_calls: set[tuple[str, str]] = field(default_factory=set)
    timings: dict[str, float] = field(default_factory=lambda: {"prefill_s": 0.0, "decode_s": 0.0,
                                                                "execute_s": 0.0, "feed_s": 0.0})

    t0: float = 0.0  # when it joined the batch (its prefill began)

    def finish(self, outcome: str) -> None:
        self.outcome = outcome
        self.timings["total_s"] = time.perf_counter() - self.t0
