/**
 * SMTorP peers as a load generator: `sessions` distinct peer nodes, each with its own onion
 * key, deliver `messages` messages to an inbound endpoint (node/smtp-in) on 127.0.0.1, the way
 * a peer's tor hands them over: one connection per peer, EHLO, AUTH X-SMTORP-ONION (the
 * signed challenge, spec/smtorp.md), then the connection is reused and messages go out in
 * pipelined batches (SmtpConnection.sendBatch, RFC 2920), as node/delivery sends them.
 *
 * It runs in a child process, as smtp-source(1) does for the Postfix baseline, so the load
 * does not share the node's event loop. The parent starts it with `preparePeers()`, which
 * resolves once the keys exist and the messages are built; `run()` then starts the clock
 * and resolves when every message has its reply. Each message must get
 * `250 2.0.0 Stored as <id>`: a refusal, a timeout or "Already delivered" (a duplicate
 * Message-ID) fails the whole run.
 *
 * Messages: From/To/Date/Subject/Message-ID headers (as smtp-source writes them), then
 * `size` bytes of body in lines of at most 78 characters. The words follow a skewed
 * (roughly Zipfian) pick from a fixed vocabulary, so the search index sees text shaped like
 * mail rather than smtp-source's lines of "X". Message-IDs are unique per run.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { dirname, join } from 'node:path'
import { SmtpConnection, SmtpClientError, type Envelope } from '../../node/smtp-client/index.ts'
import { generateOnionKey, type OnionKey } from '../../protocol/onion.ts'
import { rfc5322Date } from '../../protocol/message.ts'

export interface SmtorpPeersInit {
  host: string
  port: number
  /** The endpoint's onion address (56 characters, no ".onion"): what peers sign for. */
  serverOnion: string
  /** Local part of the recipient at the server's onion. */
  recipient: string
  messages: number
  /** Parallel sessions, each a peer with its own onion key. */
  sessions: number
  /** Body bytes per message, headers excluded (as smtp-source -l). */
  size: number
  /** Messages per pipelined batch (node/delivery sends up to 32). */
  batch: number
  /** Upper bound for the whole run. */
  timeoutMs: number
}

export interface SmtorpPeersResult {
  /** Messages answered "250 ... Stored as". */
  messages: number
  /** Bytes of DATA sent (before dot-stuffing), all messages. */
  bytes: number
  /** From the first connect to the last reply, measured in the child. */
  seconds: number
}

export class SmtorpPeersError extends Error {
  override name = 'SmtorpPeersError'
}

type ToChild = { type: 'init', init: SmtorpPeersInit } | { type: 'go' }
type FromChild = { type: 'ready' } | { type: 'done', result: SmtorpPeersResult } | { type: 'error', message: string }

export interface PreparedPeers {
  /** Start sending; resolves when every message is stored. */
  run (): Promise<SmtorpPeersResult>
  /** Kill the child if it is still there. */
  stop (): void
}

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..')

export async function preparePeers (init: SmtorpPeersInit): Promise<PreparedPeers> {
  // process.execPath is the Node running the benchmark (Node 24 from node_modules/.bin).
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url)], {
    cwd: ROOT,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc']
  })
  let listener: ((m: FromChild) => void) | undefined
  let exited: Error | undefined
  child.on('message', (m: FromChild) => listener?.(m))
  child.on('exit', (code, signal) => {
    exited = new SmtorpPeersError(`the peers process exited (${signal ?? code}) before it finished`)
    listener?.({ type: 'error', message: exited.message })
  })
  const next = async (timeoutMs: number): Promise<FromChild> => await new Promise((resolve, reject) => {
    if (exited !== undefined) { reject(exited); return }
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new SmtorpPeersError(`the peers did not finish within ${timeoutMs} ms`)) }, timeoutMs)
    listener = (m) => { clearTimeout(timer); listener = undefined; resolve(m) }
  })
  const send = (m: ToChild): void => { child.send(m) }

  send({ type: 'init', init })
  const ready = await next(60_000)
  if (ready.type !== 'ready') { child.kill('SIGKILL'); throw new SmtorpPeersError(ready.type === 'error' ? ready.message : 'unexpected answer from the peers process') }
  return {
    async run () {
      const finished = next(init.timeoutMs)
      send({ type: 'go' })
      const m = await finished
      if (m.type === 'error') throw new SmtorpPeersError(m.message)
      if (m.type !== 'done') throw new SmtorpPeersError('unexpected answer from the peers process')
      return m.result
    },
    stop () { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') }
  }
}

// --- the child ---------------------------------------------------------------------------

/** xorshift32: the same text every run, cheap enough not to matter. */
function random (seed: number): () => number {
  let x = seed | 0 || 1
  return () => {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5
    return (x >>> 0) / 0x1_0000_0000
  }
}

const SYLLABLES = ['ka', 'lo', 'mi', 'ne', 'ru', 'sa', 'te', 'vo', 'zi', 'pa', 'do', 'fe', 'gu', 'ha', 'ji', 'bo', 'ce', 'ly', 'wa', 'xe', 'qu', 'ro', 'tin', 'mar', 'sel']

function vocabulary (size: number, rnd: () => number): string[] {
  const words = new Set<string>()
  while (words.size < size) {
    const n = 1 + Math.floor(rnd() * 4)
    let word = ''
    for (let i = 0; i < n; i++) word += SYLLABLES[Math.floor(rnd() * SYLLABLES.length)]!
    words.add(word)
  }
  return [...words]
}

function body (size: number, words: string[], rnd: () => number): Buffer {
  let text = ''
  let line = ''
  while (text.length + line.length < size) {
    // rnd()^3 favours the start of the list: a few words are very common, most are rare.
    const word = words[Math.floor(rnd() ** 3 * words.length)]!
    if (line.length + word.length + 1 > 78) { text += `${line}\r\n`; line = '' }
    line += line === '' ? word : ` ${word}`
  }
  text += line
  return Buffer.from(text.slice(0, Math.max(0, size - 2)) + '\r\n', 'latin1')
}

function buildEnvelopes (init: SmtorpPeersInit, keys: OnionKey[]): Envelope[][] {
  const rnd = random(0x5eed)
  const words = vocabulary(5000, rnd)
  const to = `${init.recipient}@${init.serverOnion}.onion`
  const run = Date.now().toString(36)
  const perSession: Envelope[][] = keys.map(() => [])
  for (let n = 0; n < init.messages; n++) {
    const s = n % keys.length
    const key = keys[s]!
    const from = `peer${s}@${key.address}.onion`
    const headers = [
      `From: <${from}>`, `To: <${to}>`, `Date: ${rfc5322Date(new Date())}`,
      `Subject: ${words[Math.floor(rnd() * 200)]!} ${words[Math.floor(rnd() * words.length)]!} ${n}`,
      `Message-ID: <${run}.${n}@${key.address}.onion>`
    ].join('\r\n')
    perSession[s]!.push({ from, to: [to], raw: Buffer.concat([Buffer.from(`${headers}\r\n\r\n`, 'latin1'), body(init.size, words, rnd)]) })
  }
  return perSession
}

/** Sends a session's messages; resolves with the count and the time of the last reply (before QUIT). */
async function session (init: SmtorpPeersInit, key: OnionKey, envelopes: Envelope[]): Promise<{ stored: number, lastReply: bigint }> {
  const socket = await SmtpConnection.dial(init.host, init.port, 10_000)
  const connection = await SmtpConnection.open(socket, { ehloName: `${key.address}.onion`, timeoutMs: 30_000, dataTimeoutMs: 60_000 })
  let stored = 0
  try {
    await connection.authOnion(key, init.serverOnion)
    for (let i = 0; i < envelopes.length; i += init.batch) {
      const outcomes = await connection.sendBatch(envelopes.slice(i, i + init.batch))
      for (const outcome of outcomes) {
        if (outcome instanceof SmtpClientError) throw outcome
        const result = outcome[0]
        if (result?.ok !== true || !/Stored as \d+/.test(result.reply)) throw new SmtorpPeersError(`a message was not stored: ${result?.reply ?? 'no result'}`)
        stored++
      }
    }
  } catch (err) {
    connection.close()
    throw err
  }
  const lastReply = process.hrtime.bigint()
  await connection.quit()
  return { stored, lastReply }
}

async function child (): Promise<void> {
  const init = await new Promise<SmtorpPeersInit>(resolve => {
    process.once('message', (m: ToChild) => { if (m.type === 'init') resolve(m.init) })
  })
  const keys = Array.from({ length: init.sessions }, () => generateOnionKey())
  const perSession = buildEnvelopes(init, keys)
  const bytes = perSession.flat().reduce((sum, e) => sum + e.raw.length, 0)
  const go = new Promise<void>(resolve => { process.once('message', () => { resolve() }) })
  process.send!({ type: 'ready' } satisfies FromChild)
  await go
  const started = process.hrtime.bigint()
  try {
    const sessions = await Promise.all(keys.map(async (key, s) => await session(init, key, perSession[s]!)))
    const last = sessions.reduce((max, s) => s.lastReply > max ? s.lastReply : max, started)
    const seconds = Number(last - started) / 1e9
    const messages = sessions.reduce((sum, s) => sum + s.stored, 0)
    process.send!({ type: 'done', result: { messages, bytes, seconds } } satisfies FromChild)
  } catch (err) {
    process.send!({ type: 'error', message: `${(err as Error).name}: ${(err as Error).message}` } satisfies FromChild)
  }
  process.disconnect?.()
}

if (import.meta.url === `file://${process.argv[1]}` && process.send !== undefined) {
  await child()
}
