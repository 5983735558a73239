"""One episode as the replay shows it: the opening, then one step per agent turn.

A trajectory's conversation is AgentTraj's: the instruction (human), the agent's acknowledgement
(gpt), the env's first observation (human), then agent turn / observation pairs::

    opening = [instruction, acknowledgement]
    step 0  = first observation                (no action)
    step k  = k-th agent turn + the env's reply (the last step may have no reply)

Rewards come from `step_rewards` (step k's is entry k-1) and the final `reward`. Token fields
(input_ids, loss_mask, logprobs) are matched to agent turns by their generated spans: each run of
`loss_mask == 1` is one agent turn, in order.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from agentgym.core.trajectory import turn_spans

# "Thought: ... Action: ..." as the ReAct framing writes it; the action is what follows the last
# "Action:" line.
_ACTION = re.compile(r"(?:^|\n)\s*Action:\s*", re.IGNORECASE)
MAX_TOKENS_SHOWN = 4096  # per agent turn

Decode = Callable[[list[int]], list[str]]


def split_thought(text: str) -> tuple[str | None, str]:
    """(thought, action) of one agent turn; (None, text) when it has no "Action:" line."""
    parts = list(_ACTION.finditer(text))
    if not parts:
        return None, text
    m = parts[-1]
    thought = text[: m.start()].strip()
    thought = re.sub(r"^\s*Thought:\s*", "", thought, flags=re.IGNORECASE)
    return thought or None, text[m.end() :].strip()


def _opening_length(turns: list[dict[str, Any]]) -> int:
    """How many turns precede the first observation: instruction + acknowledgement when the
    conversation opens that way (AgentTraj), else only the first human turn."""
    roles = [t["role"] for t in turns]
    start = 0
    while start < len(roles) and roles[start] == "system":
        start += 1
    if roles[start : start + 3] == ["human", "gpt", "human"]:
        return start + 2
    return start


def steps_of(record: dict[str, Any], decode: Decode | None = None) -> dict[str, Any]:
    """{"opening", "steps", "tokens"} of one trajectory's JSON (see the module docstring)."""
    turns = [
        {"role": c.get("from", ""), "text": c.get("value", ""), "loss": c.get("loss")}
        for c in record.get("conversations") or []
        if isinstance(c, dict)
    ]
    n_open = _opening_length(turns)
    opening = [{"role": t["role"], "text": t["text"]} for t in turns[:n_open]]
    rest = turns[n_open:]
    step_rewards = record.get("step_rewards") or []
    final = record.get("reward")

    steps: list[dict[str, Any]] = []
    i = 0
    if rest and rest[0]["role"] == "human":
        steps.append(_step(0, None, rest[0]["text"]))
        i = 1
    agent_turns: list[dict[str, Any]] = []
    while i < len(rest):
        turn = rest[i]
        if turn["role"] != "gpt":  # two env turns in a row: show it as an observation
            steps.append(_step(len(steps), None, turn["text"]))
            i += 1
            continue
        reply = rest[i + 1]["text"] if i + 1 < len(rest) and rest[i + 1]["role"] != "gpt" else None
        step = _step(len(steps), turn["text"], reply)
        agent_turns.append(step)
        steps.append(step)
        i += 2 if reply is not None else 1
    if not steps:
        steps.append(_step(0, None, None))

    cumulative = 0.0
    for k, step in enumerate(agent_turns):
        if k < len(step_rewards):
            step["reward"] = step_rewards[k]
            cumulative += step_rewards[k]
            step["cumulative"] = cumulative
    steps[-1]["done"] = True
    steps[-1]["score"] = final

    tokens = _tokens(record, agent_turns, decode)
    return {"opening": opening, "steps": steps, "tokens": tokens}


def _step(index: int, raw: str | None, observation: str | None) -> dict[str, Any]:
    thought, action = split_thought(raw) if raw is not None else (None, None)
    return {
        "index": index,
        "thought": thought,
        "action": action,
        "raw": raw,
        "observation": observation,
        "reward": None,
        "cumulative": None,
        "score": None,
        "done": False,
        "n_tokens": None,
        "token_logprobs": None,
    }


def _tokens(record: dict[str, Any], agent_turns: list[dict[str, Any]], decode: Decode | None) -> Any:
    ids, mask = record.get("input_ids"), record.get("loss_mask")
    if not isinstance(ids, list) or not isinstance(mask, list) or len(ids) != len(mask):
        return None
    spans = turn_spans(mask)
    logprobs = record.get("logprobs")
    if not isinstance(logprobs, list) or len(logprobs) != len(ids):
        logprobs = None
    # The spans belong to the agent turns that were generated (the acknowledgement is not): the
    # last len(spans) agent turns.
    matched = agent_turns[-len(spans) :] if spans and len(spans) <= len(agent_turns) else []
    decoded = False
    for step, (a, b) in zip(matched, spans[-len(matched) :] if matched else [], strict=True):
        step["n_tokens"] = b - a
        shown = ids[a : min(b, a + MAX_TOKENS_SHOWN)]
        texts: list[str] | None = None
        if decode is not None:
            try:
                texts = decode(shown)
                decoded = True
            except Exception:  # a tokenizer that does not fit these ids: show the ids
                texts = None
        step["token_logprobs"] = [
            {"t": texts[j] if texts else f"#{tid}", "lp": logprobs[a + j] if logprobs else None}
            for j, tid in enumerate(shown)
        ]
    return {"total": len(ids), "agent": sum(mask), "decoded": decoded}
