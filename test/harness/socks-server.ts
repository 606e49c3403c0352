// A minimal SOCKS5 server on loopback (RFC 1928, with RFC 1929 user name and password), for
// unit tests of a client's proxy handling: it records the user name and destination of each
// CONNECT, then either pipes the stream to a fixed loopback port or, to stand in for a Tor
// circuit that stalls, answers the CONNECT and never passes a byte. It is not tor: tests of
// what tor does use the private Tor network (tor-network.ts).
import { createServer, connect, type Server, type Socket } from 'node:net'
import { once } from 'node:events'

export interface SocksConnect { user: string, host: string, port: number }

export interface SocksRelay {
  port: number
  /** Each CONNECT, in the order received. */
  connects: SocksConnect[]
  /** What clients sent through the relay after their handshakes (latin1), to see the commands a client gives. */
  sent: () => string
  stop: () => Promise<void>
}

/**
 * `forwardTo`: the loopback port every CONNECT is piped to. `stall(n)`: whether the n-th
 * CONNECT (from 1) is answered and then left silent.
 */
export async function startSocksRelay (o: { forwardTo: number, stall: (n: number) => boolean }): Promise<SocksRelay> {
  const connects: SocksConnect[] = []
  let sent = ''
  const sockets = new Set<Socket>()
  const server: Server = createServer((client) => {
    sockets.add(client)
    client.on('close', () => sockets.delete(client))
    client.on('error', () => {})
    handshake(client).then((request) => {
      if (request === undefined) { client.destroy(); return }
      connects.push(request)
      const reply = Buffer.from([5, 0, 0, 1, 127, 0, 0, 1, 0, 0])
      if (o.stall(connects.length)) { client.write(reply); return }
      const upstream = connect(o.forwardTo, '127.0.0.1', () => {
        client.write(reply)
        client.on('data', (chunk: Buffer) => { sent += chunk.toString('latin1') })
        client.pipe(upstream).pipe(client)
      })
      sockets.add(upstream)
      upstream.on('close', () => { sockets.delete(upstream); client.destroy() })
      upstream.on('error', () => client.destroy())
    }, () => client.destroy())
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('the SOCKS relay has no port')
  return {
    port: address.port,
    connects,
    sent: () => sent,
    stop: async () => {
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}

/** The bytes of a socket as they come, read n at a time until the handshake is over. */
class Reader {
  private data = Buffer.alloc(0)
  private ended = false
  private wake: (() => void) | undefined
  private readonly onData = (chunk: Buffer): void => { this.data = Buffer.concat([this.data, chunk]); this.wake?.() }
  private readonly onEnd = (): void => { this.ended = true; this.wake?.() }

  constructor (private readonly socket: Socket) {
    socket.on('data', this.onData)
    socket.on('close', this.onEnd)
  }

  /** Exactly n bytes, or undefined if the stream ends first. */
  async read (n: number): Promise<Buffer | undefined> {
    while (this.data.length < n) {
      if (this.ended) return undefined
      await new Promise<void>((resolve) => { this.wake = resolve })
      this.wake = undefined
    }
    const out = this.data.subarray(0, n)
    this.data = this.data.subarray(n)
    return out
  }

  /** Stops reading: the socket is paused with what was read ahead put back. */
  release (): void {
    this.socket.pause()
    this.socket.off('data', this.onData)
    this.socket.off('close', this.onEnd)
    if (this.data.length > 0) this.socket.unshift(this.data)
  }
}

async function handshake (socket: Socket): Promise<SocksConnect | undefined> {
  const r = new Reader(socket)
  try {
    const hello = await r.read(2)
    if (hello?.[0] !== 5) return undefined
    const methods = await r.read(hello[1]!)
    if (methods === undefined) return undefined
    let user = ''
    if (methods.includes(2)) {
      socket.write(Buffer.from([5, 2]))
      const head = await r.read(2)
      const name = head === undefined ? undefined : await r.read(head[1]!)
      const plen = name === undefined ? undefined : await r.read(1)
      if (plen === undefined || await r.read(plen[0]!) === undefined) return undefined
      user = name!.toString('latin1')
      socket.write(Buffer.from([1, 0]))
    } else {
      socket.write(Buffer.from([5, 0]))
    }
    const request = await r.read(4)
    if (request?.[0] !== 5 || request[1] !== 1) return undefined
    let host: string
    if (request[3] === 3) {
      const len = await r.read(1)
      const name = len === undefined ? undefined : await r.read(len[0]!)
      if (name === undefined) return undefined
      host = name.toString('latin1')
    } else if (request[3] === 1) {
      const ip = await r.read(4)
      if (ip === undefined) return undefined
      host = [...ip].join('.')
    } else {
      return undefined
    }
    const port = await r.read(2)
    if (port === undefined) return undefined
    return { user, host, port: port.readUInt16BE(0) }
  } finally {
    r.release()
  }
}
