// Trying relay settings from the web UI (testRelay) against a real Postfix with STARTTLS and
// a login: each outcome is one sentence the owner can act on, and nothing is ever sent.
// Postfix here always offers STARTTLS, so "TLS required but not offered" and "no greeting"
// use small servers of their own. One case goes through Tor (the private Tor network, with
// the relay published as an onion service since that network has no exits).
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import { SMTPServer } from 'smtp-server'
import { startPostfix, missingPostfixPrerequisites, type PostfixInstance } from './harness/postfix.ts'
import { testRelay } from '../node/delivery/index.ts'
import type { RelayConfig } from '../node/config/index.ts'
import { sharedTorNetwork, connectThroughTor, type PrivateTorNetwork, type TorClient } from './harness/tor-network.ts'
import { torService } from '../node/tor/index.ts'
import { silentLogger } from '../node/log/index.ts'
import { expandedSecretKey, generateOnionKey } from '../protocol/onion.ts'

const credentials = { user: 'carol', pass: 'relay-secret-1' }
const missing = missingPostfixPrerequisites({ auth: true })

async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', () => resolve()))
  const port = (server.address() as AddressInfo).port
  await new Promise<void>(resolve => server.close(() => resolve()))
  return port
}

describe('testing relay settings against a real Postfix', { skip: missing.length > 0 ? missing.join('; ') : false, timeout: 120_000 }, () => {
  let postfix: PostfixInstance
  let settings: RelayConfig

  before(async () => {
    postfix = await startPostfix({ role: 'relay', auth: credentials })
    settings = { host: '127.0.0.1', port: postfix.port, requireTls: true, verifyCertificate: false, username: credentials.user, password: credentials.pass, viaTor: false }
  })
  after(async () => { await postfix?.stop() })

  it('with the right settings: connected, TLS on, logged in; and nothing was sent', async () => {
    const result = await testRelay(settings)
    assert.deepEqual(result, { ok: true, message: `Connected to 127.0.0.1:${postfix.port}, TLS on (certificate not checked), logged in as carol.` })
    assert.equal(await postfix.count(), 0)
  })

  it('with a wrong password: the relay\'s 535, and never the password', async () => {
    const result = await testRelay({ ...settings, password: 'not-the-password' })
    assert.equal(result.ok, false)
    assert.match(result.message, /^The relay refused the login: 535 5\.7\.8 /)
    assert.doesNotMatch(result.message, /not-the-password/)
  })

  it('with a wrong port: could not connect, connection refused', async () => {
    const port = await freePort()
    assert.deepEqual(await testRelay({ ...settings, port }), { ok: false, message: `Could not connect to 127.0.0.1:${port}: connection refused.` })
  })

  it('checking the certificate: Postfix\'s self-signed one is refused, with advice', async () => {
    const result = await testRelay({ ...settings, verifyCertificate: true })
    assert.equal(result.ok, false)
    assert.match(result.message, /^The relay's certificate is self-signed, so it cannot be checked\./)
  })

  it('through Tor: connected through Tor, TLS on, logged in', { timeout: 180_000 }, async () => {
    let network: PrivateTorNetwork | undefined
    let client: TorClient | undefined
    let publisher: ReturnType<typeof torService> | undefined
    try {
      network = await sharedTorNetwork()
      client = await network.startClient('relay-settings-test')
      publisher = torService({ mode: 'attach', controlHost: '127.0.0.1', controlPort: client.controlPort, cookieFile: client.cookieFile, socksHost: '127.0.0.1', socksPort: client.socksPort }, { logger: silentLogger() })
      await publisher.start()
      const onion = await publisher.publishOnion({ expandedSecretKey: expandedSecretKey(generateOnionKey().seed), virtualPort: 587, target: { host: '127.0.0.1', port: postfix.port } })
      await publisher.waitForDescriptorUpload(onion, 60_000)
      // For a few seconds after publication tor may answer "descriptor not found"; wait until it connects.
      const probe = await connectThroughTor(client.socksPort, `${onion}.onion`, 587, 30_000)
      probe.socket.destroy()
      const socksPort = client.socksPort
      const result = await testRelay({ ...settings, host: `${onion}.onion`, port: 587, viaTor: true }, { socksEndpoint: () => ({ host: '127.0.0.1', port: socksPort }), timeoutMs: 60_000 })
      assert.deepEqual(result, { ok: true, message: `Connected to ${onion}.onion:587 through Tor, TLS on (certificate not checked), logged in as carol.` })
      assert.equal(await postfix.count(), 0)
    } finally {
      await publisher?.stop()
      await client?.stop()
      await network?.stop()
    }
  })
})

describe('testing relay settings against servers that fall short', () => {
  const servers: Array<SMTPServer | Server> = []
  const sockets: Socket[] = []
  after(async () => {
    for (const socket of sockets) socket.destroy()
    await Promise.all(servers.map(async s => await new Promise<void>(resolve => s.close(() => resolve()))))
  })

  it('a relay without STARTTLS, when the settings require TLS', async () => {
    const server = new SMTPServer({ disabledCommands: ['STARTTLS', 'AUTH'], logger: false })
    servers.push(server)
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', () => resolve()))
    const port = (server.server.address() as AddressInfo).port
    const relay: RelayConfig = { host: '127.0.0.1', port, requireTls: true, verifyCertificate: true, viaTor: false }
    assert.deepEqual(await testRelay(relay), { ok: false, message: 'The relay does not offer STARTTLS, and the settings require it.' })
    assert.deepEqual(await testRelay({ ...relay, requireTls: false }), { ok: true, message: `Connected to 127.0.0.1:${port}, TLS off, no login (no user name is set).` })
  })

  it('a server that never greets: no answer within the time limit', async () => {
    const server = createServer(socket => { sockets.push(socket) })
    servers.push(server)
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', () => resolve()))
    const port = (server.address() as AddressInfo).port
    const started = Date.now()
    const result = await testRelay({ host: '127.0.0.1', port, requireTls: true, verifyCertificate: true, viaTor: false }, { timeoutMs: 500 })
    assert.equal(result.ok, false)
    assert.match(result.message, /did not answer within|did not speak SMTP/)
    assert.ok(Date.now() - started < 2000)
  })

  it('through Tor without a SOCKS port: says Tor is not available', async () => {
    const result = await testRelay({ host: 'relay.example.org', port: 587, requireTls: true, verifyCertificate: true, viaTor: true })
    assert.deepEqual(result, { ok: false, message: 'The settings say to reach the relay through Tor, but Tor is not available yet.' })
  })
})
