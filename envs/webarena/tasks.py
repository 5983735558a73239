"""WebArena task configs: loading, site placeholders, validation.

A task is WebArena's config (one JSON object, as in its `config_files/<id>.json`): `sites`,
`task_id`, `require_login`, `storage_state`, `start_url`, `intent`, `intent_template`,
`instantiation_dict`, `intent_template_id`, `require_reset`, `eval` {`eval_types`,
`reference_answers`, `reference_url`, `program_html`, `string_note`, ...}. URLs carry placeholders
for the sites (__SHOPPING__, __REDDIT__ ...), expanded with the base URLs the operator configures.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# Placeholder -> site key (the setting `webarena.<key>` is that site's base URL). WebArena's own.
PLACEHOLDERS: dict[str, str] = {
    "__SHOPPING_ADMIN__": "shopping_admin",  # before __SHOPPING__: it contains it
    "__SHOPPING__": "shopping",
    "__REDDIT__": "reddit",
    "__GITLAB__": "gitlab",
    "__MAP__": "map",
    "__WIKIPEDIA__": "wikipedia",
}
SITES = tuple(PLACEHOLDERS.values())
EVAL_TYPES = ("string_match", "url_match", "program_html")
REQUIRED_KEYS = ("task_id", "sites", "start_url", "intent", "eval")


class TaskError(ValueError):
    """A task file that is not WebArena's format; the message names the file and the problem."""


def load(source: str | Path) -> dict[int, dict[str, Any]]:
    """Task id -> config, from a directory of `<id>.json` files or one JSON list (test.raw.json)."""
    path = Path(source).expanduser()
    configs: list[tuple[str, Any]] = []
    if path.is_dir():
        files = sorted(path.glob("*.json"))
        if not files:
            raise TaskError(f"{path}: no *.json task configs in this directory")
        for f in files:
            configs.append((str(f), _read(f)))
    elif path.is_file():
        data = _read(path)
        if isinstance(data, dict):
            data = [data]
        if not isinstance(data, list):
            raise TaskError(f"{path}: expected a JSON list of task configs (as WebArena's test.raw.json)")
        configs = [(f"{path}[{i}]", c) for i, c in enumerate(data)]
    else:
        raise TaskError(f"{path}: no such file or directory (setting webarena.tasks)")
    tasks: dict[int, dict[str, Any]] = {}
    for where, config in configs:
        validate(config, where)
        tid = int(config["task_id"])
        if tid in tasks:
            raise TaskError(f"{where}: task_id {tid} appears twice")
        tasks[tid] = config
    return tasks


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise TaskError(f"{path}: cannot read task config: {exc}") from None


def validate(config: Any, where: str = "task") -> None:
    """Raise TaskError unless `config` is a WebArena task config this env can run."""
    if not isinstance(config, dict):
        raise TaskError(f"{where}: a task config is a JSON object")
    missing = [k for k in REQUIRED_KEYS if k not in config]
    if missing:
        raise TaskError(f"{where}: missing keys {missing}")
    if not isinstance(config["task_id"], int) or config["task_id"] < 0:
        raise TaskError(f"{where}: task_id must be a non-negative integer")
    sites = config["sites"]
    if not isinstance(sites, list) or not sites or any(s not in SITES for s in sites):
        raise TaskError(f"{where}: sites must be a non-empty list of {list(SITES)}, got {sites!r}")
    ev = config["eval"]
    if not isinstance(ev, dict) or not isinstance(ev.get("eval_types"), list) or not ev["eval_types"]:
        raise TaskError(f"{where}: eval.eval_types must be a non-empty list")
    for kind in ev["eval_types"]:
        if kind not in EVAL_TYPES:
            raise TaskError(f"{where}: unknown eval type {kind!r}; known: {list(EVAL_TYPES)}")
    if "string_match" in ev["eval_types"] and not isinstance(ev.get("reference_answers"), dict):
        raise TaskError(f"{where}: string_match needs eval.reference_answers")
    if "url_match" in ev["eval_types"] and not ev.get("reference_url"):
        raise TaskError(f"{where}: url_match needs eval.reference_url")
    if "program_html" in ev["eval_types"] and not isinstance(ev.get("program_html"), list):
        raise TaskError(f"{where}: program_html needs a list eval.program_html")


def sites_used(config: Mapping[str, Any]) -> set[str]:
    """Every site the task's URLs name (its `sites`, plus placeholders in its URLs)."""
    used = set(config.get("sites") or ())
    text = json.dumps(config)
    for placeholder, site in PLACEHOLDERS.items():
        if placeholder in text:
            used.add(site)
    # __SHOPPING__ is inside __SHOPPING_ADMIN__: count it only when it occurs on its own.
    if "shopping" in used and "shopping" not in (config.get("sites") or ()):
        if text.replace("__SHOPPING_ADMIN__", "").find("__SHOPPING__") < 0:
            used.discard("shopping")
    return used


def expand_text(text: str, urls: Mapping[str, str]) -> str:
    for placeholder, site in PLACEHOLDERS.items():
        if placeholder in text and site in urls:
            text = text.replace(placeholder, urls[site].rstrip("/"))
    return text


def expand(config: Mapping[str, Any], urls: Mapping[str, str]) -> dict[str, Any]:
    """A copy of the config with every placeholder in its strings replaced by the site URLs."""

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            return expand_text(value, urls)
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        return value

    return walk(copy.deepcopy(dict(config)))


def missing_sites(config: Mapping[str, Any], urls: Mapping[str, str]) -> list[str]:
    return sorted(s for s in sites_used(config) if not urls.get(s))
