// The shard an owner stores on a friend's node, and the audit challenges that check the
// friend still holds it (spec/backup.md part 3, sections 16 and 17). Pure: no disk, no network.
//
//   stored shard = header (17 bytes) | shard bytes | MAC (32 bytes)
//   header       = version (0x01) | codec (0x01 = wasm Reed-Solomon) | k | m | index |
//                  blob length (4 bytes, big-endian) | put id (8 bytes)
//   MAC          = HMAC-SHA256(shard key, header | len(name) (1 byte) | name (ASCII) | shard bytes)
//   shard key    = HKDF-SHA256(key, salt: none, info: "smtorp friend shard v1", 32 bytes)
//
// The put id is the same in every shard of one put and differs between puts (6 bytes of
// milliseconds since 1970, big-endian, then 2 random bytes): shards of two versions of a blob
// are never mixed in a reconstruction, and without a placement record the newest is chosen.
//
//   audit key    = HKDF-SHA256(key, salt: none, info: "smtorp friend audit v1", 32 bytes)
//   nonce j      = HMAC-SHA256(audit key, "<name>|<wire index>|<generation>|<j>")[0..16]
//   answer       = SHA-256(nonce | stored shard)[0..16]
import { createHash, createHmac, hkdfSync, timingSafeEqual } from 'node:crypto'

export const FRIEND_SHARD_VERSION = 1
export const FRIEND_SHARD_CODECS = { wasm: 1 } as const
export type FriendShardCodec = keyof typeof FRIEND_SHARD_CODECS
export const SHARD_HEADER_BYTES = 17
export const SHARD_MAC_BYTES = 32
export const PUT_ID_BYTES = 8
export const AUDIT_NONCE_BYTES = 16
export const AUDIT_ANSWER_BYTES = 16
/** Wire index = slot * SLOT_WIDTH + erasure index: a new version goes to the other slot. */
export const SLOT_WIDTH = 16

export interface ShardHeader {
  codec: FriendShardCodec
  /** Data shards */
  k: number
  /** Parity shards */
  m: number
  /** This shard's erasure index, 0 .. k + m - 1 */
  index: number
  /** The blob's length in bytes */
  length: number
  putId: Buffer
}

export class FriendShardError extends Error {
  override name = 'FriendShardError'
}

export function shardKey (key: Uint8Array): Buffer {
  return Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), Buffer.from('smtorp friend shard v1'), 32))
}

export function auditKey (key: Uint8Array): Buffer {
  return Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), Buffer.from('smtorp friend audit v1'), 32))
}

export function encodeShardHeader (h: ShardHeader): Buffer {
  if (![h.k, h.m, h.index].every(x => Number.isInteger(x) && x >= 0 && x <= 255) || h.index >= h.k + h.m) throw new FriendShardError('k, m and index do not fit a shard header')
  if (!Number.isInteger(h.length) || h.length < 0 || h.length > 0xffffffff) throw new FriendShardError('the blob length does not fit a shard header')
  if (h.putId.length !== PUT_ID_BYTES) throw new FriendShardError(`a put id is ${PUT_ID_BYTES} bytes`)
  const out = Buffer.alloc(SHARD_HEADER_BYTES)
  out[0] = FRIEND_SHARD_VERSION
  out[1] = FRIEND_SHARD_CODECS[h.codec]
  out[2] = h.k
  out[3] = h.m
  out[4] = h.index
  out.writeUInt32BE(h.length, 5)
  h.putId.copy(out, 9)
  return out
}

export function decodeShardHeader (bytes: Uint8Array): ShardHeader {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (b.length < SHARD_HEADER_BYTES) throw new FriendShardError('a stored shard is shorter than its header')
  if (b[0] !== FRIEND_SHARD_VERSION) throw new FriendShardError(`shard header version ${b[0]} is not ${FRIEND_SHARD_VERSION}`)
  if (b[1] !== FRIEND_SHARD_CODECS.wasm) throw new FriendShardError(`shard codec ${b[1]} is unknown`)
  const h: ShardHeader = { codec: 'wasm', k: b[2]!, m: b[3]!, index: b[4]!, length: b.readUInt32BE(5), putId: Buffer.from(b.subarray(9, 17)) }
  if (h.k < 1 || h.index >= h.k + h.m) throw new FriendShardError('the shard header\'s k, m and index do not agree')
  return h
}

function mac (key: Uint8Array, header: Uint8Array, name: string, data: Uint8Array): Buffer {
  if (!/^[0-9a-f]{1,64}$/.test(name)) throw new FriendShardError('a blob name is 1 to 64 lowercase hex characters')
  return createHmac('sha256', key).update(header).update(Buffer.of(name.length)).update(name, 'ascii').update(data).digest()
}

/** header | data | MAC */
export function sealShard (key: Uint8Array, header: ShardHeader, name: string, data: Uint8Array): Buffer {
  const h = encodeShardHeader(header)
  return Buffer.concat([h, data, mac(key, h, name, data)])
}

/** Checks the MAC of a stored shard of the blob `name`; throws FriendShardError if it does not authenticate. */
export function openShard (key: Uint8Array, name: string, stored: Uint8Array): { header: ShardHeader, data: Buffer } {
  const b = Buffer.from(stored.buffer, stored.byteOffset, stored.byteLength)
  if (b.length < SHARD_HEADER_BYTES + SHARD_MAC_BYTES) throw new FriendShardError('a stored shard is too short')
  const h = b.subarray(0, SHARD_HEADER_BYTES)
  const data = b.subarray(SHARD_HEADER_BYTES, b.length - SHARD_MAC_BYTES)
  const expected = mac(key, h, name, data)
  if (!timingSafeEqual(expected, b.subarray(b.length - SHARD_MAC_BYTES))) throw new FriendShardError(`a shard of ${name} does not authenticate: it was altered`)
  return { header: decodeShardHeader(h), data: Buffer.from(data) }
}

export function auditNonce (key: Uint8Array, name: string, wireIndex: number, generation: number, j: number): Buffer {
  return createHmac('sha256', key).update(`${name}|${wireIndex}|${generation}|${j}`, 'ascii').digest().subarray(0, AUDIT_NONCE_BYTES)
}

export function auditAnswer (nonce: Uint8Array, stored: Uint8Array): Buffer {
  return createHash('sha256').update(nonce).update(stored).digest().subarray(0, AUDIT_ANSWER_BYTES)
}

/** The meta string a friend keeps with the shard, for a restore without a placement record: "1:k:m:length:putid". */
export function shardMeta (h: ShardHeader): string {
  return `${FRIEND_SHARD_VERSION}:${h.k}:${h.m}:${h.length}:${h.putId.toString('hex')}`
}

export function parseShardMeta (meta: string): Omit<ShardHeader, 'index' | 'codec'> | undefined {
  const m = /^1:(\d{1,3}):(\d{1,3}):(\d{1,10}):([0-9a-f]{16})$/.exec(meta)
  if (m === null) return undefined
  return { k: Number(m[1]), m: Number(m[2]), length: Number(m[3]), putId: Buffer.from(m[4]!, 'hex') }
}
