// The libp2p transport of a node's friends connections: it dials `/onion3/<address>:<port>`
// (optionally followed by /p2p/<id>) through tor's SOCKS port, and listens on a TCP port
// (127.0.0.1, behind a virtual port of the node's own onion service). Plain TCP dials to IP
// addresses exist only when `direct` is set (tests and LAN set-ups).
//
// Every connection, dialled or accepted, sends what libp2p writes in one turn of the event
// loop as one write (SocketConnection). Tor forwards each TCP segment it reads as relay cells,
// and the far tor writes them to its socket one by one; a burst written as several segments
// (noise's 2-byte length, then the frame; yamux's frames) then arrives as several writes, and
// Nagle's algorithm on tor's socket holds each later one until the first is acknowledged, which
// the receiver delays (delayed ACK, 40 ms and more). Measured on the private Tor network: a
// request round trip took 200 ms against a raw round trip of 16 ms; with one write per turn on
// both sides, 20 ms.
//
// Contract:
// - dialFilter keeps /onion3 addresses, and /ip4 or /ip6 TCP addresses when `direct`;
//   listenFilter keeps /ip4 and /ip6 TCP addresses.
// - The onion is sent to tor as a host name (SOCKS5 ATYP 3), so tor looks it up; nothing is
//   ever resolved locally. The only socket a dial opens goes to tor's SOCKS endpoint.
// - `init.socks()` is asked at every dial (tor's port may change after a restart); undefined
//   means tor is not ready, and the dial fails with TorUnavailableError.
// - A SOCKS failure becomes a TorDialError carrying tor's reply code (ExtendedErrors,
//   protocol/socks5.ts) and a sentence, e.g. "onion service descriptor not found".
// - The dial's AbortSignal destroys the socket at any stage.
// - Each dial uses its own SOCKS credentials, so tor (IsolateSOCKSAuth, on by default) puts
//   it on circuits of its own.
import { connect, createServer, type Server, type Socket } from 'node:net'
import { randomBytes } from 'node:crypto'
import { SocksClient, type SocksClientOptions } from 'socks'
import { AbortError, serviceCapabilities, transportSymbol } from '@libp2p/interface'
import type { ComponentLogger, Connection, CreateListenerOptions, DialTransportOptions, Listener, ListenerEvents, Logger, Transport, AbortOptions, Upgrader } from '@libp2p/interface'
import { AbstractMultiaddrConnection, type AbstractMultiaddrConnectionInit, type SendResult } from '@libp2p/utils'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { TypedEventEmitter } from 'main-event'
import { SOCKS_REPLIES, socksConnectReplyLength } from '../../protocol/socks5.ts'

export interface TorTransportInit {
  /** Tor's SOCKS endpoint, asked at each dial; undefined while tor is not available. */
  socks: () => { host: string, port: number } | undefined
  /** Give up on the SOCKS handshake after this long (default 120 s; the dial's signal may end it sooner). */
  handshakeTimeoutMs?: number
  /** Close a connection that carried nothing for this long (default 10 minutes). */
  inactivityTimeoutMs?: number
  /** Also dial /ip4 and /ip6 TCP addresses directly (tests and LAN set-ups only). */
  direct?: boolean
}

export interface TorTransportComponents {
  logger: ComponentLogger
}

/** Tor is not running or not ready: there is no SOCKS endpoint to dial through. */
export class TorUnavailableError extends Error {
  override name = 'TorUnavailableError'
}

/** Tor could not open the stream; `code` is the SOCKS reply code when tor sent one. */
export class TorDialError extends Error {
  override name = 'TorDialError'
  constructor (message: string, readonly code: number | undefined, readonly transient: boolean) {
    super(message)
  }
}

/** `{ host: '<56 chars>.onion', port }` of an /onion3 multiaddr, or undefined for any other. */
export function onionTarget (ma: Multiaddr): { host: string, port: number } | undefined {
  const first = ma.getComponents()[0]
  if (first?.name !== 'onion3' || first.value === undefined) return undefined
  const m = /^([a-z2-7]{56}):(\d{1,5})$/.exec(first.value)
  if (m === null) return undefined
  const port = Number(m[2])
  if (port < 1 || port > 65535) return undefined
  return { host: `${m[1]}.onion`, port }
}

/** `{ host, port }` of an `/ip4/<a>/tcp/<p>` or `/ip6/<a>/tcp/<p>` multiaddr (optionally /p2p/<id>), or undefined. */
export function tcpTarget (ma: Multiaddr): { host: string, port: number } | undefined {
  const [ip, tcp, ...rest] = ma.getComponents()
  if ((ip?.name !== 'ip4' && ip?.name !== 'ip6') || ip.value === undefined || tcp?.name !== 'tcp' || tcp.value === undefined) return undefined
  if (rest.some((c) => c.name !== 'p2p')) return undefined
  const port = Number(tcp.value)
  return Number.isInteger(port) && port >= 0 && port <= 65535 ? { host: ip.value, port } : undefined
}

export function torTransport (init: TorTransportInit): (components: TorTransportComponents) => Transport {
  return (components) => new TorTransport(init, components)
}

class TorTransport implements Transport {
  readonly [transportSymbol] = true as const
  readonly [Symbol.toStringTag] = 'smtorp/tor'
  readonly [serviceCapabilities] = ['@libp2p/transport']
  readonly #init: TorTransportInit
  readonly #log: Logger
  readonly #components: TorTransportComponents

  constructor (init: TorTransportInit, components: TorTransportComponents) {
    this.#init = init
    this.#components = components
    this.#log = components.logger.forComponent('smtorp:friends:tor-transport')
  }

  dialFilter = (multiaddrs: Multiaddr[]): Multiaddr[] => multiaddrs.filter((ma) => onionTarget(ma) !== undefined || (this.#init.direct === true && tcpTarget(ma) !== undefined))

  // Inbound connections arrive from tor (or, when direct, from friends on the LAN) on a TCP port.
  listenFilter = (multiaddrs: Multiaddr[]): Multiaddr[] => multiaddrs.filter((ma) => tcpTarget(ma) !== undefined)

  createListener (options: CreateListenerOptions): Listener {
    return new SocketListener(options.upgrader, this.#init.inactivityTimeoutMs ?? 10 * 60_000, this.#components.logger)
  }

  async dial (ma: Multiaddr, options: DialTransportOptions): Promise<Connection> {
    const onion = onionTarget(ma)
    const direct = this.#init.direct === true ? tcpTarget(ma) : undefined
    if (onion === undefined && direct === undefined) throw new TorDialError(`${ma.toString()} is not an /onion3 address`, undefined, false)
    const { socket, handOver } = onion !== undefined ? await this.#openThroughTor(onion, options.signal) : await openDirect(direct!, options.signal)
    const maConn = new SocketConnection({
      socket,
      remoteAddr: ma,
      direction: 'outbound',
      inactivityTimeout: this.#init.inactivityTimeoutMs ?? 10 * 60_000,
      log: this.#components.logger.forComponent('smtorp:friends:tor-transport:connection')
    })
    handOver(maConn)
    try {
      this.#log('connected to %s', onion !== undefined ? `${onion.host} through tor` : ma.toString())
      return await options.upgrader.upgradeOutbound(maConn, options)
    } catch (err) {
      maConn.abort(err as Error)
      throw err
    }
  }

  /**
   * A socket to tor's SOCKS port on which tor has connected us to the onion's port. Bytes
   * that arrived right behind tor's reply are held until `handOver` passes them on.
   */
  async #openThroughTor (target: { host: string, port: number }, signal: AbortSignal): Promise<{ socket: Socket, handOver: (to: SocketConnection) => void }> {
    signal.throwIfAborted()
    const proxy = this.#init.socks()
    if (proxy === undefined) throw new TorUnavailableError(`Tor is not available (no SOCKS port yet), so ${target.host} cannot be reached`)
    const socket = connect({ host: proxy.host, port: proxy.port, noDelay: true })
    // Everything tor sends during the handshake, read alongside the socks package: that
    // package drops tor's extended reply codes (0xF0...), and we need them for the message.
    let received = Buffer.alloc(0)
    const tap = (chunk: Buffer): void => { if (received.length < 1024) received = Buffer.concat([received, chunk]) }
    // The socks package re-emits bytes that followed its reply once, synchronously, as it
    // finishes: catch them here until the connection object listens.
    const early: Buffer[] = []
    const hold = (chunk: Buffer): void => { early.push(chunk) }
    const ignoreError = (): void => {}
    const onAbort = (): void => { socket.destroy() }
    signal.addEventListener('abort', onAbort, { once: true })
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve)
        socket.once('error', (err) => { reject(new TorDialError(`cannot reach Tor's SOCKS port ${proxy.host}:${proxy.port}: ${err.message}`, undefined, true)) })
        socket.once('close', () => { reject(new AbortError('the dial was aborted')) })
      })
      socket.removeAllListeners('error').removeAllListeners('close')
      socket.on('data', tap)
      const isolation = `smtorp-friends-${randomBytes(8).toString('hex')}`
      const options: SocksClientOptions = {
        proxy: { host: proxy.host, port: proxy.port, type: 5, userId: isolation, password: 'x' },
        command: 'connect',
        // A host name: tor resolves the onion (SOCKS5 ATYP 3).
        destination: { host: target.host, port: target.port },
        existing_socket: socket,
        timeout: this.#init.handshakeTimeoutMs ?? 120_000
      }
      const client = new SocksClient(options)
      await new Promise<void>((resolve, reject) => {
        client.once('established', () => { resolve() })
        client.once('error', (err: Error) => { reject(err) })
        client.connect(socket)
        // Runs before the socks package's own 'established' listener, which it added in connect().
        client.prependOnceListener('established', () => {
          socket.off('data', tap)
          socket.on('data', hold)
          socket.on('error', ignoreError)
        })
      }).catch((err: Error) => {
        if (signal.aborted) throw new AbortError(`the dial to ${target.host}:${target.port} was aborted`)
        throw this.#socksFailure(target, received, err)
      })
      const handOver = (to: SocketConnection): void => {
        socket.off('data', hold)
        socket.off('error', ignoreError)
        for (const chunk of early) to.onData(chunk)
      }
      return { socket, handOver }
    } catch (err) {
      socket.destroy()
      throw err
    } finally {
      signal.removeEventListener('abort', onAbort)
    }
  }

  /** Turn a failed handshake into a sentence, with tor's reply code if it sent one. */
  #socksFailure (target: { host: string, port: number }, received: Buffer, err: Error): TorDialError {
    // RFC 1928: the method reply (2 bytes); RFC 1929: the username/password reply (2 bytes)
    // if the proxy chose that method (tor does); then the CONNECT reply: VER REP RSV ATYP ...
    const offset = received[1] === 0x02 ? 4 : 2
    const reply = received.subarray(offset)
    if (received.length >= offset && socksConnectReplyLength(reply) > 0 && reply[0] === 5 && reply[1] !== 0) {
      const code = reply[1]!
      const known = SOCKS_REPLIES[code]
      return new TorDialError(`Tor could not connect to ${target.host}:${target.port}: ${known?.text ?? `SOCKS error ${code}`}`, code, known?.transient ?? true)
    }
    return new TorDialError(`Tor could not connect to ${target.host}:${target.port}: ${err.message}`, undefined, true)
  }
}

/** A plain TCP connection to a friend on the LAN (`direct` only). */
async function openDirect (target: { host: string, port: number }, signal: AbortSignal): Promise<{ socket: Socket, handOver: (to: SocketConnection) => void }> {
  signal.throwIfAborted()
  const socket = connect({ host: target.host, port: target.port, noDelay: true })
  const onAbort = (): void => { socket.destroy() }
  signal.addEventListener('abort', onAbort, { once: true })
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve)
      socket.once('error', (err) => { reject(new TorDialError(`cannot connect to ${target.host}:${target.port}: ${err.message}`, undefined, true)) })
      socket.once('close', () => { reject(new AbortError('the dial was aborted')) })
    })
    socket.removeAllListeners('error').removeAllListeners('close')
    return { socket, handOver: () => {} }
  } catch (err) {
    socket.destroy()
    throw err
  } finally {
    signal.removeEventListener('abort', onAbort)
  }
}

/** Accepts TCP connections (from the node's tor, behind its onion) and upgrades them. */
class SocketListener extends TypedEventEmitter<ListenerEvents> implements Listener {
  readonly #upgrader: Upgrader
  readonly #inactivityTimeoutMs: number
  readonly #logger: ComponentLogger
  readonly #sockets = new Set<Socket>()
  readonly #shutdown = new AbortController()
  #server: Server | undefined
  #address: Multiaddr | undefined

  constructor (upgrader: Upgrader, inactivityTimeoutMs: number, logger: ComponentLogger) {
    super()
    this.#upgrader = upgrader
    this.#inactivityTimeoutMs = inactivityTimeoutMs
    this.#logger = logger
  }

  async listen (ma: Multiaddr): Promise<void> {
    const target = tcpTarget(ma)
    if (target === undefined) throw new Error(`cannot listen on ${ma.toString()}: not a TCP address`)
    const server = this.#server = createServer({ noDelay: true }, (socket) => { this.#accept(socket) })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(target.port, target.host, () => { server.off('error', reject); resolve() })
    })
    // Closed while it was starting: let the port go.
    if (this.#shutdown.signal.aborted) { server.close(); return }
    server.on('error', (err) => { this.safeDispatchEvent('error', { detail: err }) })
    const address = server.address()
    if (address === null || typeof address === 'string') throw new Error('the listener has no TCP address')
    this.#address = multiaddr(`/${address.family === 'IPv6' ? 'ip6' : 'ip4'}/${address.address}/tcp/${address.port}`)
    this.safeDispatchEvent('listening')
  }

  getAddrs (): Multiaddr[] {
    return this.#address !== undefined ? [this.#address] : []
  }

  updateAnnounceAddrs (): void {}

  async close (): Promise<void> {
    this.#shutdown.abort()
    const server = this.#server
    this.#server = undefined
    this.#address = undefined
    for (const socket of this.#sockets) socket.destroy()
    if (server?.listening === true) await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
    this.safeDispatchEvent('close')
  }

  #accept (socket: Socket): void {
    if (this.#shutdown.signal.aborted) { socket.destroy(); return }
    const family = socket.remoteFamily === 'IPv6' ? 'ip6' : 'ip4'
    const maConn = new SocketConnection({
      socket,
      remoteAddr: multiaddr(`/${family}/${socket.remoteAddress ?? '127.0.0.1'}/tcp/${socket.remotePort ?? 0}`),
      direction: 'inbound',
      inactivityTimeout: this.#inactivityTimeoutMs,
      log: this.#logger.forComponent('smtorp:friends:tor-transport:connection')
    })
    this.#sockets.add(socket)
    socket.once('close', () => { this.#sockets.delete(socket) })
    this.#upgrader.upgradeInbound(maConn, { signal: this.#shutdown.signal }).catch((err: Error) => { maConn.abort(err) })
  }
}

/**
 * A connected socket as libp2p's MultiaddrConnection. What libp2p writes in one turn of the
 * event loop leaves as one write (cork, then uncork in setImmediate): see the top of this file.
 */
export class SocketConnection extends AbstractMultiaddrConnection {
  readonly #socket: Socket

  constructor (init: AbstractMultiaddrConnectionInit & { socket: Socket }) {
    super(init)
    const socket = this.#socket = init.socket
    socket.on('data', (chunk: Buffer) => { this.onData(chunk) })
    socket.on('error', (err) => { this.abort(err) })
    socket.setTimeout(init.inactivityTimeout ?? 0)
    socket.once('timeout', () => { this.abort(new Error('the connection through tor was idle too long')) })
    // The peer or tor closed the stream.
    socket.once('end', () => { this.onTransportClosed() })
    socket.once('close', (hadError) => {
      if (hadError) this.abort(new Error('the connection through tor broke'))
      else this.onTransportClosed()
    })
    socket.on('drain', () => { this.safeDispatchEvent('drain') })
  }

  sendData (data: Parameters<AbstractMultiaddrConnection['sendData']>[0]): SendResult {
    let sentBytes = 0
    let canSendMore = true
    if (this.#socket.writableCorked === 0) {
      this.#socket.cork()
      setImmediate(() => { this.#socket.uncork() })
    }
    for (const buf of data) {
      sentBytes += buf.byteLength
      canSendMore = this.#socket.write(buf)
      if (!canSendMore) break
    }
    return { sentBytes, canSendMore }
  }

  async sendClose (options?: AbortOptions): Promise<void> {
    if (this.#socket.destroyed) return
    this.#socket.destroySoon()
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => { this.#socket.destroy(); reject(new AbortError('closing was aborted')) }
      options?.signal?.addEventListener('abort', onAbort, { once: true })
      this.#socket.once('close', () => { options?.signal?.removeEventListener('abort', onAbort); resolve() })
    })
  }

  sendReset (): void {
    if (this.#socket.writableEnded) this.#socket.destroy()
    else this.#socket.resetAndDestroy()
  }

  sendPause (): void { this.#socket.pause() }

  sendResume (): void { this.#socket.resume() }
}
