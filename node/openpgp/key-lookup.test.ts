// Key lookup without Tor: input validation, and the whole lookup through a fake SOCKS5
// proxy (in this file) that records what it was asked and carries the stream to the test
// keyserver. The fake proxy stands where Tor's SOCKS port would, so these tests see exactly
// what tor would be told; test/key-lookup.test.ts runs the same lookups over real Tor.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, connect, type Server, type Socket } from 'node:net'
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https'
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { rootCertificates, setDefaultCACertificates } from 'node:tls'
import { generateKey, revokeKey, readKey, readKeys, armor, enums, type PrivateKey, type PublicKey } from 'openpgp'
import { lookupKey, keyserverBaseUrl, KeyLookupError, type KeyLookupOptions } from './key-lookup.ts'
import { wkdUrls } from '../../protocol/wkd.ts'
import { startKeyserver, type TestKeyserver } from '../../test/harness/keyserver.ts'

// ---------------------------------------------------------------------------------
// A fake SOCKS5 proxy (RFC 1928, username/password auth RFC 1929)

interface SocksRequest {
  username: string | undefined
  /** RFC 1928 5: 1 IPv4, 3 domain name, 4 IPv6. */
  addressType: number
  host: string
  port: number
}

interface FakeSocks {
  port: number
  requests: SocksRequest[]
  stop (): Promise<void>
}

/** `route` says where a CONNECT goes: a local port, or a SOCKS reply code to refuse with. */
async function startFakeSocks (route: (r: SocksRequest) => { port: number } | { reply: number }): Promise<FakeSocks> {
  const requests: SocksRequest[] = []
  const sockets = new Set<Socket>()
  const server: Server = createServer((client) => {
    sockets.add(client)
    client.on('close', () => sockets.delete(client))
    client.on('error', () => {})
    let buffer = Buffer.alloc(0)
    let waiting: (() => void) | undefined
    const onData = (chunk: Buffer): void => { buffer = Buffer.concat([buffer, chunk]); waiting?.() }
    client.on('data', onData)
    client.on('close', () => waiting?.())
    const take = async (n: number): Promise<Buffer> => {
      while (buffer.length < n) {
        if (client.destroyed) throw new Error('closed')
        await new Promise<void>((resolve) => { waiting = resolve })
      }
      const out = buffer.subarray(0, n)
      buffer = buffer.subarray(n)
      return out
    }
    void (async () => {
      const [, nMethods] = await take(2)
      const methods = [...await take(nMethods!)]
      let username: string | undefined
      if (methods.includes(2)) {
        client.write(Buffer.from([5, 2]))
        const [, ulen] = await take(2)
        username = (await take(ulen!)).toString()
        const [plen] = await take(1)
        await take(plen!)
        client.write(Buffer.from([1, 0]))
      } else {
        client.write(Buffer.from([5, 0]))
      }
      const [, , , addressType] = await take(4)
      let host: string
      if (addressType === 3) host = (await take((await take(1))[0]!)).toString()
      else if (addressType === 1) host = [...await take(4)].join('.')
      else host = (await take(16)).toString('hex')
      const port = (await take(2)).readUInt16BE(0)
      const request = { username, addressType: addressType!, host, port }
      requests.push(request)
      const where = route(request)
      if ('reply' in where) {
        client.end(Buffer.from([5, where.reply, 0, 1, 0, 0, 0, 0, 0, 0]))
        return
      }
      const upstream = connect({ host: '127.0.0.1', port: where.port }, () => {
        client.off('data', onData)
        client.write(Buffer.from([5, 0, 0, 1, 127, 0, 0, 1, 0, 0]))
        if (buffer.length > 0) upstream.write(buffer)
        client.pipe(upstream).pipe(client)
      })
      sockets.add(upstream)
      upstream.on('close', () => { sockets.delete(upstream); client.destroy() })
      upstream.on('error', () => { client.destroy() })
      client.on('close', () => upstream.destroy())
    })().catch(() => { client.destroy() })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as { port: number }).port,
    requests,
    async stop () {
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

// ---------------------------------------------------------------------------------
// Keys

async function newKey (emails: string[], extra: { date?: Date, keyExpirationTime?: number } = {}): Promise<{ privateKey: PrivateKey, publicKey: PublicKey }> {
  const { privateKey, publicKey } = await generateKey({ type: 'ecc', curve: 'curve25519Legacy', userIDs: emails.map((email) => ({ email })), format: 'object', ...extra })
  return { privateKey, publicKey }
}

function fingerprintOf (key: PublicKey): string { return key.getFingerprint().toUpperCase() }

// ---------------------------------------------------------------------------------

describe('key lookup: input validation', () => {
  const socks = (): { host: string, port: number } => ({ host: '127.0.0.1', port: 1 })

  it('normalises keyserver base URLs', () => {
    const table: Array<[string, string]> = [
      ['http://keys.example.org', 'http://keys.example.org'],
      ['https://keys.example.org/', 'https://keys.example.org'],
      ['http://KEYS.Example.org:11371', 'http://keys.example.org:11371'],
      ['http://abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrstuvwx.onion/prefix/', 'http://abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrstuvwx.onion/prefix'],
      [' https://keys.example.org:443 ', 'https://keys.example.org'],
    ]
    for (const [input, expected] of table) assert.equal(keyserverBaseUrl(input), expected, input)
  })

  it('refuses keyserver URLs that are not plain http(s) without credentials', () => {
    const table: Array<[string, RegExp]> = [
      ['keys.example.org', /not a URL/],
      ['hkp://keys.example.org', /only http and https/],
      ['hkps://keys.example.org', /only http and https/],
      ['ftp://keys.example.org', /only http and https/],
      ['socks5://127.0.0.1:9050', /only http and https/],
      ['http://user:secret@keys.example.org', /user name or password/],
      ['http://user@keys.example.org', /user name or password/],
      ['http://keys.example.org/?op=get', /query or fragment/],
      ['http://keys.example.org/#x', /query or fragment/],
    ]
    for (const [input, expected] of table) {
      assert.throws(() => keyserverBaseUrl(input), (err: Error) => err instanceof KeyLookupError && err.name === 'KeyLookupError' && expected.test(err.message), input)
    }
  })

  it('refuses bad addresses, keyservers and limits with KeyLookupError before any request', async () => {
    const base: KeyLookupOptions = { socks, keyservers: [], wkd: true }
    for (const address of ['', 'bob', '@example.org', 'bob@', 'bob@localhost', 'bob@[127.0.0.1]', 'a@b@example.org', 'b\u00f6b@example.org', 'bob@example.org\r\nHost: evil']) {
      await assert.rejects(lookupKey(address, base), KeyLookupError, JSON.stringify(address))
    }
    await assert.rejects(lookupKey('bob@example.org', { ...base, keyservers: ['ftp://keys.example.org'] }), KeyLookupError)
    await assert.rejects(lookupKey('bob@example.org', { ...base, timeoutMs: 0 }), KeyLookupError)
    await assert.rejects(lookupKey('bob@example.org', { ...base, maxBytes: -1 }), KeyLookupError)
  })

  it('says so when no source is configured', async () => {
    const result = await lookupKey('bob@example.org', { socks, keyservers: [], wkd: false })
    assert.deepEqual(result, { found: [], problems: ['no key source is configured (neither WKD nor a keyserver)'] })
  })

  it('reports an unreachable SOCKS port as a problem, not a throw', async () => {
    const result = await lookupKey('bob@example.org', { socks, keyservers: ['http://keys.example.org'], wkd: false, timeoutMs: 5000 })
    assert.equal(result.found.length, 0)
    assert.equal(result.problems.length, 1)
    assert.match(result.problems[0]!, /^keyserver http:\/\/keys\.example\.org: Tor's SOCKS port is not reachable/)
  })
})

describe('key lookup through a SOCKS proxy', { timeout: 60_000 }, () => {
  let keyserver: TestKeyserver
  let proxy: FakeSocks
  let bob: { privateKey: PrivateKey, publicKey: PublicKey }
  const KS = 'http://keys.example.org:11371'
  let options: KeyLookupOptions

  before(async () => {
    keyserver = await startKeyserver()
    proxy = await startFakeSocks(() => ({ port: keyserver.port }))
    bob = await newKey(['bob@example.org'])
    keyserver.serve('bob@example.org', bob.publicKey.armor())
    options = { socks: () => ({ host: '127.0.0.1', port: proxy.port }), keyservers: [KS], wkd: false, timeoutMs: 10_000 }
  })
  after(async () => {
    await proxy?.stop()
    await keyserver?.stop()
  })

  it('finds bob\'s key, asking the proxy for the keyserver by name with a fresh SOCKS user name per lookup', async () => {
    const asked = proxy.requests.length
    const result = await lookupKey('Bob@Example.org', options)
    assert.deepEqual(result.problems, [])
    assert.equal(result.found.length, 1)
    const found = result.found[0]!
    assert.equal(found.source, KS)
    assert.equal(found.fingerprint, fingerprintOf(bob.publicKey))
    assert.match(found.fingerprint, /^[0-9A-F]{40}$/)
    assert.deepEqual(found.userIds, ['<bob@example.org>'])
    assert.equal(found.created.getTime(), bob.publicKey.getCreationTime().getTime())
    const offered = await readKey({ armoredKey: found.armoredPublicKey })
    assert.equal(offered.isPrivate(), false)
    assert.equal(offered.getFingerprint().toUpperCase(), found.fingerprint)

    const second = await lookupKey('bob@example.org', options)
    assert.equal(second.found.length, 1)
    const requests = proxy.requests.slice(asked)
    assert.equal(requests.length, 2)
    for (const r of requests) {
      // socks5h: the name goes to the proxy (tor), never to the local resolver.
      assert.deepEqual({ addressType: r.addressType, host: r.host, port: r.port }, { addressType: 3, host: 'keys.example.org', port: 11371 })
      assert.match(r.username ?? '', /^smtorp-key-lookup-[0-9a-f]{24}$/)
    }
    assert.notEqual(requests[0]!.username, requests[1]!.username, 'each lookup is isolated on its own circuit')
    const last = keyserver.requests.at(-1)!
    assert.equal(last.path, '/pks/lookup?op=get&options=mr&search=bob%40example.org')
    assert.equal(last.headers['user-agent'], undefined, 'nothing that tells one node from another')
  })

  it('an unknown address: no key', async () => {
    const result = await lookupKey('nobody@example.org', options)
    assert.deepEqual(result, { found: [], problems: [`keyserver ${KS}: no key for this address`] })
  })

  it('drops keys without a user id for the address, secret keys, revoked and expired keys', async () => {
    const stranger = await newKey(['stranger@example.net'])
    keyserver.serve('wrong-uid@example.org', stranger.publicKey.armor())
    const secret = await newKey(['secret@example.org'])
    keyserver.serve('secret@example.org', secret.privateKey.armor())
    const revoked = await newKey(['revoked@example.org'])
    const { publicKey: revokedKey } = await revokeKey({ key: revoked.privateKey, format: 'object' })
    keyserver.serve('revoked@example.org', revokedKey.armor())
    const expired = await newKey(['expired@example.org'], { date: new Date(Date.now() - 3600_000), keyExpirationTime: 60 })
    keyserver.serve('expired@example.org', expired.publicKey.armor())

    const table: Array<[string, RegExp]> = [
      ['wrong-uid@example.org', /has no user id for this address; it was dropped$/],
      ['secret@example.org', /is a secret key; it was dropped$/],
      ['revoked@example.org', /is not usable \(Primary key is revoked\); it was dropped$/],
      ['expired@example.org', /is not usable \(Primary key is expired\); it was dropped$/],
    ]
    for (const [address, expected] of table) {
      const result = await lookupKey(address, options)
      assert.deepEqual(result.found, [], address)
      assert.equal(result.problems.length, 1, `${address}: ${result.problems.join(' | ')}`)
      assert.match(result.problems[0]!, expected, address)
      assert.ok(result.problems[0]!.startsWith(`keyserver ${KS}: key `), result.problems[0]!)
    }
  })

  it('from an answer with several keys keeps only the one for the address, with only its user id', async () => {
    const carol = await newKey(['carol@example.org', 'carol@elsewhere.net'])
    const other = await newKey(['mallory@example.org'])
    const both = new Uint8Array([...carol.publicKey.write(), ...other.publicKey.write()])
    keyserver.serve('carol@example.org', armor(enums.armor.publicKey, both))
    const result = await lookupKey('carol@example.org', options)
    assert.equal(result.found.length, 1)
    assert.equal(result.found[0]!.fingerprint, fingerprintOf(carol.publicKey))
    assert.deepEqual(result.found[0]!.userIds, ['<carol@example.org>'])
    const offered = await readKeys({ armoredKeys: result.found[0]!.armoredPublicKey })
    assert.equal(offered.length, 1)
    assert.deepEqual(offered[0]!.getUserIDs(), ['<carol@example.org>'], 'the other user id is not offered')
    assert.deepEqual(result.problems, [`keyserver ${KS}: key ${fingerprintOf(other.publicKey)} has no user id for this address; it was dropped`])
  })

  it('garbage, a huge body, a hang, an error status and a redirect away become problems', async () => {
    keyserver.misbehave('garbage@example.org', 'garbage')
    keyserver.misbehave('huge@example.org', 'huge')
    keyserver.misbehave('hang@example.org', 'hang')
    keyserver.misbehave('broken@example.org', { status: 503 })
    keyserver.misbehave('away@example.org', { redirect: 'http://tracker.example.net/pks/lookup?op=get&search=away%40example.org' })
    const started = Date.now()
    const [garbage, huge, hang, broken, away] = await Promise.all([
      lookupKey('garbage@example.org', options),
      lookupKey('huge@example.org', { ...options, maxBytes: 100_000 }),
      lookupKey('hang@example.org', { ...options, timeoutMs: 1500 }),
      lookupKey('broken@example.org', options),
      lookupKey('away@example.org', options),
    ])
    assert.match(garbage.problems.join(), /^keyserver \S+: the answer is not a readable OpenPGP key \(/)
    assert.deepEqual(huge.problems, [`keyserver ${KS}: the answer is larger than 100000 bytes; it was cut off`])
    assert.ok(keyserver.hugeStats.clientGone, 'the client hung up on the huge answer')
    assert.ok(keyserver.hugeStats.written < 16 * 1024 * 1024, `stopped early (${keyserver.hugeStats.written} bytes written)`)
    assert.deepEqual(hang.problems, [`keyserver ${KS}: timed out after 1500 ms`])
    assert.deepEqual(broken.problems, [`keyserver ${KS}: the server answered HTTP 503`])
    assert.match(away.problems.join(), /redirected to http:\/\/tracker\.example\.net, which was not followed/)
    assert.ok(!proxy.requests.some((r) => r.host === 'tracker.example.net'), 'the other host was never contacted')
    for (const r of [garbage, huge, hang, broken, away]) assert.deepEqual(r.found, [])
    assert.ok(Date.now() - started < 8000)
  })

  it('follows a redirect within the same keyserver', async () => {
    keyserver.misbehave('moved@example.org', { redirect: '/pks/lookup?op=get&options=mr&search=bob%40example.org' })
    const result = await lookupKey('moved@example.org', options)
    // bob's key is served, but not for moved@: the redirect was followed and the key dropped.
    assert.deepEqual(result.problems, [`keyserver ${KS}: key ${fingerprintOf(bob.publicKey)} has no user id for this address; it was dropped`])
  })

  it('reports a SOCKS refusal (as tor gives for an unreachable host) as a problem', async () => {
    const refusing = await startFakeSocks(() => ({ reply: 4 }))
    try {
      const result = await lookupKey('bob@example.org', { ...options, socks: () => ({ host: '127.0.0.1', port: refusing.port }) })
      assert.equal(result.found.length, 0)
      assert.match(result.problems.join(), /^keyserver \S+: Tor could not connect to keys\.example\.org:11371 \(/)
    } finally {
      await refusing.stop()
    }
  })

  it('asks every keyserver, each on its own circuit, and reports each one\'s outcome', async () => {
    const other = 'http://other-keys.example.net'
    const asked = proxy.requests.length
    const result = await lookupKey('bob@example.org', { ...options, keyservers: [KS, other, KS + '/'] })
    assert.deepEqual(result.found.map((f) => f.source).sort(), [KS, other].sort())
    const requests = proxy.requests.slice(asked)
    assert.equal(requests.length, 2, 'a keyserver listed twice is asked once')
    assert.notEqual(requests[0]!.username, requests[1]!.username)
  })
})

describe('key lookup in a Web Key Directory (https, through a SOCKS proxy)', { timeout: 60_000 }, () => {
  let dir: string
  let https: HttpsServer
  let httpsPort: number
  let proxy: FakeSocks
  const served = new Map<string, Uint8Array | string>()
  const seen: string[] = []

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'smtorp-wkd-'))
    // A certificate for the WKD hosts, trusted for this test process only.
    await promisify(execFile)('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
      '-subj', '/CN=example.org', '-addext', 'subjectAltName=DNS:example.org,DNS:openpgpkey.example.org,DNS:example.net',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')])
    const cert = await readFile(join(dir, 'cert.pem'), 'utf8')
    setDefaultCACertificates([...rootCertificates, cert])
    https = createHttpsServer({ key: await readFile(join(dir, 'key.pem')), cert }, (req, res) => {
      const host = req.headers.host ?? ''
      seen.push(`${host}${req.url ?? ''}`)
      const body = served.get(`${host}${new URL(req.url ?? '/', 'https://x').pathname}`)
      if (body === undefined) { res.writeHead(404); res.end(); return }
      res.writeHead(200, { 'content-type': 'application/octet-stream' })
      res.end(body)
    })
    await new Promise<void>((resolve) => https.listen(0, '127.0.0.1', resolve))
    httpsPort = (https.address() as { port: number }).port
    // example.org has an openpgpkey subdomain; example.net has none (tor would answer "host unreachable").
    proxy = await startFakeSocks((r) => r.host === 'openpgpkey.example.net' ? { reply: 4 } : { port: httpsPort })
  })
  after(async () => {
    await proxy?.stop()
    https?.close()
    https?.closeAllConnections()
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  })

  function where (url: string): string {
    const u = new URL(url)
    return `${u.host}${u.pathname}`
  }

  it('finds a binary key by the advanced method', async () => {
    const dave = await newKey(['dave@example.org'])
    served.set(where(wkdUrls('dave@example.org').advanced), dave.publicKey.write())
    const result = await lookupKey('dave@example.org', { socks: () => ({ host: '127.0.0.1', port: proxy.port }), keyservers: [], wkd: true, timeoutMs: 10_000 })
    assert.deepEqual(result.problems, [])
    assert.deepEqual(result.found.map((f) => [f.source, f.fingerprint]), [['wkd', fingerprintOf(dave.publicKey)]])
    assert.ok(proxy.requests.some((r) => r.host === 'openpgpkey.example.org' && r.port === 443 && r.addressType === 3))
  })

  it('falls back to the direct method when the openpgpkey host does not exist', async () => {
    const erin = await newKey(['erin@example.net'])
    served.set(where(wkdUrls('erin@example.net').direct), erin.publicKey.write())
    const result = await lookupKey('erin@example.net', { socks: () => ({ host: '127.0.0.1', port: proxy.port }), keyservers: [], wkd: true, timeoutMs: 10_000 })
    assert.deepEqual(result.problems, [])
    assert.deepEqual(result.found.map((f) => f.fingerprint), [fingerprintOf(erin.publicKey)])
  })

  it('an address the directory does not know: no key, and the direct method is not asked', async () => {
    const before = seen.length
    const result = await lookupKey('nobody@example.org', { socks: () => ({ host: '127.0.0.1', port: proxy.port }), keyservers: [], wkd: true, timeoutMs: 10_000 })
    assert.deepEqual(result, { found: [], problems: ['WKD: no key for this address'] })
    assert.equal(seen.length - before, 1)
  })

  it('binary garbage is a problem, not a throw', async () => {
    served.set(where(wkdUrls('junk@example.org').advanced), new Uint8Array([0x99, 0x01, 0xff, 0x00, 0x13, 0x37]))
    const result = await lookupKey('junk@example.org', { socks: () => ({ host: '127.0.0.1', port: proxy.port }), keyservers: [], wkd: true, timeoutMs: 10_000 })
    assert.equal(result.found.length, 0)
    assert.match(result.problems.join(), /^WKD: the answer (is not a readable OpenPGP key|held no key)/)
  })
})
