// A SOCKS5 server for tests that must see what the node asks Tor for: it records each
// CONNECT (host, port, SOCKS username) and forwards it, to loopback destinations only.
import { createServer, connect, type Server, type AddressInfo } from 'node:net'

export interface SocksRequest { host: string, port: number, username?: string }

export async function startSocksRecorder (): Promise<{ port: number, requests: SocksRequest[], stop (): Promise<void> }> {
  const requests: SocksRequest[] = []
  const server: Server = createServer(client => {
    let buffer = Buffer.alloc(0)
    let stage: 'greeting' | 'auth' | 'request' = 'greeting'
    let username: string | undefined
    client.on('error', () => client.destroy())
    const onData = (chunk: Buffer): void => {
      buffer = Buffer.concat([buffer, chunk])
      if (stage === 'greeting' && buffer.length >= 2 && buffer.length >= 2 + buffer[1]!) {
        const methods = [...buffer.subarray(2, 2 + buffer[1]!)]
        buffer = buffer.subarray(2 + buffer[1]!)
        stage = methods.includes(2) ? 'auth' : 'request'
        client.write(Buffer.from([5, methods.includes(2) ? 2 : 0]))
      }
      if (stage === 'auth' && buffer.length >= 2) {
        const ulen = buffer[1]!
        if (buffer.length < 3 + ulen) return
        const plen = buffer[2 + ulen]!
        if (buffer.length < 3 + ulen + plen) return
        username = buffer.subarray(2, 2 + ulen).toString()
        buffer = buffer.subarray(3 + ulen + plen)
        stage = 'request'
        client.write(Buffer.from([1, 0]))
      }
      if (stage === 'request' && buffer.length >= 5 && buffer[3] === 3 && buffer.length >= 7 + buffer[4]!) {
        const host = buffer.subarray(5, 5 + buffer[4]!).toString()
        const port = buffer.readUInt16BE(5 + buffer[4]!)
        client.off('data', onData)
        requests.push({ host, port, ...(username !== undefined ? { username } : {}) })
        if (host !== '127.0.0.1' && host !== 'localhost') {
          client.end(Buffer.from([5, 2, 0, 1, 0, 0, 0, 0, 0, 0])) // not allowed: loopback only
          return
        }
        const upstream = connect({ host: '127.0.0.1', port }, () => {
          client.write(Buffer.from([5, 0, 0, 1, 127, 0, 0, 1, 0, 0]))
          upstream.pipe(client)
          client.pipe(upstream)
        })
        upstream.on('error', () => { client.destroy() })
      }
    }
    client.on('data', onData)
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', () => resolve()))
  return {
    port: (server.address() as AddressInfo).port,
    requests,
    async stop () { await new Promise<void>(resolve => server.close(() => resolve())) }
  }
}
