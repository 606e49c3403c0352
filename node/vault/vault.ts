// The vault: the node's MailStore, encrypted at rest and erasure-coded (spec/storage.md).
//
//   <dir>/key-slots.json, key-slots.backup.json   the wrapped master key (key-slots.ts)
//   <dir>/index/                                  LevelDB: sealed metadata, locators, search index
//   <dir>/shards/                                 every message, sealed, as k + m shards (shards/)
//
// States: "uninitialized" (no key slots yet: `create`), "locked" (no key in memory: mail
// still arrives, sealed to the arrival key; nothing can be read), "unlocked" (the master key
// and its derived keys in memory: everything works). Locking waits for operations that hold
// keys, then overwrites the keys.
//
// Index keys (LevelDB, binary; every value that says anything about mail is sealed):
//   F                  "1", the index format version
//   N                  next message number (decimal); ids are never reused
//   m<id>              seal(record key, meta JSON, ad("meta", id)); <id> is 16 decimal digits
//   a<id>              object id (16 bytes) of a message that arrived while locked (arrivals.ts)
//   o<object id>       locator of the object's shards (plain: scrub runs while locked)
//   r<name mac>        seal(record key, value, ad("record", name mac)): settings and contacts
//   x..., X...         the search index (search/)
import { ClassicLevel } from 'classic-level'
import { randomBytes } from 'node:crypto'
import { mkdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from '../log/index.ts'
import { GroupCommit, type BatchOp } from '../store/group-commit.ts'
import {
  FOLDERS, MailStoreError,
  type AddResult, type Folder, type MailStore, type MessageSecurity as MessageSecurityNote, type NewMessage, type StoredMessage, type StoredMessageMeta
} from '../store/mail-store.ts'
import { associatedData, mac, open, seal, TamperError, VaultKeys } from './crypto.ts'
import {
  // key-slots.ts says which secret opened no slot; the vault turns that into its own WrongSecretError.
  makeSlot, newRecoveryCode, openSlots, parseRecoveryCode, readKeySlots, writeKeySlots, WrongSecretError as SlotNotOpenedError,
  KEY_SLOTS_FORMAT, KEY_SLOTS_VERSION, PASSPHRASE_KDF, RECOVERY_KDF, type Argon2idParams, type KeySlotsFile
} from './key-slots.ts'
import { arrivalPublicKeyOf, newArrivalKeyPair, openArrival, sealArrival, type ArrivalEnvelope } from './arrivals.ts'
import { erasureCodec } from './erasure/index.ts'
import { shardStore, decodeLocator, encodeLocator, type Locator, type SegmentInfo, type ShardStore } from './shards/index.ts'
import { HEADER_BYTES as SHARD_RECORD_HEADER_BYTES } from '../../protocol/shard-record.ts'
import { extractSearchText, searchIndex, DEFAULT_FLUSH_EVERY, type SearchIndex } from './search/index.ts'
import { UnlockThrottle } from './unlock-throttle.ts'
import { MailboxIndex } from './mailbox-index.ts'
import { summarizeHeaders } from '../../protocol/message.ts'

export const VAULT_INDEX_FORMAT = 1

export type VaultState = 'uninitialized' | 'locked' | 'unlocked'

export interface VaultInit {
  dir: string
  /** Data and parity shards per object (spec/storage.md justifies 4 + 2). */
  k?: number
  m?: number
  segmentBytes?: number
  /** Argon2id settings for new slots; tests use small ones. */
  passphraseKdf?: Argon2idParams
  recoveryKdf?: Argon2idParams
  codec?: 'native' | 'wasm'
  searchFlushEvery?: number
  logger?: Logger
}

export class VaultError extends MailStoreError {
  override name = 'VaultError'
}

export class VaultLockedError extends VaultError {
  override name = 'VaultLockedError'
  constructor () { super('The vault is locked: unlock it with the passphrase or the recovery code.') }
}

/** The passphrase or recovery code opened no key slot. */
export class WrongSecretError extends VaultError {
  override name = 'WrongSecretError'
}

/** Too many wrong secrets in a row: the next attempt must wait. */
export class UnlockThrottledError extends VaultError {
  override name = 'UnlockThrottledError'
  constructor (readonly retryAfterSeconds: number) { super(`Too many wrong attempts: try again in ${retryAfterSeconds} s.`) }
}

/** A message whose shards or ciphertext cannot give back its bytes. */
export class MessageDamagedError extends VaultError {
  override name = 'MessageDamagedError'
}

export type UnlockSecret = { passphrase: string } | { recoveryCode: string }

export interface ScrubReport {
  objects: number
  shardsChecked: number
  damagedShards: number
  repairedShards: number
  /** Objects with more than m bad shards: which message, and what is wrong. */
  lost: Array<{ objectId: string, messageId?: string, reason: string }>
  /** Space given back afterwards (see Vault.compact). */
  compaction?: CompactReport
  startedAt: number
  finishedAt: number
}

export interface CompactReport {
  segmentsRemoved: number
  bytesFreed: number
  /** Objects whose records were written again elsewhere, so their old segments could go. */
  objectsMoved: number
}

interface MetaRecord extends StoredMessageMeta {
  objectId: string
}

const SEARCH_IDLE_FLUSH_MS = 30_000
/** Most messages one page() returns, and one synced batch of emptyFolder() removes. */
const MAX_PAGE = 500
/** Compaction closes the segment being appended to when it is this big and half garbage. */
const ROLL_OVER_BYTES = 256 * 1024
const ID_DIGITS = 16
const ID_PATTERN = /^[0-9]{16}$/
const KEY_FORMAT = Buffer.from('F')
const KEY_SEQ = Buffer.from('N')
const metaKey = (id: string): Buffer => Buffer.from(`m${id}`, 'latin1')
const arrivalKey = (id: string): Buffer => Buffer.from(`a${id}`, 'latin1')
const objectKey = (objectId: Buffer): Buffer => Buffer.concat([Buffer.from('o'), objectId])
const json = (value: unknown): Buffer => Buffer.from(JSON.stringify(value), 'utf8')

/** What holds keys while unlocked; dropped (and overwritten) by lock. */
interface Unlocked {
  master: Buffer
  keys: VaultKeys
  arrivalPrivateKey: Buffer
  /** Folder and flags of every message, the duplicate and thread indexes, counts; the rest stays sealed. */
  mailbox: MailboxIndex
  search: SearchIndex
}

export class Vault implements MailStore {
  private readonly init: Required<Omit<VaultInit, 'logger' | 'codec'>> & Pick<VaultInit, 'logger' | 'codec'>
  private db: ClassicLevel<Buffer, Buffer> | undefined
  private searchContent: ((raw: Buffer) => Promise<Buffer | undefined>) | undefined
  private readonly addListeners = new Set<(meta: StoredMessageMeta) => void>()
  private commit: GroupCommit<Buffer> | undefined
  private shards: ShardStore | undefined
  private slots: KeySlotsFile | undefined
  private nextSeq = 1
  private open_ = false
  private unlocked: Unlocked | undefined
  /** Operations that hold keys; lock waits for them. */
  private busy = 0
  private idleWaiters: Array<() => void> = []
  /** Adds whose writes are not on disk yet, by id: reads of that id wait for them. */
  private readonly pending = new Map<string, Promise<unknown>>()
  private readonly throttle = new UnlockThrottle()
  private readonly unlockListeners = new Set<() => void>()
  private indexing: Promise<void> = Promise.resolve()
  /** Messages handed to the indexer since it was last idle, and how many of them are done. */
  private indexProgress = { done: 0, total: 0 }
  private unlocking: Promise<void> = Promise.resolve()
  private searchFlushTimer: NodeJS.Timeout | undefined
  /** Shard writes whose locator is not saved yet (see shardWrite). */
  private readonly shardWrites = new Set<Promise<unknown>>()
  /** While compaction moves records, reads do not repair (the two would race on locators). */
  private compacting = false
  /** Set when an unlock found the arrival public key altered and restored it. */
  arrivalKeyRestored = false
  /** A copy of the queue key from the first unlock, kept until close (see queueCipher). */
  private queueKey: Buffer | undefined
  /** Ids whose metadata record failed authentication at the last unlock. */
  private readonly damagedRecords = new Set<string>()

  constructor (init: VaultInit) {
    this.init = {
      k: 4, m: 2, segmentBytes: 64 * 1024 * 1024, passphraseKdf: PASSPHRASE_KDF, recoveryKdf: RECOVERY_KDF, searchFlushEvery: DEFAULT_FLUSH_EVERY,
      ...init
    }
  }

  private get log (): Logger | undefined { return this.init.logger }

  state (): VaultState {
    if (this.slots === undefined) return 'uninitialized'
    return this.unlocked === undefined ? 'locked' : 'unlocked'
  }

  async open (): Promise<void> {
    if (this.open_) throw new VaultError('The vault is already open.')
    await mkdir(this.init.dir, { recursive: true, mode: 0o700 })
    this.slots = await readKeySlots(this.init.dir)
    const db = new ClassicLevel<Buffer, Buffer>(join(this.init.dir, 'index'), { keyEncoding: 'buffer', valueEncoding: 'buffer' })
    await db.open()
    try {
      const format = db.getSync(KEY_FORMAT)?.toString('latin1')
      if (format === undefined) {
        if ((await db.keys({ limit: 1 }).all()).length > 0) throw new VaultError(`The database in ${this.init.dir} has no format version; it is not a vault index.`)
        await db.put(KEY_FORMAT, Buffer.from(String(VAULT_INDEX_FORMAT)), { sync: true })
      } else if (format !== String(VAULT_INDEX_FORMAT)) {
        throw new VaultError(`The vault index has format ${format}; this smtorp reads format ${VAULT_INDEX_FORMAT}.`)
      }
      const seq = Number(db.getSync(KEY_SEQ)?.toString('latin1') ?? '1')
      const newest = async (prefix: string): Promise<number> => {
        const [key] = await db.keys({ gt: Buffer.from(prefix), lt: Buffer.from(String.fromCharCode(prefix.charCodeAt(0) + 1)), reverse: true, limit: 1 }).all()
        return key === undefined ? 0 : Number(key.subarray(1).toString('latin1'))
      }
      this.nextSeq = Math.max(seq, await newest('m') + 1, await newest('a') + 1)
      // An existing store is rebuilt only with the codec that wrote it (erasure/index.ts).
      const written = await readFile(join(this.init.dir, 'shards', 'CODEC'), 'utf8').then(t => t.trim(), () => undefined)
      if (written !== undefined && written !== 'native' && written !== 'wasm') throw new VaultError(`The shard store names an unknown erasure codec "${written}".`)
      const codec = erasureCodec(written ?? this.init.codec ?? 'wasm')
      const shards = shardStore({ dir: join(this.init.dir, 'shards'), k: this.init.k, m: this.init.m, codec, segmentBytes: this.init.segmentBytes, ...(this.log !== undefined ? { logger: this.log } : {}) })
      await shards.open()
      this.shards = shards
    } catch (err) {
      await db.close()
      throw err
    }
    this.db = db
    this.commit = new GroupCommit<Buffer>(db as unknown as ClassicLevel<Buffer, Buffer | string>)
    this.open_ = true
    this.log?.info({ dir: this.init.dir, state: this.state() }, 'The vault is open.')
  }

  async close (): Promise<void> {
    if (!this.open_) return
    await this.lock()
    await Promise.allSettled([...this.pending.values()])
    await this.commit?.idle()
    this.open_ = false
    this.queueKey?.fill(0)
    this.queueKey = undefined
    await this.shards?.close()
    await this.db?.close()
    this.db = undefined
    this.shards = undefined
  }

  /** Create the key slots of a new vault, unlock it, and return the recovery code (shown once). */
  async create (passphrase: string): Promise<{ recoveryCode: string }> {
    this.ready()
    if (this.slots !== undefined) throw new VaultError('The vault already exists.')
    checkPassphrase(passphrase)
    const master = randomBytes(32)
    const vaultId = randomBytes(16)
    const recoveryCode = newRecoveryCode()
    const pair = await newArrivalKeyPair()
    const keys = new VaultKeys(master, vaultId)
    const file: KeySlotsFile = {
      format: KEY_SLOTS_FORMAT,
      version: KEY_SLOTS_VERSION,
      generation: 1,
      vaultId: vaultId.toString('base64'),
      arrivalPublicKey: pair.publicKey.toString('base64'),
      arrivalPrivateKey: seal(keys.arrivalKey, pair.privateKey, associatedData('arrival private key', vaultId)).toString('base64'),
      slots: [
        await makeSlot(0, 'passphrase', Buffer.from(passphrase.normalize('NFC'), 'utf8'), master, vaultId, this.init.passphraseKdf),
        await makeSlot(1, 'recovery', parseRecoveryCode(recoveryCode), master, vaultId, this.init.recoveryKdf)
      ]
    }
    keys.wipe()
    pair.privateKey.fill(0)
    await writeKeySlots(this.init.dir, file)
    this.slots = file
    await this.unlockWith(master)
    this.log?.info('A new vault was created.')
    return { recoveryCode }
  }

  /** Unlocks run one at a time: two at once must not both build the unlocked state. */
  async unlock (secret: UnlockSecret): Promise<void> {
    const turn = this.unlocking.then(async () => { await this.unlockNow(secret) })
    this.unlocking = turn.catch(() => {})
    await turn
  }

  private async unlockNow (secret: UnlockSecret): Promise<void> {
    this.ready()
    const slots = this.slots
    if (slots === undefined) throw new VaultError('There is no vault yet: run "smtorp init" first.')
    if (this.unlocked !== undefined) return
    const master = await this.openMaster(slots, secret)
    try {
      await this.unlockWith(master)
    } catch (err) {
      if ((this.unlocked as Unlocked | undefined)?.master !== master) master.fill(0)
      throw err
    }
    this.log?.info({ with: 'passphrase' in secret ? 'passphrase' : 'recovery code' }, 'The vault was unlocked.')
  }

  /**
   * Check a passphrase or recovery code against the key slots, changing nothing else: the UI
   * signs the owner in while the vault is already unlocked. Throttled and counted as unlock is,
   * with the same errors; works locked or unlocked, and never unlocks.
   */
  async checkSecret (secret: UnlockSecret): Promise<void> {
    this.ready()
    const slots = this.slots
    if (slots === undefined) throw new VaultError('There is no vault yet: run "smtorp init" first.')
    ;(await this.openMaster(slots, secret)).fill(0)
  }

  /** The master key the secret opens, under the throttle: wrong secrets count, a right one resets. */
  private async openMaster (slots: KeySlotsFile, secret: UnlockSecret): Promise<Buffer> {
    const wait = this.throttle.waitSeconds()
    if (wait > 0) throw new UnlockThrottledError(wait)
    let master: Buffer
    try {
      master = 'passphrase' in secret
        ? await openSlots(slots, 'passphrase', Buffer.from(secret.passphrase.normalize('NFC'), 'utf8'))
        : await openSlots(slots, 'recovery', parseRecoveryCode(secret.recoveryCode))
    } catch (err) {
      if (err instanceof SlotNotOpenedError) {
        this.throttle.failed()
        this.log?.warn({ failures: this.throttle.failures }, 'A passphrase or recovery code was wrong.')
        throw new WrongSecretError(err.message)
      }
      throw new VaultError((err as Error).message)
    }
    this.throttle.succeeded()
    return master
  }

  /**
   * A copy of the master key, to split into recovery shares (node/recovery/, spec/recovery.md).
   * Only while unlocked. The copy is the caller's: it MUST overwrite it (`fill(0)`) as soon as
   * the shares are made. A UI should ask for the passphrase again (checkSecret) before this.
   */
  exportMasterKeyForRecovery (): Buffer {
    this.ready()
    const u = this.unlocked
    if (u === undefined) throw new VaultLockedError()
    return Buffer.from(u.master)
  }

  /**
   * Unlock with a master key rebuilt from recovery shares (spec/recovery.md); the owner then
   * sets a new passphrase with changePassphrase. The key is checked before anything changes:
   * it must open the arrival private key sealed in the key slots (AES-256-GCM under a key HKDF
   * derives from the master key, spec/storage.md 3.2, 4.6 step 4), which no other key does. A
   * wrong key is a WrongSecretError and counts in the unlock throttle as a wrong passphrase
   * does. The vault keeps its own copy of the key; the caller wipes `master`.
   */
  async unlockWithMasterKey (master: Buffer): Promise<void> {
    const turn = this.unlocking.then(async () => { await this.unlockWithMasterKeyNow(master) })
    this.unlocking = turn.catch(() => {})
    await turn
  }

  private async unlockWithMasterKeyNow (candidate: Buffer): Promise<void> {
    this.ready()
    const slots = this.slots
    if (slots === undefined) throw new VaultError('There is no vault yet: run "smtorp init" first.')
    const wait = this.throttle.waitSeconds()
    if (wait > 0) throw new UnlockThrottledError(wait)
    if (!isMasterKeyOf(slots, candidate)) {
      this.throttle.failed()
      this.log?.warn({ failures: this.throttle.failures }, 'A master key rebuilt from recovery shares was not this vault\'s.')
      throw new WrongSecretError('That is not this vault\'s master key.')
    }
    this.throttle.succeeded()
    if (this.unlocked !== undefined) return
    const master = Buffer.from(candidate)
    try {
      await this.unlockWith(master)
    } catch (err) {
      if ((this.unlocked as Unlocked | undefined)?.master !== master) master.fill(0)
      throw err
    }
    this.log?.info({ with: 'master key' }, 'The vault was unlocked.')
  }

  /** Seconds until another unlock attempt is allowed (0: now). */
  unlockDelaySeconds (): number {
    return this.throttle.waitSeconds()
  }

  async lock (): Promise<void> {
    const state = this.unlocked
    if (state === undefined) return
    // From here on new calls see a locked vault, and queued indexing jobs skip their work.
    this.unlocked = undefined
    clearTimeout(this.searchFlushTimer)
    this.searchFlushTimer = undefined
    await this.indexing.catch(() => {})
    while (this.busy > 0) await new Promise<void>(resolve => this.idleWaiters.push(resolve))
    await state.search.close().catch((err: unknown) => { this.log?.error({ err: (err as Error).message }, 'Saving the search index at lock failed; what it missed is indexed at the next unlock.') })
    state.keys.wipe()
    state.master.fill(0)
    state.arrivalPrivateKey.fill(0)
    state.mailbox.clear()
    this.log?.info('The vault was locked.')
  }

  async changePassphrase (passphrase: string): Promise<void> {
    checkPassphrase(passphrase)
    await this.withKeys(async (u) => {
      const slots = this.slots!
      const vaultId = Buffer.from(slots.vaultId, 'base64')
      const old = slots.slots.find(s => s.type === 'passphrase')
      const slot = await makeSlot(old?.id ?? 0, 'passphrase', Buffer.from(passphrase.normalize('NFC'), 'utf8'), u.master, vaultId, this.init.passphraseKdf)
      const next: KeySlotsFile = { ...slots, generation: slots.generation + 1, slots: [...slots.slots.filter(s => s.type !== 'passphrase'), slot].sort((a, b) => a.id - b.id) }
      await writeKeySlots(this.init.dir, next)
      this.slots = next
    })
    this.log?.info('The passphrase was changed.')
  }

  /** Listen for every message stored while unlocked (mail filed at an unlock is announced by onUnlock). */
  onAdded (listener: (meta: StoredMessageMeta) => void): () => void {
    this.addListeners.add(listener)
    return () => this.addListeners.delete(listener)
  }

  /** Listen for every unlock (the node starts the outbound queue on the first). */
  onUnlock (listener: () => void): () => void {
    this.unlockListeners.add(listener)
    return () => this.unlockListeners.delete(listener)
  }

  // --- MailStore -------------------------------------------------------------------------

  /** `receivedAt` is for a restore from backup (node/backup/), which keeps the original time; otherwise now. */
  async add (message: NewMessage & { receivedAt?: number }): Promise<AddResult> {
    this.ready()
    if (!FOLDERS.includes(message.folder)) throw new MailStoreError(`Unknown folder ${String(message.folder)}.`)
    if (!(message.raw instanceof Uint8Array)) throw new MailStoreError('A message must be given as a Buffer.')
    if (message.receivedAt !== undefined && !(Number.isSafeInteger(message.receivedAt) && message.receivedAt >= 0)) throw new MailStoreError('receivedAt must be a time in ms since the epoch.')
    if (this.slots === undefined) throw new VaultError('There is no vault yet: run "smtorp init" first.')
    if (this.unlocked === undefined) return await this.addWhileLocked(message)
    return await this.withKeys(async (u) => {
      const flags = uniqueFlags(message.flags ?? [])
      if (message.messageId !== undefined) {
        const first = u.mailbox.duplicates(message.folder, message.messageId)[0]
        if (first !== undefined) {
          await this.settled(first)
          const meta = this.readMeta(u, first)
          if (meta !== undefined) return { meta: publicMeta(meta), duplicate: true }
        }
      }
      const id = this.newId()
      const objectId = randomBytes(16)
      const meta: MetaRecord = {
        id,
        folder: message.folder,
        ...(message.messageId !== undefined ? { messageId: message.messageId } : {}),
        from: message.from,
        to: [...message.to],
        receivedAt: message.receivedAt ?? Date.now(),
        size: message.raw.byteLength,
        flags,
        ...summaryOf(message.raw),
        objectId: objectId.toString('hex')
      }
      u.mailbox.set(id, meta.folder, meta.flags, meta.messageId, meta.thread)
      const sealed = seal(u.keys.objectKey(objectId), message.raw, associatedData('message', objectId))
      const written = this.writeMessage(u, meta, objectId, sealed, [])
      this.pending.set(id, written)
      try {
        await written
      } catch (err) {
        u.mailbox.delete(id, meta.messageId, meta.thread)
        throw new VaultError('Storing the message failed.', { cause: err })
      } finally {
        this.pending.delete(id)
      }
      this.indexLater(id, message.raw)
      const added = publicMeta(meta)
      for (const listener of this.addListeners) listener(added)
      return { meta: added, duplicate: false }
    })
  }

  async get (id: string): Promise<StoredMessage | undefined> {
    return await this.withKeys(async (u) => {
      if (!ID_PATTERN.test(id)) return undefined
      await this.settled(id)
      const meta = this.readMeta(u, id)
      if (meta === undefined) return undefined
      const raw = await this.readObject(u, meta)
      return { ...publicMeta(meta), raw }
    })
  }

  /** A message's metadata without its body (one sealed record opened, no shards read). */
  async meta (id: string): Promise<StoredMessageMeta | undefined> {
    return await this.withKeys(async (u) => {
      if (!ID_PATTERN.test(id)) return undefined
      await this.settled(id)
      const meta = this.readMeta(u, id)
      return meta === undefined ? undefined : publicMeta(meta)
    })
  }

  async list (folder: Folder): Promise<StoredMessageMeta[]> {
    if (!FOLDERS.includes(folder)) throw new MailStoreError(`Unknown folder ${String(folder)}.`)
    return await this.withKeys(async (u) => {
      await Promise.allSettled([...this.pending.values()])
      const out: StoredMessageMeta[] = []
      for (const id of u.mailbox.ids(folder)) {
        const meta = this.pending.has(id) ? undefined : this.readMeta(u, id)
        if (meta !== undefined) out.push(publicMeta(meta))
      }
      return out
    })
  }

  async setFlags (id: string, flags: string[]): Promise<void> {
    const unique = uniqueFlags(flags)
    await this.changeFlags(id, () => unique)
  }

  /**
   * Add or remove one flag, leaving the others as they are at that moment: two changes made at
   * once (read and flagged, say) never undo each other, as a read-then-setFlags could.
   */
  async setFlag (id: string, flag: string, on: boolean): Promise<void> {
    uniqueFlags([flag])
    await this.changeFlags(id, flags => on ? [...new Set([...flags, flag])] : flags.filter(f => f !== flag))
  }

  /**
   * Record what reading the message found out (node/openpgp/: its OpenPGP security, the
   * protected Subject of an encrypted message) in its metadata record.
   */
  async annotate (id: string, note: { security?: MessageSecurityNote, subject?: string }): Promise<void> {
    await this.withKeys(async (u) => {
      await this.settled(id)
      const meta = this.mustReadMeta(u, id)
      if (note.security !== undefined) meta.security = note.security
      if (note.subject !== undefined) meta.subject = note.subject.replace(/[\x00-\x1f\x7f]/g, ' ').trim().slice(0, 998)
      await this.writeMeta(u, meta)
    })
  }

  /** Up to `limit` ids of a folder after `after` (all if not given), oldest first. */
  idsAfter (folder: Folder, after: string | undefined, limit: number): string[] {
    const u = this.unlocked
    if (u === undefined) throw new VaultLockedError()
    return u.mailbox.oldestAfter(folder, limit, after)
  }

  /**
   * What the search index reads of a message instead of its stored bytes (node/openpgp/: the
   * decrypted content of encrypted mail). Undefined from the function: the stored bytes.
   */
  setSearchContent (content: ((raw: Buffer) => Promise<Buffer | undefined>) | undefined): void {
    this.searchContent = content
  }

  private async changeFlags (id: string, change: (flags: string[]) => string[]): Promise<void> {
    await this.withKeys(async (u) => {
      await this.settled(id)
      // Read, change and seal with no await in between (see readMeta).
      const meta = this.mustReadMeta(u, id)
      meta.flags = change(meta.flags)
      u.mailbox.set(id, meta.folder, meta.flags, meta.messageId)
      await this.writeMeta(u, meta)
    })
  }

  async move (id: string, folder: Folder): Promise<void> {
    if (!FOLDERS.includes(folder)) throw new MailStoreError(`Unknown folder ${String(folder)}.`)
    await this.withKeys(async (u) => {
      await this.settled(id)
      const meta = this.mustReadMeta(u, id)
      if (meta.folder === folder) return
      meta.folder = folder
      u.mailbox.set(id, meta.folder, meta.flags, meta.messageId)
      await this.writeMeta(u, meta)
    })
  }

  async remove (id: string): Promise<void> {
    await this.withKeys(async (u) => {
      await this.settled(id)
      await this.commit!.write(this.forget(u, this.mustReadMeta(u, id)))
    })
  }

  /**
   * Take a message out of memory and the search index, and return the writes that delete it.
   * The shard records stay until compaction finds their segment half garbage (spec/storage.md
   * 7.10); without the locator and the metadata nothing reaches them.
   */
  private forget (u: Unlocked, meta: MetaRecord): Array<BatchOp<Buffer>> {
    u.mailbox.delete(meta.id, meta.messageId, meta.thread)
    u.search.remove(Number(meta.id))
    return [{ type: 'del', key: metaKey(meta.id) }, { type: 'del', key: objectKey(Buffer.from(meta.objectId, 'hex')) }]
  }

  // --- Lists for the UI: pages, counts, threads, emptying a folder --------------------------

  /**
   * One page of a folder, newest first: at most `limit` (capped at 500) messages with ids below
   * `before`. Ids come from memory; only the returned messages' records are opened. Pass
   * `nextBefore` as `before` for the next (older) page; it is absent on the last one.
   */
  async page (folder: Folder, options: { before?: string, limit: number }): Promise<{ messages: StoredMessageMeta[], nextBefore?: string }> {
    if (!FOLDERS.includes(folder)) throw new MailStoreError(`Unknown folder ${String(folder)}.`)
    const { before } = options
    if (before !== undefined && !ID_PATTERN.test(before)) throw new MailStoreError(`"before" must be a message id, not ${JSON.stringify(before)}.`)
    if (!Number.isInteger(options.limit) || options.limit < 1) throw new MailStoreError('"limit" must be a whole number of at least 1.')
    const limit = Math.min(options.limit, MAX_PAGE)
    return await this.withKeys(async (u) => {
      // As list(): adds under way are waited for; one that began meanwhile is left out.
      await Promise.allSettled([...this.pending.values()])
      const ids = u.mailbox.newest(folder, limit + 1, before, id => this.pending.has(id))
      const messages: StoredMessageMeta[] = []
      for (const id of ids.slice(0, limit)) {
        const meta = this.readMeta(u, id)
        if (meta !== undefined) messages.push(publicMeta(meta))
      }
      return ids.length > limit ? { messages, nextBefore: ids[limit - 1]! } : { messages }
    })
  }

  /** Messages and unread messages (no \Seen flag) per folder, from memory. */
  async counts (): Promise<Map<Folder, { total: number, unread: number }>> {
    return await this.withKeys(async (u) => u.mailbox.counts())
  }

  /**
   * Every message of the thread that message `id` belongs to, oldest first (by id, which is
   * arrival order), itself included, from every folder, Trash too: each carries its folder, so
   * the caller decides what to show. The thread is the root Message-ID its summary names
   * (StoredMessageMeta.thread); messages stored without a summary are found only as roots.
   * Opens only the records of the thread's messages.
   */
  async thread (id: string): Promise<StoredMessageMeta[]> {
    return await this.withKeys(async (u) => {
      await this.settled(id)
      const meta = this.readMeta(u, id)
      if (meta === undefined) return []
      const root = meta.thread ?? meta.messageId ?? ''
      const ids = u.mailbox.thread(root)
      if (!ids.includes(id)) ids.push(id) // no Message-ID and no summary: a thread of one
      const out: StoredMessageMeta[] = []
      for (const member of ids.sort()) {
        await this.settled(member)
        const m = member === id ? meta : this.readMeta(u, member)
        if (m !== undefined) out.push(publicMeta(m))
      }
      return out
    })
  }

  /**
   * How many messages the vault holds in the thread whose root Message-ID is `thread` (a
   * StoredMessageMeta's `thread`), in every folder; 0 when locked or for ''. Memory only, O(1),
   * so a list can show "3 in thread" for each line.
   */
  threadSize (thread: string): number {
    return this.unlocked?.mailbox.threadSize(thread) ?? 0
  }

  /** Remove every message in `folder` (emptying Trash); one synced batch per 500. Returns how many. */
  async emptyFolder (folder: Folder): Promise<number> {
    if (!FOLDERS.includes(folder)) throw new MailStoreError(`Unknown folder ${String(folder)}.`)
    return await this.withKeys(async (u) => {
      await Promise.allSettled([...this.pending.values()])
      const ids = u.mailbox.ids(folder)
      let removed = 0
      for (let start = 0; start < ids.length; start += MAX_PAGE) {
        const ops: Array<BatchOp<Buffer>> = []
        // Read and forget with no await in between (see readMeta); a message moved out or
        // removed while an earlier batch was written is left alone.
        for (const id of ids.slice(start, start + MAX_PAGE)) {
          if (this.pending.has(id) || u.mailbox.folderOf(id) !== folder) continue
          const meta = this.readMeta(u, id)
          if (meta === undefined) continue
          ops.push(...this.forget(u, meta))
          removed++
        }
        if (ops.length > 0) await this.commit!.write(ops)
      }
      if (removed > 0) this.log?.info({ folder, removed }, 'A folder was emptied.')
      return removed
    })
  }

  // --- Search, records, scrub ------------------------------------------------------------

  /** Messages matching `query` (words ANDed; from:, to:, subject: qualifiers), newest first. */
  async search (query: string, options: { limit?: number, before?: string } = {}): Promise<StoredMessageMeta[]> {
    return await this.withKeys(async (u) => {
      const docs = await u.search.search(query, { limit: options.limit ?? 50, ...(options.before !== undefined ? { before: Number(options.before) } : {}) })
      const out: StoredMessageMeta[] = []
      for (const doc of docs) {
        const meta = this.readMeta(u, String(doc).padStart(ID_DIGITS, '0'))
        if (meta !== undefined) out.push(publicMeta(meta))
      }
      return out
    })
  }

  /** Wait until every message stored so far is in the search index. */
  async searchReady (): Promise<void> {
    await this.indexing
  }

  /** A small sealed record (settings, contacts), or undefined. */
  async getRecord (kind: string, name: string): Promise<Buffer | undefined> {
    return await this.withKeys(async (u) => {
      const id = mac(u.keys.record, `${kind}\0${name}`)
      const value = await this.db!.get(Buffer.concat([Buffer.from('r'), id]))
      return value === undefined ? undefined : this.openRecord(u, value, 'record', id)
    })
  }

  async putRecord (kind: string, name: string, value: Buffer | undefined): Promise<void> {
    await this.withKeys(async (u) => {
      const id = mac(u.keys.record, `${kind}\0${name}`)
      const key = Buffer.concat([Buffer.from('r'), id])
      await this.commit!.write([value === undefined ? { type: 'del', key } : { type: 'put', key, value: seal(u.keys.record, value, associatedData('record', id)) }])
    })
  }

  /**
   * Seal and open values for the outbound queue (its own database), bound to the entry id.
   * The queue key outlives a lock (not a restart or close): mail the owner sent keeps going out
   * while the vault is locked. It opens queued outgoing mail and delivery state, nothing else.
   */
  queueCipher (): { seal: (id: string, plain: Buffer) => Buffer, open: (id: string, sealed: Buffer) => Buffer } {
    const key = (): Buffer => {
      const k = this.unlocked?.keys.queue ?? this.queueKey
      if (k === undefined) throw new VaultLockedError()
      return k
    }
    return {
      seal: (id, plain) => seal(key(), plain, associatedData('queue entry', id)),
      open: (id, sealed) => open(key(), sealed, associatedData('queue entry', id))
    }
  }

  /**
   * Verify every shard of every object, rewrite the damaged ones, and report. Runs locked or
   * unlocked (locators are not secret); unlocked, a lost object is named by its message id.
   */
  async scrub (options: { onProgress?: (done: number, total: number) => void, pauseMs?: number, compact?: boolean } = {}): Promise<ScrubReport> {
    const db = this.ready()
    const shards = this.shards!
    const report: ScrubReport = { objects: 0, shardsChecked: 0, damagedShards: 0, repairedShards: 0, lost: [], startedAt: Date.now(), finishedAt: 0 }
    const entries = await db.iterator({ gt: Buffer.from('o'), lt: Buffer.from('p') }).all()
    for (const [key, value] of entries) {
      const objectId = key.subarray(1)
      report.objects++
      let loc: Locator
      try {
        loc = decodeLocator(value)
      } catch (err) {
        report.lost.push({ objectId: objectId.toString('hex'), ...this.messageOf(objectId), reason: `its locator is unreadable: ${(err as Error).message}` })
        continue
      }
      const bad = await shards.verify(loc)
      report.shardsChecked += loc.k + loc.m
      report.damagedShards += bad.length
      if (bad.length > loc.m) {
        report.lost.push({ objectId: objectId.toString('hex'), ...this.messageOf(objectId), reason: `${bad.length} of its ${loc.k + loc.m} shards are damaged (shards ${bad.join(', ')}); at most ${loc.m} can be rebuilt` })
      } else if (bad.length > 0) {
        await this.shardWrite(async () => { await this.writeLocatorIfLive(key, await shards.repair(loc, bad)) })
        report.repairedShards += bad.length
      }
      options.onProgress?.(report.objects, entries.length)
      if (options.pauseMs !== undefined && options.pauseMs > 0) await new Promise(resolve => setTimeout(resolve, options.pauseMs))
    }
    if (options.compact !== false) report.compaction = await this.compact()
    report.finishedAt = Date.now()
    this.log?.info({ objects: report.objects, damaged: report.damagedShards, repaired: report.repairedShards, lost: report.lost.length }, 'Scrub finished.')
    return report
  }

  /**
   * Give back the space of deleted mail (and of arrivals filed at unlock): every segment that
   * appends no longer go to, and whose bytes are at least `minDeadFraction` garbage, has its
   * live records written again at the end of their columns (`repair`, which verifies and
   * rebuilds as it goes), the new locators saved, and only then is deleted. Runs locked or
   * unlocked. Called at the end of every scrub; one at a time with it.
   */
  async compact (options: { minDeadFraction?: number } = {}): Promise<CompactReport> {
    const db = this.ready()
    const shards = this.shards!
    const minDead = options.minDeadFraction ?? 0.5
    const report: CompactReport = { segmentsRemoved: 0, bytesFreed: 0, objectsMoved: 0 }
    const garbage = (s: SegmentInfo, live: Map<string, number>): number => s.bytes === 0 ? 1 : (s.bytes - (live.get(`${s.column}/${s.segment}`) ?? 0)) / s.bytes
    // A segment still being appended to is never removed; one that is big and mostly garbage
    // (a small vault never fills a 64 MiB segment) is closed first, so the pass below can take it.
    const first = await this.liveBytes(db)
    if (first === undefined) return report
    for (const s of await shards.segments()) {
      if (s.active && s.bytes >= ROLL_OVER_BYTES && garbage(s, first.live) >= minDead) shards.rollOver(s.column)
    }
    // Segments before locators: whatever is stored after this listing goes to segments marked
    // active in it, which are never removed, so the locators read next cover every record a
    // victim holds.
    const segments = (await shards.segments()).filter(s => !s.active)
    await Promise.allSettled([...this.shardWrites])
    const current = await this.liveBytes(db)
    if (current === undefined) return report
    const { live, objects } = current
    const victims = new Set(segments.filter(s => garbage(s, live) >= minDead).map(s => `${s.column}/${s.segment}`))
    if (victims.size === 0) return report
    const stuck = new Set<string>()
    this.compacting = true
    try {
      for (const { key, loc } of objects) {
        const indexes = loc.shards.flatMap((s, i) => victims.has(`${i}/${s.segment}`) ? [i] : [])
        if (indexes.length === 0) continue
        try {
          await this.writeLocatorIfLive(key, await shards.repair(loc, indexes))
          report.objectsMoved++
        } catch (err) {
          // Beyond repair (scrub has said so): keep its segments, so nothing more is lost.
          for (const i of indexes) stuck.add(`${i}/${loc.shards[i]!.segment}`)
          this.log?.warn({ objectId: loc.objectId.toString('hex'), err: (err as Error).message }, 'Compaction could not move an object; its segments stay.')
        }
      }
      for (const s of segments) {
        const id = `${s.column}/${s.segment}`
        if (!victims.has(id) || stuck.has(id)) continue
        await shards.removeSegment(s.column, s.segment)
        report.segmentsRemoved++
        report.bytesFreed += s.bytes
      }
    } finally {
      this.compacting = false
    }
    if (report.segmentsRemoved > 0) this.log?.info({ ...report }, 'Compaction gave back the space of deleted records.')
    return report
  }

  /** Every locator, and the bytes they point at per segment file; undefined if one is unreadable. */
  private async liveBytes (db: ClassicLevel<Buffer, Buffer>): Promise<{ live: Map<string, number>, objects: Array<{ key: Buffer, loc: Locator }> } | undefined> {
    const live = new Map<string, number>()
    const objects: Array<{ key: Buffer, loc: Locator }> = []
    for (const [key, value] of await db.iterator({ gt: Buffer.from('o'), lt: Buffer.from('p') }).all()) {
      let loc: Locator
      try {
        loc = decodeLocator(value)
      } catch {
        // Where this object's records are is unknown, so no segment may be called garbage.
        this.log?.warn({ objectId: key.subarray(1).toString('hex') }, 'An unreadable locator stops compaction; scrub reports the object.')
        return undefined
      }
      objects.push({ key, loc })
      loc.shards.forEach((s, i) => { const id = `${i}/${s.segment}`; live.set(id, (live.get(id) ?? 0) + SHARD_RECORD_HEADER_BYTES + loc.shardLength) })
    }
    return { live, objects }
  }

  stats (): { messages: number | undefined, damagedRecords: string[], shardBytes: number } {
    return { messages: this.unlocked?.mailbox.size, damagedRecords: [...this.damagedRecords], shardBytes: this.shards?.stats().bytes ?? 0 }
  }

  // --- internals -------------------------------------------------------------------------

  private ready (): ClassicLevel<Buffer, Buffer> {
    if (!this.open_ || this.db === undefined) throw new VaultError('The vault is not open.')
    return this.db
  }

  private async withKeys<T> (fn: (u: Unlocked) => Promise<T>): Promise<T> {
    this.ready()
    const u = this.unlocked
    if (u === undefined) throw new VaultLockedError()
    this.busy++
    try {
      return await fn(u)
    } finally {
      if (--this.busy === 0) for (const wake of this.idleWaiters.splice(0)) wake()
    }
  }

  private newId (): string {
    return String(this.nextSeq++).padStart(ID_DIGITS, '0')
  }

  private messageOf (objectId: Buffer): { messageId?: string } {
    const u = this.unlocked
    if (u === undefined) return {}
    const hex = objectId.toString('hex')
    // Only for objects found lost: opening every record once is acceptable then.
    for (const id of u.mailbox.ids()) {
      try {
        if (this.readMeta(u, id)?.objectId === hex) return { messageId: id }
      } catch {}
    }
    return {}
  }

  /**
   * A message's metadata: opened from its sealed record, with folder and flags from memory
   * (they are written in call order, so memory is always the latest). Synchronous, so a caller
   * that changes it and seals it again is never interleaved with another.
   */
  private readMeta (u: Unlocked, id: string): MetaRecord | undefined {
    const folder = ID_PATTERN.test(id) ? u.mailbox.folderOf(id) : undefined
    if (folder === undefined) return undefined
    const value = this.db!.getSync(metaKey(id))
    if (value === undefined) throw new MessageDamagedError(`Message ${id} has no metadata record in the vault index.`)
    const meta = JSON.parse(this.openRecord(u, value, 'meta', id).toString('utf8')) as MetaRecord
    meta.folder = folder
    meta.flags = u.mailbox.flagsOf(id)
    return meta
  }

  /** Wait until an add of `id` still on its way to disk is there (no wait if none is). */
  private async settled (id: string): Promise<void> {
    const pending = this.pending.get(id)
    if (pending !== undefined) await pending.catch(() => {})
  }

  /** Callers read, change and seal again with no await in between (see readMeta). */
  private mustReadMeta (u: Unlocked, id: string): MetaRecord {
    const meta = this.readMeta(u, id)
    if (meta === undefined) throw new MailStoreError(`No message with id ${JSON.stringify(id)}.`)
    return meta
  }

  private sealMeta (u: Unlocked, meta: MetaRecord): Buffer {
    return seal(u.keys.record, json(meta), associatedData('meta', meta.id))
  }

  private async writeMeta (u: Unlocked, meta: MetaRecord): Promise<void> {
    await this.commit!.write([{ type: 'put', key: metaKey(meta.id), value: this.sealMeta(u, meta) }])
  }

  /** Shards first (durable), then one synced index batch that makes the message exist. */
  private async writeMessage (u: Unlocked, meta: MetaRecord, objectId: Buffer, sealed: Buffer, extra: Array<BatchOp<Buffer>>): Promise<void> {
    await this.shardWrite(async () => {
      const loc = await this.shards!.put(objectId, sealed)
      await this.commit!.write([
        { type: 'put', key: KEY_SEQ, value: Buffer.from(String(this.nextSeq)) },
        { type: 'put', key: objectKey(objectId), value: encodeLocator(loc) },
        { type: 'put', key: metaKey(meta.id), value: this.sealMeta(u, meta) },
        ...extra
      ])
    })
  }

  /**
   * Runs a write of shard records and then of the locator that points at them. Compaction
   * waits for the ones under way before it reads locators: records already on disk but not
   * yet pointed at must not look like garbage.
   */
  private async shardWrite<T> (fn: () => Promise<T>): Promise<T> {
    const running = fn()
    this.shardWrites.add(running)
    try {
      return await running
    } finally {
      this.shardWrites.delete(running)
    }
  }

  /** After a repair: unless the object was deleted (or filed) meanwhile, which must not bring it back. */
  private async writeLocatorIfLive (key: Buffer, loc: Locator): Promise<void> {
    if (this.db!.getSync(key) === undefined) return
    await this.commit!.write([{ type: 'put', key, value: encodeLocator(loc) }])
  }

  private async readObject (u: Unlocked, meta: MetaRecord): Promise<Buffer> {
    const objectId = Buffer.from(meta.objectId, 'hex')
    let sealed: Buffer
    try {
      sealed = await this.readSealed(objectKey(objectId))
    } catch (err) {
      throw new MessageDamagedError(`Message ${meta.id} cannot be read: ${(err as Error).message}`, { cause: err })
    }
    try {
      return open(u.keys.objectKey(objectId), sealed, associatedData('message', objectId))
    } catch (err) {
      if (err instanceof TamperError) throw new MessageDamagedError(`Message ${meta.id} failed authentication: its ciphertext was changed or swapped. It is not shown.`, { cause: err })
      throw err
    }
  }

  /**
   * An object's bytes, verified and rebuilt if need be; damaged shards are written again at
   * once (except while compaction moves records). If the read fails because compaction moved
   * the object and removed its old segment meanwhile, the locator has changed: read again.
   */
  private async readSealed (key: Buffer): Promise<Buffer> {
    for (let attempt = 0; ; attempt++) {
      const value = await this.db!.get(key)
      if (value === undefined) throw new VaultError('it has no locator in the vault index')
      const loc = decodeLocator(value)
      let got: { data: Buffer, damaged: number[] }
      try {
        got = await this.shards!.get(loc)
      } catch (err) {
        const now = await this.db!.get(key)
        if (attempt === 0 && now !== undefined && !now.equals(value)) continue
        throw err
      }
      if (got.damaged.length > 0 && !this.compacting) {
        this.log?.warn({ objectId: loc.objectId.toString('hex'), shards: got.damaged }, 'Damaged shards were rebuilt on read; rewriting them.')
        await this.shardWrite(async () => { await this.writeLocatorIfLive(key, await this.shards!.repair(loc, got.damaged)) })
      }
      return got.data
    }
  }

  private openRecord (u: Unlocked, value: Buffer, kind: string, id: Buffer | string): Buffer {
    try {
      return open(u.keys.record, value, associatedData(kind, id))
    } catch (err) {
      throw new VaultError(`A ${kind} record of the vault index failed authentication: it was changed or swapped.`, { cause: err })
    }
  }

  private async addWhileLocked (message: NewMessage): Promise<AddResult> {
    const slots = this.slots!
    const id = this.newId()
    const objectId = randomBytes(16)
    const envelope: ArrivalEnvelope = {
      folder: message.folder,
      from: message.from,
      to: [...message.to],
      ...(message.messageId !== undefined ? { messageId: message.messageId } : {}),
      flags: uniqueFlags(message.flags ?? []),
      receivedAt: Date.now()
    }
    // In `pending` from the start, sealing included, so an unlock that begins meanwhile
    // waits for it and files it.
    const raw = Buffer.from(message.raw) // the caller may reuse its buffer while this seals
    const written = (async () => {
      const sealed = await sealArrival(Buffer.from(slots.arrivalPublicKey, 'base64'), objectId, envelope, raw)
      await this.shardWrite(async () => {
        const loc = await this.shards!.put(objectId, sealed)
        await this.commit!.write([
          { type: 'put', key: KEY_SEQ, value: Buffer.from(String(this.nextSeq)) },
          { type: 'put', key: objectKey(objectId), value: encodeLocator(loc) },
          { type: 'put', key: arrivalKey(id), value: objectId }
        ])
      })
    })()
    this.pending.set(id, written)
    try {
      await written
    } catch (err) {
      throw new VaultError('Storing the message failed.', { cause: err })
    } finally {
      this.pending.delete(id)
    }
    // While locked only what the caller already knows can be said about the message.
    const { folder, from, to, flags, receivedAt } = envelope
    return { meta: { id, folder: folder as Folder, ...(message.messageId !== undefined ? { messageId: message.messageId } : {}), from, to, receivedAt, size: message.raw.byteLength, flags, ...summaryOf(raw) }, duplicate: false }
  }

  private async unlockWith (master: Buffer): Promise<void> {
    const slots = this.slots!
    const db = this.db!
    const vaultId = Buffer.from(slots.vaultId, 'base64')
    const keys = new VaultKeys(master, vaultId)
    let arrivalPrivateKey: Buffer
    try {
      arrivalPrivateKey = open(keys.arrivalKey, Buffer.from(slots.arrivalPrivateKey, 'base64'), associatedData('arrival private key', vaultId))
    } catch (err) {
      keys.wipe()
      throw new VaultError('The arrival key in the key slots file failed authentication.', { cause: err })
    }
    const genuinePublicKey = arrivalPublicKeyOf(arrivalPrivateKey)
    if (!genuinePublicKey.equals(Buffer.from(slots.arrivalPublicKey, 'base64'))) {
      // Someone who could write the data directory replaced the public half, so mail arriving
      // while locked was sealed to them. Put the right one back (it follows from the private
      // key, which is authenticated) and say so loudly; what was sealed to the wrong key stays
      // in the arrivals, unreadable, and is reported when filing.
      this.log?.error('The arrival public key in the key slots file was not the vault\'s: it was altered. It is restored now; mail that arrived while locked may have been readable by whoever altered it.')
      const restored: KeySlotsFile = { ...slots, generation: slots.generation + 1, arrivalPublicKey: genuinePublicKey.toString('base64') }
      await writeKeySlots(this.init.dir, restored)
      this.slots = restored
      this.arrivalKeyRestored = true
    }
    const mailbox = new MailboxIndex()
    this.damagedRecords.clear()
    const newSearchIndex = (): SearchIndex => searchIndex({ db, keys: { term: keys.searchTerm, postings: keys.searchPostings }, flushEvery: this.init.searchFlushEvery, ...(this.log !== undefined ? { logger: this.log } : {}) })
    const u: Unlocked = { master, keys, arrivalPrivateKey, mailbox, search: newSearchIndex() }
    for await (const [key, value] of db.iterator({ gt: Buffer.from('m'), lt: Buffer.from('n') })) {
      const id = key.subarray(1).toString('latin1')
      try {
        const meta = JSON.parse(this.openRecord(u, value, 'meta', id).toString('utf8')) as MetaRecord
        if (!FOLDERS.includes(meta.folder)) {
          // Written by a later smtorp that knows more folders: shown in the Inbox, not lost.
          this.log?.warn({ message: id }, 'A message is filed in a folder this smtorp does not know; it is shown in the Inbox.')
          meta.folder = 'Inbox'
        }
        mailbox.set(id, meta.folder, meta.flags, meta.messageId, meta.thread)
      } catch (err) {
        // One bad record must not lock the owner out of every other message: it is left on
        // disk untouched, reported, and counted in stats().
        this.damagedRecords.add(id)
        this.log?.error({ message: id, err: (err as Error).message }, 'A message\'s metadata record failed authentication; the message is not shown.')
      }
    }
    try {
      await u.search.open()
    } catch (err) {
      this.log?.error({ err: (err as Error).message }, 'The search index cannot be read; it will be rebuilt.')
      await this.clearSearchIndex()
      u.search = newSearchIndex()
      await u.search.open()
    }
    this.unlocked = u
    this.queueKey ??= Buffer.from(keys.queue)
    await this.withKeys(async () => { await this.fileArrivals(u) })
    // Index what the index does not have yet (mail stored before a crash, or converted arrivals).
    const missing = mailbox.ids().filter(id => !u.search.has(Number(id)))
    for (const id of missing) this.indexLater(id)
    for (const listener of this.unlockListeners) listener()
  }

  /** Move mail that arrived while locked into the mailbox (spec/storage.md, "Arrivals"). */
  private async fileArrivals (u: Unlocked): Promise<void> {
    const db = this.db!
    // Arrivals still being written when the vault unlocked are on disk before the scan.
    await Promise.allSettled([...this.pending.values()])
    const arrivals = await db.iterator({ gt: Buffer.from('a'), lt: Buffer.from('b') }).all()
    let filed = 0
    // 32 at a time, so their shard and index writes share group commits. The duplicate checks
    // still happen in arrival order (each waits for the one before), so of two copies of a
    // message the older is kept, as when they are filed one by one.
    const decided: Array<Promise<void>> = []
    const decide: Array<() => void> = []
    for (let i = 0; i < arrivals.length; i++) decided.push(new Promise<void>(resolve => { decide.push(resolve) }))
    // Until its turn comes, a read of an arrival's id waits for it (get() and list() wait for
    // `pending`), rather than find nothing.
    const whenFiled: Array<() => void> = []
    for (const [key] of arrivals) {
      const id = key.subarray(1).toString('latin1')
      this.pending.set(id, new Promise<void>(resolve => { whenFiled.push(resolve) }))
    }
    const fileOne = async (index: number): Promise<void> => {
      try {
        await fileArrival(index)
      } finally {
        this.pending.delete(arrivals[index]![0].subarray(1).toString('latin1'))
        whenFiled[index]!()
        // An arrival that could not be opened decides nothing, but only after its predecessor.
        if (index > 0) await decided[index - 1]
        decide[index]!()
      }
    }
    const fileArrival = async (index: number): Promise<void> => {
      const [key, oldObjectId] = arrivals[index]!
      const id = key.subarray(1).toString('latin1')
      const locValue = await db.get(objectKey(oldObjectId))
      let envelope: ArrivalEnvelope
      let raw: Buffer
      try {
        if (locValue === undefined) throw new VaultError('its locator is missing')
        ;({ envelope, raw } = await openArrival(u.arrivalPrivateKey, oldObjectId, await this.readSealed(objectKey(oldObjectId))))
      } catch (err) {
        // Kept where it is, so a later repair (or a better smtorp) can still file it.
        this.log?.error({ arrival: id, err: (err as Error).message }, 'A message that arrived while locked cannot be opened; it stays in the arrivals.')
        return
      }
      const folder = FOLDERS.includes(envelope.folder as Folder) ? envelope.folder as Folder : 'Inbox'
      const drop: Array<BatchOp<Buffer>> = [{ type: 'del', key }, { type: 'del', key: objectKey(oldObjectId) }]
      if (index > 0) await decided[index - 1]
      if (envelope.messageId !== undefined && u.mailbox.duplicates(folder, envelope.messageId).length > 0) {
        decide[index]!()
        await this.commit!.write(drop) // a duplicate of mail already in that folder
        return
      }
      const objectId = randomBytes(16)
      const meta: MetaRecord = {
        id, folder, ...(envelope.messageId !== undefined ? { messageId: envelope.messageId } : {}),
        from: envelope.from, to: envelope.to, receivedAt: envelope.receivedAt, size: raw.length, flags: envelope.flags,
        ...summaryOf(raw), objectId: objectId.toString('hex')
      }
      u.mailbox.set(id, meta.folder, meta.flags, meta.messageId, meta.thread)
      decide[index]!()
      try {
        await this.writeMessage(u, meta, objectId, seal(u.keys.objectKey(objectId), raw, associatedData('message', objectId)), drop)
        filed++
      } catch (err) {
        u.mailbox.delete(id, meta.messageId, meta.thread)
        this.log?.error({ arrival: id, err: (err as Error).message }, 'Filing a message that arrived while locked failed; it stays in the arrivals.')
      }
    }
    let next = 0
    await Promise.all(Array.from({ length: Math.min(32, arrivals.length) }, async () => {
      while (next < arrivals.length) await fileOne(next++)
    }))
    if (filed > 0) this.log?.info({ filed }, 'Mail that arrived while the vault was locked was filed.')
  }

  private async clearSearchIndex (): Promise<void> {
    const db = this.db!
    for (const [lo, hi] of [['x', 'y'], ['X', 'Y']] as const) {
      const keys = await db.keys({ gte: Buffer.from(lo), lt: Buffer.from(hi) }).all()
      await db.batch(keys.map(key => ({ type: 'del' as const, key })), { sync: true })
    }
  }

  /** Index a message in the background, in order; the 250 never waits for this. */
  private indexLater (id: string, raw?: Buffer): void {
    this.indexProgress.total++
    this.indexing = this.indexing.then(async () => {
      // Let waiting I/O (the next message's 250) go first: indexing is never urgent.
      await new Promise(resolve => setImmediate(resolve))
      const u = this.unlocked
      if (u === undefined) return // locked meanwhile: the next unlock indexes what is missing
      if (!u.mailbox.has(id) || u.search.has(Number(id))) return
      const stored = raw ?? await this.withKeys(async (k) => await this.readObject(k, this.readMeta(k, id)!))
      const bytes = (await this.searchContent?.(stored)) ?? stored
      if (this.unlocked !== u || u.search.has(Number(id))) return
      u.search.add(Number(id), await extractSearchText(bytes))
      // The index flushes itself every searchFlushEvery messages; on a quiet node, a while
      // after the last one, so a crash costs little re-indexing.
      if (this.searchFlushTimer === undefined) {
        this.searchFlushTimer = setTimeout(() => {
          this.searchFlushTimer = undefined
          const current = this.unlocked
          if (current !== undefined) this.indexing = this.indexing.then(async () => { await current.search.flush() }).catch((err: unknown) => { this.log?.error({ err: (err as Error).message }, 'Saving the search index failed; it is retried later.') })
        }, SEARCH_IDLE_FLUSH_MS)
        this.searchFlushTimer.unref()
      }
    }).catch((err: unknown) => {
      this.log?.error({ message: id, err: (err as Error).message }, 'Indexing a message for search failed; it is retried at the next unlock.')
    }).finally(() => {
      const p = this.indexProgress
      if (++p.done >= p.total) this.indexProgress = { done: 0, total: 0 }
    })
  }

  /** How far the background indexer is through the messages handed to it (for a progress bar). */
  indexingProgress (): { done: number, total: number } {
    return { ...this.indexProgress }
  }
}

/** Whether `candidate` is the master key of these key slots: it opens the sealed arrival private key. */
/** Whether `candidate` is the master key of the vault with these key slots (it opens the sealed arrival key). */
export function isMasterKeyOf (slots: KeySlotsFile, candidate: Buffer): boolean {
  if (candidate.length !== 32) return false
  const vaultId = Buffer.from(slots.vaultId, 'base64')
  const keys = new VaultKeys(candidate, vaultId)
  try {
    open(keys.arrivalKey, Buffer.from(slots.arrivalPrivateKey, 'base64'), associatedData('arrival private key', vaultId)).fill(0)
    return true
  } catch (err) {
    if (err instanceof TamperError) return false
    throw err
  } finally {
    keys.wipe()
  }
}

function checkPassphrase (passphrase: string): void {
  if (typeof passphrase !== 'string' || passphrase.length < 8) throw new VaultError('The passphrase must be at least 8 characters long.')
}

function uniqueFlags (flags: readonly string[]): string[] {
  for (const f of flags) if (typeof f !== 'string') throw new MailStoreError('Flags must be strings.')
  return [...new Set(flags)]
}

/** The header summary kept in the metadata record, so a message list never reads bodies. */
function summaryOf (raw: Uint8Array): Pick<StoredMessageMeta, 'subject' | 'headerFrom' | 'date' | 'thread'> {
  const s = summarizeHeaders(Buffer.isBuffer(raw) ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength))
  return { subject: s.subject, headerFrom: s.from, ...(s.date !== undefined ? { date: s.date } : {}), thread: s.thread }
}

function publicMeta (meta: MetaRecord): StoredMessageMeta {
  const { objectId: _hidden, ...rest } = meta
  return { ...rest, to: [...meta.to], flags: [...meta.flags] }
}
