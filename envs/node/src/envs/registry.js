// The envs this server can host. Adding an env: write its module and list it here.

import { Conformance } from './conformance.js';
import { Sokoban } from './sokoban/index.js';

const CLASSES = [Conformance, Sokoban];

const envs = new Map();

function register(cls) {
  for (const attr of ['instruction', 'actionFormat', 'maxRounds', 'taskCount']) {
    if (!cls[attr]) throw new TypeError(`env class ${cls.name} must define static ${attr}`);
  }
  if (!/^[a-z0-9_-]+$/.test(cls.name)) {
    throw new TypeError(`env name ${JSON.stringify(cls.name)} must be lower-case letters, digits, '-' or '_'`);
  }
  if (!['inline', 'worker'].includes(cls.execution)) {
    throw new TypeError(`env ${cls.name}: execution must be inline or worker`);
  }
  envs.set(cls.name, cls);
}

for (const cls of CLASSES) register(cls);

export function names({ includeHidden = false } = {}) {
  return [...envs.keys()].filter((n) => includeHidden || !envs.get(n).hidden).sort();
}

export function get(name) {
  const cls = envs.get(name);
  if (!cls) throw new Error(`no env named ${JSON.stringify(name)}; known: ${names({ includeHidden: true }).join(', ')}`);
  return cls;
}

const configured = new Set();

/** The env class, configured once per thread with its settings. */
export function configure(name, settings = {}) {
  const cls = get(name);
  if (!configured.has(name)) {
    cls.configure(settings);
    configured.add(name);
  }
  return cls;
}
