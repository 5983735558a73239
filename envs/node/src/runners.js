// Runners execute one episode's env code for a Session, under the step timeout.
//
// Why two kinds: JavaScript cannot interrupt synchronous code on its own thread. An inline env
// (on the event loop) is bounded by the timer only where it awaits; its synchronous parts must be
// microsecond-scale (Sokoban's steps are; its heavy search is awaited in a pool thread). A worker
// env gets a worker thread (its own V8 isolate and event loop) per episode: the server posts each
// call to it and, when the step timeout passes, terminates the thread, which stops even a
// blocking sleep or an endless loop, and only that episode is lost. A thread costs a few MB and
// some milliseconds to start, so idle ones are kept warm and reused after clean episodes.

import { Worker } from 'node:worker_threads';
import { EnvError } from './envs/base.js';

const WORKER_URL = new URL('./worker.js', import.meta.url);

/** The env call took longer than the step timeout. */
export class EnvTimeout extends Error {}

/** The env threw, or its worker thread died. */
export class EnvCrashed extends Error {}

/** The env's own code threw; the env (and its worker thread) is still there. */
export class EnvRaised extends EnvCrashed {}

function describe(err) {
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}

/** Runs the env on the event loop; awaited work is bounded by a timer and told to stop. */
export class InlineRunner {
  constructor(cls, stepTimeoutS) {
    this.cls = cls;
    this.timeoutMs = stepTimeoutS * 1000;
    this.env = null;
    this.inflight = null; // the AbortController of the call in progress
  }

  async #call(what, fn) {
    const controller = new AbortController();
    this.inflight = controller;
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => {
        controller.abort();
        reject(new EnvTimeout(`${what} took longer than the ${this.timeoutMs / 1000}s step timeout`));
      }, this.timeoutMs);
    });
    try {
      return await Promise.race([Promise.resolve().then(() => fn({ signal: controller.signal })), timeout]);
    } catch (err) {
      if (err instanceof EnvTimeout || err instanceof EnvError) throw err;
      throw new EnvRaised(describe(err), { cause: err });
    } finally {
      clearTimeout(timer);
      this.inflight = null;
    }
  }

  async reset(taskId, seed, options) {
    this.env ??= new this.cls();
    const out = await this.#call('reset', (ctx) => this.env.reset(taskId, seed, options, ctx));
    return { outcome: out, instruction: this.env.episodeInstruction() };
  }

  step(action) {
    return this.#call('step', (ctx) => this.env.step(action, ctx));
  }

  expert() {
    return this.#call('expert', (ctx) => this.env.expertAction(ctx));
  }

  async close() {
    this.inflight?.abort();
    const env = this.env;
    this.env = null;
    if (env) await env.close();
  }
}

/** A worker thread hosting one env instance at a time; see worker.js for its side. */
export class WorkerRunner {
  constructor(worker, envName, stepTimeoutS, onIdle, onLost = () => {}) {
    this.worker = worker;
    this.envName = envName;
    this.timeoutMs = stepTimeoutS * 1000;
    this.onIdle = onIdle; // takes back a healthy worker after a clean close
    this.onLost = onLost; // told once if this thread dies or is terminated (the next episode gets a new one)
    this.nextId = 1;
    this.pending = new Map();
    this.dead = null; // why the thread is gone, once it is
    worker.on('message', (reply) => this.#reply(reply));
    worker.on('error', (err) => this.#died(`its worker thread failed: ${describe(err)}`));
    worker.on('exit', (code) => this.#died(`its worker thread exited (code ${code})`));
  }

  /** Start a thread that has loaded `envName`; rejects if it cannot within `startTimeoutS`. */
  static spawn(envName, settings, stepTimeoutS, startTimeoutS) {
    return new Promise((resolve, reject) => {
      const worker = new Worker(WORKER_URL, { workerData: { env: envName, settings } });
      const timer = setTimeout(() => {
        void worker.terminate();
        reject(new Error(`worker thread for ${envName} did not start within ${startTimeoutS}s`));
      }, startTimeoutS * 1000);
      const fail = (err) => {
        clearTimeout(timer);
        reject(err instanceof Error ? err : new Error(`worker thread for ${envName} exited (code ${err})`));
      };
      worker.once('error', fail);
      worker.once('exit', fail);
      worker.once('message', (msg) => {
        clearTimeout(timer);
        worker.off('error', fail);
        worker.off('exit', fail);
        if (msg.ready) resolve(worker);
        else {
          void worker.terminate();
          reject(new Error(msg.error?.message ?? `worker thread for ${envName} failed to start`));
        }
      });
    });
  }

  #reply(reply) {
    const call = this.pending.get(reply.id);
    if (!call) return;
    this.pending.delete(reply.id);
    clearTimeout(call.timer);
    if (reply.ok) call.resolve(reply.value);
    else if (reply.error.envError) call.reject(new EnvError(reply.error.message));
    else call.reject(new EnvRaised(`${reply.error.name}: ${reply.error.message}`));
  }

  #died(reason) {
    if (this.dead) return;
    this.dead = reason;
    this.onLost(reason);
    for (const call of this.pending.values()) {
      clearTimeout(call.timer);
      call.reject(new EnvCrashed(reason));
    }
    this.pending.clear();
  }

  #call(what, op, args = {}) {
    if (this.dead) return Promise.reject(new EnvCrashed(this.dead));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        this.#kill(`${what} timed out`);
        reject(new EnvTimeout(`${what} took longer than the ${this.timeoutMs / 1000}s step timeout; its worker thread was terminated`));
      }, this.timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.worker.postMessage({ id, op, ...args });
    });
  }

  #kill(reason) {
    this.#died(reason);
    void this.worker.terminate();
  }

  async reset(taskId, seed, options) {
    const value = await this.#call('reset', 'reset', { taskId, seed, options });
    return { outcome: value.outcome, instruction: value.instruction };
  }

  step(action) {
    return this.#call('step', 'step', { action });
  }

  expert() {
    return this.#call('expert', 'expert');
  }

  /** Free the env. A thread that is idle and healthy goes back to the warm pool; any other
   * (busy with a call the episode no longer waits for, crashed, timed out) is terminated. */
  async close() {
    if (this.dead) return;
    if (this.pending.size > 0) {
      this.#kill('episode ended during a call');
      return;
    }
    try {
      await Promise.race([
        this.#call('close', 'close'),
        new Promise((_, reject) => setTimeout(() => reject(new Error('close timed out')), 1000)),
      ]);
    } catch {
      this.#kill('close failed');
      return;
    }
    this.worker.removeAllListeners('message');
    this.worker.removeAllListeners('error');
    this.worker.removeAllListeners('exit');
    this.onIdle(this.worker);
  }
}

/** Idle worker threads of one env, started ahead of demand and reused after clean episodes. */
export class WarmWorkers {
  constructor(envName, settings, config, log, onLost = () => {}) {
    this.envName = envName;
    this.settings = settings;
    this.config = config;
    this.log = log;
    this.onLost = onLost; // a runner's thread died or was terminated
    this.idle = [];
    this.starting = 0;
    this.closed = false;
  }

  /** A runner on a warm thread, or on a new one. */
  async runner() {
    const worker = this.idle.pop() ?? (await this.#spawn());
    if (worker.guard) {
      worker.off('error', worker.guard);
      worker.off('exit', worker.guard);
      worker.guard = null;
    }
    this.prewarm();
    return new WorkerRunner(worker, this.envName, this.config.step_timeout_s, (w) => this.#takeBack(w), this.onLost);
  }

  #spawn() {
    const c = this.config;
    return WorkerRunner.spawn(this.envName, this.settings, c.step_timeout_s, c.worker_start_timeout_s);
  }

  #takeBack(worker) {
    if (this.closed || this.idle.length >= Math.max(1, this.config.prewarm)) {
      void worker.terminate();
      return;
    }
    // An idle thread that dies is simply forgotten (and its 'error' must have a listener).
    worker.guard = () => {
      this.idle = this.idle.filter((w) => w !== worker);
    };
    worker.on('error', worker.guard);
    worker.on('exit', worker.guard);
    this.idle.push(worker);
  }

  /** Start threads in the background until `prewarm` are idle or starting. */
  prewarm() {
    while (!this.closed && this.idle.length + this.starting < this.config.prewarm) {
      this.starting++;
      this.#spawn()
        .then((worker) => {
          if (this.closed) void worker.terminate();
          else this.#takeBack(worker);
        })
        .catch((err) => this.log.warning('could not prewarm a worker thread', { env: this.envName, error: String(err) }))
        .finally(() => {
          this.starting--;
        });
    }
  }

  async close() {
    this.closed = true;
    const idle = this.idle;
    this.idle = [];
    await Promise.all(idle.map((w) => w.terminate()));
  }
}
