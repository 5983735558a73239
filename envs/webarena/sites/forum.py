"""The forum ("reddit", in the role of WebArena's Postmill).

Paths follow Postmill's where WebArena's tasks name them: /forums, /f/<forum>, /f/<forum>/<sort>,
/f/<forum>/<id>/<slug> (a post), /user/<name>, /submit/<forum>, /search?q=..., /login. Sorts: hot
(most commented first), new, top (highest score first). A post's and a comment's score is its base
score plus the votes cast in the browser's sandbox; voting the same way twice takes the vote back,
as Postmill's buttons do.
"""

from __future__ import annotations

import datetime as dt
import math
import sqlite3
from typing import Any

from aiohttp import web

from agentgym.envs.webarena.sites.data import slugify
from agentgym.envs.webarena.sites.db import BASE, Database, password_hash
from agentgym.envs.webarena.sites.html import (
    Signer,
    e,
    page,
    page_number,
    pager,
    redirect,
    sandbox_of,
    with_query,
)

FORUM_NAME = "Postmill"
USER_COOKIE = "forum_user"
POSTS_PAGE = 10
SORTS = ("hot", "new", "top")
Row = sqlite3.Row

_POSTS = (
    "SELECT p.*, f.name AS forum, u.name AS author, "
    "p.score + COALESCE((SELECT SUM(dir) FROM votes v WHERE v.sandbox = :sb AND v.kind = 'post' "
    "AND v.target_id = p.id), 0) AS points, "
    "(SELECT COUNT(*) FROM comments c WHERE c.post_id = p.id AND c.sandbox IN ('', :sb)) AS ncomments "
    "FROM posts p JOIN forums f ON f.id = p.forum_id JOIN users u ON u.id = p.author_id "
    "WHERE p.sandbox IN ('', :sb)"
)
_ORDER = {
    "hot": "ncomments DESC, p.created DESC, p.id DESC",
    "new": "p.created DESC, p.id DESC",
    "top": "points DESC, p.created DESC, p.id DESC",
}


def _now() -> str:
    return dt.datetime.now().isoformat(timespec="seconds")


def _post_url(r: Row | dict[str, Any]) -> str:
    return f"/f/{r['forum']}/{r['id']}/{r['slug']}"


class Forum:
    def __init__(self, db: Database, signer: Signer) -> None:
        self.db = db
        self.signer = signer

    def user_id(self, request: web.Request) -> int | None:
        account = self.signer.verify(request.cookies.get(USER_COOKIE))
        return int(account) if account and account.isdigit() else None

    def need_login(self, request: web.Request) -> int:
        uid = self.user_id(request)
        if uid is None:
            raise redirect(with_query("/login", next=request.path_qs if request.method == "GET" else ""))
        return uid

    async def render(
        self, request: web.Request, title: str, body: str, message: str = "", error: str = ""
    ) -> web.Response:
        uid = self.user_id(request)
        name = (
            await self.db.run(lambda c: c.execute("SELECT name FROM users WHERE id = ?", (uid,)).fetchone())
            if uid
            else None
        )
        account = (
            f'<a href="/user/{e(name["name"])}">{e(name["name"])}</a> <a href="/logout">Log out</a>'
            if name
            else '<a href="/login">Log in</a>'
        )
        header = (
            f'<a href="/"><strong>{FORUM_NAME}</strong></a> <nav aria-label="Site"><a href="/forums">Forums</a></nav>'
            '<form role="search" action="/search" method="get"><label for="search">Search</label> '
            '<input id="search" type="search" name="q" size="28"> <button type="submit">Search</button></form>'
            f'<nav aria-label="Account">{account}</nav>'
        )
        return page(f"{title} - {FORUM_NAME}", header, body, message, error)

    def post_list(self, rows: list[Row], show_forum: bool = True) -> str:
        if not rows:
            return "<p>There are no submissions here.</p>"
        return "".join(
            f'<article class="submission"><h2 class="submission-title"><a href="{e(_post_url(r))}">{e(r["title"])}</a></h2>'
            f'<p class="submission-meta">Submitted by <a href="/user/{e(r["author"])}">{e(r["author"])}</a>'
            + (f' in <a href="/f/{e(r["forum"])}">f/{e(r["forum"])}</a>' if show_forum else "")
            + f' · {r["points"]} points · <a href="{e(_post_url(r))}">{r["ncomments"]} comments</a></p></article>'
            for r in rows
        )

    async def posts(
        self, request: web.Request, where: str, args: dict[str, Any], sort: str
    ) -> tuple[list[Row], int, int]:
        sandbox, page_no = sandbox_of(request), page_number(request)

        def q(c: sqlite3.Connection) -> tuple[list[Row], int]:
            params = {"sb": sandbox, **args}
            total = c.execute(f"SELECT COUNT(*) FROM ({_POSTS} AND {where})", params).fetchone()[0]
            pages = max(1, math.ceil(total / POSTS_PAGE))
            rows = c.execute(
                f"{_POSTS} AND {where} ORDER BY {_ORDER[sort]} LIMIT {POSTS_PAGE} OFFSET {(min(page_no, pages) - 1) * POSTS_PAGE}",
                params,
            ).fetchall()
            return rows, total

        rows, total = await self.db.run(q)
        pages = max(1, math.ceil(total / POSTS_PAGE))
        return rows, min(page_no, pages), pages

    # --- pages ---------------------------------------------------------------------------------
    async def home(self, request: web.Request) -> web.Response:
        rows, page_no, pages = await self.posts(request, "1", {}, "hot")
        body = f"<h1>Hot submissions</h1>{self.post_list(rows)}{pager('/', page_no, pages)}"
        return await self.render(request, "Home", body)

    async def forums(self, request: web.Request) -> web.Response:
        sandbox = sandbox_of(request)
        rows = await self.db.run(
            lambda c: c.execute(
                "SELECT f.name, f.title, (SELECT COUNT(*) FROM posts p WHERE p.forum_id = f.id AND p.sandbox IN (?, ?)) AS n "
                "FROM forums f ORDER BY f.name",
                (BASE, sandbox),
            ).fetchall()
        )
        # Each count names its forum: WebArena's observation drops a text that repeats one of the
        # three lines above it, so a bare "13 posts" would show on only some lines.
        items = "".join(
            f'<li><a href="/f/{e(r["name"])}">{e(r["name"])}</a> <span>f/{e(r["name"])} has {r["n"]} posts</span></li>'
            for r in rows
        )
        return await self.render(request, "Forums", f'<h1>Forums</h1><ul class="forum-list">{items}</ul>')

    async def forum(self, request: web.Request) -> web.Response:
        name, sort = request.match_info["forum"], request.match_info.get("sort", "hot")
        if sort not in SORTS:
            raise web.HTTPNotFound(text=f"Unknown sort {sort!r}: use one of {', '.join(SORTS)}.")
        forum = await self.db.run(
            lambda c: c.execute("SELECT * FROM forums WHERE name = ?", (name,)).fetchone()
        )
        if forum is None:
            raise web.HTTPNotFound(text=f"There is no forum named {name!r}.")
        rows, page_no, pages = await self.posts(request, "p.forum_id = :fid", {"fid": forum["id"]}, sort)
        path = f"/f/{name}" + ("" if sort == "hot" else f"/{sort}")
        current = ' aria-current="page"'
        sorts = " ".join(
            f'<a href="/f/{e(name)}{"" if s == "hot" else "/" + s}"{current if s == sort else ""}>{s.title()}</a>'
            for s in SORTS
        )
        body = (
            f"<h1>f/{e(name)}</h1><p>{e(forum['description'])} "
            f'<a href="/submit/{e(name)}">Submit a new post</a></p><nav aria-label="Sort by"><span>Sort by:</span> {sorts}</nav>'
            f"{self.post_list(rows, show_forum=False)}{pager(path, page_no, pages)}"
        )
        return await self.render(request, f"f/{name}", body)

    async def post(self, request: web.Request) -> web.Response:
        sandbox, pid, uid = sandbox_of(request), int(request.match_info["id"]), self.user_id(request)

        def q(c: sqlite3.Connection) -> tuple[Row | None, list[Row], dict[tuple[str, int], int]]:
            post = c.execute(f"{_POSTS} AND p.id = :pid", {"sb": sandbox, "pid": pid}).fetchone()
            comments = c.execute(
                "SELECT c.*, u.name AS author, c.score + COALESCE((SELECT SUM(dir) FROM votes v WHERE v.sandbox = ? "
                "AND v.kind = 'comment' AND v.target_id = c.id), 0) AS points FROM comments c "
                "JOIN users u ON u.id = c.author_id WHERE c.post_id = ? AND c.sandbox IN ('', ?) ORDER BY c.created, c.id",
                (sandbox, pid, sandbox),
            ).fetchall()
            mine = {
                (r["kind"], r["target_id"]): r["dir"]
                for r in c.execute(
                    "SELECT kind, target_id, dir FROM votes WHERE sandbox = ? AND user_id = ?",
                    (sandbox, uid or -1),
                )
            }
            return post, comments, mine

        post, comments, mine = await self.db.run(q)
        if post is None or post["forum"] != request.match_info["forum"]:
            raise web.HTTPNotFound(text="This submission does not exist or was deleted.")
        url = _post_url(post)

        def votes(kind: str, target: int, points: int, label: str) -> str:
            mine_dir = mine.get(("post" if kind == "submission" else kind, target), 0)
            return (
                f'<div class="vote"><form class="inline" method="post" action="/vote/{kind}/{target}">'
                f'<input type="hidden" name="dir" value="1"><input type="hidden" name="back" value="{e(url)}">'
                f'<button type="submit" aria-pressed="{"true" if mine_dir == 1 else "false"}" aria-label="Upvote{label}">Upvote</button></form> '
                f'<span>Score: <span class="vote-score">{points}</span></span> '
                f'<form class="inline" method="post" action="/vote/{kind}/{target}">'
                f'<input type="hidden" name="dir" value="-1"><input type="hidden" name="back" value="{e(url)}">'
                f'<button type="submit" aria-pressed="{"true" if mine_dir == -1 else "false"}" aria-label="Downvote{label}">Downvote</button></form></div>'
            )

        comment_form = (
            f'<form method="post" action="{e(url)}/comment"><label for="comment">Comment</label><br>'
            '<textarea id="comment" name="body" rows="2" cols="60"></textarea><br><button type="submit">Post comment</button></form>'
            if uid
            else '<p><a href="/login">Log in to comment</a></p>'
        )
        comment_html = "".join(
            f'<article class="comment" id="comment-{c["id"]}"><p class="comment-meta"><a href="/user/{e(c["author"])}">'
            f'{e(c["author"])}</a> wrote on {c["created"][:10]}:</p><div class="comment-body"><p>{e(c["body"])}</p></div>'
            f"{votes('comment', c['id'], c['points'], ' comment by ' + c['author'])}</article>"
            for c in comments
        )
        body = (
            f'<div class="submission__inner"><h1 class="submission__title">{e(post["title"])}</h1>'
            f'<p class="submission-meta">Submitted by <a href="/user/{e(post["author"])}">{e(post["author"])}</a> in '
            f'<a href="/f/{e(post["forum"])}">f/{e(post["forum"])}</a> on {post["created"][:10]}</p>'
            f'<div class="submission__body"><p>{e(post["body"])}</p></div>{votes("submission", pid, post["points"], "")}</div>'
            f'<h2 class="comment-count">{len(comments)} comments</h2>{comment_form}{comment_html}'
        )
        return await self.render(request, post["title"], body)

    async def vote(self, request: web.Request) -> web.Response:
        uid, sandbox = self.need_login(request), sandbox_of(request)
        kind = "post" if request.match_info["kind"] == "submission" else "comment"
        target = int(request.match_info["id"])
        form = await request.post()
        direction = 1 if str(form.get("dir")) == "1" else -1
        back = str(form.get("back", "/"))

        def vote(c: sqlite3.Connection) -> None:
            old = c.execute(
                "SELECT dir FROM votes WHERE sandbox = ? AND user_id = ? AND kind = ? AND target_id = ?",
                (sandbox, uid, kind, target),
            ).fetchone()
            if old is not None and old["dir"] == direction:  # the same button again takes the vote back
                c.execute(
                    "DELETE FROM votes WHERE sandbox = ? AND user_id = ? AND kind = ? AND target_id = ?",
                    (sandbox, uid, kind, target),
                )
            else:
                c.execute(
                    "INSERT OR REPLACE INTO votes VALUES (?,?,?,?,?)", (sandbox, uid, kind, target, direction)
                )

        await self.db.run(vote)
        raise redirect(back if back.startswith("/") and not back.startswith("//") else "/")

    async def comment(self, request: web.Request) -> web.Response:
        uid, sandbox, pid = self.need_login(request), sandbox_of(request), int(request.match_info["id"])
        form = await request.post()
        text = str(form.get("body", "")).strip()
        back = f"/f/{request.match_info['forum']}/{pid}/{request.match_info['slug']}"
        if not text or len(text) > 10_000:
            raise redirect(back)
        await self.db.run(
            lambda c: c.execute(
                "INSERT INTO comments (sandbox, post_id, author_id, body, score, created) VALUES (?,?,?,?,?,?)",
                (sandbox, pid, uid, text, 1, _now()),
            )
        )
        raise redirect(back)

    async def submit_form(self, request: web.Request, error: str = "") -> web.Response:
        self.need_login(request)
        chosen = request.match_info.get("forum", "")
        names = await self.db.run(
            lambda c: [r["name"] for r in c.execute("SELECT name FROM forums ORDER BY name")]
        )
        options = "".join(
            f'<option value="{e(n)}"{" selected" if n == chosen else ""}>{e(n)}</option>' for n in names
        )
        body = (
            "<h1>Create submission</h1>"
            '<form method="post" action="/submit">'
            '<p><label for="title">Title</label><br><input id="title" name="title" size="70"></p>'
            '<p><label for="body">Body</label><br><textarea id="body" name="body" rows="4" cols="70"></textarea></p>'
            f'<p><label for="forum">Forum</label> <select id="forum" name="forum">{options}</select></p>'
            '<p><button type="submit">Create submission</button></p></form>'
        )
        return await self.render(request, "Create submission", body, error=error)

    async def submit(self, request: web.Request) -> web.Response:
        uid, sandbox = self.need_login(request), sandbox_of(request)
        form = await request.post()
        title, text, forum = (str(form.get(k, "")).strip() for k in ("title", "body", "forum"))
        if not title or len(title) > 300:
            raise web.HTTPBadRequest(text="A submission needs a title of 1 to 300 characters.")

        def create(c: sqlite3.Connection) -> str | None:
            row = c.execute("SELECT id FROM forums WHERE name = ?", (forum,)).fetchone()
            if row is None:
                return None
            slug = slugify(title)[:60].strip("-") or "post"
            cur = c.execute(
                "INSERT INTO posts (sandbox, forum_id, author_id, title, slug, body, score, created) VALUES (?,?,?,?,?,?,?,?)",
                (sandbox, row["id"], uid, title, slug, text, 1, _now()),
            )
            return f"/f/{forum}/{cur.lastrowid}/{slug}"

        url = await self.db.run(create)
        if url is None:
            raise web.HTTPBadRequest(text=f"There is no forum named {forum!r}.")
        raise redirect(url)

    async def user(self, request: web.Request) -> web.Response:
        name, sandbox = request.match_info["name"], sandbox_of(request)

        def q(c: sqlite3.Connection) -> tuple[Row | None, int]:
            user = c.execute("SELECT * FROM users WHERE name = ?", (name,)).fetchone()
            if user is None:
                return None, 0
            ncomments = c.execute(
                "SELECT COUNT(*) FROM comments WHERE author_id = ? AND sandbox IN ('', ?)",
                (user["id"], sandbox),
            ).fetchone()[0]
            return user, ncomments

        user, ncomments = await self.db.run(q)
        if user is None:
            raise web.HTTPNotFound(text=f"There is no user named {name!r}.")
        rows, page_no, pages = await self.posts(request, "p.author_id = :uid", {"uid": user["id"]}, "new")
        total = await self.db.run(
            lambda c: c.execute(
                "SELECT COUNT(*) FROM posts WHERE author_id = ? AND sandbox IN ('', ?)", (user["id"], sandbox)
            ).fetchone()[0]
        )
        body = (
            f"<h1>{e(name)}</h1><p>Registered on {user['joined']}</p><p>Submissions: {total}</p><p>Comments: {ncomments}</p>"
            f"<h2>Submissions</h2>{self.post_list(rows)}{pager(f'/user/{name}', page_no, pages)}"
        )
        return await self.render(request, name, body)

    async def search(self, request: web.Request) -> web.Response:
        query = request.query.get("q", "").strip()
        terms = [t for t in query.lower().split() if t]
        where = " AND ".join(f"instr(lower(p.title), :t{i}) > 0" for i in range(len(terms))) or "0"
        rows, page_no, pages = await self.posts(
            request, f"({where})", {f"t{i}": t for i, t in enumerate(terms)}, "new"
        )
        body = (
            f"<h1>Search results for '{e(query)}'</h1>{self.post_list(rows)}"
            f"{pager('/search', page_no, pages, q=query)}"
        )
        return await self.render(request, f"Search: {query}", body)

    async def login_form(self, request: web.Request, error: str = "") -> web.Response:
        body = (
            '<h1>Log in</h1><form method="post" action="/login_check">'
            f'<input type="hidden" name="next" value="{e(request.query.get("next", ""))}">'
            '<p><label for="login-username">Username</label> <input id="login-username" name="_username" size="24"></p>'
            '<p><label for="login-password">Password</label> <input id="login-password" name="_password" type="password" size="24"></p>'
            '<p><button type="submit">Log in</button></p></form>'
        )
        return await self.render(request, "Log in", body, error=error)

    async def login_check(self, request: web.Request) -> web.Response:
        form = await request.post()
        name, password = str(form.get("_username", "")).strip(), str(form.get("_password", ""))
        row = await self.db.run(
            lambda c: c.execute(
                "SELECT id FROM users WHERE name = ? AND password = ?", (name, password_hash(password))
            ).fetchone()
        )
        if row is None:
            return await self.login_form(request, "Invalid credentials.")
        target = str(form.get("next", ""))
        response = redirect(target if target.startswith("/") and not target.startswith("//") else "/")
        response.set_cookie(
            USER_COOKIE, self.signer.sign(str(row["id"])), httponly=True, path="/", samesite="Lax"
        )
        raise response

    async def logout(self, request: web.Request) -> web.Response:
        response = redirect("/")
        response.del_cookie(USER_COOKIE, path="/")
        raise response


def forum_app(db: Database, signer: Signer) -> web.Application:
    forum = Forum(db, signer)
    app = web.Application()
    app.add_routes(
        [
            web.get("/", forum.home),
            web.get("/forums", forum.forums),
            web.get("/search", forum.search),
            web.get("/login", forum.login_form),
            web.post("/login_check", forum.login_check),
            web.get("/logout", forum.logout),
            web.get("/submit", forum.submit_form),
            web.get("/submit/{forum}", forum.submit_form),
            web.post("/submit", forum.submit),
            web.get("/user/{name}", forum.user),
            web.post(r"/vote/{kind:submission|comment}/{id:\d+}", forum.vote),
            web.get("/f/{forum}", forum.forum),
            web.get("/f/{forum}/{sort:[a-z]+}", forum.forum),
            web.get(r"/f/{forum}/{id:\d+}", forum.post),
            web.get(r"/f/{forum}/{id:\d+}/{slug}", forum.post),
            web.post(r"/f/{forum}/{id:\d+}/{slug}/comment", forum.comment),
        ]
    )
    return app
