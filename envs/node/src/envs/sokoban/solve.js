// A* over single moves: finds a shortest solution (fewest moves) from any state of a board.
//
// States are (player cell, sorted box cells), packed into one integer key (cells < 2^7 and at
// most 6 boxes keep keys below 2^53). The heuristic is the sum of each box's push distance to its
// nearest target: every push moves one box one cell and costs one move, so it never overestimates
// and A* returns an optimal plan. States with a box on a dead cell or frozen in a 2x2 block are
// pruned: no solution passes through them.

import { DIRECTIONS } from './board.js';

class MinHeap {
  constructor() {
    this.items = [];
  }

  get length() {
    return this.items.length;
  }

  // Items are [f, tie, key]; smaller f first, then the larger g (tie = -g) to dive toward goals.
  push(item) {
    const a = this.items;
    a.push(item);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(a[i], a[p])) break;
      [a[i], a[p]] = [a[p], a[i]];
      i = p;
    }
  }

  pop() {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && less(a[l], a[m])) m = l;
        if (r < a.length && less(a[r], a[m])) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m], a[i]];
        i = m;
      }
    }
    return top;
  }
}

function less(x, y) {
  return x[0] < y[0] || (x[0] === y[0] && (x[1] < y[1] || (x[1] === y[1] && x[2] < y[2])));
}

/**
 * A shortest list of directions ("up", ...) that solves the board from (player, boxes), [] when
 * already solved, or null when there is none (none within `maxNodes` expanded states, or none of
 * at most `maxMoves` moves: states that cannot finish within it are never expanded).
 */
export function solve(board, player, boxes, { maxNodes = 200_000, maxMoves = Infinity } = {}) {
  const n = board.size;
  const k = boxes.length;
  const encode = (p, bs) => {
    let key = 0;
    for (let i = k - 1; i >= 0; i--) key = key * n + bs[i];
    return key * n + p;
  };
  const decode = (key) => {
    const p = key % n;
    let rest = Math.floor(key / n);
    const bs = new Array(k);
    for (let i = 0; i < k; i++) {
      bs[i] = rest % n;
      rest = Math.floor(rest / n);
    }
    return [p, bs];
  };
  const h = (bs) => bs.reduce((sum, b) => sum + board.pushDistance[b], 0);

  if (board.solved(boxes)) return [];
  const h0 = h(boxes);
  if (!(h0 <= maxMoves)) return null; // Infinity: a box starts on a dead cell
  const start = encode(player, boxes);
  const best = new Map([[start, 0]]); // key -> fewest moves found
  const parent = new Map(); // key -> [previous key, direction index]
  const open = new MinHeap();
  open.push([h0, 0, start]);
  let expanded = 0;
  while (open.length > 0) {
    const [, negG, key] = open.pop();
    const g = -negG;
    if (g > best.get(key)) continue; // a stale entry
    if (++expanded > maxNodes) return null;
    const [p, bs] = decode(key);
    if (board.solved(bs)) return path(parent, start, key); // goal test on pop: h is consistent
    for (let dir = 0; dir < DIRECTIONS.length; dir++) {
      const next = board.move(p, bs, dir);
      if (next.kind === 'wall' || next.kind === 'blocked') continue;
      if (next.kind === 'push' && board.stuck(next.pushed, next.boxes)) continue;
      const nextKey = encode(next.player, next.boxes);
      const known = best.get(nextKey);
      if (known !== undefined && known <= g + 1) continue;
      const f = g + 1 + h(next.boxes);
      if (f > maxMoves) continue;
      best.set(nextKey, g + 1);
      parent.set(nextKey, [key, dir]);
      open.push([f, -(g + 1), nextKey]);
    }
  }
  return null;
}

function path(parent, start, end) {
  const moves = [];
  for (let key = end; key !== start; ) {
    const [prev, dir] = parent.get(key);
    moves.push(DIRECTIONS[dir]);
    key = prev;
  }
  return moves.reverse();
}
