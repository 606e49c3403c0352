// The Reed-Solomon erasure codec interface: k data shards and m parity shards over GF(2^8).
//
// Contract (every implementation holds it; erasure.test.ts checks it):
// - `encode(data, k, m)` pads `data` with zeros to k * shardSize(data.length, k) bytes, cuts it
//   into k data shards and computes m parity shards; it returns the k + m shards in order.
// - `reconstruct(shards, k, m)` takes k + m slots, the missing or damaged ones `undefined`,
//   and returns all k + m shards with the missing ones rebuilt; with more than m missing it
//   throws an ErasureError.
// - Implementations need NOT compute the same code (the two here do not; index.ts): shards are
//   rebuilt only with the codec that wrote them.
export interface ErasureCodec {
  readonly name: 'native' | 'wasm'
  encode (data: Uint8Array, k: number, m: number): Promise<Buffer[]>
  reconstruct (shards: ReadonlyArray<Buffer | undefined>, k: number, m: number): Promise<Buffer[]>
}

export class ErasureError extends Error {
  override name = 'ErasureError'
}

/** Bytes per shard for an object of `length` bytes cut into k data shards: a multiple of 8, at least 8. */
export function shardSize (length: number, k: number): number {
  const perShard = Math.ceil(Math.max(length, 1) / k)
  return Math.ceil(perShard / 8) * 8
}
