"""One assistant turn, token by token: the state machine the controller drives for one sequence
(:meth:`Controller.generate_turn`) or for many at once (:func:`.schedule.run_jobs`).

Per turn::

    text ──memory token k──► args(k) ──JSON object complete──► after-call ──memory token──► args(…)
      │                                                            │
      └──────────── end of turn ◄──────────────────────────────────┘

:class:`TurnDecoder` is given the logits after each fed token and answers with the next token to feed (or
None when the turn is over); it never touches a KV cache, so one decoder serves a single session and a row
of a batch alike.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..config import ANSWER_BIAS_KEY, ZERO_DATA_KEY
from ..errors import GenerationError
from ..validation import ArgCheck
from .ground_args import ground_schema
from .grounding import Grounding, NumberGround, copy_schema
from .lead import LeadTrie, lead_texts, unstated_figures
from .operators import has_expression_param, needed_operators
from .pairs import distinct_schema

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
    looped: bool = False  # the text began to repeat a sentence or phrase of its own and was cut there (stop_text_loops)


SENTENCE_ENDS = (".", "!", "?")
#: a repeated sentence counts as a loop from this many words on ("Yes." twice is not a loop)
LOOP_MIN_WORDS = 3
#: a phrase repeated back to back ("2, 2, 2, 2", "how are you today; how are you today; …") is a loop from
#: this many tokens in all, at least three times, for phrases of up to LOOP_MAX_PERIOD tokens
LOOP_MIN_TOKENS = 9
LOOP_MAX_PERIOD = 16


class SentenceLoop:
    """Watches a turn's text token by token for a sentence it already said, word for word.

    A small model that has said what it knows often says it again ("I'm glad to help. I'm glad to help.
    …") until the token budget ends the turn. A sentence ends at ``.``, ``!`` or ``?`` followed by white
    space, or at a line break (so "10.50" is not a sentence end). :meth:`add` tells when the sentence just
    finished repeats an earlier one (case and spacing aside); :attr:`start` is then where that repeat
    begins (an index into the text ids).
    """

    def __init__(self, decode: Callable[[list[int]], str]):
        self.decode = decode
        self.start = 0  # index of the first id of the sentence being written
        self.seen: set[str] = set()

    def add(self, text_ids: list[int]) -> bool:
        """After ``text_ids[-1]`` was appended: whether it completes a sentence that repeats an earlier one, or
        a phrase repeated back to back with no sentence end (:meth:`phrase_repeat`; :attr:`start` is then
        the end of its first occurrence)."""
        cut = self.phrase_repeat(text_ids)
        if cut is not None:
            self.start = cut
            return True
        piece = self.decode(text_ids[-1:])
        if piece[:1].isspace():  # the sentence before this piece may have ended
            end = len(text_ids) - 1
            before = self.decode(text_ids[self.start:end])
            if not ("\n" in piece or before.rstrip().endswith(SENTENCE_ENDS)):
                return False
        elif piece[-1:].isspace() and (piece.rstrip().endswith(SENTENCE_ENDS) or "\n" in piece):
            end = len(text_ids)  # the piece itself ends the sentence (".\n")
        else:
            return False
        return self._close(text_ids, end)

    def phrase_repeat(self, text_ids: list[int]) -> int | None:
        """Where the text's tail starts repeating a phrase it just wrote (the index after the phrase's first
        occurrence), or None. Exact token cycles of 1-:data:`LOOP_MAX_PERIOD` tokens, three or more times and
        :data:`LOOP_MIN_TOKENS` tokens in all; a cycle of digits alone is a number ("1000000000"), not a loop."""
        n_ids = len(text_ids)
        for p in range(1, LOOP_MAX_PERIOD + 1):
            n = p * max(3, -(-LOOP_MIN_TOKENS // p))  # whole cycles, at least 3 and LOOP_MIN_TOKENS tokens
            if n > n_ids:
                break
            tail = text_ids[n_ids - n:]
            if tail == tail[:p] * (n // p) and not self.decode(tail[:p]).replace(" ", "").isdigit():
                return n_ids - n + p
        return None

    def finish(self, text_ids: list[int]) -> bool:
        """At the end of the text: whether its last sentence repeats an earlier one."""
        return self._close(text_ids, len(text_ids))

    def _close(self, text_ids: list[int], end: int) -> bool:
        sentence = " ".join(self.decode(text_ids[self.start:end]).split()).lower()
        if len(sentence.split()) >= LOOP_MIN_WORDS:
            if sentence in self.seen:
                return True
            self.seen.add(sentence)
        if sentence:
            self.start = end
        return False


class TurnDecoder:
    """The decisions of one assistant turn (greedy; ``ctl``: the :class:`~.controller.Controller`): the call-or-answer threshold on its first token, the
    tool masks, the schema matcher inside arguments, the end of the turn and text loops.

    Drive it with :meth:`step`: give it the logits [V+N] after the last fed id; it returns the next id to
    feed, or None when the turn is over without one (an end-of-turn token, which the tool turn's text
    starts with; a text loop; the budget). After a returned id :attr:`done` may also be set (arguments
    cut at ``max_arg_tokens``): feed that id, then stop.
    """

    def __init__(self, ctl: Any, first_logits: torch.Tensor, bound: Sequence[str], *,
                 tool_choice: ToolChoice = None, budget: int | None = None, after: str | None = None,
                 ground: Grounding | None = None):
        cfg = self.cfg = ctl.config
        self.ctl, self.model, self.chat = ctl, ctl.tm.model, ctl.tm.chat
        self.budget = cfg.max_new_tokens if budget is None else budget
        if after == "tool" and cfg.ground_operators and tool_choice in (None, "auto"):
            bound = self._spent(bound, ground)
        bound_set = set(bound)
        rows = after != "tool"  # calibrated row biases: for the decision on a user message, not after a result
        bound_bias = ctl._memory_bias(bound_set, rows=rows)  # [V+N]: text and the bound tools
        text_lead = self._answer_bias(ground) if after == "tool" else 0.0
        if text_lead:  # right after a schema-only tool's result: text leads the memory tokens by its calibrated bias
            bound_bias = bound_bias.clone()
            bound_bias[self.model.vocab_size:] -= text_lead
        self.call_prob: float | None = None
        threshold = (ctl.call_threshold(after) if after in ("user", "tool") and tool_choice in (None, "auto")
                     and bound_set else None)
        if threshold is not None:
            self.call_prob = ctl.call_probability(first_logits, bound, bias=bound_bias)
            if self.call_prob < threshold:
                tool_choice = "none"  # answer: no memory token for the rest of this turn
            else:
                tool_choice = "any"  # call: the argmax among the bound tools' tokens
        self.open_bias = ctl._memory_bias(set()) if tool_choice == "none" else bound_bias
        self.first_bias = self.open_bias
        if tool_choice in ("any", "required"):
            self.first_bias = ctl._memory_bias(bound_set, allow_text=False, allow_stop=False, rows=rows)
        elif tool_choice not in (None, "auto", "none"):
            self.first_bias = ctl._memory_bias({tool_choice}, allow_text=False, allow_stop=False, rows=rows)
        self.after_bias = (ctl._memory_bias(bound_set, allow_text=False, rows=rows) if cfg.constrained
                           else self.open_bias)

        self.text_ids: list[int] = []
        self.calls: list[PendingCall] = []
        self.ids: list[int] = []
        self.matcher: Any = None
        self.state = "text"
        self.t0 = self.t_call = time.perf_counter()
        self.done = self.ended = self.out_of_budget = self.looped = False
        self.loop_watch = SentenceLoop(ctl.tm.tokenizer.decode) if cfg.stop_text_loops else None
        numbers = ground.numbers if ground is not None and cfg.ground_numbers else None
        self.ground = NumberGround(ctl.number_vocab(), numbers) if numbers is not None else None
        self.spans = ground.spans if ground is not None and cfg.ground_places else ()
        grounds_args = (cfg.ground_times or cfg.ground_optional or cfg.ground_dates or cfg.ground_spans
                        or cfg.ground_operators or cfg.ground_expression_numbers or cfg.ground_titles
                        or cfg.ground_quantities)
        self.evidence = ground.args if ground is not None and grounds_args else None
        self.today = dt.date.fromisoformat(cfg.today) if cfg.today else dt.date.today()
        self.lead = self._lead(ground) if after == "tool" and cfg.lead_answers else None
        # answering results: the text may not end before it states a figure of each (state_results)
        self.unstated = ground if after == "tool" and cfg.state_results and ground is not None and ground.results \
            else None

    def _spent(self, bound: Sequence[str], ground: Grounding | None) -> list[str]:
        """``bound`` less the arithmetic tools whose results end the conversation when the request asks for no
        operation that no call for it has done yet (``ground_operators``): a small model that has computed
        "2.4 * 1.85" goes on to "4.44 * 2.4"; no gold or training chain has one expression follow another
        unless words ask for a second operation ("… times 3, then add 2")."""
        ev = ground.args if ground is not None else None
        if ev is None or not ground.results or needed_operators(ev.operators, ev.done_operators, True):
            return list(bound)
        done = {name for name, _, _ in ground.results}
        tools = self.ctl.tm.tools
        return [b for b in bound if not (b in done and b in tools and has_expression_param(tools.get(b).parameters))]

    def _answer_bias(self, ground: Grounding | None) -> float:
        """The largest answer bias (:data:`~tokmem_agent.config.ANSWER_BIAS_KEY`) of the tools whose results
        end the conversation; 0 when none has one."""
        stored = self.ctl.tm.meta.get(ANSWER_BIAS_KEY) or {}
        if ground is None or not stored:
            return 0.0
        return max((float(stored.get(name, 0.0)) for name, _, _ in ground.results), default=0.0)

    def _lead(self, ground: Grounding | None) -> LeadTrie | None:
        """The openings an answer to the results that end the conversation may start with (:mod:`.lead`)."""
        if ground is None or not ground.results:
            return None
        zero_data = set(self.ctl.tm.meta.get(ZERO_DATA_KEY, ()))
        texts = lead_texts(ground.results, lambda name: self.cfg.lead_answers is True or name in zero_data,
                           ground.request)
        if not texts:
            return None
        trie = self._closing([f"{t}." for t in texts])  # the opening, a full stop, the end of the turn
        return trie if trie.open else None

    def _closing(self, texts: Sequence[str]) -> LeadTrie:
        """A trie of ``texts``, each followed by the end of the turn: what the answer must say, then stop."""
        enc = self.ctl.tm.tokenizer
        return LeadTrie([[*enc.encode(t, add_special_tokens=False), self.chat.eot_id] for t in texts])

    def _state_figures(self, scores: torch.Tensor, stop: int) -> int:
        """At the end of an answer to results: ``stop`` when the text states a figure of each result, else the
        first token of the sentences that state them (then a full stop and the end of the turn)."""
        ground, self.unstated = self.unstated, None
        text = self.ctl.tm.tokenizer.decode(self.text_ids)
        missing = unstated_figures(ground.results, ground.request, text)
        if not missing:
            return stop
        sep = "" if not text or text[-1:].isspace() else " "
        self.lead = self._closing([sep + " ".join(f"{m}." for m in missing)])
        return int(torch.argmax(self.lead.mask(torch.zeros_like(scores))))

    def step(self, logits: torch.Tensor) -> int | None:
        """The next id to feed after ``logits`` [V+N], or None: the turn is over (nothing to feed)."""
        if self.done:
            return None
        if len(self.ids) >= self.budget:
            self.out_of_budget = self.done = True
            return None
        model, cfg = self.model, self.cfg
        if self.state == "args" and self.matcher is not None:
            scores = self.matcher.mask_logits(logits)
        else:
            bias = (self.first_bias if not self.ids else self.after_bias if self.state == "after"
                    else self.open_bias)
            scores = logits + bias
            if self.lead is not None and self.state == "text" and not self.ids:
                first = int(torch.argmax(scores))
                if model.is_memory(first):  # another call: not an answer, nothing to lead
                    self.lead = None
            if self.lead is not None and self.state == "text":
                scores = self.lead.mask(scores)
            elif self.ground is not None and self.state == "text":
                scores = self.ground.mask(scores)
        tok = int(torch.argmax(scores))
        if not torch.isfinite(scores[tok]):
            raise GenerationError("every token is masked; the schema grammar and tool masks disagree")
        if tok in self.chat.stop_ids and self.state == "text" and self.unstated is not None and not self.calls:
            tok = self._state_figures(scores, tok)
        self.ids.append(tok)
        if self.state == "args" and self.matcher is not None:
            self.matcher.advance(tok)
            call = self.calls[-1]
            call.arg_ids.append(tok)
            if self.matcher.is_done():
                call.decode_s = time.perf_counter() - self.t_call
                self.state, self.matcher = "after", None
            elif len(call.arg_ids) >= cfg.max_arg_tokens:
                call.cut, call.decode_s = True, time.perf_counter() - self.t_call
                self.done = True  # fed, then over
        elif tok in self.chat.stop_ids:  # not fed: the tool turn's text starts with the end-of-turn token
            self.ended = self.done = True
            if self.calls and not self.calls[-1].decode_s:
                self.calls[-1].decode_s = time.perf_counter() - self.t_call
            if self.loop_watch is not None and not self.calls and self.loop_watch.finish(self.text_ids):
                del self.text_ids[self.loop_watch.start:]
                self.looped = True
            return None
        elif model.is_memory(tok):
            if self.calls and not self.calls[-1].decode_s:
                self.calls[-1].decode_s = time.perf_counter() - self.t_call
            name = model.tool_of(tok)
            self.calls.append(PendingCall(name))
            self.t_call = time.perf_counter()
            self.state = "args"
            self.matcher = None
            if cfg.constrained:
                tool = self.ctl.tm.tools.get(name)
                zero_data = name in self.ctl.tm.meta.get(ZERO_DATA_KEY, ())
                copy = cfg.ground_places is True or (cfg.ground_places == "zero_data" and zero_data)
                spans = self.spans if copy else ()
                measure = cfg.ground_quantities is True or (cfg.ground_quantities == "zero_data" and zero_data)
                schema = ground_schema(copy_schema(tool.parameters, spans), self.evidence, times=cfg.ground_times,
                                       optional=cfg.ground_optional, dates=cfg.ground_dates, today=self.today,
                                       named=cfg.ground_named, spans=cfg.ground_spans,
                                       operators=cfg.ground_operators, quantities=measure,
                                       expression_numbers=cfg.ground_expression_numbers,
                                       titles=cfg.ground_titles)
                if cfg.ground_distinct:
                    schema = distinct_schema(schema, self.today)
                self.matcher = self.ctl.constraint().matcher(schema)
        elif self.state == "args":  # unconstrained argument text
            self.calls[-1].arg_ids.append(tok)
            if len(self.calls[-1].arg_ids) >= cfg.max_arg_tokens:
                self.calls[-1].cut = True
                self.done = True  # fed, then over
        else:
            self.text_ids.append(tok)
            if self.ground is not None:
                self.ground.advance(tok)
            if self.lead is not None:
                self.lead.advance(tok)
                if not self.lead.open:
                    self.lead = None
            if self.loop_watch is not None and not self.calls and self.loop_watch.add(self.text_ids):
                del self.text_ids[self.loop_watch.start:]  # keep the text up to the repeat; the turn is the answer
                self.looped = self.done = True
                return None
        return tok

    def turn(self) -> Turn:
        """The finished turn."""
        dec = self.ctl.tm.tokenizer.decode
        for c in self.calls:
            c.text = dec(c.arg_ids).strip()
        return Turn(dec(self.text_ids).strip(), self.calls, self.ended, len(self.ids), self.out_of_budget,
                    time.perf_counter() - self.t0, self.ids, self.call_prob, self.looped)
