#!/usr/bin/env node
// `node envs/node/src/main.js [flags]`: serve the JavaScript envs until SIGINT/SIGTERM, then shut
// down gracefully (a second signal skips the rest of the grace period).

import { parseConfig, USAGE } from './config.js';
import { configureLogging, getLogger } from './log.js';
import { Server } from './server.js';

const log = getLogger('agentgym.node.main');

async function main(argv) {
  let parsed;
  try {
    parsed = parseConfig(argv);
    configureLogging(parsed.log);
  } catch (err) {
    process.stderr.write(`agentgym-node: ${err.message}\n\n${USAGE}`);
    return 2;
  }
  if (parsed.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  let server;
  try {
    server = await new Server(parsed.config).start();
  } catch (err) {
    log.error('could not start', { error: err.message });
    return 1;
  }
  await new Promise((resolve) => {
    let signals = 0;
    const onSignal = (signal) => {
      signals++;
      if (signals === 1) {
        log.info('signal received', { signal });
        server.stop().then(resolve);
      } else {
        log.info('second signal: ending live episodes now', { signal });
        server.hurry();
      }
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
  return 0;
}

process.on('unhandledRejection', (err) => {
  log.error('unhandled rejection', { error: String(err?.stack ?? err) });
});

main(process.argv.slice(2)).then((code) => process.exit(code));
