// The /proc socket reader of sockets.ts: it lists a process's connections (its own and a
// child's), leaves out listening sockets and other processes' sockets, decodes IPv4 and
// IPv6 addresses, and the sampler collects what it saw until stopped.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, connect, type Server, type Socket } from 'node:net'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { tcpConnectionsOf, watchConnections, parseEndpoint, endpointKey } from './sockets.ts'

async function listen (host: string): Promise<{ server: Server, port: number, accepted: Socket[] }> {
  const accepted: Socket[] = []
  const server = createServer((s) => { accepted.push(s) })
  server.listen(0, host)
  await once(server, 'listening')
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  return { server, port: address.port, accepted }
}

async function dial (host: string, port: number): Promise<Socket> {
  const socket = connect({ host, port })
  await once(socket, 'connect')
  return socket
}

describe('parseEndpoint', () => {
  const cases: Array<[string, string]> = [
    ['0100007F:1F90', '127.0.0.1:8080'],
    ['00000000:0000', '0.0.0.0:0'],
    ['0101A8C0:0019', '192.168.1.1:25'],
    ['00000000000000000000000001000000:0050', '[::1]:80'],
    ['0000000000000000FFFF00000100007F:01BB', '127.0.0.1:443'],
    ['B80D0120000000000000000001000000:0035', '[2001:db8::1]:53'],
    ['00000000000000000000000000000000:0000', '[::]:0'],
  ]
  for (const [field, expected] of cases) {
    it(`${field} is ${expected}`, () => { assert.equal(endpointKey(parseEndpoint(field)), expected) })
  }
})

describe('tcpConnectionsOf', () => {
  let v4: Awaited<ReturnType<typeof listen>>

  before(async () => { v4 = await listen('127.0.0.1') })
  after(async () => { v4.server.close() })

  it('lists both ends of a connection inside this process, and not the listening socket', async () => {
    const client = await dial('127.0.0.1', v4.port)
    try {
      const mine = await tcpConnectionsOf(process.pid)
      const out = mine.find((c) => c.local.port === client.localPort && c.remote.port === v4.port)
      assert.ok(out, `the outgoing connection is listed: ${JSON.stringify(mine)}`)
      assert.deepEqual(out.remote, { host: '127.0.0.1', port: v4.port })
      assert.equal(out.state, 'established')
      const inbound = mine.find((c) => c.local.port === v4.port && c.remote.port === client.localPort)
      assert.ok(inbound, 'the accepted end is listed')
      assert.ok(!mine.some((c) => c.local.port === v4.port && c.remote.port === 0), 'the listening socket is not listed')
    } finally {
      client.destroy()
    }
  })

  it('lists a child process\'s connection under the child, not under this process', async () => {
    const script = `const s = require('node:net').connect(${v4.port}, '127.0.0.1', () => process.stdout.write(String(s.localPort) + '\\n')); process.stdin.on('data', () => process.exit(0))`
    const child = spawn(process.execPath, ['-e', script], { stdio: ['pipe', 'pipe', 'inherit'] })
    try {
      const [chunk] = await once(child.stdout, 'data') as [Buffer]
      const childPort = Number(chunk.toString().trim())
      const theirs = await tcpConnectionsOf(child.pid!)
      assert.deepEqual(theirs.map((c) => [endpointKey(c.local), endpointKey(c.remote)]), [[`127.0.0.1:${childPort}`, `127.0.0.1:${v4.port}`]])
      const mine = await tcpConnectionsOf(process.pid)
      assert.ok(!mine.some((c) => c.local.port === childPort), 'the child\'s end is not this process\'s')
      assert.ok(mine.some((c) => c.local.port === v4.port && c.remote.port === childPort), 'our accepted end is')
    } finally {
      child.stdin.end('x')
      child.kill()
      await once(child, 'exit').catch(() => {})
    }
  })

  it('lists IPv6 loopback connections', async (t) => {
    let v6: Awaited<ReturnType<typeof listen>>
    try {
      v6 = await listen('::1')
    } catch {
      t.skip('no IPv6 loopback here')
      return
    }
    const client = await dial('::1', v6.port)
    try {
      const mine = await tcpConnectionsOf(process.pid)
      assert.ok(mine.some((c) => endpointKey(c.remote) === `[::1]:${v6.port}`), JSON.stringify(mine))
    } finally {
      client.destroy()
      v6.server.close()
    }
  })

  it('forgets a connection once it is closed', async () => {
    const client = await dial('127.0.0.1', v4.port)
    const port = client.localPort
    client.destroy()
    await once(client, 'close')
    // Our side is now in FIN-WAIT/TIME-WAIT or gone: not established, and no fd of ours.
    const mine = await tcpConnectionsOf(process.pid)
    assert.ok(!mine.some((c) => c.local.port === port), JSON.stringify(mine))
  })
})

describe('watchConnections', () => {
  it('collects a connection opened and closed while it watched', async () => {
    const target = await listen('127.0.0.1')
    const watch = watchConnections(process.pid, { intervalMs: 10 })
    try {
      const client = await dial('127.0.0.1', target.port)
      await new Promise((resolve) => setTimeout(resolve, 100))
      client.destroy()
      await once(client, 'close')
      await new Promise((resolve) => setTimeout(resolve, 50))
      const seen = await watch.stop()
      assert.ok(seen.remotes.has(`127.0.0.1:${target.port}`), [...seen.remotes].join(' '))
      assert.ok(seen.samples >= 3, `${seen.samples} samples`)
      // The connection is listed once although many samples saw it.
      assert.equal(seen.connections.filter((c) => c.remote.port === target.port).length, 1)
    } finally {
      await watch.stop().catch(() => {})
      target.server.close()
    }
  })

  it('stops by itself after maxSamples', async () => {
    const watch = watchConnections(process.pid, { intervalMs: 1, maxSamples: 5 })
    await new Promise((resolve) => setTimeout(resolve, 300))
    const { samples } = await watch.stop()
    // Five by the bound, and one more taken by stop().
    assert.equal(samples, 6)
  })

  it('ends quietly when the process exits, saying so', async () => {
    const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' })
    await once(child, 'exit')
    const watch = watchConnections(child.pid!, { intervalMs: 10 })
    const result = await watch.stop()
    assert.equal(result.exited, true)
    assert.equal(result.remotes.size, 0)
  })
})
