// The erasure codec on @ronomon/reed-solomon, a native addon whose work runs on the libuv
// threadpool, so encoding a large object does not block the event loop.
//
// Format note: the addon is not Backblaze's byte-wise Vandermonde code. It is a Cauchy
// Reed-Solomon code applied as a bit matrix: per (k, m) it picks GF(2^w) with w = 2, 4 or 8 and
// a primitive polynomial from a table in binding.c (PARAMETERS), sets the first parity row to
// all ones (parity 0 = XOR of the data shards), and cuts each shard into w packets of
// `chunkSize` bytes, a size that shrinks for large shards (binding.c dot_chunk_size: "The
// chunkSize changes the encoded parity result"). Its parity therefore differs from the
// WebAssembly codec's; see erasure.test.ts.
import { createRequire } from 'node:module'
import { ErasureError, shardSize, type ErasureCodec } from './codec.ts'
import { checkShardCounts, checkShardSlots } from './check-arguments.ts'

/** The part of the CommonJS addon we use (it ships no types). */
interface ReedSolomonAddon {
  create (k: number, m: number): Buffer
  encode (
    context: Buffer,
    sources: number,
    targets: number,
    buffer: Buffer,
    bufferOffset: number,
    bufferSize: number,
    parity: Buffer,
    parityOffset: number,
    paritySize: number,
    callback: (error?: Error | null) => void
  ): void
}

let addon: ReedSolomonAddon | undefined
let loadError: Error | undefined
// A context holds the encoding bit matrix for one (k, m); the addon allows sharing it between
// concurrent calls, so one per (k, m) for the life of the process.
const contexts = new Map<string, Buffer>()

function loadAddon (): ReedSolomonAddon {
  if (addon !== undefined) return addon
  if (loadError !== undefined) throw loadError
  try {
    addon = createRequire(import.meta.url)('@ronomon/reed-solomon') as ReedSolomonAddon
    return addon
  } catch (err) {
    loadError = new ErasureError(`the native Reed-Solomon addon did not load: ${(err as Error).message}`, { cause: err })
    throw loadError
  }
}

function contextFor (rs: ReedSolomonAddon, k: number, m: number): Buffer {
  const key = `${k},${m}`
  let context = contexts.get(key)
  if (context === undefined) {
    context = rs.create(k, m)
    contexts.set(key, context)
  }
  return context
}

/** Bit flags for shard indexes, as the addon takes sources and targets (k + m <= 30 fits). */
function flags (indexes: Iterable<number>): number {
  let bits = 0
  for (const i of indexes) bits |= 1 << i
  return bits
}

function range (from: number, to: number): number[] {
  return Array.from({ length: to - from }, (_, i) => from + i)
}

/**
 * The one place the addon's callback API is wrapped. `data` holds the k data shards back to
 * back and `parity` the m parity shards; the shards flagged in `targets` are (re)computed
 * from those flagged in `sources`.
 */
function runAddon (rs: ReedSolomonAddon, k: number, m: number, sources: number, targets: number, data: Buffer, parity: Buffer): Promise<void> {
  const context = contextFor(rs, k, m)
  return new Promise((resolve, reject) => {
    rs.encode(context, sources, targets, data, 0, data.length, parity, 0, parity.length, (error) => {
      if (error) reject(new ErasureError(`the native Reed-Solomon addon failed: ${error.message}`, { cause: error }))
      else resolve()
    })
  })
}

/** Shards as views into the two buffers the addon worked on, in order. */
function cut (data: Buffer, parity: Buffer, size: number, k: number, m: number): Buffer[] {
  return [
    ...range(0, k).map((i) => data.subarray(i * size, (i + 1) * size)),
    ...range(0, m).map((i) => parity.subarray(i * size, (i + 1) * size))
  ]
}

/** The native codec; throws an ErasureError if the addon does not load on this machine. */
export function nativeErasureCodec (): ErasureCodec {
  const rs = loadAddon()
  return {
    name: 'native',

    async encode (input, k, m) {
      checkShardCounts(k, m)
      const size = shardSize(input.length, k)
      const data = Buffer.allocUnsafe(size * k)
      data.set(input)
      data.fill(0, input.length) // codec.ts: the last data shard is padded with zeros
      const parity = Buffer.alloc(size * m)
      await runAddon(rs, k, m, flags(range(0, k)), flags(range(k, k + m)), data, parity)
      // The shards are views of two allocations (one for data, one for parity), not k + m copies.
      return cut(data, parity, size, k, m)
    },

    async reconstruct (shards, k, m) {
      const { size, missing } = checkShardSlots(shards, k, m)
      if (missing.length === 0) return [...shards] as Buffer[]
      // The addon wants the data shards in one buffer and the parity shards in another.
      const data = Buffer.alloc(size * k)
      const parity = Buffer.alloc(size * m)
      shards.forEach((shard, i) => {
        if (shard !== undefined) (i < k ? data : parity).set(shard, (i < k ? i : i - k) * size)
      })
      const present = range(0, k + m).filter((i) => shards[i] !== undefined)
      await runAddon(rs, k, m, flags(present), flags(missing), data, parity)
      const rebuilt = cut(data, parity, size, k, m)
      // Present shards are handed back as they came; only the missing slots are new.
      return shards.map((shard, i) => shard ?? rebuilt[i]!)
    }
  }
}
