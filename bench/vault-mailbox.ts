/**
 * A whole vault with 100,000 messages: how fast they go in, how long unlocking takes, search
 * and read latency through the Vault API, the node process's memory, and bytes on disk per
 * byte of mail. (bench/search.ts measures the search index alone; this one measures it inside
 * the vault, with the metadata of every message in memory as an unlocked node has it.)
 *
 *   node_modules/.bin/node --import tsx bench/vault-mailbox.ts [--messages 100000] [--queries 300] [--keep DIR]
 *
 * `--keep DIR` builds the vault in DIR and keeps it; a later run with the same DIR skips the
 * build (for measuring again after a change that does not touch the format).
 *   npm run bench:mailbox
 *
 * Build: a vault (Argon2id turned down as in tests; it is not what is measured) takes
 * `--messages` synthetic messages (seeded: a Zipf vocabulary of 20,000 words, 60-200 word
 * plain-text bodies, 500 correspondents) through `Vault.add`, 64 at a time, each one sealed,
 * sharded 4 + 2 and fsync'd before it resolves, then indexed in the background; the build
 * waits for the index and closes the vault.
 * Measure, in a fresh child process (its RSS is a node that opened this vault, not the one
 * that built it): open, unlock (time), `--queries` searches (rare and common words, two-word
 * ANDs, from: and subject: queries; limit 50), 300 reads of random messages, then RSS.
 * Goals from the issue: search p95 < 100 ms (Mailpile: 200-400 ms), RSS < 250 MB.
 */
import { parseArgs } from 'node:util'
import { fork } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { openTestVault } from '../test/harness/vault.ts'
import { prng, quantile } from './lib/stats.ts'
import { zipfVocabulary } from './lib/vocabulary.ts'

const SEARCH_GOAL_MS = 100
const MAILPILE_MS = 200
const RSS_GOAL_MB = 250

/** The same mailbox in the builder and the measuring child. */
function mailbox (count: number): { message: (n: number) => { raw: Buffer, from: string }, word: (rank: number) => string, correspondent: (i: number) => string } {
  const random = prng(42)
  const { words, pick } = zipfVocabulary(random)
  const correspondent = (i: number): string => `${words[(i * 7919) % words.length]}${i}@${words[(i * 104729) % words.length]}.example`
  void count
  return {
    word: (rank) => words[rank]!,
    correspondent,
    message (n) {
      const r = prng(1000 + n)
      const from = correspondent(Math.floor(r() * 500))
      const subject = Array.from({ length: 3 + Math.floor(r() * 5) }, () => pick(r())).join(' ')
      const body = Array.from({ length: 60 + Math.floor(r() * 140) }, () => pick(r())).join(' ').replace(/(.{1,72})( |$)/g, '$1\r\n')
      const raw = Buffer.from(`From: <${from}>\r\nTo: <owner@example.onion>\r\nSubject: ${subject}\r\nMessage-ID: <m${n}@bench.example>\r\nDate: Sun, 22 Nov 2026 12:00:00 +0000\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n${body}`)
      return { raw, from }
    }
  }
}

async function duSize (dir: string): Promise<number> {
  let total = 0
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) total += (await stat(join(entry.parentPath, entry.name))).size
  }
  return total
}

async function build (dir: string, messages: number): Promise<{ seconds: number, mailBytes: number }> {
  const box = mailbox(messages)
  const { vault } = await openTestVault(dir)
  const started = performance.now()
  let next = 0
  let mailBytes = 0
  await Promise.all(Array.from({ length: 64 }, async () => {
    while (next < messages) {
      const n = next++
      const { raw, from } = box.message(n)
      mailBytes += raw.length
      await vault.add({ folder: 'Inbox', raw, from, to: ['owner@example.onion'], messageId: `m${n}@bench.example` })
      if (n % 10_000 === 0 && n > 0) process.stderr.write(`  ${n} stored\n`)
    }
  }))
  const stored = (performance.now() - started) / 1000
  await vault.searchReady()
  const indexed = (performance.now() - started) / 1000
  await vault.close()
  console.log(`build: ${messages} messages stored in ${stored.toFixed(1)} s (${Math.round(messages / stored)} msg/s, sealed, sharded, fsync'd), indexed by ${indexed.toFixed(1)} s`)
  return { seconds: stored, mailBytes }
}

async function measure (dir: string, messages: number, queries: number): Promise<void> {
  const box = mailbox(messages)
  const t0 = performance.now()
  const { vault } = await openTestVault(dir)
  const unlockMs = performance.now() - t0
  const random = prng(7)
  const kinds: Array<[string, () => string]> = [
    ['rare word', () => box.word(5000 + Math.floor(random() * 15000))],
    ['common word', () => box.word(Math.floor(random() * 50))],
    ['two words', () => `${box.word(Math.floor(random() * 2000))} ${box.word(Math.floor(random() * 2000))}`],
    ['from:', () => `from:${box.correspondent(Math.floor(random() * 500)).split('@')[0]}`],
    ['subject:', () => `subject:${box.word(Math.floor(random() * 3000))}`]
  ]
  const times: number[] = []
  const byKind = new Map<string, number[]>()
  let hits = 0
  for (let i = 0; i < queries; i++) {
    const [kind, make] = kinds[i % kinds.length]!
    const q = make()
    const start = performance.now()
    const found = await vault.search(q, { limit: 50 })
    const ms = performance.now() - start
    hits += found.length
    times.push(ms)
    byKind.set(kind, [...(byKind.get(kind) ?? []), ms])
  }
  // Ids are assigned 1, 2, 3...; a node with 100,000 messages pages through a folder rather
  // than listing it whole, so the reads pick ids directly.
  const count = vault.stats().messages ?? 0
  const reads: number[] = []
  for (let i = 0; i < 300; i++) {
    const id = String(1 + Math.floor(random() * count)).padStart(16, '0')
    const start = performance.now()
    if ((await vault.get(id)) === undefined) throw new Error(`message ${id} is missing`)
    reads.push(performance.now() - start)
  }
  const memory = process.memoryUsage()
  const rssMb = memory.rss / 1024 / 1024
  await vault.close()
  times.sort((a, b) => a - b)
  reads.sort((a, b) => a - b)
  const p95 = quantile(times, 0.95)
  console.log(`unlock with ${count} messages: ${Math.round(unlockMs)} ms`)
  console.log(`search: ${queries} queries, p50 ${quantile(times, 0.5).toFixed(1)} ms, p95 ${p95.toFixed(1)} ms, max ${times.at(-1)!.toFixed(1)} ms (${(hits / queries).toFixed(1)} results per query)`)
  for (const [kind, list] of byKind) { list.sort((a, b) => a - b); console.log(`  ${kind.padEnd(12)} p50 ${quantile(list, 0.5).toFixed(1)} ms, p95 ${quantile(list, 0.95).toFixed(1)} ms`) }
  console.log(`  p95 / goal ${SEARCH_GOAL_MS} ms = ${(p95 / SEARCH_GOAL_MS).toFixed(2)}; p95 / Mailpile's ${MAILPILE_MS} ms = ${(p95 / MAILPILE_MS).toFixed(2)}`)
  console.log(`read: 300 random messages, p50 ${quantile(reads, 0.5).toFixed(2)} ms, p95 ${quantile(reads, 0.95).toFixed(2)} ms (verify, rebuild if needed, decrypt)`)
  console.log(`RSS after unlock, searches and reads: ${rssMb.toFixed(0)} MB (goal < ${RSS_GOAL_MB} MB: ratio ${(rssMb / RSS_GOAL_MB).toFixed(2)}); JS heap ${(memory.heapUsed / 1048576).toFixed(0)} MB used of ${(memory.heapTotal / 1048576).toFixed(0)} MB, external ${(memory.external / 1048576).toFixed(0)} MB`)
}

if (process.argv[2] === '--child') {
  await measure(process.argv[3]!, Number(process.argv[4]), Number(process.argv[5]))
} else {
  const { values } = parseArgs({ options: { messages: { type: 'string', default: '100000' }, queries: { type: 'string', default: '300' }, keep: { type: 'string' } } })
  const messages = Number(values.messages)
  const dir = values.keep ?? await mkdtemp(join(tmpdir(), 'smtorp-bench-mailbox-'))
  try {
    console.log(`vault mailbox benchmark, ${new Date().toISOString()}, Node ${process.version}`)
    if (values.keep === undefined || !existsSync(join(dir, 'key-slots.json'))) {
      const built = await build(dir, messages)
      const onDisk = await duSize(dir)
      console.log(`on disk: ${(onDisk / 1024 / 1024).toFixed(0)} MiB for ${(built.mailBytes / 1024 / 1024).toFixed(0)} MiB of mail: ${(onDisk / built.mailBytes).toFixed(2)} bytes per byte of mail, ${Math.round(onDisk / messages)} bytes per message`)
    }
    const child = fork(fileURLToPath(import.meta.url), ['--child', dir, String(messages), values.queries], { execArgv: ['--import', 'tsx'], stdio: 'inherit' })
    const code = await new Promise(resolve => child.once('exit', resolve))
    if (code !== 0) throw new Error(`the measuring process exited with ${String(code)}`)
  } finally {
    if (values.keep === undefined) await rm(dir, { recursive: true, force: true })
  }
}
