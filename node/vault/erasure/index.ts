// Reed-Solomon erasure coding for the vault, from two libraries that compute DIFFERENT codes:
// - 'wasm' (reed-solomon-erasure, WebAssembly): Backblaze's Vandermonde construction over
//   GF(2^8) with polynomial 0x11D, the code klauspost/reedsolomon and Backblaze's
//   JavaReedSolomon also write. It is documented in spec/storage.md, so another implementation
//   can rebuild our shards: it is the vault's default.
// - 'native' (@ronomon/reed-solomon): a Cauchy bit-matrix code whose field and packet size
//   depend on k, m and the shard size; about 3.5x faster (bench/RESULTS.md), but defined only by
//   that library's source. A vault may be created with it; it then needs it to rebuild.
// A store records its codec (shards/CODEC); one is never used to rebuild the other's shards.
import { ErasureError, type ErasureCodec } from './codec.ts'
import { nativeErasureCodec } from './native.ts'
import { wasmErasureCodec } from './wasm.ts'

export { ErasureError, shardSize, type ErasureCodec } from './codec.ts'
export { MAX_DATA_SHARDS, MAX_PARITY_SHARDS } from './check-arguments.ts'

export type CodecName = 'native' | 'wasm'

/** The codec of that name; an ErasureError says why the native addon does not load. */
export function erasureCodec (name: CodecName = 'wasm'): ErasureCodec {
  return name === 'native' ? nativeErasureCodec() : wasmErasureCodec()
}
