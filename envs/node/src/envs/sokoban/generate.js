// Sokoban levels, generated from the task id and solvable by construction.
//
// A level is made backwards: carve a connected room by a random walk, put every box on a target,
// then let the player walk randomly and *pull* boxes (the reverse of a push). Every pull can be
// undone by a push, so each state on that walk is solvable in at most as many moves as the walk
// took. Of the states where every box is off its target, the one whose boxes are furthest (in
// pushes) from the targets is kept, and the A* solver then finds its shortest solution, which
// must lie within the tier's move range. Everything is drawn from an Rng seeded by the task id,
// so a task id always gives the same level, byte for byte.

import { Board } from './board.js';
import { Rng } from './rng.js';
import { solve } from './solve.js';

/** Difficulty tiers, in task-id order (tasks are sorted by difficulty, as TextCraft's are). */
export const TIERS = [
  { name: 'easy', boxes: 1, width: 7, height: 7, minMoves: 4, maxMoves: 16 },
  { name: 'medium', boxes: 2, width: 8, height: 8, minMoves: 8, maxMoves: 24 },
  { name: 'hard', boxes: 3, width: 9, height: 9, minMoves: 12, maxMoves: 30 },
];
export const TASKS_PER_TIER = 1000;
export const TASK_COUNT = TIERS.length * TASKS_PER_TIER;
// The last 100 tasks of each tier are held out for testing.
export const TEST_PER_TIER = 100;

const WALK_STEPS = 200; // random reverse moves tried per attempt
const MAX_ATTEMPTS = 500;
const CANDIDATES = 6; // walk states solved per attempt

export function tierOf(taskId) {
  return TIERS[Math.floor(taskId / TASKS_PER_TIER)];
}

/** The room: walls everywhere except cells carved by a random walk (so all floor is connected). */
function carveRoom(rng, width, height) {
  const walls = new Uint8Array(width * height).fill(1);
  const inner = (width - 2) * (height - 2);
  const want = Math.round(inner * (0.55 + 0.15 * rng.next()));
  let r = 1 + rng.int(height - 2);
  let c = 1 + rng.int(width - 2);
  let carved = 0;
  const steps = [
    [-1, 0],
    [1, 0],
    [0, -1],
    [0, 1],
  ];
  let [dr, dc] = rng.pick(steps);
  while (carved < want) {
    const cell = r * width + c;
    if (walls[cell]) {
      walls[cell] = 0;
      carved++;
    }
    if (rng.next() < 0.4) [dr, dc] = rng.pick(steps); // keep going straight some of the time
    const nr = r + dr;
    const nc = c + dc;
    if (nr >= 1 && nr <= height - 2 && nc >= 1 && nc <= width - 2) {
      r = nr;
      c = nc;
    }
  }
  return walls;
}

function floorCells(walls) {
  const cells = [];
  for (let i = 0; i < walls.length; i++) if (!walls[i]) cells.push(i);
  return cells;
}

/** One attempt at a level; null when it does not meet the tier's constraints. */
function attempt(rng, tier) {
  const walls = carveRoom(rng, tier.width, tier.height);
  const floor = floorCells(walls);
  if (floor.length < tier.boxes + 4) return null;
  const shuffled = rng.shuffle(floor.slice());
  const targets = shuffled.slice(0, tier.boxes);
  const board = new Board(tier.width, tier.height, walls, targets);
  let boxes = board.targets.slice();
  let player = shuffled[tier.boxes];

  // Walk backwards: move the player at random, pulling the box behind it most of the time.
  const seen = new Map(); // state -> candidate, for states with every box off its target
  for (let step = 1; step <= WALK_STEPS; step++) {
    const dir = rng.int(4);
    const d = board.offsets[dir];
    const to = player + d;
    if (walls[to] || boxes.includes(to)) continue;
    const behind = player - d;
    const hit = boxes.indexOf(behind);
    if (hit >= 0 && rng.next() < 0.8) {
      boxes = boxes.slice();
      boxes[hit] = player;
      boxes.sort((a, b) => a - b);
    }
    player = to;
    if (boxes.some((b) => board.isTarget[b])) continue;
    const key = `${player}:${boxes.join(',')}`;
    if (seen.has(key)) continue;
    const spread = boxes.reduce((sum, b) => sum + board.pushDistance[b], 0);
    seen.set(key, { spread, step, player, boxes });
  }
  // The boxes furthest from the targets make the hardest levels: solve the few most spread-out
  // states and keep the one with the longest shortest solution that fits the tier.
  const candidates = [...seen.values()]
    .sort((a, b) => b.spread - a.spread || a.step - b.step)
    .slice(0, CANDIDATES);
  let best = null;
  for (const cand of candidates) {
    const solution = solve(board, cand.player, cand.boxes, { maxNodes: 400_000, maxMoves: tier.maxMoves });
    if (solution === null || solution.length < tier.minMoves || solution.length > tier.maxMoves) continue;
    if (best === null || solution.length > best.solution.length) {
      best = { board, player: cand.player, boxes: cand.boxes, solution };
    }
  }
  return best;
}

/**
 * The level of a task: `{tier, board, player, boxes, solution}` where `solution` is a shortest
 * list of moves solving it. Deterministic in the task id.
 */
export function generateLevel(taskId) {
  const tier = tierOf(taskId);
  if (!tier) throw new RangeError(`sokoban task ${taskId} does not exist (0..${TASK_COUNT - 1})`);
  const rng = new Rng(`agentgym-sokoban-${taskId}`);
  for (let i = 0; i < MAX_ATTEMPTS; i++) {
    const level = attempt(rng, tier);
    if (level) return { tier: tier.name, ...level };
  }
  // Not reached for any task id in range (the tests generate every one of them).
  throw new Error(`sokoban task ${taskId}: no level found in ${MAX_ATTEMPTS} attempts`);
}

// Levels are small; keep the recently used ones so reset and the expert do not regenerate them.
const cache = new Map();
const CACHE_SIZE = 4096;

export function level(taskId) {
  let lv = cache.get(taskId);
  if (lv) {
    cache.delete(taskId); // re-insert: Map order is the LRU order
  } else {
    lv = generateLevel(taskId);
    if (cache.size >= CACHE_SIZE) cache.delete(cache.keys().next().value);
  }
  cache.set(taskId, lv);
  return lv;
}



// --- entry points for pool threads (plain, structured-cloneable data in and out) -----------------

/** A task's level as plain data, for another thread to rebuild with `new Board(...)`. */
export function levelData(taskId) {
  const lv = level(taskId);
  const b = lv.board;
  return {
    tier: lv.tier,
    width: b.width,
    height: b.height,
    walls: b.walls,
    targets: b.targets,
    player: lv.player,
    boxes: lv.boxes,
    solution: lv.solution,
  };
}

/** A shortest solution of task `taskId` from the state (player, boxes), or null if none. */
export function solveState(taskId, player, boxes) {
  return solve(level(taskId).board, player, boxes);
}
