"""WebArena (Zhou et al. 2023; AgentGym's `agentenv-webarena`): do a task on real web sites in a
headless browser, seeing each page as its accessibility tree.

An episode is one task config in WebArena's format (tasks.py): a browser context (browser.py)
opens the task's start URL, logged in where the task requires it (login.py); each round the agent
sees the current tab as WebArena's accessibility-tree text (observation.py) and answers with one of
WebArena's actions (actions.py). `stop [answer]` ends the episode and the task's evaluators
(evaluators.py) score the final state 0 or 1; so does reaching the 25th round (answer "").

Tasks come from the operator's WebArena config files (`webarena.tasks`) against the operator's
WebArena sites (`webarena.shopping=http://...` etc.), or, by default, from the built-in task set
against the project's own small sites, which the env starts itself (envs/webarena/sites).

Settings (`--env-setting webarena.KEY=VALUE`):
  tasks              a directory of <task_id>.json or one JSON list file (WebArena's test.raw.json)
  shopping, shopping_admin, reddit, gitlab, map, wikipedia     the sites' base URLs
  <site>_username, <site>_password    accounts for require_login tasks (default: WebArena's)
  chromium           the Chromium executable (default: `chromium` on PATH)
  max_obs_chars      longest tree text in an observation (default 8000)
  viewport           WIDTHxHEIGHT of the page (default 1280x720, WebArena's)
  viewport_only      1: only elements on screen, as WebArena's default (0: the whole page)
  load_timeout_s, action_timeout_s   page-load and action limits (default 10 and 5)
  judge_url, judge_model, judge_key_env   an OpenAI-compatible LLM judge for fuzzy_match
"""

from __future__ import annotations

import importlib.util
import logging
import secrets
import threading
from collections.abc import Mapping
from typing import Any, ClassVar

from playwright.async_api import Error as PlaywrightError

from agentgym.envs.base import Env, EnvError, Outcome
from agentgym.envs.registry import register
from agentgym.envs.webarena import actions, evaluators, login, observation, tasks
from agentgym.envs.webarena.browser import (
    BrowserCrashed,
    BrowserService,
    BrowserSession,
    SessionOptions,
    origin_of,
    resolve_chromium,
    service,
)

log = logging.getLogger(__name__)

INSTRUCTION = """\
You are operating a web browser to complete a task on one or more web sites. Each round you see \
the open tabs, then the current page as an accessibility tree: one element a line, indented by \
nesting, written as [id] role 'name' followed by properties, and finally the page's URL. Only \
elements on the screen are listed; scroll to see more.

Answer with one action that uses the ids of the current page:
- click [id]: click the element
- hover [id]: move the mouse over the element
- type [id] [text] [1]: clear the field, type the text, then press Enter (end with [0] to skip Enter)
- press [key_comb]: press keys, e.g. press [Enter] or press [Control+a]
- scroll [down] or scroll [up]: scroll the page by one screen
- new_tab, tab_focus [index], close_tab: open a tab, switch to tab index, close the current tab
- goto [url]: open a URL; go_back, go_forward: move in the history
- stop [answer]: end the task; put the answer inside the brackets when the task asks a question, \
or leave them empty (stop []) when it asks you to do something. Answer N/A when the task cannot be done.
Only the task's sites can be opened. The episode ends after 25 rounds.

Reply in exactly this format:
Thought:
your reasoning

Action:
one action"""

SITE_KEYS = tasks.SITES
SETTINGS = {
    "tasks",
    *SITE_KEYS,
    *(f"{s}_username" for s in SITE_KEYS),
    *(f"{s}_password" for s in SITE_KEYS),
    "chromium",
    "max_obs_chars",
    "viewport",
    "viewport_only",
    "load_timeout_s",
    "action_timeout_s",
    "judge_url",
    "judge_model",
    "judge_key_env",
}


def _positive(settings: Mapping[str, str], key: str, default: float) -> float:
    if key not in settings:
        return default
    try:
        value = float(settings[key])
    except ValueError:
        raise ValueError(f"webarena.{key} must be a number, got {settings[key]!r}") from None
    if value <= 0:
        raise ValueError(f"webarena.{key} must be positive, got {value}")
    return value


def _viewport(value: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise ValueError(f"webarena.viewport must be WIDTHxHEIGHT, e.g. 1280x720; got {value!r}") from None
    return w, h


@register
class WebArena(Env):
    name = "webarena"
    description = (
        "Do tasks on web sites in a headless browser, seeing pages as accessibility trees (WebArena)."
    )
    instruction = INSTRUCTION
    action_format = actions.ACTION_HELP
    max_rounds = 25
    task_count = 0  # set by configure()
    execution = "thread"
    # bench/webarena.py on the built-in sites: one more live episode costs about 60 MB (PSS: its
    # context's renderer process; the browser's ~450 MB is shared by all). Budgeted with room for
    # heavier pages (the real Magento and GitLab). Beyond a few dozen contexts one browser's
    # process and CPU become the limit before memory does.
    episode_memory_mb = 100
    max_episodes = 64

    # Set by configure(): one configuration per process.
    tasks: ClassVar[dict[int, dict[str, Any]]] = {}
    urls: ClassVar[dict[str, str]] = {}
    accounts: ClassVar[dict[str, tuple[str, str]]] = {}
    builtin: ClassVar[bool] = False
    sites: ClassVar[Any] = None  # the built-in sites' handle, when this env started them
    judge: ClassVar[evaluators.Judge | None] = None
    chromium: ClassVar[str] = ""
    max_obs_chars: ClassVar[int] = 8000
    viewport: ClassVar[tuple[int, int]] = (1280, 720)
    viewport_only: ClassVar[bool] = True
    load_timeout_s: ClassVar[float] = 10.0
    action_timeout_s: ClassVar[float] = 5.0
    logins: ClassVar[login.LoginCache] = login.LoginCache()
    no_browser: ClassVar[str] = ""  # why episodes cannot start (no Chromium), or ""
    sites_pending: ClassVar[bool] = False  # the built-in sites are to be started by the first reset
    user_accounts: ClassVar[set[str]] = set()  # sites whose account the settings give
    _sites_lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def configure(cls, settings: Mapping[str, str]) -> None:
        unknown = set(settings) - SETTINGS
        if unknown:
            raise ValueError(f"unknown webarena settings {sorted(unknown)}; known: {sorted(SETTINGS)}")
        # A host without Chromium can still serve the other envs: episodes are refused, saying why.
        try:
            cls.chromium, cls.no_browser = resolve_chromium(settings.get("chromium")), ""
        except FileNotFoundError as exc:
            cls.chromium, cls.no_browser = "", str(exc)
        cls.max_obs_chars = int(_positive(settings, "max_obs_chars", 8000))
        cls.viewport = _viewport(settings.get("viewport", "1280x720"))
        cls.viewport_only = settings.get("viewport_only", "1").strip().lower() not in ("0", "false", "no")
        cls.load_timeout_s = _positive(settings, "load_timeout_s", 10.0)
        cls.action_timeout_s = _positive(settings, "action_timeout_s", 5.0)
        cls.judge = None
        if settings.get("judge_url"):
            if not settings.get("judge_model"):
                raise ValueError("webarena.judge_url needs webarena.judge_model (the judge's model name)")
            cls.judge = evaluators.Judge(
                settings["judge_url"], settings["judge_model"], settings.get("judge_key_env", "")
            )
        with cls._sites_lock:
            if cls.sites is not None:  # configured again: the sites this env started go
                cls.sites.stop()
                cls.sites = None
            cls.sites_pending = False
        cls.logins = login.LoginCache()
        urls = {s: settings[s].rstrip("/") for s in SITE_KEYS if settings.get(s)}
        for site, url in urls.items():
            if not origin_of(url):
                raise ValueError(f"webarena.{site} must be an http(s) URL, got {url!r}")
        accounts = dict(login.DEFAULT_ACCOUNTS)
        if settings.get("tasks"):
            cls.tasks = tasks.load(settings["tasks"])
            cls.builtin = False
            cls.task_set = "original"
        else:
            from agentgym.envs.webarena.builtin_tasks import builtin_tasks

            cls.tasks = {int(t["task_id"]): t for t in builtin_tasks()}
            for where, config in cls.tasks.items():
                tasks.validate(config, f"built-in task {where}")
            cls.builtin = True
            cls.task_set = "built-in sites"
            needed = {s for t in cls.tasks.values() for s in tasks.sites_used(t)}
            # Started by the first episode, not here: every `agentgym serve` configures every env.
            cls.sites_pending = bool(needed - set(urls))
        cls.user_accounts = set()
        for site in SITE_KEYS:
            user, password = settings.get(f"{site}_username"), settings.get(f"{site}_password")
            if user or password:
                default = accounts.get(site, ("", ""))
                accounts[site] = (user or default[0], password or default[1])
                cls.user_accounts.add(site)
        cls.urls = urls
        cls.accounts = accounts
        cls.task_count = max(cls.tasks) + 1 if cls.tasks else 0
        cls.splits = {"test": [range(0, cls.task_count)]}

    @classmethod
    def has_expert(cls) -> bool:
        return cls.builtin and importlib.util.find_spec("agentgym.envs.webarena.expert") is not None

    # --- the episode ---------------------------------------------------------------------------
    def __init__(self) -> None:
        super().__init__()
        self.session: BrowserSession | None = None
        self.task: dict[str, Any] = {}
        self.rendered: observation.Rendered | None = None
        self.text = ""
        self.steps = 0
        self.expert: Any = None
        self._thought: str | None = None
        self._service: BrowserService | None = None

    @property
    def _call_timeout(self) -> float:
        # One action, the navigation it starts, and the observation after it.
        return self.action_timeout_s + 2 * self.load_timeout_s + 10.0

    @classmethod
    def _start_sites(cls) -> None:
        """Start the built-in sites for the configured URLs' gaps, once per configuration."""
        with cls._sites_lock:
            if not cls.sites_pending:
                return
            from agentgym.envs.webarena.sites import start_sites

            sites = start_sites(host="127.0.0.1")
            cls.sites = sites
            cls.urls = {**{s: u.rstrip("/") for s, u in sites.urls.items()}, **cls.urls}
            cls.accounts = {
                **cls.accounts,
                **{s: a for s, a in sites.accounts.items() if s not in cls.user_accounts},
            }
            cls.sites_pending = False

    def reset(self, task_id: int, seed: int, options: Mapping[str, str]) -> Outcome:
        self.close()
        if self.no_browser:
            raise EnvError(self.no_browser)
        config = self.tasks.get(task_id)
        if config is None:
            raise EnvError(f"webarena has no task {task_id} in its task set ({len(self.tasks)} tasks)")
        if self.sites_pending:
            try:
                self._start_sites()
            except Exception as exc:  # SitesError, OSError: the operator must see why
                raise EnvError(f"the built-in sites could not be started: {exc}") from None
        missing = tasks.missing_sites(config, self.urls)
        if missing:
            flags = " ".join(f"--env-setting webarena.{s}=http://HOST:PORT" for s in missing)
            raise EnvError(
                f"task {task_id} needs site(s) {', '.join(missing)} whose URL is not configured: {flags}"
            )
        reason = evaluators.unsupported(config, self.judge)
        if reason:
            raise EnvError(f"task {task_id} cannot be scored here: {reason}")
        if config.get("require_login"):
            no_account = [s for s in config["sites"] if s in login.FORMS and s not in self.accounts]
            if no_account:
                raise EnvError(
                    f"task {task_id} needs accounts for {no_account}: set webarena.<site>_username/_password"
                )
        self.task = tasks.expand(config, self.urls)
        self.steps = 0
        self.expert = None
        self._thought = None
        self._service = service(self.chromium)
        try:
            self.rendered, notices = self._service.call(
                self._open(config), self._call_timeout + self.load_timeout_s
            )
        except login.LoginFailed as exc:
            raise EnvError(str(exc)) from None
        except TimeoutError:
            raise EnvError(f"task {task_id}: the browser did not open the start page in time") from None
        return self._outcome(notices)

    async def _open(self, config: Mapping[str, Any]) -> tuple[observation.Rendered, list[str]]:
        assert self._service is not None
        sites = [s for s in self.task["sites"] if s in self.urls]
        for attempt in range(2):
            state = None
            if config.get("require_login"):
                state = await self.logins.state(
                    self._service, sites, self.urls, self.accounts, self.load_timeout_s
                )
            session = BrowserSession(
                self._service,
                SessionOptions(
                    allowed_origins=tuple(sorted({origin_of(u) for u in self.urls.values()})),
                    viewport=self.viewport,
                    load_timeout_s=self.load_timeout_s,
                    action_timeout_s=self.action_timeout_s,
                    storage_state=state,
                    cookies=self._sandbox_cookies(),
                ),
            )
            self.session = session
            await session.open()
            for i, url in enumerate(str(self.task["start_url"]).split(" |AND| ")):
                if i:
                    await session.new_tab()
                await actions.goto(session, url.strip())
            session.current = 0
            await session.page.bring_to_front()
            expired = []
            if config.get("require_login"):
                expired = [s for s in sites if await login.shows_login(session.page, s, self.urls[s])]
            if expired and attempt == 0:
                # The cached login went stale (the site restarted): log in again, once.
                for s in expired:
                    self.logins.forget(s)
                await session.close()
                continue
            break
        notices, session.notices = session.notices, []
        return await observation.render(session, self.max_obs_chars, self.viewport_only), notices

    def _sandbox_cookies(self) -> list[dict[str, Any]]:
        """Built-in sites keep each episode's writes apart by a cookie (sites/__init__.py)."""
        if not self.builtin:
            return []
        from agentgym.envs.webarena.sites import SANDBOX_COOKIE

        token = secrets.token_hex(8)
        origins = sorted({origin_of(u) for u in self.urls.values()})
        return [{"name": SANDBOX_COOKIE, "value": token, "url": o} for o in origins]

    def step(self, action: str) -> Outcome:
        if self.session is None or self._service is None:
            raise EnvError("no episode: reset first")
        self.steps += 1
        try:
            parsed = actions.parse(action)
        except actions.InvalidAction as exc:
            return self._after(None, [f"Invalid action: {exc}"], invalid=True)
        if parsed.kind == "stop":
            return self._finish(parsed.text, stopped=True)
        try:
            self.rendered, notices, invalid = self._service.call(self._act(parsed), self._call_timeout)
        except (BrowserCrashed, PlaywrightError) as exc:
            raise EnvError(
                f"the browser failed: {str(exc).splitlines()[0] if str(exc) else exc}; this episode is over"
            ) from None
        except TimeoutError:
            raise EnvError(
                f"{parsed.kind} took longer than {self._call_timeout:g} s; this episode is over"
            ) from None
        return self._after(self.rendered, notices, invalid=invalid)

    async def _act(self, parsed: actions.Action) -> tuple[observation.Rendered, list[str], bool]:
        session = self.session
        assert session is not None and self.rendered is not None
        session.check_alive()
        invalid = False
        try:
            await actions.execute(session, parsed, self.rendered.ids)
        except actions.InvalidAction as exc:
            session.notices.append(f"Invalid action: {exc}")
            invalid = True
        notices, session.notices = session.notices, []
        return await observation.render(session, self.max_obs_chars, self.viewport_only), notices, invalid

    def _after(self, rendered: observation.Rendered | None, notices: list[str], invalid: bool) -> Outcome:
        if rendered is None:
            rendered = self.rendered
        assert rendered is not None
        if self.steps >= self.max_rounds:
            # WebArena ends a run at its step limit and scores the final state with an empty answer.
            return self._finish("", stopped=False, notices=notices)
        return self._outcome(notices, invalid=invalid)

    def _outcome(self, notices: list[str], invalid: bool = False) -> Outcome:
        assert self.rendered is not None
        head = "".join(f"{n}\n" for n in notices)
        self.text = (head + "\n" if head else "") + self.rendered.text
        info = {"url": self.rendered.url, "tabs": str(self.rendered.tabs)}
        if invalid:
            info["invalid"] = "true"
        if self.rendered.truncated:
            info["truncated_observation"] = "true"
        return Outcome(self.text, info=info)

    def _finish(self, answer: str, stopped: bool, notices: list[str] | None = None) -> Outcome:
        assert self._service is not None and self.session is not None and self.rendered is not None
        info = {
            "url": self.session.page.url if self.session.pages else "",
            "tabs": str(len(self.session.pages)),
        }
        try:
            verdict = self._service.call(
                evaluators.evaluate(self.task, answer, self.session, self.judge, self.load_timeout_s),
                self._call_timeout * max(1, len(self.task["eval"].get("program_html") or ())),
            )
            score = 1.0
            for kind, value in verdict.items():
                info[f"eval_{kind}"] = f"{value:g}"
                score *= value
        except (evaluators.Unsupported, RuntimeError, OSError, TimeoutError, PlaywrightError) as exc:
            # A judge that is down or a page that broke the evaluator: the episode scores 0 and
            # says why, rather than failing the stream.
            log.warning(
                "webarena evaluation failed", extra={"task_id": self.task.get("task_id"), "error": str(exc)}
            )
            info["eval_error"] = f"{type(exc).__name__}: {exc}"[:500]
            score = 0.0
        how = f"Stopped with answer {answer!r}" if stopped else f"Reached the {self.max_rounds}-round limit"
        head = "".join(f"{n}\n" for n in notices or ())
        kinds = ", ".join(
            f"{k[5:]} {v}" for k, v in info.items() if k.startswith("eval_") and k != "eval_error"
        )
        self.text = f"{head}{how}. The task is over; score {score:g}" + (f" ({kinds})." if kinds else ".")
        info["answer"] = answer[:1000]
        return Outcome(self.text, reward=score, done=True, success=score == 1.0, score=score, info=info)

    def episode_instruction(self) -> str:
        if not self.task:
            return self.instruction
        start = str(self.task["start_url"]).replace(" |AND| ", " and ")
        return f"{self.instruction}\n\nYour task: {self.task['intent']}\nIt starts at: {start}"

    # --- expert --------------------------------------------------------------------------------
    def expert_action(self) -> str:
        if not self.builtin:
            raise EnvError("the webarena expert solves only the built-in tasks (webarena.tasks is set)")
        if self.expert is None:
            from agentgym.envs.webarena.expert import WebArenaExpert

            self.expert = WebArenaExpert({**self.task, "urls": dict(self.urls)})
        action, thought = self.expert.next_action(self.text)
        self._thought = thought
        return action

    def expert_thought(self, action: str) -> str | None:
        return self._thought

    def close(self) -> None:
        session, self.session = self.session, None
        if session is None or self._service is None:
            return
        try:
            self._service.call(session.close(), self.load_timeout_s)
        except Exception as exc:  # a crashed browser has nothing left to free
            log.debug("closing a webarena context failed", extra={"error": str(exc)})
