"""WebArena's evaluators, run on the episode's final state: each eval type scores 0 or 1, and a
task's score is their product (all must pass).

- string_match: the `stop [answer]` text against `reference_answers`: exact_match (both sides
  stripped of surrounding quotes and lower-cased), must_include (every phrase a substring; a
  one-character reference must be a whole token, so "0" is not found in "10"), fuzzy_match (an LLM
  judge at an OpenAI-compatible URL; the reference "N/A" is first compared exactly, then judged
  against the task's `string_note` for an answer that explains why the task cannot be done).
- url_match: the final page URL against `reference_url` (alternatives joined by " |OR| "): some
  reference's host+path must equal the page's (trailing "/" ignored), and every query parameter a
  reference names must have one of the reference values in the page's query.
- program_html: for each target, open its `url` ("last" = the final page) in the episode's context,
  evaluate its `locator` (page JavaScript `document...`; empty = the page's HTML; `func:` helpers
  below) and check `required_contents` (exact_match or must_include, alternatives " |OR| ").
  Pages are read in the same context, so they see the episode's own session and sandbox.

`unsupported(config, judge)` says, before an episode starts, why a task cannot be scored here.
"""

from __future__ import annotations

import collections
import html
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page

from agentgym.envs.webarena.browser import BrowserSession

# `func:` helpers this env implements. WebArena's shopping helpers read Magento's REST API with an
# admin token (latest order, latest review); they are not available here.
URL_HELPERS = ("reddit_get_post_url",)
LOCATOR_HELPERS = ("gitlab_get_project_memeber_role",)
KNOWN_HELPERS = {
    "shopping_get_latest_order_url",
    "shopping_get_sku_latest_review_author",
    "shopping_get_sku_latest_review_rating",
    *URL_HELPERS,
    *LOCATOR_HELPERS,
}
_TOKEN = re.compile(r"\d+(?:[.,]\d+)*|\w+|[^\w\s]")
_HELPER_CALL = re.compile(r"^func:(\w+)\((.*)\)$", re.DOTALL)


@dataclass(frozen=True)
class Judge:
    """An OpenAI-compatible chat endpoint for fuzzy_match."""

    url: str
    model: str
    key_env: str = ""
    timeout_s: float = 60.0

    @property
    def endpoint(self) -> str:
        base = self.url.rstrip("/")
        if base.endswith("/chat/completions"):
            return base
        return base + ("/chat/completions" if base.endswith("/v1") else "/v1/chat/completions")


class Unsupported(Exception):
    """A task this env cannot score (no judge for fuzzy_match, a helper it does not implement)."""


def clean(answer: str) -> str:
    answer = answer.strip()
    if len(answer) >= 2 and answer[0] == answer[-1] and answer[0] in "'\"":
        answer = answer[1:-1]
    return answer.lower()


def exact_match(ref: str, pred: str) -> float:
    return float(clean(pred) == clean(ref))


def must_include(ref: str, pred: str, tokenize: bool = False) -> float:
    ref, pred = clean(ref), clean(pred)
    if tokenize and len(ref) == 1:
        return float(ref in _TOKEN.findall(pred))
    return float(ref in pred)


def _helpers_named(config: Mapping[str, Any]) -> set[str]:
    names = set()
    for target in (config.get("eval") or {}).get("program_html") or ():
        for key in ("url", "locator"):
            value = str(target.get(key, ""))
            m = _HELPER_CALL.match(value.strip())
            if m:
                names.add(m.group(1))
    return names


def unsupported(config: Mapping[str, Any], judge: Judge | None) -> str | None:
    """Why this task cannot be scored here, or None."""
    ev = config.get("eval") or {}
    refs = ev.get("reference_answers") or {}
    if "string_match" in ev.get("eval_types", ()) and "fuzzy_match" in refs and judge is None:
        return (
            "its string_match uses fuzzy_match, which needs an LLM judge: set "
            "--env-setting webarena.judge_url=http://HOST:PORT/v1 and webarena.judge_model=NAME "
            "(and webarena.judge_key_env=ENV_VAR for an API key)"
        )
    for target in ev.get("program_html") or ():
        locator = str(target.get("locator", "")).strip()
        if locator and not locator.startswith(("document.", "[...document.", "func:")):
            return f"program_html locator {locator[:60]!r} is neither page JavaScript (document...) nor func:"
    for name in sorted(_helpers_named(config)):
        if name not in (*URL_HELPERS, *LOCATOR_HELPERS):
            why = "reads Magento's REST API" if name.startswith("shopping_") else "is unknown"
            return f"program_html helper {name}() {why}; this env implements {', '.join(URL_HELPERS + LOCATOR_HELPERS)}"
    return None


# --- string_match -------------------------------------------------------------------------------
async def string_match(config: Mapping[str, Any], answer: str, judge: Judge | None) -> float:
    pred = clean(answer)
    score = 1.0
    for approach, value in config["eval"]["reference_answers"].items():
        if approach == "exact_match":
            score *= exact_match(str(value), pred)
        elif approach == "must_include":
            values = value if isinstance(value, list) else [value]
            for ref in values:
                score *= must_include(str(ref), pred, tokenize=len(values) == 1)
        elif approach == "fuzzy_match":
            if judge is None:
                raise Unsupported(unsupported(config, None) or "fuzzy_match needs a judge")
            intent = str(config.get("intent", ""))
            if value == "N/A":
                # Unachievable task: "N/A" exactly, or an answer giving the reason in string_note.
                score *= exact_match("N/A", pred)
                if score != 1.0:
                    score = await judge_unachievable(
                        judge, intent, str(config["eval"].get("string_note", "")), pred
                    )
            else:
                for ref in value if isinstance(value, list) else [value]:
                    if not pred:
                        score *= float(not str(ref))
                    else:
                        score *= await judge_equivalent(judge, intent, str(ref), pred)
        elif approach:
            raise Unsupported(f"unknown reference_answers kind {approach!r}")
    return score


async def _ask(judge: Judge, prompt: str) -> str:
    import aiohttp  # only when a judge is used: it is slow to import, and every server imports this env

    headers = {"Content-Type": "application/json"}
    key = os.environ.get(judge.key_env, "") if judge.key_env else ""
    if key:
        headers["Authorization"] = f"Bearer {key}"
    body = {
        "model": judge.model,
        "messages": [
            {"role": "system", "content": "You grade answers strictly and reply with one verdict word."},
            {"role": "user", "content": prompt},
        ],
        "temperature": 0,
        "max_tokens": 256,
    }
    timeout = aiohttp.ClientTimeout(total=judge.timeout_s)
    async with (
        aiohttp.ClientSession(timeout=timeout) as http,
        http.post(judge.endpoint, json=body, headers=headers) as resp,
    ):
        if resp.status != 200:
            raise RuntimeError(
                f"judge at {judge.endpoint} answered HTTP {resp.status}: {(await resp.text())[:200]}"
            )
        data = await resp.json()
    return str(data["choices"][0]["message"]["content"]).lower()


async def judge_equivalent(judge: Judge, intent: str, reference: str, pred: str) -> float:
    prompt = (
        "Decide whether an answer to a question means the same as the reference answer; wording may "
        "differ, the facts may not. 'N/A' means the task cannot be done.\n"
        f"Question: {intent}\nReference answer: {reference}\nAnswer to grade: {pred}\n"
        "Reply with one of: correct, partially correct, incorrect."
    )
    verdict = await _ask(judge, prompt)
    if "partially" in verdict or "incorrect" in verdict:
        return 0.0
    return float("correct" in verdict)


async def judge_unachievable(judge: Judge, intent: str, reason: str, pred: str) -> float:
    prompt = (
        "A task cannot be done, for a known reason. Someone attempted it and reported back. Decide "
        "whether the report gives that reason, even in other words.\n"
        f"Task: {intent}\nKnown reason: {reason}\nReport: {pred}\n"
        "Reply with one word: same (the report gives the reason) or different."
    )
    verdict = await _ask(judge, prompt)
    if "different" in verdict:
        return 0.0
    return float("same" in verdict)


# --- url_match ----------------------------------------------------------------------------------
def _split_url(url: str) -> tuple[str, dict[str, list[str]]]:
    parts = urlsplit(url)
    return (parts.netloc + parts.path).rstrip("/"), parse_qs(parts.query)


def url_match(config: Mapping[str, Any], page_url: str) -> float:
    refs = [u.rstrip("/") for u in str(config["eval"]["reference_url"]).split(" |OR| ")]
    rule = config["eval"].get("url_note", "GOLD in PRED") or "GOLD in PRED"
    if rule != "GOLD in PRED":
        raise Unsupported(f"unknown url_note rule {rule!r}")
    pred_base, pred_query = _split_url(page_url.rstrip("/"))
    ref_bases: list[str] = []
    ref_queries: dict[str, set[str]] = collections.defaultdict(set)
    for ref in refs:
        base, query = _split_url(ref)
        ref_bases.append(base)
        for key, values in query.items():
            ref_queries[key].update(values)
    # WebArena compares the bases by membership in the page's base string ("GOLD in PRED").
    score = float(any(base in pred_base for base in ref_bases))
    for key, values in ref_queries.items():
        score *= float(any(v in pred_query.get(key, []) for v in values))
    return score


# --- program_html -------------------------------------------------------------------------------
def reddit_get_post_url(url: str) -> str:
    """A forum post's canonical URL from any URL under it (/f/<forum>/<post id>/...)."""
    parts = urlsplit(url)
    path = parts.path.split("/")
    if len(path) < 4 or path[1] != "f":
        return url
    return f"{parts.scheme}://{parts.netloc}/f/{path[2]}/{path[3]}/"


async def gitlab_get_project_memeber_role(page: Page, account: str) -> str:
    script = """(account) => {
        const names = [...document.querySelectorAll("td[data-label='Account'] span.gl-avatar-labeled-sublabel")];
        const i = names.findIndex(e => e.outerText === '@' + account);
        if (i < 0) return '';
        const roles = document.querySelectorAll('td.col-max-role span');
        return roles[i] ? roles[i].outerText : '';
    }"""
    try:
        return str(await page.evaluate(script, account))
    except PlaywrightError:
        return ""


def _literal_args(args: str) -> list[str]:
    import ast

    if not args.strip():
        return []
    value = ast.literal_eval(f"({args},)")
    return [str(v) for v in value]


async def program_html(
    config: Mapping[str, Any], session: BrowserSession, final_page: Page, load_timeout_s: float
) -> float:
    score = 1.0
    for target in config["eval"]["program_html"]:
        url = str(target.get("url", "last"))
        if url.startswith("func:"):
            m = _HELPER_CALL.match(url.replace("__last_url__", final_page.url))
            if not m or m.group(1) != "reddit_get_post_url":
                raise Unsupported(f"program_html url helper {url!r}")
            url = reddit_get_post_url(*_literal_args(m.group(2)))
        page = final_page
        opened: Page | None = None
        try:
            if url != "last":
                opened = page = await session.scratch_page()
                if not session.allows(url):
                    selected = ""
                    raise _Skip
                try:
                    await page.goto(url, wait_until="load", timeout=load_timeout_s * 1000)
                except PlaywrightError:
                    selected = ""
                    raise _Skip from None
            selected = await _select(target, page)
        except _Skip:
            pass
        finally:
            if opened is not None:
                try:
                    await opened.close()
                except PlaywrightError:
                    pass
        selected = html.unescape(selected)
        required = target.get("required_contents") or {}
        if "exact_match" in required:
            score *= exact_match(str(required["exact_match"]), selected)
        elif "must_include" in required:
            for content in required["must_include"]:
                alternatives = str(content).split(" |OR| ")
                score *= float(any(must_include(alt, selected) for alt in alternatives))
        else:
            raise Unsupported(f"program_html required_contents {sorted(required)}")
    return score


class _Skip(Exception):
    pass


async def _select(target: Mapping[str, Any], page: Page) -> str:
    locator = str(target.get("locator", "")).strip()
    if not locator:
        return await page.content()
    if locator.startswith(("document.", "[...document.")):
        for prep in target.get("prep_actions") or ():
            try:
                await page.evaluate(f"() => {prep}")
            except PlaywrightError:
                pass
        try:
            value = await page.evaluate(f"() => {locator}")
        except PlaywrightError:
            return ""  # the element is not there: the page is the wrong one
        return "" if value is None else str(value)
    m = _HELPER_CALL.match(locator)
    if m and m.group(1) == "gitlab_get_project_memeber_role":
        args = _literal_args(m.group(2).replace("__page__", "None"))
        return await gitlab_get_project_memeber_role(page, args[-1])
    raise Unsupported(f"program_html locator {locator[:80]!r}")


async def evaluate(
    config: Mapping[str, Any],
    answer: str,
    session: BrowserSession,
    judge: Judge | None,
    load_timeout_s: float,
) -> dict[str, float]:
    """Each eval type's score on the final state."""
    verdict: dict[str, float] = {}
    final_page = session.page
    for kind in config["eval"]["eval_types"]:
        if kind == "string_match":
            verdict[kind] = await string_match(config, answer, judge)
        elif kind == "url_match":
            verdict[kind] = url_match(config, final_page.url)
        elif kind == "program_html":
            verdict[kind] = await program_html(config, session, final_page, load_timeout_s)
        else:
            raise Unsupported(f"eval type {kind!r}")
    return verdict
