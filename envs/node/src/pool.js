// A small pool of worker threads that run exported functions of modules, for the CPU-heavy parts
// of inline envs (Sokoban's level generation and solver), so the event loop only ever runs
// microsecond-scale env code.
//
// A thread runs one job at a time. A job whose AbortSignal fires (the step timeout, or the
// episode ended) is dropped from the queue, or, if running, its thread is terminated and
// replaced: a runaway job costs only the episode that asked for it.

import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

const WORKER_URL = new URL('./pool-worker.js', import.meta.url);

// Told of each thread terminated with a job on it (aborted, crashed, exited): the server's metrics
// count these. A hook rather than an import, since env code in worker threads loads this module too.
let threadLost = null;

/** Set (or, with null, clear) the function told of each thread lost with a job on it. */
export function onThreadLost(fn) {
  threadLost = fn;
}

export class AbortedError extends Error {
  constructor(message = 'the job was aborted') {
    super(message);
    this.name = 'AbortedError';
  }
}

export class ThreadPool {
  constructor(size = Math.max(1, Math.min(4, availableParallelism()))) {
    this.size = size;
    this.idle = [];
    this.busy = new Set();
    this.queue = [];
    this.closed = false;
  }

  /** Run `module`'s export `name` with `args` (structured-cloneable) in a pool thread. */
  run(module, name, args, { signal } = {}) {
    if (this.closed) return Promise.reject(new Error('the thread pool is closed'));
    if (signal?.aborted) return Promise.reject(new AbortedError());
    return new Promise((resolve, reject) => {
      const job = { module: module.href ?? String(module), name, args, resolve, reject, signal, worker: null };
      if (signal) {
        job.onAbort = () => this.#abort(job);
        signal.addEventListener('abort', job.onAbort, { once: true });
      }
      this.queue.push(job);
      this.#dispatch();
    });
  }

  #dispatch() {
    while (this.queue.length > 0 && (this.idle.length > 0 || this.busy.size < this.size)) {
      const job = this.queue.shift();
      const worker = this.idle.pop() ?? this.#spawn();
      job.worker = worker;
      worker.job = job;
      this.busy.add(worker);
      worker.postMessage({ module: job.module, name: job.name, args: job.args });
    }
  }

  #spawn() {
    const worker = new Worker(WORKER_URL);
    worker.unref(); // an idle pool never keeps the process alive
    worker.on('message', (reply) => {
      const job = worker.job;
      this.#release(worker, true);
      if (!job) return;
      if (reply.ok) job.resolve(reply.value);
      else job.reject(Object.assign(new Error(reply.error.message), { name: reply.error.name, stack: reply.error.stack }));
    });
    worker.on('error', (err) => {
      const job = worker.job;
      this.#release(worker, false);
      job?.reject(err);
    });
    worker.on('exit', (code) => {
      const job = worker.job;
      this.#release(worker, false);
      job?.reject(new Error(`pool thread exited with code ${code}`));
    });
    return worker;
  }

  #release(worker, reusable) {
    const job = worker.job;
    worker.job = null;
    if (job?.signal) job.signal.removeEventListener('abort', job.onAbort);
    if (!this.busy.delete(worker)) return;
    if (reusable && !this.closed) this.idle.push(worker);
    else {
      if (!reusable && !this.closed) threadLost?.();
      void worker.terminate();
    }
    this.#dispatch();
  }

  #abort(job) {
    const queued = this.queue.indexOf(job);
    if (queued >= 0) {
      this.queue.splice(queued, 1);
    } else if (job.worker && job.worker.job === job) {
      this.#release(job.worker, false); // terminates the thread running it
    } else {
      return; // already finished
    }
    job.reject(new AbortedError());
  }

  async close() {
    this.closed = true;
    for (const job of this.queue.splice(0)) job.reject(new Error('the thread pool is closed'));
    const workers = [...this.idle, ...this.busy];
    this.idle = [];
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

let shared = null;

/** The process-wide pool (created on first use). */
export function sharedPool() {
  shared ??= new ThreadPool();
  return shared;
}

export async function closeSharedPool() {
  if (shared) await shared.close();
  shared = null;
}
