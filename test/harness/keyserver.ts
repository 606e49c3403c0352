// A tiny HKP keyserver for tests (draft-shaw-openpgp-hkp, "op=get"), on 127.0.0.1 port 0.
//
//   const ks = await startKeyserver()
//   ks.serve('bob@example.org', armoredPublicKey)
//   ks.misbehave('mallory@example.org', 'hang')
//   // GET /pks/lookup?op=get&options=mr&search=bob%40example.org -> 200 the armored key
//   ks.requests // what was asked, and from where
//
// It can also serve any other path (`servePath`), so a test can play a WKD server with it.
// Every request is recorded before it is answered, misbehaving ones included.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'

/** How the keyserver answers an address instead of serving its key. */
export type Misbehaviour =
  /** 200 with bytes that are no OpenPGP data at all. */
  | 'garbage'
  /** 200 with an endless body (stopped after 64 MiB or when the client goes away). */
  | 'huge'
  /** Read the request and never answer. */
  | 'hang'
  /** Any status code, empty body. */
  | { status: number }
  /** 302 to `location`. */
  | { redirect: string }

export interface KeyserverRequest {
  method: string
  /** Path and query as received. */
  path: string
  /** The `search` parameter of a /pks/lookup request, lowercased. */
  search: string | undefined
  remoteAddress: string
  headers: IncomingMessage['headers']
}

export interface TestKeyserver {
  port: number
  /** http://127.0.0.1:<port> */
  url: string
  /** Requests received, oldest first. */
  readonly requests: KeyserverRequest[]
  /** Serve `key` (armored text, or any bytes) for `address` (case-insensitive). */
  serve (address: string, key: string | Uint8Array): void
  /** Answer `address` badly; '*' applies to every address without its own entry. */
  misbehave (address: string, how: Misbehaviour): void
  /** Serve `body` at an exact path (for example a WKD path), whatever the query. */
  servePath (path: string, body: string | Uint8Array, contentType?: string): void
  /** Bytes written for 'huge' answers, and whether the client hung up before the end. */
  readonly hugeStats: { written: number, clientGone: boolean }
  stop (): Promise<void>
}

const HUGE_LIMIT = 64 * 1024 * 1024

export async function startKeyserver (): Promise<TestKeyserver> {
  const keys = new Map<string, string | Uint8Array>()
  const misbehaviour = new Map<string, Misbehaviour>()
  const paths = new Map<string, { body: string | Uint8Array, contentType: string }>()
  const requests: KeyserverRequest[] = []
  const sockets = new Set<Socket>()
  const hugeStats = { written: 0, clientGone: false }

  function misbehaveWith (how: Misbehaviour, res: ServerResponse): void {
    if (how === 'hang') return // the socket is destroyed on stop()
    if (how === 'garbage') {
      res.writeHead(200, { 'content-type': 'application/pgp-keys' })
      res.end('<html><body>This is not a key. \u0000\u00ff\u0013 -----BEGIN PGP PUBLIC KEY BLOCK----- nonsense</body></html>')
      return
    }
    if (how === 'huge') {
      res.writeHead(200, { 'content-type': 'application/pgp-keys' })
      const chunk = Buffer.alloc(64 * 1024, 'A')
      res.on('close', () => { if (!res.writableFinished) hugeStats.clientGone = true })
      const pump = (): void => {
        while (!res.destroyed && hugeStats.written < HUGE_LIMIT) {
          hugeStats.written += chunk.length
          if (!res.write(chunk)) { res.once('drain', pump); return }
        }
        if (!res.destroyed) res.end()
      }
      pump()
      return
    }
    if ('status' in how) {
      res.writeHead(how.status)
      res.end()
      return
    }
    res.writeHead(302, { location: how.redirect })
    res.end()
  }

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://keyserver.invalid')
    const search = url.searchParams.get('search')?.toLowerCase() ?? undefined
    requests.push({ method: req.method ?? '', path: req.url ?? '', search, remoteAddress: req.socket.remoteAddress ?? '', headers: req.headers })
    const fixed = paths.get(url.pathname)
    if (fixed !== undefined) {
      res.writeHead(200, { 'content-type': fixed.contentType })
      res.end(fixed.body)
      return
    }
    if (url.pathname !== '/pks/lookup' || url.searchParams.get('op') !== 'get' || search === undefined) {
      res.writeHead(url.pathname === '/pks/lookup' ? 501 : 404)
      res.end()
      return
    }
    const how = misbehaviour.get(search) ?? (keys.has(search) ? undefined : misbehaviour.get('*'))
    if (how !== undefined) { misbehaveWith(how, res); return }
    const key = keys.get(search)
    if (key === undefined) {
      res.writeHead(404, { 'content-type': 'text/plain' })
      res.end('No results found\n')
      return
    }
    res.writeHead(200, { 'content-type': 'application/pgp-keys' })
    res.end(key)
  })
  server.on('connection', (socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('keyserver has no port')

  return {
    port: address.port,
    url: `http://127.0.0.1:${address.port}`,
    requests,
    hugeStats,
    serve (addr, key) { keys.set(addr.toLowerCase(), key) },
    misbehave (addr, how) { misbehaviour.set(addr.toLowerCase(), how) },
    servePath (path, body, contentType = 'application/octet-stream') { paths.set(path, { body, contentType }) },
    async stop () {
      for (const socket of sockets) socket.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
