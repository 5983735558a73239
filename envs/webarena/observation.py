"""The page as text: WebArena's accessibility-tree observation.

The tree comes from Chromium through CDP (`Accessibility.getFullAXTree`), the on-screen boxes from
one `DOMSnapshot.captureSnapshot`, and it is rendered one element a line, tab-indented by depth:

    [<id>] <role> <repr(name)>[ <property>: <value>]...

pruned as WebArena prunes it: ignored nodes and unnamed structural nodes (generic, list,
paragraph ...) are dropped and their children lifted to their parent; StaticText that repeats the
name of the element shown above it (a link's own text) is dropped; in viewport-only mode a node less than 60% on screen is
dropped (children lifted).

Ids: Chromium's backend DOM node ids find the element again for an action, but their values
depend on the order in which the renderer happened to number nodes, which varies between runs.
So each episode shows its own numbers instead, given in order of first appearance (1, 2, ...) and
kept for the same DOM node: the same task and actions show the same ids every time.

The full observation::

    Tab 0 (current): <title>[ | Tab 1: <title> ...]

    <tree>
    URL: <url>
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agentgym.envs.webarena.browser import BrowserSession

# Properties WebArena leaves out of a line (always the same for a role, or noise), plus the link
# `url`, which recent Chromium reports on every link and WebArena's did not.
IGNORED_PROPERTIES = frozenset(
    {"focusable", "editable", "readonly", "level", "settable", "multiline", "invalid", "url"}
)
# Structural roles that say nothing without a name (WebArena's list).
UNNAMED_DROPPED = frozenset(
    {
        "generic",
        "img",
        "list",
        "strong",
        "paragraph",
        "banner",
        "navigation",
        "Section",
        "LabelText",
        "Legend",
        "listitem",
    }
)
# Chromium's per-line text pieces under StaticText: always duplicates of their parent.
ALWAYS_DROPPED = frozenset({"InlineTextBox"})
# Share of an element's box that must be on screen for viewport-only mode to keep it.
IN_VIEWPORT_RATIO = 0.6


@dataclass
class Rendered:
    """An observation and what actions need from it."""

    text: str
    url: str
    tabs: int
    ids: set[int] = field(default_factory=set)  # the ids of the lines (before truncation)
    truncated: bool = False


def _value(node: dict[str, Any], key: str) -> Any:
    entry = node.get(key)
    return entry.get("value") if isinstance(entry, dict) else None


def _boxes(snapshot: dict[str, Any]) -> dict[int, tuple[float, float, float, float]]:
    """backend node id -> its layout box (x, y, width, height) in page coordinates (main frame)."""
    if not snapshot.get("documents"):
        return {}
    doc = snapshot["documents"][0]
    backend = doc["nodes"].get("backendNodeId", [])
    layout = doc["layout"]
    boxes: dict[int, tuple[float, float, float, float]] = {}
    for index, bounds in zip(layout["nodeIndex"], layout["bounds"], strict=False):
        node_id = backend[index]
        x, y, w, h = bounds
        if node_id in boxes:  # a node with several boxes (wrapped inline text): their union
            bx, by, bw, bh = boxes[node_id]
            x2, y2 = max(bx + bw, x + w), max(by + bh, y + h)
            x, y = min(bx, x), min(by, y)
            w, h = x2 - x, y2 - y
        boxes[node_id] = (x, y, w, h)
    return boxes


def _on_screen(
    box: tuple[float, float, float, float] | None, view: tuple[float, float, float, float]
) -> bool:
    if box is None:
        return False
    x, y, w, h = box
    if w <= 0 or h <= 0:
        return False
    vx, vy, vw, vh = view
    overlap_w = max(0.0, min(x + w, vx + vw) - max(x, vx))
    overlap_h = max(0.0, min(y + h, vy + vh) - max(y, vy))
    return overlap_w * overlap_h / (w * h) >= IN_VIEWPORT_RATIO


def render_tree(
    nodes: list[dict[str, Any]],
    boxes: dict[int, tuple[float, float, float, float]] | None,
    view: tuple[float, float, float, float] | None,
    label: Callable[[int], int] = int,
) -> tuple[list[str], set[int]]:
    """The tree's lines and the ids shown. `boxes`/`view` None: the whole page, not the viewport.
    `label` gives the id shown for a backend node id."""
    by_id = {n["nodeId"]: n for n in nodes}
    if not nodes:
        return [], set()
    root = nodes[0]
    lines: list[str] = []
    ids: set[int] = set()

    def line_of(node: dict[str, Any], visible: bool) -> str | None:
        if node.get("ignored"):
            return None
        role = _value(node, "role")
        name = _value(node, "name")
        backend = node.get("backendDOMNodeId")
        if role is None or name is None or backend is None or role in ALWAYS_DROPPED:
            return None
        name = str(name)
        props = []
        for prop in node.get("properties") or ():
            if prop.get("name") in IGNORED_PROPERTIES or "value" not in prop.get("value", {}):
                continue
            props.append(f"{prop['name']}: {prop['value']['value']}")
        if not name.strip() and ((role in UNNAMED_DROPPED and not props) or role == "listitem"):
            return None
        if node is not root and boxes is not None and view is not None and not visible:
            return None
        text = f"[{label(backend)}] {role} {name!r}"
        return text + (" " + " ".join(props) if props else "")

    # Iterative depth-first walk (pages can nest deeper than Python's recursion limit), carrying
    # the depth, whether the parent is on screen, and the name of the nearest ancestor shown.
    # A node without a layout box of its own (text inside a form field lives in the field's
    # user-agent shadow tree, which DOMSnapshot leaves out) is as visible as its nearest ancestor
    # that has one.
    stack: list[tuple[str, int, bool, str]] = [(root["nodeId"], 0, True, "")]
    seen: set[str] = set()
    while stack:
        node_id, depth, parent_visible, parent_name = stack.pop()
        if node_id in seen or node_id not in by_id:
            continue
        seen.add(node_id)
        node = by_id[node_id]
        visible = parent_visible
        if boxes is not None and view is not None and node.get("backendDOMNodeId") in boxes:
            visible = _on_screen(boxes[node["backendDOMNodeId"]], view)
        text = line_of(node, visible)
        name = str(_value(node, "name") or "")
        if text is not None and _value(node, "role") == "StaticText" and name.strip() in parent_name:
            text = None  # the text of a link, button or heading shown on the line above
        if text is not None:
            lines.append("\t" * depth + text)
            ids.add(label(int(node["backendDOMNodeId"])))
            parent_name = name
        child_depth = depth + 1 if text is not None else depth
        for child in reversed(node.get("childIds") or ()):
            stack.append((child, child_depth, visible, parent_name))
    return lines, ids


def limit(lines: list[str], max_chars: int) -> tuple[str, bool]:
    """Join lines up to `max_chars`, cutting at a line boundary with a marker saying so."""
    out: list[str] = []
    size = 0
    for i, line in enumerate(lines):
        if size + len(line) + 1 > max_chars:
            out.append(
                f"[... {len(lines) - i} more lines cut at {max_chars} characters; scroll [down] or "
                "go to a narrower page to see them]"
            )
            return "\n".join(out), True
        out.append(line)
        size += len(line) + 1
    return "\n".join(out), False


async def render(session: BrowserSession, max_chars: int, viewport_only: bool = True) -> Rendered:
    """The current tab as WebArena's text observation."""
    page = session.page
    cdp = await session.cdp(page)
    tree = await cdp.send("Accessibility.getFullAXTree", {})
    boxes = view = None
    if viewport_only:
        snapshot = await cdp.send(
            "DOMSnapshot.captureSnapshot", {"computedStyles": [], "includeDOMRects": True}
        )
        metrics = await cdp.send("Page.getLayoutMetrics", {})
        vp = metrics["cssLayoutViewport"]
        view = (float(vp["pageX"]), float(vp["pageY"]), float(vp["clientWidth"]), float(vp["clientHeight"]))
        boxes = _boxes(snapshot)
    lines, ids = render_tree(tree.get("nodes", []), boxes, view, session.label)
    body, truncated = limit(lines, max_chars)
    titles = []
    for i, p in enumerate(session.pages):
        try:
            title = await p.title()
        except Exception:
            title = ""
        titles.append(f"Tab {i}{' (current)' if i == session.current else ''}: {title}")
    url = page.url
    text = f"{' | '.join(titles)}\n\n{body}\nURL: {url}"
    return Rendered(text=text, url=url, tabs=len(session.pages), ids=ids, truncated=truncated)
