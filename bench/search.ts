/**
 * Search: query latency, index size and memory of the vault's encrypted search index
 * (node/vault/search) on a synthetic mailbox of 100,000 messages.
 *
 *   node_modules/.bin/node --import tsx bench/search.ts [--messages 100000] [--queries 500] [--flush-every 10000] [--eml-sample 2000]
 *   npm run bench:search
 *
 * The mailbox is deterministic (seeded PRNG): a vocabulary of 50,000 made-up words drawn
 * with a Zipf distribution (s = 1), bodies of 100-200 words, subjects of 3-7 words (30%
 * "Re: "), senders drawn Zipf from 800 correspondents, the owner in To and sometimes a
 * second correspondent in Cc. The first `--eml-sample` messages are written as real .eml
 * bytes and go through `extractSearchText` (postal-mime); the rest hand their SearchText to
 * `add` directly (the same fields extractSearchText would produce), so the build time is the
 * index's, not MIME parsing's. The index flushes by itself every `--flush-every` documents
 * (default: the index's own default), then it is closed, and the database closed.
 *
 * The queries then run in a fresh child process (so its RSS is that of a process that
 * opens a 100k index and searches it, not of the one that built it): it opens the database
 * and the index (cold for the index: nothing of it in memory; the OS page cache is still
 * warm from the build) and runs `--queries` queries one after another, limit 50: rare
 * words, common words, two-word ANDs and `from:` queries, shuffled. Latency is the
 * `search()` call, measured with performance.now(). Then, as live mail would be, it adds
 * 20 more messages one at a time, each followed by `flush()`, and times that.
 */
import { parseArgs } from 'node:util'
import { fork } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ClassicLevel } from 'classic-level'
import { DEFAULT_FLUSH_EVERY, extractSearchText, searchIndex, STOPWORDS, type SearchText } from '../node/vault/search/index.ts'
import { prng, quantile } from './lib/stats.ts'

const GOAL_MS = 100
const MAILPILE_MS = 200 // Mailpile's published 200-400 ms; we compare with its best case

/** Samples ranks 0..n-1 with P(rank r) proportional to 1 / (r + 1)^s. */
function zipf (n: number, s: number, random: () => number): () => number {
  const cdf = new Float64Array(n)
  let sum = 0
  for (let r = 0; r < n; r++) { sum += 1 / (r + 1) ** s; cdf[r] = sum }
  for (let r = 0; r < n; r++) cdf[r]! /= sum
  return () => {
    const u = random()
    let lo = 0
    let hi = n - 1
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (cdf[mid]! < u) lo = mid + 1
      else hi = mid
    }
    return lo
  }
}

/** 50,000 distinct made-up words, shortest first (so the most frequent are the shortest). */
function vocabulary (size: number, random: () => number): string[] {
  const consonants = 'bcdfghjklmnprstvwz'
  const vowels = 'aeiou'
  const syllables: string[] = []
  for (const c of consonants) for (const v of vowels) syllables.push(c + v)
  const words = new Set<string>()
  const add = (w: string): void => { if (!STOPWORDS.has(w) && words.size < size) words.add(w) }
  for (const a of syllables) add(a)
  for (const a of syllables) for (const b of syllables) add(a + b)
  while (words.size < size) {
    const n = 3 + Math.floor(random() * 2)
    let w = ''
    for (let i = 0; i < n; i++) w += syllables[Math.floor(random() * syllables.length)]!
    add(w)
  }
  return [...words]
}

interface Mailbox {
  words: string[]
  people: Array<{ first: string, last: string, address: string }>
  owner: string
  message: (doc: number) => SearchText
}

function mailbox (seed: number): Mailbox {
  const random = prng(seed)
  const words = vocabulary(50_000, random)
  const nextWord = zipf(words.length, 1.0, random)
  const firsts = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi', 'ivan', 'judy', 'mallory', 'niaj', 'olivia', 'peggy', 'rupert', 'sybil', 'trent', 'ursula', 'victor', 'walter', 'xena', 'yusuf', 'zoe', 'amara', 'bjorn', 'chen', 'dmitri', 'elena', 'farid', 'greta', 'hiro', 'ines', 'jonas', 'kofi', 'lena', 'marek', 'nadia', 'oskar', 'priya', 'quentin']
  const lasts = ['smith', 'jones', 'garcia', 'muller', 'rossi', 'dubois', 'kowalski', 'nakamura', 'okafor', 'silva', 'novak', 'larsen', 'ibrahim', 'kim', 'nguyen', 'haddad', 'petrov', 'schmidt', 'moreau', 'costa']
  const domains = ['example.org', 'mail.example.net', 'corp-alpha.example', 'uni-beta.example.edu', 'lists.example.com', 'qx7m2a5d4ywv3eqkz6pnh2fwt5c6kb4ph3gqaxrl7wum3q2dy5oqsoad.onion', 'home.example', 'shop.example.com']
  const people: Mailbox['people'] = []
  for (let i = 0; i < 800; i++) {
    const first = firsts[i % firsts.length]!
    const last = lasts[Math.floor(i / firsts.length) % lasts.length]!
    people.push({ first, last, address: `${first}.${last}@${domains[i % domains.length]}` })
  }
  const nextPerson = zipf(people.length, 1.0, random)
  const owner = 'me@qx7m2a5d4ywv3eqkz6pnh2fwt5c6kb4ph3gqaxrl7wum3q2dy5oqsoad.onion'
  const name = (p: Mailbox['people'][number]): string => `${p.first[0]!.toUpperCase()}${p.first.slice(1)} ${p.last[0]!.toUpperCase()}${p.last.slice(1)} <${p.address}>`
  return {
    words,
    people,
    owner,
    // Deterministic per call order: the bench calls it for 1, 2, 3, ...
    message: () => {
      const sender = people[nextPerson()]!
      const subjectWords: string[] = []
      for (let i = 3 + Math.floor(random() * 5); i > 0; i--) subjectWords.push(words[Math.min(words.length - 1, 50 + nextWord())]!)
      const body: string[] = []
      for (let i = 100 + Math.floor(random() * 101); i > 0; i--) body.push(words[nextWord()]!)
      const cc = random() < 0.3 ? `, ${name(people[nextPerson()]!)}` : ''
      return {
        from: name(sender),
        to: `Me <${owner}>${cc}`,
        subject: `${random() < 0.3 ? 'Re: ' : ''}${subjectWords.join(' ')}`,
        body: body.join(' ')
      }
    }
  }
}

/** The same message as .eml bytes (plain text, lines wrapped at ~76). */
function toEml (doc: number, t: SearchText): Buffer {
  const lines = [`From: ${t.from}`, `To: ${t.to}`, `Subject: ${t.subject}`, `Date: ${new Date(Date.UTC(2025, 0, 1) + doc * 60_000).toUTCString()}`,
    `Message-ID: <bench-${doc}@example.org>`, 'MIME-Version: 1.0', 'Content-Type: text/plain; charset=utf-8', 'Content-Transfer-Encoding: 7bit', '']
  let line = ''
  for (const w of t.body.split(' ')) {
    if (line.length + w.length + 1 > 76) { lines.push(line); line = w } else line = line.length === 0 ? w : `${line} ${w}`
  }
  lines.push(line, '')
  return Buffer.from(lines.join('\r\n'), 'utf8')
}

interface Query { kind: 'rare word' | 'common word' | 'two words' | 'from:', text: string }

function buildQueries (box: Mailbox, documentFrequency: Uint32Array, count: number, seed: number): Query[] {
  const random = prng(seed)
  const pick = <T>(list: T[]): T => list[Math.floor(random() * list.length)]!
  const present = (from: number, to: number): string[] => {
    const out: string[] = []
    for (let r = from; r < to; r++) if (documentFrequency[r]! > 0) out.push(box.words[r]!)
    return out
  }
  const common = present(0, 200)
  const middle = present(200, 5000)
  const rare = present(5000, box.words.length)
  const queries: Query[] = []
  const n = { rare: Math.round(count * 0.3), common: Math.round(count * 0.3), two: Math.round(count * 0.25) }
  for (let i = 0; i < n.rare; i++) queries.push({ kind: 'rare word', text: pick(rare) })
  for (let i = 0; i < n.common; i++) queries.push({ kind: 'common word', text: pick(common) })
  for (let i = 0; i < n.two; i++) {
    const shape = i % 3
    const a = shape === 2 ? pick(middle) : pick(common)
    const b = shape === 0 ? pick(common) : pick(middle)
    queries.push({ kind: 'two words', text: `${a} ${b}` })
  }
  while (queries.length < count) {
    const p = pick(box.people.slice(0, 200))
    const shape = queries.length % 3
    queries.push({ kind: 'from:', text: shape === 0 ? `from:${p.first}` : shape === 1 ? `from:${p.address}` : `from:${p.last} ${pick(common)}` })
  }
  // Fisher-Yates, seeded.
  for (let i = queries.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    ;[queries[i], queries[j]] = [queries[j]!, queries[i]!]
  }
  return queries
}

async function dirBytes (dir: string): Promise<number> {
  let total = 0
  for (const f of await readdir(dir)) total += (await stat(join(dir, f))).size
  return total
}

const mb = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MB`

// ---- the query phase, in its own process -----------------------------------------------

interface QueryJob { dir: string, term: string, postings: string, queries: Query[], live: SearchText[], firstLiveDoc: number }
interface QueryReport {
  rssAfterOpen: number
  rssAfterQueries: number
  heapAfterQueries: number
  openMs: number
  stats: { docs: number, terms?: number, chunks?: number }
  latencies: Array<{ kind: Query['kind'], ms: number, results: number }>
  firstQueryMs: number
  /** add + flush of one message, each. */
  liveMs: number[]
  liveFound: boolean
}

async function queryPhase (job: QueryJob): Promise<QueryReport> {
  const t0 = performance.now()
  const db = new ClassicLevel<Buffer, Buffer>(job.dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' })
  await db.open()
  const index = searchIndex({ db, keys: { term: Buffer.from(job.term, 'hex'), postings: Buffer.from(job.postings, 'hex') } })
  await index.open()
  const openMs = performance.now() - t0
  const rssAfterOpen = process.memoryUsage().rss
  const latencies: QueryReport['latencies'] = []
  for (const q of job.queries) {
    const start = performance.now()
    const results = await index.search(q.text)
    latencies.push({ kind: q.kind, ms: performance.now() - start, results: results.length })
  }
  const memory = process.memoryUsage()
  const stats = index.stats()
  const liveMs: number[] = []
  for (const [i, text] of job.live.entries()) {
    const start = performance.now()
    index.add(job.firstLiveDoc + i, text)
    await index.flush()
    liveMs.push(performance.now() - start)
  }
  const lastWord = job.live[job.live.length - 1]!.body.split(' ').at(-1)!
  const liveFound = (await index.search(lastWord, { limit: 1 }))[0] === job.firstLiveDoc + job.live.length - 1
  const report = { rssAfterOpen, rssAfterQueries: memory.rss, heapAfterQueries: memory.heapUsed, openMs, stats, latencies, firstQueryMs: latencies[0]!.ms, liveMs, liveFound }
  await index.close()
  await db.close()
  return report
}

async function runQueryChild (job: QueryJob): Promise<QueryReport> {
  const child = fork(fileURLToPath(import.meta.url), ['--child'], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  return await new Promise<QueryReport>((resolve, reject) => {
    child.once('message', (m) => { resolve(m as QueryReport) })
    child.once('error', reject)
    child.once('exit', (code) => { if (code !== 0) reject(new Error(`the query process exited with ${code}`)) })
    child.send(job)
  })
}

// ---- the build phase ----------------------------------------------------------------------

async function main (): Promise<void> {
  const { values } = parseArgs({
    options: {
      messages: { type: 'string', default: '100000' },
      queries: { type: 'string', default: '500' },
      'flush-every': { type: 'string', default: String(DEFAULT_FLUSH_EVERY) },
      'eml-sample': { type: 'string', default: '2000' },
      child: { type: 'boolean', default: false }
    }
  })
  if (values.child) {
    process.once('message', (job) => {
      queryPhase(job as QueryJob).then((report) => { process.send!(report, () => { process.exit(0) }) }, (err: unknown) => { console.error(err); process.exit(1) })
    })
    return
  }
  const messages = Number(values.messages)
  const flushEvery = Number(values['flush-every'])
  const emlSample = Math.min(messages, Number(values['eml-sample']))
  const dir = await mkdtemp(join(tmpdir(), 'smtorp-bench-search-'))
  const keys = { term: randomBytes(32), postings: randomBytes(32) }
  try {
    console.log(`search: ${messages} synthetic messages (first ${emlSample} as .eml through extractSearchText), flushEvery ${flushEvery}, Node ${process.version}`)
    const box = mailbox(20261122)
    const documentFrequency = new Uint32Array(box.words.length)
    const rankOf = new Map(box.words.map((w, r) => [w, r]))

    const db = new ClassicLevel<Buffer, Buffer>(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' })
    await db.open()
    const index = searchIndex({ db, keys: { term: Buffer.from(keys.term), postings: Buffer.from(keys.postings) }, flushEvery })
    await index.open()
    let generateMs = 0
    let extractMs = 0
    let addMs = 0
    let flushWaitMs = 0
    let tokens = 0
    const buildStart = performance.now()
    for (let doc = 1; doc <= messages; doc++) {
      let t0 = performance.now()
      let text = box.message(doc)
      generateMs += performance.now() - t0
      const seen = new Set<number>()
      for (const w of text.body.split(' ')) { const r = rankOf.get(w)!; tokens++; if (!seen.has(r)) { seen.add(r); documentFrequency[r]!++ } }
      if (doc <= emlSample) {
        const raw = toEml(doc, text)
        t0 = performance.now()
        text = await extractSearchText(raw)
        extractMs += performance.now() - t0
      }
      t0 = performance.now()
      index.add(doc, text)
      addMs += performance.now() - t0
      if (doc % flushEvery === 0) {
        // The automatic flush started inside add(); wait for it, as a vault that paces its
        // indexing would, so the buffer stays bounded.
        t0 = performance.now()
        await index.flush()
        flushWaitMs += performance.now() - t0
      }
    }
    let t0 = performance.now()
    await index.flush()
    flushWaitMs += performance.now() - t0
    const buildMs = performance.now() - buildStart
    const built = index.stats()
    const buildRss = process.memoryUsage().rss
    await index.close()
    await db.close()
    const bytesAsWritten = await dirBytes(dir)

    t0 = performance.now()
    const compacting = new ClassicLevel<Buffer, Buffer>(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' })
    await compacting.open()
    await compacting.compactRange(Buffer.from('X'), Buffer.from('y'))
    await compacting.close()
    const compactMs = performance.now() - t0
    const bytesCompacted = await dirBytes(dir)

    const indexMs = buildMs - generateMs - extractMs
    console.log(`build: ${(buildMs / 1000).toFixed(1)} s in all; index work (add + flush) ${(indexMs / 1000).toFixed(1)} s = ${(indexMs * 1000 / messages).toFixed(0)} µs/message`
      + ` (add ${(addMs / 1000).toFixed(1)} s, waiting for flushes ${(flushWaitMs / 1000).toFixed(1)} s); generating text ${(generateMs / 1000).toFixed(1)} s;`
      + ` extractSearchText ${(extractMs / emlSample).toFixed(2)} ms/message on the .eml sample`)
    console.log(`corpus: ${tokens} body words (${(tokens / messages).toFixed(0)}/message); index: ${built.docs} docs, ${built.terms} terms, ${built.chunks} chunks; builder RSS ${mb(buildRss)}`)
    console.log(`on disk: ${mb(bytesAsWritten)} as written = ${(bytesAsWritten / messages).toFixed(0)} bytes/message; after compactRange (${(compactMs / 1000).toFixed(1)} s): ${mb(bytesCompacted)} = ${(bytesCompacted / messages).toFixed(0)} bytes/message`)

    const queries = buildQueries(box, documentFrequency, Number(values.queries), 7)
    const live = Array.from({ length: 20 }, (_, i) => box.message(messages + 1 + i))
    const report = await runQueryChild({ dir, term: keys.term.toString('hex'), postings: keys.postings.toString('hex'), queries, live, firstLiveDoc: messages + 1 })
    const all = report.latencies.map((l) => l.ms).sort((a, b) => a - b)
    const p95 = quantile(all, 0.95)
    console.log(`query process: open ${report.openMs.toFixed(1)} ms (db + index state), ${report.stats.docs} docs; first query (cold) ${report.firstQueryMs.toFixed(1)} ms`)
    console.log('')
    console.log('| queries | n | mean results | p50 ms | p95 ms | max ms |')
    console.log('|---|---|---|---|---|---|')
    for (const kind of ['rare word', 'common word', 'two words', 'from:', 'all'] as const) {
      const rows = report.latencies.filter((l) => kind === 'all' || l.kind === kind)
      const ms = rows.map((l) => l.ms).sort((a, b) => a - b)
      const meanResults = rows.reduce((n, l) => n + l.results, 0) / rows.length
      console.log(`| ${kind} | ${rows.length} | ${meanResults.toFixed(1)} | ${quantile(ms, 0.5).toFixed(2)} | ${quantile(ms, 0.95).toFixed(2)} | ${ms[ms.length - 1]!.toFixed(2)} |`)
    }
    console.log('')
    console.log(`p95 ${p95.toFixed(2)} ms: ${(p95 / GOAL_MS).toFixed(3)}x the ${GOAL_MS} ms goal, ${(p95 / MAILPILE_MS).toFixed(3)}x Mailpile's ${MAILPILE_MS} ms`)
    const liveSorted = [...report.liveMs].sort((a, b) => a - b)
    console.log(`live mail: add + flush of one message on the ${report.stats.docs}-message index, median ${quantile(liveSorted, 0.5).toFixed(1)} ms, max ${liveSorted[liveSorted.length - 1]!.toFixed(1)} ms (${report.liveMs.length} messages; the last one found by its last word: ${report.liveFound})`)
    console.log(`query process RSS: ${mb(report.rssAfterOpen)} after opening, ${mb(report.rssAfterQueries)} after ${all.length} queries (V8 heap used ${mb(report.heapAfterQueries)}); goal well under 250 MB`)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

await main()
