// Sokoban: every task is generated, solvable within its tier's bounds and deterministic; the env
// and its expert behave as documented.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, describe, test } from 'node:test';
import { closeSharedPool } from '../src/pool.js';
import { Board, DIRECTIONS } from '../src/envs/sokoban/board.js';
import { generateLevel, TASK_COUNT, TIERS, tierOf } from '../src/envs/sokoban/generate.js';
import { Sokoban } from '../src/envs/sokoban/index.js';
import { solve } from '../src/envs/sokoban/solve.js';

after(() => closeSharedPool());

function replay(board, player, boxes, moves) {
  for (const m of moves) ({ player, boxes } = board.move(player, boxes, DIRECTIONS.indexOf(m)));
  return { player, boxes };
}

describe('levels', () => {
  test('every task has a level whose stored shortest solution solves it within its tier', () => {
    const digest = createHash('sha256');
    for (let id = 0; id < TASK_COUNT; id++) {
      const lv = generateLevel(id);
      const tier = tierOf(id);
      assert.equal(lv.tier, tier.name);
      assert.equal(lv.boxes.length, tier.boxes);
      assert.ok(lv.boxes.every((b) => !lv.board.isTarget[b]), `task ${id}: a box starts on a target`);
      assert.ok(lv.solution.length >= tier.minMoves && lv.solution.length <= tier.maxMoves, `task ${id}: ${lv.solution.length} moves`);
      const end = replay(lv.board, lv.player, lv.boxes, lv.solution);
      assert.ok(lv.board.solved(end.boxes), `task ${id}: its solution does not solve it`);
      assert.ok(lv.solution.length <= Sokoban.maxRounds);
      digest.update(lv.board.render(lv.player, lv.boxes).join('\n') + '\n');
    }
    // Pins the level set: the same task id must give the same level on every machine and version.
    assert.equal(digest.digest('hex').slice(0, 16), LEVELS_DIGEST);
  });

  test('generation is deterministic', () => {
    for (const id of [0, 999, 1000, 2999]) {
      const a = generateLevel(id);
      const b = generateLevel(id);
      assert.deepEqual(a.board.render(a.player, a.boxes), b.board.render(b.player, b.boxes));
      assert.deepEqual(a.solution, b.solution);
    }
  });

  test('tiers partition the task ids', () => {
    assert.equal(TASK_COUNT, 3000);
    assert.deepEqual(
      TIERS.map((t) => t.boxes),
      [1, 2, 3],
    );
    assert.throws(() => generateLevel(TASK_COUNT), RangeError);
  });
});

// A hand-made corridor: the player must go around to push the box left onto the target.
//   #######
//   #.-$-@#
//   #-----#
//   #######
function corridor() {
  const rows = ['#######', '#.-$-@#', '#-----#', '#######'];
  const width = rows[0].length;
  const walls = new Uint8Array(width * rows.length);
  rows.forEach((row, r) => [...row].forEach((ch, c) => (walls[r * width + c] = ch === '#' ? 1 : 0)));
  const cell = (r, c) => r * width + c;
  return { board: new Board(width, rows.length, walls, [cell(1, 1)]), player: cell(1, 5), boxes: [cell(1, 3)], cell };
}

describe('solver and rules', () => {
  test('A* finds a shortest solution', () => {
    const { board, player, boxes } = corridor();
    assert.deepEqual(solve(board, player, boxes), ['left', 'left', 'left']);
  });

  test('dead cells and frozen boxes are stuck; a box on a target is not', () => {
    const { board, cell } = corridor();
    assert.ok(board.isDead(cell(2, 5)), 'a corner is dead');
    assert.ok(board.isDead(cell(2, 3)), 'along the bottom wall, with no target there, is dead');
    assert.ok(!board.isDead(cell(1, 3)));
    assert.ok(board.stuck(cell(2, 3), [cell(2, 3)]));
    assert.ok(!board.stuck(cell(1, 1), [cell(1, 1)]));
  });

  test('no solution from a stuck state', () => {
    const { board, cell } = corridor();
    assert.equal(solve(board, cell(1, 5), [cell(2, 5)]), null);
  });
});

describe('env', () => {
  async function play(taskId, actions) {
    const env = new Sokoban();
    const first = await env.reset(taskId, 0n, {});
    const outs = [];
    for (const a of actions) outs.push(await env.step(a));
    return { env, first, outs };
  }

  test('the expert solves tasks of every tier within max_rounds', async () => {
    for (const taskId of [0, 1, 500, 999, 1000, 1500, 1999, 2000, 2500, 2999]) {
      const env = new Sokoban();
      let out = await env.reset(taskId, BigInt(taskId), {});
      let steps = 0;
      while (!out.done && steps < Sokoban.maxRounds) {
        out = env.step(await env.expertAction({}));
        steps++;
      }
      assert.ok(out.success && out.reward === 1, `task ${taskId} not solved in ${steps} steps`);
      assert.equal(steps, generateLevel(taskId).solution.length);
    }
  });

  test('the expert replans after the agent deviates', async () => {
    const env = new Sokoban();
    let out = await env.reset(2100, 2100n, {});
    // Wander off the plan (moves that change the state and leave no box stuck), then follow the expert.
    let wandered = 0;
    for (const d of ['left', 'up', 'right', 'down', 'down', 'left']) {
      const before = out.observation;
      const next = env.step(d);
      if (next.done) {
        out = await env.reset(2100, 2100n, {});
        continue;
      }
      out = next;
      if (out.observation !== before) wandered++;
    }
    assert.ok(wandered > 0);
    let steps = 0;
    while (!out.done && steps < 60) {
      out = env.step(await env.expertAction({}));
      steps++;
    }
    assert.ok(out.success, 'the expert did not solve the task after a detour');
  });

  test('observations show the grid and coordinates; bad actions get feedback', async () => {
    const { first, outs } = await play(0, ['jump', 'MOVE LEFT', 'left.']);
    assert.match(first.observation, /^A new puzzle\./);
    assert.match(first.observation, /\n#######\n/);
    assert.match(first.observation, /You: \(\d+, \d+\)\. Boxes: \(\d+, \d+\)\. Targets: \(\d+, \d+\)\. Boxes on targets: 0 of 1\./);
    assert.deepEqual(first.availableActions, DIRECTIONS);
    assert.equal(outs[0].info.invalid, 'true');
    assert.match(outs[0].observation, /"jump" is not a valid action/);
    assert.equal(outs[1].info.invalid, undefined);
    assert.equal(outs[2].info.invalid, undefined);
  });

  test('walking into a wall is refused with feedback and changes nothing', async () => {
    const env = new Sokoban();
    const first = await env.reset(0, 0n, {});
    const grid = (o) => o.observation.split('\n').slice(2).join('\n');
    for (const d of DIRECTIONS) {
      const out = env.step(d);
      if (out.info.blocked) {
        assert.match(out.observation, /^You cannot/);
        assert.equal(grid(out), grid(first));
        return;
      }
      await env.reset(0, 0n, {});
    }
    assert.fail('task 0 has no wall next to the start');
  });

  test('pushing a box into a dead corner ends the episode as a failure', async () => {
    // Try every short move sequence on a few easy tasks until a push makes a box stuck.
    for (let taskId = 0; taskId < 50; taskId++) {
      for (let seq = 0; seq < 256; seq++) {
        const env = new Sokoban();
        await env.reset(taskId, 0n, {});
        for (let i = 0; i < 4; i++) {
          const out = env.step(DIRECTIONS[(seq >> (2 * i)) & 3]);
          if (out.info.stuck) {
            assert.ok(out.done && !out.success && out.reward === 0);
            assert.match(out.observation, /stuck/);
            assert.deepEqual(out.availableActions, []);
            return;
          }
          if (out.done) break;
        }
      }
    }
    assert.fail('no stuck push found');
  });
});

const LEVELS_DIGEST = 'ec68e4022153aff7';
