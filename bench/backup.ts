/**
 * Backups (node/backup/mailbox-backup.ts) onto friends over the private Tor network, onto
 * Dovecot over IMAP, and restores from them; every figure beside a reference measured in the
 * same run.
 *
 *   npm run bench:backup [-- --messages 500 --size 8192 --big 10000 --no-imap-tor --timeout-s 1500]
 *
 * Mail: `--messages` messages of `--size` body bytes each (random words of the benchmarks'
 * Zipf vocabulary, bench/lib/vocabulary.ts, in lines of at most 76 characters; random base64
 * lines were tried first, and the search index, which sees nearly every line as a new token,
 * then took minutes and 2.7 GB for 10,000 messages), plus ~250 bytes of headers, added to a vault in a node data
 * directory (test/harness/nodes.ts initNodeDir). The backup is `backupToTarget` as the node
 * runs it (sealed blobs, `parallel` of the target); the friends target keeps its placement
 * record in the vault (`vaultPlacementStore`), as a node does.
 *
 * 1. Friends over Tor: an owner and 3 friends, each host with its own client tor on the
 *    private network, friends reached by onion (bench/lib/friends-world.ts); k = 2, so n = 3
 *    and m = 1. The circuits are built before the clock starts (a warm-up request to each
 *    friend). Reference: the bare request/answer path the backup protocol runs on
 *    (node/friends/rpc.ts `request`/`serve`, a sink handler), carrying the same number of
 *    bytes as the backup's shards from the owner to one friend's onion in bodies of 256 KiB,
 *    4 in flight; and the same spread over the 3 friends at once.
 * 2. Dovecot over IMAP (`imapBackupTarget`), direct on loopback and through Tor (Dovecot's
 *    port published as an onion on a friend's tor, the target using the owner's tor as a
 *    socks5 proxy). Reference: APPEND of the same raw mail messages (not sealed, not base64)
 *    with imapflow, one connection, one at a time, into another folder.
 * 3. Restores (`restoreFromTarget` into a new data directory, as on a new machine: the
 *    friends target starts with an empty placement record and finds the shards from the
 *    friends' lists). Reference: restoring the same backup from a memory target (the local
 *    cost: opening blobs, vault.add).
 *    `--big` messages: friends over direct loopback TCP (libp2p without Tor; Tor would take
 *    ~20 minutes at the measured rate), backup and restore, same references.
 * 4. Bytes stored per byte of mail: the friends' held files (apparent size and allocated
 *    blocks) against n/k = 1.5; Dovecot's message files for the backup folder against 4/3
 *    (base64) and for the raw reference folder.
 */
import { parseArgs } from 'node:util'
import { createServer, type Server, type Socket } from 'node:net'
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir, loadavg, cpus } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { ImapFlow } from 'imapflow'
import { backupToTarget, restoreFromTarget, imapBackupTarget, memoryBackupTarget, type BackupTarget, type BackupReport } from '../node/backup/index.ts'
import { friendsBackupTarget, friendsBackupKey, memoryPlacementStore, vaultPlacementStore, type Placement, type PlacementStore } from '../node/friends/friends-target.ts'
import { friendAddress } from '../node/friends/p2p.ts'
import { request } from '../node/friends/rpc.ts'
import { lpStream } from '@libp2p/utils'
import { encodeFrame, decodeFrame, MAX_FRAME_BYTES } from '../protocol/friends-wire.ts'
import { writeFileDurably } from '../node/identity/index.ts'
import { torService } from '../node/tor/index.ts'
import { silentLogger } from '../node/log/index.ts'
import type { Vault } from '../node/vault/index.ts'
import { expandedSecretKey, generateOnionKey } from '../protocol/onion.ts'
import { rfc5322Date } from '../protocol/message.ts'
import { sharedTorNetwork, connectThroughTor, type PrivateTorNetwork, type TorClient } from '../test/harness/tor-network.ts'
import { startDovecot, type DovecotInstance } from '../test/harness/dovecot.ts'
import { initNodeDir } from '../test/harness/nodes.ts'
import { openTestVault, TEST_KDF, TEST_PASSPHRASE } from '../test/harness/vault.ts'
import { startFriendsWorld, heldBytes, SINK_PROTOCOL, type FriendsWorld, type WorldHost } from './lib/friends-world.ts'
import { median, prng, quantile } from './lib/stats.ts'
import { zipfVocabulary } from './lib/vocabulary.ts'

const { values: args } = parseArgs({
  options: {
    messages: { type: 'string', default: '500' },
    size: { type: 'string', default: '8192' },
    big: { type: 'string', default: '10000' },
    friends: { type: 'string', default: '3' },
    'no-tor': { type: 'boolean', default: false },
    'no-imap': { type: 'boolean', default: false },
    'no-imap-tor': { type: 'boolean', default: false },
    'timeout-s': { type: 'string', default: '1500' }
  }
})
const MESSAGES = Number(args.messages)
const SIZE = Number(args.size)
const BIG = Number(args.big)
const FRIENDS = Number(args.friends)
const K = 2
const REF_BODY = 256 * 1024
const REF_IN_FLIGHT = 4

const now = (): number => performance.now()
const MB = 1e6
const mbps = (bytes: number, ms: number): string => `${(bytes / MB / (ms / 1000)).toFixed(2)} MB/s`
const s = (ms: number): string => `${(ms / 1000).toFixed(2)} s`
const x = (a: number, b: number): string => `${(a / b).toFixed(2)}x`
const load = (): string => loadavg().map(l => l.toFixed(2)).join(' ')

// ---- mail ----

interface Mail { raw: Buffer, messageId: string, from: string, to: string[], receivedAt: number }

function makeMail (count: number, size: number, seed: number): Mail[] {
  const rnd = prng(seed)
  const words = zipfVocabulary(prng(7))
  const out: Mail[] = []
  const base = Date.UTC(2026, 0, 1)
  for (let n = 0; n < count; n++) {
    let text = ''
    let line = ''
    while (text.length + line.length < size) {
      const word = words.pick(rnd())
      if (line.length + word.length + 1 > 76) { text += `${line}\r\n`; line = '' }
      line += line === '' ? word : ` ${word}`
    }
    const lines = (text + line).slice(0, size)
    const messageId = `bench-${seed}-${n}@backup.invalid`
    const from = 'alice@backup.invalid'
    const to = ['owner@backup.invalid']
    const raw = Buffer.from([
      `From: <${from}>`, `To: <${to[0]}>`, `Subject: backup bench ${n}`,
      `Date: ${rfc5322Date(new Date(base + n * 1000))}`, `Message-ID: <${messageId}>`, '', lines, ''
    ].join('\r\n'), 'latin1')
    out.push({ raw, messageId, from, to, receivedAt: base + n * 1000 })
  }
  return out
}

/** A node data directory whose vault holds `mail` in the Inbox; the vault stays open. */
async function ownerWithMail (name: string, mail: Mail[]): Promise<{ dir: string, seed: Buffer, vault: Vault, addMs: number, indexMs: number }> {
  const { dir } = await initNodeDir(name, {})
  const seed = await readFile(join(dir, 'identity', 'onion.seed'))
  const { vault } = await openTestVault(join(dir, 'vault'))
  const t = now()
  for (let i = 0; i < mail.length; i += 32) {
    await Promise.all(mail.slice(i, i + 32).map(async (m) => await vault.add({ folder: 'Inbox', raw: m.raw, from: m.from, to: m.to, messageId: m.messageId, receivedAt: m.receivedAt })))
  }
  const addMs = now() - t
  // The search index catches up in the background; let it finish, or every later figure carries its CPU.
  await vault.searchReady()
  return { dir, seed, vault, addMs, indexMs: now() - t }
}

/** Reads every message back from the vault, as a backup with an empty name cache does. */
async function readAll (vault: Vault): Promise<number> {
  const t = now()
  for (const meta of await vault.list('Inbox')) await vault.get(meta.id)
  return now() - t
}

// ---- instrumented targets ----

interface Timed { target: BackupTarget, puts: number[], gets: number[] }

/** Delegates to `inner`, timing each put and get (backupToTarget sees the same `parallel`). */
function timed (inner: BackupTarget): Timed {
  const puts: number[] = []
  const gets: number[] = []
  const target: BackupTarget = {
    description: inner.description,
    ...(inner.parallel !== undefined ? { parallel: inner.parallel } : {}),
    async put (name, bytes) { const t = now(); await inner.put(name, bytes); puts.push(now() - t) },
    async get (name) { const t = now(); const b = await inner.get(name); gets.push(now() - t); return b },
    list: async () => await inner.list(),
    delete: async (name) => { await inner.delete(name) },
    ...(inner.flush !== undefined ? { flush: async () => { await inner.flush!() } } : {}),
    close: async () => { await inner.close() }
  }
  return { target, puts, gets }
}

interface SaveStats { saves: number, ms: number, last?: Placement }

function timedPlacement (inner: PlacementStore): { store: PlacementStore, stats: SaveStats } {
  const stats: SaveStats = { saves: 0, ms: 0 }
  return {
    stats,
    store: {
      load: async () => await inner.load(),
      async save (p) {
        const t = now()
        await inner.save(p)
        stats.ms += now() - t
        stats.saves++
        stats.last = p // measured once at the end: a JSON.stringify here would double the cost being measured
      }
    }
  }
}

const recordBytes = (stats: SaveStats): number => stats.last === undefined ? 0 : Buffer.byteLength(JSON.stringify(stats.last))
const dist = (v: number[]): string => v.length === 0 ? 'none' : `median ${median(v).toFixed(1)} ms, p95 ${quantile(v, 0.95).toFixed(1)} ms, n ${v.length}`

// ---- runs ----

interface BackupRun { ms: number, report: BackupReport, puts: number[], saves: SaveStats }

async function backupFriends (world: FriendsWorld, vault: Vault, dir: string): Promise<BackupRun> {
  const placement = timedPlacement(vaultPlacementStore(vault))
  const inner = friendsBackupTarget({ host: world.owner.host, book: world.owner.book, key: friendsBackupKey(world.owner.seed), placement: placement.store, dataShards: K, logger: silentLogger(), timeoutMs: 120_000 })
  const t = timed(inner)
  const started = now()
  const report = await backupToTarget({ vault, dataDir: dir, target: t.target })
  const ms = now() - started
  await inner.close()
  return { ms, report, puts: t.puts, saves: placement.stats }
}

interface RestoreRun { ms: number, restored: number, gets: number[] }

async function restore (target: BackupTarget, label: string, expected: number): Promise<RestoreRun> {
  const base = await mkdtemp(join(tmpdir(), 'smtorp-bench-restore-'))
  const t = timed(target)
  try {
    const started = now()
    const report = await restoreFromTarget({ target: t.target, passphrase: TEST_PASSPHRASE, dataDir: join(base, 'node'), vault: { passphraseKdf: TEST_KDF, recoveryKdf: TEST_KDF } })
    const ms = now() - started
    if (report.restored !== expected || report.damaged.length > 0) throw new Error(`restore from ${label}: ${report.restored} restored of ${expected}, ${report.damaged.length} damaged`)
    return { ms, restored: report.restored, gets: t.gets }
  } finally {
    await rm(base, { recursive: true, force: true })
  }
}

function friendsRestoreTarget (owner: WorldHost): BackupTarget {
  // A new machine: no placement record, found again from the friends' lists.
  return friendsBackupTarget({ host: owner.host, book: owner.book, key: friendsBackupKey(owner.seed), placement: memoryPlacementStore(), dataShards: K, logger: silentLogger(), timeoutMs: 120_000 })
}

/** The memory reference: the same vault backed up to memory, timed, then restored, timed. */
async function memoryReference (vault: Vault, dir: string, expected: number): Promise<{ backupMs: number, restore: RestoreRun }> {
  const target = memoryBackupTarget()
  const t = now()
  await backupToTarget({ vault, dataDir: dir, target })
  const backupMs = now() - t
  return { backupMs, restore: await restore(target, 'memory', expected) }
}

/** Bare request/answer throughput: `total` bytes in bodies of REF_BODY, REF_IN_FLIGHT at a time to each of `to`. */
async function rawFriendsPath (owner: WorldHost, to: WorldHost[], total: number): Promise<number> {
  const body = Buffer.alloc(REF_BODY, 0x5a)
  const started = now()
  await Promise.all(to.map(async (f) => {
    const address = friendAddress(owner.book.friend(f.onion)!)
    let left = Math.ceil(total / to.length)
    await Promise.all(Array.from({ length: REF_IN_FLIGHT }, async () => {
      while (left > 0) {
        const n = Math.min(left, REF_BODY)
        left -= n
        await request(owner.host, address, SINK_PROTOCOL, {}, body.subarray(0, n), { timeoutMs: 120_000 })
      }
    }))
  }))
  return now() - started
}

async function roundTrips (owner: WorldHost, f: WorldHost, count: number): Promise<number[]> {
  const address = friendAddress(owner.book.friend(f.onion)!)
  const out: number[] = []
  for (let i = 0; i < count; i++) {
    const t = now()
    await request(owner.host, address, SINK_PROTOCOL, {}, Buffer.alloc(16), { timeoutMs: 60_000 })
    out.push(now() - t)
  }
  return out
}

/**
 * Diagnostic: the same request as rpc.ts `request`, but with `negotiateFully: false`, so the
 * multistream-select proposal goes out with the request frame instead of a round trip before it.
 */
async function roundTripsOptimistic (owner: WorldHost, f: WorldHost, count: number): Promise<{ total: number[], open: number[], answer: number[], close: number[] }> {
  const address = friendAddress(owner.book.friend(f.onion)!)
  const out = { total: [] as number[], open: [] as number[], answer: [] as number[], close: [] as number[] }
  for (let i = 0; i < count; i++) {
    const t = now()
    const signal = AbortSignal.timeout(60_000)
    const stream = await owner.host.dialProtocol(address, SINK_PROTOCOL, { signal, negotiateFully: false })
    const t1 = now()
    const lp = lpStream(stream, { maxDataLength: MAX_FRAME_BYTES, maxBufferSize: MAX_FRAME_BYTES + 16 })
    await lp.write(encodeFrame({}, Buffer.alloc(16)), { signal })
    const answer = decodeFrame((await lp.read({ signal })).subarray())
    if (answer.header.ok !== true) throw new Error('the sink refused')
    const t2 = now()
    await stream.close({ signal })
    const t3 = now()
    out.total.push(t3 - t); out.open.push(t1 - t); out.answer.push(t2 - t1); out.close.push(t3 - t2)
  }
  return out
}

/** Diagnostic: what one shard costs a friend's disk, written one at a time (shard-host.ts writes each owner's shards in turn). */
async function durableWrites (count: number, bytes: number): Promise<number[]> {
  const dir = await mkdtemp(join(tmpdir(), 'smtorp-bench-fsync-'))
  const data = Buffer.alloc(bytes, 0x5a)
  const out: number[] = []
  try {
    for (let i = 0; i < count; i++) {
      const t = now()
      await writeFileDurably(join(dir, `s${i}`), data)
      out.push(now() - t)
    }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
  return out
}

/** Message files of one Maildir folder (maildir++: INBOX at the root, others in `.<name>`). */
async function maildirBytes (d: DovecotInstance, user: string, folder: string): Promise<{ files: number, apparent: number, allocated: number, all: number }> {
  const root = join(d.dir, 'mail', user, `.${folder}`)
  let files = 0; let apparent = 0; let allocated = 0; let all = 0
  for (const entry of await readdir(root, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue
    const st = await stat(join(entry.parentPath, entry.name))
    all += st.size
    if (!/(^|\/)(cur|new)$/.test(entry.parentPath)) continue
    files++; apparent += st.size; allocated += st.blocks * 512
  }
  return { files, apparent, allocated, all }
}

async function rawImapAppend (d: DovecotInstance, user: string, pass: string, mail: Mail[], folder: string): Promise<number> {
  const client = new ImapFlow(d.clientOptions(user, pass))
  await client.connect()
  try {
    await client.mailboxCreate(folder).catch(() => {})
    const t = now()
    for (const m of mail) await client.append(folder, m.raw)
    return now() - t
  } finally {
    await client.logout()
  }
}

/**
 * A raw TCP server for the Tor reference: a request starting with 'e' is echoed (32 bytes);
 * one starting with 's' announces a length (8 bytes) and gets one byte back once that many
 * more bytes arrived (a sink: one-way stream throughput).
 */
/**
 * Publishes 127.0.0.1:`port` as `virtualPort` of a new onion on `tor` (the private network has
 * no exits, so servers are reached as onions); waits for its descriptor. The tor connection is
 * closed by `cleanups`. Returns the onion address.
 */
async function publishOnTor (tor: TorClient, virtualPort: number, port: number, cleanups: Array<() => Promise<unknown>>): Promise<string> {
  const key = generateOnionKey()
  const publisher = torService({ mode: 'attach', controlHost: '127.0.0.1', controlPort: tor.controlPort, cookieFile: tor.cookieFile, socksHost: '127.0.0.1', socksPort: tor.socksPort }, { logger: silentLogger() })
  await publisher.start()
  cleanups.unshift(async () => await publisher.stop())
  await publisher.publishOnion({ expandedSecretKey: expandedSecretKey(key.seed), virtualPort, target: { host: '127.0.0.1', port } })
  await publisher.waitForDescriptorUpload(key.address, 90_000)
  return key.address
}

async function startRawServer (): Promise<{ server: Server, port: number }> {
  const server = createServer((socket) => {
    socket.setNoDelay(true)
    socket.on('error', () => {})
    let pending = Buffer.alloc(0)
    let sinkLeft = 0
    socket.on('data', (chunk: Buffer) => {
      if (sinkLeft > 0) {
        sinkLeft -= chunk.length
        if (sinkLeft <= 0) { sinkLeft = 0; socket.write('k') }
        return
      }
      pending = Buffer.concat([pending, chunk])
      while (pending.length >= 32 && sinkLeft === 0) {
        const head = pending.subarray(0, 32)
        pending = pending.subarray(32)
        if (head[0] === 0x65) { socket.write(head); continue }
        sinkLeft = Number(head.readBigUInt64BE(8)) - pending.length
        pending = Buffer.alloc(0)
        if (sinkLeft <= 0) { sinkLeft = 0; socket.write('k') }
      }
    })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  return { server, port: (server.address() as { port: number }).port }
}

async function answer (socket: Socket, bytes: number, write: () => void): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    let got = 0
    const onData = (c: Buffer): void => { got += c.length; if (got >= bytes) { cleanup(); resolve() } }
    const onClose = (): void => { cleanup(); reject(new Error('raw stream closed')) }
    const cleanup = (): void => { socket.off('data', onData); socket.off('close', onClose) }
    socket.on('data', onData)
    socket.on('close', onClose)
    write()
  })
}

async function rawEcho (socket: Socket, count: number): Promise<number[]> {
  const out: number[] = []
  const ping = Buffer.alloc(32, 0x65)
  for (let i = 0; i < count; i++) {
    const t = now()
    await answer(socket, 32, () => socket.write(ping))
    out.push(now() - t)
  }
  return out
}

async function rawSink (socket: Socket, total: number): Promise<number> {
  const head = Buffer.alloc(32, 0x73)
  head.writeBigUInt64BE(BigInt(total), 8)
  const chunk = Buffer.alloc(64 * 1024, 0x5a)
  const t = now()
  await answer(socket, 1, () => {
    socket.write(head)
    let left = total
    const pump = (): void => {
      while (left > 0) {
        const n = Math.min(left, chunk.length)
        left -= n
        if (!socket.write(chunk.subarray(0, n))) { socket.once('drain', pump); return }
      }
    }
    pump()
  })
  return now() - t
}

// ---- main ----

async function main (): Promise<void> {
  const runStarted = now()
  const watchdog = setTimeout(() => { console.error(`benchmark took longer than ${args['timeout-s']} s; giving up`); process.exit(2) }, Number(args['timeout-s']) * 1000)
  watchdog.unref()
  const cleanups: Array<() => Promise<unknown>> = []
  try {
    console.log(`backup benchmark, ${new Date().toISOString()}, Node ${process.versions.node}, ${cpus().length} x ${cpus()[0]?.model ?? '?'}`)
    console.log(`load average at start: ${load()}; ${MESSAGES} messages of ${SIZE} body bytes, big run ${BIG}; ${FRIENDS} friends, k = ${K}`)
    const mail = makeMail(MESSAGES, SIZE, 1)
    const mailBytes = mail.reduce((n, m) => n + m.raw.length, 0)
    const owner = await ownerWithMail('bench-owner', mail)
    cleanups.push(async () => { await owner.vault.close(); await rm(owner.dir, { recursive: true, force: true }) })
    console.log(`mail: ${MESSAGES} messages, ${(mailBytes / MB).toFixed(2)} MB raw; added to the vault in ${s(owner.addMs)}, search index caught up after ${s(owner.indexMs)}`)
    const readMs = await readAll(owner.vault)
    console.log(`reading them all back from the vault (list + get): ${s(readMs)} (${mbps(mailBytes, readMs)})`)

    const writes = await durableWrites(200, 4400)
    console.log(`a friend's durable write of one ~4.3 KiB shard (writeFileDurably: file fsync, rename, directory fsync), one at a time: ${dist(writes)}`)
    const mem = await memoryReference(owner.vault, owner.dir, MESSAGES)
    console.log(`memory target reference: backup ${s(mem.backupMs)} (${mbps(mailBytes, mem.backupMs)}), restore ${s(mem.restore.ms)} (${mbps(mailBytes, mem.restore.ms)})`)
    console.log('')

    let network: PrivateTorNetwork | undefined
    let tor: FriendsWorld | undefined
    if (!args['no-tor']) {
      const t = now()
      network = await sharedTorNetwork()
      cleanups.push(async () => await network!.stop())
      tor = await startFriendsWorld({ ownerDir: owner.dir, ownerSeed: owner.seed, friends: FRIENDS, tor: network })
      cleanups.unshift(async () => await tor!.stop())
      console.log(`== 1. friends over Tor (setup: network, ${FRIENDS + 1} client tors, onions published, circuits built: ${s(now() - t)}; load ${load()})`)
      const rtts = await roundTrips(tor.owner, tor.friends[0]!, 30)
      console.log(`  request/answer round trip owner -> friend0 (16-byte body): median ${median(rtts).toFixed(1)} ms, p95 ${quantile(rtts, 0.95).toFixed(1)} ms`)
      const lazy = await roundTripsOptimistic(tor.owner, tor.friends[0]!, 30)
      console.log(`  the same with negotiateFully: false (diagnostic): median ${median(lazy.total).toFixed(1)} ms, p95 ${quantile(lazy.total, 0.95).toFixed(1)} ms; medians of its parts: stream open ${median(lazy.open).toFixed(1)} ms, write to answer ${median(lazy.answer).toFixed(1)} ms, close ${median(lazy.close).toFixed(1)} ms`)
      // The raw Tor path: a TCP server published as an onion on friend0's tor, reached through the owner's tor.
      const raw = await startRawServer()
      cleanups.unshift(async () => { raw.server.close() })
      const rawOnion = await publishOnTor(tor.friends[0]!.tor!, 7, raw.port, cleanups)
      const rawSocket = (await connectThroughTor(tor.owner.tor!.socksPort, `${rawOnion}.onion`, 7, 60_000)).socket
      rawSocket.setNoDelay(true)
      cleanups.unshift(async () => { rawSocket.destroy() })
      const echoes = await rawEcho(rawSocket, 30)
      console.log(`  raw TCP round trip through Tor (echo onion on friend0's tor, 32 bytes): median ${median(echoes).toFixed(1)} ms, p95 ${quantile(echoes, 0.95).toFixed(1)} ms`)
      const run = await backupFriends(tor, owner.vault, owner.dir)
      const held = await heldBytes(tor.friends, tor.owner.onion)
      const sinkMs = await rawSink(rawSocket, held.shardBytes)
      const sealedBytes = run.report.uploadedBytes
      console.log(`  backup of ${run.report.messages} messages: ${s(run.ms)}; mail ${mbps(mailBytes, run.ms)}, shards sent ${mbps(held.shardBytes, run.ms)} (${(held.shardBytes / MB).toFixed(2)} MB in ${held.files} shards; sealed blobs ${(sealedBytes / MB).toFixed(2)} MB)`)
      console.log(`    puts (parallel ${8}): ${dist(run.puts)}; placement record saves: ${run.saves.saves}, ${run.saves.ms.toFixed(0)} ms in all, last ${(recordBytes(run.saves) / 1024).toFixed(0)} KiB`)
      const oneMs = await rawFriendsPath(tor.owner, [tor.friends[0]!], held.shardBytes)
      const allMs = await rawFriendsPath(tor.owner, tor.friends, held.shardBytes)
      console.log(`  reference, bare request/answer of the same ${(held.shardBytes / MB).toFixed(2)} MB (bodies of ${REF_BODY / 1024} KiB, ${REF_IN_FLIGHT} in flight): to friend0 alone ${s(oneMs)} = ${mbps(held.shardBytes, oneMs)}; spread over the ${FRIENDS} friends ${s(allMs)} = ${mbps(held.shardBytes, allMs)}`)
      console.log(`  reference, raw TCP stream of the same bytes through Tor to the sink onion on friend0's tor (one stream): ${s(sinkMs)} = ${mbps(held.shardBytes, sinkMs)}`)
      console.log(`  ratio backup shard throughput / raw path: ${x(oneMs, run.ms)} of one friend's request/answer path, ${x(allMs, run.ms)} of ${FRIENDS} friends' paths, ${x(sinkMs, run.ms)} of the raw TCP stream`)
      console.log(`  stored on friends: ${(held.apparent / MB).toFixed(2)} MB in files (${(held.apparent / mailBytes).toFixed(3)}x the mail, ${(held.apparent / sealedBytes).toFixed(3)}x the sealed blobs), ${(held.allocated / MB).toFixed(2)} MB allocated (${(held.allocated / mailBytes).toFixed(3)}x); theory n/k = ${(FRIENDS / K).toFixed(2)}`)
      const r = await restore(friendsRestoreTarget(tor.owner), 'friends over Tor', MESSAGES)
      console.log(`  restore of ${MESSAGES} from friends over Tor (new machine, placement found from the friends' lists): ${s(r.ms)} = ${mbps(mailBytes, r.ms)}; ${x(r.ms, mem.restore.ms)} the memory restore (${s(mem.restore.ms)}); gets: ${dist(r.gets)}`)
      console.log(`  load ${load()}`)
      console.log('')
    }

    if (!args['no-imap']) {
      const user = 'owner'
      const pass = 'bench-password'
      const dovecot = await startDovecot({ users: [{ user, pass }] })
      cleanups.unshift(async () => await dovecot.stop())
      console.log(`== 2. Dovecot over IMAP (load ${load()})`)
      const refMs = await rawImapAppend(dovecot, user, pass, mail, 'raw-reference')
      const imapRun = async (folder: string, proxy?: string, host?: string): Promise<{ ms: number, report: BackupReport, puts: number[], target: BackupTarget }> => {
        const inner = imapBackupTarget({ host: host ?? dovecot.host, port: host === undefined ? dovecot.port : 143, secure: false, doSTARTTLS: false, user, pass, folder, connectTimeoutMs: 60_000, ...(proxy !== undefined ? { proxy } : {}) }, { logger: silentLogger() })
        const t = timed(inner)
        const started = now()
        const report = await backupToTarget({ vault: owner.vault, dataDir: owner.dir, target: t.target })
        return { ms: now() - started, report, puts: t.puts, target: inner }
      }
      const direct = await imapRun('smtorp-backup')
      console.log(`  reference, raw APPEND of the ${MESSAGES} mail messages, one connection: ${s(refMs)} = ${mbps(mailBytes, refMs)}`)
      console.log(`  backup to Dovecot on loopback: ${s(direct.ms)} = ${mbps(mailBytes, direct.ms)} of mail; ${x(refMs, direct.ms)} the raw APPEND rate; puts: ${dist(direct.puts)}`)
      const stored = await maildirBytes(dovecot, user, 'smtorp-backup')
      const rawStored = await maildirBytes(dovecot, user, 'raw-reference')
      console.log(`  stored: backup folder ${(stored.apparent / MB).toFixed(2)} MB in ${stored.files} message files = ${(stored.apparent / mailBytes).toFixed(3)}x the mail (${(stored.allocated / mailBytes).toFixed(3)}x allocated; with indexes ${(stored.all / mailBytes).toFixed(3)}x); raw folder ${(rawStored.apparent / mailBytes).toFixed(3)}x (${(rawStored.allocated / mailBytes).toFixed(3)}x allocated)`)
      const r = await restore(direct.target, 'Dovecot', MESSAGES)
      console.log(`  restore of ${MESSAGES} from Dovecot on loopback: ${s(r.ms)}; ${x(r.ms, mem.restore.ms)} the memory restore; gets: ${dist(r.gets)}`)
      await direct.target.close()
      if (tor !== undefined && !args['no-imap-tor']) {
        // Dovecot's port as an onion on friend0's tor, reached through the owner's tor.
        const imapOnion = await publishOnTor(tor.friends[0]!.tor!, 143, dovecot.port, cleanups)
        // Build the circuit first (tor may say "descriptor not found" for a few seconds).
        const probe = await connectThroughTor(tor.owner.tor!.socksPort, `${imapOnion}.onion`, 143, 60_000)
        probe.socket.destroy()
        try {
          const viaTor = await imapRun('smtorp-backup-tor', `socks5://127.0.0.1:${tor.owner.tor!.socksPort}`, `${imapOnion}.onion`)
          console.log(`  backup to Dovecot through Tor (onion on friend0's tor, owner's tor as socks5 proxy): ${s(viaTor.ms)} = ${mbps(mailBytes, viaTor.ms)} of mail; ${x(refMs, viaTor.ms)} the loopback raw APPEND rate; puts: ${dist(viaTor.puts)}`)
          await viaTor.target.close()
        } catch (err) {
          console.log(`  backup to Dovecot through Tor failed: ${(err as Error).name}: ${(err as Error).message}`)
        }
      }
      console.log(`  load ${load()}`)
      console.log('')
    }

    // Its four tors would only load the machine during the big run.
    await tor?.stop()

    if (BIG > 0) {
      console.log(`== 3b. ${BIG} messages, friends over direct loopback TCP (no Tor; load ${load()})`)
      const bigMail = makeMail(BIG, SIZE, 2)
      const bigBytes = bigMail.reduce((n, m) => n + m.raw.length, 0)
      const big = await ownerWithMail('bench-owner-big', bigMail)
      cleanups.unshift(async () => { await big.vault.close(); await rm(big.dir, { recursive: true, force: true }) })
      console.log(`  mail: ${(bigBytes / MB).toFixed(1)} MB raw, added in ${s(big.addMs)}, search index caught up after ${s(big.indexMs)}; read back in ${s(await readAll(big.vault))}`)
      const bigMem = await memoryReference(big.vault, big.dir, BIG)
      console.log(`  memory target reference: backup ${s(bigMem.backupMs)}, restore ${s(bigMem.restore.ms)} (${mbps(bigBytes, bigMem.restore.ms)})`)
      const world = await startFriendsWorld({ ownerDir: big.dir, ownerSeed: big.seed, friends: FRIENDS })
      cleanups.unshift(async () => await world.stop())
      const run = await backupFriends(world, big.vault, big.dir)
      const held = await heldBytes(world.friends, world.owner.onion)
      console.log(`  backup to friends (direct): ${s(run.ms)} = ${mbps(bigBytes, run.ms)} of mail, ${mbps(held.shardBytes, run.ms)} of shards; ${x(run.ms, bigMem.backupMs)} the memory backup`)
      console.log(`    puts: ${dist(run.puts)}; placement record saves: ${run.saves.saves}, ${run.saves.ms.toFixed(0)} ms in all, last ${(recordBytes(run.saves) / 1024).toFixed(0)} KiB`)
      const tenth = Math.max(1, Math.floor(run.puts.length / 10))
      console.log(`    puts in the first tenth of the backup: ${dist(run.puts.slice(0, tenth))}; in the last tenth: ${dist(run.puts.slice(-tenth))}`)
      const rawMs = await rawFriendsPath(world.owner, [world.friends[0]!], held.shardBytes)
      console.log(`  reference, bare request/answer of the same bytes to friend0 (direct): ${s(rawMs)} = ${mbps(held.shardBytes, rawMs)}; ratio ${x(rawMs, run.ms)}`)
      console.log(`  stored on friends: ${(held.apparent / bigBytes).toFixed(3)}x the mail in files, ${(held.allocated / bigBytes).toFixed(3)}x allocated (theory ${(FRIENDS / K).toFixed(2)})`)
      const r = await restore(friendsRestoreTarget(world.owner), 'friends (direct)', BIG)
      console.log(`  restore of ${BIG} from friends (direct, new machine): ${s(r.ms)} = ${mbps(bigBytes, r.ms)}; ${x(r.ms, bigMem.restore.ms)} the memory restore (${s(bigMem.restore.ms)}); gets: ${dist(r.gets)}`)
      console.log(`  load ${load()}`)
    }
    console.log(`total run time ${s(now() - runStarted)}; load average at the end ${load()}`)
  } finally {
    for (const c of cleanups) await c().catch((err: unknown) => { console.error(`cleanup: ${(err as Error).message}`) })
    clearTimeout(watchdog)
  }
}

await main()
