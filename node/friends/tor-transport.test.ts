// The transport's connections send one turn's writes as one (tor-transport.ts, top): tor
// forwards each TCP segment it reads as its own relay cells, and the far tor's Nagle then holds
// every later piece until the first is acknowledged. Checked at the socket: the Writable
// implementer calls (_write, _writev) are what reach the kernel, one system call each.
import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, connect, type Socket } from 'node:net'
import { once } from 'node:events'
import type { Logger } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { SocketConnection, tcpTarget, onionTarget } from './tor-transport.ts'

const silent: Logger = Object.assign(() => {}, { error: () => {}, trace: () => {}, enabled: false, newScope: () => silent })
/** What sendData takes: libp2p passes a Uint8ArrayList; any iterable of chunks serves. */
const chunks = (...parts: Buffer[]): Parameters<SocketConnection['sendData']>[0] => parts as unknown as Parameters<SocketConnection['sendData']>[0]

describe('the friends transport\'s connections', () => {
  const server = createServer()
  after(() => { server.close() })

  it('send what libp2p writes in one turn of the event loop as one write, and all of it', async () => {
    const received: Buffer[] = []
    server.on('connection', (s: Socket) => { s.on('data', (d: Buffer) => received.push(d)).on('error', () => {}) })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const socket = connect({ port: (server.address() as { port: number }).port, host: '127.0.0.1', noDelay: true })
    await once(socket, 'connect')
    const calls: number[] = []
    const write = socket._write.bind(socket)
    const writev = socket._writev!.bind(socket)
    socket._write = (chunk, encoding, callback) => { calls.push(1); write(chunk, encoding, callback) }
    socket._writev = (chunks, callback) => { calls.push(chunks.length); writev(chunks, callback) }
    const conn = new SocketConnection({ socket, remoteAddr: multiaddr('/ip4/127.0.0.1/tcp/1'), direction: 'outbound', log: silent })
    try {
      // As noise sends a frame: its 2-byte length, then the ciphertext; then a second frame.
      conn.sendData(chunks(Buffer.from([0, 5]), Buffer.from('hello')))
      await Promise.resolve()
      conn.sendData(chunks(Buffer.from([0, 5]), Buffer.from('world')))
      await new Promise(resolve => setImmediate(resolve))
      assert.deepEqual(calls, [4], 'one writev of the four pieces')
      const deadline = Date.now() + 5000
      while (Buffer.concat(received).length < 14 && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 5))
      assert.deepEqual(Buffer.concat(received), Buffer.from('\x00\x05hello\x00\x05world', 'latin1'))
    } finally {
      conn.abort(new Error('done'))
      socket.destroy()
    }
  })

  it('tell onion addresses from TCP addresses', () => {
    assert.deepEqual(onionTarget(multiaddr(`/onion3/${'a'.repeat(56)}:4001`)), { host: `${'a'.repeat(56)}.onion`, port: 4001 })
    assert.deepEqual(tcpTarget(multiaddr('/ip4/127.0.0.1/tcp/4001')), { host: '127.0.0.1', port: 4001 })
    assert.deepEqual(tcpTarget(multiaddr('/ip6/::1/tcp/5')), { host: '::1', port: 5 })
    assert.equal(tcpTarget(multiaddr(`/onion3/${'a'.repeat(56)}:4001`)), undefined)
    assert.equal(tcpTarget(multiaddr('/ip4/127.0.0.1/udp/4001')), undefined)
    assert.equal(tcpTarget(multiaddr('/ip4/127.0.0.1/tcp/4001/ws')), undefined)
  })
})
