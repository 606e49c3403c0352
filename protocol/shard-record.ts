// The shard record, format version 1: one per shard, appended to its column's segment file.
// All integers big-endian.
//
//    0   4  magic "SMTS"
//    4   1  format version = 1
//    5   1  k
//    6   1  m
//    7   1  shard index (0 .. k+m-1)
//    8  16  object id
//   24   8  object length in bytes (u64; the data shards, concatenated and cut to this length, are the object)
//   32   4  shard length in bytes (= shardSize(object length, k))
//   36   4  reserved, zero
//   40  32  SHA-256 over bytes 0..39 of this header followed by the shard data
//   72   …  shard data
//
// A record describes itself completely, so a reader can tell a record that belongs to
// another object, another shard index or another store from the one it was sent to, and
// never has to trust an offset alone.
import { createHash } from 'node:crypto'

export const RECORD_MAGIC = Buffer.from('SMTS', 'latin1')
export const RECORD_VERSION = 1
export const HEADER_BYTES = 72

/** What a record must say about itself: the locator's view of it. */
export interface RecordExpectation {
  k: number
  m: number
  index: number
  objectId: Buffer
  objectLength: number
  shardLength: number
}

/** The 72-byte header of a record holding `shard`. */
export function recordHeader (e: RecordExpectation, shard: Uint8Array): Buffer {
  const h = Buffer.alloc(HEADER_BYTES)
  RECORD_MAGIC.copy(h, 0)
  h[4] = RECORD_VERSION
  h[5] = e.k
  h[6] = e.m
  h[7] = e.index
  h.set(e.objectId, 8)
  h.writeBigUInt64BE(BigInt(e.objectLength), 24)
  h.writeUInt32BE(e.shardLength, 32)
  // bytes 36..39 stay zero (reserved)
  recordDigest(h, shard).copy(h, 40)
  return h
}

/**
 * Checks a whole record (header and shard data) against what the locator expects. Returns
 * undefined when it is good, or a short reason saying what is wrong.
 */
export function recordProblem (record: Buffer, e: RecordExpectation): string | undefined {
  if (record.length !== HEADER_BYTES + e.shardLength) return 'wrong record length'
  if (!record.subarray(0, 4).equals(RECORD_MAGIC)) return 'no record magic'
  if (record[4] !== RECORD_VERSION) return `record version ${record[4]}`
  if (record[5] !== e.k || record[6] !== e.m) return `record for k=${record[5]} m=${record[6]}`
  if (record[7] !== e.index) return `record of shard index ${record[7]}`
  if (!record.subarray(8, 24).equals(e.objectId)) return 'object id mismatch'
  if (record.readBigUInt64BE(24) !== BigInt(e.objectLength)) return 'object length mismatch'
  if (record.readUInt32BE(32) !== e.shardLength) return 'shard length mismatch'
  if (record.readUInt32BE(36) !== 0) return 'reserved bytes not zero'
  if (!recordDigest(record, record.subarray(HEADER_BYTES)).equals(record.subarray(40, HEADER_BYTES))) return 'checksum mismatch'
  return undefined
}

function recordDigest (header: Buffer, shard: Uint8Array): Buffer {
  return createHash('sha256').update(header.subarray(0, 40)).update(shard).digest()
}
