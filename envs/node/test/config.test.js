// Flags and defaults of the server.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULTS, parseConfig } from '../src/config.js';

test('no flags give the defaults', () => {
  const { config, help } = parseConfig([]);
  assert.deepEqual(config, { ...DEFAULTS, execution: {}, env_settings: {} });
  assert.equal(help, false);
});

test('flags set every limit', () => {
  const { config, log } = parseConfig([
    '--host=0.0.0.0', '--port', '0', '--envs', 'sokoban, conformance', '--max-episodes', '10',
    '--max-episodes-per-env', '3', '--step-timeout', '1.5', '--idle-timeout', '0', '--max-message-bytes', '65536',
    '--max-action-bytes', '100', '--grace', '0', '--prewarm', '2', '--execution', 'sokoban=worker',
    '--env-setting', 'sokoban.size=big', '--log-level', 'debug', '--log-format', 'text',
  ]);
  assert.equal(config.host, '0.0.0.0');
  assert.equal(config.port, 0);
  assert.deepEqual(config.envs, ['sokoban', 'conformance']);
  assert.equal(config.max_episodes, 10);
  assert.equal(config.max_episodes_per_env, 3);
  assert.equal(config.step_timeout_s, 1.5);
  assert.equal(config.idle_timeout_s, 0);
  assert.equal(config.max_message_bytes, 65536);
  assert.equal(config.max_action_bytes, 100);
  assert.equal(config.grace_s, 0);
  assert.equal(config.prewarm, 2);
  assert.deepEqual(config.execution, { sokoban: 'worker' });
  assert.deepEqual(config.env_settings, { sokoban: { size: 'big' } });
  assert.deepEqual(log, { level: 'debug', format: 'text' });
});

test('bad values are refused with a message', () => {
  assert.throws(() => parseConfig(['--port', 'x']), /--port expects an integer/);
  assert.throws(() => parseConfig(['--port', '70000']), /port must be 0-65535/);
  assert.throws(() => parseConfig(['--step-timeout', '0']), /step_timeout_s must be positive/);
  assert.throws(() => parseConfig(['--execution', 'sokoban=process']), /inline or worker/);
  assert.throws(() => parseConfig(['--execution', 'sokoban']), /ENV=MODE/);
  assert.throws(() => parseConfig(['--env-setting', 'sokoban=1']), /ENV.KEY=VALUE/);
  assert.throws(() => parseConfig(['--no-such-flag']), /Unknown option/);
});

test('security and metrics flags', () => {
  const { config } = parseConfig([
    '--tls-cert', 'server.pem', '--tls-key', 'server.key', '--tls-client-ca', 'ca.pem',
    '--auth-token-file', 'tokens', '--insecure', '--metrics-port', '9100',
  ]);
  assert.equal(config.tls_cert, 'server.pem');
  assert.equal(config.tls_key, 'server.key');
  assert.equal(config.tls_client_ca, 'ca.pem');
  assert.equal(config.auth_token_file, 'tokens');
  assert.equal(config.insecure, true);
  assert.equal(config.metrics_port, 9100);
  assert.throws(() => parseConfig(['--tls-cert', 'server.pem']), /give both --tls-cert and --tls-key/);
  assert.throws(() => parseConfig(['--tls-client-ca', 'ca.pem']), /mutual TLS/);
  assert.throws(() => parseConfig(['--metrics-port', '70000']), /metrics_port must be 0-65535/);
  assert.throws(() => parseConfig(['--port', '9100', '--metrics-port', '9100']), /must differ from port/);
});
