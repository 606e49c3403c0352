// The friends' libp2p hosts over the private Tor network (node/friends/p2p.ts and
// tor-transport.ts): two hosts, each behind its own client tor and its own onion (whose key
// is also its libp2p identity), do a request/answer round trip with a 1 MiB body through
// Tor; the answering host sees the asker's onion as its peer id; the only sockets the hosts
// open go to tor's SOCKS port; a missing onion fails clearly; IP addresses are never dialled
// without `direct`; no SOCKS endpoint means "Tor is not available". A scripted SOCKS server
// checks the error messages for tor's reply codes and that an aborted dial lets go at once.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type Server, type Socket } from 'node:net'
import { once } from 'node:events'
import { randomBytes, createHash } from 'node:crypto'
import { multiaddr } from '@multiformats/multiaddr'
import type { PeerId } from '@libp2p/interface'
import { sharedTorNetwork, connectThroughTor, type PrivateTorNetwork, type TorClient } from './harness/tor-network.ts'
import { freeLoopbackPort } from './harness/processes.ts'
import { tcpConnectionsOf, watchConnections, endpointKey, type TcpConnection } from './harness/sockets.ts'
import { torService, type TorService } from '../node/tor/index.ts'
import { silentLogger } from '../node/log/index.ts'
import { expandedSecretKey, generateOnionKey } from '../protocol/onion.ts'
import { createP2PHost, onionMultiaddr, onionOfSeed, peerIdOfOnion, FRIENDS_VIRTUAL_PORT, type P2PHost } from '../node/friends/p2p.ts'
import { request, serve, PeerUnavailableError } from '../node/friends/rpc.ts'

const PROTOCOL = '/smtorp/test/echo/1'
const timing: Record<string, number> = {}

interface Side {
  seed: Buffer
  onion: string
  listenPort: number
  tor: TorClient
  publisher: TorService
  host: P2PHost
}

/** A server that counts the connections it gets (and drops them). */
async function countingServer (): Promise<{ server: Server, port: number, connections: () => number }> {
  let n = 0
  const server = createServer((s) => { n++; s.destroy() })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return { server, port: (server.address() as { port: number }).port, connections: () => n }
}

describe('friends over the private Tor network', { timeout: 300_000 }, () => {
  let network: PrivateTorNetwork
  let a: Side
  let b: Side
  let smtpStandIn: Server | undefined
  const started = Date.now()

  async function side (name: string, tor: TorClient, extra?: { smtpPort: number }): Promise<Side> {
    const seed = generateOnionKey().seed
    const onion = await onionOfSeed(seed)
    const listenPort = await freeLoopbackPort()
    const host = await createP2PHost({ onionSeed: seed, listen: { host: '127.0.0.1', port: listenPort }, socks: () => ({ host: '127.0.0.1', port: tor.socksPort }) })
    const publisher = torService({ mode: 'attach', controlHost: '127.0.0.1', controlPort: tor.controlPort, cookieFile: tor.cookieFile, socksHost: '127.0.0.1', socksPort: tor.socksPort }, { logger: silentLogger() })
    await publisher.start()
    const friends = { virtualPort: FRIENDS_VIRTUAL_PORT, target: { host: '127.0.0.1', port: listenPort } }
    // B publishes as a node will: port 25 and the friends' port on one onion, in one ADD_ONION.
    const published = await publisher.publishOnion(extra === undefined
      ? { expandedSecretKey: expandedSecretKey(seed), ...friends }
      : { expandedSecretKey: expandedSecretKey(seed), virtualPort: 25, target: { host: '127.0.0.1', port: extra.smtpPort }, extraPorts: [friends] })
    assert.equal(published, onion, `${name}: tor derived the onion we derived from the seed`)
    return { seed, onion, listenPort, tor, publisher, host }
  }

  before(async () => {
    let t = Date.now()
    network = await sharedTorNetwork()
    timing.networkMs = Date.now() - t
    t = Date.now()
    const [torA, torB] = await Promise.all([network.startClient('friends-a'), network.startClient('friends-b')])
    timing.clientsMs = Date.now() - t
    // A stand-in for B's SMTP server behind port 25, to see both ports of one onion work.
    smtpStandIn = createServer((s) => { s.end('220 stand-in\r\n') })
    smtpStandIn.listen(0, '127.0.0.1')
    await once(smtpStandIn, 'listening')
    t = Date.now()
    ;[a, b] = await Promise.all([side('a', torA!), side('b', torB!, { smtpPort: (smtpStandIn.address() as { port: number }).port })])
    await Promise.all([a.publisher.waitForDescriptorUpload(a.onion, 60_000), b.publisher.waitForDescriptorUpload(b.onion, 60_000)])
    // For a few seconds after publication tor may answer "descriptor not found"; wait until
    // A's tor reaches B's onion (the probe on port 25, so libp2p on B sees no half connection).
    const probe = await connectThroughTor(a.tor.socksPort, `${b.onion}.onion`, 25, 30_000)
    const [greeting] = await once(probe.socket, 'data') as [Buffer]
    probe.socket.destroy()
    assert.equal(greeting.toString(), '220 stand-in\r\n')
    timing.publishMs = Date.now() - t
  })

  after(async () => {
    for (const s of [a, b]) {
      await s?.host.stop()
      await s?.publisher.stop()
      await s?.tor.stop()
    }
    smtpStandIn?.close()
    await network?.stop()
    timing.totalMs = Date.now() - started
    console.log('friends over tor, timings (ms):', JSON.stringify(timing))
  })

  it('A asks B through B\'s onion with a 1 MiB body; B sees A\'s onion as the peer; every socket goes through tor', async () => {
    const remotes: PeerId[] = []
    await serve(b.host, PROTOCOL, async (frame, remote) => {
      remotes.push(remote)
      return { header: { sha256: createHash('sha256').update(frame.body).digest('hex') }, body: frame.body }
    })
    const body = randomBytes(1024 * 1024)
    const before = new Set((await tcpConnectionsOf(process.pid)).map(connectionKey))
    const watch = watchConnections(process.pid, { intervalMs: 10 })
    let answer
    const t = Date.now()
    try {
      answer = await request(a.host, onionMultiaddr(b.onion, FRIENDS_VIRTUAL_PORT), PROTOCOL, { kind: 'echo' }, body, { timeoutMs: 90_000 })
    } finally {
      timing.roundTripMs = Date.now() - t
    }
    // The libp2p connection stays open: look at both of its ends while it is.
    const seen = await watch.stop()
    assert.equal(answer.header.sha256, createHash('sha256').update(body).digest('hex'))
    assert.ok(Buffer.from(answer.body).equals(body), 'the body came back unchanged')
    assert.equal(remotes.length, 1)
    assert.ok(remotes[0]!.equals(peerIdOfOnion(a.onion)), `B saw ${remotes[0]!.toString()}, A's onion names ${peerIdOfOnion(a.onion).toString()}`)
    assert.ok(remotes[0]!.equals(a.host.peerId))
    const toB = a.host.getConnections(b.host.peerId)
    assert.equal(toB.length, 1)
    assert.equal(toB[0]!.remoteAddr.toString(), onionMultiaddr(b.onion, FRIENDS_VIRTUAL_PORT).toString())

    // The sockets this test process opened during the round trip. Allowed:
    // - outgoing connections to a client tor's SOCKS port: the only way the hosts may dial;
    // - outgoing connections to a client tor's control port: the test's own tor services
    //   (attach mode) and the harness, not the p2p code; listed for the rare reconnection;
    // - incoming connections on a host's listen port: tor delivering onion connections.
    // Anything else (a direct connection to B's listen port, any non-loopback address)
    // would be a connection around Tor.
    const socksPorts = new Set([a.tor.socksPort, b.tor.socksPort])
    const controlPorts = new Set([a.tor.controlPort, b.tor.controlPort])
    const listenPorts = new Set([a.listenPort, b.listenPort])
    const fresh = seen.connections.filter((c) => !before.has(connectionKey(c)))
    const incoming = fresh.filter((c) => listenPorts.has(c.local.port) && c.local.host === '127.0.0.1')
    const outgoing = fresh.filter((c) => !incoming.includes(c))
    const stray = outgoing.filter((c) => c.remote.host !== '127.0.0.1' || !(socksPorts.has(c.remote.port) || controlPorts.has(c.remote.port)))
    assert.deepEqual(stray.map(connectionKey), [], `connections around tor (SOCKS ${[...socksPorts].join(',')}, control ${[...controlPorts].join(',')})`)
    assert.ok(outgoing.some((c) => c.remote.port === a.tor.socksPort), `A's dial went to its tor's SOCKS port (${seen.samples} samples: ${fresh.map(connectionKey).join('; ')})`)
    assert.ok(!outgoing.some((c) => listenPorts.has(c.remote.port)), 'no host connected to another host\'s listen port directly')
    // B's end of the connection came from B's tor, not from A.
    assert.ok(incoming.some((c) => c.local.port === b.listenPort), 'B accepted a connection on its listen port')
    const now = await tcpConnectionsOf(process.pid)
    const atB = now.filter((c) => c.local.port === b.listenPort)
    assert.ok(atB.length >= 1, 'the connection is still open at B')
    const torBSockets = new Set((await tcpConnectionsOf(b.tor.pid)).map((c) => endpointKey(c.local)))
    for (const c of atB) assert.ok(torBSockets.has(endpointKey(c.remote)), `${endpointKey(c.remote)} is a socket of B's tor (pid ${b.tor.pid})`)
  })

  it('a dial to an onion that does not exist fails clearly and soon', async () => {
    const nowhere = generateOnionKey().address
    const t = Date.now()
    await assert.rejects(request(a.host, onionMultiaddr(nowhere, FRIENDS_VIRTUAL_PORT), PROTOCOL, { kind: 'echo' }, undefined, { timeoutMs: 60_000 }),
      (err: Error) => {
        assert.ok(err instanceof PeerUnavailableError, err.message)
        assert.match(err.message, new RegExp(`Tor could not connect to ${nowhere}\\.onion:${FRIENDS_VIRTUAL_PORT}: onion service descriptor not found`))
        return true
      })
    timing.missingOnionMs = Date.now() - t
    assert.ok(Date.now() - t < 45_000, `took ${Date.now() - t} ms`)
  })

  it('a host without `direct` refuses to dial an IP address and opens no socket for it', async () => {
    const decoy = await countingServer()
    const watch = watchConnections(process.pid, { intervalMs: 5 })
    try {
      // B's listen port without its peer id: A is already connected to B (over tor), and a
      // dial naming B would just reuse that connection.
      for (const target of [`/ip4/127.0.0.1/tcp/${decoy.port}`, `/ip4/127.0.0.1/tcp/${b.listenPort}`]) {
        await assert.rejects(a.host.dial(multiaddr(target), { signal: AbortSignal.timeout(10_000) }),
          (err: Error) => /gater denied|denied|no valid addresses/i.test(err.message) || assert.fail(`${target}: ${err.name}: ${err.message}`))
      }
      const seen = await watch.stop()
      assert.equal(decoy.connections(), 0)
      assert.deepEqual(seen.connections.filter((c) => c.remote.port === decoy.port || c.remote.port === b.listenPort).map(connectionKey), [])
    } finally {
      await watch.stop().catch(() => {})
      decoy.server.close()
    }
    // The same dial from a host with `direct` does connect: it was the gater that refused.
    const direct = await createP2PHost({ onionSeed: generateOnionKey().seed, listen: { host: '127.0.0.1', port: await freeLoopbackPort() }, direct: true })
    try {
      const conn = await direct.dial(multiaddr(`/ip4/127.0.0.1/tcp/${b.listenPort}/p2p/${b.host.peerId.toString()}`), { signal: AbortSignal.timeout(10_000) })
      assert.ok(conn.remotePeer.equals(b.host.peerId))
    } finally {
      await direct.stop()
    }
  })

  it('a host whose tor is not ready says Tor is not available', async () => {
    const host = await createP2PHost({ onionSeed: generateOnionKey().seed, listen: { host: '127.0.0.1', port: await freeLoopbackPort() }, socks: () => undefined })
    try {
      await assert.rejects(request(host, onionMultiaddr(b.onion, FRIENDS_VIRTUAL_PORT), PROTOCOL, { kind: 'echo' }, undefined, { timeoutMs: 10_000 }),
        (err: Error) => err instanceof PeerUnavailableError && /Tor is not available/.test(err.message) ? true : assert.fail(err.message))
    } finally {
      await host.stop()
    }
  })
})

describe('the tor transport against a scripted SOCKS server', { timeout: 60_000 }, () => {
  let host: P2PHost
  let socks: Server
  let answer: (socket: Socket) => void = () => {}
  const held = new Set<Socket>()

  before(async () => {
    socks = createServer((socket) => { held.add(socket); socket.on('close', () => held.delete(socket)); socket.on('error', () => {}); answer(socket) })
    socks.listen(0, '127.0.0.1')
    await once(socks, 'listening')
    const port = (socks.address() as { port: number }).port
    host = await createP2PHost({ onionSeed: generateOnionKey().seed, listen: { host: '127.0.0.1', port: await freeLoopbackPort() }, socks: () => ({ host: '127.0.0.1', port }) })
  })

  after(async () => {
    await host?.stop()
    for (const s of held) s.destroy()
    socks?.close()
  })

  /** Accept username/password (tor's isolation), then answer CONNECT with `code`. */
  function replyWith (code: number, requests: Buffer[]): (socket: Socket) => void {
    return (socket) => {
      let data = Buffer.alloc(0)
      let step = 0
      socket.on('data', (chunk: Buffer) => {
        data = Buffer.concat([data, chunk])
        if (step === 0 && data.length >= 2 && data.length >= 2 + data[1]!) { data = data.subarray(2 + data[1]!); socket.write(Buffer.from([5, 2])); step = 1 }
        if (step === 1 && data.length >= 2 && data.length >= 3 + data[1]! + data[2 + data[1]!]!) { data = data.subarray(3 + data[1]! + data[2 + data[1]!]!); socket.write(Buffer.from([1, 0])); step = 2 }
        if (step === 2 && data.length >= 5 && data.length >= 7 + data[4]!) { requests.push(Buffer.from(data.subarray(0, 7 + data[4]!))); socket.write(Buffer.from([5, code, 0, 1, 0, 0, 0, 0, 0, 0])); step = 3 }
      })
    }
  }

  const cases: Array<[number, RegExp]> = [
    [0xf0, /onion service descriptor not found/],
    [0xf2, /onion service introduction failed/],
    [0xf3, /onion service rendezvous failed/],
    [0xf4, /onion service needs client authorization/],
    [0x01, /general SOCKS server failure/],
  ]
  for (const [code, text] of cases) {
    it(`reply 0x${code.toString(16)} reads "${text.source}"`, async () => {
      const requests: Buffer[] = []
      answer = replyWith(code, requests)
      const onion = generateOnionKey().address
      await assert.rejects(request(host, onionMultiaddr(onion, FRIENDS_VIRTUAL_PORT), PROTOCOL, {}, undefined, { timeoutMs: 10_000 }),
        (err: Error) => text.test(err.message) && err.message.includes(`${onion}.onion:${FRIENDS_VIRTUAL_PORT}`) ? true : assert.fail(err.message))
      // The onion went to the proxy as a host name (ATYP 3), for tor to look up.
      assert.equal(requests.length, 1)
      assert.deepEqual([...requests[0]!.subarray(0, 5)], [5, 1, 0, 3, 62])
      assert.equal(requests[0]!.subarray(5, 67).toString(), `${onion}.onion`)
      assert.equal(requests[0]!.readUInt16BE(67), FRIENDS_VIRTUAL_PORT)
    })
  }

  it('an aborted dial lets go of the SOCKS connection at once', async () => {
    answer = (socket) => { socket.resume() } // reads (so it sees the close) and never says a word
    const t = Date.now()
    await assert.rejects(request(host, onionMultiaddr(generateOnionKey().address, FRIENDS_VIRTUAL_PORT), PROTOCOL, {}, undefined, { timeoutMs: 1500 }), PeerUnavailableError)
    assert.ok(Date.now() - t < 5000, `took ${Date.now() - t} ms`)
    // The proxy sees its connection closed.
    const deadline = Date.now() + 3000
    while (held.size > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
    assert.equal(held.size, 0, 'the SOCKS connection was closed')
  })
})

function connectionKey (c: TcpConnection): string {
  return `${endpointKey(c.local)}>${endpointKey(c.remote)}`
}
