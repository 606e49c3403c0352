/**
 * The web UI on a vault of 100,000 messages: how long the pages take over real HTTP, against
 * a floor measured in the same run.
 *
 *   npm run bench:ui
 *   node_modules/.bin/node --import tsx bench/ui.ts [--messages 100000] [--requests 300] [--warmup 30] [--profile DIR] [--keep DIR]
 *
 * `--keep DIR` builds the vault in DIR and keeps it; a later run with the same DIR skips the
 * build (messages opened as unread in an earlier run are read by then, and left out).
 *
 * Build (a process of its own: the heap it is left with would pause the measuring): a real vault (Argon2id turned down as in tests; not measured) takes
 * `--messages` synthetic messages through `Vault.add`, 64 at a time, so each one's header
 * summary (subject, From, date, thread root) is sealed in its metadata record as a node stores
 * it. Seeded: a Zipf vocabulary of 20,000 words for subjects and bodies, 500 correspondents
 * with display names, dates five minutes apart, 30% replies (References and In-Reply-To
 * naming an earlier message of the last 500, "Re:" subjects, a quoted passage), 75% plain
 * text, 20% multipart/alternative (text and HTML), 5% HTML only; 25% left unread. The build
 * waits for the search index, reports this process's RSS, and closes the vault.
 *
 * Serve (a child process, so its RSS is a node that opened this vault): opens and unlocks the
 * vault, builds the real `uiBackend` on it and the real `uiServer` on 127.0.0.1 port 0. The
 * backend's other components (queue, tor, delivery, credentials, scrub, unlock) are stand-ins
 * that do nothing: no measured page reaches them (the backend only subscribes to
 * `queue.onChange` when built). Beside it, in the same process, a floor server: fastify with
 * the same options and plugins (helmet with the UI's CSP, formbody) whose routes send a
 * fixed HTML string of the same bytes as the page measured, and do nothing else.
 *
 * Measure (the first process, as a browser would be: another process, one request at a time over
 * one keep-alive connection, fetch): sign in for real (POST /unlock with the passphrase;
 * the vault is already unlocked, so the UI checks the secret), take the session cookie and
 * the CSRF token from a page, then for each figure `--warmup` requests not counted and
 * `--requests` counted, each followed by the same request to the floor. A request's time is
 * from sending it until the whole body is read. Figures:
 *   mailbox first page    GET /mail/Inbox
 *   mailbox middle/deep   GET /mail/Inbox?before=<id> with the id at a random place in the
 *                         middle fifth / the oldest tenth of the folder
 *   message, read         GET /message/<id> of a random read message
 *   message, unread       GET /message/<id> of an unread message, each once (the page marks
 *                         it read: one synced write)
 *   search ...            POST /search (q, _csrf) for a common word (Zipf rank < 50), a rare
 *                         one (rank 10,000-20,000), two words of rank < 2,000, from:<name>
 * Goals (the issue): a page p95 < 50 ms, a search p95 < 100 ms.
 * `--profile DIR` runs the serving process with --cpu-prof, writing its profile to DIR.
 * A request that fails is listed at the end with the UI's error text (the server's error log
 * goes to stderr) and left out of the times.
 */
import { parseArgs } from 'node:util'
import { fork, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import Fastify from 'fastify'
import helmet from '@fastify/helmet'
import formbody from '@fastify/formbody'
import { openTestVault, TEST_PASSPHRASE } from '../test/harness/vault.ts'
import { createLogger } from '../node/log/index.ts'
import { uiBackend } from '../node/ui-backend/index.ts'
import { openPgpService } from '../node/openpgp/index.ts'
import { uiServer } from '../ui/server.ts'
import type { OutboundQueue } from '../node/queue/index.ts'
import type { TorService } from '../node/tor/index.ts'
import type { DeliveryService } from '../node/delivery/index.ts'
import type { CredentialStore } from '../node/submission/credentials.ts'
import type { Identity } from '../node/identity/index.ts'
import { prng, quantile } from './lib/stats.ts'
import { zipfVocabulary } from './lib/vocabulary.ts'

const PAGE_GOAL_MS = 50
const SEARCH_GOAL_MS = 100
const OWNER = 'owner@bench7q2xkzmltr3vj5dyyhw5oeqjkyd3n6wqhbqjnfq2cjg7xzdtba2rxyd.onion'
const FIRST_NAMES = ['Alice', 'Bruno', 'Chen', 'Dana', 'Emeka', 'Farah', 'Gustav', 'Hana', 'Ivan', 'Jonas', 'Kemal', 'Lena', 'Mateo', 'Nadia', 'Omar', 'Priya', 'Quentin', 'Rosa', 'Sven', 'Tomoko', 'Umar', 'Vera', 'Wen', 'Yusuf', 'Zoe']
const LAST_NAMES = ['Almeida', 'Brennan', 'Castillo', 'Dubois', 'Eriksen', 'Fischer', 'Gallagher', 'Haddad', 'Ito', 'Jensen', 'Kowalski', 'Lindqvist', 'Moreau', 'Novak', 'Okafor', 'Petrov', 'Quinn', 'Rossi', 'Sato', 'Tanaka', 'Urquhart', 'Varga', 'Weber', 'Yilmaz', 'Zhou']

interface Generated { raw: Buffer, from: string, messageId: string, seen: boolean }

/** The mailbox: message n is the same in every run. */
function corpus (count: number): { message: (n: number) => Generated, word: (rank: number) => string, correspondentName: (i: number) => string } {
  const random = prng(42)
  const { words, pick } = zipfVocabulary(random)
  const correspondentName = (i: number): string => `${words[(i * 7919) % words.length]}${i}`
  const correspondent = (i: number): string => `"${FIRST_NAMES[i % FIRST_NAMES.length]} ${LAST_NAMES[(i * 7) % LAST_NAMES.length]}" <${correspondentName(i)}@${words[(i * 104729) % words.length]}.example>`
  // Threads: 30% of messages answer one of the 500 before them.
  const parent = new Int32Array(count).fill(-1)
  const structure = prng(99)
  for (let n = 1; n < count; n++) if (structure() < 0.3) parent[n] = n - 1 - Math.floor(structure() * Math.min(n, 500))
  const messageId = (n: number): string => `m${n}.${(n * 2654435761 >>> 0).toString(36)}@bench.example`
  const subjectOf = (n: number): string => {
    const r = prng(1000 + n)
    return Array.from({ length: 3 + Math.floor(r() * 5) }, () => pick(r())).join(' ')
  }
  const lines = (text: string): string => text.replace(/(.{1,72})( |$)/g, '$1\r\n')
  const start = Date.UTC(2024, 0, 1)
  return {
    word: (rank) => words[rank]!,
    correspondentName,
    message (n) {
      const r = prng(7_000_000 + n)
      const who = Math.floor(r() * 500)
      const from = correspondent(who)
      const address = /<([^>]+)>/.exec(from)![1]!
      const paragraphs = Array.from({ length: 1 + Math.floor(r() * 4) }, () => Array.from({ length: 20 + Math.floor(r() * 60) }, () => pick(r())).join(' '))
      const seen = r() >= 0.25
      const kind = r()
      const ancestors: number[] = []
      for (let p = parent[n]!; p >= 0; p = parent[p]!) ancestors.unshift(p)
      let subject = subjectOf(n)
      let threading = ''
      let quote = ''
      if (ancestors.length > 0) {
        const root = ancestors[0]!
        subject = `Re: ${subjectOf(root)}`
        // RFC 5322 3.6.4: References holds the root and the parent (here at most 4 ids).
        const refs = ancestors.length <= 4 ? ancestors : [root, ...ancestors.slice(-3)]
        threading = `In-Reply-To: <${messageId(parent[n]!)}>\r\nReferences: ${refs.map(a => `<${messageId(a)}>`).join('\r\n ')}\r\n`
        quote = `\r\nOn an earlier day, someone wrote:\r\n${lines(Array.from({ length: 30 }, () => pick(r())).join(' ')).split('\r\n').filter(l => l !== '').map(l => `> ${l}`).join('\r\n')}\r\n`
      }
      const date = new Date(start + n * 300_000 + Math.floor(r() * 240_000)).toUTCString().replace('GMT', '+0000')
      const head = `From: ${from}\r\nTo: <${OWNER}>\r\nSubject: ${subject}\r\nDate: ${date}\r\nMessage-ID: <${messageId(n)}>\r\n${threading}MIME-Version: 1.0\r\n`
      const text = paragraphs.map(lines).join('\r\n') + quote
      const htmlBody = `<html><body>${paragraphs.map(p => `<p>${p}</p>`).join('\r\n')}${quote !== '' ? `<blockquote>${quote.replace(/\r\n> /g, ' ')}</blockquote>` : ''}</body></html>\r\n`
      let raw: string
      if (kind < 0.75) {
        raw = `${head}Content-Type: text/plain; charset=utf-8\r\n\r\n${text}`
      } else if (kind < 0.95) {
        const b = `b${n}x`
        raw = `${head}Content-Type: multipart/alternative; boundary="${b}"\r\n\r\n--${b}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n${text}\r\n--${b}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n${htmlBody}--${b}--\r\n`
      } else {
        raw = `${head}Content-Type: text/html; charset=utf-8\r\n\r\n${htmlBody}`
      }
      return { raw: Buffer.from(raw), from: address, messageId: messageId(n), seen }
    }
  }
}

const mb = (bytes: number): string => (bytes / 1048576).toFixed(0)

/** The vault's message ids in arrival order, and the unread ones. */
interface Inventory { ids: string[], unread: string[] }

/** Fill the vault; ids in arrival order and which are unread. */
async function build (dir: string, count: number): Promise<Inventory> {
  const box = corpus(count)
  const { vault } = await openTestVault(dir)
  const started = performance.now()
  const byN: string[] = new Array(count)
  const unread = new Set<string>()
  let next = 0
  let bytes = 0
  await Promise.all(Array.from({ length: 64 }, async () => {
    while (next < count) {
      const n = next++
      const m = box.message(n)
      bytes += m.raw.length
      const { meta } = await vault.add({ folder: 'Inbox', raw: m.raw, from: m.from, to: [OWNER], messageId: m.messageId, flags: m.seen ? ['\\Seen'] : [] })
      byN[n] = meta.id
      if (!m.seen) unread.add(meta.id)
      if (n % 10_000 === 0 && n > 0) process.stderr.write(`  ${n} stored\n`)
    }
  }))
  const stored = (performance.now() - started) / 1000
  await vault.searchReady()
  const indexed = (performance.now() - started) / 1000
  const memory = process.memoryUsage()
  const counts = (await vault.counts()).get('Inbox')!
  console.log(`build: ${count} messages (${mb(bytes)} MiB, ${counts.unread} unread) stored in ${stored.toFixed(1)} s, indexed by ${indexed.toFixed(1)} s`)
  console.log(`RSS after filling (the building process, vault open and indexed): ${mb(memory.rss)} MB; JS heap ${mb(memory.heapUsed)} MB used of ${mb(memory.heapTotal)} MB`)
  await vault.close()
  return { ids: [...byN].sort(), unread: [...unread] }
}

// --- The serving process ---------------------------------------------------------------------

type ToChild = { floor: { name: string, body: string } } | { stop: true }
type FromChild = { ready: { ui: string, floor: string, unlockMs: number, rss: number, heapUsed: number } } | { floorSet: string } | { stopped: { rss: number, heapUsed: number, heapTotal: number, liveHeap: number, external: number } }

async function serve (dir: string): Promise<void> {
  const t0 = performance.now()
  const { vault } = await openTestVault(dir)
  const unlockMs = performance.now() - t0
  // Errors only, to stderr: a failed request says why there.
  const logger = createLogger({ level: 'error', destination: 2 })
  // Stand-ins: nothing measured reaches these; uiBackend subscribes to queue.onChange when built.
  const queue = { onChange () {}, list: () => [], recentlyFinished: () => [] } as unknown as OutboundQueue
  const tor = { status: () => ({ running: false, bootstrapPercent: 0, bootstrapSummary: 'not started (benchmark)', onions: [] }) } as unknown as TorService
  const delivery = { setRelay () {} } as unknown as DeliveryService
  const credentials = { list: () => [], load: async () => {}, flush: async () => {} } as unknown as CredentialStore
  const identity = { domain: OWNER.split('@')[1]!, address: OWNER } as unknown as Identity
  // The node's own OpenPGP, so message pages are read as the node reads them.
  const openpgp = openPgpService({ address: identity.address, onionAddress: identity.address }, { logger, vault, socks: () => ({ host: '127.0.0.1', port: 9 }) })
  openpgp.start()
  const backend = uiBackend({ dataDir: dir, maxMessageBytes: 25 * 1024 * 1024, submission: { host: '127.0.0.1' } }, {
    logger, identity, vault, queue, tor, delivery, credentials, openpgp,
    submissionPort: () => 0,
    socksEndpoint: () => ({ host: '127.0.0.1', port: 0 }),
    scrub: async () => { throw new Error('no scrub in the benchmark') },
    lastScrub: () => undefined,
    unlock: async (secret) => { await vault.unlock(secret) }
  })
  const ui = uiServer({ host: '127.0.0.1', port: 0 }, { node: backend, logger })
  await ui.start()

  // The floor: the UI's fastify options and plugins, a route that only sends a fixed page.
  const bodies = new Map<string, string>()
  const floor = Fastify({ logger: false, bodyLimit: 25 * 1024 * 1024, trustProxy: false })
  await floor.register(helmet, {
    contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], scriptSrc: ["'self'"], styleSrc: ["'self'"], imgSrc: ["'self'", 'data:'], connectSrc: ["'self'"], formAction: ["'self'"], frameAncestors: ["'none'"], baseUri: ["'none'"] } },
    crossOriginEmbedderPolicy: true,
    referrerPolicy: { policy: 'same-origin' },
    hsts: false
  })
  await floor.register(formbody, { bodyLimit: 1024 * 1024 })
  const fixed = async (request: { params: unknown }, reply: { type: (t: string) => { send: (b: string) => unknown } }): Promise<unknown> =>
    reply.type('text/html; charset=utf-8').send(bodies.get((request.params as { name: string }).name) ?? '')
  floor.get('/floor/:name', fixed)
  floor.post('/floor/:name', fixed)
  await floor.listen({ host: '127.0.0.1', port: 0 })
  const floorAddress = floor.server.address() as { port: number }

  const send = (message: FromChild): void => { process.send!(message) }
  let stopping = false
  // The measuring process went away without asking us to stop (it failed): stop too.
  process.once('disconnect', () => { if (!stopping) process.exit(1) })
  process.on('message', (message: ToChild) => {
    if ('floor' in message) {
      bodies.set(message.floor.name, message.floor.body)
      send({ floorSet: message.floor.name })
    } else {
      stopping = true
      const memory = process.memoryUsage()
      // What the heap holds once garbage is gone (the process runs with --expose-gc).
      ;(globalThis as { gc?: () => void }).gc?.()
      const liveHeap = process.memoryUsage().heapUsed
      void (async () => {
        await ui.stop()
        await floor.close()
        await vault.close()
        send({ stopped: { rss: memory.rss, heapUsed: memory.heapUsed, heapTotal: memory.heapTotal, liveHeap, external: memory.external } })
        process.disconnect?.()
      })()
    }
  })
  send({ ready: { ui: ui.url(), floor: `http://127.0.0.1:${floorAddress.port}`, unlockMs, rss: process.memoryUsage().rss, heapUsed: process.memoryUsage().heapUsed } })
}

// --- The client ----------------------------------------------------------------------------

interface Timed { ms: number, status: number, body: string }

async function timed (url: string, init: { method?: string, cookie?: string, form?: Record<string, string> }): Promise<Timed> {
  const headers: Record<string, string> = {}
  if (init.cookie !== undefined) headers.cookie = init.cookie
  let body: string | undefined
  if (init.form !== undefined) {
    headers['content-type'] = 'application/x-www-form-urlencoded'
    body = new URLSearchParams(init.form).toString()
  }
  const start = performance.now()
  const res = await fetch(url, { method: init.method ?? 'GET', headers, body, redirect: 'manual' })
  const text = await res.text()
  return { ms: performance.now() - start, status: res.status, body: text }
}

interface Figure {
  name: string
  goal: number
  /** The request for the i-th sample (warm-up included). */
  request: (i: number) => { path: string, form?: Record<string, string> }
}

interface Result { name: string, goal: number, times: number[], floor: number[], bytes: number[], rows: number[], failures: string[] }

function childMessage<T> (child: ChildProcess, pick: (m: FromChild) => T | undefined): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: FromChild): void => {
      const value = pick(m)
      if (value !== undefined) { child.off('message', onMessage); child.off('exit', onExit); resolve(value) }
    }
    const onExit = (code: number | null): void => { reject(new Error(`the serving process exited with ${String(code)}`)) }
    child.on('message', onMessage)
    child.once('exit', onExit)
  })
}

/** The ids and unread ids of a vault built by an earlier run (--keep). */
async function inventory (dir: string): Promise<Inventory> {
  const { vault } = await openTestVault(dir)
  const all = await vault.list('Inbox')
  await vault.close()
  console.log(`kept vault: ${all.length} messages, ${all.filter(m => !m.flags.includes('\\Seen')).length} unread`)
  return { ids: all.map(m => m.id).sort(), unread: all.filter(m => !m.flags.includes('\\Seen')).map(m => m.id) }
}

async function run (dir: string, messages: number, requests: number, warmup: number, profile: string | undefined, kept: boolean): Promise<void> {
  // Built in a process of its own: the builder ends up with a big heap (and the search index
  // build's garbage), whose collections would land in the measured times if it also measured.
  const builder = fork(fileURLToPath(import.meta.url), ['--build', dir, String(messages), kept ? 'kept' : 'new'], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  let built: Inventory | undefined
  builder.once('message', (m: Inventory) => { built = m })
  const code = await new Promise(resolve => builder.once('exit', resolve))
  if (built === undefined) throw new Error(`the building process exited with ${String(code)}`)
  const ids = built.ids
  const unread = new Set(built.unread)
  const count = ids.length
  const execArgv = ['--import', 'tsx', '--expose-gc', ...(profile !== undefined ? ['--cpu-prof', '--cpu-prof-dir', resolve(profile)] : [])]
  const child = fork(fileURLToPath(import.meta.url), ['--serve', dir], { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  try {
    await measure(child, ids, unread, count, requests, warmup)
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill()
  }
}

async function measure (child: ChildProcess, ids: string[], unread: Set<string>, count: number, requests: number, warmup: number): Promise<void> {
  const ready = await childMessage(child, m => 'ready' in m ? m.ready : undefined)
  console.log(`serving process: unlock with ${count} messages ${Math.round(ready.unlockMs)} ms, RSS after unlock and UI start ${mb(ready.rss)} MB (JS heap ${mb(ready.heapUsed)} MB used)`)

  // Sign in as the owner would: the passphrase in a form, then the cookie and a page's token.
  const signIn = await fetch(`${ready.ui}/unlock`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ method: 'passphrase', passphrase: TEST_PASSPHRASE }).toString(), redirect: 'manual' })
  await signIn.text()
  const cookie = /^([^;]+)/.exec(signIn.headers.get('set-cookie') ?? '')?.[1]
  if (signIn.status !== 303 || cookie === undefined) throw new Error(`signing in failed: ${signIn.status}`)
  const inbox = await timed(`${ready.ui}/mail/Inbox`, { cookie })
  const csrf = /name="_csrf" value="([^"]+)"/.exec(inbox.body)?.[1]
  if (inbox.status !== 200 || csrf === undefined) throw new Error(`the Inbox page did not load after signing in: ${inbox.status}`)

  const random = prng(7)
  const box = corpus(count)
  const at = (from: number, to: number): string => ids[Math.min(ids.length - 1, Math.floor(from + random() * (to - from)))]!
  const readIds = ids.filter(id => !unread.has(id))
  const unreadIds = [...unread].sort(() => random() - 0.5)
  const search = (q: () => string) => () => ({ path: '/search', form: { q: q(), _csrf: csrf } })
  const figures: Figure[] = [
    { name: 'mailbox, first page', goal: PAGE_GOAL_MS, request: () => ({ path: '/mail/Inbox' }) },
    { name: 'mailbox, middle page', goal: PAGE_GOAL_MS, request: () => ({ path: `/mail/Inbox?before=${at(count * 0.4, count * 0.6)}` }) },
    { name: 'mailbox, deep page', goal: PAGE_GOAL_MS, request: () => ({ path: `/mail/Inbox?before=${at(100, Math.max(101, count * 0.1))}` }) },
    { name: 'message, read', goal: PAGE_GOAL_MS, request: () => ({ path: `/message/${readIds[Math.floor(random() * readIds.length)]}` }) },
    // Each unread message once: the first visit marks it read (a synced write).
    { name: 'message, unread (marks read)', goal: PAGE_GOAL_MS, request: (i) => ({ path: `/message/${unreadIds[i] ?? readIds[Math.floor(random() * readIds.length)]}` }) },
    { name: 'search, common word', goal: SEARCH_GOAL_MS, request: search(() => box.word(Math.floor(random() * 50))) },
    { name: 'search, rare word', goal: SEARCH_GOAL_MS, request: search(() => box.word(10_000 + Math.floor(random() * 10_000))) },
    { name: 'search, two words', goal: SEARCH_GOAL_MS, request: search(() => `${box.word(Math.floor(random() * 2000))} ${box.word(Math.floor(random() * 2000))}`) },
    { name: 'search, from:', goal: SEARCH_GOAL_MS, request: search(() => `from:${box.correspondentName(Math.floor(random() * 500))}`) }
  ]

  const results: Result[] = []
  for (const figure of figures) {
    const result: Result = { name: figure.name, goal: figure.goal, times: [], floor: [], bytes: [], rows: [], failures: [] }
    const floorName = figure.name.replace(/[^a-z]+/g, '-')
    let floorSet = false
    for (let i = 0; i < warmup + requests; i++) {
      const { path, form } = figure.request(i)
      const answer = await timed(`${ready.ui}${path}`, { cookie, ...(form !== undefined ? { method: 'POST', form } : {}) })
      if (answer.status !== 200) {
        // Reported at the end and left out of the times; the run goes on.
        result.failures.push(`${path} answered ${answer.status} after ${answer.ms.toFixed(1)} ms: ${/role="alert">([^<]*)/.exec(answer.body)?.[1] ?? answer.body.slice(0, 300)}`)
        process.stderr.write(`  FAILED: ${result.failures.at(-1)!}\n`)
        continue
      }
      if (!floorSet) {
        floorSet = true
        // The floor sends this figure's first page, byte for byte, from then on.
        child.send({ floor: { name: floorName, body: answer.body } } satisfies ToChild)
        await childMessage(child, m => 'floorSet' in m ? m.floorSet : undefined)
      }
      const reference = await timed(`${ready.floor}/floor/${floorName}`, form !== undefined ? { method: 'POST', form } : {})
      if (i < warmup) continue
      result.times.push(answer.ms)
      result.floor.push(reference.ms)
      result.bytes.push(answer.body.length)
      result.rows.push(answer.body.split('<tr class=').length - 1)
    }
    results.push(result)
    process.stderr.write(result.times.length > 0 ? `  ${figure.name}: p95 ${quantile(result.times, 0.95).toFixed(1)} ms\n` : `  ${figure.name}: every request failed\n`)
  }

  child.send({ stop: true } satisfies ToChild)
  const stopped = await childMessage(child, m => 'stopped' in m ? m.stopped : undefined)
  await new Promise(resolve => child.once('exit', resolve))

  const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length
  console.log(`\n${requests} requests per figure after ${warmup} of warm-up, one at a time on a keep-alive connection; ms from sending to the last byte`)
  console.log('floor: the same bytes from a route that does nothing, on fastify with the same plugins, same process, one request after each measured one')
  const header = ['figure', 'p50', 'p95', 'max', 'floor p50', 'floor p95', 'goal', 'p95/goal', 'x floor p50 / p95', 'KiB', 'rows']
  const table = results.filter(r => r.times.length > 0).map(r => {
    const p95 = quantile(r.times, 0.95)
    const floorP95 = quantile(r.floor, 0.95)
    return [r.name, quantile(r.times, 0.5).toFixed(1), p95.toFixed(1), Math.max(...r.times).toFixed(1), quantile(r.floor, 0.5).toFixed(2), floorP95.toFixed(2), `< ${r.goal}`, (p95 / r.goal).toFixed(2), `${(quantile(r.times, 0.5) / quantile(r.floor, 0.5)).toFixed(1)}x / ${(p95 / floorP95).toFixed(1)}x`, (mean(r.bytes) / 1024).toFixed(1), mean(r.rows).toFixed(1)]
  })
  const widths = header.map((h, i) => Math.max(h.length, ...table.map(row => row[i]!.length)))
  const line = (cells: string[]): string => cells.map((c, i) => i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)).join('  ')
  console.log(line(header))
  for (const row of table) console.log(line(row))
  const missed = results.filter(r => r.times.length === 0 || quantile(r.times, 0.95) >= r.goal)
  console.log(missed.length === 0 ? 'every figure met its goal' : `missed: ${missed.map(r => r.name).join(', ')}`)
  for (const r of results) for (const f of r.failures) console.log(`FAILED request (${r.name}): ${f}`)
  console.log(`RSS of the serving process after the requests: ${mb(stopped.rss)} MB; JS heap ${mb(stopped.heapUsed)} MB used of ${mb(stopped.heapTotal)} MB, ${mb(stopped.liveHeap)} MB live after a full GC; external ${mb(stopped.external)} MB`)
}

if (process.argv[2] === '--serve') {
  await serve(process.argv[3]!)
} else if (process.argv[2] === '--build') {
  const dir = process.argv[3]!
  const built = process.argv[5] === 'kept' ? await inventory(dir) : await build(dir, Number(process.argv[4]))
  process.send!(built, () => { process.disconnect?.() })
} else {
  const { values } = parseArgs({ options: { messages: { type: 'string', default: '100000' }, requests: { type: 'string', default: '300' }, warmup: { type: 'string', default: '30' }, profile: { type: 'string' }, keep: { type: 'string' } } })
  const dir = values.keep ?? await mkdtemp(join(tmpdir(), 'smtorp-bench-ui-'))
  try {
    console.log(`web UI benchmark, ${new Date().toISOString()}, Node ${process.version}`)
    await run(dir, Number(values.messages), Number(values.requests), Number(values.warmup), values.profile, values.keep !== undefined && existsSync(join(dir, 'key-slots.json')))
  } finally {
    if (values.keep === undefined) await rm(dir, { recursive: true, force: true })
  }
}
