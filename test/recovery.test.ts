// Recovery shares end to end (spec/recovery.md): a real vault's master key split t-of-n, any t
// shares rebuild it and unlock the vault, fewer than t rebuild nothing and say why, forged
// shares are caught (and named when extra shares allow), and the vault refuses a wrong key.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { checkValue, encodeShare, formatShare, parseShare, type RecoveryShare } from '../protocol/recovery-share.ts'
import { combineShares, ForgedShareError, InconsistentSharesError, NotEnoughSharesError, RecoveryError, splitMasterKey } from '../node/recovery/index.ts'
import { splitSecret } from '../node/recovery/shares.ts'
import { combineReleased } from '../node/recovery/recover.ts'
import { UnlockThrottledError, VaultLockedError, WrongSecretError, type Vault } from '../node/vault/index.ts'
import { openTestVault, TEST_PASSPHRASE } from './harness/vault.ts'
import { readSpecVectors } from './harness/spec-vectors.ts'

const vectors = readSpecVectors(new URL('../spec/recovery.md', import.meta.url))

/** Every k-subset of `items`, in order. */
function subsets<T> (items: T[], k: number): T[][] {
  if (k === 0) return [[]]
  if (items.length < k) return []
  const [head, ...rest] = items
  return [...subsets(rest, k - 1).map(s => [head!, ...s]), ...subsets(rest, k)]
}

/** A share as a custodian would hand it back: through its text form. */
const viaText = (s: RecoveryShare): RecoveryShare => parseShare(formatShare(s))

/** The share with one byte of its polynomial values changed, re-encoded so it parses (a deliberate forgery). */
function tampered (s: RecoveryShare, at = 0): RecoveryShare {
  const share = Buffer.from(s.share)
  share[at]! ^= 0x5a
  return parseShare(formatShare({ ...s, share }))
}

describe('recovery shares: the spec vectors', () => {
  const set = [1, 2, 3, 4, 5].map(i => parseShare(vectors.get('shares 3-of-5', `share-${i}`)))
  const secret = vectors.bytes('check', 'secret')
  const forged = parseShare(vectors.get('forged', 'share-5'))

  it('every 3 of the 5 shares rebuild the secret, in any order', async () => {
    for (const three of subsets(set, 3)) {
      for (const order of [three, [...three].reverse()]) {
        const { secret: rebuilt, fitting, rejected } = await combineShares(order)
        assert.deepEqual(rebuilt, secret)
        assert.deepEqual(fitting, three.map(s => s.index).sort((a, b) => a - b))
        assert.deepEqual(rejected, [])
      }
    }
  })
  it('4 and 5 shares rebuild it too, with nothing rejected', async () => {
    for (const k of [4, 5]) {
      for (const some of subsets(set, k)) {
        const result = await combineShares(some)
        assert.deepEqual(result.secret, secret)
        assert.deepEqual(result.rejected, [])
      }
    }
  })
  it('2 of them rebuild nothing: need 3, have 2', async () => {
    for (const two of subsets(set, 2)) {
      await assert.rejects(combineShares(two), (err: unknown) => err instanceof NotEnoughSharesError && err.need === 3 && err.have === 2 && /need 3, have 2/.test(err.message))
    }
  })
  it('a share of another secret under the same set id is named when a fourth share allows', async () => {
    assert.equal(forged.check.toString('hex'), vectors.get('forged', 'other-check'))
    const result = await combineShares([set[0]!, forged, set[1]!, set[2]!])
    assert.deepEqual(result.secret, secret)
    assert.deepEqual(result.rejected.map(r => r.index), [5])
    assert.match(result.rejected[0]!.reason, /share 5 is forged or damaged/)
  })
  it('with exactly 3 shares, one of them that forged share, nothing is rebuilt', async () => {
    await assert.rejects(combineShares([set[0]!, set[1]!, forged]), (err: unknown) => err instanceof ForgedShareError && /forged or damaged/.test(err.message) && /one more share would tell/.test(err.message))
  })
})

describe('recovery shares: combining rules', () => {
  const secret = randomBytes(32)
  let set: RecoveryShare[]
  before(async () => { set = await splitMasterKey(secret, { threshold: 3, count: 5 }) })

  it('an identical copy of a share counts once', async () => {
    await assert.rejects(combineShares([set[0]!, set[1]!, viaText(set[1]!)]), (err: unknown) => err instanceof NotEnoughSharesError && /need 3, have 2/.test(err.message))
    assert.deepEqual((await combineShares([set[0]!, set[1]!, set[1]!, set[2]!])).secret, secret)
  })
  it('no shares: says how many are needed', async () => {
    await assert.rejects(combineShares([]), (err: unknown) => err instanceof NotEnoughSharesError && err.have === 0 && /need 2/.test(err.message))
  })
  it('refuses two different shares that both claim one index', async () => {
    const impostor = parseShare(formatShare({ ...set[3]!, index: 2 }))
    await assert.rejects(combineShares([set[0]!, set[1]!, impostor, set[2]!]), (err: unknown) => err instanceof InconsistentSharesError && /both say they are share 2/.test(err.message))
  })
  it('refuses two shares with one x coordinate', async () => {
    const copy = parseShare(formatShare({ ...set[1]!, index: 4, share: Buffer.concat([Buffer.alloc(32, 1), set[1]!.share.subarray(32)]) }))
    await assert.rejects(combineShares([set[0]!, set[1]!, copy]), (err: unknown) => err instanceof InconsistentSharesError && /Shares 2 and 4 have the same x coordinate/.test(err.message))
  })
  it('refuses shares that disagree on the threshold or the count', async () => {
    const lying = parseShare(formatShare({ ...set[2]!, threshold: 2 }))
    await assert.rejects(combineShares([set[0]!, set[1]!, lying]), (err: unknown) => err instanceof InconsistentSharesError && /Share 3 says 2-of-5/.test(err.message))
    const other = parseShare(formatShare({ ...set[2]!, count: 4 }))
    await assert.rejects(combineShares([set[0]!, set[1]!, other]), (err: unknown) => err instanceof InconsistentSharesError && /3-of-4/.test(err.message))
  })
  it('a share from another split of the same key is refused, naming both splits', async () => {
    const second = await splitMasterKey(secret, { threshold: 3, count: 5 })
    await assert.rejects(combineShares([set[0]!, set[1]!, set[2]!, second[3]!]), (err: unknown) => {
      return err instanceof InconsistentSharesError && /2 different splits/.test(err.message) &&
        err.message.includes(`shares 1, 2, 3 of split ${set[0]!.setId.toString('hex')}`) && err.message.includes(`share 4 of split ${second[0]!.setId.toString('hex')}`)
    })
  })
  it('a share with changed bytes is named when a fourth share allows, wherever it stands', async () => {
    for (let position = 0; position < 4; position++) {
      const bad = tampered(set[3]!, 7)
      const given = [set[0]!, set[1]!, set[2]!]
      given.splice(position, 0, bad)
      const result = await combineShares(given)
      assert.deepEqual(result.secret, secret)
      assert.deepEqual(result.rejected, [{ index: 4, reason: 'share 4 is forged or damaged: it does not lie on the polynomial of the other shares', certain: true }])
      assert.deepEqual(result.fitting, [1, 2, 3])
    }
  })
  it('a share with changed bytes among exactly t shares: nothing is rebuilt', async () => {
    await assert.rejects(combineShares([set[0]!, tampered(set[1]!), set[2]!]), (err: unknown) => err instanceof ForgedShareError && /no 3 of them rebuild a key with the check value they carry/.test(err.message) && err.indexes.join() === '1,2,3')
  })
  it('a share of another secret under the same set id, with the honest check value copied in, is named', async () => {
    const other = await splitSecret(randomBytes(32), set[0]!.setId, 3, 5)
    const forged = parseShare(formatShare({ ...other[4]!, check: set[0]!.check }))
    const result = await combineShares([forged, set[0]!, set[1]!, set[2]!])
    assert.deepEqual(result.secret, secret)
    assert.deepEqual(result.rejected.map(r => r.index), [5])
    assert.match(result.rejected[0]!.reason, /does not lie on the polynomial/)
  })
  it('two forged shares among five are both named', async () => {
    const result = await combineShares([tampered(set[0]!), set[1]!, tampered(set[2]!, 31), set[3]!, set[4]!])
    assert.deepEqual(result.secret, secret)
    assert.deepEqual(result.fitting, [2, 4, 5])
    assert.deepEqual(result.rejected.map(r => r.index), [1, 3])
  })
  it('when no t shares fit, all are forged or damaged and nothing is rebuilt', async () => {
    // Each share changed at a byte of its own: with one change shared by several shares, the
    // changes cancel out for about one random split in 256 (the Lagrange coefficients of two
    // of them can sum to zero), and that subset still rebuilds the right key.
    await assert.rejects(combineShares([tampered(set[0]!, 0), tampered(set[1]!, 1), tampered(set[2]!, 2), set[3]!, set[4]!]), (err: unknown) => err instanceof ForgedShareError && /No 3 of them fit together/.test(err.message))
  })
  it('8-of-16 with 8 forged shares first: the search over every subset finds the honest 8 and names the rest', async () => {
    const key = randomBytes(32)
    const all = await splitMasterKey(key, { threshold: 8, count: 16 })
    const given = [...all.slice(8).map(s => parseShare(formatShare({ ...s, share: Buffer.concat([randomBytes(32), s.share.subarray(32)]) }))), ...all.slice(0, 8)]
    const started = Date.now()
    const result = await combineShares(given)
    assert.deepEqual(result.secret, key)
    assert.deepEqual(result.fitting, [1, 2, 3, 4, 5, 6, 7, 8])
    assert.deepEqual(result.rejected.map(r => [r.index, r.certain]), [9, 10, 11, 12, 13, 14, 15, 16].map(i => [i, true]))
    assert.ok(Date.now() - started < 30_000, `took ${Date.now() - started} ms`)
  })
  // Regression: the same change in the same byte of several shares can cancel out at x = 0
  // (their Lagrange coefficients sum to zero), so a subset holding forged shares rebuilt the
  // right key, and the shares were then judged against it: honest ones were named as forged.
  it('forged shares whose changes cancel out in the rebuilt key are still named, and no honest share is', async () => {
    const key = randomBytes(32)
    const all = await splitMasterKey(key, { threshold: 8, count: 16 })
    const given = [...all.slice(11).map(s => tampered(s, 3)), ...all.slice(0, 11)]
    const result = await combineShares(given)
    assert.deepEqual(result.secret, key)
    assert.deepEqual(result.fitting, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])
    assert.deepEqual(result.rejected.map(r => [r.index, r.certain]), [12, 13, 14, 15, 16].map(i => [i, true]))
  })
  // Shares of another split of the same key under the same set id (what a forger who knew the
  // key could make) carry the right check value and rebuild the right key on their own, but lie
  // on another polynomial.
  async function foreignShares (honest: RecoveryShare[], threshold: number, count: number, want: number[]): Promise<RecoveryShare[]> {
    for (;;) {
      const other = await splitSecret(secret, honest[0]!.setId, threshold, count)
      const picked = want.map(i => other[i - 1]!)
      const xs = new Set(honest.map(s => s.share.at(-1)))
      if (picked.every(s => !xs.has(s.share.at(-1)))) return picked
    }
  }
  it('a smaller group of shares on another polynomial through the key is named as forged', async () => {
    const foreign = await foreignShares(set.slice(0, 3), 3, 5, [4, 5])
    const result = await combineShares([foreign[0]!, set[0]!, foreign[1]!, set[1]!, set[2]!])
    assert.deepEqual(result.secret, secret)
    assert.deepEqual(result.fitting, [1, 2, 3])
    assert.deepEqual(result.rejected.map(r => [r.index, r.certain]), [[4, true], [5, true]])
  })
  it('two groups of equal size that each fit the key: the key is rebuilt, and every share is only "may be forged"', async () => {
    const honest = await splitSecret(secret, set[0]!.setId, 2, 4)
    const foreign = await foreignShares(honest.slice(0, 2), 2, 4, [3, 4])
    const result = await combineShares([honest[0]!, honest[1]!, ...foreign])
    assert.deepEqual(result.secret, secret)
    assert.deepEqual(result.fitting, [])
    assert.deepEqual(result.rejected.map(r => [r.index, r.certain]), [[1, false], [2, false], [3, false], [4, false]])
    assert.match(result.rejected[0]!.reason, /share 1 may be forged or damaged: 2 groups of 2 shares each fit the rebuilt key/)
  })
  it('the check value every share carries is that of the secret under the set id', () => {
    for (const s of set) assert.deepEqual(s.check, checkValue(secret, set[0]!.setId))
  })
})

// What custodians released, as `smtorp recover` combines it (spec/recovery.md 13): one custodian
// whose share conflicts with another's (an impostor numbered like an honest share, an x
// coordinate taken from another, a share of an old split) no longer stops a recovery that has
// enough honest shares; it is left out and named.
describe('recovery shares: what custodians released', () => {
  const secret = randomBytes(32)
  let set: RecoveryShare[]
  before(async () => { set = await splitMasterKey(secret, { threshold: 2, count: 4 }) })
  const from = (custodian: string, share: RecoveryShare): { custodian: string, share: RecoveryShare } => ({ custodian, share })

  it('without conflicts it is combineShares, with each share\'s custodian', async () => {
    const r = await combineReleased([from('bob', set[0]!), from('carol', set[1]!), from('dave', set[2]!)])
    assert.deepEqual(r.secret, secret)
    assert.deepEqual(r.fitting, [1, 2, 3])
    assert.deepEqual(r.rejected, [])
    assert.equal(r.fittingCustodian, 'bob')
  })

  it('an impostor numbered like an honest share is left out and named, whatever the order', async () => {
    const impostor = tampered(parseShare(formatShare({ ...set[1]!, index: 1 }))) // carol's share, bob's number, values changed
    for (const order of [[0, 1, 2], [1, 0, 2], [2, 1, 0]]) {
      const given = [from('bob', set[0]!), from('carol', impostor), from('dave', set[2]!)]
      const r = await combineReleased(order.map(i => given[i]!))
      assert.deepEqual(r.secret, secret, order.join())
      assert.deepEqual(r.fitting, [1, 3])
      assert.deepEqual(r.rejected.map(x => [x.custodian, x.index, x.certain]), [['carol', 1, true]])
      assert.match(r.rejected[0]!.reason, /same number or x coordinate/)
    }
    await assert.rejects(combineShares([set[0]!, impostor, set[2]!]), InconsistentSharesError, 'combineShares alone refuses them')
  })

  it('a true share under a wrong number is not called forged: the key is rebuilt and nobody is named', async () => {
    const renumbered = parseShare(formatShare({ ...set[1]!, index: 1 })) // carol's true point, bob's number
    for (const order of [[0, 1, 2], [1, 0, 2]]) {
      const given = [from('bob', set[0]!), from('carol', renumbered), from('dave', set[2]!)]
      const r = await combineReleased(order.map(i => given[i]!))
      assert.deepEqual(r.secret, secret)
      assert.deepEqual(r.rejected, [], order.join())
    }
  })

  it('a share that takes another\'s x coordinate is left out and named', async () => {
    const stolenX = parseShare(formatShare({ ...set[3]!, share: Buffer.concat([set[3]!.share.subarray(0, 32), set[0]!.share.subarray(32)]) }))
    const r = await combineReleased([from('bob', set[0]!), from('eve', stolenX), from('dave', set[2]!)])
    assert.deepEqual(r.secret, secret)
    assert.deepEqual(r.rejected.map(x => x.custodian), ['eve'])
  })

  it('a share of an old split is left out and named', async () => {
    const old = await splitMasterKey(secret, { threshold: 2, count: 4 })
    const r = await combineReleased([from('bob', set[0]!), from('mallory', old[1]!), from('dave', set[2]!)])
    assert.deepEqual(r.secret, secret)
    assert.deepEqual(r.rejected.map(x => [x.custodian, x.certain]), [['mallory', false]])
    assert.match(r.rejected[0]!.reason, /another split/)
  })

  it('an identical copy from two custodians is no conflict', async () => {
    const r = await combineReleased([from('bob', set[0]!), from('carol', viaText(set[0]!)), from('dave', set[2]!)])
    assert.deepEqual(r.secret, secret)
    assert.deepEqual(r.rejected, [])
  })

  it('an impostor beside identical copies of an honest share: the key is rebuilt and only the impostor named', async () => {
    const impostor = tampered(parseShare(formatShare({ ...set[1]!, index: 3 })))
    const r = await combineReleased([from('bob', set[0]!), from('bob2', viaText(set[0]!)), from('carol', impostor), from('dave', set[2]!)])
    assert.deepEqual(r.secret, secret)
    assert.deepEqual(r.rejected.map(x => x.custodian), ['carol'])
  })

  it('with exactly t shares that conflict nothing is rebuilt, and the error names who gave what', async () => {
    const impostor = parseShare(formatShare({ ...set[1]!, index: 1 }))
    await assert.rejects(combineReleased([from('bobbbbbbbbb', set[0]!), from('carolllllll', impostor)]), (err: unknown) =>
      err instanceof ForgedShareError && /bobbbbbb… gave share 1, carollll… gave share 1/.test(err.message))
  })
})

describe('recovery shares: splitting', () => {
  it('refuses thresholds and counts outside 2 <= t <= n <= 16, and keys that are not 32 bytes', async () => {
    const key = randomBytes(32)
    for (const [threshold, count] of [[1, 3], [0, 2], [4, 3], [2, 17], [17, 17], [2.5, 3]] as const) {
      await assert.rejects(splitMasterKey(key, { threshold, count }), (err: unknown) => err instanceof RecoveryError && /2 <= threshold <= count <= 16/.test(err.message), `${threshold}-of-${count}`)
    }
    await assert.rejects(splitMasterKey(randomBytes(16), { threshold: 2, count: 3 }), /A master key has 32 bytes, not 16/)
  })
  it('makes n shares numbered 1 to n, of one new set, with distinct x coordinates, that do not contain the key', async () => {
    const key = randomBytes(32)
    const a = await splitMasterKey(key, { threshold: 2, count: 16 })
    const b = await splitMasterKey(key, { threshold: 2, count: 16 })
    assert.deepEqual(a.map(s => s.index), Array.from({ length: 16 }, (_, i) => i + 1))
    assert.equal(new Set(a.map(s => s.setId.toString('hex'))).size, 1)
    assert.notDeepEqual(a[0]!.setId, b[0]!.setId)
    assert.notDeepEqual(a[0]!.check, b[0]!.check)
    assert.equal(new Set(a.map(s => s.share.at(-1))).size, 16)
    for (const s of a) assert.ok(!encodeShare(s).includes(key.subarray(0, 8)))
  })
})

describe('recovery shares: a real vault', () => {
  let dir: string
  before(async () => { dir = await mkdtemp(join(tmpdir(), 'smtorp-recovery-')) })
  after(async () => { await rm(dir, { recursive: true, force: true }) })

  async function vaultWithMail (name: string): Promise<{ vault: Vault, id: string, raw: Buffer }> {
    const { vault } = await openTestVault(join(dir, name))
    const raw = Buffer.from(`Message-ID: <recovery-${name}@test.example>\r\nSubject: kept\r\n\r\nStill here after recovery.\r\n`)
    const { meta } = await vault.add({ folder: 'Inbox', raw, from: 'friend@test.example', to: ['owner@test.example'] })
    return { vault, id: meta.id, raw }
  }

  for (const [t, n] of [[2, 3], [3, 5]] as const) {
    it(`${t}-of-${n}: any ${t} shares unlock the vault, and a new passphrase can then be set and used`, async () => {
      const { vault, id, raw } = await vaultWithMail(`split-${t}-of-${n}`)
      try {
        const master = vault.exportMasterKeyForRecovery()
        const texts = (await splitMasterKey(master, { threshold: t, count: n })).map(formatShare)
        master.fill(0)
        await vault.lock()
        for (const chosen of subsets(texts, t)) {
          assert.equal(vault.state(), 'locked')
          const { secret, rejected } = await combineShares(chosen.map(parseShare))
          assert.deepEqual(rejected, [])
          await vault.unlockWithMasterKey(secret)
          secret.fill(0) // the vault keeps its own copy
          assert.equal(vault.state(), 'unlocked')
          assert.deepEqual((await vault.get(id))?.raw, raw)
          await vault.lock()
        }
        // Fewer than t: nothing is rebuilt, nothing is unlocked.
        await assert.rejects(combineShares(texts.slice(0, t - 1).map(parseShare)), new RegExp(`need ${t}, have ${t - 1}`))
        assert.equal(vault.state(), 'locked')

        const { secret } = await combineShares(texts.slice(-t).map(parseShare))
        await vault.unlockWithMasterKey(secret)
        secret.fill(0)
        const newPassphrase = `a new passphrase after ${t}-of-${n} recovery`
        await vault.changePassphrase(newPassphrase)
        await vault.lock()
        await assert.rejects(vault.unlock({ passphrase: TEST_PASSPHRASE }), WrongSecretError)
        await vault.unlock({ passphrase: newPassphrase })
        assert.deepEqual((await vault.get(id))?.raw, raw)
      } finally {
        await vault.close()
      }
    })
  }

  it('the key rebuilt from shares survives a restart: a fresh Vault on the same directory unlocks with it', async () => {
    const { vault, id, raw } = await vaultWithMail('restart')
    const master = vault.exportMasterKeyForRecovery()
    const shares = await splitMasterKey(master, { threshold: 2, count: 3 })
    master.fill(0)
    await vault.close()
    const { vault: again } = await openTestVault(join(dir, 'restart'))
    await again.lock()
    try {
      const { secret } = await combineShares([shares[2]!, shares[0]!])
      await again.unlockWithMasterKey(secret)
      assert.deepEqual((await again.get(id))?.raw, raw)
    } finally {
      await again.close()
    }
  })

  it('the exported key is a copy, and only an unlocked vault exports it', async () => {
    const { vault, id, raw } = await vaultWithMail('export')
    try {
      const master = vault.exportMasterKeyForRecovery()
      assert.equal(master.length, 32)
      master.fill(0)
      assert.deepEqual((await vault.get(id))?.raw, raw) // the vault's own key was not touched
      assert.notDeepEqual(vault.exportMasterKeyForRecovery(), master)
      await vault.lock()
      assert.throws(() => vault.exportMasterKeyForRecovery(), VaultLockedError)
    } finally {
      await vault.close()
    }
  })

  it('a wrong master key is refused, changes nothing, and counts in the unlock throttle', async () => {
    const { vault, id, raw } = await vaultWithMail('wrong-key')
    try {
      const master = vault.exportMasterKeyForRecovery()
      await vault.lock()
      const almost = Buffer.from(master); almost[31]! ^= 1
      for (const wrong of [randomBytes(32), almost, Buffer.alloc(32), master.subarray(0, 31)]) {
        // Three wrong attempts are free (unlock-throttle.ts); the fourth would have to wait.
        if (vault.unlockDelaySeconds() > 0) break
        await assert.rejects(vault.unlockWithMasterKey(wrong), (err: unknown) => err instanceof WrongSecretError && /not this vault's master key/.test(err.message))
        assert.equal(vault.state(), 'locked')
      }
      assert.ok(vault.unlockDelaySeconds() > 0, 'three wrong keys in a row make the next attempt wait')
      await assert.rejects(vault.unlockWithMasterKey(master), UnlockThrottledError)
      assert.equal(vault.state(), 'locked')
      await new Promise(resolve => setTimeout(resolve, vault.unlockDelaySeconds() * 1000 + 50))
      await vault.unlockWithMasterKey(master)
      assert.equal(vault.unlockDelaySeconds(), 0)
      assert.deepEqual((await vault.get(id))?.raw, raw)
      // Unlocked, a wrong key is still refused, and the vault stays as it was.
      await assert.rejects(vault.unlockWithMasterKey(randomBytes(32)), WrongSecretError)
      assert.equal(vault.state(), 'unlocked')
      master.fill(0)
    } finally {
      await vault.close()
    }
  })

  it('a key rebuilt from forged shares is never handed to the vault: the combiner stops first', async () => {
    const { vault } = await vaultWithMail('forged')
    try {
      const master = vault.exportMasterKeyForRecovery()
      const shares = await splitMasterKey(master, { threshold: 2, count: 3 })
      master.fill(0)
      await vault.lock()
      await assert.rejects(combineShares([shares[0]!, tampered(shares[1]!)]), ForgedShareError)
      const result = await combineShares([shares[0]!, tampered(shares[1]!), shares[2]!])
      assert.deepEqual(result.rejected.map(r => r.index), [2])
      await vault.unlockWithMasterKey(result.secret)
      assert.equal(vault.state(), 'unlocked')
    } finally {
      await vault.close()
    }
  })
})
