// `smtorp recover` (spec/recovery.md part 2, "Recovery"): on a new machine, with nothing but the
// owner's old onion address and the addresses of some custodians.
//
// 1. A temporary libp2p host (a fresh onion key, so nobody learns where the new machine is)
//    sends each custodian a request with a new X25519 public key, and shows the verification
//    code of that key; each custodian's owner approves the request by hand in their web UI.
// 2. The new machine polls; each approval gives a share and the kit sealed to its key. As soon
//    as t shares combine (shares.ts checks them against the check value) the master key is
//    rebuilt. Fewer than t approvals before the deadline rebuild nothing, and say so.
// 3. The kit opens under the master key: the onion key, the vault id, the friends, the IMAP
//    settings. A host with the node's own identity then restores the backup from the friends
//    (any k of them) or from the IMAP account, into a new data directory, and a new
//    passphrase is set.
import { mkdir, readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { Logger } from '../log/index.ts'
import { parseShare, type RecoveryShare } from '../../protocol/recovery-share.ts'
import { combineShares, ForgedShareError, InconsistentSharesError, NotEnoughSharesError, RecoveryError, type CombineResult } from './shares.ts'
import { openKit, type KitContents } from './kit.ts'
import { newRequestKeyPair, openRelease } from './release.ts'
import { RECOVERY_PROTOCOL } from './custody.ts'
import { PeerRefusedError, request } from '../friends/rpc.ts'
import { onionOfSeed, type P2PHost } from '../friends/p2p.ts'
import { restoreFromTarget, type RestoreReport } from '../backup/mailbox-backup.ts'
import type { BackupTarget } from '../backup/target.ts'
import { Vault, type VaultInit } from '../vault/vault.ts'

export interface CustodianAddress {
  onion: string
  /** Where to dial instead of the onion: tests and LAN only. */
  dial: Multiaddr
}

export type RecoveryEvent =
  | { kind: 'started', deadline: number }
  | { kind: 'asked', custodian: string, code: string }
  | { kind: 'unreachable', custodian: string, reason: string }
  | { kind: 'approved', custodian: string, index: number, threshold: number }
  | { kind: 'refused', custodian: string, reason: string }
  | { kind: 'key-rebuilt', from: number[], rejected: Array<{ index: number, reason: string, certain: boolean, custodian: string }> }
  | { kind: 'restoring', from: string }
  | { kind: 'restore-progress', done: number, total: number }

export interface RecoverInit {
  /** A libp2p host with a fresh, throw-away identity, to ask the custodians. */
  askingHost: P2PHost
  /** The owner's old onion address (on the recovery sheet). */
  owner: string
  custodians: CustodianAddress[]
  /** Where the node comes back: absent or empty. */
  dataDir: string
  /** The new passphrase for the restored vault. */
  newPassphrase: string
  /**
   * The backup to restore from, made once the kit is open: a friends target on a host with the
   * node's own identity, or the IMAP account. `close` is called at the end.
   */
  openTarget: (kit: KitContents, master: Buffer) => Promise<BackupTarget>
  /** How long to wait for approvals; how often to ask. */
  waitMs: number
  pollMs?: number
  vault?: Omit<VaultInit, 'dir'>
  onEvent?: (event: RecoveryEvent) => void
  logger?: Logger
}

export interface RecoverReport {
  onion: string
  fitting: number[]
  restore: RestoreReport
}

export class RecoveryFailedError extends RecoveryError {
  override name = 'RecoveryFailedError'
}

export async function recover (init: RecoverInit): Promise<RecoverReport> {
  const existing = await readdir(init.dataDir).catch((err: NodeJS.ErrnoException) => { if (err.code === 'ENOENT') return []; throw err })
  if (existing.length > 0) throw new RecoveryFailedError(`${init.dataDir} is not empty; recovery writes only into a new, empty data directory.`)
  const owner = init.owner.toLowerCase().replace(/\.onion$/, '')
  const keys = await newRequestKeyPair()
  const pollMs = init.pollMs ?? 5_000
  const deadline = Date.now() + init.waitMs
  init.onEvent?.({ kind: 'started', deadline })
  const asked = new Map<string, { id: string, custodian: CustodianAddress }>()
  const shares = new Map<string, { share: RecoveryShare, kit: Buffer }>()
  const refused = new Map<string, string>()
  const unreachable = new Map<string, string>()

  const ask = async (c: CustodianAddress): Promise<void> => {
    try {
      const answer = await request(init.askingHost, c.dial, RECOVERY_PROTOCOL, { op: 'request', owner, publicKey: keys.publicKey.toString('base64') }, undefined, { timeoutMs: 90_000 })
      const id = String(answer.header.id)
      asked.set(c.onion, { id, custodian: c })
      unreachable.delete(c.onion)
      init.onEvent?.({ kind: 'asked', custodian: c.onion, code: String(answer.header.code) })
    } catch (err) {
      unreachable.set(c.onion, (err as Error).message)
      init.onEvent?.({ kind: 'unreachable', custodian: c.onion, reason: (err as Error).message })
    }
  }
  const poll = async (onion: string, id: string, c: CustodianAddress): Promise<void> => {
    try {
      const answer = await request(init.askingHost, c.dial, RECOVERY_PROTOCOL, { op: 'poll', id }, undefined, { timeoutMs: 90_000 })
      if (answer.header.state === 'approved') {
        let share: RecoveryShare
        let kit: Buffer
        try {
          const released = await openRelease(keys.privateKey, id, answer.body)
          share = parseShare(released.share)
          kit = Buffer.from(released.kit, 'base64')
        } catch (err) {
          // Asking again would get the same bytes: this custodian counts as one that said no.
          const reason = `what it released is unusable (${(err as Error).message})`
          refused.set(onion, reason)
          init.onEvent?.({ kind: 'refused', custodian: onion, reason })
          return
        }
        shares.set(onion, { share, kit })
        init.onEvent?.({ kind: 'approved', custodian: onion, index: share.index, threshold: share.threshold })
      } else if (answer.header.state === 'refused') {
        const reason = typeof answer.header.reason === 'string' ? answer.header.reason : 'refused'
        refused.set(onion, reason)
        init.onEvent?.({ kind: 'refused', custodian: onion, reason })
      }
    } catch (err) {
      if (err instanceof PeerRefusedError && err.code === 'not-found') { asked.delete(onion); return } // the custodian restarted: ask again
      unreachable.set(onion, (err as Error).message)
    }
  }

  // Each custodian is asked and polled on its own, so one that is offline (a Tor timeout per
  // try) does not hold up the others; the key is rebuilt as soon as t shares are in.
  let finished = false
  const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, Math.max(0, Math.min(ms, deadline - Date.now())))) }
  const loops = init.custodians.map(async (c) => {
    for (let round = 0; !finished && Date.now() < deadline && round < 100_000; round++) {
      const a = asked.get(c.onion)
      if (a === undefined) await ask(c)
      else await poll(c.onion, a.id, c)
      if (shares.has(c.onion) || refused.has(c.onion)) return
      if (asked.has(c.onion)) await sleep(pollMs)
      else await sleep(Math.max(pollMs, 10_000)) // unreachable: try again later
    }
  })
  const settled = Promise.allSettled(loops)
  let allDone = false
  void settled.then(() => { allDone = true })
  const enough = (): boolean => {
    const got = [...shares.values()]
    return got.length > 0 && got.length >= got[0]!.share.threshold
  }
  // t shares that do not combine (one is forged) wait for one more share, while any
  // custodian may still give one: with t + 1 the forged share is named and left out.
  let combined: Combined | undefined
  let forged: ForgedShareError | undefined
  try {
    let tried = 0
    for (let tick = 0; tick < 10_000_000; tick++) {
      if (enough() && shares.size > tried) {
        tried = shares.size
        try {
          combined = await combineReleased([...shares].map(([custodian, g]) => ({ custodian, share: g.share })))
          break
        } catch (err) {
          if (!(err instanceof ForgedShareError)) throw err
          forged = err
        }
      }
      // Refusals that leave fewer than t custodians who could still say yes end the wait.
      const t = [...shares.values()][0]?.share.threshold ?? 2
      if (allDone || Date.now() >= deadline || init.custodians.length - refused.size < t) break
      await sleep(50)
    }
  } finally {
    finished = true // the custodians' loops end, whatever happened here
  }
  if (combined === undefined && forged !== undefined) throw forged
  let master: Buffer | undefined
  let fitting: number[] = []
  let kitSealed: Buffer | undefined
  let setId: Buffer | undefined
  if (combined !== undefined) {
    master = combined.secret
    fitting = combined.fitting
    init.onEvent?.({ kind: 'key-rebuilt', from: combined.fitting, rejected: combined.rejected })
    const good = shares.get(combined.fittingCustodian)!
    kitSealed = good.kit
    setId = good.share.setId
  }
  if (master === undefined || kitSealed === undefined || setId === undefined) {
    const got = [...shares.values()]
    const t = got[0]?.share.threshold
    const why = [
      `${got.length} custodian${got.length === 1 ? '' : 's'} approved`,
      t !== undefined ? `${t} are needed` : 'at least 2 are needed',
      ...[...refused].map(([c, r]) => `${c.slice(0, 8)}… refused (${r})`),
      ...[...unreachable].filter(([c]) => !shares.has(c)).map(([c, r]) => `${c.slice(0, 8)}… could not be reached (${r})`),
      ...init.custodians.filter(c => !shares.has(c.onion) && !refused.has(c.onion) && !unreachable.has(c.onion))
        .map(c => `${c.onion.slice(0, 8)}… ${asked.has(c.onion) ? 'had not decided' : 'had not answered'}${Date.now() >= deadline ? ' by the deadline' : ''}`)
    ].join('; ')
    throw new NotEnoughSharesError(t ?? 2, got.length, `No key was rebuilt: ${why}. Nothing was written.`)
  }

  try {
    const kit = openKit(master, setId, kitSealed)
    const onion = await onionOfSeed(Buffer.from(kit.onionSeed, 'base64'))
    if (onion !== owner) throw new RecoveryFailedError(`The shares rebuild the key of ${onion}, not of ${owner}.`)
    const target = await init.openTarget(kit, master)
    let restore: RestoreReport
    try {
      init.onEvent?.({ kind: 'restoring', from: target.description })
      restore = await restoreFromTarget({
        target, masterKey: master, dataDir: init.dataDir, onProgress: (done, total) => init.onEvent?.({ kind: 'restore-progress', done, total }),
        ...(init.vault !== undefined ? { vault: init.vault } : {}), ...(init.logger !== undefined ? { logger: init.logger } : {})
      })
    } finally {
      await target.close().catch(() => {})
    }
    const vault = new Vault({ ...init.vault, dir: join(init.dataDir, 'vault') })
    await vault.open()
    try {
      await vault.unlockWithMasterKey(master)
      await vault.changePassphrase(init.newPassphrase)
    } finally {
      await vault.close()
    }
    return { onion, fitting, restore }
  } finally {
    master.fill(0)
  }
}

interface Combined extends Omit<CombineResult, 'rejected'> {
  rejected: Array<CombineResult['rejected'][number] & { custodian: string }>
  /** A custodian whose share fits (its kit opens under the key). */
  fittingCustodian: string
}

/**
 * Combines the shares custodians released (spec/recovery.md 13). combineShares refuses shares
 * of different splits, and two different shares with one index or x coordinate, since it cannot
 * tell which is honest; a custodian that returns such a share (an old split's share, or a
 * forged one numbered like another's) would then stop every recovery. Here the shares are
 * taken split by split, the largest first, and within a split the fewest shares are left out
 * that make the rest agree; each way is combined, and the key whose check value holds with
 * the fewest shares rejected wins. The custodians left out are named. Nothing works:
 * ForgedShareError.
 */
export async function combineReleased (released: Array<{ custodian: string, share: RecoveryShare }>): Promise<Combined> {
  const splits = new Map<string, typeof released>()
  for (const r of released) {
    const s = r.share
    const key = `${s.setId.toString('hex')}/${s.threshold}/${s.count}/${s.share.length}`
    splits.set(key, [...(splits.get(key) ?? []), r])
  }
  const bySize = [...splits.values()].sort((a, b) => b.length - a.length)
  const problems: string[] = []
  for (const split of bySize) {
    const conflicting = split.filter(r => split.some(o => o !== r && conflict(o.share, r.share)))
    let best: { result: CombineResult, used: typeof released } | undefined
    // Leave out 0, 1, 2, ... of the conflicting shares (at most 2^8 ways), the fewest first.
    for (let leaveOut = 0; leaveOut <= Math.min(conflicting.length, 8) && best === undefined; leaveOut++) {
      for (const left of subsetsOf(conflicting, leaveOut)) {
        const used = split.filter(r => !left.includes(r))
        if (used.some(r => used.some(o => o !== r && conflict(o.share, r.share)))) continue
        try {
          const result = await combineShares(used.map(r => r.share))
          if (best === undefined || result.rejected.length < best.result.rejected.length) {
            best?.result.secret.fill(0)
            best = { result, used }
          } else {
            result.secret.fill(0)
          }
        } catch (err) {
          if (!(err instanceof ForgedShareError || err instanceof NotEnoughSharesError || err instanceof InconsistentSharesError)) throw err
          problems.push(err.message)
        }
      }
    }
    if (best === undefined) continue
    const { result, used } = best
    const who = (index: number): string => used.find(r => r.share.index === index)!.custodian
    const rejected = result.rejected.map(r => ({ ...r, custodian: who(r.index) }))
    for (const r of released) {
      if (used.includes(r)) continue
      if (!split.includes(r)) {
        rejected.push({ index: r.share.index, reason: `share ${r.share.index} belongs to another split than the one the key was rebuilt from (an old one, or forged)`, certain: false, custodian: r.custodian })
        continue
      }
      // A share left out may still be a true point of the polynomial under a wrong number:
      // it is forged only if, with t - 1 fitting shares, it does not rebuild the key.
      const fits = await fitsKey(r.share, used.map(u => u.share).filter(u => result.fitting.includes(u.index)), result.secret)
      if (fits === true) continue
      rejected.push({
        index: r.share.index,
        reason: `share ${r.share.index} is forged or damaged: another custodian returned a different share with the same number or x coordinate, and the key was rebuilt without this one`,
        certain: fits === false,
        custodian: r.custodian
      })
    }
    return { secret: result.secret, fitting: result.fitting, rejected, fittingCustodian: who(result.fitting[0]!) }
  }
  const named = released.map(r => `${r.custodian.slice(0, 8)}… gave share ${r.share.index}`).join(', ')
  throw new ForgedShareError(`The recovery shares do not rebuild a key (${named}): ${[...new Set(problems)].join(' ') || 'they are forged or damaged.'}`, released.map(r => r.share.index))
}

/** Whether `share` and t - 1 of `fitting` rebuild `secret`; undefined when too few others can be used with it. */
async function fitsKey (share: RecoveryShare, fitting: RecoveryShare[], secret: Buffer): Promise<boolean | undefined> {
  const others: RecoveryShare[] = []
  for (const f of fitting) {
    if (f.index === share.index || f.share.at(-1) === share.share.at(-1) || others.some(o => o.index === f.index)) continue
    if (others.length < share.threshold - 1) others.push(f)
  }
  if (others.length < share.threshold - 1) return undefined
  try {
    const { secret: rebuilt } = await combineShares([...others, share])
    const same = rebuilt.equals(secret)
    rebuilt.fill(0)
    return same
  } catch (err) {
    if (err instanceof ForgedShareError) return false
    if (err instanceof NotEnoughSharesError || err instanceof InconsistentSharesError) return undefined
    throw err
  }
}

/** Two different shares that cannot both be honest: one index, or one x coordinate. */
function conflict (a: RecoveryShare, b: RecoveryShare): boolean {
  const same = a.share.equals(b.share) && a.check.equals(b.check) && a.index === b.index
  return !same && (a.index === b.index || a.share.at(-1) === b.share.at(-1))
}

function * subsetsOf<T> (items: T[], size: number, from = 0): Generator<T[]> {
  if (size === 0) { yield []; return }
  for (let i = from; i <= items.length - size; i++) {
    for (const rest of subsetsOf(items, size - 1, i + 1)) yield [items[i]!, ...rest]
  }
}

/** Writes the kit's friends as the restored node's friend book, if the backup had none. */
export async function writeFriendBookFromKit (dataDir: string, kit: KitContents): Promise<void> {
  const file = join(dataDir, 'friends', 'book.json')
  await mkdir(join(dataDir, 'friends'), { recursive: true, mode: 0o700 })
  const now = new Date().toISOString()
  const book = { format: 1, friends: kit.friends.map(f => ({ ...f, addedAt: now })), invites: [] }
  await writeFile(file, JSON.stringify(book, null, 2), { flag: 'wx', mode: 0o600 }).catch((err: NodeJS.ErrnoException) => { if (err.code !== 'EEXIST') throw err })
}
