// OpenPGP key lookup over Tor: the Web Key Directory (draft-koch-openpgp-webkey-service)
// and HKP keyservers the user configures (draft-shaw-openpgp-hkp, now draft-ietf-openpgp-hkp,
// "op=get"); the URLs come from protocol/wkd.ts.
//
// Every request goes through Tor's SOCKS port (socks5h, so tor resolves the names and
// nothing leaks through the local resolver), each source on its own SOCKS username so tor
// puts it on its own circuit (IsolateSOCKSAuth, on by default): the keyserver, the WKD
// host and whoever watches the network learn nothing about who is writing to whom.
//
// What comes back is untrusted. A key is offered only if it is a public key (a secret key
// packet is dropped, never imported), version 4, neither revoked nor expired, can encrypt,
// and carries a valid self-certified user id whose email is the address looked up; it is
// re-exported with only those user ids. Everything that goes wrong becomes one sentence in
// `problems`; only bad input (address, keyserver URL, limits) throws KeyLookupError.
//
// Redirects are followed only within the same origin (scheme, host, port), at most
// MAX_REDIRECTS times: a redirect to another host would tell a third party whose key is
// wanted. Bodies are capped at `maxBytes`; each source has one deadline for all its requests.
import { request as httpRequest, type IncomingMessage, type ClientRequest } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { randomBytes } from 'node:crypto'
import { SocksProxyAgent } from 'socks-proxy-agent'
import { readKeys, type Key } from 'openpgp'
import { parseAddress, AddressError } from '../../protocol/address.ts'
import { wkdUrls, hkpLookupUrl, KeyLookupError } from '../../protocol/wkd.ts'

// One error class for bad input, shared with the URL helpers of protocol/wkd.ts.
export { KeyLookupError }

export const DEFAULT_TIMEOUT_MS = 60_000
export const DEFAULT_MAX_BYTES = 512 * 1024
const MAX_REDIRECTS = 3

export interface KeyLookupOptions {
  /** Tor's SOCKS endpoint, asked at lookup time (tor may have restarted on another port). */
  socks: () => { host: string, port: number }
  /** HKP keyserver base URLs (http or https, may be .onion), e.g. http://xyz.onion:11371 */
  keyservers: string[]
  /** Ask the Web Key Directory of the address's domain. */
  wkd: boolean
  /** Deadline for each source, all its requests included (default 60 s). */
  timeoutMs?: number
  /** Largest response body accepted; a longer one is cut off (default 512 KiB). */
  maxBytes?: number
}

export interface FoundKey {
  /** 'wkd', or the keyserver's base URL as normalised by keyserverBaseUrl. */
  source: string
  /** The key alone, public packets only, with only the user ids for the address. */
  armoredPublicKey: string
  /** v4 fingerprint, 40 hex digits, upper case. */
  fingerprint: string
  userIds: string[]
  created: Date
}

export interface KeyLookupResult {
  /** Keys offered to the user; none of them is trusted by being found. */
  found: FoundKey[]
  /** One sentence per thing that went wrong, prefixed with its source. */
  problems: string[]
}

/**
 * Validate and normalise a keyserver base URL: http or https, no credentials, no query or
 * fragment; a path prefix is kept, without its trailing slash.
 */
export function keyserverBaseUrl (input: string): string {
  let url: URL
  try {
    url = new URL(input.trim())
  } catch {
    throw new KeyLookupError(`keyserver ${JSON.stringify(input)} is not a URL`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new KeyLookupError(`keyserver ${url.origin}: only http and https keyservers are supported`)
  if (url.username !== '' || url.password !== '') throw new KeyLookupError('a keyserver URL may not carry a user name or password')
  if (url.search !== '' || url.hash !== '') throw new KeyLookupError(`keyserver ${url.origin}: the URL may not have a query or fragment`)
  if (url.hostname === '') throw new KeyLookupError('a keyserver URL needs a host')
  return `${url.protocol}//${url.host}${url.pathname.replace(/\/+$/, '')}`
}

export async function lookupKey (address: string, options: KeyLookupOptions): Promise<KeyLookupResult> {
  let normalised: string
  try {
    const parsed = parseAddress(address)
    normalised = `${parsed.local}@${parsed.domain}`
  } catch (err) {
    if (err instanceof AddressError) throw new KeyLookupError(`cannot look up a key for ${JSON.stringify(address)}: ${err.message}`)
    throw err
  }
  const keyservers = options.keyservers.map(keyserverBaseUrl)
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new KeyLookupError('timeoutMs must be a positive number')
  if (!Number.isInteger(maxBytes) || maxBytes <= 0) throw new KeyLookupError('maxBytes must be a positive integer')

  const sources: Promise<KeyLookupResult>[] = []
  if (options.wkd) {
    const urls = wkdUrls(address.trim())
    sources.push(fromSource({ label: 'WKD', source: 'wkd', urls: [urls.advanced, urls.direct], format: 'binary' }, normalised, options.socks, timeoutMs, maxBytes))
  }
  for (const base of new Set(keyservers)) {
    sources.push(fromSource({ label: `keyserver ${base}`, source: base, urls: [hkpLookupUrl(base, normalised)], format: 'armored' }, normalised, options.socks, timeoutMs, maxBytes))
  }
  if (sources.length === 0) return { found: [], problems: ['no key source is configured (neither WKD nor a keyserver)'] }
  const results = await Promise.all(sources)
  return { found: results.flatMap((r) => r.found), problems: results.flatMap((r) => r.problems) }
}

// ---------------------------------------------------------------------------------
// One source

interface Source {
  /** How problems name it: 'WKD' or 'keyserver <url>'. */
  label: string
  /** FoundKey.source */
  source: string
  /**
   * URLs to try in order; the next is tried only when tor reports the previous one's host
   * unknown (WKD, draft-koch-openpgp-webkey-service section 3.1: the direct method only when
   * the advanced method's openpgpkey.<domain> does not exist; a host that exists but does
   * not answer is no reason to fall back).
   */
  urls: string[]
  /** WKD serves binary keys (section 3.1; armored ones are accepted too); HKP armored ones. */
  format: 'binary' | 'armored'
}

/** Something that went wrong fetching; `hostUnknown` when tor could not find the host. */
class FetchProblem extends Error {
  override name = 'FetchProblem'
  constructor (message: string, readonly hostUnknown = false) {
    super(message)
  }
}

async function fromSource (source: Source, address: string, socks: KeyLookupOptions['socks'], timeoutMs: number, maxBytes: number): Promise<KeyLookupResult> {
  const problems: string[] = []
  const abort = new AbortController()
  const timer = setTimeout(() => { abort.abort() }, timeoutMs)
  try {
    let answer: Fetched | undefined
    for (const [i, url] of source.urls.entries()) {
      try {
        answer = await fetchThroughTor(new URL(url), { socks, timeoutMs, maxBytes, signal: abort.signal })
        break
      } catch (err) {
        if (abort.signal.aborted) return { found: [], problems: [`${source.label}: timed out after ${duration(timeoutMs)}`] }
        if (!(err instanceof FetchProblem)) throw err
        if (!err.hostUnknown || i === source.urls.length - 1) return { found: [], problems: [`${source.label}: ${err.message}`] }
      }
    }
    if (answer === undefined) return { found: [], problems: [`${source.label}: nothing to ask`] }
    if (answer.status === 404) return { found: [], problems: [`${source.label}: no key for this address`] }
    if (answer.status !== 200) return { found: [], problems: [`${source.label}: the server answered HTTP ${answer.status}`] }

    let keys: Key[]
    try {
      keys = await parseKeys(answer.body, source.format)
    } catch (err) {
      return { found: [], problems: [`${source.label}: the answer is not a readable OpenPGP key (${shortMessage(err)})`] }
    }
    const found: FoundKey[] = []
    for (const key of keys) {
      let checked: Awaited<ReturnType<typeof acceptKey>>
      try {
        checked = await acceptKey(key, address)
      } catch (err) {
        checked = `a key could not be checked (${shortMessage(err)}); it was dropped`
      }
      if (typeof checked === 'string') {
        problems.push(`${source.label}: ${checked}`)
      } else if (!found.some((f) => f.fingerprint === checked.fingerprint)) {
        found.push({ source: source.source, ...checked })
      }
    }
    if (keys.length === 0) problems.push(`${source.label}: the answer held no key`)
    else if (found.length === 0 && problems.length === 0) problems.push(`${source.label}: no usable key for this address`)
    return { found, problems }
  } catch (err) {
    // Not expected (parsing and fetching report their own failures), but a lookup must not throw.
    return { found: [], problems: [`${source.label}: the lookup failed unexpectedly (${shortMessage(err)})`] }
  } finally {
    clearTimeout(timer)
  }
}

async function parseKeys (body: Buffer, format: Source['format']): Promise<Key[]> {
  const text = body.subarray(0, 64).toString('latin1').trimStart()
  if (text.startsWith('-----BEGIN PGP')) return await readKeys({ armoredKeys: body.toString('utf8') })
  if (format === 'armored') throw new Error('expected an armored key block')
  return await readKeys({ binaryKeys: new Uint8Array(body.buffer, body.byteOffset, body.length) })
}

/** The key to offer, or why it was dropped. */
async function acceptKey (key: Key, address: string): Promise<Omit<FoundKey, 'source'> | string> {
  const fingerprint = key.getFingerprint().toUpperCase()
  const name = `key ${fingerprint}`
  // A keyserver must never hand out secret keys; importing one would be worse than useless.
  if (key.isPrivate()) return `${name} is a secret key; it was dropped`
  if (key.keyPacket.version !== 4) return `${name} is a version ${key.keyPacket.version} key; only version 4 keys are used`
  // Only user ids for this address, each with a valid, unrevoked self-certification. Others
  // (and user attributes) are removed, so the offer carries no identity the source made up.
  const matching = []
  for (const user of key.users) {
    if (user.userID === null || user.userID.email.toLowerCase() !== address) continue
    try {
      await user.verify()
      matching.push(user)
    } catch {}
  }
  if (matching.length === 0) {
    const any = key.users.some((u) => u.userID !== null && u.userID.email.toLowerCase() === address)
    return any ? `${name} has no valid user id for this address (revoked, expired or badly signed); it was dropped` : `${name} has no user id for this address; it was dropped`
  }
  key.users = matching
  try {
    await key.verifyPrimaryKey()
  } catch (err) {
    return `${name} is not usable (${shortMessage(err)}); it was dropped`
  }
  try {
    await key.getEncryptionKey()
  } catch {
    return `${name} has no usable encryption key; it was dropped`
  }
  // Re-read what we offer: it must parse back to this one public key.
  const armoredPublicKey = key.armor()
  const again = await readKeys({ armoredKeys: armoredPublicKey })
  if (again.length !== 1 || again[0]!.isPrivate() || again[0]!.getFingerprint().toUpperCase() !== fingerprint) return `${name} did not survive re-export; it was dropped`
  return { armoredPublicKey, fingerprint, userIds: matching.map((u) => u.userID!.userID), created: key.getCreationTime() }
}

// ---------------------------------------------------------------------------------
// HTTP through Tor

interface Fetched { status: number, body: Buffer }

interface FetchContext {
  socks: KeyLookupOptions['socks']
  timeoutMs: number
  maxBytes: number
  signal: AbortSignal
}

/** GET `url` through Tor, following same-origin redirects; the body only for 200. */
async function fetchThroughTor (url: URL, ctx: FetchContext): Promise<Fetched> {
  const origin = url.origin
  // One SOCKS username per source and lookup: tor isolates it on its own circuit.
  const isolation = `smtorp-key-lookup-${randomBytes(12).toString('hex')}`
  for (let redirects = 0; ; redirects++) {
    const answer = await getOnce(url, isolation, ctx)
    if (answer.status >= 300 && answer.status < 400 && answer.status !== 304) {
      if (answer.location === undefined) throw new FetchProblem(`the server answered HTTP ${answer.status} without a location`)
      let next: URL
      try { next = new URL(answer.location, url) } catch { throw new FetchProblem('the server redirected to an invalid URL') }
      if (next.origin !== origin) throw new FetchProblem(`the server redirected to ${next.origin}, which was not followed (another host would learn which key is wanted)`)
      if (redirects >= MAX_REDIRECTS) throw new FetchProblem(`more than ${MAX_REDIRECTS} redirects`)
      url = next
      continue
    }
    return { status: answer.status, body: answer.body }
  }
}

function socksUrl (endpoint: { host: string, port: number }, username: string): string {
  const host = endpoint.host.includes(':') ? `[${endpoint.host}]` : endpoint.host
  return `socks5h://${encodeURIComponent(username)}:x@${host}:${endpoint.port}`
}

async function getOnce (url: URL, isolation: string, ctx: FetchContext): Promise<{ status: number, location: string | undefined, body: Buffer }> {
  const agent = new SocksProxyAgent(socksUrl(ctx.socks(), isolation), { timeout: ctx.timeoutMs })
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest
  return await new Promise((resolve, reject) => {
    let req: ClientRequest
    let settled = false
    const fail = (err: FetchProblem): void => {
      if (settled) return
      settled = true
      req.destroy()
      reject(err)
    }
    try {
      req = send(url, {
        method: 'GET',
        agent,
        signal: ctx.signal,
        // Nothing that tells one client from another: no User-Agent, no compression.
        headers: { accept: url.pathname.startsWith('/.well-known/') ? 'application/octet-stream' : 'application/pgp-keys', connection: 'close' },
      })
    } catch (err) {
      reject(new FetchProblem(`cannot request ${url.origin}: ${shortMessage(err)}`))
      return
    }
    req.on('error', (err) => {
      // socks: "Socks5 proxy rejected connection - HostUnreachable" (RFC 1928 reply 4), which
      // tor gives when the name does not resolve.
      fail(new FetchProblem(describeConnectionError(err, url), /HostUnreachable/.test(err.message)))
    })
    req.on('response', (res: IncomingMessage) => {
      const status = res.statusCode ?? 0
      const location = res.headers.location
      res.on('error', (err) => { fail(new FetchProblem(`the answer was cut short (${shortMessage(err)})`)) })
      if (status !== 200) {
        res.resume()
        settled = true
        resolve({ status, location, body: Buffer.alloc(0) })
        req.destroy()
        return
      }
      const encoding = res.headers['content-encoding']
      if (encoding !== undefined && encoding !== 'identity') { fail(new FetchProblem(`the answer is ${encoding}-encoded, which was not asked for`)); return }
      const declared = Number(res.headers['content-length'])
      if (Number.isFinite(declared) && declared > ctx.maxBytes) { fail(new FetchProblem(`the answer is larger than ${bytes(ctx.maxBytes)}; it was cut off`)); return }
      const chunks: Buffer[] = []
      let length = 0
      res.on('data', (chunk: Buffer) => {
        length += chunk.length
        if (length > ctx.maxBytes) { fail(new FetchProblem(`the answer is larger than ${bytes(ctx.maxBytes)}; it was cut off`)); return }
        chunks.push(chunk)
      })
      res.on('end', () => {
        if (settled) return
        if (!res.complete) { fail(new FetchProblem('the answer was cut short')); return }
        settled = true
        resolve({ status, location, body: Buffer.concat(chunks, length) })
      })
      res.on('close', () => { if (!settled) fail(new FetchProblem('the answer was cut short')) })
    })
    req.end()
  })
}

function describeConnectionError (err: Error, url: URL): string {
  const code = (err as NodeJS.ErrnoException).code
  if (err.name === 'AbortError') return 'the request was aborted'
  // socks wraps the error of its connection to the proxy and drops the code.
  if (code === 'ECONNREFUSED' || /\bECONNREFUSED\b/.test(err.message)) return `Tor's SOCKS port is not reachable (${shortMessage(err)})`
  // socks: "Socks5 proxy rejected connection - HostUnreachable" and the like.
  if (/socks/i.test(err.message)) return `Tor could not connect to ${url.host} (${shortMessage(err)})`
  if (/certificate|self.signed|TLS|SSL/i.test(err.message) || code?.startsWith('ERR_TLS') === true || code?.includes('CERT') === true) return `no trusted TLS connection to ${url.host} (${shortMessage(err)})`
  return `cannot reach ${url.host} (${shortMessage(err)})`
}

function shortMessage (err: unknown): string {
  const text = err instanceof Error ? err.message : String(err)
  // Printable ASCII only, and short: the text may come from the remote side.
  const clean = text.replace(/[^\x20-\x7e]/g, '?')
  return clean.length > 160 ? clean.slice(0, 157) + '...' : clean
}

function duration (ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`
}

function bytes (n: number): string {
  return n % 1024 === 0 ? `${n / 1024} KiB` : `${n} bytes`
}
