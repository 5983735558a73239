// Bearer token files and the loopback rule (the servers themselves: tests/node/test_node_security.py).

import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { isLoopback, NO_TOKEN, requireSafeBind, TokenFile, WRONG_TOKEN } from '../src/security.js';

test('token files: one per line, comments and blanks ignored, re-read when changed', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'agentgym-tokens-'));
  const path = join(dir, 'tokens');
  writeFileSync(path, '# ops\n  alpha  \r\n\nbeta\n');
  const tokens = new TokenFile(path);
  assert.equal(tokens.check(['Bearer alpha']), null);
  assert.equal(tokens.check(['bearer beta']), null);
  assert.equal(tokens.check(['Bearer # ops']), WRONG_TOKEN);
  assert.equal(tokens.check(['Bearer gamma']), WRONG_TOKEN);
  assert.equal(tokens.check([]), NO_TOKEN);
  assert.equal(tokens.check(['Basic YWxwaGE=']), NO_TOKEN);

  writeFileSync(join(dir, 'next'), 'gamma\n');
  const later = new Date(Date.now() + 5000);
  utimesSync(join(dir, 'next'), later, later);
  renameSync(join(dir, 'next'), path);
  assert.equal(tokens.check(['Bearer gamma']), WRONG_TOKEN); // looked at no more than once a second
  await new Promise((resolve) => setTimeout(resolve, 1050));
  assert.equal(tokens.check(['Bearer gamma']), null);
  assert.equal(tokens.check(['Bearer alpha']), WRONG_TOKEN);

  writeFileSync(path, '# nothing\n');
  assert.throws(() => new TokenFile(path), /has no tokens/);
  assert.throws(() => new TokenFile(join(dir, 'missing')), /cannot read the token file/);
  writeFileSync(path, 'two words\n');
  assert.throws(() => new TokenFile(path), /tokens:1: a token is printable ASCII without spaces/);
});

test('only loopback hosts may serve unprotected', () => {
  for (const host of ['localhost', '127.0.0.1', '127.1.2.3', '::1', '[::1]', '::ffff:127.0.0.1']) {
    assert.equal(isLoopback(host), true, host);
    requireSafeBind({ host });
  }
  for (const host of ['0.0.0.0', '::', '10.0.0.5', 'example.org', '128.0.0.1']) {
    assert.equal(isLoopback(host), false, host);
    assert.throws(() => requireSafeBind({ host }), /--insecure/);
    requireSafeBind({ host, insecure: true });
    requireSafeBind({ host, auth_token_file: 'tokens' });
    requireSafeBind({ host, tls_cert: 'server.pem' });
  }
});
