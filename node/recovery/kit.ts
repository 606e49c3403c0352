// The recovery kit (spec/recovery.md part 2, "Kit"): what a new machine needs, besides the
// master key, to bring the node back from its friends or its IMAP account: the onion key (the
// node's address and its libp2p identity, which friends know it by), the vault id (the salt of
// the backup key), the friends and the IMAP settings. Every custodian holds the kit next to its
// share; it is sealed with AES-256-GCM under HKDF-SHA256(master key, salt = the split's set id,
// info "smtorp recovery kit v1"), associated data "recovery kit" | set id, so a custodian
// holds ciphertext, and only t custodians together can open it.
import type { ImapBackupConfig } from '../config/index.ts'
import { associatedData, deriveKey, open, seal, TamperError } from '../vault/crypto.ts'

export const KIT_FORMAT = 1
const KIT_INFO = 'smtorp recovery kit v1'

export interface KitFriend {
  onion: string
  name: string
  quotaForThem: number
  quotaFromThem: number
  /** Tests and LAN set-ups only. */
  dial?: string
}

/** The IMAP backup settings (config backup.imap) without its schedule. */
export type KitImap = Pick<ImapBackupConfig, 'host' | 'port' | 'security' | 'user' | 'password' | 'folder' | 'viaTor'>

export interface KitContents {
  format: number
  /** base64 of identity/onion.seed */
  onionSeed: string
  /** base64, as in the key slots */
  vaultId: string
  friends: KitFriend[]
  imap?: KitImap
}

export class KitError extends Error {
  override name = 'KitError'
}

function kitKey (master: Uint8Array, setId: Uint8Array): Buffer {
  return deriveKey(master, setId, KIT_INFO)
}

export function sealKit (master: Uint8Array, setId: Uint8Array, kit: KitContents): Buffer {
  const key = kitKey(master, setId)
  try {
    return seal(key, Buffer.from(JSON.stringify(kit), 'utf8'), associatedData('recovery kit', setId))
  } finally {
    key.fill(0)
  }
}

/** Opens a kit with the rebuilt master key; KitError when it does not open or is not a kit. */
export function openKit (master: Uint8Array, setId: Uint8Array, sealed: Uint8Array): KitContents {
  const key = kitKey(master, setId)
  let plain: Buffer
  try {
    plain = open(key, sealed, associatedData('recovery kit', setId))
  } catch (err) {
    if (err instanceof TamperError) throw new KitError('The recovery kit does not open with the rebuilt key: it was altered, or it belongs to another split.')
    throw err
  } finally {
    key.fill(0)
  }
  let kit: KitContents
  try {
    kit = JSON.parse(plain.toString('utf8')) as KitContents
  } catch {
    throw new KitError('The recovery kit is not JSON.')
  }
  if (kit.format !== KIT_FORMAT || typeof kit.onionSeed !== 'string' || typeof kit.vaultId !== 'string' || !Array.isArray(kit.friends)) {
    throw new KitError(`The recovery kit is not of format ${KIT_FORMAT}.`)
  }
  return kit
}
