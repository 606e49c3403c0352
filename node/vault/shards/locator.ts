// The locator: where the k + m shard records of one object are. The shard store returns it
// from `put`; the vault keeps it in its own index and hands it back to `get`.
//
// Binary layout, version 1 (all integers big-endian), 31 + 12 * (k + m) bytes:
//
//    0   1  locator version = 1
//    1   1  k (data shards, >= 1)
//    2   1  m (parity shards, >= 1; k + m <= 100)
//    3  16  object id
//   19   8  object length in bytes (u64, at most 2^53 - 1)
//   27   4  shard length in bytes (u32; must equal shardSize(object length, k))
//   31  12  per shard index i = 0 .. k+m-1, in order:
//             +0  4  segment number (u32, >= 1) of the record in column i
//             +4  8  offset of the record's first byte in that segment file (u64, at most 2^53 - 1)
//
// The geometry (k, m, lengths) is repeated in every shard record, so a reader checks a
// record against the locator and never trusts either alone.
import { shardSize } from '../erasure/codec.ts'
import { ShardStoreError } from './errors.ts'

export const LOCATOR_VERSION = 1
/** Column directories are named with two digits. */
export const MAX_SHARDS = 100

export interface ShardLocation {
  /** Segment file number in the shard's column (the file `c<NN>/<SSSSSSSS>.seg`). */
  segment: number
  /** Byte offset of the shard record in that file. */
  offset: number
}

export interface Locator {
  objectId: Buffer
  objectLength: number
  shardLength: number
  k: number
  m: number
  /** One entry per shard index; entry i is in column i. */
  shards: ShardLocation[]
}

const FIXED = 31
const PER_SHARD = 12

export function encodeLocator (loc: Locator): Buffer {
  checkLocator(loc)
  const buf = Buffer.alloc(FIXED + PER_SHARD * loc.shards.length)
  buf[0] = LOCATOR_VERSION
  buf[1] = loc.k
  buf[2] = loc.m
  buf.set(loc.objectId, 3)
  buf.writeBigUInt64BE(BigInt(loc.objectLength), 19)
  buf.writeUInt32BE(loc.shardLength, 27)
  loc.shards.forEach((s, i) => {
    buf.writeUInt32BE(s.segment, FIXED + PER_SHARD * i)
    buf.writeBigUInt64BE(BigInt(s.offset), FIXED + PER_SHARD * i + 4)
  })
  return buf
}

export function decodeLocator (buf: Uint8Array): Locator {
  if (!(buf instanceof Uint8Array)) throw new ShardStoreError('A locator must be given as bytes.')
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength)
  if (b.length < FIXED) throw new ShardStoreError(`A locator is at least ${FIXED} bytes; this one is ${b.length}.`)
  if (b[0] !== LOCATOR_VERSION) throw new ShardStoreError(`Unknown locator version ${b[0]}; this version reads ${LOCATOR_VERSION}.`)
  const k = b[1]!
  const m = b[2]!
  const want = FIXED + PER_SHARD * (k + m)
  if (b.length !== want) throw new ShardStoreError(`A locator for k=${k} m=${m} is ${want} bytes; this one is ${b.length}.`)
  const shards: ShardLocation[] = []
  for (let i = 0; i < k + m; i++) {
    shards.push({ segment: b.readUInt32BE(FIXED + PER_SHARD * i), offset: safeNumber(b.readBigUInt64BE(FIXED + PER_SHARD * i + 4), 'offset') })
  }
  const loc: Locator = {
    objectId: Buffer.from(b.subarray(3, 19)),
    objectLength: safeNumber(b.readBigUInt64BE(19), 'object length'),
    shardLength: b.readUInt32BE(27),
    k,
    m,
    shards
  }
  checkLocator(loc)
  return loc
}

/** Throws a ShardStoreError unless `loc` is a well-formed locator (decoded or built by a caller). */
export function checkLocator (loc: Locator): void {
  if (loc == null || typeof loc !== 'object') throw new ShardStoreError('A locator must be an object.')
  const { k, m } = loc
  if (!isCount(k) || !isCount(m) || k + m > MAX_SHARDS) {
    throw new ShardStoreError(`A locator has k=${String(k)} m=${String(m)}; each must be at least 1 and k + m at most ${MAX_SHARDS}.`)
  }
  if (!(loc.objectId instanceof Uint8Array) || loc.objectId.length !== 16) throw new ShardStoreError('A locator\'s object id must be 16 bytes.')
  if (!Number.isSafeInteger(loc.objectLength) || loc.objectLength < 0) throw new ShardStoreError(`A locator has an invalid object length ${String(loc.objectLength)}.`)
  // The shard length follows from the object length; a locator that disagrees was not made by put.
  if (loc.shardLength !== shardSize(loc.objectLength, k)) {
    throw new ShardStoreError(`A locator has shard length ${String(loc.shardLength)}, but an object of ${loc.objectLength} bytes has shards of ${shardSize(loc.objectLength, k)}.`)
  }
  if (loc.shardLength > 0xffffffff) throw new ShardStoreError(`A locator's object of ${loc.objectLength} bytes is too large.`)
  if (!Array.isArray(loc.shards) || loc.shards.length !== k + m) throw new ShardStoreError(`A locator for k=${k} m=${m} must list ${k + m} shards.`)
  loc.shards.forEach((s, i) => {
    if (s == null || !Number.isInteger(s.segment) || s.segment < 1 || s.segment > 0xffffffff || !Number.isSafeInteger(s.offset) || s.offset < 0) {
      throw new ShardStoreError(`A locator has an invalid place for shard ${i}.`)
    }
  })
}

function isCount (n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 1
}

function safeNumber (n: bigint, what: string): number {
  if (n > BigInt(Number.MAX_SAFE_INTEGER)) throw new ShardStoreError(`A locator has an ${what} beyond 2^53 - 1.`)
  return Number(n)
}
