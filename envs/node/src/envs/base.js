// The env SDK for JavaScript, mirroring envs/base.py: an environment is one class with static
// metadata and `reset`/`step` (plus, optionally, `expertAction`). The server owns everything
// cross-cutting: step counting, truncation, the score when the env sets none, timeouts, capacity
// and errors.
//
// Methods may return a value or a Promise. They receive `{signal}`, an AbortSignal that fires when
// the server gives up on the call (step timeout, the client went away): long async work should
// stop when it fires.

/** Raised by an env for a request it cannot serve (a bad create option): INVALID_ARGUMENT. */
export class EnvError extends Error {
  constructor(message) {
    super(message);
    this.name = 'EnvError';
  }
}

/**
 * What reset and step return.
 * @param {string} observation
 * @param {{reward?: number, done?: boolean, success?: boolean, score?: number|null,
 *          availableActions?: string[], info?: Record<string, string>}} [fields]
 */
export function outcome(observation, fields = {}) {
  return {
    observation,
    reward: fields.reward ?? 0,
    done: fields.done ?? false,
    success: fields.success ?? false,
    // The episode's score so far as the benchmark reports it; null: the server sums rewards.
    score: fields.score ?? null,
    availableActions: fields.availableActions ?? [],
    info: fields.info ?? {},
  };
}

export class Env {
  // --- metadata (static; `configure` may adjust data-dependent ones) ---------------------------
  static name = ''; // lower case, e.g. "sokoban"
  static description = '';
  static instruction = ''; // the ReAct instruction: the first user turn of a conversation
  static actionFormat = '';
  static maxRounds = 0;
  static taskCount = 0;
  /** Named subsets of task ids: {train: [[start, end), ...], ...}. */
  static splits = {};
  static successThreshold = 1.0;
  /**
   * Where the server runs the env's code:
   *   inline - on the event loop, for code whose synchronous parts take microseconds; async work
   *            (awaited) is bounded by the step timeout through a timer.
   *   worker - a worker thread of its own per episode: blocking or CPU-heavy code; the step
   *            timeout terminates the thread, so even an endless loop costs only its episode.
   */
  static execution = 'inline';
  /** Most live episodes of this env per server; null for the server's global limit. */
  static maxEpisodes = null;
  /** Create options this env accepts: name -> one-line help. Unknown options are refused. */
  static createOptions = {};
  /** Hidden envs (test fixtures) are hosted only when named explicitly. */
  static hidden = false;

  /** Called once per server (and per worker thread) before any episode, with this env's settings. */
  static configure(_settings) {}

  /** Seed used when a create leaves it unset (a BigInt, like every seed). */
  static defaultSeed(taskId) {
    return BigInt(taskId);
  }

  static hasExpert() {
    return this.prototype.expertAction !== Env.prototype.expertAction;
  }

  // --- the episode ---------------------------------------------------------------------------------
  /** Start task `taskId` (already range-checked; seed is a BigInt) and return the first outcome. */
  reset(_taskId, _seed, _options, _ctx) {
    throw new Error(`${this.constructor.name} must implement reset`);
  }

  /** Apply one action (non-empty, trimmed). Bad actions get an observation, not an exception. */
  step(_action, _ctx) {
    throw new Error(`${this.constructor.name} must implement step`);
  }

  /** The instruction for the current episode; override when it depends on the task. */
  episodeInstruction() {
    return this.constructor.instruction;
  }

  /** The action an expert takes in the current state. Override to give the env an expert. */
  expertAction(_ctx) {
    throw new Error(`env ${this.constructor.name} has no expert`);
  }

  /** Release resources. Called once when the episode ends for any reason. */
  close() {}
}
