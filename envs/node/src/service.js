// The EnvService implementation: hosted envs, capacity, live sessions, idle sweeping, draining.

import { readFileSync } from 'node:fs';
import * as registry from './envs/registry.js';
import { getLogger } from './log.js';
import { Metrics, SHARED_POOL } from './metrics.js';
import { closeSharedPool, onThreadLost } from './pool.js';
import { Code } from './proto.js';
import { InlineRunner, WarmWorkers } from './runners.js';
import { Session } from './session.js';

const log = getLogger('agentgym.node.service');

const VERSION = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version;
export const IMPLEMENTATION = `agentgym-node ${VERSION} (node ${process.versions.node})`;

/** Counts live episodes; refuses at once beyond the global or the per-env limit. */
export class Capacity {
  constructor(total, perEnv) {
    this.total = total;
    this.perEnv = perEnv; // Map name -> limit
    this.live = 0;
    this.livePerEnv = new Map([...perEnv.keys()].map((n) => [n, 0]));
  }

  /** Take a slot, or return why not: {reason (the limit's setting), message}. */
  acquire(env) {
    if (this.live >= this.total) {
      return {
        reason: 'max_episodes',
        message:
          `server at capacity: ${this.live} of ${this.total} episodes live (max_episodes); ` +
          'close finished episodes, retry later, or add a server',
      };
    }
    const live = this.livePerEnv.get(env);
    const limit = this.perEnv.get(env);
    if (live >= limit) {
      return {
        reason: 'max_episodes_per_env',
        message: `env '${env}' at capacity: ${live} of ${limit} episodes live; close finished episodes, retry later, or add a server`,
      };
    }
    this.live++;
    this.livePerEnv.set(env, live + 1);
    return null;
  }

  release(env) {
    this.live--;
    this.livePerEnv.set(env, this.livePerEnv.get(env) - 1);
  }
}

/** An env class as this server hosts it: its spec and how its episodes are run. */
class HostedEnv {
  constructor(cls, service) {
    this.cls = cls;
    this.name = cls.name;
    this.service = service;
    this.execution = service.config.execution[cls.name] ?? cls.execution;
    this.warm =
      this.execution === 'worker'
        ? new WarmWorkers(cls.name, service.config.env_settings[cls.name] ?? {}, service.config, log, () =>
            service.metrics.workerRestarts.inc({ env: cls.name }),
          )
        : null;
  }

  spec(live, maxEpisodes) {
    const c = this.cls;
    return {
      name: c.name,
      description: c.description,
      task_count: String(c.taskCount),
      splits: Object.entries(c.splits).map(([name, ranges]) => ({
        name,
        ranges: ranges.map(([start, end]) => ({ start: String(start), end: String(end) })),
      })),
      instruction: c.instruction,
      action_format: c.actionFormat,
      max_rounds: c.maxRounds,
      has_expert: c.hasExpert(),
      max_episodes: maxEpisodes,
      live_episodes: live,
      success_threshold: c.successThreshold,
      acknowledgement: c.acknowledgement ?? '',
      task_set: c.taskSet ?? '',
      profile: '',
    };
  }

  async newRunner() {
    if (this.warm) return this.warm.runner();
    return new InlineRunner(this.cls, this.service.config.step_timeout_s);
  }
}

export class EnvService {
  constructor(config) {
    this.config = config;
    const names = config.envs ?? registry.names();
    this.hosted = new Map();
    const perEnv = new Map();
    for (const name of names) {
      const cls = registry.configure(name, config.env_settings[name] ?? {});
      this.hosted.set(name, new HostedEnv(cls, this));
      const limits = [config.max_episodes, config.max_episodes_per_env, cls.maxEpisodes].filter((v) => v !== null && v !== undefined);
      perEnv.set(name, Math.min(...limits));
    }
    this.capacity = new Capacity(config.max_episodes, perEnv);
    this.metrics = new Metrics(this.capacity);
    // The pool is process-wide: its lost threads count for whichever service runs in this process.
    onThreadLost(() => this.metrics.workerRestarts.inc({ env: SHARED_POOL }));
    this.sessions = new Set();
    this.draining = false;
    this.steps = 0;
    this.episodesStarted = 0;
    this.sweeper = null;
    this.noSessionWaiters = [];
  }

  // --- lifecycle ----------------------------------------------------------------------------------
  startBackground() {
    for (const h of this.hosted.values()) h.warm?.prewarm();
    const timeout = this.config.idle_timeout_s;
    if (timeout > 0) {
      this.sweeper = setInterval(() => this.#sweepIdle(timeout), Math.min(1000, (timeout * 1000) / 4));
      this.sweeper.unref();
    }
  }

  #sweepIdle(timeoutS) {
    const cutoff = performance.now() - timeoutS * 1000;
    for (const s of this.sessions) {
      if (!s.busy && s.lastActivity < cutoff) {
        s.endFromOutside(
          Code.DEADLINE_EXCEEDED,
          `episode ${s.episodeId || '(none)'} idle for more than ${timeoutS}s (idle_timeout); its env was freed`,
        );
      }
    }
  }

  /** Called by a Session once its stream has ended for any reason. */
  forget(session) {
    this.sessions.delete(session);
    if (this.sessions.size === 0) for (const wake of this.noSessionWaiters.splice(0)) wake();
  }

  #noSessions(withinMs) {
    if (this.sessions.size === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), withinMs);
      this.noSessionWaiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  /** Refuse new episodes; give live ones `grace_s` to finish; then end the rest with UNAVAILABLE. */
  async drain(graceS = this.config.grace_s) {
    this.draining = true;
    await this.#noSessions(graceS * 1000);
    for (const s of [...this.sessions]) {
      s.endFromOutside(Code.UNAVAILABLE, 'the server is shutting down; the episode was ended');
    }
    await this.#noSessions(5000);
  }

  async close() {
    if (this.sweeper) clearInterval(this.sweeper);
    await Promise.all([...this.hosted.values()].map((h) => h.warm?.close()));
    await closeSharedPool();
    onThreadLost(null);
  }

  // --- RPCs -----------------------------------------------------------------------------------------
  listEnvs(_call, callback) {
    const cap = this.capacity;
    const envs = [...this.hosted.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([name, h]) => h.spec(cap.livePerEnv.get(name), cap.perEnv.get(name)));
    callback(null, {
      envs,
      server: {
        implementation: IMPLEMENTATION,
        max_episodes: cap.total,
        live_episodes: cap.live,
        max_action_bytes: this.config.max_action_bytes,
        step_timeout_s: this.config.step_timeout_s,
        idle_timeout_s: this.config.idle_timeout_s,
        draining: this.draining,
      },
    });
  }

  session(call, decode) {
    const session = new Session(this, call, decode);
    this.sessions.add(session);
    session.start();
  }
}
