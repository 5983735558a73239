// Transport security, with the Python server's rules (core/security.py) and messages: TLS and mutual
// TLS credentials, bearer tokens checked before any handler runs, and no unprotected service on a
// non-loopback address.

import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { isIPv4 } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { getLogger } from './log.js';
import { HEALTH_SERVICE_NAME } from './proto.js';

const log = getLogger('agentgym.node.security');

export const NO_TOKEN = 'no bearer token: this server needs one (client flag --token-file)';
export const WRONG_TOKEN = 'bearer token not accepted';

// A token file is looked at (one stat) at most this often, so a check costs nothing on the hot path.
const RECHECK_MS = 1000;

function readPem(path, what) {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new Error(`cannot read ${what} ${path}: ${err.message}`);
  }
}

/** Plaintext, TLS, or mutual TLS (client certificates required and checked against tls_client_ca). */
export function serverCredentials(config) {
  if (!config.tls_cert) return grpc.ServerCredentials.createInsecure();
  const keyPair = { cert_chain: readPem(config.tls_cert, 'the TLS certificate'), private_key: readPem(config.tls_key, 'the TLS key') };
  const clientCa = config.tls_client_ca ? readPem(config.tls_client_ca, 'the client CA') : null;
  return grpc.ServerCredentials.createSsl(clientCa, [keyPair], clientCa !== null);
}

/** True for addresses only this machine can reach. Any other name might resolve to anything. */
export function isLoopback(host) {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h === '::1') return true;
  const v4 = h.startsWith('::ffff:') ? h.slice(7) : h;
  return isIPv4(v4) && v4.startsWith('127.');
}

/** Refuse to serve a non-loopback host with neither TLS nor a token, unless told `insecure`. */
export function requireSafeBind(config) {
  if (isLoopback(config.host) || config.tls_cert || config.auth_token_file || config.insecure) return;
  throw new Error(
    `refusing to listen on ${config.host || 'every interface'} without TLS or a bearer token: anyone who can ` +
      'reach it could use it. Give --tls-cert/--tls-key and/or --auth-token-file (envs/node/README.md), or pass ' +
      '--insecure to serve it open anyway (a trusted private network)',
  );
}

const digest = (token) => createHash('sha256').update(token).digest('hex');

/** The tokens of a token file's text: one per line, `#` comments and blank lines ignored, blanks
 * around a token trimmed. A token travels in gRPC metadata: printable ASCII, no spaces. */
export function parseTokens(text, where) {
  const tokens = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    if (!/^[\x21-\x7e]+$/.test(line)) {
      throw new Error(`${where}:${i + 1}: a token is printable ASCII without spaces (one token a line)`);
    }
    tokens.push(line);
  });
  return tokens;
}

/** Bearer tokens from a file (see parseTokens), re-read when the file's mtime (or size, or inode)
 * changes, so tokens rotate without a restart. A re-read that fails (the file missing for a moment, a
 * bad line) keeps the tokens loaded before; an emptied file accepts nothing. Only SHA-256 digests are
 * kept and a lookup compares digests, so no comparison's timing says anything about a token. */
export class TokenFile {
  constructor(path) {
    this.path = path;
    this.stamp = null;
    this.digests = new Set();
    this.checkedAt = 0;
    let stat;
    try {
      stat = statSync(path, { bigint: true });
    } catch (err) {
      throw new Error(`cannot read the token file ${path}: ${err.message}`);
    }
    this.#load(stat);
    if (this.digests.size === 0) {
      throw new Error(`the token file ${path} has no tokens (one per line; lines starting with # are comments)`);
    }
    if (stat.mode & 0o077n) log.warning('token file is readable by other users; chmod 600 it', { path });
    this.checkedAt = Date.now();
  }

  #load(stat) {
    let text;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (err) {
      throw new Error(`cannot read the token file ${this.path}: ${err.message}`);
    }
    const tokens = parseTokens(text, this.path);
    this.digests = new Set(tokens.map(digest));
    this.stamp = `${stat.mtimeNs}/${stat.size}/${stat.ino}`;
    return tokens.length;
  }

  #maybeReload() {
    const now = Date.now();
    if (now - this.checkedAt < RECHECK_MS) return;
    this.checkedAt = now;
    try {
      const stat = statSync(this.path, { bigint: true });
      if (`${stat.mtimeNs}/${stat.size}/${stat.ino}` === this.stamp) return;
      const n = this.#load(stat);
      // An empty file refuses every call, which is the safe reading of it; say so.
      (n ? log.info : log.warning)('token file reloaded', { path: this.path, tokens: n });
    } catch (err) {
      // A file replaced by a non-atomic editor can be missing for a moment: keep the last tokens.
      log.warning('token file unreadable; keeping the tokens loaded before', { path: this.path, error: err.message });
    }
  }

  /** null if `authorization` metadata values carry an accepted bearer token, else why not. */
  check(values) {
    this.#maybeReload();
    const header = values.find((v) => typeof v === 'string' && /^\s*bearer\s/i.test(v));
    const token = header?.trim().slice(6).trim();
    if (!token) return NO_TOKEN;
    return this.digests.has(digest(token)) ? null : WRONG_TOKEN;
  }
}

/** A grpc-js server interceptor that checks the bearer token of every call, except the health
 * service's, when its metadata arrives: a refused call's handler never runs, so a refused Session
 * stream never creates anything. `onRefused(path, message)` is told of each refusal. */
export function authInterceptor(tokens, onRefused = () => {}) {
  const open = `/${HEALTH_SERVICE_NAME}/`;
  return (method, call) => {
    if (method.path.startsWith(open)) return call;
    let refusal = null; // why, once refused
    let answered = false;
    let timer = null;
    // The status goes out once the client's first message (or its half-close) has arrived, not at
    // once: a client still writing that first message would otherwise see the write fail (INTERNAL
    // in grpcio) instead of this UNAUTHENTICATED. A client that sends nothing gets it after a moment.
    const answer = () => {
      if (answered) return;
      answered = true;
      clearTimeout(timer);
      call.sendStatus({ code: grpc.status.UNAUTHENTICATED, details: refusal, metadata: new grpc.Metadata() });
    };
    const listener = new grpc.ServerListenerBuilder()
      .withOnReceiveMetadata((metadata, next) => {
        const why = tokens.check(metadata.get('authorization'));
        if (why === null) return next(metadata);
        refusal = why;
        log.warning('call refused', { method: method.path, reason: why, peer: call.getPeer() });
        onRefused(method.path, why);
        timer = setTimeout(answer, 250);
        call.startRead();
      })
      // The handler never started: what the client sends is read and dropped.
      .withOnReceiveMessage((message, next) => {
        if (refusal === null) return next(message);
        answer();
        call.startRead();
      })
      .withOnReceiveHalfClose((next) => {
        if (refusal === null) return next();
        answer();
      })
      .withOnCancel(() => clearTimeout(timer))
      .build();
    return new grpc.ServerInterceptingCall(call, new grpc.ResponderBuilder().withStart((next) => next(listener)).build());
  };
}
