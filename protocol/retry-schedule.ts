// When the outbound queue tries again, after mox's queue: the first attempt at once, then
// 7.5 min, 15 min, 30 min, 1 h, 2 h (the sender gets a "delayed" notice), 4 h, 8 h, 16 h,
// and after that the recipient has failed (the sender gets a "failed" notice).

const MINUTE = 60_000

export const DEFAULT_RETRY_DELAYS_MS: readonly number[] = [7.5, 15, 30, 60, 120, 240, 480, 960].map(m => m * MINUTE)
/** After this many failed attempts the sender is told the message is delayed: the 5th, just before the 2 h wait. */
export const DEFAULT_DELAYED_NOTICE_AFTER = 5

export interface RetryPolicy {
  delaysMs: readonly number[]
  /** After this many failed attempts, send the "delayed" notice (once). */
  delayedNoticeAfterAttempts: number
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = { delaysMs: DEFAULT_RETRY_DELAYS_MS, delayedNoticeAfterAttempts: DEFAULT_DELAYED_NOTICE_AFTER }

/**
 * What to do after `failedAttempts` transient failures: wait and try again, or give up.
 */
export function nextAttempt (policy: RetryPolicy, failedAttempts: number, now: number): { retryAt: number } | { giveUp: true } {
  const delay = policy.delaysMs[failedAttempts - 1]
  if (failedAttempts < 1) return { retryAt: now }
  if (delay === undefined) return { giveUp: true }
  return { retryAt: now + delay }
}
