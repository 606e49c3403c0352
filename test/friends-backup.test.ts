// Backups on friends' nodes (spec/backup.md part 3): four friends and an owner in one process,
// each a real libp2p host dialling the others over plain TCP on 127.0.0.1 (`direct: true`).
// The friends target runs the shared BackupTarget compliance suite; a node is backed up onto
// its friends and restored on a new data directory with a new placement record while one
// friend is stopped; friends see only ciphertext; a friend that alters or deletes a shard is
// caught by an audit and the shard is placed again; the protocol refuses strangers, quota
// overruns, other owners' shards and malformed requests without falling over.
import { describe, it, before, after, beforeEach } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readdir, readFile, rm, writeFile, unlink } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { lpStream } from '@libp2p/utils'
import { backupToTarget, restoreFromTarget, TargetRefusedError } from '../node/backup/index.ts'
import { silentLogger } from '../node/log/index.ts'
import { FriendBook } from '../node/friends/friend-book.ts'
import { createP2PHost, friendAddress, onionOfSeed, peerIdOfOnion, type P2PHost } from '../node/friends/p2p.ts'
import { PeerRefusedError, request } from '../node/friends/rpc.ts'
import { openShardHost, type ShardHost, HELD_DIR, ShardHostError } from '../node/friends/shard-host.ts'
import { BACKUP_PROTOCOL, deleteShards, getShard, listShards, putShard, serveBackup, usage } from '../node/friends/backup-protocol.ts'
import { friendsBackupTarget, memoryPlacementStore, vaultPlacementStore, type FriendsBackupTarget, type Placement, type PlacementStore } from '../node/friends/friends-target.ts'
import { decodeFrame, encodeFrame, MAX_FRAME_BYTES } from '../protocol/friends-wire.ts'
import type { Folder } from '../node/store/mail-store.ts'
import { initNodeDir } from './harness/nodes.ts'
import { openTestVault, TEST_KDF, TEST_PASSPHRASE } from './harness/vault.ts'
import { backupTargetCompliance, binaryBlob } from './backup-target-compliance.ts'

const MiB = 1024 * 1024
const TIMEOUT_MS = 10_000

interface TestNode {
  name: string
  dir: string
  seed: Buffer
  onion: string
  host: P2PHost
  book: FriendBook
  shardHost: ShardHost
}

const dirs: string[] = []

async function startNode (name: string, seed: Buffer = randomBytes(32), dir?: string): Promise<TestNode> {
  dir ??= await mkdtemp(join(tmpdir(), `smtorp-friend-${name}-`))
  dirs.push(dir)
  const host = await createP2PHost({ onionSeed: seed, listen: { host: '127.0.0.1', port: 0 }, direct: true })
  const book = await FriendBook.open(dir)
  const shardHost = await openShardHost({ dataDir: dir, book })
  await serveBackup(host, { book, shardHost, logger: silentLogger() })
  return { name, dir, seed, onion: await onionOfSeed(seed), host, book, shardHost }
}

/** Stops a friend and starts it again on a new port; everyone who knows it learns the new address. */
async function restartFriend (f: TestNode, others: TestNode[]): Promise<void> {
  await stopHost(f.host)
  const again = await startNode(f.name, f.seed, f.dir)
  Object.assign(f, again)
  for (const o of others) if (o !== f && o.book.isFriend(f.onion)) await o.book.update(f.onion, { dial: f.host.getMultiaddrs()[0]!.toString() })
}

/** a holds `quota` bytes for b, and b for a. */
async function befriend (a: TestNode, b: TestNode, quota = 64 * MiB): Promise<void> {
  await a.book.add({ onion: b.onion, name: b.name, quotaForThem: quota, quotaFromThem: quota, dial: b.host.getMultiaddrs()[0]!.toString() })
  await b.book.add({ onion: a.onion, name: a.name, quotaForThem: quota, quotaFromThem: quota, dial: a.host.getMultiaddrs()[0]!.toString() })
}

function flipBit (bytes: Buffer, at: number): void {
  bytes.writeUInt8(bytes.readUInt8(at) ^ 0x01, at)
}

/** Every shard file a friend holds for the owner: [path, bytes]. */
async function heldFiles (friend: TestNode, owner: TestNode): Promise<Array<[string, Buffer]>> {
  const dir = join(friend.dir, HELD_DIR, owner.onion)
  const names = await readdir(dir).catch(() => [] as string[])
  return await Promise.all(names.sort().map(async (n) => [join(dir, n), await readFile(join(dir, n))] as [string, Buffer]))
}

function target (owner: TestNode, placement: PlacementStore = memoryPlacementStore(), dataShards = 2): FriendsBackupTarget {
  return friendsBackupTarget({ host: owner.host, book: owner.book, key: Buffer.alloc(32, 7), placement, dataShards, logger: silentLogger(), timeoutMs: TIMEOUT_MS })
}

let friends: TestNode[] = []

async function stopHost (host: P2PHost): Promise<void> {
  try {
    await host.stop()
  } catch {
    // stopped already
  }
}

// The four friends and the owner, started once, awaited by every suite's first hook (root
// level `before` hooks were seen to run after a suite's first `beforeEach` when several test
// files run in one process).
let started: Promise<void> | undefined
async function world (): Promise<void> {
  started ??= (async () => {
    friends = await Promise.all(['anna', 'bert', 'cleo', 'dora'].map(async (n) => await startNode(n)))
    owner = await startNode('owner')
    for (const f of friends) await befriend(owner, f)
  })()
  await started
}

after(async () => {
  for (const f of friends) await stopHost(f.host)
  for (const d of dirs) await rm(d, { recursive: true, force: true })
})

// ---- the BackupTarget contract ----

// One owner for the target tests, its shards wiped between tests so that one test's blobs
// (found again from the friends' lists) do not show up in another's. One owner rather than a
// new one per test: libp2p refuses more than 5 new inbound connections a second from one IP
// address (inboundConnectionThreshold), and here every peer is 127.0.0.1.
let owner: TestNode

async function wipeOwnerShards (): Promise<void> {
  for (const f of friends) await f.shardHost.dropOwner(owner.onion)
}

after(async () => {
  if (owner !== undefined) await stopHost(owner.host)
})

backupTargetCompliance('friends (k = 2, four friends)', async () => {
  await world()
  await wipeOwnerShards()
  const placement = memoryPlacementStore()
  return {
    target: target(owner, placement),
    reopen: async () => target(owner, placement),
    cleanup: async () => {}
  }
})

describe('friends target', () => {
  beforeEach(async () => {
    await world()
    await wipeOwnerShards()
  })

  it('puts one shard on each of the four friends: 2 data, 2 parity, each with header and MAC', async () => {
    const t = target(owner)
    const blob = binaryBlob(10_000)
    await t.put('abc1', blob)
    for (const f of friends) {
      const files = (await heldFiles(f, owner)).filter(([p]) => p.includes('abc1.'))
      assert.equal(files.length, 1, `${f.name} holds one shard`)
      // file: 3 + meta, then header 17 + 5000 + MAC 32
      const meta = files[0]![1].subarray(3, 3 + files[0]![1].readUInt16BE(1)).toString()
      assert.match(meta, /^1:2:2:10000:[0-9a-f]{16}$/)
      assert.equal(files[0]![1].length - 3 - meta.length, 17 + 5000 + 32)
    }
    const holdings = await t.holdings()
    assert.equal(holdings.length, 4)
    for (const h of holdings) assert.equal(h.shards, 1)
  })

  it('reads a blob back with a new placement store (as on a new machine), from the friends\' lists', async () => {
    const placement = memoryPlacementStore()
    const t = target(owner, placement)
    const blobs = new Map([['0a', binaryBlob(3000)], ['0b', binaryBlob(1)], ['0c', Buffer.alloc(0)]])
    for (const [n, b] of blobs) await t.put(n, b)
    await t.put('0a', binaryBlob(4000))
    const expected = await t.get('0a')
    const fresh = target(owner, memoryPlacementStore())
    assert.ok((await fresh.get('0a'))?.equals(expected!), 'the newest version')
    assert.ok((await fresh.get('0b'))?.equals(blobs.get('0b')!))
    assert.equal((await fresh.get('0c'))?.length, 0)
    const listed = new Map((await fresh.list()).map(b => [b.name, b.size]))
    assert.equal(listed.get('0a'), 4000)
    assert.equal(listed.get('0c'), 0)
    // The old version's shards were deleted from the other slot.
    for (const f of friends) assert.equal((await heldFiles(f, owner)).filter(([p]) => p.includes('/0a.')).length, 1)
  })

  it('refuses with TargetRefusedError when fewer than k + 1 friends hold shards', async () => {
    const lonely = await startNode('lonely')
    try {
      await befriend(lonely, friends[0]!)
      await befriend(lonely, friends[1]!)
      await assert.rejects(target(lonely, memoryPlacementStore(), 2).put('01', Buffer.from('x')), (err: Error) => {
        assert.ok(err instanceof TargetRefusedError, `${err.name}: ${err.message}`)
        assert.match(err.message, /needs at least 3 friends/)
        return true
      })
    } finally {
      await lonely.host.stop()
    }
  })

  it('a friend that alters a shard file and one that deletes one are caught by an audit; the shards are placed again', async () => {
    const t = target(owner)
    const blob = binaryBlob(20_000)
    await t.put('badd', blob)
    const [anna, bert] = friends as [TestNode, TestNode]
    const altered = (await heldFiles(anna, owner)).find(([p]) => p.includes('/badd.'))!
    flipBit(altered[1], altered[1].length - 40)
    await writeFile(altered[0], altered[1])
    const deleted = (await heldFiles(bert, owner)).find(([p]) => p.includes('/badd.'))!
    await unlink(deleted[0])
    const failedBefore = [anna, bert].map(f => owner.book.friend(f.onion)?.audits?.failed ?? 0)

    const report = await t.audit({ maxShards: 256 })
    assert.ok(report.failed >= 2, JSON.stringify(report))
    assert.equal(report.replaced, report.failed)
    assert.deepEqual(report.unreachable, [])
    assert.equal(owner.book.friend(anna.onion)!.audits!.failed, failedBefore[0]! + 1)
    assert.equal(owner.book.friend(bert.onion)!.audits!.failed, failedBefore[1]! + 1)
    assert.match(owner.book.friend(anna.onion)!.audits!.lastResult!, /1 of \d+ shards checked were altered or missing/)
    // Placed again on the same friends (they answer), readable again, and a second audit passes.
    const again = (await heldFiles(anna, owner)).find(([p]) => p.includes('/badd.'))!
    assert.notDeepEqual(again[1], altered[1])
    assert.ok((await heldFiles(bert, owner)).some(([p]) => p.includes('/badd.')))
    assert.ok((await t.get('badd'))?.equals(blob))
    const second = await t.audit({ maxShards: 256 })
    assert.equal(second.failed, 0)
  })

  it('rebuilds a blob from two good shards when one is altered and one is missing', async () => {
    const t = target(owner)
    const blob = binaryBlob(9_999)
    await t.put('feed', blob)
    const [, , cleo, dora] = friends as [TestNode, TestNode, TestNode, TestNode]
    const altered = (await heldFiles(cleo, owner)).find(([p]) => p.includes('/feed.'))!
    flipBit(altered[1], 100)
    await writeFile(altered[0], altered[1])
    await unlink((await heldFiles(dora, owner)).find(([p]) => p.includes('/feed.'))![0])
    assert.ok((await t.get('feed'))?.equals(blob))
  })

  it('uses up its challenges, then fetches the shard and makes a new generation', async () => {
    const placement = memoryPlacementStore()
    const t = target(owner, placement)
    await t.put('c0de', binaryBlob(500))
    for (let round = 0; round < 6; round++) {
      const report = await t.audit({ maxShards: 256 })
      assert.equal(report.failed, 0)
    }
    await t.flush()
    const shard = placement.current!.blobs.c0de!.shards[0]!
    assert.ok(shard.generation >= 1, `generation ${shard.generation}`)
  })

  it('repair moves the shards of a friend removed from the book onto a new friend', async () => {
    const placement = memoryPlacementStore()
    const t = target(owner, placement)
    const blob = binaryBlob(7_000)
    await t.put('e0e0', blob)
    const erin = await startNode('erin')
    try {
      await befriend(owner, erin)
      const gone = friends[3]!
      await owner.book.remove(gone.onion)
      const report = await t.repair()
      assert.ok(report.replaced >= 1, JSON.stringify(report))
      assert.equal(report.unplaced, 0)
      assert.ok((await heldFiles(erin, owner)).some(([p]) => p.includes('/e0e0.')))
      assert.ok((await t.get('e0e0'))?.equals(blob))
      await t.flush()
      assert.ok(!placement.current!.blobs.e0e0!.shards.some(s => s.friend === gone.onion))
    } finally {
      await befriend(owner, friends[3]!)
      await owner.book.remove(erin.onion)
      await erin.host.stop()
    }
  })

  it('a put with one friend stopped stores three shards and succeeds; repair places the fourth once the friend is back', async () => {
    const placement = memoryPlacementStore()
    const t = target(owner, placement)
    const dora = friends[3]!
    await stopHost(dora.host)
    const blob = binaryBlob(6_000)
    try {
      await t.put('d0d0', blob)
      await t.flush()
      assert.equal(placement.current!.blobs.d0d0!.shards.filter(s => s.friend === null).length, 1)
      assert.ok((await t.get('d0d0'))?.equals(blob))
    } finally {
      await restartFriend(dora, [owner, ...friends])
    }
    const report = await t.repair()
    assert.equal(report.replaced, 1)
    await t.flush()
    assert.ok(placement.current!.blobs.d0d0!.shards.every(s => s.friend !== null))
    assert.ok((await heldFiles(dora, owner)).some(([p]) => p.includes('/d0d0.')))
  })

  it('repair moves a shard off a friend that failed its audits three times', async () => {
    const placement = memoryPlacementStore()
    const t = target(owner, placement)
    await t.put('bad0', binaryBlob(2_000))
    const anna = friends[0]!
    for (let round = 0; round < 3; round++) {
      const file = (await heldFiles(anna, owner)).find(([p]) => p.includes('/bad0.'))!
      flipBit(file[1], file[1].length - 1)
      await writeFile(file[0], file[1])
      const report = await t.audit({ maxShards: 256 })
      assert.equal(report.failed, 1)
    }
    const erin = await startNode('erin3')
    try {
      await befriend(owner, erin)
      const report = await t.repair()
      assert.equal(report.replaced, 1)
      await t.flush()
      assert.ok(!placement.current!.blobs.bad0!.shards.some(s => s.friend === anna.onion))
      assert.ok((await heldFiles(erin, owner)).some(([p]) => p.includes('/bad0.')))
      assert.ok(!(await heldFiles(anna, owner)).some(([p]) => p.includes('/bad0.')), 'the old shard was deleted on anna')
      assert.equal((await t.get('bad0'))?.length, 2_000)
    } finally {
      await owner.book.remove(erin.onion)
      await stopHost(erin.host)
    }
  })

  it('repair moves shards off a friend not seen for longer than absentAfterMs', async () => {
    const placement = memoryPlacementStore()
    const t = target(owner, placement)
    await t.put('a5e7', binaryBlob(1234))
    const erin = await startNode('erin2')
    try {
      await befriend(owner, erin)
      const later = new Date(Date.now() + 3600_000)
      // Everyone but erin was last seen an hour before `later`.
      await owner.book.update(erin.onion, { lastSeen: later.toISOString() })
      const report = await t.repair({ absentAfterMs: 60_000, now: later })
      // Four shards, one new friend: one moves, the others stay until more friends come.
      assert.equal(report.replaced, 1)
      assert.equal(report.unplaced, 3)
      assert.equal((await t.get('a5e7'))?.length, 1234)
    } finally {
      await owner.book.remove(erin.onion)
      await erin.host.stop()
    }
  })
})

// ---- the protocol ----

describe('backup protocol', () => {
  let holder: TestNode
  let a: TestNode
  let b: TestNode
  before(async () => {
    await world()
    holder = friends[0]!
    a = await startNode('a')
    b = await startNode('b')
    await befriend(holder, a, 10_000)
    await befriend(holder, b, 10_000)
  })
  after(async () => {
    for (const n of [a, b]) {
      await n.host.stop()
      await holder.book.remove(n.onion)
      await holder.shardHost.dropOwner(n.onion)
    }
  })
  const onHolder = (n: TestNode) => n.book.friend(holder.onion)!

  it('refuses a peer that is not a friend with not-a-friend', async () => {
    const stranger = await startNode('stranger')
    try {
      const asFriend = { ...onHolder(a) }
      await assert.rejects(usage(stranger.host, asFriend, { timeoutMs: TIMEOUT_MS }), (err: Error) => {
        assert.ok(err instanceof PeerRefusedError, `${err.name}: ${err.message}`)
        assert.equal(err.code, 'not-a-friend')
        assert.equal(err.message, 'this node does not know you as a friend')
        return true
      })
      await assert.rejects(putShard(stranger.host, asFriend, { name: 'aa', index: 0, meta: '', bytes: Buffer.from('x') }), { code: 'not-a-friend' })
    } finally {
      await stranger.host.stop()
    }
  })

  it('refuses a put over the quota with over-quota, saying used and quota; usage survives a restart', async () => {
    await putShard(a.host, onHolder(a), { name: 'aa', index: 0, meta: 'm', bytes: Buffer.alloc(5000) })
    assert.deepEqual(await usage(a.host, onHolder(a)), { used: 5000 + 1 + 256, quota: 10_000 })
    await assert.rejects(putShard(a.host, onHolder(a), { name: 'ab', index: 0, meta: '', bytes: Buffer.alloc(5000) }), (err: Error) => {
      assert.ok(err instanceof PeerRefusedError)
      assert.equal(err.code, 'over-quota')
      assert.match(err.message, /over your quota of 10000 bytes \(5257 bytes used now\)/)
      return true
    })
    // Overwriting counts the difference.
    await putShard(a.host, onHolder(a), { name: 'aa', index: 0, meta: 'm', bytes: Buffer.alloc(9000) })
    assert.equal((await usage(a.host, onHolder(a))).used, 9257)
    const reopened = await openShardHost({ dataDir: holder.dir, book: holder.book })
    assert.equal(reopened.usage(a.onion), 9257)
    await deleteShards(a.host, onHolder(a), 'aa')
    assert.equal((await usage(a.host, onHolder(a))).used, 0)
  })

  it('a friend can neither delete nor overwrite nor read another friend\'s shards', async () => {
    await putShard(b.host, onHolder(b), { name: 'bb', index: 3, meta: 'b meta', bytes: Buffer.from('b\'s shard') })
    assert.equal(await deleteShards(a.host, onHolder(a), 'bb'), 0)
    assert.equal(await deleteShards(a.host, onHolder(a), 'bb', 3), 0)
    await assert.rejects(getShard(a.host, onHolder(a), 'bb', 3), { code: 'not-found' })
    // A put of the same name lands in a's own namespace.
    await putShard(a.host, onHolder(a), { name: 'bb', index: 3, meta: 'a meta', bytes: Buffer.from('a\'s shard') })
    assert.equal((await getShard(b.host, onHolder(b), 'bb', 3)).toString(), 'b\'s shard')
    assert.equal((await getShard(a.host, onHolder(a), 'bb', 3)).toString(), 'a\'s shard')
    assert.deepEqual(await listShards(b.host, onHolder(b)), [{ name: 'bb', index: 3, size: 9, meta: 'b meta' }])
    await deleteShards(a.host, onHolder(a), 'bb')
    assert.equal((await getShard(b.host, onHolder(b), 'bb', 3)).toString(), 'b\'s shard')
  })

  it('answers malformed requests with bad-request and keeps serving', async () => {
    const to = friendAddress(onHolder(a))
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ op: 'put', name: '../../etc', index: 0, meta: '' }, /name must be 1 to 64 lowercase hex/],
      [{ op: 'put', name: 'ab/cd', index: 0, meta: '' }, /name must be/],
      [{ op: 'get', name: 'AB', index: 0 }, /name must be/],
      [{ op: 'put', name: 'ab', index: 1_000_000, meta: '' }, /index must be an integer from 0 to 31/],
      [{ op: 'put', name: 'ab', index: -1, meta: '' }, /index must be/],
      [{ op: 'put', name: 'ab', index: 1.5, meta: '' }, /index must be/],
      [{ op: 'delete', name: 'ab', index: '0' }, /index must be/],
      [{ op: 'put', name: 'ab', index: 0, meta: 'x'.repeat(257) }, /meta must be a string of at most 256/],
      [{ op: 'audit', shards: [{ name: 'ab', index: 0, nonce: 'c2hvcnQ=' }] }, /nonce is base64 of 16 to 64 bytes/],
      [{ op: 'audit', shards: Array.from({ length: 257 }, () => ({ name: 'ab', index: 0, nonce: Buffer.alloc(16).toString('base64') })) }, /at most 256/],
      [{ op: 'audit', shards: 'all' }, /shards must be a list/],
      [{ op: 'rm -rf' }, /op must be one of/],
      [{}, /op must be one of/]
    ]
    for (const [header, message] of cases) {
      await assert.rejects(request(a.host, to, BACKUP_PROTOCOL, header, Buffer.from('x'), { timeoutMs: TIMEOUT_MS }), (err: Error) => {
        assert.ok(err instanceof PeerRefusedError, `${JSON.stringify(header).slice(0, 80)}: ${err.name}: ${err.message}`)
        assert.equal(err.code, 'bad-request')
        assert.match(err.message, message)
        return true
      })
    }
    // A frame whose header is not JSON, written on a raw stream.
    const stream = await a.host.dialProtocol(to, BACKUP_PROTOCOL)
    const lp = lpStream(stream, { maxDataLength: MAX_FRAME_BYTES })
    const junk = Buffer.concat([Buffer.from([1, 0, 0, 0, 8]), Buffer.from('not json')])
    await lp.write(junk)
    const answer = decodeFrame((await lp.read()).subarray())
    await stream.close()
    assert.equal(answer.header.ok, false)
    assert.equal(answer.header.code, 'bad-request')
    assert.ok(encodeFrame({}).length > 0)
    // Nothing was written outside the holder's own directory, and it still serves.
    assert.deepEqual(await readdir(join(holder.dir, HELD_DIR, a.onion)), [])
    assert.equal((await usage(a.host, onHolder(a))).quota, 10_000)
  })
})

describe('shard host', () => {
  before(world)
  it('makes no path from a bad name, index or owner, and removes leftover temp files when it opens', async () => {
    const holder = friends[1]!
    const ownerOnion = owner.onion
    await holder.shardHost.dropOwner(ownerOnion)
    for (const [name, index] of [['../x', 0], ['..', 0], ['ab/cd', 0], ['', 0], ['ab', 32], ['ab', -1], ['ab', 0.5]] as const) {
      await assert.rejects(holder.shardHost.put(ownerOnion, name, index, '', Buffer.from('x')), ShardHostError, `${name} ${index}`)
      await assert.rejects(holder.shardHost.get(ownerOnion, name, index), ShardHostError)
    }
    await assert.rejects(holder.shardHost.put('../../etc', 'ab', 0, '', Buffer.from('x')), ShardHostError)
    const dir = join(holder.dir, HELD_DIR, ownerOnion)
    await holder.shardHost.put(ownerOnion, 'ab', 0, '', Buffer.from('kept'))
    await writeFile(join(dir, 'ab.1.tmp-0badf00d'), 'half a write')
    const reopened = await openShardHost({ dataDir: holder.dir, book: holder.book })
    assert.deepEqual(await readdir(dir), ['ab.0'])
    assert.equal(reopened.usage(ownerOnion), 4 + 256)
    assert.deepEqual(await reopened.list(ownerOnion), [{ name: 'ab', index: 0, size: 4, meta: '' }])
    await holder.shardHost.dropOwner(ownerOnion)
  })
})

// ---- a node's backup onto its friends, and its restore ----

const SAMPLES = 24
function sample (n: number): { folder: Folder, raw: Buffer, flags: string[], messageId: string, marker: string } {
  const folder = (['Inbox', 'Sent', 'Trash'] as Folder[])[n % 3]!
  const marker = `zqfriendmarker${String(n).padStart(4, '0')}`
  const raw = Buffer.concat([
    Buffer.from(`From: <zq${n}@example.org>\r\nTo: <zqto${n}@example.net>\r\nSubject: ${marker}\r\nMessage-ID: <${marker}@example.org>\r\n\r\n${marker} body\r\n`),
    Buffer.from(Array.from({ length: 256 }, (_, i) => i)), Buffer.from('\r\n')
  ])
  return { folder, raw, flags: n % 2 === 0 ? ['\\Seen'] : [], messageId: `${marker}@example.org`, marker }
}

describe('a node backed up onto four friends and restored with one friend stopped', () => {
  let alice: TestNode

  before(async () => {
    await world()
    const { dir } = await initNodeDir('alice', { user: 'alice' })
    dirs.push(dir)
    const seed = await readFile(join(dir, 'identity', 'onion.seed'))
    alice = await startNode('alice', seed, await mkdtemp(join(tmpdir(), 'smtorp-alice-book-')))
    alice.dir = dir
    for (const f of friends) await befriend(alice, f)
  })
  after(async () => {
    await stopHost(alice.host)
  })

  it('backs up, friends hold only ciphertext, and a restore on a new data directory brings every message back byte-identical', async () => {
    const { vault } = await openTestVault(join(alice.dir, 'vault'))
    const samples = Array.from({ length: SAMPLES }, (_, n) => sample(n))
    try {
      for (const s of samples) await vault.add({ folder: s.folder, raw: s.raw, flags: s.flags, from: 'x@example.org', to: ['y@example.net'], messageId: s.messageId })
      // The placement kept as a sealed vault record, as the node keeps it.
      const report = await backupToTarget({ vault, dataDir: alice.dir, target: target(alice, vaultPlacementStore(vault)) })
      assert.equal(report.messages, SAMPLES)
      assert.equal(report.uploaded, SAMPLES)
      const record = JSON.parse((await vault.getRecord('friends', 'placement'))!.toString()) as Placement
      assert.equal(Object.keys(record.blobs).length, SAMPLES + 3)
      const again = await backupToTarget({ vault, dataDir: alice.dir, target: target(alice, vaultPlacementStore(vault)) })
      assert.equal(again.uploaded, 0, 'a second backup finds every message blob in the vault\'s placement record')
    } finally {
      await vault.close()
    }

    for (const f of friends) {
      const files = await heldFiles(f, alice)
      assert.ok(files.length >= SAMPLES + 3, `${f.name} holds ${files.length} shards`)
      for (const [, bytes] of files) {
        const text = bytes.toString('latin1')
        for (const s of samples) assert.ok(!text.includes(s.marker), `${f.name} holds a shard with "${s.marker}"`)
        assert.ok(!text.includes('example.org'))
      }
    }

    // One friend goes away; the alice comes back on a new machine: the same onion seed, its
    // friend book, a new data directory and no placement record.
    const stopped = friends[2]!
    await stopped.host.stop()
    try {
      const restoreDir = join(await mkdtemp(join(tmpdir(), 'smtorp-friends-restore-')), 'node')
      dirs.push(join(restoreDir, '..'))
      const restored = await restoreFromTarget({ target: target(alice, memoryPlacementStore()), passphrase: TEST_PASSPHRASE, dataDir: restoreDir, vault: { passphraseKdf: TEST_KDF, recoveryKdf: TEST_KDF }, logger: silentLogger() })
      assert.deepEqual(restored.damaged, [])
      assert.equal(restored.restored, SAMPLES)
      const { vault: back } = await openTestVault(join(restoreDir, 'vault'))
      try {
        for (const s of samples) {
          const meta = (await back.list(s.folder)).find(m => m.messageId === s.messageId)
          assert.ok(meta !== undefined, s.messageId)
          assert.ok((await back.get(meta.id))!.raw.equals(s.raw), `${s.messageId} is byte-identical`)
          assert.deepEqual([...meta.flags].sort(), [...s.flags].sort())
        }
      } finally {
        await back.close()
      }
    } finally {
      // Back, on a new port.
      await restartFriend(stopped, [alice, owner, ...friends])
    }
  })
})

// A check that the peer id in a friend's dial address cannot be swapped for another's.
describe('friendAddress', () => {
  before(world)
  it('binds the dial address to the friend\'s own peer id', () => {
    const [x, y] = friends as [TestNode, TestNode]
    const wrong = `${x.host.getMultiaddrs()[0]!.decapsulateCode(421).toString()}/p2p/${peerIdOfOnion(y.onion).toString()}`
    assert.ok(friendAddress({ onion: x.onion, dial: wrong }).toString().endsWith(`/p2p/${peerIdOfOnion(x.onion).toString()}`))
  })
})
