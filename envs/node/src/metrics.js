// Prometheus metrics (prom-client), with the Python server's names (agentgym_*), served over HTTP on
// their own port (`--metrics-port`) on the server's host. Counting is always on and costs a map
// update; the HTTP server and prom-client's process metrics start only when a port is given.

import { createServer } from 'node:http';
import client from 'prom-client';

/** Label values that are not an env name. */
export const NOT_HOSTED = '(not hosted)'; // a create naming an env this server does not host
export const NO_ENV = '(none)'; // a request on a stream with no episode yet; a call refused for auth
export const SHARED_POOL = '(shared pool)'; // the thread pool inline envs use for heavy work

// Seconds: from a microsecond Sokoban step to a reset that nearly hits the default 30 s step timeout.
const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export class Metrics {
  /** @param {import('./service.js').Capacity} capacity read at each scrape for the gauges */
  constructor(capacity) {
    this.registry = new client.Registry();
    const registers = [this.registry];
    const counter = (name, help, labelNames) => new client.Counter({ name, help, labelNames, registers });
    const histogram = (name, help) => new client.Histogram({ name, help, labelNames: ['env'], buckets: BUCKETS, registers });

    new client.Gauge({
      name: 'agentgym_live_episodes',
      help: 'Live episodes, per env.',
      labelNames: ['env'],
      registers,
      collect() {
        for (const [env, live] of capacity.livePerEnv) this.set({ env }, live);
      },
    });
    new client.Gauge({
      name: 'agentgym_capacity',
      help: 'Most live episodes an env may have (the least of max_episodes, max_episodes_per_env and its own limit).',
      labelNames: ['env'],
      registers,
      collect() {
        for (const [env, limit] of capacity.perEnv) this.set({ env }, limit);
      },
    });
    this.creates = counter('agentgym_creates_total', 'Create requests, by env and outcome (gRPC code name).', ['env', 'code']);
    this.steps = counter('agentgym_steps_total', 'Step requests, by env and outcome (gRPC code name).', ['env', 'code']);
    this.errors = counter(
      'agentgym_errors_total',
      'Errors answered (in band, as a stream status, or a call refused for auth), by env and gRPC code name.',
      ['env', 'code'],
    );
    this.refusals = counter(
      'agentgym_refusals_total',
      'Requests refused by a limit; reason is the setting (max_episodes, max_episodes_per_env, max_action_bytes, draining).',
      ['env', 'reason'],
    );
    this.workerRestarts = counter(
      'agentgym_worker_restarts_total',
      'Worker threads lost (step timeout, crash, episode ended mid-call) and so replaced.',
      ['env'],
    );
    this.stepSeconds = histogram('agentgym_step_seconds', 'Seconds the env took for one step, failed ones included.');
    this.resetSeconds = histogram('agentgym_reset_seconds', "Seconds the env took for one reset (create's, and reset requests).");
    this.http = null;
  }

  /** Serve /metrics (and /) on host:port; resolves to the bound port (port 0 picks a free one). */
  async serve(host, port) {
    client.collectDefaultMetrics({ register: this.registry });
    const server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (path !== '/metrics' && path !== '/') {
        res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end('not found: metrics are at /metrics\n');
        return;
      }
      this.registry.metrics().then(
        (text) => res.writeHead(200, { 'Content-Type': this.registry.contentType }).end(text),
        (err) => res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' }).end(`collecting metrics failed: ${err}\n`),
      );
    });
    await new Promise((resolve, reject) => {
      server.once('error', (err) => reject(new Error(`could not serve metrics on ${host}:${port}: ${err.message}`)));
      server.listen(port, host, resolve);
    });
    this.http = server;
    return server.address().port;
  }

  async close() {
    const server = this.http;
    this.http = null;
    if (!server) return;
    await new Promise((resolve) => {
      server.close(resolve);
      server.closeAllConnections(); // a scraper's keep-alive connection must not hold the shutdown
    });
  }
}
