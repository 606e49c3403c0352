// Hostile input against the SMTorP endpoint, seeded with real commands and mutated at random
// (after mox's fuzzing): whatever arrives, the server answers or hangs up, never crashes,
// never stores anything from an unauthenticated session, and keeps serving honest peers.
// Bounded: a fixed number of sessions, each with a deadline; the seed is printed on failure.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect } from 'node:net'
import { smtpIn, type SmtpIn } from '../node/smtp-in/index.ts'
import type { MailStore } from '../node/store/index.ts'
import { openTestVault } from './harness/vault.ts'
import { silentLogger } from '../node/log/index.ts'
import { SmtpConnection } from '../node/smtp-client/index.ts'
import { generateOnionKey } from '../protocol/onion.ts'

const SESSIONS = 300
const server = generateOnionKey()
const peer = generateOnionKey()
const bob = `bob@${server.address}.onion`

const SEEDS = [
  'EHLO peer', 'HELO peer', `MAIL FROM:<x@${peer.address}.onion>`, `RCPT TO:<${bob}>`, 'DATA', 'RSET', 'NOOP', 'QUIT',
  'AUTH X-SMTORP-ONION', 'AUTH PLAIN AGEAYg==', 'STARTTLS', 'VRFY bob', 'EXPN list', 'HELP', 'BDAT 10 LAST',
  `MAIL FROM:<x@${peer.address}.onion> SIZE=99999999999999999999 BODY=8BITMIME`, `RCPT TO:<@a,@b:${bob}>`,
  'Subject: x', '.', '..', ''
]

/** A small deterministic PRNG (mulberry32), so a failing run can be repeated from its seed. */
function prng (seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function mutate (line: string, random: () => number): Buffer {
  const bytes = [...Buffer.from(line, 'latin1')]
  const edits = Math.floor(random() * 4)
  for (let i = 0; i < edits; i++) {
    const at = Math.floor(random() * (bytes.length + 1))
    switch (Math.floor(random() * 5)) {
      case 0: bytes.splice(at, 0, Math.floor(random() * 256)); break // insert any byte
      case 1: bytes.splice(at, 1); break // delete
      case 2: bytes.splice(at, 0, ...Buffer.from('\r\n')); break // split the line
      case 3: bytes.splice(at, 0, ...Array(Math.floor(random() * 3000)).fill(0x41)); break // long run
      default: if (at < bytes.length) bytes[at] = bytes[at]! ^ (1 << Math.floor(random() * 8)) // flip a bit
    }
  }
  return Buffer.from([...bytes, 0x0d, 0x0a])
}

async function session (port: number, random: () => number): Promise<number> {
  const socket = connect({ host: '127.0.0.1', port })
  let replies = 0
  socket.on('error', () => {})
  socket.on('data', (chunk: Buffer) => { replies += chunk.toString('latin1').split('\n').length - 1 })
  // Wait for the greeting: smtp-server hangs up on clients that talk first, and the point
  // is to reach the command parser and the node's handlers.
  const deadline = Date.now() + 3000
  while (replies === 0 && !socket.destroyed && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 5))
  const lines = 1 + Math.floor(random() * 12)
  for (let i = 0; i < lines && !socket.destroyed; i++) {
    socket.write(mutate(SEEDS[Math.floor(random() * SEEDS.length)]!, random))
  }
  await new Promise<void>(resolve => { const t = setTimeout(resolve, 50); socket.once('close', () => { clearTimeout(t); resolve() }) })
  socket.destroy()
  return replies
}

let dir: string
let store: MailStore
let endpoint: SmtpIn

describe('inbound SMTorP endpoint under random hostile input', () => {
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'smtorp-fuzz-'))
    store = (await openTestVault(join(dir, 'vault'))).vault
    endpoint = smtpIn({ onion: server.address, users: ['bob'], port: 0, maxMessageBytes: 64 * 1024, maxMessagesPerPeerPerMinute: 1000, maxConnections: 50 }, { logger: silentLogger(), store })
    await endpoint.start()
  })
  after(async () => {
    await endpoint.stop()
    await store.close()
    await rm(dir, { recursive: true, force: true })
  })

  it(`survives ${SESSIONS} mutated sessions, stores nothing from them, and still serves a peer`, async () => {
    const seed = Number(process.env.SMTORP_FUZZ_SEED ?? Date.now() % 2 ** 31)
    const random = prng(seed)
    const deadline = Date.now() + 60_000
    let replies = 0
    for (let i = 0; i < SESSIONS && Date.now() < deadline; i += 10) {
      const counts = await Promise.all(Array.from({ length: 10 }, async () => await session(endpoint.port(), random)))
      replies += counts.reduce((a, b) => a + b, 0)
    }
    // The input reached the server's command handling: far more replies than greetings.
    assert.ok(replies > SESSIONS * 2, `seed ${seed}: only ${replies} replies`)
    assert.equal((await store.list('Inbox')).length, 0, `seed ${seed}: something unauthenticated was stored`)
    const socket = await SmtpConnection.dial('127.0.0.1', endpoint.port(), 5000)
    const connection = await SmtpConnection.open(socket, { ehloName: `${peer.address}.onion`, timeoutMs: 5000 })
    await connection.authOnion(peer, server.address)
    const results = await connection.send({ from: `alice@${peer.address}.onion`, to: [bob], raw: Buffer.from('Subject: after the storm\r\n\r\nstill here\r\n') })
    await connection.quit()
    assert.equal(results[0]?.ok, true, `seed ${seed}: ${String(results[0]?.reply)}`)
    assert.equal((await store.list('Inbox')).length, 1)
  })
})
