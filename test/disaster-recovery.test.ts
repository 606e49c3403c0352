// The disaster (issue "Friends", must-hold 1 and 2, and the socket check): alice has three
// friends, bob, carol and dave, on the private Tor network, each a full node with its own tor;
// all three hold recovery shares of her key (any 2 rebuild it), the friends hold her backup in
// erasure-coded shards (any 2 bring it back), and an IMAP account (a real Dovecot, reached as an
// onion service) holds another copy. Then alice's data directory is wiped, and dave is offline.
//
// `smtorp recover` runs as its own process on a "new machine" (a fresh tor client): it asks the
// custodians, bob and carol approve by hand (dave cannot), and alice comes back from her friends
// with the same onion address, the same OpenPGP key and every message byte for byte; then again
// from the IMAP account alone. While it runs, every TCP connection the process opens is watched:
// each one goes to its tor's SOCKS port, none anywhere else.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sharedTorNetwork, connectThroughTor, type PrivateTorNetwork, type TorClient } from './harness/tor-network.ts'
import { startTestNode, testSettings, type TestNode } from './harness/nodes.ts'
import { startDovecot, missingDovecotPrerequisites, type DovecotInstance } from './harness/dovecot.ts'
import { tail } from './harness/processes.ts'
import { endpointKey, watchConnections, type TcpConnection } from './harness/sockets.ts'
import { TEST_KDF } from './harness/vault.ts'
import { expandedSecretKey, generateOnionKey } from '../protocol/onion.ts'
import { vault as openVault } from '../node/vault/index.ts'
import { FOLDERS, type Folder } from '../node/store/mail-store.ts'

const CLI = join(import.meta.dirname, '..', 'node', 'cli', 'main.ts')
const MESSAGES = Number(process.env.SMTORP_DISASTER_MESSAGES ?? 500)
const NEW_PASSPHRASE = 'the passphrase alice chose after the fire'
const IMAP = { user: 'alice', pass: 'alice imap secret' }
const missing = missingDovecotPrerequisites()

interface Kept { folder: Folder, raw: Buffer }

/** Message n: 1 to 20 KiB, some 8-bit, in one of the folders. */
function message (n: number): Kept {
  const folders: Folder[] = ['Inbox', 'Inbox', 'Sent', 'Trash']
  const filler = randomBytes(512 + (n * 397) % 19_000).toString('base64')
  const raw = Buffer.concat([
    Buffer.from(`From: <friend${n % 17}@example.org>\r\nTo: <alice@example.org>\r\nSubject: disaster ${n}\r\nMessage-ID: <disaster-${n}@example.org>\r\nDate: Sun, 22 Nov 2026 10:00:00 +0000\r\n\r\n`),
    n % 5 === 0 ? Buffer.from([0xc3, 0xa9, 0xe9, 0x00, 0x0d, 0x0a]) : Buffer.alloc(0),
    Buffer.from(`zqdisastermarker${n}\r\n${filler}\r\n`)
  ])
  return { folder: folders[n % folders.length]!, raw }
}

async function published (node: TestNode): Promise<void> {
  await node.node.tor.waitForBootstrap(90_000)
  await node.node.tor.waitForDescriptorUpload(node.identity.onionKey.address, 60_000)
}

describe('disaster recovery over the private Tor network', { skip: missing.length > 0 ? missing.join('; ') : false, timeout: 1_800_000 }, () => {
  let network: PrivateTorNetwork
  let alice: TestNode, bob: TestNode, carol: TestNode, dave: TestNode
  let dovecot: DovecotInstance
  let newMachine: TorClient
  const kept: Kept[] = []
  let aliceOnion = ''
  let aliceSeed: Buffer
  let aliceKey: Buffer | undefined
  const scratch: string[] = []
  const imapOnion = generateOnionKey()

  before(async () => {
    network = await sharedTorNetwork()
    dovecot = await startDovecot({ users: [IMAP] })
    const friends = { everyMinutes: 0, afterNewMailSeconds: 0, auditEveryMinutes: 0 }
    const started = await Promise.all([
      startTestNode('alice', testSettings(network, {
        friends,
        backup: { imap: { host: `${imapOnion.address}.onion`, port: 143, security: 'plain', user: IMAP.user, password: IMAP.pass, everyMinutes: 0, afterNewMailSeconds: 0, viaTor: true } }
      })),
      startTestNode('bob', testSettings(network, { friends })),
      startTestNode('carol', testSettings(network, { friends })),
      startTestNode('dave', testSettings(network, { friends }))
    ])
    ;[alice, bob, carol, dave] = started as [TestNode, TestNode, TestNode, TestNode]
    await Promise.all([alice, bob, carol, dave].map(published))
    // The IMAP provider, as an onion service of carol's tor (the private network has no exits).
    await carol.node.tor.publishOnion({ expandedSecretKey: expandedSecretKey(imapOnion.seed), virtualPort: 143, target: { host: '127.0.0.1', port: dovecot.port } })
    await carol.node.tor.waitForDescriptorUpload(imapOnion.address, 60_000)
    newMachine = await network.startClient('new-machine')
    // For a few seconds after publication tor may not find a descriptor yet.
    for (const onion of [alice, bob, carol, dave].map(n => n.identity.onionKey.address).concat(imapOnion.address)) {
      const port = onion === imapOnion.address ? 143 : 4001
      ;(await connectThroughTor(newMachine.socksPort, `${onion}.onion`, port, 60_000)).socket.destroy()
    }
    aliceOnion = alice.identity.onionKey.address
    aliceSeed = await readFile(join(alice.dir, 'identity', 'onion.seed'))
  })

  after(async () => {
    await Promise.allSettled([alice, bob, carol, dave].map(async n => await n?.stop()))
    await Promise.allSettled([alice, bob, carol, dave].map(async n => await n?.remove()))
    await newMachine?.stop()
    await dovecot?.stop()
    for (const dir of scratch) await rm(dir, { recursive: true, force: true })
    await network?.stop()
  })

  it('alice makes three friends over Tor, appoints them custodians, and backs up to them and to IMAP', async () => {
    for (const friend of [bob, carol, dave]) {
      const { code } = await alice.node.friends!.invite()
      assert.doesNotMatch(code, /@/, 'an invite over Tor carries no direct address')
      const added = await friend.node.friends!.accept(code)
      assert.equal(added.onion, aliceOnion)
      assert.equal(alice.node.friends!.book.friend(friend.identity.onionKey.address)?.name, friend.name)
    }
    for (let n = 0; n < MESSAGES; n++) {
      const m = message(n)
      kept.push(m)
      await alice.node.vault.add({ folder: m.folder, raw: m.raw, from: `friend${n % 17}@example.org`, to: ['alice@example.org'], flags: n % 3 === 0 ? ['\\Seen'] : [] })
    }
    aliceKey = await alice.node.vault.getRecord('openpgp', 'own-key')
    assert.ok(aliceKey !== undefined, 'alice has an OpenPGP key')

    const custodians = await alice.node.friends!.custody.appoint([bob, carol, dave].map(n => n.identity.onionKey.address), 2)
    assert.deepEqual(custodians.map(c => c.check?.ok), [true, true, true])

    // Every node runs in this process: watch its connections while alice backs up.
    const watch = watchConnections(process.pid, { intervalMs: 25, maxSamples: 100_000, maxMs: 20 * 60_000 })
    const started = Date.now()
    const toFriends = await alice.node.friends!.backupNow()
    assert.equal(toFriends.ok, true, toFriends.error ?? "")
    assert.equal(toFriends.report?.messages, MESSAGES)
    const friendsMs = Date.now() - started
    const toImap = await alice.node.backup()
    if (!toImap.ok) assert.fail(`${toImap.error ?? 'the IMAP backup failed'}\nDovecot's log ends:\n${await tail(dovecot.logFile)}`)
    const { connections } = await watch.stop()
    const leaks = await connectionsAroundTor(connections, [alice, bob, carol, dave])
    assert.deepEqual(leaks, [], 'every connection the nodes opened during the backup went to a tor')
    assert.ok(connections.length > 0)
    // Each friend holds a part; none holds it all, and no friend's disk has a message in the clear.
    const holdings = await alice.node.friends!.friends()
    for (const h of holdings) assert.ok(h.shardsOfOurs >= MESSAGES, `${h.name} holds a shard of every blob`)
    for (const friend of [bob, carol, dave]) {
      const held = await readAll(join(friend.dir, 'friends', 'held'))
      assert.ok(held.length > 0)
      for (const marker of ['zqdisastermarker1\r', 'disaster-7@example.org']) assert.equal(held.some(b => b.includes(marker)), false, `${friend.name} sees only ciphertext`)
    }
    process.stderr.write(`# backup of ${MESSAGES} messages to 3 friends over Tor: ${(friendsMs / 1000).toFixed(1)} s\n`)
  })

  it('with alice\'s disk gone and dave offline, two custodians approve and alice comes back from her friends, through Tor only', async () => {
    await alice.stop()
    await rm(alice.dir, { recursive: true, force: true })
    await dave.stop()
    const { dir, report, remotes } = await recoverWithApprovals('friends')
    assert.equal(report.onion, aliceOnion)
    assert.equal(report.restore.restored, MESSAGES)
    assert.deepEqual(report.restore.damaged, [])
    await checkRestored(dir)
    assert.deepEqual([...remotes], [`127.0.0.1:${newMachine.socksPort}`], 'every connection went to the new machine\'s tor')
  })

  it('the same recovery from the IMAP account alone', async () => {
    const { dir, report, remotes } = await recoverWithApprovals('imap')
    assert.equal(report.restore.restored, MESSAGES)
    await checkRestored(dir)
    assert.deepEqual([...remotes], [`127.0.0.1:${newMachine.socksPort}`])
  })

  /** Runs `smtorp recover` on the new machine while bob and carol approve what they are asked. */
  async function recoverWithApprovals (from: 'friends' | 'imap'): Promise<{ dir: string, report: { onion: string, restore: { restored: number, damaged: unknown[] } }, remotes: Set<string> }> {
    const parent = await mkdtemp(join(tmpdir(), 'smtorp-new-machine-'))
    scratch.push(parent)
    const dir = join(parent, 'alice')
    const passphraseFile = join(parent, 'passphrase')
    await writeFile(passphraseFile, `${NEW_PASSPHRASE}\n`, { mode: 0o600 })
    const args = ['--import', 'tsx', CLI, 'recover', '--data', dir, '--owner', aliceOnion, '--from', from,
      ...[bob, carol, dave].flatMap(n => ['--custodian', n.identity.onionKey.address]),
      '--tor-socks', `127.0.0.1:${newMachine.socksPort}`, '--passphrase-file', passphraseFile, '--wait-minutes', '10', '--json']
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    const watch = watchConnections(child.pid!, { intervalMs: 25, maxSamples: 100_000, maxMs: 20 * 60_000 })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    const exited = new Promise<number | null>(resolve => child.on('exit', resolve))
    let done = false
    const approvals = (async () => {
      const approved = new Set<string>()
      while (!done && approved.size < 2) {
        for (const custodian of [bob, carol]) {
          for (const r of custodian.node.friends!.custody.recoveryRequests()) {
            if (r.state !== 'pending' || approved.has(r.id)) continue
            assert.equal(r.owner, aliceOnion)
            assert.equal(r.ownerName, 'alice')
            await custodian.node.friends!.custody.approve(r.id)
            approved.add(r.id)
          }
        }
        await new Promise(resolve => setTimeout(resolve, 200))
      }
      return approved.size
    })()
    let timer: NodeJS.Timeout | undefined
    const code = await Promise.race([exited, new Promise<'timeout'>(resolve => { timer = setTimeout(() => resolve('timeout'), 15 * 60_000) })])
    clearTimeout(timer)
    done = true
    if (code === 'timeout') child.kill('SIGKILL')
    const { remotes } = await watch.stop()
    assert.equal(await approvals, 2)
    assert.equal(code, 0, `recover failed (${String(code)}): ${stderr.slice(-2000)}`)
    return { dir, report: JSON.parse(stdout), remotes }
  }

  async function checkRestored (dir: string): Promise<void> {
    assert.deepEqual(await readFile(join(dir, 'identity', 'onion.seed')), aliceSeed, 'the same onion key')
    const vault = openVault({ dir: join(dir, 'vault'), passphraseKdf: TEST_KDF, recoveryKdf: TEST_KDF })
    await vault.open()
    try {
      await vault.unlock({ passphrase: NEW_PASSPHRASE })
      assert.deepEqual(await vault.getRecord('openpgp', 'own-key'), aliceKey, 'the same OpenPGP key')
      const restored: string[] = []
      for (const folder of FOLDERS) {
        for (const meta of await vault.list(folder)) restored.push(`${folder}\n${(await vault.get(meta.id))!.raw.toString('latin1')}`)
      }
      const expected = kept.map(k => `${k.folder}\n${k.raw.toString('latin1')}`)
      assert.equal(restored.length, expected.length)
      assert.deepEqual(restored.sort(), expected.sort(), 'every message byte for byte, in its folder')
    } finally {
      await vault.close()
    }
  }
})

/**
 * The connections that went around Tor. An inbound connection (its local port is one of the
 * nodes' listeners: friends' hosts, SMTP, submission, UI) is tor (or a local client) coming
 * in; every other connection was opened by a node and must go to a tor's SOCKS or control port.
 */
async function connectionsAroundTor (connections: TcpConnection[], nodes: TestNode[]): Promise<string[]> {
  const listeners = new Set<number>()
  const torPorts = new Set<number>()
  for (const n of nodes) {
    const status = n.node.status()
    for (const port of [status.smtpInPort, status.submissionPort, Number(new URL(n.node.ui!.url()).port)]) listeners.add(port)
    if (n.node.friends !== undefined) listeners.add(n.node.friends.listenPort())
    torPorts.add(n.node.tor.socksEndpoint().port)
    const control = /PORT=[^:\s]+:(\d+)/.exec(await readFile(join(n.dir, 'tor', 'control-port'), 'utf8'))?.[1]
    if (control !== undefined) torPorts.add(Number(control))
  }
  return connections
    .filter(c => !listeners.has(c.local.port) && !(c.remote.host === '127.0.0.1' && torPorts.has(c.remote.port)))
    .map(c => `${endpointKey(c.local)} -> ${endpointKey(c.remote)}`)
}

async function readAll (dir: string): Promise<Buffer[]> {
  const { readdir } = await import('node:fs/promises')
  const out: Buffer[] = []
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) out.push(await readFile(join(entry.parentPath, entry.name)))
  }
  return out
}

