"""Turning conversations into token ids with the model's own chat template (no torch here).

Assistant turns are never rendered as text by the template: each is replaced by a placeholder, the text
around the placeholders is tokenized piece by piece, and the assistant turn's own ids are spliced in::

    [text before]  [mem_a] {"x":1} [mem_b] {"y":2}  [<end of turn> …text after]

An assistant turn is optional free text followed by its calls; each call is the tool's memory token and
its compact JSON arguments. Assistant turns with calls are training targets, plain-text ones only when
marked ``"target": True`` (earlier dialogue turns are context). The template's end-of-turn token after a
target turn is a target too: the model learns to stop. Training and inference tokenize the
same pieces the same way, so the prompt ids seen in training are those seen at run time.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError
from .traces import Call, Message

_PH = "\ue000{}\ue001"
_PH_RE = re.compile("\ue000(\\d+)\ue001")
_EOT_CANDIDATES = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "<|endoftext|>")


def compact_json(args: dict[str, Any]) -> str:
    """The argument text the model is trained to emit."""
    return json.dumps(args, ensure_ascii=False, separators=(",", ":"))


def value_spans(args: dict[str, Any]) -> tuple[str, list[tuple[int, int]]]:
    """``compact_json(args)`` and the character spans of its top-level values (a string's without quotes)."""
    parts: list[str] = []
    spans: list[tuple[int, int]] = []
    pos = 1
    for k, v in args.items():
        key = json.dumps(k, ensure_ascii=False) + ":"
        val = json.dumps(v, ensure_ascii=False, separators=(",", ":"))
        start = pos + len(key)
        spans.append((start + 1, start + len(val) - 1) if isinstance(v, str) else (start, start + len(val)))
        parts.append(key + val)
        pos = start + len(val) + 1  # the comma
    return "{" + ",".join(parts) + "}", spans


_STRUCTURAL = '{}[]":, '


@dataclass
class Encoded:
    """Token ids of one conversation and which of them are training targets."""

    ids: list[int]
    targets: list[bool]  # same length: True where the token is an assistant-turn token (loss applies)
    n_dropped_messages: int = 0
    #: positions of decision targets: the first token of each target turn (a memory token = call, text =
    #: answer) and the end-of-turn after a call turn (stop calling vs call again); see TrainConfig.decision_weight
    decisions: list[int] = field(default_factory=list)
    #: positions of *choice* targets: argument-value tokens whose text occurs nowhere before them in the
    #: conversation (an operator, a unit or currency code, a word not copied); see TrainConfig.choice_weight
    choices: list[int] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


class ChatFormat:
    """Renders conversations for one tokenizer + memory-token id mapping.

    memory_id: tool name → memory token id (``V + row``).
    system_prompt: prepended as a system message unless the conversation has one; None leaves the
        template's own default (SmolLM2's template then inserts its own system prompt).
    """

    def __init__(self, tokenizer: Any, memory_id: Callable[[str], int], system_prompt: str | None):
        if not getattr(tokenizer, "chat_template", None):
            raise ConfigError("the tokenizer has no chat template; tokmem_agent needs an instruct/chat model")
        self.tokenizer = tokenizer
        self.memory_id = memory_id
        self.system_prompt = system_prompt
        self.eot_id = self._find_eot()
        self._tool_role_ok: bool | None = None

    def _find_eot(self) -> int:
        vocab = self.tokenizer.get_vocab()
        probe = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": "x"}, {"role": "assistant", "content": "\ue000"}], tokenize=False)
        after = probe.split("\ue000", 1)[1]
        for tok in _EOT_CANDIDATES:
            if after.startswith(tok) and tok in vocab:
                return vocab[tok]
        if self.tokenizer.eos_token_id is None:
            raise ConfigError("cannot tell the end-of-turn token of this chat template")
        return int(self.tokenizer.eos_token_id)

    @property
    def stop_ids(self) -> set[int]:
        ids = {self.eot_id}
        if self.tokenizer.eos_token_id is not None:
            ids.add(int(self.tokenizer.eos_token_id))
        return ids

    # ----- pieces ---------------------------------------------------------------------------------
    def text_ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"] if text else []

    def call_ids(self, call: Call) -> list[int]:
        return [self.memory_id(call.name)] + self.text_ids(compact_json(call.arguments))

    def assistant_ids(self, message: Message) -> list[int]:
        """Ids of an assistant turn's body: its text (if any), then each call (no end-of-turn)."""
        ids = self.text_ids(message.get("content") or "")
        for c in message.get("calls") or []:
            ids += self.call_ids(c if isinstance(c, Call) else Call(c["name"], c.get("arguments", {})))
        return ids

    def _template_messages(self, messages: Sequence[Message]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if self.system_prompt is not None and not (messages and messages[0].get("role") == "system"):
            out.append({"role": "system", "content": self.system_prompt})
        for i, m in enumerate(messages):
            role = m.get("role")
            if role == "assistant":
                out.append({"role": "assistant", "content": _PH.format(i)})
            elif role == "tool":
                out.append(self._tool_message(m))
            else:
                out.append({"role": role, "content": m.get("content") or ""})
        return out

    def _tool_message(self, m: Message) -> dict[str, Any]:
        """Role ``tool`` where the template renders it; otherwise a user turn saying it is a tool result."""
        if self._tool_role_ok is None:
            try:
                txt = self.tokenizer.apply_chat_template(
                    [{"role": "user", "content": "q"}, {"role": "tool", "content": "\ue002"}], tokenize=False)
                self._tool_role_ok = "\ue002" in txt
            except Exception:
                self._tool_role_ok = False
        content = m.get("content") or ""
        if self._tool_role_ok:
            return {"role": "tool", "content": content}
        name = m.get("name")
        return {"role": "user", "content": f"[tool result{' of ' + name if name else ''}] {content}"}

    # ----- whole conversations ------------------------------------------------------------------
    def encode(self, messages: Sequence[Message], *, add_generation_prompt: bool = False,
               with_choices: bool = False) -> Encoded:
        """Ids of a conversation; ``targets`` marks assistant bodies and their end-of-turn token.

        with_choices: also find the target calls' *choice* tokens (:attr:`Encoded.choices`; training only)."""
        text = self.tokenizer.apply_chat_template(self._template_messages(messages), tokenize=False,
                                                  add_generation_prompt=add_generation_prompt)
        ids: list[int] = []
        targets: list[bool] = []
        decisions: list[int] = []
        choices: list[int] = []
        said = ""
        pos = 0
        expect_eot = eot_decides = False
        for m in _PH_RE.finditer(text):
            piece = self.text_ids(text[pos:m.start()])
            self._extend(ids, targets, piece, expect_eot, decisions if eot_decides else None)
            msg = messages[int(m.group(1))]
            body = self.assistant_ids(msg)
            is_target = bool(msg.get("target", bool(msg.get("calls"))))
            if is_target and body:
                decisions.append(len(ids))
                if with_choices and msg.get("calls"):
                    choices += self._choice_positions(msg, len(ids) + len(body), text[:m.start()] + said)
            if with_choices:  # earlier calls' arguments count as said
                said += "".join(" " + compact_json(c.arguments if isinstance(c, Call) else c.get("arguments", {}))
                                for c in msg.get("calls") or [])
            ids += body
            targets += [is_target] * len(body)
            pos, expect_eot = m.end(), is_target
            eot_decides = is_target and bool(msg.get("calls"))
        tail_start = len(ids)
        self._extend(ids, targets, self.text_ids(text[pos:]), expect_eot, decisions if eot_decides else None)
        return Encoded(ids, targets, decisions=decisions, choices=choices, meta={"tail_start": tail_start})

    def _choice_positions(self, msg: Message, end: int, before: str) -> list[int]:
        """Positions (ending at ``end``) of the call tokens in ``msg`` that are argument values not found,
        case-insensitively, in the conversation text ``before`` them."""
        seen = before.lower()
        out: list[int] = []
        calls = [c if isinstance(c, Call) else Call(c["name"], c.get("arguments", {})) for c in msg["calls"]]
        start = end - sum(len(self.call_ids(c)) for c in calls)
        for c in calls:
            text, spans = value_spans(c.arguments)
            enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
            for j, (a, b) in enumerate(enc["offset_mapping"]):
                piece = text[a:b].lower().strip(_STRUCTURAL)  # '."' → '.'
                if piece and piece not in seen and any(a < e and s0 < b for s0, e in spans):
                    out.append(start + 1 + j)  # + 1: the memory token
            seen += " " + text.lower()
            start += 1 + len(enc["input_ids"])
        return out

    def _extend(self, ids: list[int], targets: list[bool], piece: list[int], expect_eot: bool,
                decisions: list[int] | None = None) -> None:
        ids += piece
        targets += [False] * len(piece)
        if expect_eot and piece and piece[0] == self.eot_id:
            targets[len(ids) - len(piece)] = True
            if decisions is not None:
                decisions.append(len(ids) - len(piece))

    def prompt_ids(self, messages: Sequence[Message]) -> list[int]:
        """Ids to feed before generating the next assistant turn."""
        return self.encode(messages, add_generation_prompt=True).ids

    def continuation_ids(self, messages: Sequence[Message], *, eot_generated: bool) -> list[int]:
        """Ids that follow the last assistant turn of ``messages`` up to the next generation prompt.

        This is what the controller feeds after executing calls (tool turns, then the assistant header),
        so the KV cache of everything before is reused. Skips the end-of-turn token when the model
        already produced it.
        """
        enc = self.encode(messages, add_generation_prompt=True)
        tail = enc.ids[enc.meta["tail_start"]:]
        if eot_generated and tail and tail[0] == self.eot_id:
            tail = tail[1:]
        return tail

    def truncated(self, messages: Sequence[Message], max_length: int, *,
                  with_choices: bool = False) -> Encoded | None:
        """Encode, dropping the oldest context messages until it fits (see TrainConfig.max_length).

        Keeps a leading system message and everything from the last user turn before the first target on.
        Then cuts the context from the left. None when the targets alone do not fit.
        """
        enc = self.encode(messages, with_choices=with_choices)
        if len(enc.ids) <= max_length:
            return enc
        msgs = list(messages)
        head = [msgs.pop(0)] if msgs and msgs[0].get("role") == "system" else []
        first_asst = next((i for i, m in enumerate(msgs) if m.get("role") == "assistant"
                           and m.get("target", bool(m.get("calls")))), len(msgs))
        last_user = max((i for i in range(first_asst) if msgs[i].get("role") == "user"), default=0)
        dropped = 0
        for k in range(1, last_user + 1):
            if msgs[k].get("role") != "user":  # keep conversations starting with a user turn
                continue
            enc = self.encode(head + msgs[k:], with_choices=with_choices)
            dropped = k
            if len(enc.ids) <= max_length:
                enc.n_dropped_messages = dropped
                return enc
        first_t = enc.targets.index(True) if True in enc.targets else len(enc.ids)
        overflow = len(enc.ids) - max_length
        if overflow >= first_t:
            return None
        return Encoded(enc.ids[overflow:], enc.targets[overflow:], dropped,
                       [d - overflow for d in enc.decisions if d >= overflow],
                       [c - overflow for c in enc.choices if c >= overflow], {"left_cut": overflow})


def trace_conversation(trace: Any, reading: str = "compositional") -> list[Message]:
    """The conversation a trace is trained on.

    compositional: context (``messages`` plus ``between`` turns) → one assistant turn with all calls.
    chain: ``messages`` → call 0 → tool result 0 → ``between[0]`` → call 1 → … → last result →
        ``response`` (when present). Needs ``results``; falls back to compositional without them.
    """
    if not trace.calls:  # a request that needs no tool: the answer text is the target
        if not (trace.response or "").strip():
            raise ConfigError(f"trace {trace.id!r} has no calls and no response; give it a 'response' or let "
                              "training fill in the backbone's reply (tokmem_agent.training.replies.fill_replies)")
        return [*trace.messages, {"role": "assistant", "content": trace.response, "target": True}]
    if reading == "compositional" or trace.results is None:
        return [*trace.compositional_context(), {"role": "assistant", "content": "", "calls": trace.calls}]
    if reading != "chain":
        raise ConfigError(f"unknown reading {reading!r} (compositional, chain)")
    msgs: list[Message] = list(trace.messages)
    between = trace.between or [[] for _ in trace.calls[1:]]
    for i, call in enumerate(trace.calls):
        msgs.append({"role": "assistant", "content": "", "calls": [call]})
        msgs.append({"role": "tool", "name": call.name, "content": _result_text(trace.results[i])})
        if i < len(between):  # the assistant's report of result i is learned; user turns are context
            msgs.extend({**m, "target": True} if m.get("role") == "assistant" else m for m in between[i])
    if trace.response:
        msgs.append({"role": "assistant", "content": trace.response, "target": True})
    return msgs


def _result_text(result: Any) -> str:
    return result if isinstance(result, str) else json.dumps(result, ensure_ascii=False, separators=(",", ":"))
