// OpenPGP between two real nodes on the private Tor network (issue 5): alice has an ordinary
// address (alice@example.org) besides her onion; her first, signed mail to bob teaches bob
// her key and her onion route; bob's answer to alice@example.org then goes encrypted and
// directly over Tor to alice's node, though bob has no relay at all.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { sharedTorNetwork, type PrivateTorNetwork } from './harness/tor-network.ts'
import { startTestNode, testSettings, waitFor, type TestNode } from './harness/nodes.ts'
import { SmtpConnection } from '../node/smtp-client/index.ts'
import type { MailStore, StoredMessage } from '../node/store/index.ts'
import { headerValue, newMessageId, rfc5322Date } from '../protocol/message.ts'
import { pgpMimeKind, splitEntity } from '../protocol/pgp-mime.ts'

let network: PrivateTorNetwork
let alice: TestNode
let bob: TestNode
const ALICE_ORDINARY = 'alice@example.org'

async function inInbox (store: MailStore, marker: string): Promise<StoredMessage | undefined> {
  for (const meta of await store.list('Inbox')) {
    const message = await store.get(meta.id)
    if (message?.raw.includes(marker) === true || message?.subject?.includes(marker) === true) return message
  }
  return undefined
}

/** As a mail client would: From the given address, through the node's submission port. */
async function submit (node: TestNode, from: string, to: string, subject: string, body: string): Promise<void> {
  const raw = Buffer.from([
    `From: ${from}`, `To: ${to}`, `Subject: ${subject}`, `Date: ${rfc5322Date(new Date())}`,
    `Message-ID: <${newMessageId('example.org')}>`, 'User-Agent: SomeClient/1.0 (laptop.local)', '', body, ''
  ].join('\r\n'))
  const socket = await SmtpConnection.dial('127.0.0.1', node.node.submissionPort(), 5000)
  const connection = await SmtpConnection.open(socket, { ehloName: 'localhost', timeoutMs: 30_000 })
  await connection.authPlain(node.name, node.identity.submissionPassword)
  const results = await connection.send({ from, to: [to], raw })
  await connection.quit()
  assert.equal(results[0]?.ok, true, String(results[0]?.reply))
}

async function published (node: TestNode): Promise<void> {
  await node.node.tor.waitForBootstrap(90_000)
  await node.node.tor.waitForDescriptorUpload(node.identity.onionKey.address, 60_000)
}

describe('OpenPGP between two nodes over Tor, with a route upgrade', { timeout: 600_000 }, () => {
  before(async () => {
    network = await sharedTorNetwork()
    ;[alice, bob] = await Promise.all([
      startTestNode('alice', testSettings(network, { openpgp: { address: ALICE_ORDINARY } })),
      startTestNode('bob', testSettings(network))
    ])
    await Promise.all([published(alice), published(bob)])
  })
  after(async () => {
    await Promise.allSettled([alice?.stop(), bob?.stop()])
    await Promise.allSettled([alice?.remove(), bob?.remove()])
    await network?.stop()
  })

  it('alice\'s signed mail teaches bob her key and route; bob\'s encrypted answer to her ordinary address reaches her node over Tor', async () => {
    const first = `first-${Date.now()}`
    await submit(alice, ALICE_ORDINARY, bob.identity.address, `Hello ${first}`, `Hi Bob, ${first}`)
    const atBob = await waitFor('bob to receive alice\'s mail', async () => await inInbox(bob.node.store, first), 60_000)
    // Signed PGP/MIME, with Autocrypt, without the client's User-Agent.
    assert.equal(pgpMimeKind(splitEntity(atBob.raw)), 'signed')
    assert.match(headerValue(atBob.raw, 'Autocrypt') ?? '', /^addr=alice@example\.org; prefer-encrypt=mutual; keydata=/)
    assert.doesNotMatch(atBob.raw.toString(), /SomeClient|laptop\.local/)
    await waitFor('bob to read it', async () => (await bob.node.vault.meta(atBob.id))?.security, 10_000)
    const security = (await bob.node.vault.meta(atBob.id))?.security
    assert.equal(security?.signature, 'good')
    assert.equal(security?.keyState, 'first-seen')
    assert.equal(bob.node.openpgp.routeOf(ALICE_ORDINARY), alice.identity.address)

    // bob has no relay: mail to alice@example.org can only go over the learned route.
    const second = `second-${Date.now()}`
    assert.equal(bob.node.openpgp.wouldEncrypt([ALICE_ORDINARY]), true)
    await submit(bob, bob.identity.address, ALICE_ORDINARY, `Re: Hello ${second}`, `Hi Alice, ${second}`)
    const entry = bob.node.queue.list().find(e => e.recipients.some(r => r.address === ALICE_ORDINARY))
    if (entry !== undefined) assert.equal(entry.recipients[0]?.destination, alice.identity.domain)
    const atAlice = await waitFor('alice to receive bob\'s answer', async () => {
      for (const meta of await alice.node.store.list('Inbox')) {
        const m = await alice.node.vault.meta(meta.id)
        if (m?.security?.decrypted === true && m.subject?.includes(second) === true) return await alice.node.store.get(meta.id)
      }
      return undefined
    }, 90_000)
    assert.equal(pgpMimeKind(splitEntity(atAlice.raw)), 'encrypted')
    assert.equal(headerValue(atAlice.raw, 'Subject'), '...')
    assert.equal(headerValue(atAlice.raw, 'To'), ALICE_ORDINARY)
    assert.doesNotMatch(atAlice.raw.toString(), new RegExp(second))
    const meta = await alice.node.vault.meta(atAlice.id)
    assert.equal(meta?.security?.signature, 'good')
    const shown = await alice.node.openpgp.readMessage(atAlice.raw)
    assert.match(shown.display?.toString() ?? '', new RegExp(`Hi Alice, ${second}`))
    // Bob's own copy in Sent is readable, and the outgoing envelope named alice's onion.
    await waitFor('bob to file it as sent', async () => {
      for (const m of await bob.node.store.list('Sent')) if ((await bob.node.store.get(m.id))?.raw.includes(second) === true) return true
      return undefined
    }, 10_000)
  })
})
