// Recovery shares of the vault's master key (spec/recovery.md): split t-of-n with Shamir's
// scheme (`shamir-secret-sharing`, audited by Cure53 and Zellic), and combined back with
// the checks that library leaves out. It returns a wrong secret, without an error, when given
// fewer than t shares or a forged one; so the number of shares is checked before combining,
// and the result is checked against the check value every share carries.
import { randomBytes } from 'node:crypto'
import { combine, split } from 'shamir-secret-sharing'
import { checkValue, MAX_SHARES, MIN_THRESHOLD, SET_ID_BYTES, type RecoveryShare } from '../../protocol/recovery-share.ts'

/** The master key is 32 bytes (spec/storage.md 3.1); nothing else is split. */
export const MASTER_KEY_BYTES = 32

export class RecoveryError extends Error {
  override name = 'RecoveryError'
}

/** Fewer distinct shares than the threshold: nothing was combined. */
export class NotEnoughSharesError extends RecoveryError {
  override name = 'NotEnoughSharesError'
  constructor (readonly need: number, readonly have: number, message?: string) {
    super(message ?? (have === 0
      ? `No recovery shares were given: need ${need}.`
      : `Not enough recovery shares to rebuild the key: need ${need}, have ${have}. Fewer than ${need} shares say nothing about the key, so none was rebuilt.`))
  }
}

/** The shares cannot belong together: other splits, disagreeing headers, or two different shares with one index. */
export class InconsistentSharesError extends RecoveryError {
  override name = 'InconsistentSharesError'
}

/** No t of the shares rebuild a secret that matches their check value. */
export class ForgedShareError extends RecoveryError {
  override name = 'ForgedShareError'
  /** Indexes of the shares that were given. */
  constructor (message: string, readonly indexes: number[]) { super(message) }
}

export interface SplitOptions {
  threshold: number
  count: number
}

/**
 * Split the master key into `count` shares, any `threshold` of which rebuild it. The shares
 * carry no copy of the key; the caller still wipes `master`.
 */
export async function splitMasterKey (master: Buffer, { threshold, count }: SplitOptions): Promise<RecoveryShare[]> {
  if (master.length !== MASTER_KEY_BYTES) throw new RecoveryError(`A master key has ${MASTER_KEY_BYTES} bytes, not ${master.length}.`)
  if (!Number.isInteger(threshold) || !Number.isInteger(count) || threshold < MIN_THRESHOLD || threshold > count || count > MAX_SHARES) {
    throw new RecoveryError(`A split needs ${MIN_THRESHOLD} <= threshold <= count <= ${MAX_SHARES}; got threshold ${threshold}, count ${count}.`)
  }
  return await splitSecret(master, randomBytes(SET_ID_BYTES), threshold, count)
}

/** The shares of `secret` under a given set id. Exported for tests and test vectors; use splitMasterKey. */
export async function splitSecret (secret: Uint8Array, setId: Buffer, threshold: number, count: number): Promise<RecoveryShare[]> {
  const check = checkValue(secret, setId)
  // The library checks `constructor === Uint8Array`, so a Buffer must be copied; the copy is wiped.
  const plain = Uint8Array.from(secret)
  let parts: Uint8Array[]
  try {
    parts = await split(plain, count, threshold)
  } finally {
    plain.fill(0)
  }
  return parts.map((part, i) => ({ setId: Buffer.from(setId), threshold, count, index: i + 1, check: Buffer.from(check), share: Buffer.from(part) }))
}

export interface CombineResult {
  /** The rebuilt secret, verified by the check value; the caller wipes it when done. */
  secret: Buffer
  /** Indexes of the shares that lie on the secret's polynomial (at least t), ascending. */
  fitting: number[]
  /**
   * Shares given that do not fit: forged or damaged. `certain` is false when two equally large
   * groups of shares each fit the secret and which one is honest cannot be told (spec/recovery.md
   * section 4, step 5). Tell the owner; replace these custodians' shares with a new split.
   */
  rejected: Array<{ index: number, reason: string, certain: boolean }>
}

/**
 * Rebuild the secret from recovery shares (spec/recovery.md, section 4):
 * 1. the shares must come from one split and agree on t, n and the secret length; identical
 *    copies of a share count once; two different shares with one index or one x coordinate are
 *    refused (InconsistentSharesError);
 * 2. with fewer than t distinct shares nothing is combined (NotEnoughSharesError);
 * 3. t shares that carry the same check value are combined, and the result must have that
 *    check value; the t-subsets are tried in order until one does (at most C(16, 8) = 12,870);
 * 4. the shares are sorted into those that lie on the secret's polynomial and those that do
 *    not (largestFittingGroup); the latter are returned in `rejected`;
 * 5. no subset verifies: ForgedShareError.
 */
export async function combineShares (given: RecoveryShare[]): Promise<CombineResult> {
  const shares = distinct(given)
  if (shares.length === 0) throw new NotEnoughSharesError(MIN_THRESHOLD, 0)
  const first = shares[0]!
  const t = first.threshold
  if (shares.length < t) throw new NotEnoughSharesError(t, shares.length)

  let work = 0
  for (let subset: number[] | undefined = firstSubset(t); subset !== undefined; subset = nextSubset(subset, shares.length)) {
    const chosen = subset.map(i => shares[i]!)
    const check = chosen[0]!.check
    if (!chosen.every(s => s.check.equals(check))) continue
    const secret = await combineParts(chosen)
    if (++work % YIELD_EVERY === 0) await yieldToEventLoop()
    if (!checkValue(secret, first.setId).equals(check)) {
      secret.fill(0)
      continue
    }
    const rejected: CombineResult['rejected'] = []
    for (const s of shares) {
      if (!s.check.equals(check)) rejected.push({ index: s.index, reason: `share ${s.index} is forged or damaged: its check value is not the one the other shares carry`, certain: true })
    }
    const { groups, size } = await largestFittingGroups(shares.filter(s => s.check.equals(check)), secret, t)
    const fitting = shares.filter(s => groups.every(g => g.has(s)))
    for (const s of shares) {
      if (!s.check.equals(check) || fitting.includes(s)) continue
      rejected.push(groups.length === 1
        ? { index: s.index, reason: `share ${s.index} is forged or damaged: it does not lie on the polynomial of the other shares`, certain: true }
        : { index: s.index, reason: `share ${s.index} may be forged or damaged: ${groups.length} groups of ${size} shares each fit the rebuilt key, and which group is honest cannot be told`, certain: false })
    }
    return { secret, fitting: fitting.map(s => s.index).sort((a, b) => a - b), rejected: rejected.sort((a, b) => a.index - b.index) }
  }
  const indexes = shares.map(s => s.index)
  const checks = new Set(shares.map(s => s.check.toString('hex')))
  const why = checks.size > 1
    ? 'they do not all carry the same check value'
    : `no ${t} of them rebuild a key with the check value they carry`
  throw new ForgedShareError(
    `The recovery shares ${indexes.join(', ')} are forged or damaged: ${why}. ` +
    (shares.length > t ? `No ${t} of them fit together.` : `With exactly ${t} shares the bad one cannot be named; one more share would tell.`),
    indexes)
}

const YIELD_EVERY = 256

/** combine() is synchronous work behind a promise: let other events in during a long search. */
async function yieldToEventLoop (): Promise<void> {
  await new Promise(resolve => setImmediate(resolve))
}

/**
 * The largest groups of shares that lie on one polynomial through (0, secret).
 *
 * The check value proves the secret, not that every share of the subset that rebuilt it is
 * honest: several forged shares can cancel out at x = 0 (their changes, times their Lagrange
 * coefficients, sum to zero) by chance or by design. So each share is judged against
 * (0, secret) and t - 1 other shares: a share e fits the polynomial through (0, secret) and a
 * base B of t - 1 shares exactly when B and e combine to the secret. Every base is tried and
 * the largest groups kept. Two different polynomials through (0, secret) share at most t - 2
 * other points, so a group of more than (k + t - 2) / 2 of the k shares has no rival, and the
 * search stops there; otherwise it costs at most C(16, 7) x 9 = 102,960 combines (about 3 s on a 2-core machine,
 * for 8-of-16 with 8 forged shares: spec/recovery.md section 4).
 */
async function largestFittingGroups (candidates: RecoveryShare[], secret: Buffer, t: number): Promise<{ groups: Array<Set<RecoveryShare>>, size: number }> {
  const k = candidates.length
  let best: Array<Set<RecoveryShare>> = []
  let size = 0
  let work = 0
  for (let base: number[] | undefined = firstSubset(t - 1); base !== undefined; base = nextSubset(base, k)) {
    const members = base.map(i => candidates[i]!)
    for (let j = 0; j < k; j++) {
      if (base.includes(j)) continue
      const again = await combineParts([...base.map(i => candidates[i]!), candidates[j]!])
      if (again.equals(secret)) members.push(candidates[j]!)
      again.fill(0)
      if (++work % YIELD_EVERY === 0) await yieldToEventLoop()
    }
    // t - 1 shares alone fit some polynomial through (0, secret): a group needs t.
    if (members.length < t || members.length < size) continue
    const group = new Set(members)
    if (members.length > size) {
      best = [group]
      size = members.length
    } else if (!best.some(g => [...group].every(s => g.has(s)))) {
      best.push(group)
    }
    if (best.length === 1 && 2 * size > k + t - 2) break
  }
  return { groups: best, size }
}

/** The shares without identical copies, after checking they can belong to one split. */
function distinct (given: RecoveryShare[]): RecoveryShare[] {
  const first = given[0]
  if (first === undefined) return []
  const sets = new Map<string, number[]>()
  for (const s of given) sets.set(s.setId.toString('hex'), [...(sets.get(s.setId.toString('hex')) ?? []), s.index])
  if (sets.size > 1) {
    const list = [...sets].map(([id, idx]) => `share${idx.length > 1 ? 's' : ''} ${idx.join(', ')} of split ${id}`).join('; ')
    throw new InconsistentSharesError(`The shares come from ${sets.size} different splits (${list}); combine shares of one split only.`)
  }
  for (const s of given) {
    if (s.threshold !== first.threshold || s.count !== first.count || s.share.length !== first.share.length) {
      throw new InconsistentSharesError(`Share ${s.index} says ${s.threshold}-of-${s.count} for a ${s.share.length - 1}-byte key and share ${first.index} says ${first.threshold}-of-${first.count} for a ${first.share.length - 1}-byte key: at least one is forged or damaged.`)
    }
  }
  const out: RecoveryShare[] = []
  for (const s of given) {
    const same = out.find(o => o.index === s.index || o.share.at(-1) === s.share.at(-1))
    if (same === undefined) out.push(s)
    else if (same.index !== s.index || !same.share.equals(s.share) || !same.check.equals(s.check)) {
      throw new InconsistentSharesError(same.index === s.index
        ? `Two different shares both say they are share ${s.index}: at least one is forged or damaged.`
        : `Shares ${same.index} and ${s.index} have the same x coordinate: at least one is forged or damaged.`)
    }
    // else an identical copy of a share already counted: it counts once
  }
  return out
}

async function combineParts (shares: RecoveryShare[]): Promise<Buffer> {
  const secret = await combine(shares.map(s => Uint8Array.from(s.share)))
  const out = Buffer.from(secret)
  secret.fill(0)
  return out
}

function firstSubset (t: number): number[] {
  return Array.from({ length: t }, (_, i) => i)
}

/** The next t-subset of 0 .. n-1 in lexicographic order, or undefined after the last. */
function nextSubset (subset: number[], n: number): number[] | undefined {
  const next = [...subset]
  const t = next.length
  let i = t - 1
  while (i >= 0 && next[i] === n - t + i) i--
  if (i < 0) return undefined
  next[i]!++
  for (let j = i + 1; j < t; j++) next[j] = next[j - 1]! + 1
  return next
}
