// Per-peer message rate limit: a token bucket per key (the peer's proven onion address),
// refilled continuously. Buckets of peers that have gone quiet are forgotten, so a hostile
// peer cannot grow the table without bound by rotating keys faster than they expire.
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number, at: number }>()

  constructor (private readonly perMinute: number, private readonly maxKeys = 10_000) {}

  /** Take one token for `key`; false when the key is over its rate. */
  take (key: string, now = Date.now()): boolean {
    const ratePerMs = this.perMinute / 60_000
    const bucket = this.buckets.get(key) ?? { tokens: this.perMinute, at: now }
    bucket.tokens = Math.min(this.perMinute, bucket.tokens + (now - bucket.at) * ratePerMs)
    bucket.at = now
    if (!this.buckets.has(key)) {
      if (this.buckets.size >= this.maxKeys) this.evictFull(now)
      this.buckets.set(key, bucket)
    }
    if (bucket.tokens < 1) return false
    bucket.tokens -= 1
    return true
  }

  /** Forget buckets that have refilled completely (they behave exactly like new ones). */
  private evictFull (now: number): void {
    const ratePerMs = this.perMinute / 60_000
    for (const [key, bucket] of this.buckets) {
      if (bucket.tokens + (now - bucket.at) * ratePerMs >= this.perMinute) this.buckets.delete(key)
    }
    // Still full of active peers: drop the oldest entry rather than grow.
    if (this.buckets.size >= this.maxKeys) {
      const oldest = this.buckets.keys().next().value
      if (oldest !== undefined) this.buckets.delete(oldest)
    }
  }
}
