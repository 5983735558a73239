// Structured logs: one JSON object per line on stderr, in the same shape as the Python server's
// (ts, level, logger, event, then the event's fields), so one tool reads both.

const LEVELS = { debug: 10, info: 20, warning: 30, error: 40 };

const settings = { level: LEVELS.info, format: process.env.AGENTGYM_LOG_FORMAT === 'text' ? 'text' : 'json' };

export function configureLogging({ level = 'info', format } = {}) {
  if (!(level in LEVELS)) throw new Error(`log level must be one of ${Object.keys(LEVELS).join(', ')}`);
  settings.level = LEVELS[level];
  if (format) settings.format = format;
}

function emit(level, logger, event, fields) {
  if (LEVELS[level] < settings.level) return;
  const now = new Date();
  if (settings.format === 'text') {
    const extras = Object.entries(fields)
      .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
      .join(' ');
    process.stderr.write(`${now.toTimeString().slice(0, 8)} ${level.toUpperCase().padEnd(7)} ${event} ${extras}`.trimEnd() + '\n');
    return;
  }
  const doc = { ts: now.toISOString(), level, logger, event };
  for (const [k, v] of Object.entries(fields)) doc[k] = typeof v === 'bigint' ? v.toString() : v;
  process.stderr.write(JSON.stringify(doc) + '\n');
}

/** A named logger: `log.info("episode ended", {episode, env, ...})`. */
export function getLogger(name) {
  return {
    debug: (event, fields = {}) => emit('debug', name, event, fields),
    info: (event, fields = {}) => emit('info', name, event, fields),
    warning: (event, fields = {}) => emit('warning', name, event, fields),
    error: (event, fields = {}) => emit('error', name, event, fields),
  };
}
