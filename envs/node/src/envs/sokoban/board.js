// The Sokoban board: a fixed layout (walls, targets) and the rules for moving on it.
//
// Cells are numbered row-major (cell = row * width + col). A state is the player's cell and the
// sorted list of box cells; it is small and immutable, so the solver can hash it.

export const DIRECTIONS = ['up', 'down', 'left', 'right'];

// Grid symbols (the XSB Sokoban notation, with '-' for floor so no line has significant spaces).
export const SYMBOL = {
  wall: '#',
  floor: '-',
  target: '.',
  box: '$',
  boxOnTarget: '*',
  player: '@',
  playerOnTarget: '+',
};

export class Board {
  /**
   * @param {number} width
   * @param {number} height
   * @param {Uint8Array} walls 1 where a cell is a wall (the border must be walls)
   * @param {number[]} targets cells of the targets, one per box
   */
  constructor(width, height, walls, targets) {
    this.width = width;
    this.height = height;
    this.size = width * height;
    this.walls = walls;
    this.targets = [...targets].sort((a, b) => a - b);
    this.isTarget = new Uint8Array(this.size);
    for (const t of this.targets) this.isTarget[t] = 1;
    this.offsets = [-width, width, -1, 1]; // in DIRECTIONS order
    this.pushDistance = this.#pushDistances();
  }

  /** Pushes a lone box needs from each cell to its nearest target (Infinity: a dead cell, from which
   * no target can ever be reached). Found by pulling boxes backwards from every target. */
  #pushDistances() {
    const dist = new Array(this.size).fill(Infinity);
    const queue = [];
    for (const t of this.targets) {
      dist[t] = 0;
      queue.push(t);
    }
    for (let head = 0; head < queue.length; head++) {
      const cell = queue[head];
      for (const d of this.offsets) {
        // Pulling the box from `cell` to `cell + d` needs the player standing at `cell + 2d`.
        const to = cell + d;
        const stand = cell + 2 * d;
        if (stand < 0 || stand >= this.size || this.walls[to] || this.walls[stand]) continue;
        if (dist[to] === Infinity) {
          dist[to] = dist[cell] + 1;
          queue.push(to);
        }
      }
    }
    return dist;
  }

  isDead(cell) {
    return this.pushDistance[cell] === Infinity;
  }

  row(cell) {
    return Math.floor(cell / this.width);
  }

  col(cell) {
    return cell % this.width;
  }

  /**
   * One move of the player. Returns `{kind, player, boxes}` where kind is "move", "push", "wall"
   * (walked into a wall) or "blocked" (the box behind cannot move); on wall/blocked the state is
   * unchanged.
   */
  move(player, boxes, direction) {
    const d = this.offsets[direction];
    const to = player + d;
    if (this.walls[to]) return { kind: 'wall', player, boxes };
    const hit = boxes.indexOf(to);
    if (hit < 0) return { kind: 'move', player: to, boxes };
    const beyond = to + d;
    if (this.walls[beyond] || boxes.includes(beyond)) return { kind: 'blocked', player, boxes };
    const moved = boxes.slice();
    moved[hit] = beyond;
    moved.sort((a, b) => a - b);
    return { kind: 'push', player: to, boxes: moved, pushed: beyond };
  }

  solved(boxes) {
    return boxes.every((b) => this.isTarget[b] === 1);
  }

  onTargets(boxes) {
    return boxes.reduce((n, b) => n + this.isTarget[b], 0);
  }

  /**
   * True when the box at `cell` can never reach a target again: it stands on a dead cell, or it is
   * part of a 2x2 block of walls and boxes (none of which can move) holding a box off target.
   */
  stuck(cell, boxes) {
    if (this.isDead(cell)) return true;
    const w = this.width;
    const solid = (c) => this.walls[c] === 1 || boxes.includes(c);
    // The four 2x2 squares that contain `cell`, by their top-left corner.
    for (const corner of [cell, cell - 1, cell - w, cell - w - 1]) {
      const square = [corner, corner + 1, corner + w, corner + w + 1];
      if (!square.every(solid)) continue;
      if (square.some((c) => boxes.includes(c) && !this.isTarget[c])) return true;
    }
    return false;
  }

  /** The grid as text lines, one per row. */
  render(player, boxes) {
    const lines = [];
    for (let r = 0; r < this.height; r++) {
      let line = '';
      for (let c = 0; c < this.width; c++) {
        const cell = r * this.width + c;
        const target = this.isTarget[cell] === 1;
        if (this.walls[cell]) line += SYMBOL.wall;
        else if (cell === player) line += target ? SYMBOL.playerOnTarget : SYMBOL.player;
        else if (boxes.includes(cell)) line += target ? SYMBOL.boxOnTarget : SYMBOL.box;
        else line += target ? SYMBOL.target : SYMBOL.floor;
      }
      lines.push(line);
    }
    return lines;
  }
}
