// The contract, loaded at run time from the same protos/agentgym/v1/env.proto the Python side
// compiles (no generated code), plus the standard health proto so reflection describes both.

import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import protoLoader from '@grpc/proto-loader';
import { protoPath as healthProtoPath } from 'grpc-health-check';

export const SERVICE_NAME = 'agentgym.v1.EnvService';
export const HEALTH_SERVICE_NAME = 'grpc.health.v1.Health';

/** envs/node/src -> the repository's protos/ folder (override with AGENTGYM_PROTO_DIR). */
export const PROTO_DIR = process.env.AGENTGYM_PROTO_DIR ?? fileURLToPath(new URL('../../../protos', import.meta.url));
export const ENV_PROTO = 'agentgym/v1/env.proto';

export function loadContract() {
  if (!existsSync(`${PROTO_DIR}/${ENV_PROTO}`)) {
    throw new Error(`cannot find ${ENV_PROTO} under ${PROTO_DIR}; set AGENTGYM_PROTO_DIR to the protos/ folder`);
  }
  // keepCase: field names as in the .proto; longs as strings: uint64 ids and seeds keep all 64 bits.
  return protoLoader.loadSync([ENV_PROTO, healthProtoPath], {
    includeDirs: [PROTO_DIR],
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
}

/** gRPC status codes (google.rpc.Code numbers) by name. */
export const Code = Object.freeze({
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
});
export const CODE_NAME = Object.fromEntries(Object.entries(Code).map(([k, v]) => [v, k]));
