// Sokoban: push every box onto a target in a small text-grid warehouse.
//
// Task ids 0-2999 are generated levels in three tiers of 1000 (1, 2 and 3 boxes on 7x7, 8x8 and
// 9x9 grids), sorted by difficulty; each is solvable by construction (see generate.js) in at most
// 16, 24 and 30 moves. The last 100 of each tier form the test split. The level depends only on
// the task id; the seed is echoed but changes nothing.
//
// One action is one move: up, down, left or right ("move up"/"push up" are accepted too). Walking
// into a box pushes it if the cell beyond is free. Solving gives reward 1 and ends the episode; a
// push that leaves a box stuck for good (on a dead cell, or frozen in a 2x2 block of walls and
// boxes off target) ends it as a failure. Anything else is answered with feedback and the grid.
//
// Execution: steps run inline (microseconds). Level generation and the expert's A* search run in
// the shared thread pool, awaited, so the event loop never blocks on them and the step timeout
// can abort them.

import { isMainThread } from 'node:worker_threads';
import { sharedPool } from '../../pool.js';
import { Env, outcome } from '../base.js';
import { Board, DIRECTIONS } from './board.js';
import * as generate from './generate.js';
import { TASK_COUNT, TASKS_PER_TIER, TEST_PER_TIER, TIERS } from './generate.js';

const GENERATE = new URL('./generate.js', import.meta.url);

/** Run generate.js's export `name`: in the thread pool when on the event loop, directly when
 * already off it (in `worker` execution mode the episode has a thread of its own). */
function offload(name, args, signal) {
  if (isMainThread) return sharedPool().run(GENERATE, name, args, { signal });
  return generate[name](...args);
}
const ACTION = /^(?:move |push |go )?(up|down|left|right)[.!]?$/;

const INSTRUCTION = `You are playing Sokoban in a small walled warehouse. Push every box onto a target square.

The warehouse is a grid of characters; row 0 is the top row and column 0 the leftmost column:
  #  wall            -  empty floor       .  target
  $  box             *  box on a target
  @  you             +  you, standing on a target
Every observation also gives the (row, column) of you, of each box and of each target.

One action moves you one square: up, down, left or right. Walking into a box pushes it one square the same way, but only when the square beyond it is floor or a target (not a wall, not another box). You push one box at a time and can never pull one, so a box pushed into a corner, or against a wall that has no target along it, is stuck for good: the episode then ends as a failure. Plan your pushes before you make them. Moves are limited.

Example:
environment:
#####
#@$.#
#####
You: (1, 1). Boxes: (1, 2). Targets: (1, 3). Boxes on targets: 0 of 1.
action: right
environment: You pushed a box right onto a target. Every box is on a target: solved!

Reply in exactly this format:
Thought:
your reasoning

Action:
up, down, left or right`;

// Levels already rebuilt on this thread, by task id (the pool thread has its own cache).
const levels = new Map();
const LEVEL_CACHE = 4096;

async function loadLevel(taskId, signal) {
  let lv = levels.get(taskId);
  if (!lv) {
    const data = await offload('levelData', [taskId], signal);
    lv = { ...data, board: new Board(data.width, data.height, data.walls, data.targets) };
    if (levels.size >= LEVEL_CACHE) levels.delete(levels.keys().next().value);
    levels.set(taskId, lv);
  }
  return lv;
}

const stateKey = (player, boxes) => `${player}:${boxes.join(',')}`;

function splitRanges(held) {
  return TIERS.map((_, i) => {
    const start = i * TASKS_PER_TIER;
    return held ? [start + TASKS_PER_TIER - TEST_PER_TIER, start + TASKS_PER_TIER] : [start, start + TASKS_PER_TIER - TEST_PER_TIER];
  });
}

export class Sokoban extends Env {
  static name = 'sokoban';
  static description = 'Push every box onto a target in a text-grid warehouse (generated levels, 1-3 boxes).';
  static instruction = INSTRUCTION;
  static actionFormat = 'up | down | left | right';
  static maxRounds = 40;
  static taskCount = TASK_COUNT;
  static splits = {
    train: splitRanges(false),
    test: splitRanges(true),
    ...Object.fromEntries(TIERS.map((t, i) => [t.name, [[i * TASKS_PER_TIER, (i + 1) * TASKS_PER_TIER]]])),
  };
  static execution = 'inline';

  async reset(taskId, _seed, _options, { signal } = {}) {
    this.taskId = taskId;
    this.level = await loadLevel(taskId, signal);
    this.board = this.level.board;
    this.player = this.level.player;
    this.boxes = this.level.boxes;
    this.plan = new Map();
    this.#follow(this.level.solution);
    return this.#observe('A new puzzle. Push every box onto a target.', {});
  }

  step(action) {
    const m = ACTION.exec(action.toLowerCase());
    if (!m) {
      const shown = action.length > 80 ? `${action.slice(0, 80)}...` : action;
      return this.#observe(`"${shown}" is not a valid action. Valid actions: up, down, left, right.`, { invalid: 'true' });
    }
    const dir = m[1];
    const next = this.board.move(this.player, this.boxes, DIRECTIONS.indexOf(dir));
    if (next.kind === 'wall') return this.#observe(`You cannot move ${dir}: a wall is in the way.`, { blocked: 'true' });
    if (next.kind === 'blocked') {
      return this.#observe(`You cannot push the box ${dir}: a wall or another box is behind it.`, { blocked: 'true' });
    }
    this.player = next.player;
    this.boxes = next.boxes;
    if (next.kind === 'move') return this.#observe(`You moved ${dir}.`, {});
    const onto = this.board.isTarget[next.pushed] ? ' onto a target' : '';
    const pushed = `You pushed a box ${dir}${onto}.`;
    if (this.board.solved(this.boxes)) {
      return this.#observe(`${pushed} Every box is on a target: solved!`, {}, { reward: 1.0, done: true, success: true });
    }
    if (this.board.stuck(next.pushed, this.boxes)) {
      return this.#observe(
        `${pushed} That box is now stuck where it can never reach a target, so the puzzle cannot be solved. The episode is over.`,
        { stuck: 'true' },
        { done: true },
      );
    }
    return this.#observe(pushed, {});
  }

  /** The next move of a shortest solution from here: the level's own solution while the agent
   * follows it, otherwise a fresh A* search (in the thread pool). From a state with no solution
   * (the agent boxed itself in without a box being stuck yet) it answers a move that changes
   * the state, so an expert rollout still ends, by truncation. */
  async expertAction({ signal } = {}) {
    const known = this.plan.get(stateKey(this.player, this.boxes));
    if (known) return known;
    const moves = await offload('solveState', [this.taskId, this.player, this.boxes], signal);
    if (moves && moves.length > 0) {
      this.#follow(moves);
      return moves[0];
    }
    return (
      DIRECTIONS.find((d, i) => {
        const kind = this.board.move(this.player, this.boxes, i).kind;
        return kind === 'move' || kind === 'push';
      }) ?? 'up'
    );
  }

  /** Remember `moves` as the plan from the current state onward. */
  #follow(moves) {
    this.plan.clear();
    let player = this.player;
    let boxes = this.boxes;
    for (const dir of moves) {
      this.plan.set(stateKey(player, boxes), dir);
      ({ player, boxes } = this.board.move(player, boxes, DIRECTIONS.indexOf(dir)));
    }
  }

  #observe(feedback, extraInfo, fields = {}) {
    const b = this.board;
    const at = (cell) => `(${b.row(cell)}, ${b.col(cell)})`;
    const onTargets = b.onTargets(this.boxes);
    const observation = [
      feedback,
      '',
      ...b.render(this.player, this.boxes),
      `You: ${at(this.player)}. Boxes: ${this.boxes.map(at).join(', ')}. Targets: ${b.targets.map(at).join(', ')}. ` +
        `Boxes on targets: ${onTargets} of ${this.boxes.length}.`,
    ].join('\n');
    return outcome(observation, {
      ...fields,
      availableActions: fields.done ? [] : DIRECTIONS,
      info: { tier: this.level.tier, boxes_on_targets: String(onTargets), boxes: String(this.boxes.length), ...extraInfo },
    });
  }
}
