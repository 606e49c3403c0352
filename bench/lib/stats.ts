// Small helpers the benchmarks share: order statistics and a seeded random source.

/** The nearest-rank q-quantile (0 < q <= 1) of `values`, which need not be sorted. */
export function quantile (values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))
  return sorted[index]!
}

/** The median; the mean of the middle two for an even count. */
export function median (values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

/** mulberry32: small, fast and deterministic, so a benchmark's data is the same every run. */
export function prng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/**
 * Run `op` over and over for about `ms` (and at most `maxOps` times), one at a time; how many
 * runs fit and how long they really took.
 */
export async function runFor (ms: number, op: () => Promise<unknown> | unknown, maxOps = Infinity): Promise<{ ops: number, ms: number }> {
  const start = performance.now()
  let ops = 0
  let now: number
  do {
    await op()
    ops++
    now = performance.now()
  } while (now - start < ms && ops < maxOps)
  return { ops, ms: now - start }
}
