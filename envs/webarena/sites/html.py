"""What the three sites share: page layout, escaping, the sandbox and sign-in cookies.

Pages are small server-side HTML with real labels, headings, buttons and link texts, so the
browser's accessibility tree (what the agent reads) names every control. One short stylesheet keeps
pages compact: WebArena's observation shows only what is on screen (1280x720), so the facts a task
asks about sit near the top of the page they are on.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from html import escape
from urllib.parse import quote, urlencode

from aiohttp import web

from agentgym.envs.webarena.sites import DEFAULT_SANDBOX, SANDBOX_COOKIE

_SANDBOX_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

_STYLE = """
body{font:14px/1.35 sans-serif;margin:0;color:#222}
header{background:#f4f4f4;border-bottom:1px solid #ddd;padding:6px 14px}
header nav,header form{display:inline-block;margin-right:14px}
header a{margin-right:10px}
main{padding:8px 14px}
h1{font-size:20px;margin:6px 0}
h2{font-size:16px;margin:8px 0 4px}
p{margin:3px 0}
ul,ol{margin:4px 0;padding-left:4px;list-style:none}
li{margin:1px 0}
table{border-collapse:collapse;margin:4px 0}
td,th{border:1px solid #ddd;padding:2px 8px;text-align:left}
form.inline{display:inline}
.message{background:#e8f5e9;padding:4px 8px;margin:4px 0}
.error{background:#fdecea;padding:4px 8px;margin:4px 0}
article{margin:4px 0;padding:2px 0;border-bottom:1px solid #eee}
article h2{margin:0;font-size:15px}
"""


def e(value: object) -> str:
    """HTML-escape any value for text or a quoted attribute."""
    return escape(str(value), quote=True)


def sandbox_of(request: web.Request) -> str:
    """The episode's sandbox: its cookie when well formed, else the shared one."""
    value = request.cookies.get(SANDBOX_COOKIE, "")
    return value if _SANDBOX_RE.match(value) else DEFAULT_SANDBOX


def page(title: str, header: str, body: str, message: str = "", error: str = "") -> web.Response:
    notes = (f'<p class="message" role="status">{e(message)}</p>' if message else "") + (
        f'<p class="error" role="alert">{e(error)}</p>' if error else ""
    )
    html = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>'
        f"<style>{_STYLE}</style></head><body><header>{header}</header><main>{notes}{body}</main></body></html>"
    )
    return web.Response(text=html, content_type="text/html")


def redirect(location: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(location)


def with_query(path: str, **params: object) -> str:
    kept = {k: v for k, v in params.items() if v not in (None, "")}
    return f"{path}?{urlencode(kept)}" if kept else path


def q(value: str) -> str:
    return quote(value, safe="")


class Signer:
    """Sign-in cookies: "<account>.<hmac>" with a per-process secret, so they need no session table and
    a browser's saved sign-in (WebArena's storage state) stays valid for the life of the sites."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def sign(self, account: str) -> str:
        mac = hmac.new(self._secret, account.encode(), hashlib.sha256).hexdigest()[:32]
        return f"{account}.{mac}"

    def verify(self, token: str | None) -> str | None:
        if not token or "." not in token:
            return None
        account, _, _mac = token.rpartition(".")
        return account if hmac.compare_digest(self.sign(account), token) else None


def pager(path: str, page_no: int, pages: int, **params: object) -> str:
    """Previous/Next links and "Page N of M" (nothing when everything fits on one page)."""
    if pages <= 1:
        return ""
    parts = []
    if page_no > 1:
        parts.append(f'<a href="{e(with_query(path, **params, p=page_no - 1))}">Previous page</a>')
    parts.append(f"<span>Page {page_no} of {pages}</span>")
    if page_no < pages:
        parts.append(f'<a href="{e(with_query(path, **params, p=page_no + 1))}">Next page</a>')
    return '<nav aria-label="Pages">' + " ".join(parts) + "</nav>"


def page_number(request: web.Request) -> int:
    try:
        return max(1, int(request.query.get("p", "1")))
    except ValueError:
        return 1
