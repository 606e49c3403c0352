// Key slots (as LUKS has them): the vault's random 256-bit master key is never stored in the
// clear; each slot holds it wrapped (AES-256-GCM) under a key derived from one secret with
// Argon2id (RFC 9106), with the parameters recorded in the slot. Changing the passphrase
// rewrites one slot, never the mail. The file is written twice (a main and a backup copy,
// each with a SHA-256 checksum) so a damaged sector cannot lock the owner out.
// Format: spec/storage.md, "Key slots".
import argon2 from 'argon2'
import { createHash, randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { writeFileDurably } from '../identity/index.ts'
import { base32Decode, base32Encode } from '../../protocol/base32.ts'
import { open, seal, TamperError } from './crypto.ts'

export const KEY_SLOTS_FORMAT = 'smtorp-vault-key-slots'
export const KEY_SLOTS_VERSION = 1
export const KEY_SLOTS_FILE = 'key-slots.json'
export const KEY_SLOTS_BACKUP_FILE = 'key-slots.backup.json'

export type SlotType = 'passphrase' | 'recovery'

export interface Argon2idParams {
  /** Memory in KiB. */
  memoryKiB: number
  iterations: number
  parallelism: number
}

/**
 * The memory and passes of RFC 9106 section 4's second recommended option (64 MiB, t=3), with
 * one lane instead of four: lanes let a defender use more cores for the same cost, they do not
 * make a guess cheaper; one lane keeps an unlock from taking both cores of a small machine.
 */
export const PASSPHRASE_KDF: Argon2idParams = { memoryKiB: 65536, iterations: 3, parallelism: 1 }
/** The recovery code carries 160 random bits, so a lighter setting is as strong in practice. */
export const RECOVERY_KDF: Argon2idParams = { memoryKiB: 19456, iterations: 2, parallelism: 1 }

export interface KeySlot {
  id: number
  type: SlotType
  kdf: Argon2idParams & { name: 'argon2id', version: 19, salt: string }
  /** base64 of seal(kek, masterKey, aad) */
  wrappedKey: string
}

export interface KeySlotsFile {
  format: typeof KEY_SLOTS_FORMAT
  version: number
  /** Counts rewrites, so the newer of the two copies wins after a crash between them. */
  generation: number
  /** base64, 16 bytes: the HKDF salt of every key derived from the master key. */
  vaultId: string
  /** base64, the X25519 public key mail arriving while locked is sealed to (HPKE). */
  arrivalPublicKey: string
  /** base64, the matching private key, sealed under a key derived from the master key. */
  arrivalPrivateKey: string
  slots: KeySlot[]
  /** hex SHA-256 of this object's JSON without the checksum field. */
  checksum?: string
}

export class KeySlotError extends Error {
  override name = 'KeySlotError'
}

/** The secret did not open any slot of its kind. */
export class WrongSecretError extends KeySlotError {
  override name = 'WrongSecretError'
}

export function slotAssociatedData (vaultId: Buffer, slot: Pick<KeySlot, 'id' | 'type'>): Buffer {
  return Buffer.concat([Buffer.from(`smtorp-vault-key-slot-${KEY_SLOTS_VERSION}\0${slot.type}\0${slot.id}\0`, 'utf8'), vaultId])
}

async function slotKey (secret: Buffer, kdf: KeySlot['kdf']): Promise<Buffer> {
  if (kdf.name !== 'argon2id' || kdf.version !== 19) throw new KeySlotError(`The key slot uses ${String(kdf.name)} version ${String(kdf.version)}; this smtorp knows only argon2id version 19.`)
  return await argon2.hash(secret, {
    type: argon2.argon2id,
    raw: true,
    hashLength: 32,
    salt: Buffer.from(kdf.salt, 'base64'),
    memoryCost: kdf.memoryKiB,
    timeCost: kdf.iterations,
    parallelism: kdf.parallelism
  })
}

export async function makeSlot (id: number, type: SlotType, secret: Buffer, master: Buffer, vaultId: Buffer, params: Argon2idParams): Promise<KeySlot> {
  const kdf = { name: 'argon2id' as const, version: 19 as const, ...params, salt: randomBytes(16).toString('base64') }
  const kek = await slotKey(secret, kdf)
  try {
    return { id, type, kdf, wrappedKey: seal(kek, master, slotAssociatedData(vaultId, { id, type })).toString('base64') }
  } finally {
    kek.fill(0)
  }
}

/**
 * The master key from the first slot of `type` that `secret` opens. Every slot of that type is
 * tried, even after a match, so the time taken does not say which slot (if any) matched.
 */
export async function openSlots (file: KeySlotsFile, type: SlotType, secret: Buffer): Promise<Buffer> {
  const vaultId = Buffer.from(file.vaultId, 'base64')
  let master: Buffer | undefined
  const slots = file.slots.filter(s => s.type === type)
  if (slots.length === 0) throw new KeySlotError(`The vault has no ${type} slot.`)
  for (const slot of slots) {
    const kek = await slotKey(secret, slot.kdf)
    try {
      const key = open(kek, Buffer.from(slot.wrappedKey, 'base64'), slotAssociatedData(vaultId, slot))
      master ??= key
    } catch (err) {
      if (!(err instanceof TamperError)) throw err
    } finally {
      kek.fill(0)
    }
  }
  if (master === undefined) throw new WrongSecretError(type === 'passphrase' ? 'Wrong passphrase.' : 'Wrong recovery code.')
  return master
}

function checksumOf (file: KeySlotsFile): string {
  const { checksum: _ignored, ...rest } = file
  return createHash('sha256').update(JSON.stringify(rest)).digest('hex')
}

function parseCopy (text: string, name: string): KeySlotsFile {
  let file: KeySlotsFile
  try {
    file = JSON.parse(text) as KeySlotsFile
  } catch {
    throw new KeySlotError(`${name} is not valid JSON.`)
  }
  if (file.format !== KEY_SLOTS_FORMAT) throw new KeySlotError(`${name} is not a key slots file.`)
  if (file.version !== KEY_SLOTS_VERSION) throw new KeySlotError(`${name} has version ${String(file.version)}; this smtorp reads version ${KEY_SLOTS_VERSION}.`)
  if (file.checksum !== checksumOf(file)) throw new KeySlotError(`${name} is damaged (checksum mismatch).`)
  return file
}

/**
 * Read both copies; use the valid one with the higher generation, and rewrite the other if it
 * is missing, damaged or older. Undefined when neither copy exists (no vault yet).
 */
export async function readKeySlots (dir: string): Promise<KeySlotsFile | undefined> {
  const copies: KeySlotsFile[] = []
  const problems: string[] = []
  let found = 0
  for (const name of [KEY_SLOTS_FILE, KEY_SLOTS_BACKUP_FILE]) {
    let text: string
    try {
      text = await readFile(join(dir, name), 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue
      throw err
    }
    found++
    try {
      copies.push(parseCopy(text, name))
    } catch (err) {
      problems.push((err as Error).message)
    }
  }
  if (found === 0) return undefined
  const best = copies.sort((a, b) => b.generation - a.generation)[0]
  if (best === undefined) throw new KeySlotError(`Both copies of the key slots are unreadable: ${problems.join(' ')}`)
  if (copies.length < 2 || copies[1]!.generation !== best.generation) await writeKeySlots(dir, best)
  return best
}

/** Write both copies durably, the main one first; a crash between them leaves one valid copy of each generation. */
export async function writeKeySlots (dir: string, file: KeySlotsFile): Promise<void> {
  const text = (f: KeySlotsFile): string => JSON.stringify({ ...f, checksum: checksumOf(f) }, null, 2) + '\n'
  const { checksum: _ignored, ...content } = file
  await writeFileDurably(join(dir, KEY_SLOTS_FILE), text(content))
  await writeFileDurably(join(dir, KEY_SLOTS_BACKUP_FILE), text(content))
}

// Recovery codes: 20 random bytes (160 bits), base32, in eight groups of four, e.g.
// "ABCD-EFGH-...". Input is accepted in any case, with or without spaces and dashes.
const RECOVERY_BYTES = 20

export function newRecoveryCode (): string {
  return formatRecoveryCode(randomBytes(RECOVERY_BYTES))
}

export function formatRecoveryCode (bytes: Buffer): string {
  return base32Encode(bytes).toUpperCase().match(/.{4}/g)!.join('-')
}

/** The 20 secret bytes of a recovery code, or a KeySlotError saying what is wrong with it. */
export function parseRecoveryCode (code: string): Buffer {
  const compact = code.replace(/[\s-]/g, '').toLowerCase()
  if (compact.length !== 32 || !/^[a-z2-7]+$/.test(compact)) {
    throw new KeySlotError('That is not a recovery code: it has 32 letters and digits 2-7, in groups of four.')
  }
  return base32Decode(compact)
}
