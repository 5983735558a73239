/* agentgym view: the page. Vanilla JS (an ES module), no dependencies, no build step.
 *
 * Safety: text from trajectories, runs and files reaches the DOM only as text nodes
 * (textContent / createTextNode, through h() and svg() below). Nothing here uses innerHTML,
 * outerHTML, insertAdjacentHTML or document.write, and no style attribute is written as a string
 * (the server's CSP forbids inline styles; element.style.x = ... is CSSOM and allowed).
 *
 * State lives in the URL hash, so reload and back/forward work:
 *   #/runs
 *   #/run/<id>
 *   #/episodes?run=<id>&env=maze&success=0&q=word&sort=-reward&page=2
 *   #/episode/<uid>?step=3&all=1
 *   #/compare?a=<id>&b=<id>&flip=changed&env=maze&task=<item id>
 *
 * Live: /api/events (server-sent events) announces the index version; when it changes the current
 * view re-fetches its data in place, keeping filters, page, scroll and the open step.
 */

const SVG_NS = 'http://www.w3.org/2000/svg';
const PROPS = new Set(['value', 'checked', 'disabled', 'hidden', 'selected', 'open', 'indeterminate']);
const PALETTE = ['#2f6fdf', '#e0752d', '#2a9d5b', '#c0392b', '#8e44ad', '#16a2b8', '#b8860b', '#6b7280'];
const ROLES = new Set(['human', 'gpt', 'system']);
const SEARCH_DEBOUNCE_MS = 250;
const REFRESH_THROTTLE_MS = 300;

// --- DOM --------------------------------------------------------------------------------------------
function setProps(el, props) {
  if (!props) return;
  for (const [k, v] of Object.entries(props)) {
    if (v == null || v === false) continue;
    if (k === 'class') el.setAttribute('class', v);
    else if (k === 'testid') el.setAttribute('data-testid', v);
    else if (k === 'data') {
      for (const [dk, dv] of Object.entries(v)) if (dv != null) el.dataset[dk] = String(dv);
    } else if (k === 'style') Object.assign(el.style, v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (PROPS.has(k)) el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
}

function addChildren(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** An HTML element; string children become text nodes (never parsed as HTML). */
function h(tag, props, ...children) {
  const el = document.createElement(tag);
  setProps(el, props);
  addChildren(el, children);
  return el;
}

/** An SVG element; string children become text nodes. */
function svg(tag, props, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setProps(el, props);
  addChildren(el, children);
  return el;
}

/** Replace an element's children (strings become text nodes; null and false are skipped). */
function fill(el, ...children) {
  el.replaceChildren();
  addChildren(el, children);
  return el;
}

function text(s) {
  return document.createTextNode(s == null ? '' : String(s));
}

/** A file path that wraps after its slashes. */
function pathText(path) {
  const out = [];
  String(path ?? '').split('/').forEach((part, i) => {
    if (i) out.push('/', h('wbr'));
    if (part) out.push(part);
  });
  return out;
}

function clamp(x, lo, hi) {
  return Math.max(lo, Math.min(hi, x));
}

// --- formatting ----------------------------------------------------------------------------------------
const fmt = {
  pct(x) {
    if (x == null || !Number.isFinite(x)) return '—';
    const v = x * 100;
    return `${v.toFixed(Math.abs(v - Math.round(v)) < 1e-9 ? 0 : 1)}%`;
  },
  num(x, digits = 2) {
    if (x == null || !Number.isFinite(Number(x))) return '—';
    return Number.isInteger(x) ? String(x) : Number(x).toFixed(digits);
  },
  sig(x) {
    if (x == null) return '—';
    if (typeof x !== 'number') return String(x);
    if (!Number.isFinite(x)) return String(x);
    if (Number.isInteger(x)) return String(x);
    if (Math.abs(x) < 1e-3) return x.toExponential(1).replace('e-', 'e−');
    return String(Number(x.toPrecision(4)));
  },
  delta(x, pct = false) {
    if (x == null || !Number.isFinite(x)) return '—';
    const sign = x > 0 ? '+' : x < 0 ? '−' : '±';
    const v = Math.abs(x);
    return sign + (pct ? fmt.pct(v) : v.toFixed(2));
  },
  time(t) {
    if (t == null || !Number.isFinite(t)) return '—';
    const d = new Date(t * 1000);
    const p = (n) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
  },
  secs(s) {
    if (s == null || !Number.isFinite(s)) return '—';
    return s < 10 ? `${s.toFixed(2)} s` : s < 120 ? `${s.toFixed(1)} s` : `${(s / 60).toFixed(1)} min`;
  },
  json(v) {
    if (typeof v === 'string') return v;
    try {
      return JSON.stringify(v);
    } catch {
      return String(v);
    }
  },
};

function successMark(s) {
  if (s === true || s === 1) return h('span', { class: 'ok', title: 'success' }, '✓');
  if (s === false || s === 0) return h('span', { class: 'fail', title: 'failure' }, '✗');
  return h('span', { class: 'muted' }, '—');
}

function badge(label, value, cls = '') {
  return h('span', { class: `badge ${cls}`.trim() }, label ? [h('span', { class: 'badge-k' }, label), ' '] : null, text(value));
}

// --- the API ---------------------------------------------------------------------------------------------
class ApiError extends Error {}

async function api(path, params) {
  let url = path;
  if (params) {
    const qs = (params instanceof URLSearchParams ? params : new URLSearchParams(params)).toString();
    if (qs) url += `?${qs}`;
  }
  let res;
  try {
    res = await fetch(url, { headers: { Accept: 'application/json' }, cache: 'no-store' });
  } catch {
    throw new ApiError('The viewer server does not answer. Is `agentgym view` still running?');
  }
  let body = null;
  try {
    body = await res.json();
  } catch {
    body = null;
  }
  if (!res.ok) throw new ApiError((body && body.error) || `${res.status} ${res.statusText} (${path})`);
  return body;
}

let runsPromise = null;
/** /api/runs, shared by the views until the index version changes. */
function getRuns() {
  if (!runsPromise) {
    runsPromise = api('/api/runs');
    runsPromise.catch(() => {
      runsPromise = null;
    });
  }
  return runsPromise;
}

/** A run's name for menus: its title, plus the end of its path when another run has the same
 *  title (two trainer folders both have a "trainer/store"). */
function runLabel(runs, run) {
  if (!run) return '';
  if (!runs.some((r) => r.id !== run.id && r.title === run.title)) return run.title;
  const parts = String(run.path || '').split('/').filter(Boolean);
  return `${run.title} — ${parts.length > 4 ? '…/' : '/'}${parts.slice(-4).join('/')}`;
}

function runTitle(runs, id) {
  const r = runs && runs.find((x) => x.id === id);
  return r ? runLabel(runs, r) : id;
}

// --- routing -----------------------------------------------------------------------------------------------
function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/runs';
  const qi = raw.indexOf('?');
  const path = qi < 0 ? raw : raw.slice(0, qi);
  const params = new URLSearchParams(qi < 0 ? '' : raw.slice(qi + 1));
  const parts = path.split('/').filter(Boolean).map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return p;
    }
  });
  return { name: parts[0] || 'runs', arg: parts[1] ?? null, params };
}

/** A hash (without '#') for a view: hashFor('episodes', null, {run: 'r1', env: 'maze'}). */
function hashFor(name, arg, params) {
  let s = `/${name}`;
  if (arg != null) s += `/${encodeURIComponent(arg)}`;
  const qs = params ? (params instanceof URLSearchParams ? params : toParams(params)).toString() : '';
  return qs ? `${s}?${qs}` : s;
}

function toParams(obj) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(obj)) {
    if (v == null || v === '') continue;
    if (Array.isArray(v)) v.forEach((x) => p.append(k, x));
    else p.set(k, v);
  }
  return p;
}

/** Go to a hash: a new history entry, or (replace) the current one. Routes either way. */
function go(hash, { replace = false } = {}) {
  if (`#${hash}` === location.hash) return;
  if (replace) {
    history.replaceState(null, '', `#${hash}`);
    route();
  } else {
    location.hash = hash;
  }
}

/** Record state in the hash without re-routing (the view already shows it). */
function setHashQuietly(hash) {
  if (`#${hash}` !== location.hash) history.replaceState(null, '', `#${hash}`);
}

const $app = document.getElementById('app');
const VIEWS = {};
let view = null;
const remembered = { episodes: null, compare: null };

function route() {
  const { name, arg, params } = parseHash();
  const key = `${name}/${arg ?? ''}`;
  if (view && view.key === key && view.update) {
    view.update(params);
    return;
  }
  if (view && view.destroy) view.destroy();
  $app.replaceChildren();
  const make = VIEWS[name] || NotFoundView;
  view = make(arg, params) || {};
  view.key = key;
  for (const a of document.querySelectorAll('[data-nav]')) {
    a.classList.toggle('active', a.dataset.nav === (name === 'run' ? 'runs' : name === 'episode' ? 'episodes' : name));
  }
  window.scrollTo(0, 0);
}

function viewRoot(name, ...children) {
  const el = h('section', { class: `view view-${name}`, testid: `${name}-view` }, ...children);
  $app.append(el);
  return el;
}

function errorBox(err) {
  return h('div', { class: 'error', testid: 'error', role: 'alert' }, String((err && err.message) || err));
}

/** A slot that shows one error at a time. */
function errorSlot() {
  const el = h('div', { class: 'error-slot' });
  return {
    el,
    show(err) {
      fill(el, errorBox(err));
    },
    clear() {
      el.replaceChildren();
    },
  };
}

/** Fetch-and-render with stale responses dropped; a quiet reload that brings the same data
 *  renders nothing (live refreshes then cost one request, not a re-render). */
function loader(fetchFn, renderFn, errors) {
  let seq = 0;
  let lastSig = null;
  return async ({ quiet = false } = {}) => {
    const mine = ++seq;
    try {
      const data = await fetchFn();
      if (mine !== seq) return;
      const sig = JSON.stringify(data, (k, v) => (k === 'ms' ? undefined : v));
      errors.clear();
      if (quiet && sig === lastSig) return;
      lastSig = sig;
      renderFn(data, { quiet });
    } catch (err) {
      if (mine !== seq) return;
      lastSig = null;
      errors.show(err);
    }
  };
}

function isTyping(ev) {
  const t = ev.target;
  return t && (t.isContentEditable || ['INPUT', 'SELECT', 'TEXTAREA'].includes(t.tagName));
}

document.addEventListener('keydown', (ev) => {
  if (ev.altKey || ev.ctrlKey || ev.metaKey || isTyping(ev)) return;
  if (view && view.onKey && view.onKey(ev)) ev.preventDefault();
});

// --- live updates ---------------------------------------------------------------------------------------
const live = { version: null, indexing: false, state: 'connecting' };
let refreshTimer = null;
let refreshing = false;
let refreshAgain = false;

function renderLive() {
  const el = document.getElementById('live');
  if (!el) return;
  const state = live.state === 'offline' ? 'offline' : live.indexing ? 'indexing' : live.state;
  el.dataset.state = state;
  el.dataset.version = live.version == null ? '' : String(live.version);
  el.querySelector('.live-label').textContent =
    state === 'indexing' ? 'indexing…' : state === 'offline' ? 'offline' : state === 'live' ? 'live' : 'connecting';
  el.title = `index version ${live.version ?? '?'}; ${
    state === 'offline' ? 'the server does not answer, retrying' : 'updates as runs grow'
  }`;
}

function scheduleRefresh() {
  if (refreshTimer) return;
  refreshTimer = setTimeout(async () => {
    refreshTimer = null;
    if (refreshing) {
      refreshAgain = true;
      return;
    }
    refreshing = true;
    runsPromise = null;
    try {
      if (view && view.refresh) await view.refresh();
    } finally {
      refreshing = false;
      if (refreshAgain) {
        refreshAgain = false;
        scheduleRefresh();
      }
    }
  }, REFRESH_THROTTLE_MS);
}

function connectEvents() {
  if (typeof EventSource === 'undefined') return;
  const es = new EventSource('/api/events');
  es.onopen = () => {
    live.state = 'live';
    renderLive();
  };
  es.onmessage = (ev) => {
    let d;
    try {
      d = JSON.parse(ev.data);
    } catch {
      return;
    }
    if (!d || typeof d !== 'object') return;
    const wasIndexing = live.indexing;
    // The first message after (re)connecting refreshes too: the index may have moved between the
    // view's first fetch and this connection (a quiet refresh of unchanged data renders nothing).
    const changed = live.version == null || d.version !== live.version;
    live.version = d.version;
    live.indexing = !!d.indexing;
    live.state = 'live';
    renderLive();
    if (changed || (wasIndexing && !live.indexing)) scheduleRefresh();
  };
  es.onerror = () => {
    live.state = 'offline';
    renderLive(); // EventSource reconnects by itself
  };
}

// --- charts (inline SVG) -----------------------------------------------------------------------------
function niceTicks(lo, hi, count = 5) {
  if (!(hi > lo)) {
    const pad = Math.abs(lo) > 0 ? Math.abs(lo) * 0.1 : 1;
    lo -= pad;
    hi += pad;
  }
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
  const start = Math.floor(lo / step) * step;
  const ticks = [];
  for (let v = start; v <= hi + step * 1e-6; v += step) ticks.push(Number(v.toPrecision(12)));
  if (ticks[ticks.length - 1] < hi) ticks.push(Number((ticks[ticks.length - 1] + step).toPrecision(12)));
  return ticks;
}

/** A line chart: series [{name, points: [[x, y], ...]}]. */
function lineChart({ title, series, xLabel = '', width = 580, height = 240, testid = 'curve-chart', yPct = false }) {
  const m = { l: 60, r: 14, t: 12, b: 34 };
  const W = width - m.l - m.r;
  const H = height - m.t - m.b;
  const pts = series.flatMap((s) => (s.points || []).filter((p) => p && p[1] != null && Number.isFinite(p[1])));
  const wrap = h('figure', { class: 'chart', testid }, h('figcaption', null, title));
  if (!pts.length) {
    wrap.append(h('div', { class: 'muted chart-empty' }, 'no points yet'));
    return wrap;
  }
  const xs = pts.map((p) => p[0]);
  const ys = pts.map((p) => p[1]);
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  if (x0 === x1) {
    x0 -= 1;
    x1 += 1;
  }
  const yt = niceTicks(Math.min(...ys), Math.max(...ys), 4);
  const y0 = yt[0];
  const y1 = yt[yt.length - 1];
  const X = (x) => m.l + ((x - x0) / (x1 - x0)) * W;
  const Y = (y) => m.t + H - ((y - y0) / (y1 - y0 || 1)) * H;
  const el = svg('svg', { viewBox: `0 0 ${width} ${height}`, width, height, class: 'chart-svg', role: 'img' });
  el.append(svg('title', null, title));
  for (const t of yt) {
    el.append(svg('line', { x1: m.l, x2: m.l + W, y1: Y(t), y2: Y(t), class: 'grid' }));
    el.append(svg('text', { x: m.l - 6, y: Y(t) + 4, class: 'tick', 'text-anchor': 'end' }, yPct ? fmt.pct(t) : fmt.sig(t)));
  }
  for (const t of niceTicks(x0, x1, 5).filter((v) => v >= x0 && v <= x1)) {
    el.append(svg('line', { x1: X(t), x2: X(t), y1: m.t + H, y2: m.t + H + 4, class: 'axis' }));
    el.append(svg('text', { x: X(t), y: m.t + H + 16, class: 'tick', 'text-anchor': 'middle' }, fmt.sig(t)));
  }
  el.append(svg('line', { x1: m.l, x2: m.l + W, y1: m.t + H, y2: m.t + H, class: 'axis' }));
  el.append(svg('line', { x1: m.l, x2: m.l, y1: m.t, y2: m.t + H, class: 'axis' }));
  if (xLabel) el.append(svg('text', { x: m.l + W / 2, y: height - 4, class: 'axis-label', 'text-anchor': 'middle' }, xLabel));
  const legend = h('div', { class: 'legend' });
  series.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length];
    const good = (s.points || []).filter((p) => p && p[1] != null && Number.isFinite(p[1]));
    if (!good.length) return;
    const d = good.map((p, k) => `${k ? 'L' : 'M'}${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join('');
    el.append(svg('path', { d, class: 'series', stroke: color, fill: 'none' }));
    const dots = svg('g', { fill: color });
    for (const p of good) {
      dots.append(
        svg('circle', { cx: X(p[0]).toFixed(1), cy: Y(p[1]).toFixed(1), r: good.length > 60 ? 1.5 : 2.6 },
          svg('title', null, `${s.name}: ${fmt.sig(p[1])} at ${xLabel || 'x'} ${fmt.sig(p[0])}`)),
      );
    }
    el.append(dots);
    legend.append(h('span', { class: 'legend-item' }, h('span', { class: 'swatch', style: { background: color } }), s.name));
  });
  wrap.append(el, legend);
  return wrap;
}

/** Bars of a fraction (0..1) per label. */
function barChart({ title, items, testid = 'success-chart' }) {
  const m = { l: 44, r: 10, t: 18, b: 40 };
  const bw = 46;
  const gap = 22;
  const width = Math.max(300, m.l + m.r + items.length * (bw + gap));
  const height = 220;
  const H = height - m.t - m.b;
  const Y = (v) => m.t + H - clamp(v, 0, 1) * H;
  const el = svg('svg', { viewBox: `0 0 ${width} ${height}`, width, height, class: 'chart-svg', role: 'img' });
  el.append(svg('title', null, title));
  for (const t of [0, 0.25, 0.5, 0.75, 1]) {
    el.append(svg('line', { x1: m.l, x2: width - m.r, y1: Y(t), y2: Y(t), class: 'grid' }));
    el.append(svg('text', { x: m.l - 6, y: Y(t) + 4, class: 'tick', 'text-anchor': 'end' }, fmt.pct(t)));
  }
  items.forEach((it, i) => {
    const x = m.l + gap / 2 + i * (bw + gap);
    const v = it.value == null ? 0 : it.value;
    el.append(
      svg('rect', { x, y: Y(v), width: bw, height: Math.max(0, m.t + H - Y(v)), class: 'bar', fill: PALETTE[i % PALETTE.length], data: { env: it.label } },
        svg('title', null, `${it.label}: ${fmt.pct(it.value)}`)),
    );
    el.append(svg('text', { x: x + bw / 2, y: Y(v) - 4, class: 'bar-value', 'text-anchor': 'middle' }, fmt.pct(it.value)));
    const label = it.label.length > 10 ? `${it.label.slice(0, 9)}…` : it.label;
    el.append(svg('text', { x: x + bw / 2, y: m.t + H + 16, class: 'tick', 'text-anchor': 'middle' }, label));
  });
  el.append(svg('line', { x1: m.l, x2: width - m.r, y1: m.t + H, y2: m.t + H, class: 'axis' }));
  return h('figure', { class: 'chart', testid }, h('figcaption', null, title), el);
}

/** A small line of the cumulative reward per step, with the current step marked. */
function rewardSpark(steps) {
  const width = 260;
  const height = 70;
  const m = { l: 30, r: 8, t: 8, b: 16 };
  const W = width - m.l - m.r;
  const H = height - m.t - m.b;
  const vals = steps.map((s) => (s.cumulative == null ? null : s.cumulative));
  const known = vals.filter((v) => v != null);
  const el = svg('svg', { viewBox: `0 0 ${width} ${height}`, width, height, class: 'spark', testid: 'reward-spark' });
  if (!known.length) return { el: h('div', { class: 'muted' }, 'no step rewards recorded'), mark() {} };
  const lo = Math.min(0, ...known);
  let hi = Math.max(...known);
  if (hi - lo < 1e-9) hi = lo + 1;
  const n = Math.max(1, steps.length - 1);
  const X = (i) => m.l + (i / n) * W;
  const Y = (v) => m.t + H - ((v - lo) / (hi - lo)) * H;
  el.append(svg('line', { x1: m.l, x2: m.l + W, y1: Y(lo), y2: Y(lo), class: 'axis' }));
  el.append(svg('text', { x: m.l - 4, y: Y(hi) + 4, class: 'tick', 'text-anchor': 'end' }, fmt.sig(hi)));
  el.append(svg('text', { x: m.l - 4, y: Y(lo) + 4, class: 'tick', 'text-anchor': 'end' }, fmt.sig(lo)));
  let d = '';
  vals.forEach((v, i) => {
    if (v != null) d += `${d ? 'L' : 'M'}${X(i).toFixed(1)},${Y(v).toFixed(1)}`;
  });
  el.append(svg('path', { d, class: 'series', stroke: PALETTE[0], fill: 'none' }));
  const marker = svg('line', { y1: m.t, y2: m.t + H, class: 'marker' });
  const dot = svg('circle', { r: 3.5, class: 'marker-dot' });
  el.append(marker, dot);
  return {
    el,
    mark(i) {
      const x = X(i);
      marker.setAttribute('x1', x);
      marker.setAttribute('x2', x);
      const v = vals[i];
      dot.setAttribute('cx', x);
      dot.setAttribute('cy', Y(v == null ? lo : v));
      dot.style.display = v == null ? 'none' : '';
    },
  };
}

// --- tables -----------------------------------------------------------------------------------------------
function table(cls, testid, head, rows) {
  return h(
    'table',
    { class: `tbl ${cls}`.trim(), testid },
    h('thead', null, h('tr', null, head.map((c) => (c instanceof Node ? c : h('th', null, c))))),
    h('tbody', null, rows),
  );
}

function td(content, cls) {
  return h('td', cls ? { class: cls } : null, content);
}

// --- Runs ----------------------------------------------------------------------------------------------------
VIEWS.runs = function RunsView() {
  const errors = errorSlot();
  const selected = [];
  let runs = [];
  const filter = h('input', { type: 'search', class: 'runs-filter', placeholder: 'filter runs by title, path, policy…', testid: 'runs-filter', 'aria-label': 'filter runs' });
  const compareBtn = h('button', { class: 'btn primary', testid: 'compare-selected', disabled: true }, 'Compare selected');
  const hint = h('span', { class: 'muted small' }, 'Tick two runs: the first is A (baseline), the second B.');
  const banner = h('div', { class: 'banner', hidden: true });
  const body = h('div', { class: 'runs-body' });
  const root = viewRoot(
    'runs',
    h('div', { class: 'toolbar' }, h('h1', null, 'Runs'), h('span', { class: 'spacer' }), filter, compareBtn, hint),
    banner, errors.el, body,
  );

  function updateCompare() {
    compareBtn.disabled = selected.length !== 2;
    compareBtn.textContent = `Compare selected (${selected.length}/2)`;
    for (const cb of root.querySelectorAll('input[data-testid="run-select"]')) {
      const i = selected.indexOf(cb.dataset.run);
      cb.checked = i >= 0;
      const tag = cb.parentElement.querySelector('.ab');
      if (tag) tag.textContent = i === 0 ? 'A' : i === 1 ? 'B' : '';
    }
  }
  compareBtn.addEventListener('click', () => {
    if (selected.length === 2) go(hashFor('compare', null, { a: selected[0], b: selected[1] }));
  });

  function envChips(run) {
    const envs = Object.entries(run.envs || {});
    if (!envs.length) return h('span', { class: 'muted' }, '—');
    return h('div', { class: 'chips' }, envs.map(([env, s]) =>
      h('span', { class: 'chip', testid: 'run-env', data: { env }, title: `${env}: ${s.episodes ?? '?'} episodes, success ${fmt.pct(s.success)}, mean reward ${fmt.num(s.reward)}, mean rounds ${fmt.num(s.rounds, 1)}` },
        h('span', { class: 'chip-k' }, env), ' ', h('b', { class: 'chip-success' }, fmt.pct(s.success)), ' · ', h('span', { class: 'chip-reward' }, fmt.num(s.reward))),
    ));
  }

  function row(run) {
    const cb = h('input', { type: 'checkbox', testid: 'run-select', data: { run: run.id }, 'aria-label': `select ${run.title}` });
    cb.addEventListener('change', () => {
      const i = selected.indexOf(run.id);
      if (cb.checked && i < 0) {
        selected.push(run.id);
        if (selected.length > 2) selected.shift();
      } else if (!cb.checked && i >= 0) selected.splice(i, 1);
      updateCompare();
    });
    const training = run.training
      ? h('span', { class: `badge state-${String(run.training.state || 'none').toLowerCase()}` }, `${run.training.kind}${run.training.state ? ` · ${run.training.state}` : ''}`)
      : null;
    return h('tr', { testid: 'run-row', data: { run: run.id, kind: run.kind } },
      td(h('label', { class: 'sel' }, cb, h('span', { class: 'ab' }))),
      td([h('a', { href: `#${hashFor('run', run.id)}`, class: 'run-link', testid: 'run-link' }, run.title), h('div', { class: 'path small muted', title: run.path }, pathText(run.path))]),
      td([h('span', { class: 'kind' }, run.kind), training ? [' ', training] : null]),
      td(run.policy ?? '—'),
      td(fmt.time(run.time), 'nowrap'),
      td(run.episodes > 0
        ? h('a', { href: `#${hashFor('episodes', null, { run: run.id })}`, testid: 'run-episodes', title: 'browse the episodes' }, String(run.episodes))
        : h('span', { class: 'muted' }, String(run.episodes ?? 0)), 'num'),
      td(envChips(run)),
      td(run.average ? fmt.pct(run.average.success) : '—', 'num'),
      td(run.average ? fmt.num(run.average.reward) : '—', 'num'),
      td(run.live ? h('span', { class: 'live-tag', testid: 'run-live', title: 'running, or gained episodes in the last seconds' }, 'live') : ''),
    );
  }

  function render() {
    const q = filter.value.trim().toLowerCase();
    const shown = q
      ? runs.filter((r) => [r.title, r.path, r.policy, r.kind, ...Object.keys(r.envs || {})].some((s) => s && String(s).toLowerCase().includes(q)))
      : runs;
    if (!runs.length) {
      fill(body, h('div', { class: 'empty', testid: 'runs-empty' }, live.indexing ? 'Indexing… runs appear as they are read.' : 'No runs found in the given paths.'));
      return;
    }
    fill(body, 
      table('runs', 'runs-table',
        ['', 'Run', 'Kind', 'Policy', 'Started', 'Episodes', 'Success · mean reward per env', 'Success', 'Reward', ''],
        shown.map(row)),
      shown.length < runs.length ? h('div', { class: 'muted small' }, `${shown.length} of ${runs.length} runs`) : null,
    );
    updateCompare();
  }

  let t = null;
  filter.addEventListener('input', () => {
    clearTimeout(t);
    t = setTimeout(render, 120);
  });

  const load = loader(getRuns, (data) => {
    runs = data.runs || [];
    for (let i = selected.length - 1; i >= 0; i--) if (!runs.some((r) => r.id === selected[i])) selected.splice(i, 1);
    banner.hidden = !data.indexing;
    banner.textContent = data.indexing ? 'Indexing… counts grow as files are read.' : '';
    render();
  }, errors);
  load();
  document.title = 'Runs · agentgym view';
  return { refresh: () => load({ quiet: true }) };
};

// --- one run ------------------------------------------------------------------------------------------------
VIEWS.run = function RunView(id) {
  const errors = errorSlot();
  const body = h('div', { class: 'run-body' });
  viewRoot('run', errors.el, body);
  let runs = [];

  function header(run) {
    const compareSel = h('select', { testid: 'run-compare-with', 'aria-label': 'compare with' },
      h('option', { value: '' }, 'compare with…'),
      runs.filter((r) => r.id !== run.id).map((r) => h('option', { value: r.id }, runLabel(runs, r))));
    compareSel.addEventListener('change', () => {
      if (compareSel.value) go(hashFor('compare', null, { a: run.id, b: compareSel.value }));
    });
    return h('div', { class: 'run-head' },
      h('div', { class: 'crumbs' }, h('a', { href: '#/runs' }, 'Runs'), ' › '),
      h('h1', { testid: 'run-title' }, run.title),
      h('div', { class: 'meta' },
        badge('kind', run.kind), run.policy ? badge('policy', run.policy) : null, badge('started', fmt.time(run.time)),
        badge('episodes', String(run.episodes ?? 0)),
        run.training ? badge(run.training.kind, run.training.state || '—', `state-${String(run.training.state || 'none').toLowerCase()}`) : null,
        run.live ? h('span', { class: 'live-tag' }, 'live') : null),
      h('div', { class: 'path small muted' }, pathText(run.path)),
      h('div', { class: 'actions' },
        run.episodes > 0 ? h('a', { class: 'btn primary', href: `#${hashFor('episodes', null, { run: run.id })}`, testid: 'run-episodes-link' }, `Episodes (${run.episodes}) →`) : null,
        compareSel),
    );
  }

  function evalTable(run) {
    const rows = (run.table || []).map((r) => h('tr', { testid: 'eval-row', data: { env: r.env } },
      td(run.episodes > 0 ? h('a', { href: `#${hashFor('episodes', null, { run: run.id, env: r.env })}` }, r.env) : r.env),
      td(r.planned != null ? `${r.episodes}/${r.planned}` : String(r.episodes ?? '—'), 'num'),
      td(fmt.pct(r.success), 'num'),
      td(fmt.num(r.reward), 'num'),
      td(fmt.num(r.rounds, 1), 'num'),
      td(r.failed == null ? '—' : String(r.failed), 'num'),
    ));
    const total = (run.table || []).reduce((a, r) => a + (r.episodes || 0), 0);
    const planned = (run.table || []).every((r) => r.planned != null) ? (run.table || []).reduce((a, r) => a + r.planned, 0) : null;
    const failed = (run.table || []).some((r) => r.failed != null) ? (run.table || []).reduce((a, r) => a + (r.failed || 0), 0) : null;
    const avg = run.average || {};
    if (rows.length) {
      rows.push(h('tr', { class: 'avg', testid: 'eval-average' },
        td(h('b', null, 'Average')), td(planned != null ? `${total}/${planned}` : String(total), 'num'),
        td(h('b', null, fmt.pct(avg.success)), 'num'), td(fmt.num(avg.reward), 'num'), td(fmt.num(avg.rounds, 1), 'num'),
        td(failed == null ? '—' : String(failed), 'num')));
    }
    return table('eval', 'eval-table', ['Env', 'Episodes', 'Success', 'Mean reward', 'Mean rounds', 'Failed'], rows);
  }

  function curvesSection(curves) {
    const xLabel = curves.x || 'step';
    const charts = (curves.charts || []).map((c) => lineChart({
      title: c.title, series: c.series || [], xLabel,
      yPct: /success/i.test(c.title) && (c.series || []).every((s) => (s.points || []).every((p) => p[1] == null || (p[1] >= 0 && p[1] <= 1))),
    }));
    const t = curves.table;
    const tbl = t && t.columns
      ? h('details', { class: 'curves-table', testid: 'curves-table', open: (t.rows || []).length <= 30 },
        h('summary', null, `Per ${xLabel} (${(t.rows || []).length} row${(t.rows || []).length === 1 ? '' : 's'})`),
        h('div', { class: 'scroll-x' }, table('curves', null, t.columns, (t.rows || []).map((r) => h('tr', null, r.map((v) => td(fmt.sig(v), typeof v === 'number' ? 'num' : '')))))))
      : null;
    return h('section', { class: 'card', testid: 'curves' }, h('h2', null, 'Training curves'), h('div', { class: 'charts' }, charts), tbl);
  }

  function evalsSection(evals) {
    const envs = [...new Set(evals.flatMap((e) => Object.keys(e.success || {})))];
    const withRun = evals.filter((e) => e.run);
    const cmp = withRun.length >= 2
      ? h('a', { class: 'btn', testid: 'compare-evals', href: `#${hashFor('compare', null, { a: withRun[0].run, b: withRun[withRun.length - 1].run })}` },
        `Compare ${withRun[0].name} → ${withRun[withRun.length - 1].name}`)
      : null;
    return h('section', { class: 'card' }, h('div', { class: 'toolbar' }, h('h2', null, 'Held-out evaluations'), h('span', { class: 'spacer' }), cmp),
      table('evals', 'evals-table', ['Eval', 'Weight version', ...envs.map((e) => `${e} success`), ''],
        evals.map((e) => h('tr', { testid: 'eval-link-row', data: { run: e.run } },
          td(e.run ? h('a', { href: `#${hashFor('run', e.run)}` }, e.name) : e.name),
          td(e.weight_version ?? '—', 'mono small'),
          envs.map((env) => td(fmt.pct((e.success || {})[env]), 'num')),
          td(e.run ? h('a', { href: `#${hashFor('run', e.run)}`, class: 'small' }, 'open run →') : ''),
        ))));
  }

  const load = loader(async () => {
    const [run, all] = await Promise.all([api(`/api/runs/${encodeURIComponent(id)}`), getRuns().catch(() => ({ runs: [] }))]);
    return { run, runs: all.runs || [] };
  }, ({ run, runs: all }) => {
    runs = all;
    document.title = `${run.title} · agentgym view`;
    const parts = [header(run)];
    if ((run.table || []).length) {
      parts.push(h('section', { class: 'card run-eval' }, h('h2', null, 'Results'),
        h('div', { class: 'eval-grid' }, h('div', null, evalTable(run)),
          barChart({ title: 'Success per env', items: (run.table || []).map((r) => ({ label: r.env, value: r.success })) }))));
    }
    if (run.curves) parts.push(curvesSection(run.curves));
    if (run.evals && run.evals.length) parts.push(evalsSection(run.evals));
    if (run.results) {
      parts.push(h('details', { class: 'card raw' }, h('summary', null, 'results.json'), h('pre', { class: 'json' }, JSON.stringify(run.results, null, 2))));
    }
    fill(body, ...parts);
  }, errors);
  load();
  return { refresh: () => load({ quiet: true }) };
};

// --- Episodes -------------------------------------------------------------------------------------------------
const EP_KEYS = ['run', 'env', 'task', 'item', 'success', 'min_reward', 'max_reward', 'min_rounds', 'max_rounds',
  'iteration', 'version', 'q', 'sort', 'per_page', 'page'];

VIEWS.episodes = function EpisodesView(_, params) {
  const errors = errorSlot();
  let state = new URLSearchParams(params);
  let runs = [];
  let lastFacets = { envs: [], iterations: [], versions: [] };
  let pages = 1;

  const sel = (testid, label, opts) => h('select', { testid, 'aria-label': label }, opts.map(([v, t]) => h('option', { value: v }, t)));
  const num = (testid, label, placeholder, step = 'any') => h('input', { type: 'number', step, testid, 'aria-label': label, placeholder, class: 'num-input' });
  const c = {
    run: h('select', { testid: 'filter-run', 'aria-label': 'run' }),
    env: sel('filter-env', 'env', [['', 'any env']]),
    task: num('filter-task', 'task id', 'task id', '1'),
    success: sel('filter-success', 'success', [['', 'any outcome'], ['1', 'success'], ['0', 'failure']]),
    min_reward: num('filter-min-reward', 'minimum reward', 'min'),
    max_reward: num('filter-max-reward', 'maximum reward', 'max'),
    min_rounds: num('filter-min-rounds', 'minimum rounds', 'min', '1'),
    max_rounds: num('filter-max-rounds', 'maximum rounds', 'max', '1'),
    iteration: sel('filter-iteration', 'iteration', [['', 'any iteration']]),
    version: sel('filter-version', 'weight version', [['', 'any weight version']]),
    q: h('input', { type: 'search', testid: 'filter-q', 'aria-label': 'search', placeholder: 'search actions and observations…', class: 'q-input' }),
    sort: sel('filter-sort', 'sort', [['', 'sort: key'], ['arrival', 'sort: arrival'], ['reward', 'reward ↑'], ['-reward', 'reward ↓'], ['rounds', 'rounds ↑'], ['-rounds', 'rounds ↓']]),
    per_page: sel('filter-per-page', 'rows per page', [['', '50 / page'], ['100', '100 / page'], ['200', '200 / page'], ['500', '500 / page']]),
  };
  const reset = h('button', { class: 'btn', testid: 'filter-reset', type: 'button' }, 'Reset');
  const field = (label, ...els) => h('label', { class: 'field' }, h('span', { class: 'field-k' }, label), ...els);
  const form = h('form', { class: 'filters', testid: 'filters', autocomplete: 'off' },
    h('div', { class: 'filter-row' }, field('Run', c.run), field('Search', c.q), field('Env', c.env), field('Outcome', c.success), field('Task', c.task), h('span', { class: 'spacer' }), reset),
    h('div', { class: 'filter-row' }, field('Reward', c.min_reward, h('span', { class: 'muted' }, '–'), c.max_reward),
      field('Rounds', c.min_rounds, h('span', { class: 'muted' }, '–'), c.max_rounds),
      field('Iteration', c.iteration), field('Weights', c.version), field('Sort', c.sort), field('Rows', c.per_page)));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    commit();
  });

  const totalEl = h('span', { class: 'total', testid: 'episodes-total' }, '…');
  const msEl = h('span', { class: 'muted small' });
  const prev = h('button', { class: 'btn', testid: 'page-prev', type: 'button' }, '‹ Prev');
  const next = h('button', { class: 'btn', testid: 'page-next', type: 'button' }, 'Next ›');
  const pageInfo = h('span', { class: 'page-info', testid: 'page-info' });
  const pager = h('div', { class: 'pager' }, totalEl, msEl, h('span', { class: 'spacer' }), prev, pageInfo, next);
  const tbody = h('tbody');
  const thead = h('thead');
  const tbl = h('table', { class: 'tbl episodes', testid: 'episodes-table' }, thead, tbody);
  const empty = h('div', { class: 'empty', testid: 'episodes-empty', hidden: true }, 'No episodes match these filters.');
  const itemNote = h('div', { class: 'banner', hidden: true });
  viewRoot('episodes', h('div', { class: 'toolbar' }, h('h1', null, 'Episodes')), form, itemNote, errors.el, pager, h('div', { class: 'scroll-x' }, tbl), empty);

  function setOptions(select, values, anyLabel, current) {
    const want = [['', anyLabel], ...values.map((v) => [String(v), String(v)])];
    if (current && !want.some(([v]) => v === current)) want.push([current, current]);
    const have = [...select.options].map((o) => o.value);
    if (have.length !== want.length || have.some((v, i) => v !== want[i][0])) {
      fill(select, ...want.map(([v, t]) => h('option', { value: v }, t)));
    }
    select.value = current || '';
    select.disabled = values.length === 0 && !current;
  }

  /** The controls show `state` (except the field being typed in). */
  function syncControls() {
    const runIds = state.getAll('run');
    const runOpts = runs.filter((r) => r.episodes > 0 || runIds.includes(r.id)).map((r) => [r.id, `${runLabel(runs, r)} (${r.episodes})`]);
    if (runIds.length > 1) runOpts.unshift([runIds.join(','), `${runIds.length} runs`]);
    const haveRuns = [...c.run.options].map((o) => `${o.value}\u0000${o.textContent}`).join('\u0001');
    const wantRuns = runOpts.map(([v, t]) => `${v}\u0000${t}`).join('\u0001');
    if (haveRuns !== wantRuns) fill(c.run, ...runOpts.map(([v, t]) => h('option', { value: v }, t)));
    c.run.value = runIds.join(',');
    setOptions(c.env, lastFacets.envs || [], 'any env', state.get('env'));
    setOptions(c.iteration, lastFacets.iterations || [], 'any iteration', state.get('iteration'));
    setOptions(c.version, lastFacets.versions || [], 'any weight version', state.get('version'));
    for (const k of ['task', 'success', 'min_reward', 'max_reward', 'min_rounds', 'max_rounds', 'q', 'sort', 'per_page']) {
      const el = c[k];
      if (document.activeElement === el && k === 'q') continue;
      let v = state.get(k) ?? '';
      if (k === 'sort' && v === 'key') v = '';
      el.value = v;
      if (el.tagName === 'SELECT' && el.value !== v) {
        // a value from the URL that the menu does not offer (per_page=20): offer it
        el.append(h('option', { value: v }, k === 'per_page' ? `${v} / page` : v));
        el.value = v;
      }
    }
    const item = state.get('item');
    itemNote.hidden = !item;
    fill(itemNote, ...(item ? [`Only item ${item}. `, h('a', { href: `#${hashFor('episodes', null, withoutKey(state, 'item'))}` }, 'show all')] : []));
  }

  function withoutKey(p, key) {
    const out = new URLSearchParams(p);
    out.delete(key);
    out.delete('page');
    return out;
  }

  /** The state the controls describe, in a fixed key order. */
  function fromControls(page) {
    const p = new URLSearchParams();
    for (const r of c.run.value.split(',').filter(Boolean)) p.append('run', r);
    for (const k of EP_KEYS) {
      if (k === 'run' || k === 'page') continue;
      if (k === 'item') {
        if (state.get('item')) p.set('item', state.get('item'));
        continue;
      }
      const v = (c[k].value || '').trim();
      if (v !== '') p.set(k, v);
    }
    if (page && page > 1) p.set('page', String(page));
    return p;
  }

  function commit({ page = 1, replace = false } = {}) {
    go(hashFor('episodes', null, fromControls(page)), { replace });
  }

  for (const k of ['run', 'env', 'success', 'iteration', 'version', 'sort', 'per_page']) c[k].addEventListener('change', () => commit());
  for (const k of ['task', 'min_reward', 'max_reward', 'min_rounds', 'max_rounds']) c[k].addEventListener('change', () => commit());
  let qTimer = null;
  c.q.addEventListener('input', () => {
    clearTimeout(qTimer);
    qTimer = setTimeout(() => commit({ replace: true }), SEARCH_DEBOUNCE_MS);
  });
  c.q.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') {
      e.preventDefault();
      clearTimeout(qTimer);
      commit({ replace: true });
    }
  });
  reset.addEventListener('click', () => {
    const p = new URLSearchParams();
    for (const r of state.getAll('run')) p.append('run', r);
    go(hashFor('episodes', null, p));
  });
  const page = () => Math.max(1, parseInt(state.get('page') || '1', 10) || 1);
  prev.addEventListener('click', () => page() > 1 && commit({ page: page() - 1 }));
  next.addEventListener('click', () => page() < pages && commit({ page: page() + 1 }));

  function renderRows(data) {
    const multi = state.getAll('run').length > 1;
    const hasIter = data.episodes.some((e) => e.iteration != null);
    const hasVer = data.episodes.some((e) => e.weight_version);
    const cols = ['Key', multi ? 'Run' : null, 'Env', 'Task', 'Sample', 'Success', 'Reward', 'Rounds', 'Turns', hasIter ? 'Iter' : null, hasVer ? 'Weights' : null, 'Finish', 'Policy'].filter(Boolean);
    fill(thead, h('tr', null, cols.map((x) => h('th', null, x))));
    const frag = document.createDocumentFragment();
    for (const e of data.episodes) {
      const open = e.has_trajectory !== false;
      frag.append(h('tr', { testid: 'episode-row', class: open ? 'clickable' : 'no-traj', data: { uid: e.uid, env: e.env, success: e.success == null ? '' : e.success ? '1' : '0', key: e.key } },
        td(open ? h('a', { href: `#${hashFor('episode', e.uid)}`, class: 'mono' }, e.key) : h('span', { class: 'mono', title: 'results only: no trajectory' }, e.key)),
        multi ? td(runTitle(runs, e.run), 'small') : null,
        td(e.env), td(e.task_id ?? '—', 'num'), td(e.sample ?? 0, 'num'), td(successMark(e.success), 'center'),
        td(fmt.num(e.reward), 'num'), td(e.rounds ?? '—', 'num'), td(e.turns ?? '—', 'num'),
        hasIter ? td(e.iteration ?? '—', 'num') : null, hasVer ? td(e.weight_version ?? '—', 'mono small') : null,
        td(e.finish ?? '—'), td(e.policy ?? '—'),
      ));
    }
    fill(tbody, frag);
  }

  tbody.addEventListener('click', (ev) => {
    if (ev.target.closest('a')) return;
    const tr = ev.target.closest('tr[data-uid]');
    if (tr && tr.classList.contains('clickable')) go(hashFor('episode', tr.dataset.uid));
  });

  const load = loader(async () => {
    const all = await getRuns().catch(() => ({ runs: [] }));
    runs = all.runs || [];
    if (!state.getAll('run').length) {
      const first = runs.find((r) => r.episodes > 0 && r.has_trajectories !== false) || runs.find((r) => r.episodes > 0);
      if (!first) return { noRuns: true };
      state.set('run', first.id);
      setHashQuietly(hashFor('episodes', null, state));
    }
    const q = new URLSearchParams();
    for (const k of EP_KEYS) for (const v of state.getAll(k)) q.append(k, v);
    return api('/api/episodes', q);
  }, (data) => {
    if (data.noRuns) {
      syncControls();
      tbody.replaceChildren();
      totalEl.textContent = '0 episodes';
      totalEl.dataset.total = '0';
      empty.hidden = false;
      empty.textContent = live.indexing ? 'Indexing… episodes appear as they are read.' : 'No run has episodes.';
      return;
    }
    lastFacets = data.facets || lastFacets;
    syncControls();
    pages = Math.max(1, Math.ceil(data.total / (data.per_page || 50)));
    totalEl.textContent = `${data.total.toLocaleString('en-US')} episode${data.total === 1 ? '' : 's'}`;
    totalEl.dataset.total = String(data.total);
    msEl.textContent = data.ms != null ? `${fmt.num(data.ms, 1)} ms` : '';
    pageInfo.textContent = `page ${data.page} of ${pages}`;
    pageInfo.dataset.page = String(data.page);
    pageInfo.dataset.pages = String(pages);
    prev.disabled = data.page <= 1;
    next.disabled = data.page >= pages;
    renderRows(data);
    empty.hidden = data.episodes.length > 0;
    empty.textContent = data.total > 0 ? 'No episodes on this page.' : 'No episodes match these filters.';
  }, errors);

  syncControls();
  load();
  remembered.episodes = location.hash.slice(1);
  document.title = 'Episodes · agentgym view';
  return {
    update(p) {
      state = new URLSearchParams(p);
      remembered.episodes = location.hash.slice(1);
      syncControls();
      load();
    },
    refresh: () => load({ quiet: true }),
  };
};

// --- the replay of one episode ---------------------------------------------------------------------------
const KNOWN_TRAJ = new Set(['item_id', 'conversations', 'reward', 'success', 'env', 'task_id', 'sample', 'iteration',
  'seed', 'rounds', 'finish', 'policy', 'tokenizer', 'max_steps', 'step_rewards', 'input_ids', 'loss_mask', 'logprobs',
  'weight_version', 'weight_versions', 'timing', 'extra']);

function tokenView(toks) {
  const box = h('div', { class: 'tokens', testid: 'tokens' });
  const frag = document.createDocumentFragment();
  let sum = 0;
  let n = 0;
  for (const tk of toks) {
    const lp = typeof tk.lp === 'number' ? tk.lp : null;
    const span = h('span', { class: 'tok', testid: 'token' });
    let s = tk.t == null ? '' : String(tk.t);
    if (s === '') s = '∅';
    span.textContent = s.replace(/\n/g, '↵\n');
    if (/^#\d+$/.test(s)) span.classList.add('tok-id');
    if (lp != null) {
      const p = Math.exp(lp);
      span.style.backgroundColor = `rgba(226, 76, 44, ${(0.06 + 0.74 * (1 - p)).toFixed(3)})`;
      span.dataset.lp = String(lp);
      span.title = `${JSON.stringify(tk.t)}  p=${p.toFixed(3)}  logprob=${lp.toFixed(3)}`;
      sum += p;
      n += 1;
    } else {
      span.classList.add('tok-none');
    }
    frag.append(span);
  }
  box.append(frag);
  const mean = n ? sum / n : null;
  return h('div', { class: 'token-block' },
    h('div', { class: 'token-head small muted' }, `${toks.length} tokens`, mean != null ? ` · mean p ${mean.toFixed(2)}` : '', ' · shade: redder = less likely (p = exp(logprob))'),
    box);
}

function textBlock(label, value, cls, testid) {
  return h('div', { class: `blk ${cls}` }, h('div', { class: 'blk-k' }, label), h('pre', { class: 'txt', testid }, value));
}

function stepCard(st, n) {
  const i = st.index;
  const badges = h('span', { class: 'step-badges' },
    st.reward != null ? badge('reward', fmt.num(st.reward)) : null,
    st.cumulative != null ? badge('Σ', fmt.num(st.cumulative), 'cum') : null,
    st.score != null ? badge('score', fmt.num(st.score), 'score') : null,
    st.n_tokens != null ? badge('', `${st.n_tokens} tok`) : null,
    st.done ? badge('', 'done', 'done') : null);
  const head = h('div', { class: 'step-head' }, h('span', { class: 'step-no' }, i === 0 ? 'Step 0 · start' : `Step ${i}`), h('span', { class: 'muted small' }, ` of ${n - 1}`), badges);
  const card = h('li', { class: 'step', testid: 'step', data: { index: i } }, head);
  if (st.thought) card.append(textBlock('Thought', st.thought, 'thought', 'step-thought'));
  if (st.action != null) card.append(textBlock(st.thought || i > 0 ? 'Action' : 'Agent', st.action, 'action', 'step-action'));
  const tokSlot = h('div', { class: 'tok-slot' });
  card.append(tokSlot);
  if (st.observation != null) card.append(textBlock(i === 0 ? 'Observation (start)' : 'Observation', st.observation, 'obs', 'step-observation'));
  else if (st.done) card.append(h('div', { class: 'blk end muted small' }, 'The episode ended on this action.'));
  return { card, tokSlot, built: false };
}

/** The replay of one /api/episodes/{uid} answer: opening, then steps 0..n-1; the current step is
 *  highlighted and, unless `all`, the steps after it are hidden. */
function Replay(data, { step = 0, all = false, tokens = true, compact = false, testid = 'replay', onChange = null } = {}) {
  const steps = data.steps || [];
  const n = steps.length;
  let cur = clamp(step | 0, 0, Math.max(0, n - 1));
  let showAll = all;
  let showTokens = tokens;
  const root = h('div', { class: `replay${compact ? ' compact' : ''}`, testid });
  const opening = data.opening || [];
  if (opening.length) {
    root.append(h('details', { class: 'opening', testid: 'opening', open: !compact },
      h('summary', null, 'Instruction'),
      opening.map((t) => h('div', { class: `turn role-${ROLES.has(t.role) ? t.role : 'other'}` }, h('div', { class: 'blk-k' }, t.role), h('pre', { class: 'txt' }, t.text)))));
  }
  const cards = steps.map((st) => stepCard(st, n));
  const list = h('ol', { class: 'steps', testid: 'steps' }, cards.map((x) => x.card));
  root.append(list);
  if (!n) root.append(h('div', { class: 'empty', testid: 'no-steps' }, data.error || 'No steps: this episode has no trajectory.'));
  cards.forEach((x, i) => x.card.addEventListener('click', (ev) => {
    if (ev.target.closest('a, button, summary') || (window.getSelection && String(window.getSelection()))) return;
    if (i !== cur) api_.setStep(i);
  }));

  function paint(scroll) {
    cards.forEach((x, i) => {
      const isCur = i === cur;
      x.card.classList.toggle('current', isCur);
      if (isCur) {
        x.card.dataset.current = 'true';
        x.card.setAttribute('aria-current', 'step');
      } else {
        delete x.card.dataset.current;
        x.card.removeAttribute('aria-current');
      }
      x.card.classList.toggle('future', i > cur);
      const visible = showAll || i <= cur;
      x.card.hidden = !visible;
      const toks = steps[i].token_logprobs;
      if (visible && showTokens && toks && toks.length && !x.built) {
        x.tokSlot.append(tokenView(toks));
        x.built = true;
      }
      x.tokSlot.hidden = !showTokens;
    });
    root.dataset.step = String(cur);
    if (scroll && cards[cur]) cards[cur].card.scrollIntoView({ block: 'nearest', behavior: 'auto' });
  }

  const api_ = {
    el: root,
    n,
    hasTokens: steps.some((s) => s.token_logprobs && s.token_logprobs.length),
    get step() {
      return cur;
    },
    setStep(k, { scroll = true, force = false } = {}) {
      const nk = clamp(k, 0, Math.max(0, n - 1));
      if (nk === cur && root.dataset.step === String(nk) && !force) return;
      cur = nk;
      paint(scroll);
      if (onChange) onChange(cur);
    },
    setAll(b) {
      showAll = !!b;
      paint(false);
    },
    setTokens(b) {
      showTokens = !!b;
      paint(false);
    },
  };
  paint(false);
  return api_;
}

/** Step controls: first/prev/indicator/next/last, "all steps", "logprobs". */
function stepControls({ onMove, onAll, onTokens, all, tokens, hasTokens }) {
  const b = (label, testid, title, fn) => h('button', { class: 'btn', type: 'button', testid, title, onclick: fn }, label);
  const indicator = h('span', { class: 'step-indicator', testid: 'step-indicator', 'aria-live': 'polite' });
  const allBox = h('input', { type: 'checkbox', testid: 'show-all', checked: all });
  allBox.addEventListener('change', () => onAll(allBox.checked));
  const tokBox = h('input', { type: 'checkbox', testid: 'show-tokens', checked: tokens });
  tokBox.addEventListener('change', () => onTokens(tokBox.checked));
  const el = h('div', { class: 'step-controls' },
    b('« First', 'step-first', 'first step (Home)', () => onMove('first')),
    b('‹ Prev', 'step-prev', 'previous step (← or k)', () => onMove('prev')),
    indicator,
    b('Next ›', 'step-next', 'next step (→ or j)', () => onMove('next')),
    b('Last »', 'step-last', 'last step (End)', () => onMove('last')),
    h('label', { class: 'check' }, allBox, ' all steps'),
    hasTokens ? h('label', { class: 'check' }, tokBox, ' logprobs') : null,
    h('span', { class: 'muted small keys' }, '←/→ or k/j, Home/End'));
  return {
    el,
    show(step, n) {
      indicator.textContent = n ? `step ${step} / ${n - 1}` : 'no steps';
      indicator.dataset.step = String(step);
      indicator.dataset.steps = String(n);
    },
    setAll(v) {
      allBox.checked = v;
    },
  };
}

function stepKey(ev) {
  switch (ev.key) {
    case 'ArrowRight':
    case 'j':
      return 'next';
    case 'ArrowLeft':
    case 'k':
      return 'prev';
    case 'Home':
      return 'first';
    case 'End':
      return 'last';
    case 'a':
      return 'all';
    default:
      return null;
  }
}

function moveTo(what, cur, n) {
  return what === 'next' ? cur + 1 : what === 'prev' ? cur - 1 : what === 'first' ? 0 : what === 'last' ? n - 1 : cur;
}

function infoPanel(data, spark) {
  const t = data.trajectory || {};
  const ep = data.episode || {};
  const rows = [];
  const add = (k, v) => {
    if (v == null || v === '' || (Array.isArray(v) && !v.length)) return;
    rows.push(h('tr', null, h('th', null, k), h('td', { class: 'mono' }, typeof v === 'string' ? v : fmt.json(v))));
  };
  add('finish', t.finish ?? ep.finish);
  add('max_steps', t.max_steps);
  add('seed', t.seed);
  add('policy', t.policy ?? ep.policy);
  add('tokenizer', t.tokenizer);
  const wv = t.weight_versions ?? t.weight_version ?? ep.weight_version;
  add('weight versions', Array.isArray(wv) ? wv.join(', ') : wv);
  add('iteration', t.iteration ?? ep.iteration);
  const timing = t.timing && typeof t.timing === 'object' ? t.timing : null;
  const timingRows = timing
    ? Object.entries(timing).map(([k, v]) => h('tr', null, h('th', null, k), h('td', { class: 'mono' },
      typeof v === 'number' ? (k === 'start' || k === 'end' ? `${fmt.time(v)} (${v})` : /_s$/.test(k) ? fmt.secs(v) : String(v)) : fmt.json(v))))
    : [];
  const extra = {};
  for (const [k, v] of Object.entries(t)) if (!KNOWN_TRAJ.has(k)) extra[k] = v;
  if (t.extra && typeof t.extra === 'object') Object.assign(extra, t.extra);
  const extraRows = Object.entries(extra).map(([k, v]) => h('tr', null, h('th', null, k), h('td', { class: 'mono' }, fmt.json(v))));
  const tk = data.tokens;
  return h('aside', { class: 'info', testid: 'info-panel' },
    h('section', null, h('h3', null, 'Reward'), spark.el, h('div', { class: 'small cur-reward', testid: 'current-reward' })),
    tk ? h('section', { testid: 'token-counts' }, h('h3', null, 'Tokens'),
      h('table', { class: 'kv' }, h('tbody', null,
        h('tr', null, h('th', null, 'total'), h('td', null, String(tk.total ?? '—'))),
        h('tr', null, h('th', null, 'agent (generated)'), h('td', null, String(tk.agent ?? '—'))),
        h('tr', null, h('th', null, 'decoded'), h('td', null, tk.decoded ? 'yes' : 'no (token ids)'))))) : null,
    h('section', null, h('h3', null, 'Info'), h('table', { class: 'kv', testid: 'info-fields' }, h('tbody', null, rows))),
    timingRows.length ? h('section', null, h('h3', null, 'Timing'), h('table', { class: 'kv' }, h('tbody', null, timingRows))) : null,
    extraRows.length ? h('section', null, h('h3', null, 'Extra'), h('table', { class: 'kv', testid: 'info-extra' }, h('tbody', null, extraRows))) : null,
  );
}

function episodeBadges(ep) {
  return h('div', { class: 'meta', testid: 'episode-meta' },
    badge('env', ep.env), ep.task_id != null ? badge('task', String(ep.task_id)) : null,
    ep.sample ? badge('sample', String(ep.sample)) : null,
    h('span', { class: `badge ${ep.success ? 'good' : ep.success === false ? 'bad' : ''}`, testid: 'episode-success' }, ep.success == null ? 'outcome unknown' : ep.success ? '✓ success' : '✗ failure'),
    badge('reward', fmt.num(ep.reward)), badge('rounds', String(ep.rounds ?? '—')), badge('turns', String(ep.turns ?? '—')),
    ep.finish ? badge('finish', ep.finish) : null, ep.policy ? badge('policy', ep.policy) : null,
    ep.iteration != null ? badge('iteration', String(ep.iteration)) : null,
    ep.weight_version ? badge('weights', ep.weight_version) : null);
}

VIEWS.episode = function EpisodeView(uid, params) {
  const errors = errorSlot();
  const body = h('div', { class: 'episode-body' });
  viewRoot('episode', errors.el, body);
  let replay = null;
  let controls = null;
  let spark = null;
  let curReward = null;
  let all = params.get('all') === '1';
  let tokens = params.get('tokens') !== '0';
  let wantStep = parseInt(params.get('step') || '0', 10) || 0;
  let first = true;

  function saveHash() {
    const p = {};
    if (replay && replay.step) p.step = replay.step;
    if (all) p.all = '1';
    if (!tokens) p.tokens = '0';
    setHashQuietly(hashFor('episode', uid, p));
  }

  function onStep(k, data) {
    controls.show(k, replay.n);
    spark.mark(k);
    const st = (data.steps || [])[k];
    fill(curReward, st ? `step ${k}: reward ${fmt.num(st.reward)} · cumulative ${fmt.num(st.cumulative)}${st.score != null ? ` · score ${fmt.num(st.score)}` : ''}` : '');
    saveHash();
  }

  const load = loader(() => api(`/api/episodes/${encodeURIComponent(uid)}`), (data) => {
    const keep = replay ? replay.step : wantStep;
    const ep = data.episode || {};
    document.title = `${ep.key || uid} · agentgym view`;
    spark = rewardSpark(data.steps || []);
    replay = Replay(data, { step: keep, all, tokens, onChange: (k) => onStep(k, data) });
    controls = stepControls({
      all, tokens, hasTokens: replay.hasTokens,
      onMove: (what) => replay.setStep(moveTo(what, replay.step, replay.n)),
      onAll: (v) => {
        all = v;
        replay.setAll(v);
        saveHash();
      },
      onTokens: (v) => {
        tokens = v;
        replay.setTokens(v);
        saveHash();
      },
    });
    curReward = h('span');
    const back = remembered.episodes || hashFor('episodes', null, { run: ep.run });
    const scrollY = window.scrollY;
    const panel = infoPanel(data, spark);
    panel.querySelector('[data-testid="current-reward"]').append(curReward);
    fill(body, 
      h('div', { class: 'crumbs' }, h('a', { href: '#/runs' }, 'Runs'), ' › ',
        h('a', { href: `#${hashFor('run', ep.run)}` }, ep.run), ' › ',
        h('a', { href: `#${back}`, testid: 'back-to-episodes' }, 'episodes'), ' › '),
      h('h1', { class: 'mono', testid: 'episode-title' }, ep.key || `episode ${uid}`),
      episodeBadges(ep),
      h('div', { class: 'sticky-controls' }, controls.el),
      h('div', { class: 'episode-grid' }, replay.el, panel),
    );
    onStep(replay.step, data);
    if (first && replay.step > 0) replay.setStep(replay.step, { force: true });
    else window.scrollTo(0, scrollY);
    first = false;
  }, errors);
  load();
  return {
    update(p) {
      all = p.get('all') === '1';
      tokens = p.get('tokens') !== '0';
      if (replay) {
        controls.setAll(all);
        replay.setAll(all);
        replay.setTokens(tokens);
        replay.setStep(parseInt(p.get('step') || '0', 10) || 0);
      }
    },
    refresh: () => load({ quiet: true }),
    onKey(ev) {
      const what = stepKey(ev);
      if (!what || !replay) return false;
      if (what === 'all') {
        all = !all;
        controls.setAll(all);
        replay.setAll(all);
        saveHash();
      } else replay.setStep(moveTo(what, replay.step, replay.n));
      return true;
    },
  };
};

// --- Compare --------------------------------------------------------------------------------------------------
VIEWS.compare = function CompareView(_, params) {
  const errors = errorSlot();
  let state = new URLSearchParams(params);
  let runs = [];
  let lastTasks = [];
  const selA = h('select', { testid: 'compare-a', 'aria-label': 'run A' });
  const selB = h('select', { testid: 'compare-b', 'aria-label': 'run B' });
  const swap = h('button', { class: 'btn', type: 'button', testid: 'compare-swap', title: 'swap A and B' }, '⇄');
  const flipSel = h('select', { testid: 'compare-flip', 'aria-label': 'which tasks' },
    [['changed', 'changed (gained or lost)'], ['gained', 'gained'], ['lost', 'lost'], ['all', 'all tasks']].map(([v, t]) => h('option', { value: v }, t)));
  const envSel = h('select', { testid: 'compare-env', 'aria-label': 'env' });
  const head = h('div', { class: 'toolbar compare-pick' }, h('h1', null, 'Compare'), h('span', { class: 'ab-tag' }, 'A'), selA, swap, h('span', { class: 'ab-tag b' }, 'B'), selB);
  const summary = h('div', { class: 'compare-summary' });
  const tasksBox = h('section', { class: 'card tasks-card' });
  const sideBox = h('section', { class: 'card side', testid: 'side-by-side', hidden: true });
  // With a task open, the task list narrows to a column beside the two replays.
  const main = h('div', { class: 'compare-main' }, tasksBox, sideBox);
  viewRoot('compare', head, errors.el, summary, main);
  let sides = null; // {a: Replay|null, b: Replay|null, controls, step, all}

  function fromState() {
    return { a: state.get('a') || '', b: state.get('b') || '', flip: state.get('flip') || 'changed', env: state.get('env') || '', task: state.get('task') || '' };
  }
  function commit(changes, { replace = false } = {}) {
    const s = { ...fromState(), ...changes };
    const p = toParams({ a: s.a, b: s.b, flip: s.flip === 'changed' ? '' : s.flip, env: s.env, task: s.task });
    go(hashFor('compare', null, p), { replace });
  }
  selA.addEventListener('change', () => commit({ a: selA.value, task: '' }));
  selB.addEventListener('change', () => commit({ b: selB.value, task: '' }));
  swap.addEventListener('click', () => {
    const s = fromState();
    commit({ a: s.b, b: s.a });
  });
  flipSel.addEventListener('change', () => commit({ flip: flipSel.value }));
  envSel.addEventListener('change', () => commit({ env: envSel.value }));

  function fillRunSelect(sel, value, label) {
    fill(sel, h('option', { value: '' }, label), ...runs.map((r) => h('option', { value: r.id }, runLabel(runs, r))));
    sel.value = value;
  }

  function side(x) {
    if (!x) return '—';
    return h('span', { class: 'side-cell' }, successMark(solved(x)), ' ', fmt.num(x.reward), x.rounds != null ? h('span', { class: 'muted small' }, ` · ${fmt.num(x.rounds, 1)} r`) : null);
  }

  function renderSummary(data) {
    const perEnv = table('per-env', 'compare-per-env', ['Env', 'A episodes', 'B episodes', 'A success', 'B success', 'Δ success', 'A reward', 'B reward', 'Δ reward'],
      (data.per_env || []).map((r) => h('tr', { data: { env: r.env } },
        td(r.env), td(r.a ? r.a.episodes : '—', 'num'), td(r.b ? r.b.episodes : '—', 'num'),
        td(fmt.pct(r.a && r.a.success), 'num'), td(fmt.pct(r.b && r.b.success), 'num'),
        td(fmt.delta(r.delta_success, true), `num ${r.delta_success > 0 ? 'pos' : r.delta_success < 0 ? 'neg' : ''}`),
        td(fmt.num(r.a && r.a.reward), 'num'), td(fmt.num(r.b && r.b.reward), 'num'),
        td(fmt.delta(r.delta_reward), `num ${r.delta_reward > 0 ? 'pos' : r.delta_reward < 0 ? 'neg' : ''}`))));
    const counts = data.counts || {};
    const label = { gained: 'gained', lost: 'lost', both: 'both solve', neither: 'neither solves', only_a: 'only in A', only_b: 'only in B' };
    const help = { gained: 'solved in B, not in A', lost: 'solved in A, not in B', both: 'solved in both', neither: 'solved in neither', only_a: 'task played only in A', only_b: 'task played only in B' };
    const chips = h('div', { class: 'counts' }, Object.keys(label).map((k) => {
      const clickable = k === 'gained' || k === 'lost';
      return h(clickable ? 'button' : 'span', { class: `count count-${k}${clickable ? ' btn' : ''}`, type: clickable ? 'button' : null, testid: `count-${k}`, data: { count: counts[k] ?? 0 }, title: help[k],
        onclick: clickable ? () => commit({ flip: k }) : null },
      h('b', null, String(counts[k] ?? 0)), ' ', label[k]);
    }));
    fill(summary, h('section', { class: 'card' },
      h('div', { class: 'compare-titles' }, h('span', { class: 'ab-tag' }, 'A'), h('a', { href: `#${hashFor('run', data.a.id)}` }, runLabel(runs, data.a)),
        h('span', { class: 'muted' }, ' vs '), h('span', { class: 'ab-tag b' }, 'B'), h('a', { href: `#${hashFor('run', data.b.id)}` }, runLabel(runs, data.b))),
      chips, h('div', { class: 'scroll-x' }, perEnv),
      h('div', { class: 'muted small' }, 'A task counts as solved in a run when at least half its episodes succeed.')));
  }

  function renderTasks(data) {
    const s = fromState();
    const envs = [...new Set((data.per_env || []).map((r) => r.env))];
    fill(envSel, h('option', { value: '' }, 'any env'), ...envs.map((e) => h('option', { value: e }, e)));
    if (s.env && !envs.includes(s.env)) envSel.append(h('option', { value: s.env }, s.env));
    envSel.value = s.env;
    flipSel.value = s.flip;
    lastTasks = data.tasks || [];
    const rows = lastTasks.map((t) => h('tr', { testid: 'compare-task', class: `clickable${t.item_id === s.task ? ' selected' : ''}`, data: { item: t.item_id, flip: t.flip } },
      td(h('span', { class: 'mono' }, t.item_id)), td(t.env, 'col-wide'), td(t.task_id ?? '—', 'num col-wide'),
      td(side(t.a)), td(side(t.b)), td(h('span', { class: `flip flip-${t.flip}` }, t.flip))));
    const th = (label, cls) => h('th', cls ? { class: cls } : null, label);
    fill(tasksBox, 
      h('div', { class: 'toolbar' }, h('h2', null, 'Tasks'), h('span', { class: 'muted small', testid: 'compare-task-count' }, `${lastTasks.length} shown`), h('span', { class: 'spacer' }), flipSel, envSel),
      rows.length
        ? h('div', { class: 'scroll-x tasks-scroll' }, table('tasks', 'compare-tasks', [th('Item'), th('Env', 'col-wide'), th('Task', 'num col-wide'), th('A'), th('B'), th('Flip')], rows))
        : h('div', { class: 'empty', testid: 'compare-empty' }, 'No tasks match.'));
  }

  tasksBox.addEventListener('click', (ev) => {
    const tr = ev.target.closest('tr[data-item]');
    if (tr) commit({ task: tr.dataset.item });
  });

  async function openSide(itemId, { scroll = false, keepStep = false } = {}) {
    const task = lastTasks.find((t) => t.item_id === itemId);
    for (const tr of tasksBox.querySelectorAll('tr[data-item]')) tr.classList.toggle('selected', tr.dataset.item === itemId);
    main.classList.toggle('with-side', !!itemId);
    if (!itemId) {
      sideBox.hidden = true;
      sideBox.replaceChildren();
      sides = null;
      return;
    }
    if (!task) {
      sideBox.hidden = false;
      fill(sideBox, h('div', { class: 'muted' }, `Task ${itemId} is not in this list.`));
      return;
    }
    const step = keepStep && sides ? sides.step : 0;
    const all = sides ? sides.all : true;
    const fetchSide = (x) => (x && x.uid != null ? api(`/api/episodes/${encodeURIComponent(x.uid)}`) : Promise.resolve(null));
    const mine = (openSide.seq = (openSide.seq || 0) + 1);
    let da;
    let db;
    try {
      [da, db] = await Promise.all([fetchSide(task.a), fetchSide(task.b)]);
    } catch (err) {
      sideBox.hidden = false;
      fill(sideBox, errorBox(err));
      return;
    }
    if (mine !== openSide.seq) return;
    const s = { step, all, a: null, b: null };
    const make = (d, which) => (d ? Replay(d, { step, all, compact: true, testid: `replay-${which}` }) : null);
    s.a = make(da, 'a');
    s.b = make(db, 'b');
    const n = Math.max(s.a ? s.a.n : 0, s.b ? s.b.n : 0);
    const move = (k) => {
      s.step = clamp(k, 0, Math.max(0, n - 1));
      if (s.a) s.a.setStep(s.step, { scroll: false });
      if (s.b) s.b.setStep(s.step, { scroll: false });
      s.controls.show(s.step, n);
    };
    s.move = move;
    s.n = n;
    s.controls = stepControls({
      all, tokens: true, hasTokens: false,
      onMove: (what) => move(moveTo(what, s.step, n)),
      onAll: (v) => {
        s.all = v;
        if (s.a) s.a.setAll(v);
        if (s.b) s.b.setAll(v);
      },
      onTokens: () => {},
    });
    s.controls.show(step, n);
    const col = (which, x, d, r) => h('div', { class: 'side-col' },
      h('div', { class: 'side-head' }, h('span', { class: `ab-tag${which === 'b' ? ' b' : ''}` }, which.toUpperCase()),
        d ? h('a', { href: `#${hashFor('episode', d.episode.uid)}`, class: 'mono' }, d.episode.key) : h('span', { class: 'muted' }, task.item_id),
        x ? h('span', { class: 'small' }, ' ', successMark(solved(x)), ` reward ${fmt.num(x.reward)}`) : null),
      r ? r.el : h('div', { class: 'empty' }, x ? 'This run has no trajectory for the task (results only).' : 'Not played in this run.'));
    sideBox.hidden = false;
    fill(sideBox, 
      h('div', { class: 'toolbar' }, h('h2', null, `Side by side: ${task.item_id}`), h('span', { class: `flip flip-${task.flip}` }, task.flip), h('span', { class: 'spacer' }),
        h('button', { class: 'btn', type: 'button', testid: 'side-close', onclick: () => commit({ task: '' }) }, 'Close')),
      h('div', { class: 'sticky-controls' }, s.controls.el),
      h('div', { class: 'side-grid' }, col('a', task.a, da, s.a), col('b', task.b, db, s.b)));
    sides = s;
    if (scroll && sideBox.getBoundingClientRect().top < 50) window.scrollBy(0, sideBox.getBoundingClientRect().top - 60);
  }

  let shown = { key: null, task: null };
  const load = loader(async () => {
    const all = await getRuns().catch(() => ({ runs: [] }));
    runs = all.runs || [];
    const s = fromState();
    if (!s.a || !s.b) return { pick: true };
    const q = { a: s.a, b: s.b };
    if (s.flip !== 'all') q.flip = s.flip;
    if (s.env) q.env = s.env;
    return api('/api/compare', q);
  }, (data, { quiet }) => {
    const s = fromState();
    fillRunSelect(selA, s.a, 'choose run A…');
    fillRunSelect(selB, s.b, 'choose run B…');
    if (data.pick) {
      fill(summary, h('div', { class: 'empty' }, 'Choose two runs to compare: A is the baseline, B the candidate. Gained tasks are solved in B and not in A.'));
      tasksBox.replaceChildren();
      openSide('');
      return;
    }
    document.title = `${data.a.title} vs ${data.b.title} · agentgym view`;
    renderSummary(data);
    renderTasks(data);
    const key = `${s.a}|${s.b}`;
    const keepStep = quiet || shown.key === key;
    shown = { key, task: s.task };
    openSide(s.task, { keepStep });
  }, errors);

  load();
  remembered.compare = location.hash.slice(1);
  document.title = 'Compare · agentgym view';
  return {
    update(p) {
      const before = fromState();
      state = new URLSearchParams(p);
      remembered.compare = location.hash.slice(1);
      const now = fromState();
      if (before.a === now.a && before.b === now.b && before.flip === now.flip && before.env === now.env) {
        if (before.task !== now.task) openSide(now.task, { scroll: true });
        return;
      }
      load();
    },
    refresh: () => load({ quiet: true }),
    onKey(ev) {
      const what = stepKey(ev);
      if (!what || !sides) return false;
      if (what === 'all') {
        sides.all = !sides.all;
        sides.controls.setAll(sides.all);
        if (sides.a) sides.a.setAll(sides.all);
        if (sides.b) sides.b.setAll(sides.all);
      } else sides.move(moveTo(what, sides.step, sides.n));
      return true;
    },
  };
};

function solved(x) {
  return x == null || x.success == null ? null : x.success >= 0.5;
}

function NotFoundView() {
  viewRoot('notfound', h('div', { class: 'empty' }, 'No such page. ', h('a', { href: '#/runs' }, 'Go to the runs.')));
  return {};
}

// Nav links that remember where you were.
for (const a of document.querySelectorAll('[data-nav]')) {
  a.addEventListener('click', (ev) => {
    const which = a.dataset.nav;
    if (remembered[which] && parseHash().name !== which) {
      ev.preventDefault();
      go(remembered[which]);
    }
  });
}

window.addEventListener('hashchange', route);
renderLive();
connectEvents();
route();
