// A ThreadPool thread: import the named module, call the export, post the result back.

import { parentPort } from 'node:worker_threads';

parentPort.on('message', async ({ module, name, args }) => {
  try {
    const mod = await import(module);
    const value = await mod[name](...args);
    parentPort.postMessage({ ok: true, value });
  } catch (err) {
    parentPort.postMessage({
      ok: false,
      error: { name: err?.name ?? 'Error', message: String(err?.message ?? err), stack: err?.stack },
    });
  }
});
