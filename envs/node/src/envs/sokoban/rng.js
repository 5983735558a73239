// Deterministic pseudo-random numbers from a string seed, the same on every platform and Node
// version (integer arithmetic only), so a task id always yields the same level.

/** FNV-1a hash of a string to an unsigned 32-bit integer. */
function fnv1a(text) {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** A seeded generator (mulberry32): `next()` in [0, 1), `int(n)` in [0, n), `pick`, `shuffle`. */
export class Rng {
  constructor(seedText) {
    this.state = fnv1a(String(seedText));
  }

  next() {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  int(n) {
    return Math.floor(this.next() * n);
  }

  pick(items) {
    return items[this.int(items.length)];
  }

  /** Fisher-Yates, in place. */
  shuffle(items) {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [items[i], items[j]] = [items[j], items[i]];
    }
    return items;
  }
}
