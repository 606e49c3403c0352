// The shards our friends keep on this node (spec/backup.md part 3, "What a friend's node
// keeps"): `<dataDir>/friends/held/<owner onion>/<blob name>.<index>`, one file per shard,
// each written durably (temp file, fsync, rename) before the call resolves.
//
// A file is: byte 0x01 (format), the length of the owner's meta string (2 bytes, big-endian),
// the meta string (UTF-8, at most MAX_META_CHARS characters), then the shard bytes exactly as
// the owner sent them. The shards are opaque to this node: sealed blobs cut by the owner, with
// the owner's own MAC.
//
// Quotas: an owner is charged, per shard, its bytes + its meta's bytes + SHARD_OVERHEAD_BYTES
// (so that a flood of empty shards also runs into the quota), against the friend book's
// `quotaForThem`. The charge is recomputed from the files when the host opens, so it survives
// a restart. Every change of one owner's shards is done one at a time.
//
// Nothing a peer sends becomes a path unless it passed `isBlobName` (1 to 64 lowercase hex)
// and the index check (an integer 0..31), and owners are onion addresses taken from the
// authenticated peer id, never from the request.
import { createHash } from 'node:crypto'
import { mkdir, readdir, readFile, rm, stat, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { writeFileDurably } from '../identity/index.ts'
import { isBlobName } from '../backup/target.ts'
import { isOnionAddress } from '../../protocol/onion.ts'
import type { FriendBook } from './friend-book.ts'
import type { Logger } from '../log/index.ts'

export const HELD_DIR = join('friends', 'held')
export const MAX_SHARD_INDEX = 31
export const MAX_META_CHARS = 256
/** What each shard costs beyond its bytes and meta, for the file and the accounting. */
export const SHARD_OVERHEAD_BYTES = 256
const FILE_FORMAT = 1
const SHARD_FILE = /^([0-9a-f]{1,64})\.([0-9]{1,2})$/

/** The bytes a shard is charged against its owner's quota. */
export function chargedSize (shardBytes: number, meta: string): number {
  return shardBytes + Buffer.byteLength(meta, 'utf8') + SHARD_OVERHEAD_BYTES
}

export function isShardIndex (index: unknown): index is number {
  return typeof index === 'number' && Number.isInteger(index) && index >= 0 && index <= MAX_SHARD_INDEX
}

export function isShardMeta (meta: unknown): meta is string {
  return typeof meta === 'string' && meta.length <= MAX_META_CHARS
}

export interface HeldShard {
  name: string
  index: number
  /** Bytes of the shard (not of its file). */
  size: number
  meta: string
}

/** A put that would take the owner over its quota. */
export class OverQuotaError extends Error {
  override name = 'OverQuotaError'
  constructor (readonly used: number, readonly quota: number, readonly wanted: number) {
    super(`this shard would bring what this node holds for you to ${wanted} bytes, over your quota of ${quota} bytes (${used} bytes used now)`)
  }
}

export class ShardHostError extends Error {
  override name = 'ShardHostError'
}

export interface ShardHostInit {
  dataDir: string
  book: FriendBook
  logger?: Logger
}

export class ShardHost {
  private readonly root: string
  private readonly book: FriendBook
  private readonly logger: Logger | undefined
  /** Charged bytes per owner, from the files. */
  private readonly used = new Map<string, number>()
  private readonly turns = new Map<string, Promise<unknown>>()

  private constructor (init: ShardHostInit) {
    this.root = join(init.dataDir, HELD_DIR)
    this.book = init.book
    this.logger = init.logger
  }

  /** Opens the store and counts every owner's usage from its files; removes leftover temp files. */
  static async open (init: ShardHostInit): Promise<ShardHost> {
    const host = new ShardHost(init)
    await mkdir(host.root, { recursive: true, mode: 0o700 })
    for (const owner of await readdir(host.root)) {
      if (!isOnionAddress(owner)) continue
      host.used.set(owner, await host.recount(owner))
    }
    return host
  }

  private dir (owner: string): string {
    const label = owner.toLowerCase().replace(/\.onion$/, '')
    if (!isOnionAddress(label) || label.length !== 56) throw new ShardHostError('a shard owner is an onion address')
    return join(this.root, label)
  }

  private file (owner: string, name: string, index: number): string {
    if (!isBlobName(name)) throw new ShardHostError('a shard name is 1 to 64 lowercase hex characters')
    if (!isShardIndex(index)) throw new ShardHostError(`a shard index is an integer from 0 to ${MAX_SHARD_INDEX}`)
    return join(this.dir(owner), `${name}.${index}`)
  }

  private async recount (owner: string): Promise<number> {
    let total = 0
    const dir = this.dir(owner)
    for (const entry of await readdir(dir).catch(() => [] as string[])) {
      if (SHARD_FILE.test(entry)) {
        total += (await stat(join(dir, entry))).size - 3 + SHARD_OVERHEAD_BYTES
      } else if (entry.includes('.tmp-')) {
        // A write interrupted by a crash: its rename never happened, so it holds nothing.
        await unlink(join(dir, entry)).catch(() => {})
      }
    }
    return total
  }

  /** Runs `work` after every earlier change of this owner's shards. */
  private async turn<T> (owner: string, work: () => Promise<T>): Promise<T> {
    const key = this.dir(owner)
    const previous = this.turns.get(key) ?? Promise.resolve()
    const next = previous.then(work, work)
    this.turns.set(key, next.catch(() => {}))
    return await next
  }

  /** Bytes charged to the owner now. */
  usage (owner: string): number {
    return this.used.get(this.dir(owner).slice(this.root.length + 1)) ?? 0
  }

  quota (owner: string): number {
    return this.book.friend(owner)?.quotaForThem ?? 0
  }

  async put (owner: string, name: string, index: number, meta: string, bytes: Uint8Array): Promise<void> {
    const path = this.file(owner, name, index)
    if (!isShardMeta(meta)) throw new ShardHostError(`a shard's meta is a string of at most ${MAX_META_CHARS} characters`)
    const label = this.dir(owner).slice(this.root.length + 1)
    await this.turn(owner, async () => {
      const before = await this.sizeOf(path)
      const used = this.used.get(label) ?? 0
      const charge = chargedSize(bytes.byteLength, meta)
      const after = used - (before ?? 0) + charge
      const quota = this.quota(label)
      if (after > quota && charge > (before ?? 0)) throw new OverQuotaError(used, quota, after)
      const metaBytes = Buffer.from(meta, 'utf8')
      const head = Buffer.alloc(3)
      head[0] = FILE_FORMAT
      head.writeUInt16BE(metaBytes.length, 1)
      await mkdir(this.dir(owner), { recursive: true, mode: 0o700 })
      await writeFileDurably(path, Buffer.concat([head, metaBytes, bytes]))
      this.used.set(label, after)
    })
  }

  /** The charged size of a stored shard, or undefined. */
  private async sizeOf (path: string): Promise<number | undefined> {
    try {
      return (await stat(path)).size - 3 + SHARD_OVERHEAD_BYTES
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw err
    }
  }

  private async read (path: string): Promise<{ meta: string, bytes: Buffer } | undefined> {
    let file: Buffer
    try {
      file = await readFile(path)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw err
    }
    if (file.length < 3 || file[0] !== FILE_FORMAT || 3 + file.readUInt16BE(1) > file.length) {
      this.logger?.warn({ file: path }, 'A held shard file is damaged; it is treated as missing.')
      return undefined
    }
    const metaLength = file.readUInt16BE(1)
    return { meta: file.subarray(3, 3 + metaLength).toString('utf8'), bytes: file.subarray(3 + metaLength) }
  }

  async get (owner: string, name: string, index: number): Promise<Buffer | undefined> {
    return (await this.read(this.file(owner, name, index)))?.bytes
  }

  async list (owner: string): Promise<HeldShard[]> {
    const dir = this.dir(owner)
    const out: HeldShard[] = []
    for (const entry of (await readdir(dir).catch(() => [] as string[])).sort()) {
      const match = SHARD_FILE.exec(entry)
      if (match === null) continue
      const index = Number(match[2])
      if (!isShardIndex(index)) continue
      const held = await this.read(join(dir, entry))
      if (held !== undefined) out.push({ name: match[1]!, index, size: held.bytes.length, meta: held.meta })
    }
    return out
  }

  /** Deletes one shard, or every shard of the name when index is undefined; returns how many. */
  async delete (owner: string, name: string, index?: number): Promise<number> {
    const label = this.dir(owner).slice(this.root.length + 1)
    const indexes = index === undefined ? Array.from({ length: MAX_SHARD_INDEX + 1 }, (_, i) => i) : [index]
    const paths = indexes.map(i => this.file(owner, name, i))
    return await this.turn(owner, async () => {
      let deleted = 0
      for (const path of paths) {
        const size = await this.sizeOf(path)
        if (size === undefined) continue
        await unlink(path)
        this.used.set(label, (this.used.get(label) ?? 0) - size)
        deleted++
      }
      return deleted
    })
  }

  /** For each shard, hex SHA-256(nonce || shard bytes), or null when the shard is not here. */
  async audit (owner: string, shards: Array<{ name: string, index: number, nonce: Uint8Array }>): Promise<Array<string | null>> {
    const out: Array<string | null> = []
    for (const { name, index, nonce } of shards) {
      const bytes = await this.get(owner, name, index)
      out.push(bytes === undefined ? null : createHash('sha256').update(nonce).update(bytes).digest('hex'))
    }
    return out
  }

  /** Removes every shard of the owner (when the owner stops being a friend). */
  async dropOwner (owner: string): Promise<void> {
    const label = this.dir(owner).slice(this.root.length + 1)
    await this.turn(owner, async () => {
      await rm(this.dir(owner), { recursive: true, force: true })
      this.used.delete(label)
    })
  }
}

export async function openShardHost (init: ShardHostInit): Promise<ShardHost> {
  return await ShardHost.open(init)
}
