// The recovery share record, format version 1 (spec/recovery.md): one share of a secret split
// t-of-n with Shamir's scheme over GF(2^8) (the `shamir-secret-sharing` package), as a
// custodian stores it and as a person could paste it. All integers are one byte.
//
//    0   1  format version = 1
//    1  16  share-set id (random, the same in every share of one split)
//   17   1  threshold t (2 .. 16)
//   18   1  count n (t .. 16)
//   19   1  share index i (1 .. n): which of the n shares this is, for naming it
//   20   1  secret length L (1 .. 255)
//   21  16  check value of the secret (checkValue below), the same in every share of one split
//   37 L+1  the share: L bytes y, then its x coordinate (1 .. 255), as shamir-secret-sharing makes it
// 38+L   4  digest: SHA-256 of bytes 0 .. 37+L, first 4 bytes
//
// The digest catches accidental damage (a typo in pasted text, a flipped bit) at parse time;
// it is not a MAC, anyone can recompute it. Forgery is caught by the check value, when the
// shares are combined (node/recovery/shares.ts).
//
// Text form: "smtorp-share-1:" then the record in base64url (RFC 4648 section 5), no padding.
// This module is pure: no disk, no network, no logging.
import { createHash, createHmac, hkdfSync } from 'node:crypto'

export const SHARE_VERSION = 1
export const SHARE_TEXT_PREFIX = `smtorp-share-${SHARE_VERSION}:`
export const SET_ID_BYTES = 16
export const CHECK_BYTES = 16
export const DIGEST_BYTES = 4
/** Most shares in one split; keeps the combiner's search over subsets small (C(16, 8) = 12,870). */
export const MAX_SHARES = 16
export const MIN_THRESHOLD = 2
const HEADER_BYTES = 1 + SET_ID_BYTES + 1 + 1 + 1 + 1 + CHECK_BYTES
/** HKDF info of the check key (spec/recovery.md, "Check value"). */
export const CHECK_INFO = 'smtorp recovery check v1'

export interface RecoveryShare {
  setId: Buffer
  threshold: number
  count: number
  /** 1 .. count */
  index: number
  /** CHECK_BYTES: checkValue(secret, setId) */
  check: Buffer
  /** The shamir-secret-sharing share: secret length + 1 bytes, the last one the x coordinate. */
  share: Buffer
}

/** A share record or its text does not parse; the message says what is wrong with it. */
export class ShareFormatError extends Error {
  override name = 'ShareFormatError'
}

/**
 * The check value of a split secret:
 *   K     = HKDF-SHA256(IKM = secret, salt = share-set id, info = "smtorp recovery check v1", L = 32)
 *   check = HMAC-SHA256(K, "check"), first 16 bytes
 * HKDF and HMAC-SHA256 are pseudorandom functions of a secret key: for a secret with 256 bits of
 * entropy the value says nothing about it beyond allowing a guess of the whole secret to be
 * tested, and the set id as salt makes it differ between splits of the same secret.
 */
export function checkValue (secret: Uint8Array, setId: Uint8Array): Buffer {
  if (setId.byteLength !== SET_ID_BYTES) throw new RangeError(`A share-set id has ${SET_ID_BYTES} bytes.`)
  const key = Buffer.from(hkdfSync('sha256', secret, setId, Buffer.from(CHECK_INFO, 'utf8'), 32))
  try {
    return createHmac('sha256', key).update('check', 'utf8').digest().subarray(0, CHECK_BYTES)
  } finally {
    key.fill(0)
  }
}

/** The problem with a share's fields, or undefined when they are valid for format 1. */
function fieldProblem (s: RecoveryShare): string | undefined {
  if (s.setId.length !== SET_ID_BYTES) return `its share-set id has ${s.setId.length} bytes, not ${SET_ID_BYTES}`
  if (!Number.isInteger(s.threshold) || s.threshold < MIN_THRESHOLD || s.threshold > MAX_SHARES) return `its threshold ${s.threshold} is not between ${MIN_THRESHOLD} and ${MAX_SHARES}`
  if (!Number.isInteger(s.count) || s.count < s.threshold || s.count > MAX_SHARES) return `its count ${s.count} is not between the threshold ${s.threshold} and ${MAX_SHARES}`
  if (!Number.isInteger(s.index) || s.index < 1 || s.index > s.count) return `its index ${s.index} is not between 1 and the count ${s.count}`
  if (s.check.length !== CHECK_BYTES) return `its check value has ${s.check.length} bytes, not ${CHECK_BYTES}`
  if (s.share.length < 2 || s.share.length > 256) return `its share has ${s.share.length} bytes, not 2 to 256`
  if (s.share[s.share.length - 1] === 0) return 'its x coordinate is 0, which would be the secret itself'
  return undefined
}

export function encodeShare (s: RecoveryShare): Buffer {
  const problem = fieldProblem(s)
  if (problem !== undefined) throw new ShareFormatError(`The share cannot be encoded: ${problem}.`)
  const secretLength = s.share.length - 1
  const body = Buffer.alloc(HEADER_BYTES + s.share.length)
  body[0] = SHARE_VERSION
  s.setId.copy(body, 1)
  body[17] = s.threshold
  body[18] = s.count
  body[19] = s.index
  body[20] = secretLength
  s.check.copy(body, 21)
  s.share.copy(body, HEADER_BYTES)
  return Buffer.concat([body, digest(body)])
}

export function decodeShare (bytes: Uint8Array): RecoveryShare {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (b.length < 1) throw new ShareFormatError('The share is empty.')
  if (b[0] !== SHARE_VERSION) throw new ShareFormatError(`The share has format version ${b[0]}; this smtorp reads version ${SHARE_VERSION}.`)
  if (b.length < HEADER_BYTES) throw new ShareFormatError(`The share is ${b.length} bytes, too short for a share record.`)
  const secretLength = b[20]!
  const expected = HEADER_BYTES + secretLength + 1 + DIGEST_BYTES
  if (b.length !== expected) throw new ShareFormatError(`The share is ${b.length} bytes; a share of a ${secretLength}-byte secret has ${expected}.`)
  const body = b.subarray(0, expected - DIGEST_BYTES)
  if (!digest(body).equals(b.subarray(expected - DIGEST_BYTES))) throw new ShareFormatError('The share is damaged: its digest does not match (a typo, or changed bytes).')
  const s: RecoveryShare = {
    setId: Buffer.from(b.subarray(1, 17)),
    threshold: b[17]!,
    count: b[18]!,
    index: b[19]!,
    check: Buffer.from(b.subarray(21, HEADER_BYTES)),
    share: Buffer.from(b.subarray(HEADER_BYTES, HEADER_BYTES + secretLength + 1))
  }
  const problem = fieldProblem(s)
  if (problem !== undefined) throw new ShareFormatError(`The share is not valid: ${problem}.`)
  return s
}

export function formatShare (s: RecoveryShare): string {
  return SHARE_TEXT_PREFIX + encodeShare(s).toString('base64url')
}

/** The share in `text`; white space anywhere (a wrapped line) is ignored. */
export function parseShare (text: string): RecoveryShare {
  const compact = text.replace(/\s+/g, '')
  const prefix = /^smtorp-share-([0-9]+):/.exec(compact)
  if (prefix === null) throw new ShareFormatError(`That is not a recovery share: it begins with "${SHARE_TEXT_PREFIX}".`)
  if (prefix[0] !== SHARE_TEXT_PREFIX) throw new ShareFormatError(`The share has text version ${prefix[1]}; this smtorp reads version ${SHARE_VERSION}.`)
  const payload = compact.slice(prefix[0].length)
  // Node's base64url decoder skips characters outside the alphabet; refuse them instead.
  if (!/^[A-Za-z0-9_-]+$/.test(payload)) throw new ShareFormatError('The share holds characters outside base64url (A-Z, a-z, 0-9, "-", "_").')
  if (payload.length % 4 === 1) throw new ShareFormatError('The share\'s base64url text has an impossible length: a character is missing or extra.')
  const bytes = Buffer.from(payload, 'base64url')
  // Refuse non-canonical text (stray bits in the last character), so one share has one text.
  if (bytes.toString('base64url') !== payload) throw new ShareFormatError('The share\'s base64url text is not canonical: its last character is wrong.')
  return decodeShare(bytes)
}

function digest (body: Buffer): Buffer {
  return createHash('sha256').update(body).digest().subarray(0, DIGEST_BYTES)
}
