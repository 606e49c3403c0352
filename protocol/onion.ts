// Tor v3 onion addresses and keys (Tor rend-spec-v3, section "Encoding onion addresses").
//
//   onion_address = base32(PUBKEY | CHECKSUM | VERSION) + ".onion"
//   CHECKSUM      = SHA3-256(".onion checksum" | PUBKEY | VERSION)[:2]
//   VERSION       = 0x03
//
// The node keeps the 32-byte Ed25519 seed (RFC 8032 private key). From it we derive
// the public key for signing with standard Ed25519, and the 64-byte "expanded" secret
// key tor wants in `ADD_ONION ED25519-V3:<base64>` (SHA-512 of the seed, clamped).
import { createHash, createPrivateKey, createPublicKey, sign, verify, randomBytes, type KeyObject } from 'node:crypto'
import { base32Encode, base32Decode } from './base32.ts'

const ONION_VERSION = 0x03
const CHECKSUM_PREFIX = Buffer.from('.onion checksum', 'ascii')
// DER prefixes of PKCS#8 and SPKI wrappers for a raw Ed25519 key (RFC 8410).
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex')
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')

export class OnionAddressError extends Error {
  override name = 'OnionAddressError'
}

export interface OnionKey {
  /** 32-byte RFC 8032 private key (seed). Secret. */
  seed: Buffer
  /** 32-byte Ed25519 public key. */
  publicKey: Buffer
  /** 56 characters, lowercase, without ".onion". */
  address: string
}

function checksum (publicKey: Buffer): Buffer {
  return createHash('sha3-256')
    .update(CHECKSUM_PREFIX).update(publicKey).update(Buffer.from([ONION_VERSION]))
    .digest().subarray(0, 2)
}

/** The 56-character onion label (no ".onion") of an Ed25519 public key. */
export function onionAddressFromPublicKey (publicKey: Buffer): string {
  if (publicKey.length !== 32) throw new OnionAddressError('an Ed25519 public key has 32 bytes')
  return base32Encode(Buffer.concat([publicKey, checksum(publicKey), Buffer.from([ONION_VERSION])]))
}

/**
 * The public key inside a v3 onion label, after checking its checksum and version.
 * Accepts the label with or without ".onion", in any case.
 */
export function publicKeyFromOnionAddress (address: string): Buffer {
  const label = address.toLowerCase().replace(/\.onion$/, '')
  if (!/^[a-z2-7]{56}$/.test(label)) throw new OnionAddressError('a v3 onion address has 56 base32 characters')
  const bytes = base32Decode(label)
  const publicKey = bytes.subarray(0, 32)
  if (bytes[34] !== ONION_VERSION) throw new OnionAddressError('onion address version is not 3')
  if (!checksum(publicKey).equals(bytes.subarray(32, 34))) throw new OnionAddressError('onion address checksum does not match')
  return Buffer.from(publicKey)
}

export function isOnionAddress (address: string): boolean {
  try {
    publicKeyFromOnionAddress(address)
    return true
  } catch {
    return false
  }
}

function privateKeyObject (seed: Buffer): KeyObject {
  if (seed.length !== 32) throw new OnionAddressError('an Ed25519 seed has 32 bytes')
  return createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: 'der', type: 'pkcs8' })
}

function publicKeyObject (publicKey: Buffer): KeyObject {
  return createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, publicKey]), format: 'der', type: 'spki' })
}

export function onionKeyFromSeed (seed: Buffer): OnionKey {
  const spki = createPublicKey(privateKeyObject(seed)).export({ format: 'der', type: 'spki' })
  const publicKey = Buffer.from(spki.subarray(SPKI_ED25519_PREFIX.length))
  return { seed: Buffer.from(seed), publicKey, address: onionAddressFromPublicKey(publicKey) }
}

export function generateOnionKey (): OnionKey {
  return onionKeyFromSeed(randomBytes(32))
}

/**
 * The 64-byte expanded secret key tor uses (ed25519 "ref10" format): SHA-512 of the
 * seed with the scalar half clamped as RFC 8032 5.1.5 says. This is what
 * `ADD_ONION ED25519-V3:` takes, base64-encoded.
 */
export function expandedSecretKey (seed: Buffer): Buffer {
  if (seed.length !== 32) throw new OnionAddressError('an Ed25519 seed has 32 bytes')
  const h = createHash('sha512').update(seed).digest()
  h[0] = h[0]! & 248
  h[31] = (h[31]! & 127) | 64
  return h
}

/** Standard Ed25519 (RFC 8032) signature with the onion's key. */
export function signWithOnionKey (seed: Buffer, message: Buffer): Buffer {
  return sign(null, message, privateKeyObject(seed))
}

// The y coordinates of the 8 points of small order on edwards25519: 1 (order 1), p-1 (order 2),
// 0 (order 4) and the order-8 pair. An Ed25519 public key that is one of these points (in any
// encoding, x sign bit and y >= p included) lets anyone forge signatures: with R a small-order
// point and S = 0, RFC 8032 5.1.7 verification passes for many messages (for the identity, for
// all), and OpenSSL does not refuse such keys. Tor refuses them as onion keys too.
const FIELD_P = 2n ** 255n - 19n
const Y_ORDER_8 = 0x05fc536d880238b13933c6d305acdfd5f098eff289f4c345b027b2c28f95e826n
const SMALL_ORDER_Y = new Set([0n, 1n, FIELD_P - 1n, Y_ORDER_8, FIELD_P - Y_ORDER_8])

/** Whether a 32-byte Ed25519 public key encodes a point of small order (a forgeable key). */
export function isSmallOrderPublicKey (publicKey: Buffer): boolean {
  if (publicKey.length !== 32) return false
  const y = BigInt(`0x${Buffer.from(publicKey).reverse().toString('hex')}`) & ((1n << 255n) - 1n)
  return SMALL_ORDER_Y.has(y % FIELD_P)
}

export function verifyOnionSignature (publicKey: Buffer, message: Buffer, signature: Buffer): boolean {
  if (publicKey.length !== 32 || signature.length !== 64) return false
  if (isSmallOrderPublicKey(publicKey)) return false
  try {
    return verify(null, message, publicKeyObject(publicKey), signature)
  } catch {
    return false
  }
}
