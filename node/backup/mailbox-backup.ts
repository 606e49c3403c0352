// The node's backup onto one target (spec/backup.md part 2): every message, the records the
// node needs (its OpenPGP key, peers, settings), its identity files and the vault's key slots,
// as encrypted blobs with opaque names, so that the target alone and the passphrase give the
// node back: the same onion address, the same keys, every message byte for byte.
//
// Keys: the backup key is HKDF-SHA256 (RFC 5869) of the vault's master key, salt the vault id,
// info "smtorp backup v1"; every blob but the key slots is sealed under it with AES-256-GCM
// (node/vault/crypto.ts seal/open), the associated data binding its kind and name. The key
// slots are stored as they are on disk: they are already protected by Argon2id, and they are
// what a restore opens first with the passphrase.
import { createHash } from 'node:crypto'
import { mkdir, readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { writeFileDurably } from '../identity/index.ts'
import type { Logger } from '../log/index.ts'
import { FOLDERS, type Folder } from '../store/mail-store.ts'
import { associatedData, deriveKey, mac, open, seal, TamperError } from '../vault/crypto.ts'
import { KEY_SLOTS_FORMAT, openSlots, readKeySlots, writeKeySlots, WrongSecretError as SlotNotOpenedError, type KeySlotsFile } from '../vault/key-slots.ts'
import { isMasterKeyOf, Vault, type VaultInit } from '../vault/vault.ts'
import { BackupTargetError, type BackupTarget } from './target.ts'

export const BACKUP_FORMAT = 1
/** The key slots blob: a fixed name, since a restore must find it before it has any key. */
export const KEY_SLOTS_BLOB = '00'
const BACKUP_KEY_INFO = 'smtorp backup v1'
const NAME_BYTES = 16

const SEED_FILE = join('identity', 'onion.seed')
const PASSWORD_FILE = 'submission.secret'
const CONFIG_FILE = 'config.yaml'
const FRIEND_BOOK_FILE = join('friends', 'book.json')

/**
 * The records a backup carries, by (kind, name): record names are MACed in the vault, so it
 * cannot list them; this list is what the backup knows of (spec/node-data.md). `openpgp` /
 * `read-through` is left out on purpose: it is a message id, and restored messages get new
 * ids, so the restored node reads every message again for OpenPGP (which is what it should).
 */
export const BACKED_UP_RECORDS: ReadonlyArray<readonly [string, string]> = [
  ['openpgp', 'own-key'],
  ['openpgp', 'peers'],
  ['settings', 'relay'],
  ['settings', 'ui'],
  ['settings', 'submission-credentials'],
  ['recovery', 'custodians'],
  ['custody-index', 'owners']
]
/** Records that list names, and the kind of the record each name has. */
const LISTED_RECORDS: Record<string, string> = {
  'openpgp/peers': 'openpgp-peer',
  'custody-index/owners': 'custody'
}
/** The backup's own record in the vault: vault message id → blob name, so a backup reads only new messages. */
const NAME_CACHE: readonly [string, string] = ['backup', 'message-names']

export class BackupError extends Error {
  override name = 'BackupError'
}

/** The passphrase opened no key slot of the backup; nothing was written. */
export class WrongBackupPassphraseError extends BackupError {
  override name = 'WrongBackupPassphraseError'
}

// ---- keys and names (spec/backup.md part 2, section 8) ----

/** HKDF-SHA256(master key, salt vault id, info "smtorp backup v1"), 32 bytes. */
export function backupKey (master: Uint8Array, vaultId: Uint8Array): Buffer {
  return deriveKey(master, vaultId, BACKUP_KEY_INFO)
}

/** hex(HMAC-SHA256(backup key, "smtorp backup v1 manifest")[:16]) */
export function manifestBlobName (key: Uint8Array): string {
  return mac(key, 'smtorp backup v1 manifest', NAME_BYTES).toString('hex')
}

/** hex(HMAC-SHA256(backup key, "smtorp backup v1 identity")[:16]) */
export function identityBlobName (key: Uint8Array): string {
  return mac(key, 'smtorp backup v1 identity', NAME_BYTES).toString('hex')
}

/**
 * hex(HMAC-SHA256(backup key, "message" NUL SHA-256(raw))[:16]): the name follows the
 * message's bytes, so a name always means the same content (spec/backup.md 5), the same bytes
 * in two folders are one blob, and a restored node's next backup uploads nothing again.
 */
export function messageBlobName (key: Uint8Array, raw: Uint8Array): string {
  const digest = createHash('sha256').update(raw).digest()
  return mac(key, Buffer.concat([Buffer.from('message\0', 'utf8'), digest]), NAME_BYTES).toString('hex')
}

export type BlobKind = 'message' | 'manifest' | 'identity'

/** associatedData("backup " + kind, name): a blob opens only as what and where it was sealed. */
export function blobAssociatedData (kind: BlobKind, name: string): Buffer {
  return associatedData(`backup ${kind}`, name)
}

export function sealBlob (key: Uint8Array, kind: BlobKind, name: string, plain: Uint8Array): Buffer {
  return seal(key, plain, blobAssociatedData(kind, name))
}

export function openBlob (key: Uint8Array, kind: BlobKind, name: string, sealed: Uint8Array): Buffer {
  return open(key, sealed, blobAssociatedData(kind, name))
}

// ---- the manifest and the identity blob ----

export interface ManifestMessage {
  blob: string
  folder: Folder
  flags: string[]
  from: string
  to: string[]
  receivedAt: number
  messageId?: string
  size: number
}

export interface Manifest {
  format: number
  /** base64, as in the key slots. */
  vaultId: string
  /** ISO 8601, when the backup was made. */
  created: string
  messages: ManifestMessage[]
  /** Each record's value in base64. */
  records: Array<{ kind: string, name: string, value: string }>
}

interface IdentityBlob {
  format: number
  /** base64 of identity/onion.seed (32 bytes). */
  onionSeed: string
  /** base64 of config.yaml, byte for byte. */
  config: string
  /** base64 of submission.secret, byte for byte. */
  submissionSecret: string
  /** base64 of friends/book.json, when the node has friends. */
  friendBook?: string
}

// ---- backup ----

export interface BackupInit {
  /** Unlocked. */
  vault: Vault
  /** The node's data directory (identity files, config.yaml, vault/). */
  dataDir: string
  target: BackupTarget
  logger?: Logger
  /** Called as messages are processed (done of total), for a progress bar. */
  onProgress?: (done: number, total: number) => void
}

export interface BackupReport {
  messages: number
  /** Message blobs uploaded by this run, and their bytes. */
  uploaded: number
  uploadedBytes: number
  /** Message blobs the target already held. */
  kept: number
  /** Blobs deleted because no message needs them any more. */
  deleted: number
  deletedBytes: number
  /** Bytes of the key slots, identity and manifest blobs, written at every run. */
  metadataBytes: number
  records: number
}

/**
 * Back the node up onto the target. Order (so that a crash at any point leaves a restorable
 * backup, the previous one or this one): upload the message blobs the target lacks, then the
 * key slots, the identity and the manifest (each put replaces atomically), and only then
 * delete the blobs the new manifest does not name.
 */
export async function backupToTarget (init: BackupInit): Promise<BackupReport> {
  const { vault, dataDir, target } = init
  const slots = await readKeySlots(join(dataDir, 'vault'))
  if (slots === undefined) throw new BackupError(`${join(dataDir, 'vault')} holds no vault key slots: there is nothing to back up.`)
  const vaultId = Buffer.from(slots.vaultId, 'base64')
  const master = vault.exportMasterKeyForRecovery()
  const key = backupKey(master, vaultId)
  master.fill(0)
  try {
    const present = new Map((await target.list()).map((b) => [b.name, b.size]))
    const cached = await readNameCache(vault)
    const names: Record<string, string> = {}
    const messages: ManifestMessage[] = []
    const wanted = new Set<string>()
    const report: BackupReport = { messages: 0, uploaded: 0, uploadedBytes: 0, kept: 0, deleted: 0, deletedBytes: 0, metadataBytes: 0, records: 0 }
    // Every folder is listed first, so that progress knows the total.
    const listed: Array<[Folder, Awaited<ReturnType<Vault['list']>>]> = []
    for (const folder of FOLDERS) listed.push([folder, await vault.list(folder)])
    const total = listed.reduce((n, [, metas]) => n + metas.length, 0)
    let done = 0
    init.onProgress?.(0, total)
    // Message blobs go up side by side when the target can take that (friends: one Tor round
    // trip per put); the key slots, identity and manifest only once every one of them is stored.
    const parallel = Math.max(1, target.parallel ?? 1)
    const uploading = new Set<Promise<void>>()
    let failed: { err: unknown } | undefined
    const upload = async (blob: string, raw: Buffer): Promise<void> => {
      while (uploading.size >= parallel) await Promise.race(uploading)
      if (failed !== undefined) throw failed.err
      const sealed = sealBlob(key, 'message', blob, raw)
      const put: Promise<void> = target.put(blob, sealed).then(() => {
        present.set(blob, sealed.byteLength)
        report.uploaded++
        report.uploadedBytes += sealed.byteLength
      }, (err: unknown) => { failed ??= { err } }).finally(() => { uploading.delete(put) })
      uploading.add(put)
    }
    for (const [folder, metas] of listed) {
      for (const meta of metas) {
        init.onProgress?.(done++, total)
        let blob = cached[meta.id]
        let raw: Buffer | undefined
        if (blob === undefined) {
          raw = (await vault.get(meta.id))?.raw
          if (raw === undefined) continue // removed meanwhile
          blob = messageBlobName(key, raw)
        }
        names[meta.id] = blob
        if (!wanted.has(blob)) {
          wanted.add(blob)
          const size = present.get(blob)
          if (size !== undefined) {
            report.kept++
          } else {
            raw ??= (await vault.get(meta.id))?.raw
            if (raw === undefined) continue
            await upload(blob, raw)
          }
        }
        messages.push({
          blob,
          folder,
          flags: meta.flags,
          from: meta.from,
          to: meta.to,
          receivedAt: meta.receivedAt,
          ...(meta.messageId !== undefined ? { messageId: meta.messageId } : {}),
          size: meta.size
        })
      }
    }
    await Promise.all(uploading)
    if (failed !== undefined) throw failed.err
    report.messages = messages.length
    init.onProgress?.(total, total)
    await vault.putRecord(...NAME_CACHE, Buffer.from(JSON.stringify(names), 'utf8'))

    const records = await recordsOf(vault)
    report.records = records.length
    const manifest: Manifest = { format: BACKUP_FORMAT, vaultId: slots.vaultId, created: new Date().toISOString(), messages, records }

    const slotsBytes = Buffer.from(JSON.stringify(slots), 'utf8')
    await target.put(KEY_SLOTS_BLOB, slotsBytes)
    const identityName = identityBlobName(key)
    const identity = sealBlob(key, 'identity', identityName, Buffer.from(JSON.stringify(await identityOf(dataDir)), 'utf8'))
    await target.put(identityName, identity)
    const manifestName = manifestBlobName(key)
    const sealedManifest = sealBlob(key, 'manifest', manifestName, Buffer.from(JSON.stringify(manifest), 'utf8'))
    await target.put(manifestName, sealedManifest)
    report.metadataBytes = slotsBytes.byteLength + identity.byteLength + sealedManifest.byteLength
    for (const name of [KEY_SLOTS_BLOB, identityName, manifestName]) wanted.add(name)

    for (const [name, size] of present) {
      if (wanted.has(name)) continue
      await target.delete(name)
      report.deleted++
      report.deletedBytes += size
    }
    await target.flush?.()
    init.logger?.info({ target: target.description, ...report }, 'The backup is complete.')
    return report
  } finally {
    key.fill(0)
  }
}

async function readNameCache (vault: Vault): Promise<Record<string, string>> {
  const value = await vault.getRecord(...NAME_CACHE)
  if (value === undefined) return {}
  try {
    const parsed = JSON.parse(value.toString('utf8')) as unknown
    return typeof parsed === 'object' && parsed !== null ? parsed as Record<string, string> : {}
  } catch {
    return {} // rebuilt by reading the messages again
  }
}

async function recordsOf (vault: Vault): Promise<Manifest['records']> {
  const out: Manifest['records'] = []
  const add = async (kind: string, name: string): Promise<Buffer | undefined> => {
    const value = await vault.getRecord(kind, name)
    if (value !== undefined) out.push({ kind, name, value: value.toString('base64') })
    return value
  }
  for (const [kind, name] of BACKED_UP_RECORDS) {
    const value = await add(kind, name)
    // Lists whose entries have records of their own: peers' keys, and shares held for friends.
    const each = LISTED_RECORDS[`${kind}/${name}`]
    if (each !== undefined && value !== undefined) {
      const entries = JSON.parse(value.toString('utf8')) as unknown
      if (Array.isArray(entries)) for (const entry of entries) if (typeof entry === 'string') await add(each, entry)
    }
  }
  return out
}

async function identityOf (dataDir: string): Promise<IdentityBlob> {
  const read = async (file: string): Promise<Buffer> => await readFile(join(dataDir, file))
  return {
    format: BACKUP_FORMAT,
    onionSeed: (await read(SEED_FILE)).toString('base64'),
    config: (await read(CONFIG_FILE)).toString('base64'),
    submissionSecret: (await read(PASSWORD_FILE)).toString('base64'),
    ...await optional('friendBook', FRIEND_BOOK_FILE)
  }

  async function optional (field: 'friendBook', file: string): Promise<Partial<IdentityBlob>> {
    try {
      return { [field]: (await read(file)).toString('base64') }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {}
      throw err
    }
  }
}

// ---- restore ----

/** Messages a restore adds at once (they share the vault's synced commits), and their bytes. */
const ADDS_IN_FLIGHT = 32
const ADD_BYTES_IN_FLIGHT = 64 * 1024 * 1024

export interface RestoreInit {
  target: BackupTarget
  /** The passphrase, or the master key rebuilt from recovery shares (node/recovery/). */
  passphrase?: string
  masterKey?: Buffer
  /** A new data directory: absent or empty. */
  dataDir: string
  /** Options for the new vault (its directory is `<dataDir>/vault`); tests turn Argon2id down. */
  vault?: Omit<VaultInit, 'dir'>
  logger?: Logger
  /** Messages handled (restored, duplicate or damaged) of the backup's total, as it goes. */
  onProgress?: (done: number, total: number) => void
}

export interface RestoreReport {
  /** The backup's creation time (ISO 8601). */
  created: string
  messages: number
  restored: number
  /** Messages the vault already held (same folder and Message-ID). */
  duplicates: number
  records: number
  /** Messages that could not be restored, and why; the others were. */
  damaged: Array<{ blob: string, folder: Folder, messageId?: string, reason: string }>
}

/**
 * Bring a node back from the target alone and the passphrase. Everything that can fail
 * before a file is written is checked first (the key slots, the passphrase, the manifest and
 * the identity blob): a wrong passphrase or an unreadable manifest writes nothing. A message
 * blob that is missing or does not authenticate is reported and skipped.
 */
export async function restoreFromTarget (init: RestoreInit): Promise<RestoreReport> {
  const { target, dataDir } = init
  const existing = await readdir(dataDir).catch((err: NodeJS.ErrnoException) => { if (err.code === 'ENOENT') return []; throw err })
  if (existing.length > 0) throw new BackupError(`${dataDir} is not empty; a restore writes only into a new, empty data directory.`)

  const slotsBytes = await target.get(KEY_SLOTS_BLOB)
  if (slotsBytes === undefined) throw new BackupError(`${target.description} holds no smtorp backup (no key slots blob).`)
  const slots = parseSlots(slotsBytes)
  const vaultId = Buffer.from(slots.vaultId, 'base64')
  let master: Buffer
  if (init.masterKey !== undefined) {
    if (!isMasterKeyOf(slots, init.masterKey)) throw new WrongBackupPassphraseError('The rebuilt master key does not open this backup; nothing was restored.')
    master = Buffer.from(init.masterKey)
  } else {
    if (init.passphrase === undefined) throw new BackupError('A restore needs the passphrase or the rebuilt master key.')
    try {
      master = await openSlots(slots, 'passphrase', Buffer.from(init.passphrase.normalize('NFC'), 'utf8'))
    } catch (err) {
      if (err instanceof SlotNotOpenedError) throw new WrongBackupPassphraseError('That passphrase does not open this backup; nothing was restored.')
      throw err
    }
  }
  const key = backupKey(master, vaultId)
  try {
    const manifestName = manifestBlobName(key)
    const manifest = JSON.parse(openFetched(key, 'manifest', manifestName, await target.get(manifestName)).toString('utf8')) as Manifest
    if (manifest.format !== BACKUP_FORMAT) throw new BackupError(`The backup's manifest has format ${String(manifest.format)}; this smtorp reads format ${BACKUP_FORMAT}.`)
    if (manifest.vaultId !== slots.vaultId) throw new BackupError('The backup\'s manifest belongs to another vault than its key slots.')
    const identityName = identityBlobName(key)
    const identity = JSON.parse(openFetched(key, 'identity', identityName, await target.get(identityName)).toString('utf8')) as IdentityBlob
    const seed = Buffer.from(identity.onionSeed, 'base64')
    if (seed.length !== 32) throw new BackupError('The backup\'s onion key is not 32 bytes.')

    // From here on files are written, as `smtorp init` writes them.
    await mkdir(dataDir, { recursive: true, mode: 0o700 })
    await mkdir(join(dataDir, 'identity'), { mode: 0o700 })
    await writeFileDurably(join(dataDir, SEED_FILE), seed)
    await writeFileDurably(join(dataDir, PASSWORD_FILE), Buffer.from(identity.submissionSecret, 'base64'))
    await writeFileDurably(join(dataDir, CONFIG_FILE), Buffer.from(identity.config, 'base64'), 0o600)
    if (identity.friendBook !== undefined) {
      await mkdir(join(dataDir, 'friends'), { mode: 0o700 })
      await writeFileDurably(join(dataDir, FRIEND_BOOK_FILE), Buffer.from(identity.friendBook, 'base64'))
    }
    const vaultDir = join(dataDir, 'vault')
    await mkdir(vaultDir, { mode: 0o700 })
    // The same key slots, so the same master key: recovery shares and the recovery code stay valid.
    await writeKeySlots(vaultDir, slots)

    const vault = new Vault({ ...init.vault, dir: vaultDir })
    await vault.open()
    const report: RestoreReport = { created: manifest.created, messages: manifest.messages.length, restored: 0, duplicates: 0, records: 0, damaged: [] }
    try {
      await vault.unlockWithMasterKey(master)
      for (const record of manifest.records) {
        await vault.putRecord(record.kind, record.name, Buffer.from(record.value, 'base64'))
        report.records++
      }
      // In the order they were received, so new ids keep the old order (the vault gives an id
      // when add is called); fetched up to `target.parallel` ahead, and added up to
      // ADDS_IN_FLIGHT (and ADD_BYTES_IN_FLIGHT) at a time, so that adds share synced commits.
      const ordered = [...manifest.messages].sort((a, b) => a.receivedAt - b.receivedAt)
      let handled = 0
      const handledOne = (): void => { init.onProgress?.(++handled, ordered.length) }
      init.onProgress?.(0, ordered.length)
      const ahead = Math.max(1, target.parallel ?? 1)
      const fetches: Array<Promise<Buffer | undefined>> = []
      const fetch = (i: number): void => {
        const m = ordered[i]
        if (m === undefined || fetches[i] !== undefined) return
        fetches[i] = target.get(m.blob)
        fetches[i]!.catch(() => {}) // awaited in turn below
      }
      const adding = new Set<Promise<void>>()
      let addingBytes = 0
      let addFailure: { error: unknown } | undefined
      try {
        for (const [i, m] of ordered.entries()) {
          for (let j = i; j < i + ahead; j++) fetch(j)
          const fetched = fetches[i]!
          delete fetches[i]
          let raw: Buffer
          try {
            raw = openFetched(key, 'message', m.blob, await fetched)
          } catch (err) {
            if (err instanceof BackupTargetError && err.transient) throw err
            const reason = (err as Error).message
            report.damaged.push({ blob: m.blob, folder: m.folder, ...(m.messageId !== undefined ? { messageId: m.messageId } : {}), reason })
            init.logger?.warn({ blob: m.blob, folder: m.folder, reason }, 'A message of the backup could not be restored; the others are.')
            handledOne()
            continue
          }
          const size = raw.byteLength
          const one: Promise<void> = vault.add({
            folder: m.folder, raw, from: m.from, to: m.to, flags: m.flags, receivedAt: m.receivedAt,
            ...(m.messageId !== undefined ? { messageId: m.messageId } : {})
          }).then(added => {
            if (added.duplicate) report.duplicates++
            else report.restored++
            handledOne()
          }, (error: unknown) => { addFailure ??= { error } }).finally(() => { adding.delete(one); addingBytes -= size })
          adding.add(one)
          addingBytes += size
          while (adding.size >= ADDS_IN_FLIGHT || addingBytes >= ADD_BYTES_IN_FLIGHT) await Promise.race(adding)
          if (addFailure !== undefined) throw addFailure.error
        }
      } finally {
        // Nothing is left writing when the vault closes, whatever happened.
        await Promise.all(adding)
      }
      if (addFailure !== undefined) throw addFailure.error
    } finally {
      await vault.close()
    }
    init.logger?.info({ target: target.description, restored: report.restored, damaged: report.damaged.length }, 'The restore is complete.')
    return report
  } finally {
    key.fill(0)
    master.fill(0)
  }
}

function openFetched (key: Buffer, kind: BlobKind, name: string, sealed: Buffer | undefined): Buffer {
  if (sealed === undefined) throw new BackupError(`The backup's ${kind} blob ${name} is missing from the target.`)
  try {
    return openBlob(key, kind, name, sealed)
  } catch (err) {
    if (err instanceof TamperError) throw new BackupError(`The backup's ${kind} blob ${name} does not authenticate: it was altered on the target.`, { cause: err })
    throw err
  }
}

function parseSlots (bytes: Buffer): KeySlotsFile {
  let file: KeySlotsFile
  try {
    file = JSON.parse(bytes.toString('utf8')) as KeySlotsFile
  } catch {
    throw new BackupError('The backup\'s key slots blob is not JSON: it is damaged.')
  }
  if (file?.format !== KEY_SLOTS_FORMAT || typeof file.vaultId !== 'string' || !Array.isArray(file.slots)) {
    throw new BackupError('The backup\'s key slots blob is not a key slots file: it is damaged.')
  }
  return file
}

