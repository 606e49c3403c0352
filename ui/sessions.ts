// Sessions of the web UI: a random token in an HttpOnly, SameSite=Strict cookie, kept only in
// memory (a restart or a lock signs everyone out), and a CSRF token per session that every
// state-changing request must carry (synchronizer token pattern, OWASP CSRF cheat sheet).
// Tokens are 256-bit values from the CSPRNG, compared in constant time.
import { randomBytes, timingSafeEqual } from 'node:crypto'

export const SESSION_COOKIE = 'smtorp_session'

export interface Session {
  id: string
  csrfToken: string
  createdAt: number
  /** The last request the owner made (polling does not count): drives auto-lock. */
  lastActiveAt: number
  /** What the last action did, shown once on the next page (never put in a URL). */
  flash?: string
  /**
   * Keys the last lookups found (public keys), kept here so that accepting one names only its
   * fingerprint: the key accepted is the one that was shown, not one a form carried.
   */
  foundKeys?: Array<{ address: string, fingerprint: string, armoredPublicKey: string }>
  /** The owner's revoked public key, to download after revoking (public; kept until sign-out). */
  revokedPublicKey?: string
}

/** Signed-in browsers at once; signing in again beyond this ends the oldest session. */
const MAX_SESSIONS = 16

export class Sessions {
  private readonly byId = new Map<string, Session>()

  create (now = Date.now()): Session {
    const session = { id: randomBytes(32).toString('base64url'), csrfToken: randomBytes(32).toString('base64url'), createdAt: now, lastActiveAt: now }
    this.byId.set(session.id, session)
    if (this.byId.size > MAX_SESSIONS) this.byId.delete(this.byId.keys().next().value!)
    return session
  }

  get (id: string | undefined): Session | undefined {
    return id === undefined ? undefined : this.byId.get(id)
  }

  clear (): void { this.byId.clear() }

  /** When anyone last used the UI (0 when nobody is signed in). */
  lastActiveAt (): number {
    let last = 0
    for (const s of this.byId.values()) last = Math.max(last, s.lastActiveAt)
    return last
  }
}

export function sameToken (given: string | undefined, expected: string): boolean {
  if (typeof given !== 'string') return false
  const a = Buffer.from(given)
  const b = Buffer.from(expected)
  return a.length === b.length && timingSafeEqual(a, b)
}

/** The value of one cookie from a Cookie header (RFC 6265 5.4). */
export function cookieValue (header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined
  for (const part of header.split(';')) {
    const eq = part.indexOf('=')
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim()
  }
  return undefined
}

/**
 * The Set-Cookie value for a session, sent back only under `path` (the UI's secret path,
 * server.ts): browsers send a cookie of 127.0.0.1 to every port of it, so a page served by
 * another local user on another port gets the cookie only if it is asked for under that path,
 * which it does not know. No `Secure`: the UI is plain HTTP on loopback (a browser would drop
 * a Secure cookie from http://127.0.0.1 in some versions); HttpOnly keeps it from scripts,
 * SameSite=Strict from cross-site requests, and the CSRF token covers same-site ones (another
 * port on 127.0.0.1 is the same site).
 */
export function sessionCookie (id: string, path: string): string {
  return `${SESSION_COOKIE}=${id}; Path=${path}; HttpOnly; SameSite=Strict`
}

export function clearedSessionCookie (path: string): string {
  return `${SESSION_COOKIE}=; Path=${path}; HttpOnly; SameSite=Strict; Max-Age=0`
}
