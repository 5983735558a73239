// Build and run the gRPC server: EnvService plus standard health checking and reflection, over
// plaintext, TLS or mutual TLS, optionally behind bearer tokens, with Prometheus metrics on the side.

import * as grpc from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation } from 'grpc-health-check';
import { address } from './config.js';
import { getLogger } from './log.js';
import { NO_ENV } from './metrics.js';
import { loadContract, SERVICE_NAME } from './proto.js';
import { authInterceptor, requireSafeBind, serverCredentials, TokenFile } from './security.js';
import { EnvService, IMPLEMENTATION } from './service.js';

const log = getLogger('agentgym.node.server');

const identity = (buf) => buf;

export class Server {
  constructor(config) {
    // Before anything is built: a server that must not run is refused without side effects.
    requireSafeBind(config);
    this.tokens = config.auth_token_file ? new TokenFile(config.auth_token_file) : null;
    this.config = config;
    this.service = new EnvService(config);
    const metrics = this.service.metrics;
    // Every call but the health service's shows its token first (see security.js).
    const interceptors = this.tokens
      ? [authInterceptor(this.tokens, () => metrics.errors.inc({ env: NO_ENV, code: 'UNAUTHENTICATED' }))]
      : [];
    this.contract = loadContract();
    const mb = config.max_message_bytes;
    this.grpcServer = new grpc.Server({
      'grpc.max_receive_message_length': mb,
      'grpc.max_send_message_length': mb,
      // Notice vanished clients: ping idle connections, drop ones that do not answer.
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
      'grpc.keepalive_permit_without_calls': 1,
      // Thousands of episode streams share a client's one connection.
      'grpc.max_concurrent_streams': 1 << 20,
      'grpc-node.max_session_memory': 256,
      interceptors,
    });
    this.health = new HealthImplementation({ '': 'SERVING', [SERVICE_NAME]: 'SERVING' });
    this.port = null;
    this.metricsPort = null;
    this.stopping = null;
  }

  async start() {
    const methods = this.contract[SERVICE_NAME];
    const session = methods.Session;
    const listEnvs = methods.ListEnvs;
    // Both methods read raw bytes (identity deserializer) and decode them here: bytes that are not a
    // SessionRequest get an in-band INVALID_ARGUMENT instead of a dead stream, and bytes that are not
    // a ListEnvsRequest get INVALID_ARGUMENT (grpc-js itself would answer INTERNAL), as in Python.
    const definition = {
      ...methods,
      ListEnvs: { ...listEnvs, requestDeserialize: identity },
      Session: { ...session, requestDeserialize: identity },
    };
    this.grpcServer.addService(definition, {
      ListEnvs: (call, callback) => {
        try {
          call.request = listEnvs.requestDeserialize(call.request);
        } catch (err) {
          callback({
            code: grpc.status.INVALID_ARGUMENT,
            details: `could not parse a ListEnvsRequest from ${call.request.length} bytes: ${err.message}`,
          });
          return;
        }
        this.service.listEnvs(call, callback);
      },
      Session: (call) => this.service.session(call, session.requestDeserialize),
    });
    this.health.addToServer(this.grpcServer);
    new ReflectionService(this.contract).addToServer(this.grpcServer);

    const c = this.config;
    this.port = await new Promise((resolve, reject) => {
      this.grpcServer.bindAsync(address(c.host, c.port), serverCredentials(c), (err, port) => {
        if (err) reject(new Error(`could not bind ${address(c.host, c.port)}: ${err.message}`));
        else resolve(port);
      });
    });
    if (c.metrics_port !== null) this.metricsPort = await this.service.metrics.serve(c.host, c.metrics_port);
    this.service.startBackground();
    log.info('server started', {
      address: address(c.host, this.port),
      port: this.port,
      implementation: IMPLEMENTATION,
      envs: [...this.service.hosted.keys()].sort(),
      max_episodes: c.max_episodes,
      tls: Boolean(c.tls_cert),
      mutual_tls: Boolean(c.tls_client_ca),
      auth: this.tokens !== null,
      metrics_port: this.metricsPort,
    });
    return this;
  }

  /** Graceful: creates answer UNAVAILABLE, live episodes get the grace period, the rest are ended
   * with UNAVAILABLE, every env is freed, then the listener closes. */
  stop(graceS = this.config.grace_s) {
    this.stopping ??= (async () => {
      log.info('shutting down', { grace_s: graceS, live_episodes: this.service.capacity.live });
      this.health.setStatus('', 'NOT_SERVING');
      this.health.setStatus(SERVICE_NAME, 'NOT_SERVING');
      await this.service.drain(graceS);
      await new Promise((resolve) => {
        const force = setTimeout(() => {
          this.grpcServer.forceShutdown();
          resolve();
        }, 2000);
        this.grpcServer.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
      await this.service.close();
      await this.service.metrics.close(); // last: the drain stays visible to a scraper
      log.info('server stopped', { address: address(this.config.host, this.port), steps: this.service.steps });
    })();
    return this.stopping;
  }

  /** Skip what is left of the grace period (a second signal). */
  hurry() {
    this.service.drain(0);
  }
}
