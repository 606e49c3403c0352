// OpenPGP key lookup over the private Tor network: a small HKP keyserver published as an
// onion service, asked through a client tor's SOCKS port. Looking up finds the key; what a
// keyserver must not be trusted with (wrong user ids, secret keys, huge or endless answers)
// is dropped or cut off; and a keyserver on a plain address is never reached directly.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { generateKey, readKey, type PrivateKey, type PublicKey } from 'openpgp'
import { sharedTorNetwork, connectThroughTor, type PrivateTorNetwork, type TorClient } from './harness/tor-network.ts'
import { startKeyserver, type TestKeyserver } from './harness/keyserver.ts'
import { torService, type TorService } from '../node/tor/index.ts'
import { silentLogger } from '../node/log/index.ts'
import { expandedSecretKey, generateOnionKey } from '../protocol/onion.ts'
import { lookupKey, type KeyLookupOptions } from '../node/openpgp/key-lookup.ts'

async function newKey (email: string): Promise<{ privateKey: PrivateKey, publicKey: PublicKey }> {
  const { privateKey, publicKey } = await generateKey({ type: 'ecc', curve: 'curve25519Legacy', userIDs: [{ email }], format: 'object' })
  return { privateKey, publicKey }
}

const timing: Record<string, number> = {}

describe('key lookup over the private Tor network', { timeout: 300_000 }, () => {
  let network: PrivateTorNetwork
  let client: TorClient
  let keyserver: TestKeyserver
  let publisher: TorService
  let onionKeyserver: string
  let options: KeyLookupOptions
  const started = Date.now()

  before(async () => {
    let t = Date.now()
    network = await sharedTorNetwork()
    timing.networkMs = Date.now() - t
    t = Date.now()
    ;[client, keyserver] = await Promise.all([network.startClient('key-lookup'), startKeyserver()])
    timing.clientMs = Date.now() - t
    // The keyserver as an onion service of the same tor the lookups go through (the private
    // network has no exits; relay.test.ts reaches its relay the same way).
    t = Date.now()
    publisher = torService({ mode: 'attach', controlHost: '127.0.0.1', controlPort: client.controlPort, cookieFile: client.cookieFile, socksHost: '127.0.0.1', socksPort: client.socksPort }, { logger: silentLogger() })
    await publisher.start()
    const onion = await publisher.publishOnion({ expandedSecretKey: expandedSecretKey(generateOnionKey().seed), virtualPort: 80, target: { host: '127.0.0.1', port: keyserver.port } })
    await publisher.waitForDescriptorUpload(onion, 60_000)
    // For 2-3 s after publication tor may answer "descriptor not found"; wait until it connects.
    const probe = await connectThroughTor(client.socksPort, `${onion}.onion`, 80, 30_000)
    probe.socket.destroy()
    timing.publishMs = Date.now() - t
    onionKeyserver = `http://${onion}.onion`
    options = { socks: () => ({ host: '127.0.0.1', port: client.socksPort }), keyservers: [onionKeyserver], wkd: false, timeoutMs: 30_000 }
  })

  after(async () => {
    await publisher?.stop()
    await keyserver?.stop()
    await client?.stop()
    await network?.stop()
    timing.totalMs = Date.now() - started
    console.log('key lookup over tor, timings (ms):', JSON.stringify(timing))
  })

  it('finds bob\'s key through the onion keyserver', async () => {
    const bob = await newKey('bob@example.org')
    keyserver.serve('bob@example.org', bob.publicKey.armor())
    const asked = keyserver.requests.length
    const t = Date.now()
    const result = await lookupKey('bob@example.org', options)
    timing.firstLookupMs = Date.now() - t
    assert.deepEqual(result.problems, [])
    assert.equal(result.found.length, 1)
    const found = result.found[0]!
    assert.equal(found.source, onionKeyserver)
    assert.equal(found.fingerprint, bob.publicKey.getFingerprint().toUpperCase())
    assert.deepEqual(found.userIds, ['<bob@example.org>'])
    assert.equal((await readKey({ armoredKey: found.armoredPublicKey })).isPrivate(), false)
    const requests = keyserver.requests.slice(asked)
    assert.equal(requests.length, 1)
    assert.equal(requests[0]!.path, '/pks/lookup?op=get&options=mr&search=bob%40example.org')
    // The connection came from tor's onion service side, on loopback.
    assert.equal(requests[0]!.remoteAddress, '127.0.0.1')
    assert.equal(requests[0]!.headers.host, `${onionKeyserver.slice('http://'.length)}`)
  })

  it('an unknown address: no key', async () => {
    const t = Date.now()
    const result = await lookupKey('nobody@example.org', options)
    timing.laterLookupMs = Date.now() - t
    assert.deepEqual(result, { found: [], problems: [`keyserver ${onionKeyserver}: no key for this address`] })
  })

  it('drops a key whose user ids do not contain the address', async () => {
    const stranger = await newKey('stranger@example.net')
    keyserver.serve('carol@example.org', stranger.publicKey.armor())
    const result = await lookupKey('carol@example.org', options)
    assert.deepEqual(result.found, [])
    assert.deepEqual(result.problems, [`keyserver ${onionKeyserver}: key ${stranger.publicKey.getFingerprint().toUpperCase()} has no user id for this address; it was dropped`])
  })

  it('does not accept a secret key served by a hostile keyserver', async () => {
    const dave = await newKey('dave@example.org')
    keyserver.serve('dave@example.org', dave.privateKey.armor())
    const result = await lookupKey('dave@example.org', options)
    assert.deepEqual(result.found, [])
    assert.deepEqual(result.problems, [`keyserver ${onionKeyserver}: key ${dave.publicKey.getFingerprint().toUpperCase()} is a secret key; it was dropped`])
  })

  it('cuts off a huge answer', async () => {
    keyserver.misbehave('huge@example.org', 'huge')
    const t = Date.now()
    const result = await lookupKey('huge@example.org', { ...options, maxBytes: 256 * 1024 })
    timing.hugeMs = Date.now() - t
    assert.deepEqual(result, { found: [], problems: [`keyserver ${onionKeyserver}: the answer is larger than 256 KiB; it was cut off`] })
    // Tor buffers some of the stream; the server still stops far short of its 64 MiB.
    await new Promise((resolve) => setTimeout(resolve, 500))
    assert.ok(keyserver.hugeStats.written < 16 * 1024 * 1024, `${keyserver.hugeStats.written} bytes written`)
  })

  it('times out on a keyserver that never answers', async () => {
    keyserver.misbehave('hang@example.org', 'hang')
    const t = Date.now()
    const result = await lookupKey('hang@example.org', { ...options, timeoutMs: 3000 })
    const ms = Date.now() - t
    assert.deepEqual(result, { found: [], problems: [`keyserver ${onionKeyserver}: timed out after 3 s`] })
    assert.ok(ms >= 2900 && ms < 6000, `took ${ms} ms`)
  })

  it('never reaches a keyserver directly: one on 127.0.0.1 is asked of tor, which does not get there', async () => {
    // A direct connection would succeed at once and serve the key. Through tor it cannot:
    // tor would need an exit to reach 127.0.0.1, and this network has none, so the stream
    // waits for a circuit until the lookup gives up. (A tor outside a test network refuses
    // internal addresses outright: ClientRejectInternalAddresses.)
    const erin = await newKey('erin@example.org')
    keyserver.serve('erin@example.org', erin.publicKey.armor())
    const asked = keyserver.requests.length
    const t = Date.now()
    const result = await lookupKey('erin@example.org', { ...options, keyservers: [keyserver.url], timeoutMs: 4000 })
    timing.directMs = Date.now() - t
    assert.deepEqual(result.found, [])
    assert.equal(result.problems.length, 1)
    assert.match(result.problems[0]!, new RegExp(`^keyserver ${keyserver.url.replace(/\./g, '\\.')}: (Tor could not connect|timed out)`))
    await new Promise((resolve) => setTimeout(resolve, 500))
    assert.equal(keyserver.requests.length, asked, 'the keyserver received no request')
  })
})
