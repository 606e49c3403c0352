// Reed-Solomon erasure coding for the vault: the native addon where it loads, the WebAssembly
// build where it does not. Both load synchronously, so choosing one needs no await.
//
// todo: the two codecs do NOT write the same parity (native.ts and wasm.ts say why;
// erasure.test.ts shows it), so a fallback to WebAssembly cannot rebuild shards the native
// addon wrote, and it does not notice: it returns wrong bytes, not an error. Until one format is
// chosen for the vault, shards must record which codec wrote them.
import { ErasureError, type ErasureCodec } from './codec.ts'
import { nativeErasureCodec } from './native.ts'
import { wasmErasureCodec } from './wasm.ts'

export { ErasureError, shardSize, type ErasureCodec } from './codec.ts'
export { MAX_DATA_SHARDS, MAX_PARITY_SHARDS } from './check-arguments.ts'

let nativeFailure: ErasureError | undefined

/**
 * The erasure codec to use: native unless `prefer` is 'wasm' or the addon does not load.
 * It does not log; the caller reports `.name`, and `nativeLoadError()` says why native is missing.
 */
export function erasureCodec (prefer: 'native' | 'wasm' = 'native'): ErasureCodec {
  if (prefer === 'native') {
    try {
      return nativeErasureCodec()
    } catch (err) {
      if (!(err instanceof ErasureError)) throw err
      nativeFailure = err
    }
  }
  return wasmErasureCodec()
}

/** Why erasureCodec() fell back to WebAssembly, if it did. */
export function nativeLoadError (): ErasureError | undefined {
  return nativeFailure
}
