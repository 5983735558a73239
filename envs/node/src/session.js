// One `Session` stream: the protocol state machine of one episode, as in server/session.py.
//
// The stream's requests arrive as raw bytes (the method's deserializer is the identity), so bytes
// that are not a SessionRequest get an in-band INVALID_ARGUMENT with id 0 instead of killing the
// stream. Requests are handled strictly one after another and each response is written before the
// next request is read, so responses come in request order even when the client pipelines.

import { EnvError } from './envs/base.js';
import { getLogger } from './log.js';
import { NO_ENV, NOT_HOSTED } from './metrics.js';
import { Code, CODE_NAME } from './proto.js';
import { EnvCrashed, EnvRaised, EnvTimeout } from './runners.js';

const log = getLogger('agentgym.node.session');

let episodeCounter = 0;
const PID = process.pid.toString(16);

// Read no further ahead than this many requests (gRPC flow control does the rest).
const HIGH_WATER = 64;

/** Ends the episode and the stream with `code`. */
class Fatal extends Error {
  constructor(code, message, cause) {
    super(message, { cause });
    this.code = code;
  }
}

export function errorResponse(id, code, message) {
  return { id, error: { code, message } };
}

const noEpisode = (id) =>
  errorResponse(id, Code.FAILED_PRECONDITION, 'no episode yet: the first request on a stream must be create');

export class Session {
  /**
   * @param {import('./service.js').EnvService} service
   * @param {import('@grpc/grpc-js').ServerDuplexStream} call
   * @param {(buf: Buffer) => object} decode SessionRequest bytes -> object (throws on garbage)
   */
  constructor(service, call, decode) {
    this.service = service;
    this.call = call;
    this.decode = decode;
    this.peer = call.getPeer();
    this.hosted = null;
    this.runner = null;
    this.episodeId = '';
    this.taskId = 0;
    this.stepIndex = 0;
    this.maxSteps = 0;
    this.score = 0;
    this.over = false; // done or truncated
    this.last = null; // the latest StepResult
    this.busy = false;
    this.closed = false;
    this.lastActivity = performance.now();
    this.queue = [];
    this.paused = false;
    this.pumping = false;
    this.halfClosed = false;
    this.ended = false;
    this.metrics = service.metrics;
  }

  // --- stream plumbing ------------------------------------------------------------------------
  start() {
    const call = this.call;
    call.on('data', (raw) => {
      this.queue.push(raw);
      if (this.queue.length >= HIGH_WATER && !this.paused) {
        this.paused = true;
        call.pause();
      }
      void this.#pump();
    });
    call.on('end', () => {
      // The client is done writing: answer what it sent, then end the stream.
      this.halfClosed = true;
      void this.#pump();
    });
    // The client cancelled or vanished (connection closed, keepalive failed): free the env now.
    call.on('cancelled', () => this.#abandon('client cancelled or went away'));
    call.on('close', () => this.#abandon('stream closed'));
    call.on('error', () => {}); // a failed write to a gone client; 'cancelled'/'close' clean up
  }

  async #pump() {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.queue.length > 0 && !this.ended) {
        const raw = this.queue.shift();
        if (this.paused && this.queue.length < HIGH_WATER / 2) {
          this.paused = false;
          this.call.resume();
        }
        const { response, fatal } = await this.handle(raw);
        if (this.ended) return; // ended from outside while the env was busy
        this.call.write(response);
        if (fatal) return this.#finish(fatal.code, fatal.message);
        if (this.closed) return this.#finish(Code.OK, 'OK');
      }
      if (this.halfClosed && !this.ended && this.queue.length === 0) this.#finish(Code.OK, 'OK');
    } finally {
      this.pumping = false;
    }
  }

  /** End the stream with `code` (after the responses already written), freeing the env. */
  #finish(code, message) {
    if (this.ended) return;
    this.ended = true;
    void this.release(code === Code.OK ? 'stream ended' : `${CODE_NAME[code]}: ${message}`);
    this.service.forget(this);
    if (code === Code.OK) this.call.end();
    else this.call.emit('error', { code, details: message });
  }

  #abandon(reason) {
    if (this.ended) return;
    this.ended = true;
    void this.release(reason);
    this.service.forget(this);
  }

  /**
   * End the stream from outside (idle timeout, shutdown): the status says why. No in-band message,
   * as no request is being answered, and an unread message would hold the status back from a
   * client that is not reading (as the Python server does).
   */
  endFromOutside(code, message) {
    if (this.ended) return;
    this.metrics.errors.inc({ env: this.hosted?.name ?? NO_ENV, code: CODE_NAME[code] });
    void this.release(`${CODE_NAME[code]}: ${message}`, 'info');
    this.#finish(code, message);
  }

  // --- one request -------------------------------------------------------------------------------
  /** Bytes of one request -> {response, fatal}; fatal (a Fatal) ends the episode and the stream. */
  async handle(raw) {
    this.lastActivity = performance.now();
    let req;
    try {
      req = this.decode(raw);
    } catch (err) {
      const message = `could not parse a SessionRequest from ${raw.length} bytes: ${err.message}`;
      this.metrics.errors.inc({ env: this.hosted?.name ?? NO_ENV, code: 'INVALID_ARGUMENT' });
      return { response: errorResponse('0', Code.INVALID_ARGUMENT, message), fatal: null };
    }
    // The env a create names is known before it runs; it is a label only if this server hosts it.
    const env =
      req.kind === 'create' ? (this.service.hosted.has(req.create.env) ? req.create.env : NOT_HOSTED) : (this.hosted?.name ?? NO_ENV);
    const out = await this.#dispatch(req);
    const code = out.response.error ? CODE_NAME[out.response.error.code] : 'OK';
    if (req.kind === 'create') this.metrics.creates.inc({ env, code });
    else if (req.kind === 'step') this.metrics.steps.inc({ env, code });
    if (code !== 'OK') this.metrics.errors.inc({ env, code });
    return out;
  }

  async #dispatch(req) {
    const id = req.id ?? '0';
    this.busy = true;
    try {
      switch (req.kind) {
        case 'step':
          return { response: await this.#step(id, req.step), fatal: null };
        case 'create':
          return { response: await this.#create(id, req.create), fatal: null };
        case 'observe':
          return { response: this.#observe(id), fatal: null };
        case 'reset':
          return { response: await this.#reset(id, req.reset), fatal: null };
        case 'expert':
          return { response: await this.#expert(id), fatal: null };
        case 'close':
          return { response: await this.#close(id), fatal: null };
        default:
          return {
            response: errorResponse(id, Code.INVALID_ARGUMENT, `request ${id} sets none of create, step, observe, reset, expert, close`),
            fatal: null,
          };
      }
    } catch (caught) {
      // A bug of this server, not of the env, still ends only this episode.
      const err = caught instanceof Fatal ? caught : new Fatal(Code.INTERNAL, `server error in ${req.kind}: ${caught}`, caught);
      log.warning('episode failed', {
        episode: this.episodeId,
        code: CODE_NAME[err.code],
        error: err.message,
        cause: err.cause ? String(err.cause.message ?? err.cause) : undefined,
        peer: this.peer,
      });
      await this.release(`${CODE_NAME[err.code]}: ${err.message}`);
      return { response: errorResponse(id, err.code, err.message), fatal: err };
    } finally {
      this.busy = false;
      this.lastActivity = performance.now();
    }
  }

  async #create(id, c) {
    if (this.runner !== null) {
      return errorResponse(
        id,
        Code.FAILED_PRECONDITION,
        `this stream already has episode ${this.episodeId} (${this.hosted?.name ?? '?'} task ${this.taskId}); ` +
          'one stream is one episode: send reset for another task, or open a new stream',
      );
    }
    const service = this.service;
    if (service.draining) {
      this.metrics.refusals.inc({ env: service.hosted.has(c.env) ? c.env : NOT_HOSTED, reason: 'draining' });
      return errorResponse(id, Code.UNAVAILABLE, 'the server is shutting down and accepts no new episodes; use another server');
    }
    const hosted = service.hosted.get(c.env);
    if (!hosted) {
      return errorResponse(
        id,
        Code.NOT_FOUND,
        `env '${c.env}' is not hosted here; this server hosts: ${[...service.hosted.keys()].sort().join(', ')}`,
      );
    }
    const bad = this.#checkTask(id, hosted, c.task_id, c.options ?? {});
    if (bad) return bad;
    const refusal = service.capacity.acquire(hosted.name);
    if (refusal) {
      this.metrics.refusals.inc({ env: hosted.name, reason: refusal.reason });
      return errorResponse(id, Code.RESOURCE_EXHAUSTED, refusal.message);
    }
    try {
      this.runner = await hosted.newRunner();
    } catch (err) {
      service.capacity.release(hosted.name);
      this.runner = null;
      throw new Fatal(Code.INTERNAL, `env '${c.env}' could not start: ${err.message}`, err);
    }
    if (this.ended) {
      // The client went away while the env was starting.
      service.capacity.release(hosted.name);
      const runner = this.runner;
      this.runner = null;
      await runner.close();
      return errorResponse(id, Code.CANCELLED, 'the stream ended');
    }
    this.hosted = hosted;
    this.episodeId = `${PID}-${++episodeCounter}`;
    service.episodesStarted++;
    return this.#start(id, Number(c.task_id), c._seed ? BigInt(c.seed) : null, c.max_steps, c.options ?? {}, true);
  }

  async #reset(id, r) {
    if (this.runner === null) return noEpisode(id);
    const bad = this.#checkTask(id, this.hosted, r.task_id, {});
    if (bad) return bad;
    return this.#start(id, Number(r.task_id), r._seed ? BigInt(r.seed) : null, r.max_steps, {}, false);
  }

  #checkTask(id, hosted, taskId, options) {
    const cls = hosted.cls;
    if (BigInt(taskId) >= BigInt(cls.taskCount)) {
      return errorResponse(
        id,
        Code.OUT_OF_RANGE,
        `task_id ${taskId} is out of range for env '${cls.name}': valid ids are 0..${cls.taskCount - 1}`,
      );
    }
    const unknown = Object.keys(options)
      .filter((k) => !(k in cls.createOptions))
      .sort();
    if (unknown.length) {
      const accepted = Object.keys(cls.createOptions).sort().join(', ') || 'none';
      return errorResponse(
        id,
        Code.INVALID_ARGUMENT,
        `env '${cls.name}' does not accept create options [${unknown.map((k) => `'${k}'`).join(', ')}]; accepted: ${accepted}`,
      );
    }
    return null;
  }

  async #start(id, taskId, seed, maxSteps, options, created) {
    const cls = this.hosted.cls;
    const useSeed = seed ?? BigInt(cls.defaultSeed(taskId));
    let result;
    const t0 = performance.now();
    try {
      result = await this.runner.reset(taskId, useSeed, { ...options });
    } catch (err) {
      if (err instanceof EnvError) {
        if (created) await this.release(`create refused: ${err.message}`); // keep the stream, free the slot
        return errorResponse(id, Code.INVALID_ARGUMENT, `env '${cls.name}' refused the request: ${err.message}`);
      }
      if (err instanceof EnvTimeout) {
        throw new Fatal(Code.DEADLINE_EXCEEDED, `env '${cls.name}' reset of task ${taskId}: ${err.message}; the episode is over`, err);
      }
      throw new Fatal(Code.INTERNAL, `env '${cls.name}' failed in reset of task ${taskId}: ${err.message}; the episode is over`, err);
    } finally {
      this.metrics.resetSeconds.observe({ env: cls.name }, (performance.now() - t0) / 1000);
    }
    this.taskId = taskId;
    this.stepIndex = 0;
    this.score = 0;
    this.over = false;
    this.maxSteps = maxSteps || cls.maxRounds;
    this.last = this.#result(result.outcome);
    return {
      id,
      created: {
        episode_id: this.episodeId,
        env: cls.name,
        task_id: String(taskId),
        seed: useSeed.toString(),
        instruction: result.instruction,
        initial: this.last,
        max_steps: this.maxSteps,
        acknowledgement: cls.acknowledgement ?? '',
      },
    };
  }

  async #step(id, s) {
    if (this.runner === null) return noEpisode(id);
    if (this.over) return errorResponse(id, Code.FAILED_PRECONDITION, this.#overMessage());
    const action = (s.action ?? '').trim();
    if (!action) {
      return errorResponse(id, Code.INVALID_ARGUMENT, "action is empty; send the action text, e.g. the line after 'Action:'");
    }
    const limit = this.service.config.max_action_bytes;
    if (action.length * 3 > limit) {
      const n = Buffer.byteLength(action, 'utf8');
      if (n > limit) {
        this.metrics.refusals.inc({ env: this.hosted.cls.name, reason: 'max_action_bytes' });
        return errorResponse(id, Code.INVALID_ARGUMENT, `action is ${n} bytes; this server accepts at most ${limit} (max_action_bytes)`);
      }
    }
    const name = this.hosted.cls.name;
    let out;
    const t0 = performance.now();
    try {
      out = await this.runner.step(action);
    } catch (err) {
      if (err instanceof EnvTimeout) {
        throw new Fatal(Code.DEADLINE_EXCEEDED, `env '${name}' step ${this.stepIndex + 1}: ${err.message}; the episode is over`, err);
      }
      throw new Fatal(Code.INTERNAL, `env '${name}' failed in step ${this.stepIndex + 1}: ${err.message}; the episode is over`, err);
    } finally {
      this.metrics.stepSeconds.observe({ env: name }, (performance.now() - t0) / 1000);
    }
    this.stepIndex += 1;
    this.last = this.#result(out);
    this.service.steps += 1;
    return { id, step: this.last };
  }

  #observe(id) {
    if (this.last === null) return noEpisode(id);
    return { id, step: this.last };
  }

  async #expert(id) {
    if (this.runner === null) return noEpisode(id);
    const cls = this.hosted.cls;
    if (!cls.hasExpert()) return errorResponse(id, Code.FAILED_PRECONDITION, `env '${cls.name}' has no expert`);
    if (this.over) return errorResponse(id, Code.FAILED_PRECONDITION, this.#overMessage());
    let action;
    try {
      action = await this.runner.expert();
    } catch (err) {
      if (err instanceof EnvTimeout) {
        throw new Fatal(Code.DEADLINE_EXCEEDED, `env '${cls.name}' expert: ${err.message}; the episode is over`, err);
      }
      if (err instanceof EnvRaised || err instanceof EnvError) {
        // The expert has no action from this state; asking changed nothing, so the episode goes on.
        const message = `env '${cls.name}' expert cannot act in this state: ${err.message}; the episode continues`;
        return errorResponse(id, Code.FAILED_PRECONDITION, message);
      }
      throw new Fatal(Code.INTERNAL, `env '${cls.name}' expert failed: ${err.message}; the episode is over`, err);
    }
    return { id, expert: { action: String(action) } };
  }

  async #close(id) {
    const final = this.last ?? {};
    this.closed = true;
    await this.release('closed by client');
    return { id, closed: { final } };
  }

  // --- helpers ------------------------------------------------------------------------------------
  #result(o) {
    this.score = o.score ?? this.score + o.reward;
    const truncated = !o.done && this.stepIndex >= this.maxSteps;
    this.over = o.done || truncated;
    return {
      observation: String(o.observation),
      reward: o.reward,
      score: this.score,
      done: o.done,
      truncated,
      success: o.success,
      step_index: this.stepIndex,
      available_actions: o.availableActions.map(String),
      info: Object.fromEntries(Object.entries(o.info).map(([k, v]) => [k, String(v)])),
    };
  }

  #overMessage() {
    const how = this.last?.done ? 'done' : `truncated at its ${this.maxSteps}-step limit`;
    return `episode ${this.episodeId} is over (${how} after ${this.stepIndex} steps); send reset to start another task, or close`;
  }

  /** Free the env and its capacity slot. Safe to call more than once. */
  async release(reason, level = 'debug') {
    const runner = this.runner;
    const hosted = this.hosted;
    this.runner = null;
    if (runner === null || hosted === null) return;
    this.service.capacity.release(hosted.name);
    log[level]('episode ended', {
      episode: this.episodeId,
      env: hosted.name,
      task: this.taskId,
      steps: this.stepIndex,
      reason,
      peer: this.peer,
    });
    try {
      await runner.close();
    } catch (err) {
      log.warning('closing env failed', { episode: this.episodeId, env: hosted.name, error: String(err) });
    }
  }
}
