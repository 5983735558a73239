"""Tool declarations and the dispatcher that validates arguments like a web API would.

A tool env declares each tool as a method decorated with `@tool(...)`, giving the parameter
schema the agent sees in the instruction. `Toolkit.call` checks the arguments against that schema
(missing, wrong type, not in the enum), coerces the harmless mismatches an HTTP API accepts (a
number sent as a string, an id sent as a number), and turns every refusal into an error
observation: bad input never raises out of a step.
"""

from __future__ import annotations

import ast
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

ParamType = Literal["string", "number", "integer", "boolean", "array", "any"]


class ToolError(Exception):
    """A refused call. The message is the observation, as the service would answer it."""


@dataclass(frozen=True)
class Param:
    name: str
    type: ParamType
    description: str
    required: bool = True
    enum: tuple[Any, ...] | None = None
    # Shown in the docs instead of the plain type, e.g. "array[array[string]]" or "['integer', 'None']".
    type_label: str | None = None
    default: Any = None

    def doc(self) -> str:
        label = self.type_label or self.type
        if self.enum is not None:
            label += f", Enum: [{', '.join(str(e) for e in self.enum)}]"
        return f"- {self.name} (Type: {label}): {self.description}"


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    params: tuple[Param, ...]
    returns: str
    # Whether a call may change the backend's state (writes to a sheet or a to-do list).
    mutates: bool = False

    def doc(self) -> str:
        lines = [
            f"Name: {self.name}({', '.join(p.name for p in self.params)})",
            f"Description: {self.description}",
        ]
        if self.params:
            lines.append("Parameters:")
            lines.extend(p.doc() for p in self.params)
        if self.returns:
            lines.append("Returns:")
            lines.append(self.returns)
        return "\n".join(lines)


def tool(
    description: str, params: Sequence[Param] = (), returns: str = "", mutates: bool = False
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a method as a tool. The method's name is the tool's name; it returns the result
    (any JSON-like value) or raises ToolError."""

    def mark(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn.__tool_spec__ = ToolSpec(fn.__name__, description, tuple(params), returns, mutates)  # type: ignore[attr-defined]
        return fn

    return mark


def collect(cls: type) -> dict[str, ToolSpec]:
    """The tools a class declares, in definition order; inherited ones (finish) come last."""
    specs: dict[str, ToolSpec] = {}
    for klass in cls.__mro__:
        for name, attr in vars(klass).items():
            spec = getattr(attr, "__tool_spec__", None)
            if isinstance(spec, ToolSpec) and name not in specs:
                specs[name] = spec
    return specs


def validate(spec: ToolSpec, args: dict[str, Any], keep_none: bool = False) -> dict[str, Any]:
    """Checked, coerced keyword arguments for the tool. Unknown arguments are ignored, as the
    original's dispatch only read the ones it knew. With `keep_none`, an untyped argument given as
    None is passed on (the original passed its arguments as given: `finish(answer=None)`)."""
    out: dict[str, Any] = {}
    for p in spec.params:
        if keep_none and p.type == "any" and p.name in args and args[p.name] is None:
            out[p.name] = None
            continue
        if p.name not in args or args[p.name] is None:
            if p.required:
                raise ToolError(
                    f"ERROR | {spec.name} needs the argument '{p.name}' ({p.type_label or p.type})."
                )
            out[p.name] = p.default
            continue
        value = _coerce(spec.name, p, args[p.name])
        if p.enum is not None and value not in p.enum:
            raise ToolError(
                f"ERROR | argument '{p.name}' of {spec.name} must be one of {list(p.enum)}, got {value!r}."
            )
        out[p.name] = value
    return out


def _coerce(tool_name: str, p: Param, value: Any) -> Any:
    def bad() -> ToolError:
        return ToolError(
            f"ERROR | argument '{p.name}' of {tool_name} must be {_article(p.type)}, got {value!r}."
        )

    if p.type == "any":
        return value
    if p.type == "string":
        if isinstance(value, str):
            return value
        if isinstance(value, bool):
            raise bad()
        if isinstance(value, int | float):
            return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
        raise bad()
    if p.type == "number":
        if isinstance(value, bool):
            raise bad()
        if isinstance(value, int | float):
            if not math.isfinite(value):
                raise bad()
            return value
        if isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                raise bad() from None
            if not math.isfinite(number):
                raise bad()
            return number
        raise bad()
    if p.type == "integer":
        if isinstance(value, bool):
            raise bad()
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                raise bad() from None
        raise bad()
    if p.type == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise bad()
    if p.type == "array":
        if isinstance(value, list | tuple):
            return list(value)
        if isinstance(value, str):
            # A list sent as its text, e.g. "[[1], [2]]", as an API reading a form field would.
            for parse in (json.loads, ast.literal_eval):
                try:
                    parsed = parse(value)
                except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                    continue
                if isinstance(parsed, list | tuple):
                    return list(parsed)
        raise bad()
    raise AssertionError(p.type)


def _article(kind: str) -> str:
    return {"integer": "an integer", "array": "an array"}.get(kind, f"a {kind}")
