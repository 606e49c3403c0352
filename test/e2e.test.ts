// Two real nodes, alice and bob, each with its own tor on the private Tor network, delivering
// to each other over their onion services. Everything here crosses real Tor circuits.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { sharedTorNetwork, type PrivateTorNetwork } from './harness/tor-network.ts'
import { startTestNode, testSettings, waitFor, type TestNode } from './harness/nodes.ts'
import { TEST_PASSPHRASE } from './harness/vault.ts'
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { StoredMessage } from '../node/store/index.ts'
import { readableMessage } from '../node/mail-view/index.ts'

let network: PrivateTorNetwork
let alice: TestNode
let bob: TestNode

/** Inbox messages whose content, as the owner reads it (decrypted: mail between nodes is OpenPGP-protected), holds `marker`. */
async function findInInbox (node: TestNode, marker: string): Promise<StoredMessage[]> {
  const found: StoredMessage[] = []
  for (const meta of await node.node.store.list('Inbox')) {
    const message = await node.node.store.get(meta.id)
    if (message !== undefined && (await readable(node, message)).includes(marker)) found.push(message)
  }
  return found
}

async function readable (node: TestNode, message: StoredMessage): Promise<Buffer> {
  return (await node.node.openpgp.readMessage(message.raw)).display ?? message.raw
}

async function published (node: TestNode): Promise<void> {
  await node.node.tor.waitForBootstrap(90_000)
  await node.node.tor.waitForDescriptorUpload(node.identity.onionKey.address, 60_000)
}

describe('alice and bob over the private Tor network', { timeout: 900_000 }, () => {
  before(async () => {
    network = await sharedTorNetwork()
    ;[alice, bob] = await Promise.all([startTestNode('alice', testSettings(network)), startTestNode('bob', testSettings(network))])
    await Promise.all([published(alice), published(bob)])
  })
  after(async () => {
    await Promise.allSettled([alice?.stop(), bob?.stop()])
    await Promise.allSettled([alice?.remove(), bob?.remove()])
    await network?.stop()
  })

  it('alice delivers to bob; bob holds the exact message; bob replies and alice receives it', async () => {
    const marker = `marker-${Date.now()}`
    const sent = await alice.submit([bob.identity.address], 'Hello over Tor', `Hi Bob, ${marker}\r\nCaf\u00e9 and a line\r\n.with a leading dot\r\n`)
    assert.equal(sent.results[0]?.ok, true, String(sent.results[0]?.reply))
    const [received] = await waitFor('bob to receive', async () => { const m = await findInInbox(bob, marker); return m.length > 0 && m }, 60_000)
    assert.ok(received)
    // What bob stores is alice's message signed by her node (spec/openpgp.md 5): the body as her
    // client wrote it, inside a good signature; the only trace header is bob's own.
    const shown = await bob.node.openpgp.readMessage(received.raw)
    assert.equal(shown.security.signature, 'good')
    // The 8-bit text was made quoted-printable for signing (RFC 3156 5.1); it reads as written.
    assert.match((await readableMessage(shown.display!)).text, /Hi Bob, marker-\d+\r?\nCafé and a line\r?\n\.with a leading dot/)
    assert.match(received.raw.toString(), new RegExp(`^Received: from ${alice.identity.onionKey.address}\\.onion by ${bob.identity.domain}`))
    assert.equal(received.from, alice.identity.address)
    await waitFor('alice to file it as sent', async () => (await alice.node.store.list('Sent')).length > 0 && alice.node.queue.list().length === 0, 10_000)

    const reply = `reply-${Date.now()}`
    const answered = await bob.submit([alice.identity.address], 'Re: Hello over Tor', `Got it. ${reply}\r\n`)
    assert.equal(answered.results[0]?.ok, true)
    const [back] = await waitFor('alice to receive the reply', async () => { const m = await findInInbox(alice, reply); return m.length > 0 && m }, 60_000)
    // Both now hold each other's keys (Autocrypt, both prefer mutual): the reply went encrypted.
    const backShown = await alice.node.openpgp.readMessage(back!.raw)
    assert.equal(backShown.security.decrypted, true)
    assert.equal(backShown.security.signature, 'good')
    assert.doesNotMatch(back!.raw.toString(), new RegExp(reply))
  })

  it('bob locks his vault: mail from alice still arrives over Tor, and after unlock bob reads it and finds it by search', async () => {
    await bob.node.lock()
    const marker = `locked${Date.now()}`
    const sent = await alice.submit([bob.identity.address], `While locked ${marker}`, `Sealed on arrival: ${marker}\r\n`)
    assert.equal(sent.results[0]?.ok, true)
    await waitFor('alice to see it delivered', () => alice.node.queue.list().length === 0, 60_000)
    await assert.rejects(bob.node.store.list('Inbox'), /locked/)
    await bob.node.unlock({ passphrase: TEST_PASSPHRASE })
    const [received] = await findInInbox(bob, marker)
    assert.ok(received !== undefined && (await readable(bob, received)).toString().includes(`Sealed on arrival: ${marker}`))
    await bob.node.vault.searchReady()
    assert.deepEqual((await bob.node.vault.search(`subject:${marker}`)).map(m => m.id), [received.id])
    assert.deepEqual((await bob.node.vault.search(`from:${alice.identity.onionKey.address}`)).map(m => m.id).includes(received.id), true)
  })

  it('a second message to the same peer reuses the connection', async () => {
    const before = alice.node.status().connections.opened
    const marker = `reuse-${Date.now()}`
    for (let i = 0; i < 3; i++) await alice.submit([bob.identity.address], `reuse ${i}`, `${marker} ${i}\r\n`)
    await waitFor('bob to receive all three', async () => (await findInInbox(bob, marker)).length === 3, 60_000)
    assert.equal(alice.node.status().connections.opened, before, 'a new connection was opened')
    assert.equal(alice.node.status().connections.open >= 1, true)
  })

  it('bob offline: alice shows the message as delayed, retries, and delivers once bob is back', async () => {
    await bob.stop()
    const marker = `offline-${Date.now()}`
    const sent = await alice.submit([bob.identity.address], 'while you were away', `${marker}\r\n`)
    assert.equal(sent.results[0]?.ok, true)
    const delayed = await waitFor('alice to report the delay', () => {
      const r = alice.node.status().queue.flatMap(e => e.recipients).find(x => x.address === bob.identity.address)
      return r?.state === 'delayed' ? r : undefined
    }, 150_000)
    assert.ok(delayed.lastResult !== undefined && delayed.lastResult.length > 0)
    assert.ok(delayed.nextAttemptAt !== undefined || delayed.tryingSince !== undefined)
    await bob.restart()
    await published(bob)
    // An attempt that began before bob republished waits out its 60 s SOCKS timeout on his old
    // introduction points; the next uses the descriptor fetched again (HSFETCH) after that
    // failure, and an HSDir that lags may cost one more round: up to about three minutes.
    const copies = await waitFor('bob to receive after coming back', async () => { const m = await findInInbox(bob, marker); return m.length > 0 && m }, 240_000)
      .catch((err: Error) => { throw new Error(`${err.message}; alice's queue: ${JSON.stringify(alice.node.status().queue)}`) })
    assert.equal(copies.length, 1)
    await waitFor('alice\'s queue to empty', () => alice.node.queue.list().length === 0, 10_000)
  })

  it('tor killed under a running node: the node restarts it, republishes, and delivery resumes', async () => {
    const pid = bob.node.tor.status().pid
    assert.ok(pid !== undefined)
    const restartsBefore = bob.node.tor.status().restarts
    process.kill(pid, 'SIGKILL')
    await waitFor('bob\'s tor to be restarted', () => bob.node.tor.status().restarts > restartsBefore && bob.node.tor.status().running, 60_000)
    assert.notEqual(bob.node.tor.status().pid, pid)
    await published(bob)
    const marker = `after-tor-restart-${Date.now()}`
    await alice.submit([bob.identity.address], 'after tor died', `${marker}\r\n`)
    await waitFor('bob to receive after its tor restarted', async () => (await findInInbox(bob, marker)).length === 1, 120_000)
  })

  it('after all this mail, neither data directory holds a subject, a body or the other node\'s address in the clear', async () => {
    await bob.node.vault.searchReady()
    const needles = ['Hello over Tor', 'While locked', 'while you were away', 'after tor died', 'after-tor-restart-', 'reuse-', 'offline-', 'Caf\u00e9 and a line', 'with a leading dot']
    const found: string[] = []
    for (const [node, other] of [[alice, bob], [bob, alice]] as const) {
      for (const entry of await readdir(node.dir, { withFileTypes: true, recursive: true })) {
        if (!entry.isFile()) continue
        const file = join(entry.parentPath, entry.name)
        const bytes = await readFile(file).catch(() => Buffer.alloc(0)) // tor may remove files meanwhile
        for (const needle of [...needles, other.identity.onionKey.address]) {
          if (bytes.includes(Buffer.from(needle))) found.push(`${file}: ${needle}`)
        }
      }
    }
    assert.deepEqual(found, [])
  })
})
