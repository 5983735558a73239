// Server configuration: the same settings and defaults as the Python server (server/config.py),
// from flags and, optionally, a JSON file of the same keys (flags win).

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

export const DEFAULTS = Object.freeze({
  host: '127.0.0.1',
  port: 50051,
  // Env names to host; null hosts every registered env that is not hidden.
  envs: null,
  // Live episodes across all envs; create beyond it answers RESOURCE_EXHAUSTED.
  max_episodes: 20_000,
  // Live episodes per env (an env may declare a lower limit of its own); null: the global limit.
  max_episodes_per_env: null,
  // An env call (reset, step, expert) longer than this ends its episode with DEADLINE_EXCEEDED.
  step_timeout_s: 30.0,
  // An episode with no request for this long is freed (DEADLINE_EXCEEDED). 0 disables.
  idle_timeout_s: 600.0,
  // Largest gRPC message either way.
  max_message_bytes: 4 * 1024 * 1024,
  // Largest action, in UTF-8 bytes.
  max_action_bytes: 64 * 1024,
  // On shutdown, live episodes get this long to finish before their streams are ended.
  grace_s: 10.0,
  // Worker threads kept started ahead of demand, per `worker` env.
  prewarm: 1,
  // A worker thread must start and load its env within this time.
  worker_start_timeout_s: 120.0,
  // Run an env differently from what its class declares: {"sokoban": "worker"}.
  execution: {},
  // Per-env settings passed to the env class's configure(): {"sokoban": {"key": "value"}}.
  env_settings: {},
  // TLS: the server's certificate chain and key (PEM files); both or neither.
  tls_cert: null,
  tls_key: null,
  // Mutual TLS: clients must present a certificate signed by this CA (PEM); needs tls_cert.
  tls_client_ca: null,
  // Bearer tokens (one per line, # comments), re-read when the file changes; null: no token asked.
  auth_token_file: null,
  // Serve a non-loopback host with neither TLS nor a token (refused otherwise).
  insecure: false,
  // Prometheus metrics over HTTP on this port, on the same host; 0 picks a free one; null: off.
  metrics_port: null,
});

const FLAGS = {
  config: { type: 'string' },
  host: { type: 'string' },
  port: { type: 'string' },
  envs: { type: 'string' },
  'max-episodes': { type: 'string' },
  'max-episodes-per-env': { type: 'string' },
  'step-timeout': { type: 'string' },
  'idle-timeout': { type: 'string' },
  'max-message-bytes': { type: 'string' },
  'max-action-bytes': { type: 'string' },
  grace: { type: 'string' },
  prewarm: { type: 'string' },
  'worker-start-timeout': { type: 'string' },
  execution: { type: 'string', multiple: true },
  'env-setting': { type: 'string', multiple: true },
  'log-level': { type: 'string' },
  'log-format': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'tls-client-ca': { type: 'string' },
  'auth-token-file': { type: 'string' },
  insecure: { type: 'boolean' },
  'metrics-port': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
};

// flag -> [config key, parser]
const NUMERIC = {
  port: ['port', 'int'],
  'max-episodes': ['max_episodes', 'int'],
  'max-episodes-per-env': ['max_episodes_per_env', 'int'],
  'step-timeout': ['step_timeout_s', 'float'],
  'idle-timeout': ['idle_timeout_s', 'float'],
  'max-message-bytes': ['max_message_bytes', 'int'],
  'max-action-bytes': ['max_action_bytes', 'int'],
  grace: ['grace_s', 'float'],
  prewarm: ['prewarm', 'int'],
  'worker-start-timeout': ['worker_start_timeout_s', 'float'],
  'metrics-port': ['metrics_port', 'int'],
};

// flag -> config key, for the file paths
const PATHS = {
  'tls-cert': 'tls_cert',
  'tls-key': 'tls_key',
  'tls-client-ca': 'tls_client_ca',
  'auth-token-file': 'auth_token_file',
};

export const USAGE = `usage: node envs/node/src/main.js [options]

Serve agentgym.v1.EnvService (envs written in JavaScript) over gRPC, with health checking and
server reflection. Defaults are the Python server's.

  --config FILE                  JSON file of settings (keys as in src/config.js); flags override it
  --host HOST                    address to bind (default ${DEFAULTS.host})
  --port PORT                    port (default ${DEFAULTS.port}; 0 picks a free one, logged at start)
  --envs A,B                     env names to host (default: every env that is not hidden)
  --max-episodes N               live episodes across all envs (default ${DEFAULTS.max_episodes})
  --max-episodes-per-env N       live episodes per env (default: the global limit)
  --step-timeout S               seconds per env call (default ${DEFAULTS.step_timeout_s})
  --idle-timeout S               free episodes idle this long, 0 = never (default ${DEFAULTS.idle_timeout_s})
  --max-message-bytes N          largest gRPC message (default ${DEFAULTS.max_message_bytes})
  --max-action-bytes N           largest action (default ${DEFAULTS.max_action_bytes})
  --grace S                      seconds live episodes get on shutdown (default ${DEFAULTS.grace_s})
  --prewarm N                    worker threads started ahead per worker env (default ${DEFAULTS.prewarm})
  --worker-start-timeout S       seconds a worker thread may take to start (default ${DEFAULTS.worker_start_timeout_s})
  --execution ENV=MODE           run ENV inline or in a worker thread per episode (repeatable)
  --env-setting ENV.KEY=VALUE    setting passed to an env's configure() (repeatable)
  --log-level LEVEL              debug, info, warning or error (default info)
  --log-format FORMAT            json or text (default json; env AGENTGYM_LOG_FORMAT)

Security and metrics (see envs/node/README.md):
  --tls-cert PEM --tls-key PEM   serve TLS with this certificate chain and key (clients: grpcs://)
  --tls-client-ca PEM            mutual TLS: require client certificates signed by this CA
  --auth-token-file FILE         require \`authorization: Bearer <token>\` metadata; one token per
                                 line, # comments; re-read when the file changes (no restart)
  --insecure                     allow a non-loopback --host with neither TLS nor a token
  --metrics-port N               Prometheus metrics on http://HOST:N/metrics (0 picks a free port)
`;

function number(flag, text, kind) {
  const value = kind === 'int' ? Number.parseInt(text, 10) : Number.parseFloat(text);
  if (!Number.isFinite(value) || (kind === 'int' && String(value) !== text.trim())) {
    throw new Error(`--${flag} expects ${kind === 'int' ? 'an integer' : 'a number'}, got ${JSON.stringify(text)}`);
  }
  return value;
}

/** Parse argv into {config, log: {level, format}, help}. Throws Error with a message for people. */
export function parseConfig(argv) {
  const { values } = parseArgs({ args: argv, options: FLAGS, strict: true, allowPositionals: false });
  const config = structuredClone({ ...DEFAULTS });
  if (values.config) {
    const doc = JSON.parse(readFileSync(values.config, 'utf8'));
    const unknown = Object.keys(doc).filter((k) => !(k in DEFAULTS));
    if (unknown.length) {
      throw new Error(`${values.config}: unknown server settings ${unknown.join(', ')}; known: ${Object.keys(DEFAULTS).join(', ')}`);
    }
    Object.assign(config, doc);
  }
  if (values.host !== undefined) config.host = values.host;
  for (const [flag, key] of Object.entries(PATHS)) {
    if (values[flag] !== undefined) config[key] = values[flag];
  }
  if (values.insecure) config.insecure = true;
  for (const [flag, [key, kind]] of Object.entries(NUMERIC)) {
    if (values[flag] !== undefined) config[key] = number(flag, values[flag], kind);
  }
  if (values.envs !== undefined) {
    config.envs = values.envs
      .split(',')
      .map((e) => e.trim())
      .filter(Boolean);
  }
  for (const item of values.execution ?? []) {
    const [env, mode] = splitOnce(item, '=');
    if (!env || !mode) throw new Error(`--execution ${JSON.stringify(item)}: expected ENV=MODE`);
    config.execution[env] = mode;
  }
  for (const item of values['env-setting'] ?? []) {
    const [key, value] = splitOnce(item, '=');
    const [env, name] = splitOnce(key ?? '', '.');
    if (!env || !name || value === undefined) throw new Error(`--env-setting ${JSON.stringify(item)}: expected ENV.KEY=VALUE`);
    (config.env_settings[env] ??= {})[name] = value;
  }
  validate(config);
  const log = { level: values['log-level'] ?? 'info', format: values['log-format'] };
  if (log.format !== undefined && !['json', 'text'].includes(log.format)) {
    throw new Error(`--log-format must be json or text, got ${JSON.stringify(log.format)}`);
  }
  return { config, log, help: Boolean(values.help) };
}

function splitOnce(text, sep) {
  const i = text.indexOf(sep);
  return i < 0 ? [text, undefined] : [text.slice(0, i), text.slice(i + sep.length)];
}

/** The same checks, with the same messages, as ServerConfig.validate. */
export function validate(c) {
  const checks = [
    [(c.port >= 1 && c.port <= 65535) || c.port === 0, `port must be 0-65535, got ${c.port}`],
    [c.max_episodes >= 1, 'max_episodes must be at least 1'],
    [c.max_episodes_per_env === null || c.max_episodes_per_env >= 1, 'max_episodes_per_env must be at least 1'],
    [c.step_timeout_s > 0, 'step_timeout_s must be positive'],
    [c.idle_timeout_s >= 0, 'idle_timeout_s must be >= 0 (0 disables it)'],
    [c.max_action_bytes >= 1, 'max_action_bytes must be at least 1'],
    [c.max_message_bytes >= 1024, 'max_message_bytes must be at least 1024'],
    [c.grace_s >= 0, 'grace_s must be >= 0'],
    [c.prewarm >= 0, 'prewarm must be >= 0'],
    [c.worker_start_timeout_s > 0, 'worker_start_timeout_s must be positive'],
    [
      c.metrics_port === null || (Number.isInteger(c.metrics_port) && c.metrics_port >= 0 && c.metrics_port <= 65535),
      `metrics_port must be 0-65535 (0 picks a free one), got ${c.metrics_port}`,
    ],
    [c.metrics_port === null || c.metrics_port === 0 || c.metrics_port !== c.port, `metrics_port must differ from port (${c.port})`],
    [Boolean(c.tls_cert) === Boolean(c.tls_key), 'tls_cert and tls_key go together: give both --tls-cert and --tls-key, or neither'],
    [!c.tls_client_ca || Boolean(c.tls_cert), 'tls_client_ca (mutual TLS) needs the server side of TLS too: give --tls-cert and --tls-key'],
    [typeof c.insecure === 'boolean', `insecure must be true or false, got ${JSON.stringify(c.insecure)}`],
    [
      Object.values(c.execution).every((v) => v === 'inline' || v === 'worker'),
      `execution overrides must be inline or worker: ${JSON.stringify(c.execution)}`,
    ],
  ];
  for (const [ok, message] of checks) if (!ok) throw new Error(message);
}

export function address(host, port) {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
