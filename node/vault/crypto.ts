// The vault's symmetric cryptography, in standard constructions only (spec/storage.md, "Keys"):
// - HKDF-SHA256 (RFC 5869) derives every key from the master key;
// - AES-256-GCM (NIST SP 800-38D) seals every stored value, with a fresh random 96-bit nonce
//   per seal and associated data that binds the ciphertext to what it is (its kind, its id and
//   the format version), so a value moved to another place or another object fails to open;
// - HMAC-SHA256 (RFC 2104) gives opaque, keyed names for things whose plain name would leak
//   (search terms).
import { createCipheriv, createDecipheriv, createHmac, createSecretKey, hkdfSync, randomBytes, type KeyObject } from 'node:crypto'

export const SEAL_VERSION = 1
const NONCE_BYTES = 12
const TAG_BYTES = 16
/** Bytes a sealed value adds to its plaintext: version, nonce and tag. */
export const SEAL_OVERHEAD = 1 + NONCE_BYTES + TAG_BYTES

/** A ciphertext failed to open: it was changed, moved, or sealed under another key. */
export class TamperError extends Error {
  override name = 'TamperError'
}

// Keys are held as Buffers (so lock can overwrite them) and wrapped in a KeyObject for each
// call: Node 24 validates a raw Buffer key by throwing and catching internally, which made
// every createCipheriv cost about 25 us against 3 us with a KeyObject (bench/RESULTS.md).
function keyObject (key: Uint8Array): KeyObject {
  return createSecretKey(key)
}

/** HKDF-SHA256 with the vault id as salt and a purpose label as info. */
export function deriveKey (key: Uint8Array, salt: Uint8Array, info: string | Uint8Array, length = 32): Buffer {
  return Buffer.from(hkdfSync('sha256', keyObject(key), salt, typeof info === 'string' ? Buffer.from(info, 'utf8') : info, length))
}

/** version (1) | nonce (12) | AES-256-GCM ciphertext | tag (16) */
export function seal (key: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Buffer {
  const nonce = randomBytes(NONCE_BYTES)
  const cipher = createCipheriv('aes-256-gcm', keyObject(key), nonce)
  cipher.setAAD(aad)
  const body = cipher.update(plaintext)
  const final = cipher.final()
  return Buffer.concat([Buffer.of(SEAL_VERSION), nonce, body, final, cipher.getAuthTag()])
}

export function open (key: Uint8Array, sealed: Uint8Array, aad: Uint8Array): Buffer {
  if (sealed.byteLength < SEAL_OVERHEAD) throw new TamperError('The sealed value is too short.')
  if (sealed[0] !== SEAL_VERSION) throw new TamperError(`Unknown sealed value version ${sealed[0]}.`)
  const bytes = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength)
  const nonce = bytes.subarray(1, 1 + NONCE_BYTES)
  const tag = bytes.subarray(bytes.length - TAG_BYTES)
  const decipher = createDecipheriv('aes-256-gcm', keyObject(key), nonce)
  decipher.setAAD(aad)
  decipher.setAuthTag(tag)
  const body = decipher.update(bytes.subarray(1 + NONCE_BYTES, bytes.length - TAG_BYTES))
  try {
    return Buffer.concat([body, decipher.final()])
  } catch {
    // OpenSSL compares the tag in constant time; all we learn is that it did not match.
    throw new TamperError('The sealed value does not authenticate: it was changed, moved or sealed under another key.')
  }
}

/** Associated data: "smtorp-vault-1" NUL kind NUL id, so every ciphertext is bound to its place. */
export function associatedData (kind: string, id: Uint8Array | string): Buffer {
  return Buffer.concat([Buffer.from(`smtorp-vault-${SEAL_VERSION}\0${kind}\0`, 'utf8'), typeof id === 'string' ? Buffer.from(id, 'utf8') : id])
}

export function mac (key: Uint8Array, data: Uint8Array | string, length = 16): Buffer {
  return createHmac('sha256', keyObject(key)).update(data).digest().subarray(0, length)
}

/**
 * The keys of an unlocked vault, all derived from the master key (HKDF info labels in
 * spec/storage.md). Message bodies get one key per object, derived from `object` and the
 * object id; small index records share a key per kind and rely on random nonces (far below
 * the 2^32 seals per key that random 96-bit nonces allow).
 */
export class VaultKeys {
  readonly object: Buffer
  readonly record: Buffer
  readonly searchTerm: Buffer
  readonly searchPostings: Buffer
  readonly queue: Buffer
  readonly arrivalKey: Buffer

  constructor (master: Uint8Array, vaultId: Uint8Array) {
    const derive = (purpose: string): Buffer => deriveKey(master, vaultId, `smtorp vault v1 ${purpose}`)
    this.object = derive('object')
    this.record = derive('record')
    this.searchTerm = derive('search term')
    this.searchPostings = derive('search postings')
    this.queue = derive('queue')
    this.arrivalKey = derive('arrival key')
  }

  objectKey (objectId: Uint8Array): Buffer {
    return deriveKey(this.object, Buffer.alloc(0), Buffer.concat([Buffer.from('smtorp vault v1 object key\0'), objectId]))
  }

  /** Overwrite every key, so a locked vault leaves nothing usable in memory it owns. */
  wipe (): void {
    for (const key of [this.object, this.record, this.searchTerm, this.searchPostings, this.queue, this.arrivalKey]) key.fill(0)
  }
}
