// Mail to ordinary addresses goes through a real Postfix on loopback acting as the legacy
// relay (smarthost), with STARTTLS and a login; with no relay configured it fails at once
// with a notice that says so. The node here attaches to an existing tor (attach mode).
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { sharedTorNetwork, type PrivateTorNetwork, type TorClient } from './harness/tor-network.ts'
import { startTestNode, testSettings, waitFor, type TestNode } from './harness/nodes.ts'
import { startPostfix, type PostfixInstance } from './harness/postfix.ts'
import { expandedSecretKey, generateOnionKey } from '../protocol/onion.ts'
import { torService } from '../node/tor/index.ts'
import { silentLogger } from '../node/log/index.ts'

let network: PrivateTorNetwork
let client: TorClient
let postfix: PostfixInstance
let carol: TestNode
let dave: TestNode
const credentials = { user: 'carol', pass: 'relay-secret-1' }

function attachTo (tor: TorClient): Record<string, unknown> {
  return { mode: 'attach', controlHost: '127.0.0.1', controlPort: tor.controlPort, cookieFile: tor.cookieFile, socksHost: '127.0.0.1', socksPort: tor.socksPort }
}

async function notices (node: TestNode): Promise<string[]> {
  const texts: string[] = []
  for (const meta of await node.node.store.list('Inbox')) texts.push((await node.node.store.get(meta.id))!.raw.toString())
  return texts
}

describe('legacy relay fallback through a real Postfix', { timeout: 300_000 }, () => {
  before(async () => {
    network = await sharedTorNetwork()
    ;[client, postfix] = await Promise.all([network.startClient('relay-test'), startPostfix({ role: 'relay', auth: credentials })])
    carol = await startTestNode('carol', testSettings(network, {
      tor: attachTo(client),
      relay: { host: '127.0.0.1', port: postfix.port, requireTls: true, verifyCertificate: false, username: credentials.user, password: credentials.pass }
    }))
    dave = await startTestNode('dave', testSettings(network, { tor: attachTo(client) }))
  })
  after(async () => {
    await Promise.allSettled([carol?.stop(), dave?.stop()])
    await Promise.allSettled([carol?.remove(), dave?.remove(), postfix?.stop(), client?.stop()])
    await network?.stop()
  })

  it('attaches to an existing tor and publishes its onion there', async () => {
    const status = carol.node.tor.status()
    assert.equal(status.mode, 'attach')
    assert.equal(status.running, true)
    await carol.node.tor.waitForDescriptorUpload(carol.identity.onionKey.address, 60_000)
  })

  it('sends mail for an ordinary address through the relay, over STARTTLS with a login, Bcc removed', async () => {
    const marker = `relay-${Date.now()}`
    const hidden = 'hidden@example.net'
    const sent = await carol.submit(['someone@example.org', hidden], 'to the old world', `${marker}\r\n`, [`Bcc: <${hidden}>`])
    assert.ok(sent.results.every(r => r.ok))
    const delivered = await postfix.waitForMessages(2, 60_000)
    const texts = delivered.map(m => m.raw.toString())
    assert.ok(texts.every(t => t.includes(marker)))
    assert.deepEqual(delivered.map(m => m.envelopeTo).sort(), [hidden, 'someone@example.org'])
    for (const text of texts) {
      assert.doesNotMatch(text, /^Bcc:/im)
      assert.match(text, /with ESMTPSA/) // RFC 3848: Postfix records STARTTLS (S) and AUTH (A)
      assert.doesNotMatch(text, new RegExp(carol.identity.onionKey.address.slice(0, 20) + '[a-z2-7]*\\.onion\\)')) // EHLO name is neutral
    }
    await waitFor('carol\'s queue to empty', () => carol.node.queue.list().length === 0, 10_000)
  })

  it('splits onion and legacy recipients into separate envelopes', async () => {
    const before = (await postfix.messages()).length
    const peer = generateOnionKey() // an onion nobody publishes: it stays queued, never goes to the relay
    const marker = `split-${Date.now()}`
    await carol.submit(['legacy@example.org', `ghost@${peer.address}.onion`], 'mixed', `${marker}\r\n`)
    const delivered = await postfix.waitForMessages(before + 1, 60_000)
    const fresh = delivered.slice(before)
    assert.deepEqual(fresh.map(m => m.envelopeTo), ['legacy@example.org'])
    const pending = await waitFor('the onion recipient to be retried', () => {
      const r = carol.node.status().queue.flatMap(e => e.recipients).find(x => x.address.startsWith('ghost@'))
      return r?.state === 'delayed' ? r : undefined
    }, 60_000)
    assert.match(pending.lastResult ?? '', /onion|SOCKS|Tor/i)
  })

  it('with relay.viaTor, reaches the relay through Tor (here a relay published as an onion service)', async () => {
    // The private network has no exits, so the relay is reached as an onion service of the
    // same tor: the node hands tor the relay's name over SOCKS and tor carries the connection.
    const publisher = torService({ mode: 'attach', controlHost: '127.0.0.1', controlPort: client.controlPort, cookieFile: client.cookieFile, socksHost: '127.0.0.1', socksPort: client.socksPort }, { logger: silentLogger() })
    await publisher.start()
    const relayOnion = await publisher.publishOnion({ expandedSecretKey: expandedSecretKey(generateOnionKey().seed), virtualPort: 587, target: { host: '127.0.0.1', port: postfix.port } })
    await publisher.waitForDescriptorUpload(relayOnion, 60_000)
    const erin = await startTestNode('erin', testSettings(network, {
      tor: attachTo(client),
      relay: { host: `${relayOnion}.onion`, port: 587, requireTls: true, verifyCertificate: false, username: credentials.user, password: credentials.pass, viaTor: true }
    }))
    try {
      const before = (await postfix.messages()).length
      const marker = `via-tor-${Date.now()}`
      await erin.submit(['far@example.org'], 'through tor', `${marker}\r\n`)
      const delivered = await postfix.waitForMessages(before + 1, 90_000)
      const text = delivered.at(-1)!.raw.toString()
      assert.ok(text.includes(marker))
      assert.match(text, /with ESMTPSA/) // STARTTLS and the login, inside the Tor stream
    } finally {
      await erin.stop()
      await erin.remove()
      await publisher.stop()
    }
  })

  it('with no relay configured, mail to an ordinary address fails at once with a notice saying so', async () => {
    const sent = await dave.submit(['someone@example.org'], 'no relay here', 'hello\r\n')
    assert.equal(sent.results[0]?.ok, true)
    const notice = await waitFor('a failure notice', async () => (await notices(dave)).find(t => t.includes('Action: failed')), 10_000)
    assert.match(notice, /no legacy relay is configured/)
    assert.match(notice, /Final-Recipient: rfc822; someone@example\.org/)
    assert.match(notice, /Subject: Undelivered mail/)
    const sent2 = await waitFor('the message to be filed in Sent', async () => { const s = await dave.node.store.list('Sent'); return s.length > 0 && s }, 10_000)
    assert.equal(sent2.length, 1)
    assert.ok(sent2[0]!.flags.includes('$Undelivered'))
  })
})
