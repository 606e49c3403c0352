/**
 * OpenPGP throughput (issue 5): sign+encrypt and decrypt+verify of mail as the node does it
 * (node/openpgp/: PGP/MIME, RFC 3156, with protected headers), in messages/s for 10 KiB and
 * MB/s for 1 MiB messages, and the ingest rate of encrypted mail into a real vault with the
 * OpenPGP service reading it, each beside a reference measured in the same run.
 *
 *   npm run bench:openpgp                       # ~85 s
 *   node_modules/.bin/node --import tsx bench/openpgp.ts [--slice-ms 300] [--messages 1000]
 *     [--senders 10] [--concurrency 8] [--rounds 3] [--timeout-s 90] [--part all|crypto|ingest]
 *
 * Crypto figures. Keys as generateOwnKey makes them (ed25519 signing, curve25519 "legacy" ECDH
 * encryption, v4). alice sends to bob: encryptMessage with one visible recipient, signed by
 * alice and encrypted to bob and to alice's own key, the route header in the protected part,
 * as prepareOutgoing calls it; readIncoming with bob's key decrypts and verifies it (the
 * result is checked once: decrypted, good signature, protected Subject restored). The
 * message is what prepareOutgoing hands over: a plain message with alice's Autocrypt header.
 * References: openpgp.js's own encrypt (same keys, signed, armored, as PGP/MIME requires)
 * and decrypt + verify of the same bytes without MIME, so the ratio "x raw" is what the MIME
 * work (splitting, protected-header part, line endings, multipart) costs on top; sign-only
 * (signMessage, a detached signature) beside openpgp.sign detached likewise. AES-256-GCM
 * (node:crypto, a new nonce per message) is the floor for MB/s: a bare cipher over the same
 * bytes, at the start and the end of the crypto figures. MB/s counts the plain message's bytes (10^6 B/s).
 * Each figure: a warm-up of half a slice, then 3 slices of --slice-ms alternating with its
 * reference's slices (so both see the same drift); the median slice rate. One operation at a
 * time, awaited.
 *
 * Ingest. A fresh vault (test Argon2 settings, everything else as a node runs it) holding
 * bob's key record, the OpenPGP service started on it as node/node.ts does. --messages
 * messages of 10 KiB from --senders correspondents, each with the sender's Autocrypt header
 * and signed and encrypted beforehand (encryptMessage), are stored into the Inbox with
 * vault.add, --concurrency at a time (as the SMTorP endpoint stores mail from several peers).
 * The clock runs from the first add until every message is stored, read by the service
 * (processNew: decrypt, verify, Autocrypt and TOFU update of the sender's record, the route
 * learned, the security and protected Subject sealed into the message's metadata) and in the
 * search index (which decrypts each message again, through setSearchContent). Reference: the
 * same messages not encrypted (the plain bytes given to encryptMessage, with their Autocrypt
 * header), in a fresh vault of their own, in the same run; plain and encrypted alternate
 * --rounds times and medians are reported. After each run every message's metadata and the
 * peer records are checked, and one search must find a word of an encrypted body.
 */
import { createCipheriv, randomBytes } from 'node:crypto'
import { cpus, loadavg, tmpdir } from 'node:os'
import { mkdtemp, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import * as openpgp from 'openpgp'
import { openTestVault } from '../test/harness/vault.ts'
import { silentLogger } from '../node/log/index.ts'
import { openPgpService } from '../node/openpgp/index.ts'
import { generateOwnKey, minimalPublicKey } from '../node/openpgp/keys.ts'
import { encryptMessage, signMessage } from '../node/openpgp/outgoing.ts'
import { readIncoming } from '../node/openpgp/incoming.ts'
import { formatAutocryptHeader } from '../protocol/autocrypt.ts'
import { generateOnionKey } from '../protocol/onion.ts'
import type { Vault } from '../node/vault/index.ts'
import { median, prng, runFor } from './lib/stats.ts'
import { zipfVocabulary, type Vocabulary } from './lib/vocabulary.ts'

const SIZES = [10 * 1024, 1024 * 1024]
/** No figure loop runs more operations than this in one slice, whatever the clock says. */
const MAX_OPS_PER_SLICE = 100_000

interface Person {
  address: string
  onion: string
  priv: openpgp.PrivateKey
  pub: openpgp.PublicKey
  armoredPrivateKey: string
  autocrypt: string
}

async function person (local: string, domain: string): Promise<Person> {
  const address = `${local}@${domain}`
  const onion = `${local}@${generateOnionKey().address}.onion`
  const record = await generateOwnKey({ addresses: [address, onion] })
  const priv = await openpgp.readPrivateKey({ armoredKey: record.armoredPrivateKey })
  const keydata = Buffer.from(await minimalPublicKey(priv, address))
  const autocrypt = `Autocrypt: ${formatAutocryptHeader({ addr: address, preferEncrypt: 'mutual', keydata })}`
  return { address, onion, priv, pub: priv.toPublic(), armoredPrivateKey: record.armoredPrivateKey, autocrypt }
}

/**
 * A message as prepareOutgoing hands it to encryptMessage: sanitized headers, the sender's
 * Autocrypt header, a body of words. Up to 64 KiB a text/plain body; above, a short text and
 * a base64 attachment of random bytes (what a 1 MiB mail mostly is). `size` is the whole.
 */
function plainMessage (o: { from: Person, to: string, subject: string, messageId: string, size: number, words: Vocabulary, random: () => number }): Buffer {
  const text = (bytes: number): string => {
    const lines: string[] = []
    let line = ''
    let length = 0
    while (length < bytes) {
      const word = o.words.pick(o.random())
      if (line.length + word.length + 1 > 72) { lines.push(line); length += line.length + 2; line = '' }
      line = line === '' ? word : `${line} ${word}`
    }
    return `${lines.join('\r\n')}\r\n`
  }
  const head = [
    o.from.autocrypt,
    `From: ${o.from.address}`,
    `To: ${o.to}`,
    `Subject: ${o.subject}`,
    'Date: Sun, 22 Nov 2026 20:00:00 +0000',
    `Message-ID: <${o.messageId}>`,
    'MIME-Version: 1.0'
  ].join('\r\n')
  const room = o.size - head.length - 200
  if (o.size <= 64 * 1024) {
    return Buffer.from(`${head}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n${text(room)}`, 'utf8')
  }
  const boundary = 'bench-boundary-1'
  const textPart = text(2048)
  const attachmentBytes = Math.floor((room - textPart.length - 300) * 76 / 78 * 3 / 4)
  const data = Buffer.alloc(attachmentBytes)
  for (let i = 0; i < data.length; i++) data[i] = Math.floor(o.random() * 256)
  const base64 = data.toString('base64').replace(/.{76}/g, '$&\r\n')
  return Buffer.from(`${head}\r\nContent-Type: multipart/mixed; boundary="${boundary}"\r\n\r\n` +
    `--${boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n${textPart}` +
    `--${boundary}\r\nContent-Type: application/octet-stream; name="data.bin"\r\nContent-Disposition: attachment; filename="data.bin"\r\nContent-Transfer-Encoding: base64\r\n\r\n${base64}\r\n` +
    `--${boundary}--\r\n`, 'utf8')
}

// --- crypto figures ------------------------------------------------------------------------


/** Operations per second of `op`: the median of 3 slices after a warm-up. */
async function opsPerSecond (sliceMs: number, op: () => Promise<unknown> | unknown): Promise<number> {
  return (await opsPerSecondAlternating(sliceMs, [op]))[0]!
}

/**
 * Operations per second of each op: a warm-up of half a slice each, then 3 rounds of one
 * slice of each in turn, so a figure and its reference see the same drift; medians.
 */
async function opsPerSecondAlternating (sliceMs: number, ops: Array<() => Promise<unknown> | unknown>): Promise<number[]> {
  for (const op of ops) await runFor(sliceMs / 2, op, MAX_OPS_PER_SLICE)
  const rates: number[][] = ops.map(() => [])
  for (let slice = 0; slice < 3; slice++) {
    for (const [i, op] of ops.entries()) {
      const run = await runFor(sliceMs, op, MAX_OPS_PER_SLICE)
      rates[i]!.push(run.ops / (run.ms / 1000))
    }
  }
  return rates.map(r => median(r))
}

function aesGcmEncrypt (data: Buffer): () => void {
  const key = randomBytes(32)
  let counter = 0
  return () => {
    const iv = Buffer.alloc(12)
    iv.writeUInt32BE(counter++, 8)
    const cipher = createCipheriv('aes-256-gcm', key, iv)
    cipher.update(data)
    cipher.final()
    cipher.getAuthTag()
  }
}

interface Figure { label: string, reference?: string, perSize: number[] }

function check (condition: boolean, what: string): void {
  if (!condition) throw new Error(`check failed: ${what}`)
}

async function cryptoFigures (sliceMs: number, alice: Person, bob: Person, words: Vocabulary, random: () => number): Promise<{ figures: Figure[], aesStart: number[], aesEnd: number[], bytes: number[] }> {
  const messages = SIZES.map((size, i) => plainMessage({ from: alice, to: bob.address, subject: `Figures for size ${i}`, messageId: `figure-${i}@example.org`, size, words, random }))
  const protectedExtra = [`SMTorP-Route: ${alice.onion}`]
  const encryptOptions = { signingKey: alice.priv, protectedExtra, ownKey: alice.pub, visible: [{ address: bob.address, key: bob.pub }], blind: [], gossip: [] }
  const readKeys = { decryptionKeys: [bob.priv], verificationKeys: [alice.pub] }

  const ops: Record<string, Array<() => Promise<unknown> | unknown>> = {}
  const add = (label: string, op: () => Promise<unknown> | unknown): void => { (ops[label] ??= []).push(op) }
  for (const plain of messages) {
    const [copy] = await encryptMessage(plain, encryptOptions)
    check(copy !== undefined, 'encryptMessage made one copy')
    const encrypted = copy!.raw
    const read = await readIncoming(encrypted, readKeys)
    check(read.security.decrypted === true && read.security.signature === 'good', `readIncoming decrypts and verifies (${JSON.stringify(read.security)})`)
    check(/^Subject: Figures for size/m.test(read.display?.toString('latin1') ?? ''), 'the protected Subject is restored')
    const signed = await signMessage(plain, { signingKey: alice.priv, protectedExtra })
    check((await readIncoming(signed, readKeys)).security.signature === 'good', 'a signed message verifies')

    const rawArmored = await openpgp.encrypt({ message: await openpgp.createMessage({ binary: plain }), encryptionKeys: [bob.pub, alice.pub], signingKeys: alice.priv, format: 'armored' })
    const rawDecrypt = async (): Promise<Uint8Array> => {
      const result = await openpgp.decrypt({ message: await openpgp.readMessage({ armoredMessage: rawArmored }), decryptionKeys: bob.priv, verificationKeys: alice.pub, format: 'binary' })
      await result.signatures[0]!.verified
      return result.data
    }
    check(Buffer.from(await rawDecrypt()).equals(plain), 'raw openpgp.decrypt gives the bytes back')
    const rawSignature = await openpgp.sign({ message: await openpgp.createMessage({ binary: plain }), signingKeys: alice.priv, detached: true, format: 'armored' })
    const rawVerify = async (): Promise<void> => {
      const result = await openpgp.verify({ message: await openpgp.createMessage({ binary: plain }), signature: await openpgp.readSignature({ armoredSignature: rawSignature }), verificationKeys: alice.pub })
      await result.signatures[0]!.verified
    }
    await rawVerify()

    add('sign+encrypt, PGP/MIME (encryptMessage)', async () => await encryptMessage(plain, encryptOptions))
    add('  raw openpgp.encrypt, signed (reference)', async () => await openpgp.encrypt({ message: await openpgp.createMessage({ binary: plain }), encryptionKeys: [bob.pub, alice.pub], signingKeys: alice.priv, format: 'armored' }))
    add('decrypt+verify, PGP/MIME (readIncoming)', async () => await readIncoming(encrypted, readKeys))
    add('  raw openpgp.decrypt + verify (reference)', rawDecrypt)
    add('sign only, PGP/MIME (signMessage)', async () => await signMessage(plain, { signingKey: alice.priv, protectedExtra }))
    add('  raw openpgp.sign, detached (reference)', async () => await openpgp.sign({ message: await openpgp.createMessage({ binary: plain }), signingKeys: alice.priv, detached: true, format: 'armored' }))
    add('verify signed, PGP/MIME (readIncoming)', async () => await readIncoming(signed, readKeys))
    add('  raw openpgp.verify, detached (reference)', rawVerify)
  }

  const aesStart: number[] = []
  for (const plain of messages) aesStart.push(await opsPerSecond(sliceMs, aesGcmEncrypt(plain)))
  const figures: Figure[] = []
  const labels = Object.keys(ops)
  for (const label of labels) figures.push({ label, perSize: [] })
  // Each MIME figure alternates slice by slice with its reference, so drift hits both alike.
  for (let s = 0; s < SIZES.length; s++) {
    for (let i = 0; i < labels.length; i += 2) {
      const [mime, reference] = await opsPerSecondAlternating(sliceMs, [ops[labels[i]!]![s]!, ops[labels[i + 1]!]![s]!])
      figures[i]!.perSize[s] = mime!
      figures[i + 1]!.perSize[s] = reference!
    }
  }
  for (let i = 0; i < figures.length; i += 2) figures[i]!.reference = figures[i + 1]!.label
  const aesEnd: number[] = []
  for (const plain of messages) aesEnd.push(await opsPerSecond(sliceMs, aesGcmEncrypt(plain)))
  return { figures, aesStart, aesEnd, bytes: messages.map(m => m.length) }
}

// --- ingest --------------------------------------------------------------------------------

interface IngestMessage { raw: Buffer, from: string, messageId: string }

interface IngestRun {
  kind: 'plain' | 'encrypted'
  /** Seconds from the first add: every add resolved, processNew done, search index caught up. */
  stored: number
  read: number
  indexed: number
  done: number
  /** How many messages the search indexer had done when the last add resolved. */
  atStored: { indexed: number }
  bytes: number
}

async function withTimeout<T> (ms: number, what: string, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([work, new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms / 1000} s`)), ms) })])
  } finally {
    clearTimeout(timer)
  }
}

async function ingestRun (kind: IngestRun['kind'], messages: IngestMessage[], o: { bob: Person, bobOnion: string, senders: Person[], concurrency: number, timeoutMs: number, searchWord: string }): Promise<IngestRun> {
  const dir = await mkdtemp(join(tmpdir(), 'smtorp-bench-openpgp-'))
  let vault: Vault | undefined
  let service: ReturnType<typeof openPgpService> | undefined
  try {
    vault = (await openTestVault(join(dir, 'vault'))).vault
    // bob's key as the service keeps it (spec/node-data.md "openpgp/own-key"), so the
    // messages made beforehand are encrypted to the key this vault's service holds.
    await vault.putRecord('openpgp', 'own-key', Buffer.from(JSON.stringify({ armoredPrivateKey: o.bob.armoredPrivateKey, retired: [], revocationCertificate: '' })))
    service = openPgpService({ address: o.bob.address, onionAddress: o.bobOnion }, { logger: silentLogger(), vault, socks: () => ({ host: '127.0.0.1', port: 9 }) })
    service.start()
    const readyBy = Date.now() + 10_000
    while (!service.ready() && Date.now() < readyBy) await new Promise(resolve => setTimeout(resolve, 5))
    check(service.ready(), 'the OpenPGP service loaded its key within 10 s')
    check((await service.ownKey()).fingerprint === o.bob.pub.getFingerprint().toUpperCase(), 'the service holds bob\'s key')

    const v = vault
    const started = performance.now()
    const seconds = (): number => (performance.now() - started) / 1000
    let next = 0
    await withTimeout(o.timeoutMs, `storing ${messages.length} ${kind} messages`, Promise.all(Array.from({ length: o.concurrency }, async () => {
      while (next < messages.length) {
        const m = messages[next++]!
        const result = await v.add({ folder: 'Inbox', raw: m.raw, from: m.from, to: [o.bob.address], messageId: m.messageId })
        check(!result.duplicate, 'no message is a duplicate')
      }
    })))
    const stored = seconds()
    const progress = v.indexingProgress()
    const atStored = { indexed: progress.total === 0 ? messages.length : messages.length - (progress.total - progress.done) }
    let read = 0
    let indexed = 0
    const s = service
    await withTimeout(o.timeoutMs, `reading ${messages.length} ${kind} messages`, Promise.all([
      // Queued behind every processNew the adds started; it resolves when all are read.
      s.processNew().then(() => { read = seconds() }),
      v.searchReady().then(() => { indexed = seconds() })
    ]))
    const done = seconds()

    // Did the work happen? Every message read and annotated, every sender pinned.
    const inbox = await v.list('Inbox')
    check(inbox.length === messages.length, `the Inbox holds ${messages.length} (holds ${inbox.length})`)
    for (const meta of inbox) {
      if (kind === 'encrypted') {
        const sec = meta.security
        check(sec?.decrypted === true && sec.signature === 'good' && (sec.keyState === 'pinned' || sec.keyState === 'first-seen'), `message ${meta.id} read: ${JSON.stringify(sec)}`)
        check(meta.subject !== '...', `message ${meta.id} shows its protected Subject`)
      } else {
        check(meta.security === undefined, `plain message ${meta.id} has no security note`)
      }
    }
    const peers = s.peers()
    check(peers.length === o.senders.length && peers.every(p => p.pinned !== undefined), `every sender pinned (${peers.length} peers)`)
    if (kind === 'encrypted') check(peers.every(p => p.route !== undefined), 'every sender\'s route learned from signed mail')
    check((await v.search(o.searchWord)).length > 0, `a search for "${o.searchWord}" finds ${kind} mail`)
    return { kind, stored, read, indexed, done, atStored, bytes: messages.reduce((sum, m) => sum + m.raw.length, 0) }
  } finally {
    await service?.stop().catch(() => {})
    await vault?.close().catch(() => {})
    await rm(dir, { recursive: true, force: true })
  }
}

// --- output --------------------------------------------------------------------------------

function table (header: string[], rows: string[][]): string {
  const widths = header.map((_, c) => Math.max(...[header, ...rows].map(line => line[c]!.length)))
  return [header, ...rows].map(cells => cells.map((cell, c) => c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!)).join('  ')).join('\n')
}

const fixed = (n: number, digits = 0): string => n.toFixed(digits)

async function main (): Promise<void> {
  const { values } = parseArgs({
    options: {
      'slice-ms': { type: 'string', default: '300' },
      messages: { type: 'string', default: '1000' },
      senders: { type: 'string', default: '10' },
      concurrency: { type: 'string', default: '8' },
      rounds: { type: 'string', default: '3' },
      'timeout-s': { type: 'string', default: '90' },
      part: { type: 'string', default: 'all' }
    }
  })
  const sliceMs = Number(values['slice-ms'])
  const count = Number(values.messages)
  const senderCount = Number(values.senders)
  const concurrency = Number(values.concurrency)
  const rounds = Number(values.rounds)
  const timeoutMs = Number(values['timeout-s']) * 1000
  const part = values.part
  if (part !== 'all' && part !== 'crypto' && part !== 'ingest') throw new Error('--part is all, crypto or ingest')
  for (const [name, n] of Object.entries({ sliceMs, count, senderCount, concurrency, rounds, timeoutMs })) {
    if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer`)
  }
  const wallStart = performance.now()
  const loadStart = loadavg()
  const cpu = cpus()
  console.log(`OpenPGP throughput, ${new Date().toISOString()}, Node ${process.versions.node}, openpgp.js ${openpgp.config.versionString}, ${cpu.length} x ${cpu[0]?.model ?? 'unknown CPU'}`)
  console.log(`load average at the start: ${loadStart.map(l => l.toFixed(2)).join(' ')}`)

  const random = prng(5)
  const words = zipfVocabulary(random)
  const alice = await person('alice', 'example.org')
  const bob = await person('bob', 'example.net')

  if (part !== 'ingest') await printCryptoFigures(sliceMs, alice, bob, words, random)
  if (part !== 'crypto') await printIngest({ count, senderCount, concurrency, rounds, timeoutMs, bob, words, random })
  console.log(`load average at the end: ${loadavg().map(l => l.toFixed(2)).join(' ')}; whole run ${fixed((performance.now() - wallStart) / 1000, 1)} s`)
}

async function printCryptoFigures (sliceMs: number, alice: Person, bob: Person, words: Vocabulary, random: () => number): Promise<void> {
  const crypto = await cryptoFigures(sliceMs, alice, bob, words, random)
  const aes = crypto.aesStart.map((start, i) => (start + crypto.aesEnd[i]!) / 2)
  const [small, large] = crypto.bytes as [number, number]
  console.log('')
  console.log(`crypto: alice -> bob, one operation at a time; median of 3 slices of ${sliceMs} ms after a warm-up, alternating with the reference's`)
  console.log(`messages of ${small} B ("10 KiB", text/plain) and ${large} B ("1 MiB", text + base64 attachment); MB/s of plain message bytes (10^6 B/s)`)
  console.log('x raw = rate / the reference row below it (openpgp.js on the same bytes, no MIME); x AES = MB/s / AES-256-GCM\'s')
  const byLabel = new Map(crypto.figures.map(f => [f.label, f]))
  const rows = crypto.figures.map(f => {
    const ref = f.reference !== undefined ? byLabel.get(f.reference)! : f
    const r = f.perSize
    return [
      f.label,
      fixed(r[0]!, 0), fixed(r[0]! * small / 1e6, 1), fixed(r[0]! / ref.perSize[0]!, 2),
      fixed(r[1]!, 1), fixed(r[1]! * large / 1e6, 1), fixed(r[1]! / ref.perSize[1]!, 2), fixed(r[1]! / aes[1]!, 3)
    ]
  })
  rows.push(['AES-256-GCM encrypt, node:crypto (floor)', fixed(aes[0]!, 0), fixed(aes[0]! * small / 1e6, 0), '', fixed(aes[1]!, 0), fixed(aes[1]! * large / 1e6, 0), '', '1.000'])
  console.log(table(['figure', '10K msg/s', '10K MB/s', 'x raw', '1M msg/s', '1M MB/s', 'x raw', 'x AES'], rows))
  console.log(`AES-256-GCM at the start / end: ${crypto.aesStart.map((r, i) => `${fixed(r * crypto.bytes[i]! / 1e6)} / ${fixed(crypto.aesEnd[i]! * crypto.bytes[i]! / 1e6)}`).join(', ')} MB/s (10 KiB, 1 MiB)`)
}

async function printIngest (o: { count: number, senderCount: number, concurrency: number, rounds: number, timeoutMs: number, bob: Person, words: Vocabulary, random: () => number }): Promise<void> {
  const { count, senderCount, concurrency, rounds, timeoutMs, bob, words, random } = o
  // The messages are made before any clock runs.
  const bobOnion = bob.onion
  const senders = await Promise.all(Array.from({ length: senderCount }, async (_, i) => await person(`sender${i}`, `example${i}.org`)))
  const plain: IngestMessage[] = []
  const encrypted: IngestMessage[] = []
  const searchWord = 'zzbenchmarker'
  for (let i = 0; i < count; i++) {
    const sender = senders[i % senders.length]!
    const messageId = `ingest-${i}@${sender.address.split('@')[1]!}`
    let raw = plainMessage({ from: sender, to: bob.address, subject: `Ingest ${i}`, messageId, size: SIZES[0]!, words, random })
    if (i === 0) raw = Buffer.concat([raw, Buffer.from(`${searchWord}\r\n`)])
    plain.push({ raw, from: sender.address, messageId })
    const [copy] = await encryptMessage(raw, { signingKey: sender.priv, protectedExtra: [`SMTorP-Route: ${sender.onion}`], ownKey: sender.pub, visible: [{ address: bob.address, key: bob.pub }], blind: [], gossip: [] })
    encrypted.push({ raw: copy!.raw, from: sender.address, messageId })
  }
  const runs: IngestRun[] = []
  const options = { bob, bobOnion, senders, concurrency, timeoutMs, searchWord }
  for (let round = 0; round < rounds; round++) {
    runs.push(await ingestRun('plain', plain, options))
    runs.push(await ingestRun('encrypted', encrypted, options))
  }
  const meanSize = (kind: IngestRun['kind']): number => (kind === 'plain' ? plain : encrypted).reduce((s, m) => s + m.raw.length, 0) / count
  console.log('')
  console.log(`ingest: ${count} messages from ${senderCount} senders into the Inbox (vault.add, ${concurrency} at a time), fresh vault per run, OpenPGP service started`)
  console.log(`plain: ${fixed(meanSize('plain'))} B per message; encrypted (signed, PGP/MIME): ${fixed(meanSize('encrypted'))} B; s from the first add`)
  console.log(table(
    ['run', 'stored', 'read (processNew)', 'indexed', 'all done', 'msg/s', 'indexed when stored'],
    runs.map((r, i) => [`${Math.floor(i / 2) + 1} ${r.kind}`, fixed(r.stored, 2), fixed(r.read, 2), fixed(r.indexed, 2), fixed(r.done, 2), fixed(count / r.done, 0), `${r.atStored.indexed}/${count}`])
  ))
  const rate = (kind: IngestRun['kind']): number => median(runs.filter(r => r.kind === kind).map(r => count / r.done))
  const storeRate = (kind: IngestRun['kind']): number => median(runs.filter(r => r.kind === kind).map(r => count / r.stored))
  console.log(`median ingest, everything done: encrypted ${fixed(rate('encrypted'))} msg/s, plain ${fixed(rate('plain'))} msg/s (reference); ratio ${fixed(rate('encrypted') / rate('plain'), 2)}`)
  console.log(`median rate of the adds alone (stored): encrypted ${fixed(storeRate('encrypted'))} msg/s, plain ${fixed(storeRate('plain'))} msg/s`)
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await main()
}
