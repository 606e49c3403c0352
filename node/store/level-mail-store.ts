// The MailStore on LevelDB (classic-level): durable, byte-exact, group-committed.
//
// On-disk format version 1 (also in spec/storage-leveldb.md). Keys are UTF-8 strings,
// values are bytes. `<id>` is the store-assigned id: a 16-digit zero-padded decimal
// sequence number, so byte order of keys is arrival order.
//
//   s!format                  "1"                 format version, written when the store is created
//   s!seq                     decimal             next sequence number; never goes down, so ids
//                                                 are never reused even after the newest is removed
//   i!<id>                    folder name         which folder holds <id> (the message exists iff this key does)
//   m!<folder>!<id>           JSON metadata       StoredMessageMeta; the folder index: a range scan
//                                                 of `m!<folder>!` lists a folder in arrival order
//                                                 without touching bodies
//   b!<id>                    raw bytes           the message exactly as given to `add`
//   d!<folder>!<messageId>    JSON array of ids   duplicate index: ids in <folder> whose Message-ID
//                                                 is <messageId> (more than one only after `move`
//                                                 brings a second copy in; `add` never makes one)
//
// Durability: every write goes through one writer that puts all operations queued in the
// same event-loop turn (and everything queued while a write is on disk) into a single
// `sync: true` batch: LevelDB appends the batch to its log and fsyncs before the promise
// resolves, so a batch is all-or-nothing after kill -9 and every resolved call is on disk.
//
// Consistency: calls decide synchronously (with `getSync`) against the committed database
// overlaid with the operations still waiting for or in their fsync, so concurrent calls see
// each other's effects in call order and never read a stale value to write it back.
// `get` sees that overlay; `list` reads only committed entries (what resolved calls wrote).
import { ClassicLevel } from 'classic-level'
import type { Logger } from '../log/index.ts'
import {
  FOLDERS, MailStoreError,
  type AddResult, type Folder, type MailStore, type NewMessage, type StoredMessage, type StoredMessageMeta
} from './mail-store.ts'

export const LEVEL_STORE_FORMAT = 1

export interface LevelMailStoreInit {
  /** Directory of the LevelDB database; created if missing. */
  path: string
  logger?: Logger
}

const ID_DIGITS = 16
const KEY_FORMAT = 's!format'
const KEY_SEQ = 's!seq'
const idKey = (id: string): string => `i!${id}`
const metaKey = (folder: Folder, id: string): string => `m!${folder}!${id}`
const bodyKey = (id: string): string => `b!${id}`
const dupKey = (folder: Folder, messageId: string): string => `d!${folder}!${messageId}`
const ID_PATTERN = /^[0-9]{16}$/

type Op = { type: 'put', key: string, value: Buffer } | { type: 'del', key: string }

/** One group commit: the operations that go to disk in one synced LevelDB batch. */
class Commit {
  readonly ops: Op[] = []
  readonly done: Promise<void>
  resolve!: () => void
  reject!: (err: unknown) => void
  constructor () {
    this.done = new Promise<void>((resolve, reject) => { this.resolve = resolve; this.reject = reject })
    // A commit nobody awaits (all its callers gone) must not crash the process on failure;
    // each caller still gets the rejection through `done`.
    this.done.catch(() => {})
  }
}

interface Overlay { value: Buffer | undefined, commit: Commit }

interface MetaRecord {
  id: string
  folder: Folder
  messageId?: string
  from: string
  to: string[]
  receivedAt: number
  size: number
  flags: string[]
}

const json = (value: unknown): Buffer => Buffer.from(JSON.stringify(value), 'utf8')

export class LevelMailStore implements MailStore {
  private readonly path: string
  private readonly log: Logger | undefined
  private db: ClassicLevel<string, Buffer> | undefined
  private nextSeq = 1
  /** Writes not yet committed, by key: what a read must see instead of the database. */
  private readonly overlay = new Map<string, Overlay>()
  /** The commit collecting operations, not yet handed to LevelDB. */
  private collecting: Commit | undefined
  /** The commit LevelDB is writing now. */
  private writing: Commit | undefined
  /** Set when a batch write failed: the overlay and sequence may be ahead of the disk. */
  private failure: unknown

  constructor (init: LevelMailStoreInit) {
    this.path = init.path
    this.log = init.logger
  }

  async open (): Promise<void> {
    if (this.db != null) throw new MailStoreError('The mail store is already open.')
    const db = new ClassicLevel<string, Buffer>(this.path, { keyEncoding: 'utf8', valueEncoding: 'buffer' })
    await db.open()
    try {
      const format = db.getSync(KEY_FORMAT)?.toString('utf8')
      if (format === undefined) {
        const any = await db.keys({ limit: 1 }).all()
        if (any.length > 0) throw new MailStoreError(`The database at ${this.path} has no format version; it is not a mail store.`)
        await db.put(KEY_FORMAT, Buffer.from(String(LEVEL_STORE_FORMAT)), { sync: true })
      } else if (format !== String(LEVEL_STORE_FORMAT)) {
        throw new MailStoreError(`The mail store at ${this.path} has format ${format}; this version reads format ${LEVEL_STORE_FORMAT}.`)
      }
      const seq = Number(db.getSync(KEY_SEQ)?.toString('utf8') ?? '1')
      // The counter is written in the same batch as the ids it hands out, so the newest id
      // is always below it; checking costs one seek and guards against a hand-edited store.
      const [lastIdKey] = await db.keys({ gt: 'i!', lt: 'i"', reverse: true, limit: 1 }).all()
      const lastSeq = lastIdKey === undefined ? 0 : Number(lastIdKey.slice(2))
      this.nextSeq = Math.max(seq, lastSeq + 1)
    } catch (err) {
      await db.close()
      throw err
    }
    this.db = db
    this.failure = undefined
    this.log?.info({ path: this.path }, 'The mail store is open.')
  }

  async close (): Promise<void> {
    const db = this.db
    if (db == null) return
    // Let queued and in-flight commits finish so every pending call settles before the
    // database goes away.
    while (this.collecting != null || this.writing != null) {
      await (this.writing ?? this.collecting)!.done.catch(() => {})
    }
    this.db = undefined
    this.overlay.clear()
    await db.close()
  }

  async add (message: NewMessage): Promise<AddResult> {
    const db = this.ready()
    if (!FOLDERS.includes(message.folder)) throw new MailStoreError(`Unknown folder ${String(message.folder)}.`)
    if (!(message.raw instanceof Uint8Array)) throw new MailStoreError('A message must be given as a Buffer.')

    if (message.messageId !== undefined) {
      const dkey = dupKey(message.folder, message.messageId)
      const existing = this.readIds(db, dkey)
      const first = existing[0]
      if (first !== undefined) {
        const meta = this.readMeta(db, first)
        if (meta === undefined) throw new MailStoreError(`The duplicate index points at missing message ${first}.`)
        // The existing copy may itself still be on its way to disk: resolve only once it is.
        await this.overlay.get(dkey)?.commit.done
        return { meta, duplicate: true }
      }
    }

    const id = String(this.nextSeq++).padStart(ID_DIGITS, '0')
    const meta: MetaRecord = {
      id,
      folder: message.folder,
      ...(message.messageId !== undefined ? { messageId: message.messageId } : {}),
      from: message.from,
      to: [...message.to],
      receivedAt: Date.now(),
      size: message.raw.byteLength,
      flags: uniqueFlags(message.flags ?? [])
    }
    // Copy: the caller may reuse its buffer before the batch is written.
    const raw = Buffer.from(message.raw)
    const ops: Op[] = [
      { type: 'put', key: KEY_SEQ, value: Buffer.from(String(this.nextSeq)) },
      { type: 'put', key: bodyKey(id), value: raw },
      { type: 'put', key: metaKey(meta.folder, id), value: json(meta) },
      { type: 'put', key: idKey(id), value: Buffer.from(meta.folder) }
    ]
    if (meta.messageId !== undefined) {
      ops.push({ type: 'put', key: dupKey(meta.folder, meta.messageId), value: json([id]) })
    }
    await this.enqueue(ops)
    return { meta: copyMeta(meta), duplicate: false }
  }

  async get (id: string): Promise<StoredMessage | undefined> {
    const db = this.ready()
    if (!ID_PATTERN.test(id)) return undefined
    const meta = this.readMeta(db, id)
    if (meta === undefined) return undefined
    const pending = this.overlay.get(bodyKey(id))
    const raw = pending !== undefined ? pending.value : await db.get(bodyKey(id))
    if (raw === undefined) {
      // The message may have been removed while the body was being read.
      if (this.readMeta(db, id) === undefined) return undefined
      throw new MailStoreError(`Message ${id} has metadata but no body.`)
    }
    return { ...meta, raw: Buffer.from(raw) }
  }

  async list (folder: Folder): Promise<StoredMessageMeta[]> {
    const db = this.ready()
    if (!FOLDERS.includes(folder)) throw new MailStoreError(`Unknown folder ${String(folder)}.`)
    const prefix = `m!${folder}!`
    // '"' is the character after '!': the range holds exactly the keys under the prefix.
    const values = await db.values({ gt: prefix, lt: `m!${folder}"` }).all()
    return values.map((v) => JSON.parse(v.toString('utf8')) as StoredMessageMeta)
  }

  async setFlags (id: string, flags: string[]): Promise<void> {
    const db = this.ready()
    const meta = this.mustReadMeta(db, id)
    meta.flags = uniqueFlags(flags)
    await this.enqueue([{ type: 'put', key: metaKey(meta.folder, id), value: json(meta) }])
  }

  async move (id: string, folder: Folder): Promise<void> {
    const db = this.ready()
    if (!FOLDERS.includes(folder)) throw new MailStoreError(`Unknown folder ${String(folder)}.`)
    const meta = this.mustReadMeta(db, id)
    if (meta.folder === folder) return
    const from = meta.folder
    meta.folder = folder
    const ops: Op[] = [
      { type: 'del', key: metaKey(from, id) },
      { type: 'put', key: metaKey(folder, id), value: json(meta) },
      { type: 'put', key: idKey(id), value: Buffer.from(folder) }
    ]
    if (meta.messageId !== undefined) {
      ops.push(this.dupIndexUpdate(db, from, meta.messageId, (ids) => ids.filter((x) => x !== id)))
      ops.push(this.dupIndexUpdate(db, folder, meta.messageId, (ids) => insertSorted(ids, id)))
    }
    await this.enqueue(ops)
  }

  async remove (id: string): Promise<void> {
    const db = this.ready()
    const meta = this.mustReadMeta(db, id)
    const ops: Op[] = [
      { type: 'del', key: idKey(id) },
      { type: 'del', key: metaKey(meta.folder, id) },
      { type: 'del', key: bodyKey(id) }
    ]
    if (meta.messageId !== undefined) {
      ops.push(this.dupIndexUpdate(db, meta.folder, meta.messageId, (ids) => ids.filter((x) => x !== id)))
    }
    await this.enqueue(ops)
  }

  private ready (): ClassicLevel<string, Buffer> {
    if (this.failure !== undefined) {
      throw new MailStoreError('A write to the mail store failed; close and reopen it.', { cause: this.failure })
    }
    if (this.db == null) throw new MailStoreError('The mail store is not open.')
    return this.db
  }

  /** The value of a key as the queued writes will leave it. */
  private read (db: ClassicLevel<string, Buffer>, key: string): Buffer | undefined {
    const pending = this.overlay.get(key)
    return pending !== undefined ? pending.value : db.getSync(key)
  }

  private readIds (db: ClassicLevel<string, Buffer>, key: string): string[] {
    const value = this.read(db, key)
    return value === undefined ? [] : JSON.parse(value.toString('utf8')) as string[]
  }

  private readMeta (db: ClassicLevel<string, Buffer>, id: string): MetaRecord | undefined {
    if (!ID_PATTERN.test(id)) return undefined
    const folder = this.read(db, idKey(id))?.toString('utf8') as Folder | undefined
    if (folder === undefined) return undefined
    const value = this.read(db, metaKey(folder, id))
    if (value === undefined) throw new MailStoreError(`Message ${id} is in ${folder} but has no metadata.`)
    return JSON.parse(value.toString('utf8')) as MetaRecord
  }

  private mustReadMeta (db: ClassicLevel<string, Buffer>, id: string): MetaRecord {
    const meta = this.readMeta(db, id)
    if (meta === undefined) throw new MailStoreError(`No message with id ${JSON.stringify(id)}.`)
    return meta
  }

  private dupIndexUpdate (db: ClassicLevel<string, Buffer>, folder: Folder, messageId: string, change: (ids: string[]) => string[]): Op {
    const key = dupKey(folder, messageId)
    const ids = change(this.readIds(db, key))
    return ids.length === 0 ? { type: 'del', key } : { type: 'put', key, value: json(ids) }
  }

  /**
   * Queue operations for the next group commit and wait until they are on disk. The
   * overlay is updated at once, so calls made after this one see these writes.
   */
  private async enqueue (ops: Op[]): Promise<void> {
    let commit = this.collecting
    if (commit === undefined) {
      commit = this.collecting = new Commit()
      // setImmediate, not a microtask: everything queued in this event-loop turn joins the batch.
      if (this.writing === undefined) setImmediate(() => { this.flush() })
    }
    for (const op of ops) {
      commit.ops.push(op)
      this.overlay.set(op.key, { value: op.type === 'put' ? op.value : undefined, commit })
    }
    await commit.done
  }

  private flush (): void {
    const commit = this.collecting
    const db = this.db
    if (commit === undefined || this.writing !== undefined) return
    this.collecting = undefined
    if (db == null) {
      commit.reject(new MailStoreError('The mail store was closed before the write.'))
      return
    }
    this.writing = commit
    db.batch(commit.ops, { sync: true }).then(() => {
      this.writing = undefined
      for (const op of commit.ops) {
        if (this.overlay.get(op.key)?.commit === commit) this.overlay.delete(op.key)
      }
      commit.resolve()
      // The callers resolved just now usually add again within a few microtasks; flushing on
      // the next turn instead of at once lets them all join the next batch.
      if (this.collecting !== undefined) setImmediate(() => { this.flush() })
    }, (err: unknown) => {
      this.writing = undefined
      this.failure = err
      this.log?.error({ err, path: this.path, ops: commit.ops.length }, 'A write to the mail store failed; the store refuses further calls until reopened.')
      commit.reject(new MailStoreError('Writing to the mail store failed.', { cause: err }))
      this.collecting?.reject(new MailStoreError('An earlier write to the mail store failed.', { cause: err }))
      this.collecting = undefined
      this.overlay.clear()
    })
  }
}

function uniqueFlags (flags: readonly string[]): string[] {
  for (const f of flags) {
    if (typeof f !== 'string') throw new MailStoreError('Flags must be strings.')
  }
  return [...new Set(flags)]
}

function insertSorted (ids: string[], id: string): string[] {
  return [...ids.filter((x) => x !== id), id].sort()
}

function copyMeta (meta: MetaRecord): StoredMessageMeta {
  return { ...meta, to: [...meta.to], flags: [...meta.flags] }
}
