// A worker thread hosting one episode's env at a time, for envs run in `worker` mode. The server
// posts {id, op, ...} and gets {id, ok, value} or {id, ok: false, error} back, in order; the
// server terminates the thread when a call outlives the step timeout.

import { parentPort, workerData } from 'node:worker_threads';
import { EnvError } from './envs/base.js';
import * as registry from './envs/registry.js';

let cls;
try {
  cls = registry.configure(workerData.env, workerData.settings ?? {});
  parentPort.postMessage({ ready: true });
} catch (err) {
  parentPort.postMessage({ ready: false, error: { message: String(err?.message ?? err) } });
}

let env = null;

async function handle(msg) {
  switch (msg.op) {
    case 'reset': {
      env ??= new cls(); // one instance per episode; reset requests reuse it, as in Python
      const outcome = await env.reset(msg.taskId, msg.seed, msg.options, {});
      return { outcome, instruction: env.episodeInstruction() };
    }
    case 'step':
      return env.step(msg.action, {});
    case 'expert':
      return env.expertAction({});
    case 'close': {
      const e = env;
      env = null;
      if (e) await e.close();
      return null;
    }
    default:
      throw new Error(`unknown op ${msg.op}`);
  }
}

// Calls are handled one after another, in the order they were posted.
let chain = Promise.resolve();
parentPort.on('message', (msg) => {
  chain = chain.then(async () => {
    try {
      parentPort.postMessage({ id: msg.id, ok: true, value: await handle(msg) });
    } catch (err) {
      parentPort.postMessage({
        id: msg.id,
        ok: false,
        error: { envError: err instanceof EnvError, name: err?.name ?? 'Error', message: String(err?.message ?? err) },
      });
    }
  });
});
