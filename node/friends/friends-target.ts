// A BackupTarget on the friends' nodes (spec/backup.md part 3): every blob is cut by
// Reed-Solomon into k data and m parity shards, one shard per friend, each with a header and
// a MAC under a key of the owner's (protocol/friend-shard.ts), so a friend that alters a shard
// is caught shard by shard and the blob is rebuilt from any k good ones.
//
// Decisions (spec/backup.md section 18):
// - n = every friend with quota and room, at most k + MAX_PARITY_SHARDS (the codecs' limit of
//   6 parity shards); at least k + 1 friends, else TargetRefusedError.
// - A put succeeds once at least k + 1 shards are stored (shards whose friend failed are tried
//   on the spare friends first); shards that could not be stored are recorded as unplaced and
//   `repair` places them later. Fewer than k + 1: the new shards are removed again and the put
//   fails (transient when a friend was unreachable, refused when friends refused).
// - A new version of a blob goes to the other slot (wire index = slot * 16 + shard index), so a
//   put that fails halfway leaves the old version whole; the old slot is deleted after.
// - The placement record (which friend holds which shard, and the audit answers) lives in a
//   PlacementStore: the vault on a running node. Without one (a restore on a new machine) the
//   target rebuilds it from the friends' lists.
//
// Calls are carried out one after the other (the BackupTarget contract).
import { hkdfSync, randomBytes, randomInt } from 'node:crypto'
import {
  BackupTargetError, BlobDamagedError, TargetRefusedError, TargetUnavailableError, checkBlob, checkBlobName,
  type BackupTarget, type BlobInfo
} from '../backup/target.ts'
import { erasureCodec, shardSize, MAX_PARITY_SHARDS } from '../vault/erasure/index.ts'
import type { Logger } from '../log/index.ts'
import type { Vault } from '../vault/index.ts'
import {
  auditAnswer, auditKey, auditNonce, openShard, parseShardMeta, sealShard, shardKey, shardMeta, FriendShardError, PUT_ID_BYTES, SHARD_HEADER_BYTES, SHARD_MAC_BYTES, SLOT_WIDTH,
  type ShardHeader
} from '../../protocol/friend-shard.ts'
import type { Friend, FriendBook } from './friend-book.ts'
import { auditShards, deleteShards, getShard, listShards, putShard } from './backup-protocol.ts'
import type { P2PHost } from './p2p.ts'
import { PeerRefusedError, PeerUnavailableError } from './rpc.ts'
import { chargedSize } from './shard-host.ts'

export const DEFAULT_DATA_SHARDS = 2
/** The placement record is written at most this often (and at flush and close). */
const SAVE_DELAY_MS = 2_000
/** A friend that did not answer is asked last for this long. */
const DOWN_FOR_MS = 60_000
export const CHALLENGES_PER_GENERATION = 4
/** A shard whose friend failed this many audits of it is moved by `repair`. */
export const REPEATED_AUDIT_FAILURES = 3
export const DEFAULT_ABSENT_AFTER_MS = 14 * 24 * 3600_000
const PLACEMENT_FORMAT = 1

export interface ShardPlacement {
  /** The friend's onion, or null while the shard is not stored anywhere (repair places it). */
  friend: string | null
  /** Bytes of the stored shard (header, data, MAC). */
  size: number
  /** Audit generation, and its expected answers (hex, 16 bytes each); used ones are spent. */
  generation: number
  answers: string[]
  used: number
  /** Audits of this shard the friend failed. */
  failures: number
}

export interface BlobPlacement {
  k: number
  m: number
  length: number
  /** hex, 8 bytes */
  putId: string
  slot: 0 | 1
  codec: 'wasm'
  /** By erasure index. */
  shards: ShardPlacement[]
}

export interface Placement {
  format: number
  blobs: Record<string, BlobPlacement>
  /** Shards to delete on friends that were unreachable when they should have been deleted. */
  pendingDeletes: Array<{ friend: string, name: string, index?: number }>
}

export interface PlacementStore {
  load (): Promise<Placement | undefined>
  save (placement: Placement): Promise<void>
}

export function memoryPlacementStore (initial?: Placement): PlacementStore & { current?: Placement } {
  const store: PlacementStore & { current?: Placement } = {
    current: initial === undefined ? undefined : structuredClone(initial),
    async load () { return store.current === undefined ? undefined : structuredClone(store.current) },
    async save (p) { store.current = structuredClone(p) }
  }
  return store
}

/** The placement as a sealed record of the vault (kind "friends", name "placement"). */
export function vaultPlacementStore (vault: Pick<Vault, 'getRecord' | 'putRecord'>): PlacementStore {
  return {
    async load () {
      const bytes = await vault.getRecord('friends', 'placement')
      if (bytes === undefined) return undefined
      const p = JSON.parse(bytes.toString('utf8')) as Placement
      if (p.format !== PLACEMENT_FORMAT) throw new BackupTargetError(`the friends' placement record has format ${p.format}, not ${PLACEMENT_FORMAT}`)
      return p
    },
    async save (p) {
      await vault.putRecord('friends', 'placement', Buffer.from(JSON.stringify(p), 'utf8'))
    }
  }
}

export interface FriendsTargetInit {
  host: P2PHost
  book: FriendBook
  /** 32 secret bytes of the owner's; the shard and audit keys are derived from it. See friendsBackupKey. */
  key: Uint8Array
  placement: PlacementStore
  dataShards?: number
  logger?: Logger
  timeoutMs?: number
}

export interface AuditReport {
  checked: number
  passed: number
  failed: number
  /** Shards rebuilt and stored again after a failed audit. */
  replaced: number
  /** Friends that did not answer (nothing counted against them). */
  unreachable: string[]
}

export interface RepairReport {
  replaced: number
  /** Shards that needed a new place and did not get one (no fit friend with room, or fewer than k good shards). */
  unplaced: number
  deletesDone: number
  deletesPending: number
}

export interface Holding {
  onion: string
  name: string
  shards: number
  /** Bytes the friend is charged for our shards. */
  bytes: number
  quota: number
}

type Outcome = { ok: true } | { ok: false, unavailable: boolean, reason: string }

export class FriendsBackupTarget implements BackupTarget {
  readonly description = 'friends'
  private readonly host: P2PHost
  private readonly book: FriendBook
  private readonly shardKey: Buffer
  private readonly auditKey: Buffer
  private readonly store: PlacementStore
  private readonly k: number
  private readonly logger: Logger | undefined
  private readonly timeoutMs: number
  private readonly codec = erasureCodec('wasm')
  private state: Placement | undefined
  private chain: Promise<unknown> = Promise.resolve()
  private closed = false

  constructor (init: FriendsTargetInit) {
    if (init.key.byteLength < 32) throw new BackupTargetError('the friends target needs a key of at least 32 bytes')
    this.host = init.host
    this.book = init.book
    this.shardKey = shardKey(init.key)
    this.auditKey = auditKey(init.key)
    this.store = init.placement
    this.k = init.dataShards ?? DEFAULT_DATA_SHARDS
    if (!Number.isInteger(this.k) || this.k < 1 || this.k > 8) throw new BackupTargetError('dataShards is an integer from 1 to 8')
    this.logger = init.logger
    this.timeoutMs = init.timeoutMs ?? 60_000
  }

  /**
   * Puts and gets run side by side (backupToTarget and restoreFromTarget keep up to `parallel`
   * going; a put touches only its own blob's entry); every other operation runs alone: after
   * the puts and gets already started, and before any started later.
   */
  readonly parallel = 8
  private readonly puts = new Set<Promise<unknown>>()

  private async serial<T> (work: () => Promise<T>): Promise<T> {
    if (this.closed) throw new BackupTargetError('this friends backup target was closed')
    const alone = async (): Promise<T> => {
      await Promise.allSettled([...this.puts])
      try {
        return await work()
      } finally {
        this.chargedSums = undefined
      }
    }
    const next = this.chain.then(alone, alone)
    this.chain = next.catch(() => {})
    return await next
  }

  private async shared<T> (work: () => Promise<T>): Promise<T> {
    if (this.closed) throw new BackupTargetError('this friends backup target was closed')
    const before = this.chain
    const run = (async () => { await before; return await work() })()
    this.puts.add(run)
    try {
      return await run
    } finally {
      this.puts.delete(run)
    }
  }

  // ---- the placement record ----

  private loading: Promise<Placement> | undefined

  private async placement (): Promise<Placement> {
    if (this.state !== undefined) return this.state
    this.loading ??= (async () => (await this.store.load()) ?? await this.discover())()
    this.state = await this.loading
    return this.state
  }

  // The record is written at most every SAVE_DELAY_MS (it holds every blob, so writing it after
  // each put would cost O(n^2) over a backup), and at flush and close. Losing the last changes
  // in a crash costs only work: a blob missing from the record is put again, and its old shards
  // are found again when the record is rebuilt from the friends' lists.
  private dirty = false
  private saveTimer: NodeJS.Timeout | undefined
  private saving: Promise<void> = Promise.resolve()

  private async save (): Promise<void> {
    this.dirty = true
    if (this.saveTimer !== undefined) return
    this.saveTimer = setTimeout(() => { this.saveTimer = undefined; this.flush().catch((err: unknown) => { this.logger?.error({ err: (err as Error).message }, 'Saving the friends placement record failed; it is tried again at the next change.') }) }, SAVE_DELAY_MS)
    this.saveTimer.unref()
  }

  /** Writes the placement record now if it changed. */
  async flush (): Promise<void> {
    clearTimeout(this.saveTimer)
    this.saveTimer = undefined
    const turn = this.saving.then(async () => {
      if (!this.dirty || this.state === undefined) return
      this.dirty = false
      try {
        await this.store.save(this.state)
      } catch (err) {
        this.dirty = true
        throw err
      }
    })
    this.saving = turn.catch(() => {})
    await turn
  }

  /** Rebuilds the placement from what the friends say they hold (a restore on a new machine). */
  private async discover (): Promise<Placement> {
    const groups = new Map<string, Map<string, { k: number, m: number, length: number, slot: 0 | 1, shards: Map<number, { friend: string, size: number }> }>>()
    let answered = 0
    const friends = this.book.friends()
    // All friends are asked at once: one that is offline costs one timeout, not one each.
    const lists = await Promise.all(friends.map(async (friend) => {
      try {
        const held = await listShards(this.host, friend, { timeoutMs: this.timeoutMs })
        answered++
        await this.book.seen(friend.onion)
        return { friend, held }
      } catch (err) {
        this.down.set(friend.onion, Date.now() + DOWN_FOR_MS)
        this.logger?.info({ friend: friend.onion }, `Friend ${friend.name} did not list its shards of ours: ${(err as Error).message}`)
        return { friend, held: [] }
      }
    }))
    for (const { friend, held } of lists) {
      for (const shard of held) {
        const meta = parseShardMeta(shard.meta)
        if (meta === undefined) continue
        const slot = shard.index >= SLOT_WIDTH ? 1 : 0
        const index = shard.index % SLOT_WIDTH
        if (index >= meta.k + meta.m) continue
        const byPut = groups.get(shard.name) ?? new Map()
        groups.set(shard.name, byPut)
        const putId = meta.putId.toString('hex')
        const group = byPut.get(putId) ?? { k: meta.k, m: meta.m, length: meta.length, slot, shards: new Map() }
        byPut.set(putId, group)
        if (group.k === meta.k && group.m === meta.m && group.slot === slot && !group.shards.has(index)) group.shards.set(index, { friend: friend.onion, size: shard.size })
      }
    }
    if (answered === 0 && friends.length > 0) throw new TargetUnavailableError('none of the friends could be reached to find the backup\'s shards; try again later')
    const blobs: Record<string, BlobPlacement> = {}
    for (const [name, byPut] of groups) {
      // The newest put of which at least k shards are listed; else the newest.
      const ordered = [...byPut].sort((a, b) => b[0].localeCompare(a[0]))
      const [putId, g] = ordered.find(([, g]) => g.shards.size >= g.k) ?? ordered[0]!
      blobs[name] = {
        k: g.k, m: g.m, length: g.length, putId, slot: g.slot, codec: 'wasm',
        shards: Array.from({ length: g.k + g.m }, (_, i) => {
          const s = g.shards.get(i)
          // No audit answers yet: the first audit fetches the shard and makes a generation.
          return { friend: s?.friend ?? null, size: s?.size ?? 0, generation: 0, answers: [], used: 0, failures: 0 }
        })
      }
    }
    return { format: PLACEMENT_FORMAT, blobs, pendingDeletes: [] }
  }

  // ---- friends ----

  private friend (onion: string | null): Friend | undefined {
    return onion === null ? undefined : this.book.friend(onion)
  }

  /** Bytes of ours each friend is charged for, from the placement. */
  /**
   * What each friend is charged for our shards. Walking every blob is O(blobs), too much on
   * every put of a large backup, so the sums are kept: a put adds its own blob's charges (and
   * takes off the old version's); every other change (they run alone) drops the sums, and the
   * next use walks the record again.
   */
  private chargedSums: Map<string, number> | undefined

  private charged (p: Placement): Map<string, number> {
    if (this.chargedSums !== undefined) return this.chargedSums
    const out = new Map<string, number>()
    for (const blob of Object.values(p.blobs)) this.addCharges(out, blob, 1)
    this.chargedSums = out
    return out
  }

  private addCharges (sums: Map<string, number>, blob: BlobPlacement, sign: 1 | -1): void {
    const meta = metaOf(blob)
    for (const s of blob.shards) if (s.friend !== null) sums.set(s.friend, (sums.get(s.friend) ?? 0) + sign * chargedSize(s.size, meta))
  }

  /** Friends with room for `charge` more bytes, the most free room first. */
  private candidates (p: Placement, charge: number, exclude: Set<string> = new Set()): Friend[] {
    const used = this.charged(p)
    const free = (f: Friend): number => f.quotaFromThem - (used.get(f.onion) ?? 0)
    return this.book.friends()
      .filter(f => f.quotaFromThem > 0 && !exclude.has(f.onion) && free(f) >= charge)
      .sort((a, b) => Number(this.isDown(a.onion)) - Number(this.isDown(b.onion)) || free(b) - free(a) || a.onion.localeCompare(b.onion))
  }

  // Friends that just failed to answer are asked last for a while, so that one friend who is
  // offline does not cost a Tor timeout on every blob of a backup or a restore.
  private readonly down = new Map<string, number>()

  private isDown (onion: string): boolean {
    const until = this.down.get(onion)
    if (until === undefined) return false
    if (until > Date.now()) return true
    this.down.delete(onion)
    return false
  }

  private async attempt (friend: Friend, work: () => Promise<unknown>): Promise<Outcome> {
    try {
      await work()
      this.down.delete(friend.onion)
      await this.book.seen(friend.onion)
      return { ok: true }
    } catch (err) {
      if (err instanceof PeerRefusedError) return { ok: false, unavailable: err.code === 'busy', reason: `${friend.name} refused (${err.code}): ${err.message}` }
      this.down.set(friend.onion, Date.now() + DOWN_FOR_MS)
      return { ok: false, unavailable: true, reason: `${friend.name} could not be reached: ${(err as Error).message}` }
    }
  }

  private async store1 (friend: Friend, name: string, slot: 0 | 1, header: ShardHeader, stored: Buffer): Promise<Outcome> {
    return await this.attempt(friend, async () => await putShard(this.host, friend, { name, index: slot * SLOT_WIDTH + header.index, meta: shardMeta(header), bytes: stored }, { timeoutMs: this.timeoutMs }))
  }

  private challenges (name: string, wireIndex: number, generation: number, stored: Buffer): string[] {
    return Array.from({ length: CHALLENGES_PER_GENERATION }, (_, j) => auditAnswer(auditNonce(this.auditKey, name, wireIndex, generation, j), stored).toString('hex'))
  }

  // ---- BackupTarget ----

  async put (name: string, bytes: Uint8Array): Promise<void> {
    checkBlob(name, bytes)
    const blob = Buffer.from(bytes)
    await this.shared(async () => {
      const p = await this.placement()
      const k = this.k
      const old = p.blobs[name]
      const slot: 0 | 1 = old === undefined ? 0 : old.slot === 0 ? 1 : 0
      const putId = Buffer.alloc(PUT_ID_BYTES)
      putId.writeUIntBE(Date.now(), 0, 6)
      randomBytes(2).copy(putId, 6)
      // What one shard costs a friend does not depend on m (its meta has one digit of it).
      const probe = { codec: 'wasm' as const, k, m: MAX_PARITY_SHARDS, index: 0, length: blob.length, putId }
      const friends = this.candidates(p, chargedSize(SHARD_HEADER_BYTES + shardSize(blob.length, k) + SHARD_MAC_BYTES, shardMeta(probe)))
      if (friends.length < k + 1) {
        const all = this.book.friends().filter(f => f.quotaFromThem > 0).length
        throw new TargetRefusedError(`a backup on friends needs at least ${k + 1} friends who hold shards for this node with room for this blob; ${all} friends hold shards, ${friends.length} of them with room`)
      }
      const n = Math.min(friends.length, k + MAX_PARITY_SHARDS)
      const m = n - k
      const data = await this.codec.encode(blob, k, m)
      const headers = data.map((_, i): ShardHeader => ({ codec: 'wasm', k, m, index: i, length: blob.length, putId }))
      const stored = data.map((d, i) => sealShard(this.shardKey, headers[i]!, name, d))
      const holder: Array<Friend | null> = friends.slice(0, n)
      const spares = friends.slice(n)
      const outcomes = await Promise.all(holder.map(async (f, i) => await this.store1(f!, name, slot, headers[i]!, stored[i]!)))
      const reasons: string[] = []
      let unavailable = false
      for (const [i, outcome] of outcomes.entries()) {
        if (outcome.ok) continue
        reasons.push(outcome.reason)
        unavailable ||= outcome.unavailable
        holder[i] = null
        while (spares.length > 0) {
          const spare = spares.shift()!
          const again = await this.store1(spare, name, slot, headers[i]!, stored[i]!)
          if (again.ok) { holder[i] = spare; break }
          reasons.push(again.reason)
          unavailable ||= again.unavailable
        }
      }
      const placed = holder.filter(h => h !== null).length
      if (placed < k + 1) {
        for (const [i, f] of holder.entries()) if (f !== null) await this.attempt(f, async () => await deleteShards(this.host, f, name, slot * SLOT_WIDTH + i, { timeoutMs: this.timeoutMs }))
        const why = `only ${placed} of the ${n} shards of ${name} could be stored, and ${k + 1} are needed: ${reasons.join('; ')}`
        throw unavailable ? new TargetUnavailableError(why) : new TargetRefusedError(why)
      }
      if (placed < n) this.logger?.warn({ blob: name }, `Stored ${placed} of the ${n} shards of a blob; repair will place the others: ${reasons.join('; ')}`)
      p.blobs[name] = {
        k, m, length: blob.length, putId: putId.toString('hex'), slot, codec: 'wasm',
        shards: holder.map((f, i) => ({
          friend: f?.onion ?? null, size: stored[i]!.length, generation: 0,
          answers: f === null ? [] : this.challenges(name, slot * SLOT_WIDTH + i, 0, stored[i]!), used: 0, failures: 0
        }))
      }
      if (this.chargedSums !== undefined) {
        if (old !== undefined) this.addCharges(this.chargedSums, old, -1)
        this.addCharges(this.chargedSums, p.blobs[name]!, 1)
      }
      if (old !== undefined) {
        for (const [i, s] of old.shards.entries()) if (s.friend !== null) p.pendingDeletes.push({ friend: s.friend, name, index: old.slot * SLOT_WIDTH + i })
      }
      await this.save()
      if (old !== undefined) {
        await this.flushDeletes(p, name)
        await this.save()
      }
    })
  }

  async get (name: string): Promise<Buffer | undefined> {
    checkBlobName(name)
    return await this.shared(async () => {
      const p = await this.placement()
      const entry = p.blobs[name]
      if (entry === undefined) return undefined
      const { shards, damaged, unreachable } = await this.gather(name, entry)
      const good = shards.filter(s => s !== undefined).length
      if (good < entry.k) {
        const why = `only ${good} good shards of ${name} could be fetched, and ${entry.k} are needed (${damaged} altered or missing on a friend, ${unreachable} unreachable)`
        // While a friend may come back the blob may too: transient. Otherwise it is damaged.
        throw unreachable > 0 ? new TargetUnavailableError(why) : new BlobDamagedError(why)
      }
      return await this.assemble(entry, shards)
    })
  }

  /**
   * Fetches good shards of the blob: the data shards first, then more until k are good or
   * none is left. `skip` is an erasure index not to fetch (the shard being rebuilt).
   */
  private async gather (name: string, entry: BlobPlacement, skip?: number): Promise<{ shards: Array<Buffer | undefined>, damaged: number, unreachable: number }> {
    const shards: Array<Buffer | undefined> = Array.from({ length: entry.k + entry.m }, () => undefined)
    let damaged = 0
    let unreachable = 0
    const order = entry.shards.map((_, i) => i).filter(i => i !== skip && entry.shards[i]!.friend !== null)
      .sort((a, b) => Number(this.isDown(entry.shards[a]!.friend!)) - Number(this.isDown(entry.shards[b]!.friend!)) || a - b)
    let next = 0
    while (next < order.length) {
      const good = shards.filter(s => s !== undefined).length
      if (good >= entry.k) break
      const batch = order.slice(next, next + (entry.k - good))
      next += batch.length
      await Promise.all(batch.map(async (i) => {
        const friend = this.friend(entry.shards[i]!.friend)
        // A friend removed from the book is not asked again: its shard is lost.
        if (friend === undefined) { damaged++; return }
        const wire = entry.slot * SLOT_WIDTH + i
        let bytes: Buffer
        try {
          bytes = await getShard(this.host, friend, name, wire, { timeoutMs: this.timeoutMs })
          this.down.delete(friend.onion)
          await this.book.seen(friend.onion)
        } catch (err) {
          if (err instanceof PeerRefusedError && err.code === 'not-found') damaged++
          else { unreachable++; this.down.set(friend.onion, Date.now() + DOWN_FOR_MS) }
          return
        }
        const data = this.check(name, entry, i, bytes)
        if (data === undefined) {
          damaged++
          this.logger?.warn({ blob: name, friend: friend.onion }, `A shard held by friend ${friend.name} does not authenticate; the blob is rebuilt from the others.`)
        } else shards[i] = data
      }))
    }
    return { shards, damaged, unreachable }
  }

  /** The shard's data if it authenticates and belongs to this put of the blob at this index. */
  private check (name: string, entry: BlobPlacement, index: number, stored: Buffer): Buffer | undefined {
    try {
      const { header, data } = openShard(this.shardKey, name, stored)
      if (header.k !== entry.k || header.m !== entry.m || header.index !== index || header.length !== entry.length || header.putId.toString('hex') !== entry.putId) return undefined
      return data
    } catch (err) {
      if (err instanceof FriendShardError) return undefined
      throw err
    }
  }

  private async assemble (entry: BlobPlacement, shards: Array<Buffer | undefined>): Promise<Buffer> {
    const all = shards.slice(0, entry.k).every(s => s !== undefined) ? shards as Buffer[] : await this.codec.reconstruct(shards, entry.k, entry.m)
    return Buffer.concat(all.slice(0, entry.k)).subarray(0, entry.length)
  }

  async list (): Promise<BlobInfo[]> {
    return await this.serial(async () => {
      const p = await this.placement()
      return Object.entries(p.blobs).map(([name, b]) => ({ name, size: b.length }))
    })
  }

  async delete (name: string): Promise<void> {
    checkBlobName(name)
    await this.serial(async () => {
      const p = await this.placement()
      const entry = p.blobs[name]
      if (entry === undefined) return
      delete p.blobs[name]
      // Every slot of the name on every friend that held a shard of it.
      for (const onion of new Set(entry.shards.map(s => s.friend))) if (onion !== null) p.pendingDeletes.push({ friend: onion, name })
      await this.save()
      await this.flushDeletes(p, name)
      await this.save()
    })
  }

  /** Carries out the pending deletes (of `only` when given); the ones that fail stay pending. */
  private async flushDeletes (p: Placement, only?: string): Promise<number> {
    // Puts run side by side and add deletes of their own meanwhile: remove only what was done.
    const done = new Set<Placement['pendingDeletes'][number]>()
    for (const d of p.pendingDeletes.filter(d => only === undefined || d.name === only)) {
      const friend = this.friend(d.friend)
      if (friend === undefined) { done.add(d); continue }
      const outcome = await this.attempt(friend, async () => await deleteShards(this.host, friend, d.name, d.index, { timeoutMs: this.timeoutMs }))
      if (outcome.ok) done.add(d)
    }
    p.pendingDeletes = p.pendingDeletes.filter(d => !done.has(d))
    return done.size
  }

  async close (): Promise<void> {
    if (this.closed) return
    await this.serial(async () => { await this.flush() })
    this.closed = true
  }

  // ---- audits and repair ----

  /**
   * Challenges up to `maxShards` shards on each friend, in one request per friend. A wrong or
   * missing answer counts a failed audit in the friend's book entry and the shard is rebuilt
   * and stored again. Shards whose challenges are spent are fetched, checked and given a new
   * generation of challenges.
   */
  async audit (options: { maxShards?: number } = {}): Promise<AuditReport> {
    const maxShards = Math.max(1, Math.min(options.maxShards ?? 8, 256))
    return await this.serial(async () => {
      const p = await this.placement()
      const report: AuditReport = { checked: 0, passed: 0, failed: 0, replaced: 0, unreachable: [] }
      const byFriend = new Map<string, Array<{ name: string, i: number }>>()
      for (const [name, b] of Object.entries(p.blobs)) {
        for (const [i, s] of b.shards.entries()) if (s.friend !== null) byFriend.set(s.friend, [...(byFriend.get(s.friend) ?? []), { name, i }])
      }
      for (const [onion, all] of byFriend) {
        const friend = this.friend(onion)
        if (friend === undefined) continue
        const sample = shuffle(all).slice(0, maxShards)
        const failed: Array<{ name: string, i: number }> = []
        let passed = 0
        const challenged = sample.filter(({ name, i }) => p.blobs[name]!.shards[i]!.used < p.blobs[name]!.shards[i]!.answers.length)
        const refresh = sample.filter(s => !challenged.includes(s))
        if (challenged.length > 0) {
          const asks = challenged.map(({ name, i }) => {
            const b = p.blobs[name]!
            const s = b.shards[i]!
            const wire = b.slot * SLOT_WIDTH + i
            return { name, index: wire, nonce: auditNonce(this.auditKey, name, wire, s.generation, s.used) }
          })
          let proofs: Array<string | null>
          try {
            proofs = await auditShards(this.host, friend, asks, { timeoutMs: this.timeoutMs })
            await this.book.seen(onion)
          } catch (err) {
            if (err instanceof PeerUnavailableError || (err instanceof PeerRefusedError && err.code === 'busy')) { report.unreachable.push(onion); continue }
            // A friend that refuses an audit outright fails it for every shard asked.
            proofs = asks.map(() => null)
          }
          for (const [n, { name, i }] of challenged.entries()) {
            const s = p.blobs[name]!.shards[i]!
            const expected = s.answers[s.used]!
            s.used++
            if (proofs[n] !== null && proofs[n]!.slice(0, 32) === expected) passed++
            else failed.push({ name, i })
          }
        }
        for (const { name, i } of refresh) {
          const b = p.blobs[name]!
          const s = b.shards[i]!
          const wire = b.slot * SLOT_WIDTH + i
          let bytes: Buffer | undefined
          try {
            bytes = await getShard(this.host, friend, name, wire, { timeoutMs: this.timeoutMs })
          } catch (err) {
            if (!(err instanceof PeerRefusedError && err.code === 'not-found')) { if (!report.unreachable.includes(onion)) report.unreachable.push(onion); continue }
          }
          if (bytes !== undefined && this.check(name, b, i, bytes) !== undefined) {
            s.generation++
            s.answers = this.challenges(name, wire, s.generation, bytes)
            s.used = 0
            s.size = bytes.length
            passed++
          } else failed.push({ name, i })
        }
        report.checked += passed + failed.length
        report.passed += passed
        report.failed += failed.length
        for (const { name, i } of failed) {
          p.blobs[name]!.shards[i]!.failures++
          if (await this.replace(p, name, i, true)) report.replaced++
        }
        const before = friend.audits ?? { passed: 0, failed: 0 }
        await this.book.update(onion, {
          audits: {
            passed: before.passed + passed,
            failed: before.failed + failed.length,
            lastAt: new Date().toISOString(),
            lastResult: failed.length === 0 ? `all ${passed} shards checked were held` : `${failed.length} of ${passed + failed.length} shards checked were altered or missing`
          }
        })
      }
      await this.save()
      return report
    })
  }

  /**
   * Rebuilds shard i of the blob from k good others and stores it again: on the same friend
   * first when `sameFirst` (and it is still a friend), else on a friend that holds no shard of
   * this blob. Returns whether it was stored.
   */
  private async replace (p: Placement, name: string, i: number, sameFirst: boolean, unfit: Set<string> = new Set()): Promise<boolean> {
    const b = p.blobs[name]!
    const { shards } = await this.gather(name, b, i)
    if (shards.filter(s => s !== undefined).length < b.k) {
      this.logger?.warn({ blob: name }, 'A shard cannot be rebuilt: fewer than k good shards of its blob could be fetched.')
      return false
    }
    const rebuilt = await this.codec.reconstruct(shards, b.k, b.m)
    const header: ShardHeader = { codec: 'wasm', k: b.k, m: b.m, index: i, length: b.length, putId: Buffer.from(b.putId, 'hex') }
    const stored = sealShard(this.shardKey, header, name, rebuilt[i]!)
    const s = b.shards[i]!
    const current = this.friend(s.friend)
    const holding = new Set([...unfit, ...b.shards.map(x => x.friend).filter((x): x is string => x !== null)])
    const others = this.candidates(p, chargedSize(stored.length, shardMeta(header)), holding)
    const order = sameFirst && current !== undefined ? [current, ...others] : others
    for (const friend of order) {
      const outcome = await this.store1(friend, name, b.slot, header, stored)
      if (!outcome.ok) continue
      if (s.friend !== null && s.friend !== friend.onion && this.friend(s.friend) !== undefined) {
        p.pendingDeletes.push({ friend: s.friend, name, index: b.slot * SLOT_WIDTH + i })
      }
      const moved = s.friend !== friend.onion
      b.shards[i] = {
        friend: friend.onion, size: stored.length, generation: s.generation + 1,
        answers: this.challenges(name, b.slot * SLOT_WIDTH + i, s.generation + 1, stored), used: 0, failures: moved ? 0 : s.failures
      }
      return true
    }
    return false
  }

  /**
   * Moves shards away from friends that left the book, that have not been heard from for
   * `absentAfterMs`, or that failed REPEATED_AUDIT_FAILURES audits of a shard; places shards
   * not stored anywhere; carries out pending deletes.
   */
  async repair (options: { absentAfterMs?: number, now?: Date } = {}): Promise<RepairReport> {
    const absentAfterMs = options.absentAfterMs ?? DEFAULT_ABSENT_AFTER_MS
    const now = (options.now ?? new Date()).getTime()
    return await this.serial(async () => {
      const p = await this.placement()
      const report: RepairReport = { replaced: 0, unplaced: 0, deletesDone: 0, deletesPending: 0 }
      const absent = new Set(this.book.friends().filter(f => now - Date.parse(f.lastSeen ?? f.addedAt) > absentAfterMs).map(f => f.onion))
      for (const [name, b] of Object.entries(p.blobs)) {
        for (const [i, s] of b.shards.entries()) {
          const friend = this.friend(s.friend)
          if (friend !== undefined && !absent.has(friend.onion) && s.failures < REPEATED_AUDIT_FAILURES) continue
          // Not onto an absent friend, nor back onto the one that keeps failing audits.
          const unfit = new Set(absent)
          if (s.friend !== null) unfit.add(s.friend)
          if (await this.replace(p, name, i, false, unfit)) report.replaced++
          else report.unplaced++
        }
      }
      report.deletesDone = await this.flushDeletes(p)
      report.deletesPending = p.pendingDeletes.length
      await this.save()
      return report
    })
  }

  /**
   * Per friend: how many of our shards it holds and the bytes it is charged for them. For the
   * UI: it does not wait for a running backup and never asks the friends (without a placement
   * record it shows nothing held).
   */
  async holdings (): Promise<Holding[]> {
    const p = this.state ?? await this.store.load() ?? { format: PLACEMENT_FORMAT, blobs: {}, pendingDeletes: [] }
    const charged = this.charged(p)
    const counts = new Map<string, number>()
    for (const b of Object.values(p.blobs)) for (const s of b.shards) if (s.friend !== null) counts.set(s.friend, (counts.get(s.friend) ?? 0) + 1)
    return this.book.friends().map(f => ({ onion: f.onion, name: f.name, shards: counts.get(f.onion) ?? 0, bytes: charged.get(f.onion) ?? 0, quota: f.quotaFromThem }))
  }
}

function metaOf (b: BlobPlacement): string {
  return shardMeta({ codec: 'wasm', k: b.k, m: b.m, index: 0, length: b.length, putId: Buffer.from(b.putId, 'hex') })
}

function shuffle<T> (items: T[]): T[] {
  const out = [...items]
  for (let i = out.length - 1; i > 0; i--) {
    const j = randomInt(i + 1)
    ;[out[i], out[j]] = [out[j]!, out[i]!]
  }
  return out
}

/**
 * The key a node gives its friends target: from its onion seed, not from the vault, because a
 * restore on a new machine must check shards before any vault exists, and it has the onion
 * seed back by then (its friends know it only by that key).
 */
export function friendsBackupKey (onionSeed: Uint8Array): Buffer {
  return Buffer.from(hkdfSync('sha256', onionSeed, Buffer.alloc(0), Buffer.from('smtorp friends backup key v1'), 32))
}

export function friendsBackupTarget (init: FriendsTargetInit): FriendsBackupTarget {
  return new FriendsBackupTarget(init)
}
