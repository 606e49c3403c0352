// The outbound retry schedule (after mox's queue): exact waits, the delayed notice, giving up.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { DEFAULT_DELAYED_NOTICE_AFTER, DEFAULT_RETRY_DELAYS_MS, DEFAULT_RETRY_POLICY, nextAttempt, type RetryPolicy } from './retry-schedule.ts'

const MINUTE = 60_000
const HOUR = 60 * MINUTE
const NOW = Date.UTC(2024, 4, 1, 12, 0, 0)

describe('default retry schedule', () => {
  const table: Array<[number, number | 'give up']> = [
    [0, 0], // nothing failed yet: now
    [1, 7.5 * MINUTE],
    [2, 15 * MINUTE],
    [3, 30 * MINUTE],
    [4, 1 * HOUR],
    [5, 2 * HOUR],
    [6, 4 * HOUR],
    [7, 8 * HOUR],
    [8, 16 * HOUR],
    [9, 'give up'],
    [10, 'give up'],
    [1000, 'give up']
  ]
  for (const [failed, wait] of table) {
    it(`after ${failed} failed attempts: ${wait === 'give up' ? wait : `wait ${wait / MINUTE} min`}`, () => {
      assert.deepEqual(nextAttempt(DEFAULT_RETRY_POLICY, failed, NOW), wait === 'give up' ? { giveUp: true } : { retryAt: NOW + wait })
    })
  }

  it('nine attempts over 31 h 52.5 min, then the recipient has failed', () => {
    let at = NOW
    let attempts = 1
    for (let failed = 1; ; failed++) {
      const next = nextAttempt(DEFAULT_RETRY_POLICY, failed, at)
      if ('giveUp' in next) break
      at = next.retryAt
      attempts++
    }
    assert.equal(attempts, 9)
    assert.equal(at - NOW, 31 * HOUR + 52.5 * MINUTE)
  })

  it('the "delayed" notice goes out after the 5th failure, before the 2 h wait', () => {
    assert.equal(DEFAULT_DELAYED_NOTICE_AFTER, 5)
    assert.equal(DEFAULT_RETRY_POLICY.delayedNoticeAfterAttempts, 5)
    assert.equal(DEFAULT_RETRY_DELAYS_MS[DEFAULT_DELAYED_NOTICE_AFTER - 1], 2 * HOUR)
    // The 5th attempt is 1 h 52.5 min after the first.
    const fifth = DEFAULT_RETRY_DELAYS_MS.slice(0, 4).reduce((a, b) => a + b, 0)
    assert.equal(fifth, 1 * HOUR + 52.5 * MINUTE)
  })

  it('each wait doubles the one before', () => {
    for (let i = 1; i < DEFAULT_RETRY_DELAYS_MS.length; i++) assert.equal(DEFAULT_RETRY_DELAYS_MS[i], 2 * DEFAULT_RETRY_DELAYS_MS[i - 1]!)
  })
})

describe('other policies and odd input', () => {
  it('an empty schedule gives up after the first failure', () => {
    const policy: RetryPolicy = { delaysMs: [], delayedNoticeAfterAttempts: 1 }
    assert.deepEqual(nextAttempt(policy, 1, NOW), { giveUp: true })
    assert.deepEqual(nextAttempt(policy, 0, NOW), { retryAt: NOW })
  })
  it('a custom schedule is followed', () => {
    const policy: RetryPolicy = { delaysMs: [1000, 5000], delayedNoticeAfterAttempts: 1 }
    assert.deepEqual(nextAttempt(policy, 1, NOW), { retryAt: NOW + 1000 })
    assert.deepEqual(nextAttempt(policy, 2, NOW), { retryAt: NOW + 5000 })
    assert.deepEqual(nextAttempt(policy, 3, NOW), { giveUp: true })
  })
  it('negative counts try now; fractional and NaN counts give up instead of waiting for ever', () => {
    assert.deepEqual(nextAttempt(DEFAULT_RETRY_POLICY, -1, NOW), { retryAt: NOW })
    assert.deepEqual(nextAttempt(DEFAULT_RETRY_POLICY, 1.5, NOW), { giveUp: true })
    assert.deepEqual(nextAttempt(DEFAULT_RETRY_POLICY, Number.NaN, NOW), { giveUp: true })
  })
})
