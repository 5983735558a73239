// Jobs for pool.test.js.
export const square = (n) => n * n;
export function fail() {
  throw new Error('job failed on purpose');
}
export function spin() {
  for (;;); // only terminating the thread ends this
}
