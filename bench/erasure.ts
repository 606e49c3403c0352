/**
 * Erasure coding throughput: encode and rebuild MB/s of the native addon and the WebAssembly
 * build, beside AES-256-GCM encryption (node:crypto) measured in the same run, since the vault
 * encrypts every object and then erasure-codes it.
 *
 *   npm run bench:erasure                       # ~20 s
 *   node_modules/.bin/node --import tsx bench/erasure.ts [--slice-ms 250]
 *
 * Shapes 4+2 (the vault default) and 10+4, objects of 64 KiB and 1 MiB. "rebuild" loses the
 * first m data shards, the costly case (a decoding matrix, then the data); losing parity only
 * is an encode. MB/s is object bytes (not shard bytes) per second, MB = 10^6 bytes. One
 * operation at a time, awaited, as the vault codes one object at a time: the native addon pays
 * its hop to the libuv threadpool, the WebAssembly build runs on the main thread and blocks it.
 *
 * Each figure: a warm-up of half a slice, then 3 slices of --slice-ms; the median slice rate.
 * AES-256-GCM is measured at the start and at the end; the ratios use the mean of the two, and
 * the two are printed so drift on a shared machine shows. Each rebuild is checked once against
 * the encoded shards, so a wrong codec cannot post a figure.
 */
import { createCipheriv, randomBytes } from 'node:crypto'
import { cpus } from 'node:os'
import { parseArgs } from 'node:util'
import { nativeErasureCodec } from '../node/vault/erasure/native.ts'
import { wasmErasureCodec } from '../node/vault/erasure/wasm.ts'
import type { ErasureCodec } from '../node/vault/erasure/index.ts'
import { median, runFor } from './lib/stats.ts'

const SIZES = [64 * 1024, 1024 * 1024]
const SHAPES: Array<[k: number, m: number]> = [[4, 2], [10, 4]]


/** MB/s of `op` on `bytes` object bytes: the median of 3 slices after a warm-up. */
async function megabytesPerSecond (sliceMs: number, bytes: number, op: () => unknown): Promise<number> {
  await runFor(sliceMs / 2, op)
  const rates: number[] = []
  for (let slice = 0; slice < 3; slice++) {
    const run = await runFor(sliceMs, op)
    rates.push(run.ops * bytes / 1e6 / (run.ms / 1000))
  }
  return median(rates)
}

function aesGcmEncrypt (data: Buffer): () => void {
  const key = randomBytes(32)
  let counter = 0
  return () => {
    const iv = Buffer.alloc(12)
    iv.writeUInt32BE(counter++, 8) // a fresh nonce per object, as the vault must use
    const cipher = createCipheriv('aes-256-gcm', key, iv)
    cipher.update(data)
    cipher.final()
    cipher.getAuthTag()
  }
}

async function checkedRebuild (codec: ErasureCodec, data: Buffer, k: number, m: number): Promise<() => Promise<unknown>> {
  const shards = await codec.encode(data, k, m)
  const slots = shards.map((shard, i) => i < m ? undefined : shard)
  const rebuilt = await codec.reconstruct(slots, k, m)
  if (!rebuilt.every((shard, i) => shard.equals(shards[i]!))) {
    throw new Error(`${codec.name} ${k}+${m}: the rebuilt shards differ from the encoded ones`)
  }
  return () => codec.reconstruct(slots, k, m)
}

interface Row { label: string, perSize: number[] }

async function main (): Promise<void> {
  const { values } = parseArgs({ options: { 'slice-ms': { type: 'string', default: '250' } } })
  const sliceMs = Number(values['slice-ms'])
  const codecs = [nativeErasureCodec(), wasmErasureCodec()]
  const objects = SIZES.map((size) => randomBytes(size))

  const aesStart: number[] = []
  for (const data of objects) aesStart.push(await megabytesPerSecond(sliceMs, data.length, aesGcmEncrypt(data)))
  const rows: Row[] = []
  for (const [k, m] of SHAPES) {
    for (const codec of codecs) {
      const encode: Row = { label: `${codec.name} encode ${k}+${m}`, perSize: [] }
      const rebuild: Row = { label: `${codec.name} rebuild ${m} lost data shards ${k}+${m}`, perSize: [] }
      for (const data of objects) {
        encode.perSize.push(await megabytesPerSecond(sliceMs, data.length, () => codec.encode(data, k, m)))
        rebuild.perSize.push(await megabytesPerSecond(sliceMs, data.length, await checkedRebuild(codec, data, k, m)))
      }
      rows.push(encode, rebuild)
    }
  }
  const aesEnd: number[] = []
  for (const data of objects) aesEnd.push(await megabytesPerSecond(sliceMs, data.length, aesGcmEncrypt(data)))
  const aes = aesStart.map((start, i) => (start + aesEnd[i]!) / 2)

  const cpu = cpus()
  console.log(`erasure coding vs AES-256-GCM, ${new Date().toISOString()}, Node ${process.versions.node}, ${cpu.length} x ${cpu[0]?.model ?? 'unknown CPU'}`)
  console.log(`MB/s of object bytes (10^6 B/s), median of 3 slices of ${sliceMs} ms; x = ratio to AES-256-GCM at the same size`)
  const header = ['figure', ...SIZES.map((size) => `${size / 1024} KiB`), ...SIZES.map((size) => `x ${size / 1024} KiB`)]
  const table = [
    ['AES-256-GCM encrypt (reference)', ...aes.map((r) => r.toFixed(0)), ...aes.map(() => '1.00')],
    ...rows.map((row) => [row.label, ...row.perSize.map((r) => r.toFixed(0)), ...row.perSize.map((r, i) => (r / aes[i]!).toFixed(2))])
  ]
  const widths = header.map((_, c) => Math.max(...[header, ...table].map((line) => line[c]!.length)))
  const line = (cells: string[]): string => cells.map((cell, c) => c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!)).join('  ')
  console.log(line(header))
  for (const cells of table) console.log(line(cells))
  console.log(`AES-256-GCM at the start / end of the run: ${aesStart.map((r, i) => `${r.toFixed(0)} / ${aesEnd[i]!.toFixed(0)}`).join(', ')} MB/s (${SIZES.map((s) => `${s / 1024} KiB`).join(', ')})`)
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await main()
}
