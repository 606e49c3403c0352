// The tor service against real tor on the private network (test/harness/tor-network.ts):
// own mode bootstraps, publishes an onion that another client reaches, survives kill -9
// of its tor, attach mode works, and nothing is left running.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, connect, type Server, type Socket } from 'node:net'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { torService, type TorService } from './index.ts'
import { isAlive } from './process.ts'
import { silentLogger } from '../log/index.ts'
import { generateOnionKey, expandedSecretKey } from '../../protocol/onion.ts'
import { sharedTorNetwork, connectThroughTor, trackedTorPids, type PrivateTorNetwork, type TorClient } from '../../test/harness/tor-network.ts'

const timing: Record<string, number> = {}

async function echoServer (): Promise<{ server: Server, port: number }> {
  const server = createServer((socket) => { socket.pipe(socket) })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  return { server, port: address.port }
}

async function echoRoundTrip (socket: Socket, text: string): Promise<string> {
  return await new Promise((resolve, reject) => {
    let got = ''
    const timer = setTimeout(() => { reject(new Error(`echo timed out, got ${JSON.stringify(got)}`)) }, 10_000)
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => {
      got += chunk
      if (got.length >= text.length) { clearTimeout(timer); socket.end(); resolve(got) }
    })
    socket.on('error', (err) => { clearTimeout(timer); reject(err) })
    socket.write(text)
  })
}

async function waitUntil (what: string, check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

describe('tor service on the private tor network', { timeout: 240_000 }, () => {
  let network: PrivateTorNetwork
  let visitor: TorClient
  let echo: { server: Server, port: number }
  let dataDir: string
  const services: TorService[] = []

  before(async () => {
    let t = Date.now()
    network = await sharedTorNetwork()
    timing.networkReadyMs = Date.now() - t
    t = Date.now()
    visitor = await network.startClient('visitor')
    timing.visitorBootstrapMs = Date.now() - t
    echo = await echoServer()
    dataDir = await mkdtemp(join(tmpdir(), 'smtorp-tor-test-'))
  })

  after(async () => {
    for (const s of services) await s.stop()
    echo?.server.close()
    await network?.stop()
    if (dataDir !== undefined) await rm(dataDir, { recursive: true, force: true })
    // Every tor this process started is gone.
    assert.deepEqual(trackedTorPids(), [])
    console.log('tor timings (ms):', JSON.stringify(timing))
  })

  it('own mode: bootstraps, publishes an onion reachable from another client, and restarts tor after kill -9', async () => {
    const tor = torService({ mode: 'own', dataDir, extraTorrc: network.clientTorrc }, { logger: silentLogger() })
    services.push(tor)
    const statuses: number[] = []
    tor.onStatus((s) => { statuses.push(s.bootstrapPercent) })
    let t = Date.now()
    await tor.start()
    await tor.waitForBootstrap(60_000)
    timing.ownBootstrapMs = Date.now() - t
    assert.ok(statuses.includes(100))
    assert.equal(tor.status().running, true)
    assert.match(String(tor.socksEndpoint().port), /^\d+$/)

    const key = generateOnionKey()
    t = Date.now()
    const address = await tor.publishOnion({ expandedSecretKey: expandedSecretKey(key.seed), virtualPort: 25, target: { host: '127.0.0.1', port: echo.port } })
    assert.equal(address, key.address, 'tor derives the same address as protocol/onion.ts')
    await tor.waitForDescriptorUpload(address, 30_000)
    timing.publishToUploadMs = Date.now() - t
    const first = await connectThroughTor(visitor.socksPort, `${address}.onion`, 25, 30_000)
    timing.publishToReachableMs = Date.now() - t
    timing.firstConnectAttempts = first.attempts
    assert.equal(await echoRoundTrip(first.socket, 'hello onion\n'), 'hello onion\n')

    // The node's own SOCKS port works too: reach the onion through it.
    const self = await connectThroughTor(tor.socksEndpoint().port, `${address}.onion`, 25, 30_000)
    assert.equal(await echoRoundTrip(self.socket, 'via own socks\n'), 'via own socks\n')

    // Regression: tor dying under the node (kill -9) must not take the onion down for good.
    const pid = tor.status().pid
    assert.ok(pid !== undefined && isAlive(pid))
    const socksBefore = tor.socksEndpoint().port
    t = Date.now()
    process.kill(pid, 'SIGKILL')
    await waitUntil('tor to be restarted', () => tor.status().restarts === 1 && tor.status().running, 30_000)
    assert.notEqual(tor.status().pid, pid)
    await tor.waitForBootstrap(60_000)
    timing.restartToBootstrapMs = Date.now() - t
    await tor.waitForDescriptorUpload(address, 30_000)
    timing.restartToUploadMs = Date.now() - t
    assert.equal(tor.socksEndpoint().port, socksBefore, 'the SOCKS port stays the same across a restart')
    const again = await connectThroughTor(visitor.socksPort, `${address}.onion`, 25, 60_000)
    timing.restartToReachableMs = Date.now() - t
    timing.restartConnectAttempts = again.attempts
    assert.equal(await echoRoundTrip(again.socket, 'hello again\n'), 'hello again\n')

    await tor.stop()
    assert.equal(isAlive(tor.status().pid ?? pid), false)
    assert.equal(tor.status().running, false)
  })

  it('attach mode: publishes through an existing tor, republishes after losing the control connection, removes the onion on stop', async () => {
    const host = await network.startClient('host')
    // A TCP proxy in front of the host's ControlPort, so the test can cut the connection.
    const proxied = new Set<Socket>()
    const proxy = createServer((inbound) => {
      const outbound = connect({ host: '127.0.0.1', port: host.controlPort })
      proxied.add(inbound); proxied.add(outbound)
      inbound.pipe(outbound).pipe(inbound)
      const drop = (): void => { inbound.destroy(); outbound.destroy() }
      inbound.on('error', drop); outbound.on('error', drop); inbound.on('close', drop); outbound.on('close', drop)
    })
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve))
    const proxyPort = (proxy.address() as { port: number }).port
    try {
      const tor = torService({
        mode: 'attach', controlHost: '127.0.0.1', controlPort: proxyPort, cookieFile: host.cookieFile, socksHost: '127.0.0.1', socksPort: host.socksPort,
      }, { logger: silentLogger() })
      services.push(tor)
      await tor.start()
      await tor.waitForBootstrap(10_000)
      assert.deepEqual(tor.socksEndpoint(), { host: '127.0.0.1', port: host.socksPort })
      const key = generateOnionKey()
      let t = Date.now()
      const address = await tor.publishOnion({ expandedSecretKey: expandedSecretKey(key.seed), virtualPort: 25, target: { host: '127.0.0.1', port: echo.port } })
      assert.equal(address, key.address)
      await tor.waitForDescriptorUpload(address, 30_000)
      const c = await connectThroughTor(visitor.socksPort, `${address}.onion`, 25, 30_000)
      timing.attachPublishToReachableMs = Date.now() - t
      assert.equal(await echoRoundTrip(c.socket, 'attached\n'), 'attached\n')

      // Cut the control connection: tor drops the (non-detached) onion; the service reconnects and republishes.
      t = Date.now()
      for (const s of proxied) s.destroy()
      await waitUntil('reconnection', () => tor.status().restarts === 1 && tor.status().running, 30_000)
      await tor.waitForDescriptorUpload(address, 30_000)
      const again = await connectThroughTor(visitor.socksPort, `${address}.onion`, 25, 60_000)
      timing.attachReconnectToReachableMs = Date.now() - t
      assert.equal(await echoRoundTrip(again.socket, 'reattached\n'), 'reattached\n')

      await tor.stop()
      // The host tor is still running: attach mode never stops someone else's tor.
      assert.equal(isAlive(host.pid), true)
    } finally {
      proxy.close()
      for (const s of proxied) s.destroy()
      await host.stop()
    }
    assert.equal(isAlive(host.pid), false)
  })
})

describe('tor service configuration errors', () => {
  it('refuses extra torrc lines that would take over the ports or auth it manages', () => {
    assert.throws(() => torService({ mode: 'own', dataDir: '/nonexistent', extraTorrc: ['ControlPort 9051'] }, { logger: silentLogger() }), /may not set controlport/)
  })

  it('fails start() with tor\'s own complaint when the torrc is bad, and leaves no tor running', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'smtorp-tor-bad-'))
    try {
      const tor = torService({ mode: 'own', dataDir, extraTorrc: ['FrobnicateTheFlux 1'] }, { logger: silentLogger() })
      await assert.rejects(tor.start(), /tor exited during startup.*FrobnicateTheFlux/)
      assert.equal(tor.status().running, false)
      assert.equal(tor.status().pid, undefined)
    } finally {
      await rm(dataDir, { recursive: true, force: true })
    }
  })

  it('fails start() clearly when the tor binary is missing', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'smtorp-tor-bad-'))
    try {
      const tor = torService({ mode: 'own', dataDir, torBinary: join(dataDir, 'no-such-tor') }, { logger: silentLogger() })
      await assert.rejects(tor.start(), /cannot run tor: .*ENOENT/)
    } finally {
      await rm(dataDir, { recursive: true, force: true })
    }
  })

  it('fails start() in attach mode when nothing listens on the control port', async () => {
    const tor = torService({ mode: 'attach', controlHost: '127.0.0.1', controlPort: 1, socksHost: '127.0.0.1', socksPort: 9050 }, { logger: silentLogger() })
    await assert.rejects(tor.start(), /cannot connect to tor control port/)
  })
})
