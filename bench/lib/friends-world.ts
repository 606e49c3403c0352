/**
 * An owner and its friends for the backup benchmark, in one process: each a real libp2p host
 * (node/friends/p2p.ts) with a friend book, and each friend serving the backup protocol
 * (node/friends/backup-protocol.ts) from a shard host in its own data directory.
 *
 * Over Tor (`tor` given): each host has its own client tor on the private network and
 * publishes its onion there (attach mode, as test/friends-tor.test.ts does); friends are
 * reached by onion only. Direct (`tor` absent): hosts with `direct: true` dial each other's
 * loopback TCP ports, as test/friends-backup.test.ts does.
 *
 * Every friend also serves a sink protocol (`SINK_PROTOCOL`: takes a body, answers its
 * length): the bare request/answer path the backup protocol runs on, for the raw reference.
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { FriendBook } from '../../node/friends/friend-book.ts'
import { createP2PHost, friendAddress, onionOfSeed, FRIENDS_VIRTUAL_PORT, type P2PHost } from '../../node/friends/p2p.ts'
import { openShardHost, HELD_DIR, type ShardHost } from '../../node/friends/shard-host.ts'
import { serveBackup } from '../../node/friends/backup-protocol.ts'
import { request, serve } from '../../node/friends/rpc.ts'
import { torService, type TorService } from '../../node/tor/index.ts'
import { silentLogger } from '../../node/log/index.ts'
import { expandedSecretKey } from '../../protocol/onion.ts'
import { freeLoopbackPort } from '../../test/harness/processes.ts'
import type { PrivateTorNetwork, TorClient } from '../../test/harness/tor-network.ts'

export const SINK_PROTOCOL = '/smtorp/bench/sink/1'
/** Quota each way: far above what any run stores (10,000 messages of 8 KiB at 1.5x is ~130 MB). */
const QUOTA = 4 * 1024 * 1024 * 1024

export interface WorldHost {
  name: string
  dir: string
  seed: Buffer
  onion: string
  host: P2PHost
  book: FriendBook
  tor?: TorClient
  publisher?: TorService
  shardHost?: ShardHost
}

export interface FriendsWorld {
  owner: WorldHost
  friends: WorldHost[]
  stop (): Promise<void>
}

export interface FriendsWorldInit {
  /** The owner's data directory (its friend book goes there) and onion seed. */
  ownerDir: string
  ownerSeed: Buffer
  friends: number
  /** The private Tor network; absent: direct loopback TCP. */
  tor?: PrivateTorNetwork
}

async function startHost (name: string, dir: string, seed: Buffer, network: PrivateTorNetwork | undefined): Promise<WorldHost> {
  const onion = await onionOfSeed(seed)
  const port = await freeLoopbackPort()
  const book = await FriendBook.open(dir)
  if (network === undefined) {
    const host = await createP2PHost({ onionSeed: seed, listen: { host: '127.0.0.1', port }, direct: true })
    return { name, dir, seed, onion, host, book }
  }
  const tor = await network.startClient(`bench-${name}`)
  const host = await createP2PHost({ onionSeed: seed, listen: { host: '127.0.0.1', port }, socks: () => ({ host: '127.0.0.1', port: tor.socksPort }) })
  const publisher = torService({ mode: 'attach', controlHost: '127.0.0.1', controlPort: tor.controlPort, cookieFile: tor.cookieFile, socksHost: '127.0.0.1', socksPort: tor.socksPort }, { logger: silentLogger() })
  await publisher.start()
  await publisher.publishOnion({ expandedSecretKey: expandedSecretKey(seed), virtualPort: FRIENDS_VIRTUAL_PORT, target: { host: '127.0.0.1', port } })
  return { name, dir, seed, onion, host, book, tor, publisher }
}

export async function startFriendsWorld (init: FriendsWorldInit): Promise<FriendsWorld> {
  const made: WorldHost[] = []
  let stopped = false
  const stop = async (): Promise<void> => {
    if (stopped) return
    stopped = true
    for (const h of made) {
      await Promise.resolve(h.host.stop()).catch(() => {})
      await h.publisher?.stop().catch(() => {})
      await h.tor?.stop().catch(() => {})
    }
    for (const h of made.slice(1)) await rm(h.dir, { recursive: true, force: true })
  }
  try {
    const ownerStarting = startHost('owner', init.ownerDir, init.ownerSeed, init.tor)
    const friendsStarting = Array.from({ length: init.friends }, async (_, i) => {
      const dir = await mkdtemp(join(tmpdir(), `smtorp-bench-friend${i}-`))
      const h = await startHost(`friend${i}`, dir, randomBytes(32), init.tor)
      made.push(h)
      h.shardHost = await openShardHost({ dataDir: dir, book: h.book })
      await serveBackup(h.host, { book: h.book, shardHost: h.shardHost, logger: silentLogger() })
      await serve(h.host, SINK_PROTOCOL, async (frame) => ({ header: { n: frame.body.byteLength } }))
      return h
    })
    const owner = await ownerStarting
    made.unshift(owner)
    const friends = await Promise.all(friendsStarting)
    for (const f of friends) {
      const direct = init.tor === undefined
      await owner.book.add({ onion: f.onion, name: f.name, quotaForThem: QUOTA, quotaFromThem: QUOTA, ...(direct ? { dial: f.host.getMultiaddrs()[0]!.toString() } : {}) })
      await f.book.add({ onion: owner.onion, name: owner.name, quotaForThem: QUOTA, quotaFromThem: QUOTA, ...(direct ? { dial: owner.host.getMultiaddrs()[0]!.toString() } : {}) })
    }
    if (init.tor !== undefined) {
      await Promise.all([owner, ...friends].map(async (h) => await h.publisher!.waitForDescriptorUpload(h.onion, 90_000)))
    }
    // The first request to each friend builds the circuit (descriptor, introduction,
    // rendezvous) and the libp2p connection; for a few seconds after publication tor may
    // still answer "descriptor not found", so retry for up to 60 s.
    await Promise.all(friends.map(async (f) => {
      const deadline = Date.now() + 60_000
      for (;;) {
        try {
          await request(owner.host, friendAddress(owner.book.friend(f.onion)!), SINK_PROTOCOL, {}, Buffer.alloc(16), { timeoutMs: 45_000 })
          return
        } catch (err) {
          if (Date.now() > deadline) throw err
          await new Promise(resolve => setTimeout(resolve, 500))
        }
      }
    }))
    return { owner, friends, stop }
  } catch (err) {
    await stop()
    throw err
  }
}

/** Bytes the friends hold for `owner`: files, their apparent size, their allocated blocks, and the shard bytes the owner sent. */
export async function heldBytes (friends: WorldHost[], owner: string): Promise<{ files: number, apparent: number, allocated: number, shardBytes: number }> {
  let files = 0
  let apparent = 0
  let allocated = 0
  let shardBytes = 0
  for (const f of friends) {
    const dir = join(f.dir, HELD_DIR, owner)
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      const path = join(dir, name)
      const s = await stat(path)
      if (!s.isFile()) continue
      files++
      apparent += s.size
      allocated += s.blocks * 512
      // File: 1 byte format, 2 bytes meta length, the meta, then the shard as sent.
      const head = (await readFile(path)).subarray(0, 3)
      shardBytes += s.size - 3 - head.readUInt16BE(1)
    }
  }
  return { files, apparent, allocated, shardBytes }
}
