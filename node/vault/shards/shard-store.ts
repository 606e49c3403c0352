// The shard store: the vault's on-disk, erasure-coded object store. The vault hands it
// opaque, already-encrypted objects; it keeps each as k data and m parity shards so that
// ordinary disk damage (flipped bits, a truncated or lost file) never loses an object. It
// knows nothing about keys or mail.
//
// Layout, format 1 (also in spec/storage.md):
//
//   <dir>/FORMAT                 "smtorp-shards 1 k=<k> m=<m>\n", written atomically at creation
//   <dir>/CODEC                  "native\n" or "wasm\n": the erasure codec that writes parity here,
//                                written atomically at creation, before FORMAT
//   <dir>/c<NN>/<SSSSSSSS>.seg   column NN holds shard NN of every object, in append-only
//                                segment files numbered from 00000001 (record layout: record.ts)
//
// Shard i always goes to column i, so the shards of one object are in k + m files in k + m
// directories: damage to one file or region costs any object at most one shard. Each column
// rolls over to a new segment on its own when the next record would take the current one
// past `segmentBytes`.
//
// Durability: puts (and repairs) queued in the same event-loop turn, and everything queued
// while a commit is on disk, form one group commit: one write per column segment, then an
// fdatasync of every touched file, all columns in parallel, and an fsync of a column's
// directory when a segment file was created. Every caller of the commit resolves after that,
// or all are rejected. After a failed commit the store refuses writes until reopened, since
// it no longer knows where its files end; reads go on.
//
// The two codecs do not compute the same parity (erasure/index.ts), and rebuilding with the
// other one gives wrong bytes without an error. A store opened with a codec other than the one
// in CODEC therefore serves intact objects (the data shards are the object itself) but refuses
// to rebuild from parity or to write.
//
// Appends start at the size of each column's newest segment when the store opens, so a
// record torn by a crash is left as garbage at a tail that no locator points into.
// Records describe themselves (index, object id, lengths, SHA-256), so a read checks every
// record against its locator and never returns bytes it has not verified.
import { mkdir, open, readdir, readFile, rename, rm, stat, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from '../../log/index.ts'
import { shardSize, type ErasureCodec } from '../erasure/codec.ts'
import { ObjectDamagedError, ShardStoreError, type BadShard } from './errors.ts'
import { FileCache } from './file-cache.ts'
import { checkLocator, MAX_SHARDS, type Locator, type ShardLocation } from './locator.ts'
import { HEADER_BYTES, recordHeader, recordProblem } from '../../../protocol/shard-record.ts'

export const SHARD_STORE_FORMAT = 1

export interface ShardStoreInit {
  /** Directory of the store; created if missing. */
  dir: string
  /** Data shards per object (default 4). */
  k?: number
  /** Parity shards per object (default 2): how many shards of one object may be lost. */
  m?: number
  codec: ErasureCodec
  /** A column starts a new segment file when the next record would take it past this (default 64 MiB). */
  segmentBytes?: number
  logger?: Logger
}

export interface ShardStoreStats {
  /** Segment files in all columns. */
  segments: number
  /** Bytes in all segment files (as this store wrote them; outside damage shows after reopening). */
  bytes: number
  /** Group commits written since open: each is one fdatasync per touched file. */
  commits: number
}

export interface ShardStore {
  open (): Promise<void>
  /** Waits for queued writes, then closes every file. */
  close (): Promise<void>
  /** Stores an object; durable when the promise resolves. Keep the locator to read it back. */
  put (objectId: Buffer, data: Uint8Array): Promise<Locator>
  /**
   * Reads an object, verified; rebuilt from parity when data shards are bad. `damaged` lists
   * the bad shards found: the data shards, and the parity shards when they had to be read.
   * Throws ObjectDamagedError when more than m shards are bad.
   */
  get (loc: Locator): Promise<{ data: Buffer, damaged: number[] }>
  /**
   * Rewrites the shards in `damaged`, and any other bad shard found while rebuilding, as fresh
   * records at the end of their own columns, durably. Returns the locator with those entries
   * changed; the old records stay behind as garbage.
   */
  repair (loc: Locator, damaged: number[]): Promise<Locator>
  /** Reads all k + m shards and returns the indexes of the bad ones (for scrubbing; never throws for too many). */
  verify (loc: Locator): Promise<number[]>
  stats (): ShardStoreStats
  /** Every segment file, with its size, and whether appends go to it now (never removable). */
  segments (): Promise<SegmentInfo[]>
  /**
   * Deletes a segment file that holds nothing the caller still needs (compaction: the caller
   * moved its live records with `repair` and saved the new locators first). Refuses the
   * segment appends go to.
   */
  removeSegment (column: number, segment: number): Promise<void>
  /** Start a new segment in `column` for the next append, so the current one can be compacted. */
  rollOver (column: number): void
}

export interface SegmentInfo {
  column: number
  segment: number
  bytes: number
  active: boolean
}

const DEFAULT_K = 4
const DEFAULT_M = 2
const DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024
const OPEN_FILES = 64
const FORMAT_FILE = 'FORMAT'
const CODEC_FILE = 'CODEC'
const SEGMENT_NAME = /^[0-9]{8,10}\.seg$/
/** Above this, check the file is long enough before allocating a buffer for a record. */
const LARGE_RECORD = 1024 * 1024

const columnName = (index: number): string => `c${String(index).padStart(2, '0')}`
const segmentName = (segment: number): string => `${String(segment).padStart(8, '0')}.seg`
const hex = (id: Buffer): string => id.toString('hex')

/** One column's append position. */
interface Column {
  index: number
  dir: string
  /** The segment appends go to. */
  segment: number
  /** Where the next record in it starts. */
  size: number
  /** Whether that segment file exists yet (a fresh column or a rollover creates it on first write). */
  onDisk: boolean
  /** Open handle on the current segment, kept between commits. */
  writer?: { segment: number, fh: FileHandle }
}

/** Records of one object waiting for a group commit. */
interface Job {
  objectId: Buffer
  objectLength: number
  shardLength: number
  /** Which shard indexes to write. */
  indexes: number[]
  /** All k + m shards (only `indexes` are written); a promise so encoding overlaps the previous commit. */
  shards: Promise<Buffer[]>
  places: Map<number, ShardLocation>
  resolve: (places: Map<number, ShardLocation>) => void
  reject: (err: ShardStoreError) => void
}

/** Consecutive records for one segment file of one column: one write. */
interface Run {
  column: Column
  segment: number
  offset: number
  path: string
  /** The file does not exist yet and is created (then its directory fsynced). */
  create: boolean
  buffers: Buffer[]
}

class Commit {
  readonly jobs: Job[] = []
  readonly done: Promise<void>
  finish!: () => void
  constructor () {
    this.done = new Promise((resolve) => { this.finish = resolve })
  }
}

export class DiskShardStore implements ShardStore {
  private readonly dir: string
  private readonly k: number
  private readonly m: number
  private readonly codec: ErasureCodec
  private readonly segmentBytes: number
  private readonly log: Logger | undefined
  private columns: Column[] | undefined
  private files: FileCache | undefined
  private collecting: Commit | undefined
  private writing: Commit | undefined
  /** Set when a commit failed: the column sizes may not match the files any more. */
  private failure: unknown
  /** The codec that wrote this store's parity, when it is not `codec` (see CODEC above). */
  private foreignCodec: string | undefined
  private segmentCount = 0
  private byteCount = 0
  private commitCount = 0

  constructor (init: ShardStoreInit) {
    const k = init.k ?? DEFAULT_K
    const m = init.m ?? DEFAULT_M
    if (!Number.isInteger(k) || !Number.isInteger(m) || k < 1 || m < 1 || k + m > MAX_SHARDS) {
      throw new ShardStoreError(`A shard store needs k >= 1 and m >= 1 with k + m <= ${MAX_SHARDS}; got k=${k} m=${m}.`)
    }
    const segmentBytes = init.segmentBytes ?? DEFAULT_SEGMENT_BYTES
    if (!Number.isSafeInteger(segmentBytes) || segmentBytes < 1) throw new ShardStoreError(`segmentBytes must be a positive integer; got ${segmentBytes}.`)
    if (init.codec == null) throw new ShardStoreError('A shard store needs an erasure codec.')
    this.dir = init.dir
    this.k = k
    this.m = m
    this.codec = init.codec
    this.segmentBytes = segmentBytes
    this.log = init.logger
  }

  async open (): Promise<void> {
    if (this.columns !== undefined) throw new ShardStoreError('The shard store is already open.')
    const columns: Column[] = []
    let segments = 0
    let bytes = 0
    try {
      await mkdir(this.dir, { recursive: true })
      await this.checkFormat()
      this.foreignCodec = await this.checkCodec()
      let createdColumn = false
      for (let index = 0; index < this.k + this.m; index++) {
        const dir = join(this.dir, columnName(index))
        // A lost column directory comes back empty; its shards read as missing and get rebuilt.
        if (await mkdir(dir, { recursive: true }) !== undefined) createdColumn = true
        // Only names this store writes count (not, say, a stray "000000001.seg").
        const numbers = (await readdir(dir)).filter((n) => SEGMENT_NAME.test(n) && n === segmentName(parseInt(n, 10))).map((n) => parseInt(n, 10))
        const sizes = await Promise.all(numbers.map(async (n) => (await stat(join(dir, segmentName(n)))).size))
        segments += numbers.length
        bytes += sizes.reduce((a, b) => a + b, 0)
        const newest = numbers.reduce((best, n, i) => (best < 0 || n > numbers[best]! ? i : best), -1)
        // A segment number may be used again if a column lost its newest files; that is safe
        // because every read checks the record's object id and checksum.
        columns.push({ index, dir, segment: newest < 0 ? 1 : numbers[newest]!, size: newest < 0 ? 0 : sizes[newest]!, onDisk: newest >= 0 })
      }
      if (createdColumn) await syncDir(this.dir)
    } catch (err) {
      if (err instanceof ShardStoreError) throw err
      throw new ShardStoreError(`Opening the shard store at ${this.dir} failed: ${(err as Error).message}`, { cause: err })
    }
    this.columns = columns
    this.files = new FileCache(OPEN_FILES, this.log)
    this.failure = undefined
    this.segmentCount = segments
    this.byteCount = bytes
    this.commitCount = 0
    this.log?.info({ dir: this.dir, k: this.k, m: this.m, segments }, 'The shard store is open.')
  }

  async close (): Promise<void> {
    const columns = this.columns
    if (columns === undefined) return
    // Let queued and in-flight commits finish so every pending put settles first.
    while (this.collecting !== undefined || this.writing !== undefined) {
      await (this.writing ?? this.collecting)!.done
    }
    this.columns = undefined
    this.files?.closeAll()
    this.files = undefined
    await Promise.all(columns.map(async (col) => {
      const writer = col.writer
      col.writer = undefined
      await writer?.fh.close().catch((err: unknown) => {
        this.log?.warn({ err, dir: col.dir }, 'Closing a shard segment file failed; its records were already synced.')
      })
    }))
  }

  async put (objectId: Buffer, data: Uint8Array): Promise<Locator> {
    this.writable()
    if (!(objectId instanceof Uint8Array) || objectId.length !== 16) throw new ShardStoreError('An object id must be 16 bytes.')
    if (!(data instanceof Uint8Array)) throw new ShardStoreError('An object must be given as bytes.')
    const objectLength = data.byteLength
    const shardLength = shardSize(objectLength, this.k)
    if (shardLength > 0xffffffff) throw new ShardStoreError(`An object of ${objectLength} bytes is too large for one shard set.`)
    // Copies: the caller may reuse its buffers before the commit is written.
    const id = Buffer.from(objectId)
    const copy = Buffer.from(data)
    const shards = Promise.resolve().then(async () => await this.codec.encode(copy, this.k, this.m))
    const all = Array.from({ length: this.k + this.m }, (_, i) => i)
    const places = await this.enqueue({ objectId: id, objectLength, shardLength, indexes: all, shards })
    return { objectId: id, objectLength, shardLength, k: this.k, m: this.m, shards: all.map((i) => places.get(i)!) }
  }

  async get (loc: Locator): Promise<{ data: Buffer, damaged: number[] }> {
    this.ready()
    this.checkGeometry(loc)
    const { data, bad } = await this.rebuild(loc, false)
    return { data, damaged: bad.map((b) => b.index) }
  }

  async verify (loc: Locator): Promise<number[]> {
    this.ready()
    this.checkGeometry(loc)
    const bad = await this.readShards(loc, this.range(0, this.k + this.m), [])
    if (bad.length > 0) this.logDamage(loc, bad)
    return bad.map((b) => b.index)
  }

  async repair (loc: Locator, damaged: number[]): Promise<Locator> {
    this.writable()
    this.checkGeometry(loc)
    if (!Array.isArray(damaged) || !damaged.every((i) => Number.isInteger(i) && i >= 0 && i < this.k + this.m)) {
      throw new ShardStoreError(`Shards to repair must be indexes from 0 to ${this.k + this.m - 1}.`)
    }
    // Read everything: a parity shard may have gone bad too since the caller looked.
    const { data, bad, verified } = await this.rebuild(loc, true)
    const indexes = [...new Set([...damaged, ...bad.map((b) => b.index)])].sort((a, b) => a - b)
    const shards = Promise.resolve().then(async () => {
      const fresh = await this.codec.encode(data, this.k, this.m)
      // Re-encoding must give back every shard still on disk; if it does not, the codec
      // disagrees with the one that wrote them, and writing its parity would corrupt the set.
      verified.forEach((shard, i) => {
        if (shard !== undefined && fresh[i]?.equals(shard) !== true) {
          throw new ShardStoreError(`Re-encoding object ${hex(loc.objectId)} did not reproduce its shard ${i}; the ${this.codec.name} codec disagrees with the one that wrote it.`)
        }
      })
      return fresh
    })
    const places = indexes.length === 0 ? new Map<number, ShardLocation>() : await this.enqueue({ objectId: Buffer.from(loc.objectId), objectLength: loc.objectLength, shardLength: loc.shardLength, indexes, shards })
    if (indexes.length > 0) this.log?.info({ objectId: hex(loc.objectId), shards: indexes }, 'Rewrote damaged shards of an object.')
    return {
      objectId: Buffer.from(loc.objectId),
      objectLength: loc.objectLength,
      shardLength: loc.shardLength,
      k: loc.k,
      m: loc.m,
      shards: loc.shards.map((s, i) => places.get(i) ?? { segment: s.segment, offset: s.offset })
    }
  }

  stats (): ShardStoreStats {
    return { segments: this.segmentCount, bytes: this.byteCount, commits: this.commitCount }
  }

  async segments (): Promise<SegmentInfo[]> {
    this.ready()
    const out: SegmentInfo[] = []
    for (const col of this.columns!) {
      for (const name of await readdir(col.dir)) {
        const segment = parseInt(name, 10)
        if (!SEGMENT_NAME.test(name) || name !== segmentName(segment)) continue
        const bytes = await stat(join(col.dir, name)).then(st => st.size, () => undefined)
        if (bytes !== undefined) out.push({ column: col.index, segment, bytes, active: segment === col.segment })
      }
    }
    return out
  }

  rollOver (column: number): void {
    this.writable()
    const col = this.columns![column]
    if (col === undefined) throw new ShardStoreError(`There is no column ${column}.`)
    if (col.size === 0) return
    // A commit being written keeps its planned places; the next plan starts the new file.
    col.segment++
    col.size = 0
    col.onDisk = false
  }

  async removeSegment (column: number, segment: number): Promise<void> {
    this.writable()
    const col = this.columns![column]
    if (col === undefined) throw new ShardStoreError(`There is no column ${column}.`)
    if (segment >= col.segment) throw new ShardStoreError(`Segment ${segment} of column ${column} is the one appends go to (or a later one); it cannot be removed.`)
    const path = join(col.dir, segmentName(segment))
    this.files!.forget(path)
    const bytes = await stat(path).then(st => st.size, () => 0)
    await rm(path, { force: true })
    await syncDir(col.dir)
    this.segmentCount--
    this.byteCount -= bytes
    this.log?.info({ column, segment, bytes }, 'Removed a compacted shard segment.')
  }

  // --- reading ---

  /**
   * Reads the data shards (all shards when `all`), and the parity shards when a data shard
   * is bad; rebuilds the data from what verified. Throws ObjectDamagedError for more than m bad.
   */
  private async rebuild (loc: Locator, all: boolean): Promise<{ data: Buffer, bad: BadShard[], verified: Array<Buffer | undefined> }> {
    const n = this.k + this.m
    const verified: Array<Buffer | undefined> = new Array(n).fill(undefined)
    let bad = await this.readShards(loc, this.range(0, all ? n : this.k), verified)
    if (!all && bad.length > 0) bad = [...bad, ...await this.readShards(loc, this.range(this.k, n), verified)]
    if (bad.length > 0) this.logDamage(loc, bad)
    if (bad.length > this.m) throw new ObjectDamagedError(loc.objectId, bad, this.m)
    let shards = verified
    if (verified.slice(0, this.k).some((s) => s === undefined)) {
      if (this.foreignCodec !== undefined) {
        throw new ShardStoreError(`Object ${hex(loc.objectId)} must be rebuilt from parity (bad shards ${bad.map((b) => b.index).join(', ')}), but its parity was written by the ${this.foreignCodec} erasure codec and this node runs the ${this.codec.name} codec, which would rebuild wrong bytes.`)
      }
      let rebuilt: Buffer[]
      let again: Buffer[]
      try {
        rebuilt = await this.codec.reconstruct([...verified], this.k, this.m)
        again = rebuilt.length === n ? await this.codec.encode(Buffer.concat(rebuilt.slice(0, this.k)), this.k, this.m) : []
      } catch (err) {
        throw new ShardStoreError(`Rebuilding object ${hex(loc.objectId)} from parity failed: ${(err as Error).message}`, { cause: err })
      }
      if (rebuilt.length !== n || rebuilt.slice(0, this.k).some((s) => s?.length !== loc.shardLength)) {
        throw new ShardStoreError(`The ${this.codec.name} codec returned shards of the wrong shape while rebuilding object ${hex(loc.objectId)}.`)
      }
      // Rebuilt data must re-encode to every shard that verified. With fewer than m bad this
      // catches a codec that disagrees with the writer even when CODEC says otherwise (edited,
      // or a codec changed by an upgrade); with exactly m bad only CODEC can.
      if (verified.some((shard, i) => shard !== undefined && again[i]?.equals(shard) !== true)) {
        throw new ShardStoreError(`Object ${hex(loc.objectId)} rebuilt from parity does not match its good shards; the ${this.codec.name} codec may not be the one that wrote them.`)
      }
      shards = rebuilt
    }
    // The data shards concatenated, cut to the object length (the codec padded with zeros).
    return { data: Buffer.concat(shards.slice(0, this.k) as Buffer[], loc.objectLength), bad, verified }
  }

  /** Reads the given shards in parallel into `verified`; returns the bad ones in index order. */
  private async readShards (loc: Locator, indexes: number[], verified: Array<Buffer | undefined>): Promise<BadShard[]> {
    const results = await Promise.all(indexes.map(async (i) => await this.readShard(loc, i)))
    const bad: BadShard[] = []
    results.forEach((r, j) => {
      const index = indexes[j]!
      if (typeof r === 'string') bad.push({ index, reason: r })
      else verified[index] = r
    })
    return bad
  }

  /** The verified shard data of record `index`, or why it cannot be used. */
  private async readShard (loc: Locator, index: number): Promise<Buffer | string> {
    const files = this.ready()
    const place = loc.shards[index]!
    const name = `${columnName(index)}/${segmentName(place.segment)}`
    const where = `${name} at ${place.offset}`
    const length = HEADER_BYTES + loc.shardLength
    let record: Buffer | undefined
    try {
      record = await files.use(join(this.dir, name), async (fh) => {
        // A damaged or hostile locator may claim a huge record; do not allocate for it
        // before knowing the file could hold it.
        if (length > LARGE_RECORD && place.offset + length > (await fh.stat()).size) return undefined
        return await readFully(fh, length, place.offset)
      })
    } catch (err) {
      if (err instanceof ShardStoreError) throw err
      const code = (err as NodeJS.ErrnoException).code
      return code === 'ENOENT' ? `missing file ${name}` : `read error ${code ?? (err as Error).message} in ${name}`
    }
    if (record === undefined || record.length < length) return `truncated record in ${where}`
    const problem = recordProblem(record, { k: this.k, m: this.m, index, objectId: loc.objectId, objectLength: loc.objectLength, shardLength: loc.shardLength })
    return problem === undefined ? record.subarray(HEADER_BYTES) : `${problem} in ${where}`
  }

  private logDamage (loc: Locator, bad: BadShard[]): void {
    this.log?.warn({ objectId: hex(loc.objectId), bad }, `Object ${hex(loc.objectId)} has ${bad.length} bad shards: ${bad.map((b) => `${b.index} (${b.reason})`).join(', ')}.`)
  }

  // --- writing: group commits ---

  /** Queues records for the next group commit; resolves with their places once they are on disk. */
  private async enqueue (job: Omit<Job, 'places' | 'resolve' | 'reject'>): Promise<Map<number, ShardLocation>> {
    // A failed encoding is reported to its caller by the commit; until then it must not count
    // as an unhandled rejection.
    job.shards.catch(() => {})
    return await new Promise((resolve, reject) => {
      let commit = this.collecting
      if (commit === undefined) {
        commit = this.collecting = new Commit()
        // setImmediate, not a microtask: every put of this event-loop turn joins the commit.
        if (this.writing === undefined) setImmediate(() => { this.flush() })
      }
      commit.jobs.push({ ...job, places: new Map(), resolve, reject })
    })
  }

  private flush (): void {
    const commit = this.collecting
    if (commit === undefined || this.writing !== undefined) return
    this.collecting = undefined
    this.writing = commit
    void this.write(commit).finally(() => {
      this.writing = undefined
      commit.finish()
      // Callers resolved just now often put again within a few microtasks; flushing on the
      // next turn lets them all join the next commit.
      if (this.collecting !== undefined) setImmediate(() => { this.flush() })
    })
  }

  /** Writes one group commit. Never rejects: each job is settled instead. */
  private async write (commit: Commit): Promise<void> {
    const columns = this.columns
    if (columns === undefined || this.failure !== undefined) {
      const err = columns === undefined
        ? new ShardStoreError('The shard store was closed before the write.')
        : new ShardStoreError('An earlier write to the shard store failed; close and reopen it.', { cause: this.failure })
      for (const job of commit.jobs) job.reject(err)
      return
    }
    const ready: Array<{ job: Job, shards: Buffer[] }> = []
    for (const job of commit.jobs) {
      try {
        const shards = await job.shards
        if (shards.length !== this.k + this.m || shards.some((s) => s.length !== job.shardLength)) {
          throw new ShardStoreError(`The ${this.codec.name} codec returned shards of the wrong shape for object ${hex(job.objectId)}.`)
        }
        ready.push({ job, shards })
      } catch (err) {
        // Only this object is affected: its encoding failed, not the disk.
        job.reject(err instanceof ShardStoreError ? err : new ShardStoreError(`Encoding object ${hex(job.objectId)} failed: ${(err as Error).message}`, { cause: err }))
      }
    }
    if (ready.length === 0) return
    const runs = this.plan(columns, ready)
    try {
      // allSettled: the commit is not over, and close() may not run, while any column is still writing.
      const settled = await Promise.allSettled(columns.map(async (col) => { await this.writeColumn(col, runs.filter((r) => r.column === col)) }))
      for (const s of settled) if (s.status === 'rejected') throw s.reason
    } catch (err) {
      this.failure = err
      this.log?.error({ err, dir: this.dir, objects: ready.length }, 'A write to the shard store failed; it refuses further writes until reopened.')
      const failed = new ShardStoreError(`Writing to the shard store at ${this.dir} failed: ${(err as Error).message}`, { cause: err })
      for (const { job } of ready) job.reject(failed)
      return
    }
    this.commitCount++
    for (const { job } of ready) job.resolve(job.places)
  }

  /**
   * Decides where every record goes, in call order, advancing the column positions; records
   * for the same segment file become one run (one write).
   */
  private plan (columns: Column[], ready: Array<{ job: Job, shards: Buffer[] }>): Run[] {
    const runs: Run[] = []
    const lastRun = new Map<Column, Run>()
    for (const { job, shards } of ready) {
      for (const index of job.indexes) {
        const col = columns[index]!
        const shard = shards[index]!
        const length = HEADER_BYTES + shard.length
        // A record larger than a whole segment still gets one, alone.
        if (col.size > 0 && col.size + length > this.segmentBytes) {
          col.segment++
          col.size = 0
          col.onDisk = false
        }
        let run = lastRun.get(col)
        if (run === undefined || run.segment !== col.segment) {
          run = { column: col, segment: col.segment, offset: col.size, path: join(col.dir, segmentName(col.segment)), create: !col.onDisk, buffers: [] }
          if (run.create) this.segmentCount++
          col.onDisk = true
          runs.push(run)
          lastRun.set(col, run)
        }
        const header = recordHeader({ k: this.k, m: this.m, index, objectId: job.objectId, objectLength: job.objectLength, shardLength: job.shardLength }, shard)
        run.buffers.push(header, shard)
        job.places.set(index, { segment: col.segment, offset: col.size })
        col.size += length
        this.byteCount += length
      }
    }
    return runs
  }

  /**
   * Writes a column's runs and fdatasyncs them, then fsyncs the column directory if a file
   * was created. A segment finished in this commit (the column rolled over) is synced and
   * closed at once, so a commit that rolls over many times holds at most two files open.
   */
  private async writeColumn (col: Column, runs: Run[]): Promise<void> {
    if (runs.length === 0) return
    let created = false
    for (const run of runs) {
      // Planning already moved the column to its last segment: any other run finishes its file.
      const current = run.segment === col.segment
      let fh = col.writer?.segment === run.segment ? col.writer.fh : undefined
      if (fh === undefined) {
        const opened = await openForAppend(run.path, run.create)
        fh = opened.fh
        created ||= opened.created
        if (current) {
          // The handle it replaces was not written in this commit (that run would have closed it).
          if (col.writer !== undefined) this.closeQuietly(col.writer.fh, col)
          col.writer = { segment: run.segment, fh }
        }
      }
      try {
        await writeFully(fh, run.buffers, run.offset)
        if (!current) await fh.datasync()
      } finally {
        if (!current) {
          if (col.writer?.fh === fh) col.writer = undefined
          this.closeQuietly(fh, col)
        }
      }
    }
    if (col.writer !== undefined && runs.some((r) => r.segment === col.segment)) await col.writer.fh.datasync()
    if (created) await syncDir(col.dir)
  }

  private closeQuietly (fh: FileHandle, col: Column): void {
    fh.close().catch((err: unknown) => {
      this.log?.warn({ err, dir: col.dir }, 'Closing a shard segment file failed; its records were already synced or the commit failed.')
    })
  }

  // --- helpers ---

  /** Reads FORMAT, or writes it when the directory is new. */
  private async checkFormat (): Promise<void> {
    const path = join(this.dir, FORMAT_FILE)
    const want = `smtorp-shards ${SHARD_STORE_FORMAT} k=${this.k} m=${this.m}\n`
    let text: string
    try {
      text = await readFile(path, 'latin1')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
      // A crash during creation may leave CODEC (and temporary files) without FORMAT: start over.
      const others = (await readdir(this.dir)).filter((n) => ![`${FORMAT_FILE}.tmp`, CODEC_FILE, `${CODEC_FILE}.tmp`].includes(n))
      if (others.length > 0) {
        throw new ShardStoreError(`${this.dir} is not empty but has no FORMAT file: it is not a shard store, or its FORMAT file was lost.`)
      }
      // CODEC first: a store with FORMAT always has it.
      await writeFileAtomically(join(this.dir, CODEC_FILE), `${this.codec.name}\n`)
      await writeFileAtomically(path, want)
      return
    }
    const version = /^smtorp-shards ([^ \n]*)/.exec(text)?.[1]
    if (version === undefined) throw new ShardStoreError(`${path} does not start with "smtorp-shards"; ${this.dir} is not a shard store.`)
    if (version !== String(SHARD_STORE_FORMAT)) {
      throw new ShardStoreError(`The shard store at ${this.dir} has format version ${JSON.stringify(version).slice(0, 40)}; this version reads format ${SHARD_STORE_FORMAT}.`)
    }
    const geometry = /^smtorp-shards 1 k=([0-9]{1,3}) m=([0-9]{1,3})\n$/.exec(text)
    if (geometry === null) throw new ShardStoreError(`${path} is malformed; it should read like ${JSON.stringify(want)}.`)
    if (Number(geometry[1]) !== this.k || Number(geometry[2]) !== this.m) {
      throw new ShardStoreError(`The shard store at ${this.dir} was created with k=${geometry[1]} m=${geometry[2]}, but was opened with k=${this.k} m=${this.m}.`)
    }
  }

  /** Reads CODEC; returns the codec named there when it is not the one this store runs. */
  private async checkCodec (): Promise<string | undefined> {
    const path = join(this.dir, CODEC_FILE)
    let text: string
    try {
      text = await readFile(path, 'latin1')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
      throw new ShardStoreError(`The shard store at ${this.dir} has no CODEC file, so it is unknown which erasure codec wrote its parity.`)
    }
    const name = /^(native|wasm)\n$/.exec(text)?.[1]
    if (name === undefined) throw new ShardStoreError(`${path} is malformed; it should read "native" or "wasm".`)
    if (name === this.codec.name) return undefined
    this.log?.warn({ dir: this.dir, wrote: name, running: this.codec.name }, `The shard store's parity was written by the ${name} erasure codec but this node runs the ${this.codec.name} codec: intact objects read, but nothing can be rebuilt or written.`)
    return name
  }

  private checkGeometry (loc: Locator): void {
    checkLocator(loc)
    if (loc.k !== this.k || loc.m !== this.m) {
      throw new ShardStoreError(`The locator is for k=${loc.k} m=${loc.m}; this shard store holds k=${this.k} m=${this.m}.`)
    }
  }

  private ready (): FileCache {
    if (this.files === undefined) throw new ShardStoreError('The shard store is not open.')
    return this.files
  }

  private writable (): void {
    this.ready()
    if (this.failure !== undefined) {
      throw new ShardStoreError('An earlier write to the shard store failed; close and reopen it.', { cause: this.failure })
    }
    if (this.foreignCodec !== undefined) {
      throw new ShardStoreError(`The shard store's parity was written by the ${this.foreignCodec} erasure codec; this node runs the ${this.codec.name} codec and may not add to it.`)
    }
  }

  private range (from: number, to: number): number[] {
    return Array.from({ length: to - from }, (_, i) => from + i)
  }
}

/** Reads up to `length` bytes at `position`; shorter only at the end of the file. */
async function readFully (fh: FileHandle, length: number, position: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length)
  let got = 0
  while (got < length) {
    const { bytesRead } = await fh.read(buf, got, length - got, position + got)
    if (bytesRead === 0) break
    got += bytesRead
  }
  return buf.subarray(0, got)
}

/** Writes all of `buffers` at `position`, going on after short writes. */
async function writeFully (fh: FileHandle, buffers: Buffer[], position: number): Promise<void> {
  let rest = buffers
  while (rest.length > 0) {
    const { bytesWritten } = await fh.writev(rest, position)
    if (bytesWritten <= 0) throw new Error('a write to a segment file made no progress')
    position += bytesWritten
    let skip = bytesWritten
    let i = 0
    while (i < rest.length && skip >= rest[i]!.length) skip -= rest[i++]!.length
    rest = rest.slice(i)
    if (skip > 0) rest[0] = rest[0]!.subarray(skip)
  }
}

/**
 * Opens a segment for positioned writes. A segment known to exist is opened without creating
 * it; if it vanished anyway (deleted from outside) it is created again. Creation is exclusive,
 * so a new segment never overwrites a file that is there.
 */
async function openForAppend (path: string, create: boolean): Promise<{ fh: FileHandle, created: boolean }> {
  if (!create) {
    try {
      return { fh: await open(path, 'r+'), created: false }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    }
  }
  return { fh: await open(path, 'wx'), created: true }
}

/** fsync a directory, so a file created or renamed in it survives a crash. */
async function syncDir (dir: string): Promise<void> {
  const fh = await open(dir, 'r')
  try {
    await fh.sync()
  } finally {
    await fh.close()
  }
}

async function writeFileAtomically (path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp`
  const fh = await open(tmp, 'w')
  try {
    await fh.writeFile(text, 'latin1')
    await fh.sync()
  } finally {
    await fh.close()
  }
  await rename(tmp, path)
  await syncDir(join(path, '..'))
}
