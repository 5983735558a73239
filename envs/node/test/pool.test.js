// The thread pool: results come back; an aborted job's thread is terminated and replaced.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AbortedError, onThreadLost, ThreadPool } from '../src/pool.js';

const JOBS = new URL('./pool-jobs.js', import.meta.url);

test('runs jobs and returns their results', async () => {
  const pool = new ThreadPool(2);
  try {
    const results = await Promise.all([1, 2, 3, 4].map((n) => pool.run(JOBS, 'square', [n])));
    assert.deepEqual(results, [1, 4, 9, 16]);
    await assert.rejects(pool.run(JOBS, 'fail', []), /job failed on purpose/);
  } finally {
    await pool.close();
  }
});

test('an aborted job stops its thread; the pool keeps working', async () => {
  const pool = new ThreadPool(1);
  let lost = 0; // what the server's agentgym_worker_restarts_total counts
  onThreadLost(() => lost++);
  try {
    const controller = new AbortController();
    const spinning = pool.run(JOBS, 'spin', [], { signal: controller.signal });
    const queued = pool.run(JOBS, 'square', [5]);
    setTimeout(() => controller.abort(), 50);
    await assert.rejects(spinning, AbortedError);
    assert.equal(await queued, 25);
    assert.equal(lost, 1);
  } finally {
    onThreadLost(null);
    await pool.close();
  }
});
