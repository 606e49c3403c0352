// Argument checks shared by the codecs, so both refuse the same inputs in the same words
// before either library sees them (the addon would throw terse strings like "sources < k",
// the WebAssembly one would return a bare result code).
import { ErasureError } from './codec.ts'

// The native addon's limits (@ronomon/reed-solomon MAX_K, MAX_M). The WebAssembly codec could
// go to k + m <= 256 but keeps to these, so every (k, m) one codec accepts the other accepts.
export const MAX_DATA_SHARDS = 24
export const MAX_PARITY_SHARDS = 6

export function checkShardCounts (k: number, m: number): void {
  if (!Number.isInteger(k) || k < 1 || k > MAX_DATA_SHARDS) {
    throw new ErasureError(`k (data shards) must be an integer from 1 to ${MAX_DATA_SHARDS}, not ${k}`)
  }
  if (!Number.isInteger(m) || m < 1 || m > MAX_PARITY_SHARDS) {
    throw new ErasureError(`m (parity shards) must be an integer from 1 to ${MAX_PARITY_SHARDS}, not ${m}`)
  }
}

export interface ShardSlots {
  /** Bytes per shard, the same for every present shard. */
  size: number
  /** Indexes of the undefined slots, in order. */
  missing: number[]
}

/** Checks the k + m slots given to reconstruct() and says which are missing. */
export function checkShardSlots (shards: ReadonlyArray<Uint8Array | undefined>, k: number, m: number): ShardSlots {
  checkShardCounts(k, m)
  if (shards.length !== k + m) {
    throw new ErasureError(`expected k + m = ${k + m} shard slots, got ${shards.length}`)
  }
  const missing: number[] = []
  let size: number | undefined
  shards.forEach((shard, index) => {
    if (shard === undefined) {
      missing.push(index)
      return
    }
    size ??= shard.length
    if (shard.length !== size) {
      throw new ErasureError(`shards differ in size: shard ${index} has ${shard.length} bytes, an earlier one ${size}`)
    }
  })
  if (missing.length > m) {
    throw new ErasureError(`cannot rebuild: ${missing.length} of ${k + m} shards are missing (${missing.join(', ')}) and at most m = ${m} may be`)
  }
  // size is set: at most m of k + m slots are missing and k >= 1.
  if (size === undefined || size === 0 || size % 8 !== 0) {
    throw new ErasureError(`shard size must be a positive multiple of 8 bytes (see shardSize()), not ${size}`)
  }
  return { size, missing }
}
