// The `conformance` fixture env, exactly as envs/conformance.py documents it, so that
// `agentgym conformance` can check the error paths that need a misbehaving env.
//
// - 8 tasks, max_rounds 6, at most 4 live episodes per server.
// - reset: observation "conformance task T seed S"; available actions ping, finish, crash, hang.
// - step "finish": observation "finished", reward 1, done, success.
// - step "crash": the env throws (the server must answer INTERNAL and end the episode).
// - step "hang": sleeps `hang_s` seconds (create option, default 60), past the step timeout.
// - step "malformed" (not listed among the available actions): an outcome whose available actions
//   are a number; the server's own code fails on it and must answer INTERNAL in band.
// - step "stuck": echoed like any other action, but until the next step the expert cannot act
//   (it throws): the server must answer FAILED_PRECONDITION and keep the episode.
// - any other action: observation "echo ACTION step N", reward 0.
// - expert: "finish".
//
// It runs in a worker thread, where "hang" is a *blocking* sleep (Atomics.wait): only terminating
// the thread can end it, which is what the server's step timeout must do. Run inline
// (`--execution conformance=inline`), "hang" is an awaited timer instead, since blocking the event
// loop would stall the whole server.

import { isMainThread } from 'node:worker_threads';
import { Env, EnvError, outcome } from './base.js';

const ACTIONS = ['ping', 'finish', 'crash', 'hang'];

export class Conformance extends Env {
  static name = 'conformance';
  static description = 'Protocol fixture for `agentgym conformance` (can crash and hang on request).';
  static instruction = 'Conformance fixture. Reply with Thought: ... then Action: ping | finish | crash | hang';
  static actionFormat = 'ping | finish | crash | hang | any text (echoed)';
  static maxRounds = 6;
  static taskCount = 8;
  static splits = {
    train: [[0, 6]],
    test: [[6, 8]],
  };
  static execution = 'worker';
  static maxEpisodes = 4;
  static createOptions = { hang_s: "seconds a 'hang' step sleeps (default 60)" };
  static hidden = true;

  reset(taskId, seed, options) {
    const hang = Number(options.hang_s ?? 60);
    if (options.hang_s !== undefined && (options.hang_s.trim() === '' || !Number.isFinite(hang))) {
      throw new EnvError(`hang_s must be a number of seconds, got ${JSON.stringify(options.hang_s)}`);
    }
    this.hangS = hang;
    this.steps = 0;
    this.stuck = false;
    return outcome(`conformance task ${taskId} seed ${seed}`, { availableActions: ACTIONS });
  }

  step(action) {
    this.steps += 1;
    this.stuck = action === 'stuck';
    if (action === 'finish') return outcome('finished', { reward: 1.0, done: true, success: true });
    if (action === 'crash') throw new Error('crash requested by the client');
    if (action === 'malformed') return outcome('malformed', { availableActions: 7 });
    if (action === 'hang') {
      const ms = Math.max(0, this.hangS * 1000);
      if (isMainThread) {
        return new Promise((resolve) => setTimeout(() => resolve(outcome('woke up', { availableActions: ACTIONS })), ms));
      }
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
      return outcome('woke up', { availableActions: ACTIONS });
    }
    return outcome(`echo ${action} step ${this.steps}`, { availableActions: ACTIONS });
  }

  expertAction() {
    if (this.stuck) throw new Error("the expert has no action after 'stuck'");
    return 'finish';
  }
}
