// The erasure codec on @digitaldefiance/reed-solomon-erasure.wasm: the Rust crate
// reed-solomon-erasure 3.1 (a port of klauspost/reedsolomon, itself a port of Backblaze's
// JavaReedSolomon) compiled to WebAssembly, for machines where the native addon does not load.
//
// Its code is Backblaze's: the (k + m) x k Vandermonde matrix V[r][c] = r^c over GF(2^8) with
// the polynomial x^8 + x^4 + x^3 + x^2 + 1 (0x11D), times the inverse of its top k x k square,
// applied byte by byte (erasure.test.ts checks this against a reference written from that
// description). The native addon's code is a different one; see native.ts.
//
// We use the package's .wasm file but not its JavaScript wrapper, for two faults in the wrapper
// (version 1.0.2):
// - Its ESM build finds the .wasm through __dirname, which ES modules do not have, so
//   fromCurrentDirectory() and fromCurrentDirectorySync() throw "__dirname is not defined".
// - Its reconstruct() frees the shards-available buffer that the WebAssembly reconstruct has
//   already freed (the module takes ownership of that argument: the next allocation of the same
//   size gets the same address without any free from JavaScript). The double free corrupts the
//   wee_alloc heap: the next reconstruct with shard 0 present fails "Too few shards present",
//   and after a few hundred mixed calls the module traps with "memory access out of bounds"
//   inside wee_alloc::alloc_first_fit. erasure.test.ts runs hundreds of calls on one instance.
//
// It runs synchronously on the calling thread: a 1 MiB object blocks the event loop for as
// long as bench/erasure.ts says it takes.
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { ReedSolomonErasure } from '@digitaldefiance/reed-solomon-erasure.wasm'
import { ErasureError, shardSize, type ErasureCodec } from './codec.ts'
import { checkShardCounts, checkShardSlots } from './check-arguments.ts'

// The project's lib (es2024, no "dom") and @types/node do not declare WebAssembly; the part
// used here:
declare const WebAssembly: {
  Module: new (bytes: Uint8Array) => object
  Instance: new (module: object) => { exports: object }
}

/** The module's exports (wasm-bindgen ABI of reed-solomon-erasure.wasm src/lib.rs). */
interface RseExports {
  memory: { buffer: ArrayBuffer }
  /** Fills the parity shards of the k + m shards laid back to back at `pointer`. */
  encode (pointer: number, length: number, k: number, m: number): number
  /** Rebuilds the data shards; takes ownership of (and frees) the k + m availability bytes. */
  reconstruct (pointer: number, length: number, k: number, m: number, available: number, availableLength: number): number
  __wbindgen_malloc (length: number): number
  __wbindgen_free (pointer: number, length: number): void
}

let compiled: object | undefined
let instance: RseExports | undefined

function loadWasm (): RseExports {
  compiled ??= new WebAssembly.Module(
    readFileSync(fileURLToPath(import.meta.resolve('@digitaldefiance/reed-solomon-erasure.wasm/wasm')))
  )
  instance ??= new WebAssembly.Instance(compiled).exports as unknown as RseExports
  return instance
}

/**
 * One call into the module: allocates `length` bytes for the k + m shards back to back, lets
 * `fill` lay them out, runs `work` on them and returns a copy of the result. Data goes straight
 * into WebAssembly memory and out once, without a staging buffer.
 */
function inWasmMemory (
  what: string,
  length: number,
  fill: (memory: Uint8Array, pointer: number) => void,
  work: (rs: RseExports, pointer: number) => number
): Buffer {
  const rs = loadWasm()
  let code: number
  let out: Buffer | undefined
  try {
    const pointer = rs.__wbindgen_malloc(length)
    // A view is made after every allocation: growing the memory detaches the old buffer.
    fill(new Uint8Array(rs.memory.buffer), pointer)
    code = work(rs, pointer)
    if (code === ReedSolomonErasure.RESULT_OK) out = Buffer.from(new Uint8Array(rs.memory.buffer, pointer, length))
    rs.__wbindgen_free(pointer, length)
  } catch (err) {
    // A trap (a Rust panic or a fault) leaves the module's heap in an unknown state: the next
    // call starts a new instance.
    instance = undefined
    throw new ErasureError(`the WebAssembly Reed-Solomon ${what} trapped: ${(err as Error).message}`, { cause: err })
  }
  if (out === undefined) {
    throw new ErasureError(`the WebAssembly Reed-Solomon ${what} failed: ${ReedSolomonErasure.getResultMessage(code)} (code ${code})`)
  }
  return out
}

/** Shards as views of the one buffer the module's output was copied to. */
function cut (all: Buffer, size: number, count: number): Buffer[] {
  return Array.from({ length: count }, (_, i) => all.subarray(i * size, (i + 1) * size))
}

/** The WebAssembly codec; throws if the module cannot be compiled (it ships with the package). */
export function wasmErasureCodec (): ErasureCodec {
  loadWasm()
  return {
    name: 'wasm',

    async encode (data, k, m) {
      checkShardCounts(k, m)
      const size = shardSize(data.length, k)
      const length = size * (k + m)
      const all = inWasmMemory('encode', length, (memory, pointer) => {
        memory.set(data, pointer)
        // Allocated memory is not zeroed: the padding must be (codec.ts); parity is written over.
        memory.fill(0, pointer + data.length, pointer + size * k)
      }, (rs, pointer) => rs.encode(pointer, length, k, m))
      return cut(all, size, k + m)
    },

    async reconstruct (shards, k, m) {
      const { size, missing } = checkShardSlots(shards, k, m)
      if (missing.length === 0) return [...shards] as Buffer[]
      const length = size * (k + m)
      const all = inWasmMemory('reconstruct', length, (memory, pointer) => {
        shards.forEach((shard, i) => {
          if (shard !== undefined) memory.set(shard, pointer + i * size)
          else memory.fill(0, pointer + i * size, pointer + (i + 1) * size)
        })
      }, (rs, pointer) => {
        const available = rs.__wbindgen_malloc(k + m)
        new Uint8Array(rs.memory.buffer).set(shards.map((shard) => shard === undefined ? 0 : 1), available)
        // Not freed here: the module frees it (see the comment at the top).
        const code = rs.reconstruct(pointer, length, k, m, available, k + m)
        // The module rebuilds the data shards only; with the data whole again, missing parity
        // is simply encoded anew.
        if (code !== ReedSolomonErasure.RESULT_OK || missing.every((i) => i < k)) return code
        return rs.encode(pointer, length, k, m)
      })
      const rebuilt = cut(all, size, k + m)
      // Present shards are handed back as they came; only the missing slots are new.
      return shards.map((shard, i) => shard ?? rebuilt[i]!)
    }
  }
}
