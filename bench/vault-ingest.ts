/**
 * Ingest with everything on: how many messages per second the node's inbound SMTorP endpoint
 * (node/smtp-in) takes from peers and stores in the vault, encrypted, erasure-coded and
 * durable, beside Postfix 3.7 receiving the same load (count and size) into a Maildir in
 * the same run.
 *
 *   node_modules/.bin/node --import tsx bench/vault-ingest.ts [--messages 3000] [--rounds 3]
 *     [--sessions 20] [--size 5120] [--batch 32] [--no-postfix] [--no-locked]
 *
 * Load on the node: `--sessions` peers, each a distinct node with its own onion key
 * (bench/lib/smtorp-peers.ts, a child process like smtp-source), connect to the endpoint on
 * 127.0.0.1 as a peer's tor would hand the stream over (no Tor in the path), prove their
 * onion with AUTH X-SMTORP-ONION, and send `--messages` messages of `--size` body bytes in
 * total, reusing their connection and pipelining `--batch` messages at a time (RFC 2920), as
 * node/delivery does. The endpoint's per-peer rate limit is set far above the load.
 * Load on Postfix: smtp-source(1), same count, sessions and payload size, no pipelining
 * (smtp-source has none), via bench/lib/postfix-baseline.ts.
 *
 * What a 250 means. Node: vault.add() resolved. Unlocked (the normal path), the message is
 * sealed with AES-256-GCM under its own object key, split into 4 data + 2 parity shards
 * (Reed-Solomon, the WebAssembly codec, as the node runs by default), appended to six column
 * segment files that are fdatasync'd, and then its locator and sealed metadata are in a
 * synced LevelDB batch; both syncs are group commits shared by concurrent messages.
 * Locked, the same but the object is sealed with HPKE to the vault's arrival key (no secret
 * in memory) and only the locator and an arrival entry go to LevelDB. The search index is
 * fed after the 250, in the background, and is not part of it. Postfix: cleanup(8) has the
 * message in its queue file, fsync'd; delivery to the Maildir happens after.
 *
 * Figures per round: Postfix accepted (smtp-source's wall time) and delivered (until the last
 * message is in the Maildir); node unlocked accepted (first connect to last 250, measured in
 * the peers' process) and "indexed" (until the search index has every message, measured
 * here); node locked accepted, and the unlock that files the arrivals into the Inbox. After
 * every node run the Inbox must hold exactly `--messages` messages (after the unlock for the
 * locked run), or the benchmark fails. Postfix and the node alternate `--rounds` times, since
 * the machine is noisy (Postfix against itself varies ~25%); medians are reported.
 * The event-loop delay of this process during the load (perf_hooks, 10 ms resolution) says
 * how long work that runs beside the 250s (search indexing, flushes) can hold every session up.
 *
 * Storage overhead: bytes of every file under the vault directory, after the vault is closed
 * (search index saved), divided by the bytes of mail stored (message sizes as stored, with
 * the Received header the endpoint adds). The split by LevelDB key prefix is exact (bytes of
 * keys and values, read back), with classic-level's approximateSize for the search keys
 * ('x', 'X') beside it. RSS is this process's: it holds the vault and the endpoint; the load
 * runs in its own process.
 */
import { parseArgs } from 'node:util'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { lstat, mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ClassicLevel } from 'classic-level'
import { openTestVault, TEST_PASSPHRASE } from '../test/harness/vault.ts'
import { smtpIn } from '../node/smtp-in/index.ts'
import { silentLogger } from '../node/log/index.ts'
import type { Vault } from '../node/vault/index.ts'
import { generateOnionKey } from '../protocol/onion.ts'
import { preparePeers } from './lib/smtorp-peers.ts'
import { measurePostfixIngest } from './lib/postfix-baseline.ts'
import { median } from './lib/stats.ts'

export interface VaultIngestInit {
  messages: number
  sessions: number
  size: number
  batch: number
  /** Lock the vault before the load: mail is sealed to the arrival key. */
  locked: boolean
}

export interface StorageFigures {
  /** Every file under the vault directory. */
  diskBytes: number
  shardBytes: number
  indexBytes: number
  /** Sum of stored message sizes. */
  mailBytes: number
  /** Bytes of keys + values in the LevelDB index, by what they are. */
  logical: { search: number, meta: number, locators: number, arrivals: number, other: number }
  /** classic-level approximateSize of the search keys and of all keys (SST bytes). */
  approximate: { search: number, all: number } | undefined
}

export interface VaultIngestResult {
  perSecond: number
  seconds: number
  /** Unlocked: until the search index has every message, from the start of the load. */
  indexedSeconds?: number
  /** Locked: how long unlock() took, filing every arrival into the Inbox. */
  unlockSeconds?: number
  /** Locked: bytes on disk before the unlock (arrivals only). */
  lockedDiskBytes?: number
  /** Locked: bytes after filing, before the scrub that compacts the arrivals' old records. */
  filedDiskBytes?: number
  storage: StorageFigures
  /** Event-loop delay of this process while the load ran (ms): what a 250 can be held up by. */
  loopDelay: { p50: number, p99: number, max: number }
  /** process.memoryUsage() at the end of the run, vault still open. */
  memory: NodeJS.MemoryUsage
}

async function bytesUnder (dir: string): Promise<number> {
  let total = 0
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) total += (await lstat(join(entry.parentPath, entry.name))).size
  }
  return total
}

/** Reads the closed vault's LevelDB back: bytes per key prefix, and approximateSize. */
async function indexFigures (indexDir: string): Promise<Pick<StorageFigures, 'logical' | 'approximate'>> {
  const db = new ClassicLevel<Buffer, Buffer>(indexDir, { keyEncoding: 'buffer', valueEncoding: 'buffer' })
  await db.open()
  try {
    const logical = { search: 0, meta: 0, locators: 0, arrivals: 0, other: 0 }
    for await (const [key, value] of db.iterator()) {
      const n = key.length + value.length
      const prefix = String.fromCharCode(key[0] ?? 0)
      if (prefix === 'x' || prefix === 'X') logical.search += n
      else if (prefix === 'm') logical.meta += n
      else if (prefix === 'o') logical.locators += n
      else if (prefix === 'a') logical.arrivals += n
      else logical.other += n
    }
    let approximate: StorageFigures['approximate']
    if (typeof db.approximateSize === 'function') {
      const size = async (lo: string, hi: string): Promise<number> => await db.approximateSize(Buffer.from(lo, 'latin1'), Buffer.from(hi, 'latin1'))
      approximate = { search: await size('X', 'Y') + await size('x', 'y'), all: await size('\x00', '\xff') }
    }
    return { logical, approximate }
  } finally {
    await db.close()
  }
}

export async function measureVaultIngest (init: VaultIngestInit): Promise<VaultIngestResult> {
  const dir = await mkdtemp(join(tmpdir(), 'smtorp-bench-vault-'))
  const vaultDir = join(dir, 'vault')
  const server = generateOnionKey()
  let vault: Vault | undefined
  let endpoint: ReturnType<typeof smtpIn> | undefined
  let peers: Awaited<ReturnType<typeof preparePeers>> | undefined
  try {
    vault = (await openTestVault(vaultDir)).vault
    if (init.locked) await vault.lock()
    endpoint = smtpIn({
      onion: server.address,
      users: ['bob'],
      port: 0,
      maxMessageBytes: 25 * 1024 * 1024, // the config default
      maxMessagesPerPeerPerMinute: 1_000_000, // peers here are a load generator, not abusers
      maxConnections: init.sessions + 8
    }, { logger: silentLogger(), store: vault })
    await endpoint.start()
    peers = await preparePeers({
      host: '127.0.0.1', port: endpoint.port(), serverOnion: server.address, recipient: 'bob',
      messages: init.messages, sessions: init.sessions, size: init.size, batch: init.batch, timeoutMs: 150_000
    })
    const delay = monitorEventLoopDelay({ resolution: 10 })
    delay.enable()
    const started = process.hrtime.bigint()
    const sent = await peers.run()
    delay.disable()
    if (sent.messages !== init.messages) throw new Error(`the peers got ${sent.messages} messages stored, expected ${init.messages}`)
    const result: Partial<VaultIngestResult> = {
      perSecond: sent.messages / sent.seconds,
      seconds: sent.seconds,
      loopDelay: { p50: delay.percentile(50) / 1e6, p99: delay.percentile(99) / 1e6, max: delay.max / 1e6 }
    }
    if (init.locked) {
      if (vault.state() !== 'locked') throw new Error('the vault was unlocked during the locked run')
      result.lockedDiskBytes = await bytesUnder(vaultDir)
      const unlocking = process.hrtime.bigint()
      await vault.unlock({ passphrase: TEST_PASSPHRASE })
      result.unlockSeconds = Number(process.hrtime.bigint() - unlocking) / 1e9
    } else {
      await vault.searchReady()
      result.indexedSeconds = Number(process.hrtime.bigint() - started) / 1e9
    }
    const inbox = await vault.list('Inbox')
    if (inbox.length !== init.messages) {
      throw new Error(`after ${init.messages} messages stored (250 each) the Inbox holds ${inbox.length}${init.locked ? ' after unlock' : ''}`)
    }
    const mailBytes = inbox.reduce((sum, m) => sum + m.size, 0)
    result.memory = process.memoryUsage()
    if (init.locked) {
      // Filing leaves the arrivals' records behind; the next scrub compacts them away.
      result.filedDiskBytes = await bytesUnder(vaultDir)
      await vault.scrub()
    }
    await endpoint.stop()
    endpoint = undefined
    await vault.close() // waits for the search index, and saves it
    vault = undefined
    const [diskBytes, shardBytes, indexBytes] = await Promise.all([bytesUnder(vaultDir), bytesUnder(join(vaultDir, 'shards')), bytesUnder(join(vaultDir, 'index'))])
    result.storage = { diskBytes, shardBytes, indexBytes, mailBytes, ...await indexFigures(join(vaultDir, 'index')) }
    return result as VaultIngestResult
  } finally {
    peers?.stop()
    await endpoint?.stop().catch(() => {})
    await vault?.close().catch(() => {})
    await rm(dir, { recursive: true, force: true })
  }
}

const fmt = (n: number): string => n.toFixed(0)
const mib = (n: number): string => `${(n / 1024 / 1024).toFixed(1)} MiB`
const pct = (part: number, whole: number): string => `${(100 * part / whole).toFixed(0)}%`

function storageLines (label: string, s: StorageFigures): string[] {
  const lines = [
    `Storage overhead (${label}): ${(s.diskBytes / s.mailBytes).toFixed(2)}x: ${mib(s.diskBytes)} on disk for ${mib(s.mailBytes)} of mail` +
      ` (shards ${mib(s.shardBytes)} = ${(s.shardBytes / s.mailBytes).toFixed(2)}x, index ${mib(s.indexBytes)} = ${(s.indexBytes / s.mailBytes).toFixed(2)}x, other ${mib(s.diskBytes - s.shardBytes - s.indexBytes)})`
  ]
  const l = s.logical
  const total = l.search + l.meta + l.locators + l.arrivals + l.other
  lines.push(`  index contents: ${mib(total)} of keys+values: search ${mib(l.search)} (${pct(l.search, total)}), metadata ${mib(l.meta)}, locators ${mib(l.locators)}, arrivals ${mib(l.arrivals)}, other ${mib(l.other)};` +
    ` search index = ${(l.search / s.mailBytes).toFixed(2)}x the mail`)
  if (s.approximate !== undefined) {
    lines.push(`  approximateSize: search keys ${mib(s.approximate.search)} of ${mib(s.approximate.all)} (${s.approximate.all > 0 ? pct(s.approximate.search, s.approximate.all) : 'n/a'})`)
  }
  return lines
}

async function main (): Promise<void> {
  const { values } = parseArgs({
    options: {
      messages: { type: 'string', default: '3000' },
      rounds: { type: 'string', default: '3' },
      sessions: { type: 'string', default: '20' },
      size: { type: 'string', default: '5120' },
      batch: { type: 'string', default: '32' },
      'no-postfix': { type: 'boolean', default: false },
      'no-locked': { type: 'boolean', default: false }
    }
  })
  const messages = Number(values.messages)
  const rounds = Number(values.rounds)
  const sessions = Number(values.sessions)
  const size = Number(values.size)
  const batch = Number(values.batch)
  const withPostfix = !values['no-postfix']
  const withLocked = !values['no-locked']
  console.log(`vault ingest, ${new Date().toISOString()}, Node ${process.versions.node}: ${messages} messages of ${size} body bytes over ${sessions} sessions, ${rounds} rounds`)
  console.log(`node: ${sessions} onion-authenticated peers, pipelined batches of ${batch}; Postfix: smtp-source -d -s ${sessions} -l ${size} -m ${messages}, to a Maildir`)

  const postfix: number[] = []
  const delivered: number[] = []
  const unlocked: number[] = []
  const indexed: number[] = []
  const locked: number[] = []
  const unlockSeconds: number[] = []
  let lastUnlocked: VaultIngestResult | undefined
  let lastLocked: VaultIngestResult | undefined
  for (let round = 1; round <= rounds; round++) {
    const parts: string[] = []
    if (withPostfix) {
      const p = await measurePostfixIngest({ messages, sessions, size })
      postfix.push(p.perSecond)
      delivered.push(p.deliveredPerSecond)
      parts.push(`Postfix ${fmt(p.perSecond)} accepted / ${fmt(p.deliveredPerSecond)} delivered msg/s`)
    }
    const u = await measureVaultIngest({ messages, sessions, size, batch, locked: false })
    lastUnlocked = u
    unlocked.push(u.perSecond)
    indexed.push(messages / u.indexedSeconds!)
    parts.push(`node unlocked ${fmt(u.perSecond)} msg/s (indexed ${fmt(messages / u.indexedSeconds!)}; event loop delay p99 ${fmt(u.loopDelay.p99)} ms, max ${fmt(u.loopDelay.max)} ms)`)
    if (withLocked) {
      const l = await measureVaultIngest({ messages, sessions, size, batch, locked: true })
      lastLocked = l
      locked.push(l.perSecond)
      unlockSeconds.push(l.unlockSeconds!)
      parts.push(`node locked ${fmt(l.perSecond)} msg/s (loop delay p99 ${fmt(l.loopDelay.p99)} ms, max ${fmt(l.loopDelay.max)} ms; unlock filed them in ${l.unlockSeconds!.toFixed(1)} s)`)
    }
    console.log(`round ${round}: ${parts.join(', ')}`)
  }

  const n = median(unlocked)
  console.log('')
  if (withPostfix) {
    console.log(`median Postfix accepted:   ${fmt(median(postfix))} msg/s`)
    console.log(`median Postfix delivered:  ${fmt(median(delivered))} msg/s (in the Maildir)`)
  }
  console.log(`median node, unlocked:     ${fmt(n)} msg/s (search index caught up at ${fmt(median(indexed))} msg/s)`)
  if (withLocked) console.log(`median node, locked:       ${fmt(median(locked))} msg/s (unlock afterwards: ${median(unlockSeconds).toFixed(1)} s, ${fmt(messages / median(unlockSeconds))} msg/s filed)`)
  console.log(`(the Inbox held exactly ${messages} messages after every node run)`)
  if (withPostfix) {
    const pa = median(postfix)
    const pd = median(delivered)
    console.log(`ratio node unlocked / Postfix accepted:  ${(n / pa).toFixed(2)}   node unlocked / Postfix delivered:  ${(n / pd).toFixed(2)}   (goal >= 1)`)
    if (withLocked) console.log(`ratio node locked   / Postfix accepted:  ${(median(locked) / pa).toFixed(2)}   node locked   / Postfix delivered:  ${(median(locked) / pd).toFixed(2)}`)
  }
  console.log('')
  if (lastUnlocked !== undefined) for (const line of storageLines('unlocked run, last round', lastUnlocked.storage)) console.log(line)
  if (lastLocked !== undefined) {
    const s = lastLocked.storage
    console.log(`Storage overhead (locked run, last round): ${(lastLocked.lockedDiskBytes! / s.mailBytes).toFixed(2)}x before the unlock (arrivals), ${(lastLocked.filedDiskBytes! / s.mailBytes).toFixed(2)}x after filing them, ${(s.diskBytes / s.mailBytes).toFixed(2)}x after the next scrub compacted the arrivals' old records`)
  }
  const last = lastUnlocked ?? lastLocked
  if (last !== undefined) {
    const m = last.memory
    console.log(`RSS of the node process: ${mib(m.rss)} at the end of the last ${last === lastUnlocked ? 'unlocked' : 'locked'} run (vault open, ${messages} messages; JS heap ${mib(m.heapUsed)} used of ${mib(m.heapTotal)}, external ${mib(m.external)}, of which ArrayBuffers ${mib(m.arrayBuffers)}); peak over the whole benchmark ${mib(process.resourceUsage().maxRSS * 1024)}`)
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await main()
}
