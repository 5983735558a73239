"""The tool envs' action syntax: `<tool> with Action Input: <arguments>`.

As in AgentBoard's tool tasks (AgentGym's `agentenv-tool`), an action names one tool and gives
its arguments as a JSON object, e.g. `get_latitude_longitude with Action Input: {"name": "Paris"}`.
The text may still carry the ReAct frame ("Thought: ...\\n\\nAction: ..."); the tool is the name just
before "Action Input:", with or without "with" between them. The original evaluated the arguments
as Python; we parse JSON and fall back to Python *literals* only (single quotes, True/None), never
code. A sheet query written as `re.compile('...')` is read as its pattern string.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from typing import Any

_ACTION = re.compile(
    r"(?:Action\s*:\s*)?`*([A-Za-z_][A-Za-z0-9_]*)`*\s*(?:with\s+)?Action\s*Input\s*:?\s*(.*)\Z",
    re.DOTALL | re.IGNORECASE,
)
_RE_COMPILE = re.compile(
    r"""re\.compile\(\s*(r?(?:'[^'\\]*(?:\\.[^'\\]*)*'|"[^"\\]*(?:\\.[^"\\]*)*"))\s*\)"""
)


class ActionError(Exception):
    """The action text is not a tool call; the message is shown to the agent."""


@dataclass(frozen=True)
class ToolCall:
    name: str
    args: dict[str, Any] = field(default_factory=dict)

    def render(self) -> str:
        """The action text for this call, as an agent would write it after 'Action:' (arguments
        left unset are not written)."""
        args = {k: v for k, v in self.args.items() if v is not None}
        return f"{self.name} with Action Input: {json.dumps(args, ensure_ascii=False)}"


def parse_action(text: str) -> ToolCall:
    m = _ACTION.search(text)
    if m is None:
        raise ActionError(
            'ERROR | Format error: write the action as "tool_name with Action Input: {...}", '
            "for example: get_user_current_date with Action Input: {}"
        )
    return ToolCall(m.group(1), parse_arguments(m.group(2)))


def parse_arguments(text: str) -> dict[str, Any]:
    text = text.strip().strip("`").strip()
    if text.lower().startswith("json"):
        text = text[4:].lstrip()
    if not text or text in ("None", "null", "{}"):
        return {}
    start = text.find("{")
    if start < 0:
        raise ActionError(
            f"ERROR | The Action Input must be a JSON object of arguments, like {{}} or "
            f'{{"name": "value"}}; got {text[:80]!r}.'
        )
    body = _balanced(text, start)
    try:
        value: Any = json.loads(body)
    except ValueError:
        try:
            value = ast.literal_eval(_RE_COMPILE.sub(r"\1", body))
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            raise ActionError(
                f"ERROR | The Action Input is not valid JSON: {body[:120]!r}. Please fix the arguments."
            ) from None
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ActionError("ERROR | The Action Input must be a JSON object whose keys are argument names.")
    return value


def _balanced(text: str, start: int) -> str:
    """The text from `start` (a '{') to its matching '}', skipping quoted strings; the rest of the
    text when the braces never balance (the parser then reports the error)."""
    depth = 0
    quote = ""
    i = start
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch in "{[(":
            depth += 1
        elif ch in "}])":
            depth -= 1
            if depth == 0:
                return text[start : i + 1]
        i += 1
    return text[start:]
