// Friendship and recovery shares held by friends, in one process over loopback TCP (the
// transport over Tor is test/friends-tor.test.ts; the whole disaster over the private Tor
// network is test/disaster-recovery.test.ts). Real vaults, real libp2p hosts with Noise.
//
// What must hold (issue "Friends", points 2, 6, 7): invites make two nodes list each other and
// are single-use; only friends can be custodians and only friends can store or check shares;
// the owner sees which custodians hold a valid share; a recovery request is released only
// after approval by hand, sealed to the requester; with t approvals the key is rebuilt and
// the node comes back (same onion, every message, a new passphrase); with fewer it is not, and
// the error says why; a forged share is detected.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { backupToTarget, memoryBackupTarget, type BackupTarget, type MemoryBlobs } from '../node/backup/index.ts'
import { silentLogger } from '../node/log/index.ts'
import { FriendBook } from '../node/friends/friend-book.ts'
import { Friendship, FriendshipError } from '../node/friends/friendship.ts'
import { createP2PHost, type P2PHost } from '../node/friends/p2p.ts'
import { PeerRefusedError, request } from '../node/friends/rpc.ts'
import { Custody, RECOVERY_PROTOCOL, CUSTODY_KIND, type RecoveryRequest } from '../node/recovery/custody.ts'
import { recover, type RecoveryEvent } from '../node/recovery/recover.ts'
import { newRequestKeyPair, releaseCode } from '../node/recovery/release.ts'
import { NotEnoughSharesError, ForgedShareError } from '../node/recovery/shares.ts'
import { formatShare, parseShare } from '../protocol/recovery-share.ts'
import { readKeySlots } from '../node/vault/key-slots.ts'
import { vault as createVault, type Vault } from '../node/vault/index.ts'
import { multiaddr } from '@multiformats/multiaddr'
import { initNodeDir } from './harness/nodes.ts'
import { openTestVault, TEST_KDF, TEST_PASSPHRASE } from './harness/vault.ts'

const VAULT_OPTIONS = { passphraseKdf: TEST_KDF, recoveryKdf: TEST_KDF }
const GiB = 1024 ** 3

interface Peer {
  name: string
  dir: string
  onion: string
  vault: Vault
  book: FriendBook
  host: P2PHost
  friendship: Friendship
  custody: Custody
  dial: string
}

async function peer (name: string): Promise<Peer> {
  const { dir, identity } = await initNodeDir(name, {})
  const { vault } = await openTestVault(join(dir, 'vault'))
  const book = await FriendBook.open(dir)
  const host = await createP2PHost({ onionSeed: identity.onionKey.seed, listen: { host: '127.0.0.1', port: 0 }, direct: true })
  const friendship = new Friendship({ host, book, ownName: () => name, directAddress: () => host.getMultiaddrs()[0]!.toString() })
  await friendship.start()
  const custody = new Custody({
    host, vault, book,
    kitContents: async () => ({
      onionSeed: identity.onionKey.seed.toString('base64'),
      vaultId: (await readKeySlots(join(dir, 'vault')))!.vaultId,
      friends: book.friends().map(f => ({ onion: f.onion, name: f.name, quotaForThem: f.quotaForThem, quotaFromThem: f.quotaFromThem, ...(f.dial !== undefined ? { dial: f.dial } : {}) }))
    })
  })
  await custody.start()
  return { name, dir, onion: identity.onionKey.address, vault, book, host, friendship, custody, dial: host.getMultiaddrs()[0]!.toString() }
}

async function befriend (a: Peer, b: Peer): Promise<void> {
  const { code } = await a.friendship.invite({ quotaForThem: GiB, dial: a.dial })
  await b.friendship.accept(code, { quotaForThem: 2 * GiB })
  assert.equal(a.book.friend(b.onion)?.dial, b.dial, 'in direct set-ups the invitee tells its address')
}

function sample (n: number): Buffer {
  return Buffer.from(`From: <s${n}@example.org>\r\nTo: <alice@example.org>\r\nSubject: custody test ${n}\r\nMessage-ID: <m${n}@example.org>\r\n\r\nzqbodymarker${n} ${randomBytes(8).toString('hex')}\r\n`)
}

describe('friends and recovery shares held by friends', { timeout: 180_000 }, () => {
  let alice: Peer, bob: Peer, carol: Peer, dave: Peer, eve: Peer
  const blobs: MemoryBlobs = new Map()
  /** A new connection to the backup (recover closes the target it is given). */
  const backup = (): BackupTarget => memoryBackupTarget({ blobs })
  const messages: Buffer[] = []
  const cleanup: string[] = []

  before(async () => {
    const peers = await Promise.all(['alice', 'bob', 'carol', 'dave', 'eve'].map(peer))
    ;[alice, bob, carol, dave, eve] = peers as [Peer, Peer, Peer, Peer, Peer]
    for (const p of [alice, bob, carol, dave, eve]) cleanup.push(p.dir)
    for (let n = 0; n < 20; n++) {
      const raw = sample(n)
      messages.push(raw)
      await alice.vault.add({ folder: 'Inbox', raw, from: `s${n}@example.org`, to: ['alice@example.org'], flags: n % 2 === 0 ? ['\\Seen'] : [] })
    }
  })

  after(async () => {
    for (const p of [alice, bob, carol, dave, eve]) {
      await p?.host.stop()
      await p?.vault.close().catch(() => {})
    }
    for (const dir of cleanup) await rm(dir, { recursive: true, force: true })
  })

  it('an invite makes both sides list each other, with the storage each offered, and works once', async () => {
    const { code } = await alice.friendship.invite({ quotaForThem: GiB, dial: alice.dial })
    const added = await bob.friendship.accept(code, { quotaForThem: 2 * GiB })
    assert.equal(added.onion, alice.onion)
    assert.equal(added.name, 'alice')
    assert.equal(added.quotaFromThem, GiB, 'alice offered bob 1 GiB')
    const seen = alice.book.friend(bob.onion)
    assert.equal(seen?.name, 'bob')
    assert.equal(seen?.quotaFromThem, 2 * GiB, 'bob offered alice 2 GiB')
    assert.equal(seen?.dial, bob.dial)
    await assert.rejects(carol.friendship.accept(code, { quotaForThem: GiB }), (err: Error) => err instanceof FriendshipError && /not valid: it was used already/.test(err.message))
    assert.equal(alice.book.isFriend(carol.onion), false)
    await assert.rejects(alice.friendship.accept((await alice.friendship.invite({ quotaForThem: 1 })).code, { quotaForThem: 1 }), /own/)
    await befriend(alice, carol)
    await befriend(alice, dave)
  })

  it('only friends can be custodians; the owner sees each custodian take and hold its share', async () => {
    await assert.rejects(alice.custody.appoint([bob.onion, eve.onion], 2), /not a friend/)
    const custodians = await alice.custody.appoint([bob.onion, carol.onion, dave.onion], 2)
    assert.deepEqual(custodians.map(c => [c.name, c.index, c.check?.ok]), [['bob', 1, true], ['carol', 2, true], ['dave', 3, true]])
    assert.equal((await bob.custody.held()).length, 1)
    const checked = await alice.custody.check()
    assert.deepEqual(checked.map(c => c.check?.message), ['holds its share', 'holds its share', 'holds its share'])
    // What a custodian holds: its one share and a sealed kit, never the onion seed in the clear.
    const held = (await bob.custody.held())[0]!
    assert.equal(held.owner, alice.onion)
    const seed = await readFile(join(alice.dir, 'identity', 'onion.seed'))
    assert.equal(Buffer.from(held.kit, 'base64').includes(seed), false)
    assert.equal(Buffer.from(held.kit, 'base64').toString('latin1').includes(seed.toString('base64')), false)
  })

  it('a non-friend cannot store or check a share', async () => {
    const tryAs = async (header: Record<string, unknown>, body?: Buffer): Promise<unknown> => await request(eve.host, multiaddr(bob.dial), RECOVERY_PROTOCOL, header, body)
    await assert.rejects(tryAs({ op: 'hold', share: (await alice.custody.split())!.custodians[0]!.share }, Buffer.from('kit')), (err: Error) => err instanceof PeerRefusedError && err.code === 'not-a-friend')
    await assert.rejects(tryAs({ op: 'check', nonce: randomBytes(16).toString('base64') }), (err: Error) => err instanceof PeerRefusedError && err.code === 'not-a-friend')
    await assert.rejects(tryAs({ op: 'nonsense' }), (err: Error) => err instanceof PeerRefusedError && err.code === 'bad-request')
  })

  it('a request releases nothing until it is approved by hand, and nothing once refused', async () => {
    // Anyone may ask (the owner's new machine is nobody's friend): eve asks bob for alice's share.
    const pair = await newRequestKeyPair()
    const asked = await request(eve.host, multiaddr(bob.dial), RECOVERY_PROTOCOL, { op: 'request', owner: alice.onion, publicKey: pair.publicKey.toString('base64') })
    assert.equal(asked.header.state, 'pending')
    assert.equal(asked.header.code, releaseCode(pair.publicKey))
    const id = String(asked.header.id)
    const poll = async (from: Peer): Promise<{ state: unknown, body: number }> => {
      const answer = await request(from.host, multiaddr(bob.dial), RECOVERY_PROTOCOL, { op: 'poll', id })
      return { state: answer.header.state, body: answer.body.length }
    }
    assert.deepEqual(await poll(eve), { state: 'pending', body: 0 })
    await assert.rejects(poll(carol), (err: Error) => err instanceof PeerRefusedError && err.code === 'not-found', 'only the requester may poll')
    bob.custody.refuse(id, 'I do not know who asked')
    assert.deepEqual(await poll(eve), { state: 'refused', body: 0 })
    await assert.rejects(bob.custody.approve(id), /already refused/)
  })

  it('a custodian whose share was altered or lost is shown as such', async () => {
    const record = await dave.vault.getRecord(CUSTODY_KIND, alice.onion)
    const held = JSON.parse(record!.toString('utf8'))
    const share = parseShare(held.share)
    share.share[0]! ^= 1
    await dave.vault.putRecord(CUSTODY_KIND, alice.onion, Buffer.from(JSON.stringify({ ...held, share: formatShare(share) })))
    let checked = await alice.custody.check()
    assert.deepEqual(checked.map(c => c.check?.ok), [true, true, false])
    assert.match(checked[2]!.check!.message, /wrong proof/)
    await dave.vault.putRecord(CUSTODY_KIND, alice.onion, undefined)
    checked = await alice.custody.check()
    assert.match(checked[2]!.check!.message, /no longer holds its share/)
    // Sending again repairs it.
    assert.equal(await alice.custody.deliver(), 3)
    checked = await alice.custody.check()
    assert.deepEqual(checked.map(c => c.check?.ok), [true, true, true])
  })

  it('recovery: nothing is released before approval by hand; with 2 of 3 approvals the node comes back', async () => {
    await backupToTarget({ vault: alice.vault, dataDir: alice.dir, target: backup() })
    const asker = await createP2PHost({ onionSeed: randomBytes(32), listen: { host: '127.0.0.1', port: 0 }, direct: true })
    const dataDir = await newDataDir(cleanup)
    const events: RecoveryEvent[] = []
    try {
      const custodians = [bob, carol, dave].map(c => ({ onion: c.onion, dial: multiaddr(c.dial) }))
      const approvals = (async () => {
        // Each custodian sees the request with the code the new machine shows; bob and carol approve.
        const asked = (): string[] => events.filter(e => e.kind === 'asked').map(e => (e as { code: string }).code)
        const seen = await waitFor(() => [bob, carol].every(c => c.custody.recoveryRequests().length > 0) && asked().length >= 3, 20_000)
        assert.ok(seen, 'the requests reached the custodians, and the new machine shows their codes')
        const shown = asked()
        for (const c of [bob, carol]) {
          const [req] = c.custody.recoveryRequests() as [RecoveryRequest]
          assert.equal(req.state, 'pending')
          assert.equal(req.owner, alice.onion)
          assert.equal(req.ownerName, 'alice')
          assert.ok(shown.includes(req.code), 'the custodian sees the code the new machine shows')
          await c.custody.approve(req.id)
        }
      })()
      const report = await recover({
        askingHost: asker,
        owner: alice.onion,
        custodians,
        dataDir,
        newPassphrase: 'a brand new passphrase',
        openTarget: async () => backup(),
        waitMs: 30_000,
        pollMs: 200,
        vault: VAULT_OPTIONS,
        onEvent: (e) => events.push(e)
      })
      await approvals
      assert.equal(report.onion, alice.onion)
      assert.deepEqual(report.fitting, [1, 2])
      assert.equal(report.restore.restored, messages.length)
      assert.equal(dave.custody.recoveryRequests()[0]?.state, 'pending', 'dave was asked but never approved')
      // The same onion key, and the new passphrase opens the vault with every message.
      assert.deepEqual(await readFile(join(dataDir, 'identity', 'onion.seed')), await readFile(join(alice.dir, 'identity', 'onion.seed')))
      const v = createVault({ dir: join(dataDir, 'vault'), ...VAULT_OPTIONS })
      await v.open()
      try {
        await assert.rejects(v.unlock({ passphrase: TEST_PASSPHRASE }), /wrong|not/i, 'the forgotten passphrase no longer opens it')
        await v.unlock({ passphrase: 'a brand new passphrase' })
        const restored = await Promise.all((await v.list('Inbox')).map(async m => (await v.get(m.id))!.raw))
        assert.deepEqual(restored.map(r => r.toString('latin1')).sort(), messages.map(r => r.toString('latin1')).sort())
      } finally {
        await v.close()
      }
    } finally {
      await asker.stop()
    }
  })

  it('recovery with fewer than t approvals rebuilds nothing and says why', async () => {
    const asker = await createP2PHost({ onionSeed: randomBytes(32), listen: { host: '127.0.0.1', port: 0 }, direct: true })
    const dataDir = await newDataDir(cleanup)
    try {
      const custodians = [bob, carol].map(c => ({ onion: c.onion, dial: multiaddr(c.dial) }))
      const decide = (async () => {
        const [fromBob, fromCarol] = await pendingRequests([bob, carol])
        await bob.custody.approve(fromBob!)
        carol.custody.refuse(fromCarol!, 'I could not reach alice to check the code')
      })()
      await assert.rejects(recover({
        askingHost: asker, owner: alice.onion, custodians, dataDir, newPassphrase: 'another passphrase',
        openTarget: async () => { throw new Error('must not be reached') }, waitMs: 20_000, pollMs: 200, vault: VAULT_OPTIONS
      }), (err: Error) => err instanceof NotEnoughSharesError && /1 custodian approved; 2 are needed/.test(err.message) && /refused \(I could not reach alice to check the code\)/.test(err.message))
      await decide
      await assert.rejects(readFile(join(dataDir, 'identity', 'onion.seed')), /ENOENT/, 'nothing was written')
    } finally {
      await asker.stop()
    }
  })

  it('a forged share is detected, and named once a third share is in', async () => {
    // Carol's node releases a share that is not hers: recovery with bob's and carol's fails loudly.
    const record = await carol.vault.getRecord(CUSTODY_KIND, alice.onion)
    const held = JSON.parse(record!.toString('utf8'))
    const share = parseShare(held.share)
    share.share[3]! ^= 0x40
    await carol.vault.putRecord(CUSTODY_KIND, alice.onion, Buffer.from(JSON.stringify({ ...held, share: formatShare(share) })))
    const asker = await createP2PHost({ onionSeed: randomBytes(32), listen: { host: '127.0.0.1', port: 0 }, direct: true })
    const dataDir = await newDataDir(cleanup)
    try {
      const custodians = [bob, carol].map(c => ({ onion: c.onion, dial: multiaddr(c.dial) }))
      const decide = (async () => {
        const ids = await pendingRequests([bob, carol])
        await bob.custody.approve(ids[0]!)
        await carol.custody.approve(ids[1]!)
      })()
      await assert.rejects(recover({
        askingHost: asker, owner: alice.onion, custodians, dataDir, newPassphrase: 'another passphrase',
        openTarget: async () => { throw new Error('must not be reached') }, waitMs: 20_000, pollMs: 200, vault: VAULT_OPTIONS
      }), (err: Error) => err instanceof ForgedShareError && /forged or damaged/.test(err.message))
      await decide
      // With a third custodian the forged share is named, left out, and the key rebuilt.
      const events: RecoveryEvent[] = []
      const all = [bob, carol, dave]
      const approveAll = (async () => {
        const ids = await pendingRequests(all)
        for (const [i, c] of all.entries()) await c.custody.approve(ids[i]!)
      })()
      const again = await newDataDir(cleanup)
      const report = await recover({
        askingHost: asker, owner: alice.onion, custodians: all.map(c => ({ onion: c.onion, dial: multiaddr(c.dial) })), dataDir: again,
        newPassphrase: 'another passphrase', openTarget: async () => backup(), waitMs: 30_000, pollMs: 200, vault: VAULT_OPTIONS, onEvent: (e) => events.push(e)
      })
      await approveAll
      assert.equal(report.onion, alice.onion)
      const rebuilt = events.find(e => e.kind === 'key-rebuilt') as Extract<RecoveryEvent, { kind: 'key-rebuilt' }>
      assert.deepEqual(rebuilt.from, [1, 3])
      assert.deepEqual(rebuilt.rejected.map(r => r.index), [2])
    } finally {
      await asker.stop()
    }
  })

  it('a custodian whose share is numbered like another\'s does not stop the recovery: it is left out and named', async () => {
    // Carol's node now releases a forged share carrying bob's number (before, the two shares
    // numbered 1 made every recovery fail, whoever else approved).
    const record = await carol.vault.getRecord(CUSTODY_KIND, alice.onion)
    const held = JSON.parse(record!.toString('utf8'))
    const bobs = parseShare(JSON.parse((await bob.vault.getRecord(CUSTODY_KIND, alice.onion))!.toString('utf8')).share)
    const share = parseShare(held.share)
    share.share[5]! ^= 0x11
    await carol.vault.putRecord(CUSTODY_KIND, alice.onion, Buffer.from(JSON.stringify({ ...held, share: formatShare({ ...share, index: bobs.index }) })))
    const asker = await createP2PHost({ onionSeed: randomBytes(32), listen: { host: '127.0.0.1', port: 0 }, direct: true })
    try {
      const all = [bob, carol, dave]
      const approveAll = (async () => {
        const ids = await pendingRequests(all)
        // carol's and bob's first: the two conflict, and the new machine waits for dave's.
        for (const i of [1, 0, 2]) await all[i]!.custody.approve(ids[i]!)
      })()
      const events: RecoveryEvent[] = []
      const report = await recover({
        askingHost: asker, owner: alice.onion, custodians: all.map(c => ({ onion: c.onion, dial: multiaddr(c.dial) })), dataDir: await newDataDir(cleanup),
        newPassphrase: 'another passphrase', openTarget: async () => backup(), waitMs: 30_000, pollMs: 200, vault: VAULT_OPTIONS, onEvent: (e) => events.push(e)
      })
      await approveAll
      assert.equal(report.onion, alice.onion)
      const rebuilt = events.find(e => e.kind === 'key-rebuilt') as Extract<RecoveryEvent, { kind: 'key-rebuilt' }>
      assert.deepEqual(rebuilt.rejected.map(r => [r.custodian, r.index, r.certain]), [[carol.onion, bobs.index, true]])
    } finally {
      await asker.stop()
      await carol.vault.putRecord(CUSTODY_KIND, alice.onion, record!)
    }
  })

  it('the verification code is the same on both screens and changes with the key', () => {
    const key = randomBytes(32)
    assert.match(releaseCode(key), /^\d{4}-\d{4}$/)
    assert.equal(releaseCode(key), releaseCode(Buffer.from(key)))
    assert.notEqual(releaseCode(key), releaseCode(randomBytes(32)))
  })

  it('parting: both sides drop each other, and a former friend is refused', async () => {
    const { told } = await alice.friendship.remove(dave.onion)
    assert.equal(told, true)
    assert.equal(alice.book.isFriend(dave.onion), false)
    assert.equal(dave.book.isFriend(alice.onion), false)
    await assert.rejects(request(dave.host, multiaddr(alice.dial), RECOVERY_PROTOCOL, { op: 'check', nonce: randomBytes(16).toString('base64') }),
      (err: Error) => err instanceof PeerRefusedError && err.code === 'not-a-friend')
  })
})

/** A new machine's data directory: absent, in a fresh temporary folder (removed after the run). */
async function newDataDir (cleanup: string[]): Promise<string> {
  const parent = await mkdtemp(join(tmpdir(), 'smtorp-recovered-'))
  cleanup.push(parent)
  return join(parent, 'node')
}

/** Waits until each custodian has a pending request, and gives their ids. */
async function pendingRequests (custodians: Peer[]): Promise<string[]> {
  const pending = (c: Peer): RecoveryRequest | undefined => c.custody.recoveryRequests().find(r => r.state === 'pending')
  assert.ok(await waitFor(() => custodians.every(c => pending(c) !== undefined), 20_000), 'every custodian got the request')
  return custodians.map(c => pending(c)!.id)
}

async function waitFor (condition: () => boolean, ms: number): Promise<boolean> {
  const until = Date.now() + ms
  while (Date.now() < until) {
    if (condition()) return true
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  return condition()
}
