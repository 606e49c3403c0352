// Open a TCP stream through Tor's SOCKS port to host:port (onion or DNS name; Tor resolves).
import { connect, type Socket } from 'node:net'
import { SOCKS_REPLIES, socksAuthRequest, socksConnectReplyLength, socksConnectRequest, socksGreeting } from '../../protocol/socks5.ts'

export class SocksError extends Error {
  override name = 'SocksError'
  constructor (message: string, readonly code: number | undefined, readonly transient: boolean) {
    super(message)
  }
}

export interface SocksTarget {
  proxyHost: string
  proxyPort: number
  host: string
  port: number
  /** Tor isolates streams with different SOCKS credentials onto different circuits. */
  isolation?: string
  timeoutMs: number
}

export async function connectViaSocks (target: SocksTarget): Promise<Socket> {
  // No Nagle: SMTP's small pipelined writes must not wait for delayed ACKs.
  const socket = connect({ host: target.proxyHost, port: target.proxyPort, noDelay: true })
  let buffered = Buffer.alloc(0)
  let waiter: (() => void) | undefined
  let failure: Error | undefined
  const onData = (chunk: Buffer): void => { buffered = Buffer.concat([buffered, chunk]); waiter?.() }
  const onError = (err: Error): void => { failure = new SocksError(`cannot reach Tor's SOCKS port ${target.proxyHost}:${target.proxyPort}: ${err.message}`, undefined, true); waiter?.() }
  const onClose = (): void => { failure ??= new SocksError('Tor closed the SOCKS connection', undefined, true); waiter?.() }
  socket.on('data', onData)
  socket.on('error', onError)
  socket.on('close', onClose)
  const timer = setTimeout(() => { failure = new SocksError(`no connection to ${target.host}:${target.port} through Tor within ${target.timeoutMs} ms`, undefined, true); socket.destroy(); waiter?.() }, target.timeoutMs)

  async function read (needed: (data: Buffer) => number): Promise<Buffer> {
    for (;;) {
      if (failure !== undefined) throw failure
      const length = needed(buffered)
      if (length > 0) {
        const out = buffered.subarray(0, length)
        buffered = buffered.subarray(length)
        return out
      }
      await new Promise<void>(resolve => { waiter = resolve })
      waiter = undefined
    }
  }

  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve)
      socket.once('error', reject)
    }).catch(() => { throw failure ?? new SocksError('cannot reach Tor\'s SOCKS port', undefined, true) })
    const withAuth = target.isolation !== undefined
    socket.write(socksGreeting(withAuth))
    const method = await read(d => d.length >= 2 ? 2 : 0)
    if (method[0] !== 5 || method[1] !== (withAuth ? 0x02 : 0x00)) throw new SocksError('the SOCKS server refused our authentication method', undefined, false)
    if (withAuth) {
      socket.write(socksAuthRequest(target.isolation!, 'x'))
      const auth = await read(d => d.length >= 2 ? 2 : 0)
      if (auth[1] !== 0) throw new SocksError('the SOCKS server refused the isolation credentials', undefined, false)
    }
    socket.write(socksConnectRequest(target.host, target.port))
    const reply = await read(socksConnectReplyLength)
    const code = reply[1]!
    if (reply[0] !== 5) throw new SocksError('malformed SOCKS reply', undefined, true)
    if (code !== 0) {
      const known = SOCKS_REPLIES[code]
      throw new SocksError(`Tor could not connect to ${target.host}:${target.port}: ${known?.text ?? `SOCKS error ${code}`}`, code, known?.transient ?? true)
    }
    socket.off('data', onData)
    socket.off('error', onError)
    socket.off('close', onClose)
    if (buffered.length > 0) socket.unshift(buffered)
    return socket
  } catch (err) {
    socket.destroy()
    throw err
  } finally {
    clearTimeout(timer)
  }
}
