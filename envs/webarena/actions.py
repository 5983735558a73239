"""WebArena's action set: parse the agent's text, then run it in the episode's browser.

Actions (ids are the bracketed numbers of the current observation):
    click [id]   hover [id]   type [id] [text] [press_enter_after=0|1]   (Enter by default)
    press [key_comb]   scroll [up|down]   new_tab   tab_focus [index]   close_tab
    goto [url]   go_back   go_forward   stop [answer]
An action may come bare, after "Action:", or inside ``` fences ("In summary, the next action I will
perform is ```click [1234]```"): the first fenced block wins, as in WebArena. Anything that does
not parse, or names an id that is not on the page, raises `InvalidAction`, which the env turns into
an observation.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Locator

from agentgym.envs.webarena.browser import BrowserSession

KINDS = (
    "click",
    "hover",
    "type",
    "press",
    "scroll",
    "new_tab",
    "tab_focus",
    "close_tab",
    "goto",
    "go_back",
    "go_forward",
    "stop",
)
ACTION_HELP = (
    "click [id], hover [id], type [id] [text] [0|1], press [key_comb], scroll [up|down], new_tab, "
    "tab_focus [index], close_tab, goto [url], go_back, go_forward, stop [answer]"
)

_FENCE = re.compile(r"```((?:.|\n)*?)```")
_ELEMENT = re.compile(r"^(click|hover) ?\[(\d+)\]$")
_TYPE = re.compile(r"^type ?\[(\d+)\] ?\[((?:.|\n)*)\] ?\[([01])\]$")
_PRESS = re.compile(r"^press ?\[(.+)\]$")
_SCROLL = re.compile(r"^scroll ?\[(?:direction ?= ?)?(up|down)\]$", re.IGNORECASE)
_TAB_FOCUS = re.compile(r"^tab_focus ?\[(\d+)\]$")
_GOTO = re.compile(r"^goto ?\[(.+)\]$")
_STOP = re.compile(r"^stop ?\[((?:.|\n)*)\]$")


class InvalidAction(ValueError):
    """The action does not parse or does not apply to the page; its text is the observation's."""


@dataclass(frozen=True)
class Action:
    kind: str
    element: int | None = None
    text: str = ""  # typed text, key combination, url, answer or scroll direction
    enter: bool = True
    index: int = 0


def extract(reply: str) -> str:
    """The action inside a reply: the first ``` block if any, else the text after the last
    'Action:', else the whole text."""
    fenced = _FENCE.search(reply)
    if fenced:
        return fenced.group(1).strip()
    if "Action:" in reply:
        reply = reply.rsplit("Action:", 1)[1]
    return reply.strip()


def parse(reply: str) -> Action:
    text = extract(reply)
    if not text:
        raise InvalidAction(f"empty action; the actions are: {ACTION_HELP}")
    kind = re.split(r"[\s\[]", text, maxsplit=1)[0]
    if kind not in KINDS:
        raise InvalidAction(f"unknown action {kind!r} in {text!r}; the actions are: {ACTION_HELP}")
    if kind in ("click", "hover"):
        m = _ELEMENT.match(text)
        if m:
            return Action(kind, element=int(m.group(2)))
        raise InvalidAction(f"cannot parse {text!r}: write {kind} [id], e.g. {kind} [1234]")
    if kind == "type":
        # WebArena presses Enter after typing unless told [0].
        full = text if re.search(r"\[[01]\]$", text) and text.count("[") >= 3 else text + " [1]"
        m = _TYPE.match(full)
        if m:
            return Action("type", element=int(m.group(1)), text=m.group(2), enter=m.group(3) == "1")
        raise InvalidAction(
            f"cannot parse {text!r}: write type [id] [text] [0|1], e.g. type [12] [shoes] [1]"
        )
    if kind == "press":
        m = _PRESS.match(text)
        if m:
            return Action("press", text=m.group(1).strip())
        raise InvalidAction(
            f"cannot parse {text!r}: write press [key_comb], e.g. press [Enter] or press [Control+a]"
        )
    if kind == "scroll":
        m = _SCROLL.match(text)
        if m:
            return Action("scroll", text=m.group(1).lower())
        raise InvalidAction(f"cannot parse {text!r}: write scroll [up] or scroll [down]")
    if kind == "tab_focus":
        m = _TAB_FOCUS.match(text)
        if m:
            return Action("tab_focus", index=int(m.group(1)))
        raise InvalidAction(f"cannot parse {text!r}: write tab_focus [index], e.g. tab_focus [0]")
    if kind == "goto":
        m = _GOTO.match(text)
        if m:
            return Action("goto", text=m.group(1).strip())
        raise InvalidAction(f"cannot parse {text!r}: write goto [url]")
    if kind == "stop":
        m = _STOP.match(text)
        if m:
            return Action("stop", text=m.group(1).strip())
        if text == "stop":
            return Action("stop")
        raise InvalidAction(f"cannot parse {text!r}: write stop [answer] (stop [] when there is no answer)")
    if text != kind:
        raise InvalidAction(f"{kind} takes no argument; got {text!r}")
    return Action(kind)


@contextlib.asynccontextmanager
async def _element(session: BrowserSession, element: int) -> AsyncIterator[Locator]:
    """A Playwright locator for the element with this id (a text node: its parent
    element), by a one-off attribute set for the action and removed after it.

    Acting through a locator rather than raw mouse events is what makes Playwright wait for a
    navigation the click or key starts (it learns of it from the renderer, in order), so the next
    observation is of the new page however loaded the machine is."""
    cdp = await session.cdp()
    nonce = secrets.token_hex(6)
    try:
        obj = await cdp.send("DOM.resolveNode", {"backendNodeId": session.backend_id(element)})
        object_id = obj["object"]["objectId"]
        await cdp.send(
            "Runtime.callFunctionOn",
            {
                "objectId": object_id,
                "functionDeclaration": f"function (v) {{ {_TARGET_OF_THIS} el.setAttribute('{_MARK}', v); }}",
                "arguments": [{"value": nonce}],
            },
        )
    except (PlaywrightError, KeyError) as exc:
        raise InvalidAction(f"element [{element}] is no longer on the page: {_short(exc)}") from None
    try:
        yield session.page.locator(f"[{_MARK}='{nonce}']")
    finally:
        with contextlib.suppress(PlaywrightError):  # gone with a navigation: nothing to undo
            await cdp.send(
                "Runtime.callFunctionOn",
                {
                    "objectId": object_id,
                    "functionDeclaration": f"function () {{ {_TARGET_OF_THIS} el.removeAttribute('{_MARK}'); }}",
                },
            )


_MARK = "data-agentgym-target"
_TARGET_OF_THIS = "const el = this.nodeType === 1 ? this : this.parentElement;"


async def _clear_and_focus(session: BrowserSession, element: int) -> bool:
    """Empty a text field and focus it (WebArena clears before typing); False when the element
    cannot take focus (then the caller clicks it)."""
    cdp = await session.cdp()
    backend_id = session.backend_id(element)
    try:
        obj = await cdp.send("DOM.resolveNode", {"backendNodeId": backend_id})
        await cdp.send(
            "Runtime.callFunctionOn",
            {
                "objectId": obj["object"]["objectId"],
                "functionDeclaration": (
                    "function () { if ('value' in this && this.tagName !== 'SELECT' && this.tagName !== 'BUTTON') "
                    "{ this.value = ''; this.dispatchEvent(new Event('input', {bubbles: true})); } "
                    "else if (this.isContentEditable) { this.textContent = ''; } }"
                ),
            },
        )
        await cdp.send("DOM.focus", {"backendNodeId": backend_id})
        return True
    except PlaywrightError:
        return False


def _short(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__


async def execute(session: BrowserSession, action: Action, ids: set[int]) -> None:
    """Run a parsed action (not stop) in the session; `ids` are the ids of the last observation."""
    page = session.page
    if action.element is not None and action.element not in ids:
        raise InvalidAction(
            f"there is no element [{action.element}] on the current page; use an id shown in the observation"
        )
    kind = action.kind
    try:
        if kind == "click":
            async with _element(session, action.element or 0) as target:
                # force: click where the element is, as WebArena's mouse click does, without
                # Playwright's wait for it to look clickable.
                await target.click(force=True)
            await session.settle(page)
        elif kind == "hover":
            async with _element(session, action.element or 0) as target:
                await target.hover(force=True)
        elif kind == "type":
            element = action.element or 0
            async with _element(session, element) as target:
                if not await _clear_and_focus(session, element):
                    await target.click(force=True)
                await page.keyboard.type(action.text)
                if action.enter:
                    await target.press("Enter")
            if action.enter:
                await session.settle(page)
        elif kind == "press":
            focused = page.locator("*:focus")
            try:
                if await focused.count() == 1:
                    await focused.press(action.text)
                else:
                    await page.keyboard.press(action.text)
            except PlaywrightError as exc:
                if "Unknown key" in str(exc) or "Unknown modifier" in str(exc):
                    raise InvalidAction(f"cannot press {action.text!r}: {_short(exc)}") from None
                raise
            await session.settle(page)
        elif kind == "scroll":
            sign = "-" if action.text == "up" else ""
            await page.evaluate(f"window.scrollBy(0, {sign}window.innerHeight)")
        elif kind == "new_tab":
            await session.new_tab()
        elif kind == "tab_focus":
            if not 0 <= action.index < len(session.pages):
                raise InvalidAction(
                    f"there is no tab {action.index}; tabs are numbered 0 to {len(session.pages) - 1}"
                )
            session.current = action.index
            await session.page.bring_to_front()
        elif kind == "close_tab":
            await session.close_tab()
            await session.page.bring_to_front()
        elif kind == "goto":
            await goto(session, action.text)
        elif kind == "go_back":
            await page.go_back(wait_until="load")
        elif kind == "go_forward":
            await page.go_forward(wait_until="load")
        else:  # stop is the env's
            raise InvalidAction(f"{kind} cannot be executed here")
    except InvalidAction:
        raise
    except TimeoutError:
        session.notices.append(f"{kind} timed out; the page may still be loading")
    except PlaywrightError as exc:
        if session.context is None or session.closed:
            raise
        message = _short(exc)
        if "Target" in message and "closed" in message:
            raise
        session.notices.append(f"{kind} failed: {message}")


async def goto(session: BrowserSession, url: str) -> bool:
    """Open `url` in the current tab; a blocked or unreachable address leaves a notice, not an error.
    True when the page loaded."""
    if not session.allows(url):
        session.notices.append(session.blocked_message(url))
        return False
    try:
        await session.page.goto(url, wait_until="load")
        return True
    except PlaywrightError as exc:
        message = _short(exc)
        if "Timeout" in message:
            session.notices.append(
                f"{url} did not finish loading within {session.options.load_timeout_s:g} s"
            )
        else:
            session.notices.append(f"the site at {url} is unreachable ({message})")
        return False
