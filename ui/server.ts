// The web UI: server-rendered HTML on fastify, with htmx (served from the installed package)
// for partial updates. A view returns the whole page, or only its fragment for an htmx request
// (HX-Request header). The UI talks to the node only through UiNode (ui/node-api.ts).
//
// Every page is under a secret path, /s/<path key>/ (the node keeps the key in its data
// directory, so the address can be bookmarked). Routes and views are written as if the UI were
// at the root (/mail/Inbox): rewriteUrl takes the secret path off each request, and an onSend
// hook puts it in front of the UI's own links (href, src, action, hx-get, hx-post, in the
// HTML the views render, where no text from mail can make an attribute) and redirects.
// Anything outside the secret path is answered 404.
//
// Its own security (threat-model.md, "The web UI"):
// - it listens on 127.0.0.1 unless the config explicitly allows another address;
// - a session is a random token in an HttpOnly, SameSite=Strict cookie, made only by entering
//   the passphrase (or recovery code); locking the vault ends every session. The cookie's Path
//   is the secret path: browsers send cookies of 127.0.0.1 to every port, and a server of
//   another local user, opened in the same browser, must not receive it;
// - every state-changing request (POST) carries the session's CSRF token;
// - page-guards.ts: the Content-Security-Policy and helmet's other headers, loopback Host
//   names only, the Origin of posts, fetch metadata, no caching;
// - unlock attempts are rate-limited here and slowed by the vault's own throttle;
// - nothing secret goes in a URL (searches and recipients are POSTed), and requests are not
//   logged with their URLs.
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import formbody from '@fastify/formbody'
import multipart from '@fastify/multipart'
import rateLimit from '@fastify/rate-limit'
import { randomBytes } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import type { Logger } from 'pino'
import type { UiNode } from './node-api.ts'
import { Sessions, cookieValue, sameToken, clearedSessionCookie, SESSION_COOKIE, type Session } from './sessions.ts'
import { layout, errorPage } from './views/layout.ts'
import { isLoopback, loopbackHostsOf, pathOf, registerPageGuards, STATIC_PATHS } from './page-guards.ts'
import type { Html } from './html.ts'
import { unlockRoutes } from './routes/unlock.ts'
import { mailRoutes } from './routes/mail.ts'
import { composeRoutes } from './routes/compose.ts'
import { dashboardRoutes } from './routes/dashboard.ts'
import { outboxRoutes } from './routes/outbox.ts'
import { settingsRoutes } from './routes/settings.ts'
import { contactsRoutes } from './routes/contacts.ts'
import { friendsRoutes } from './routes/friends.ts'
import { backupRoutes } from './routes/backup.ts'
import { recoveryRoutes } from './routes/recovery.ts'

export interface UiInit {
  host: string
  port: number
  /** Required to listen on anything but a loopback address. */
  allowNonLoopback?: boolean
  /** Unlock attempts per minute from one client, before the vault's own throttle. */
  unlockAttemptsPerMinute?: number
  /** Largest compose form (message and attachments), bytes. */
  maxUploadBytes?: number
  /** How often auto-lock looks at the idle time (default 15 s; tests shorten it). */
  autoLockCheckMs?: number
  /**
   * The secret path segment every page is under (/s/<pathKey>/): base64url, at least 22
   * characters (128 bits). The node keeps one in its data directory; default: a new one per start.
   */
  pathKey?: string
}

export interface UiComponents {
  node: UiNode
  logger: Logger
}

export class UiConfigError extends Error {
  override name = 'UiConfigError'
}

export interface UiServer {
  start (): Promise<void>
  stop (): Promise<void>
  /** Where the owner opens the UI: http://host:port/s/<path key> (no trailing slash; add a path). */
  url (): string
  /** Sign everyone out (the vault was locked elsewhere). */
  endSessions (): void
}

/** What every route handler gets: the node, the session, and how to answer. */
export interface RouteContext {
  node: UiNode
  sessions: Sessions
  logger: Logger
  /** The secret path the UI is under, /s/<path key>: the session cookie's Path. */
  root: string
  /** Send a page: the whole document, or just `fragment` for an htmx request. */
  send (request: FastifyRequest, reply: FastifyReply, page: { title: string, body: Html, fragment?: Html, nav?: string }): FastifyReply
  session (request: FastifyRequest): Session
  maxUploadBytes: number
  /** Say what an action did on the next page the session sees. */
  flash (request: FastifyRequest, text: string): void
  /** The message left by `flash`, once. */
  takeFlash (request: FastifyRequest): string | undefined
  /** Called after a successful unlock or lock, to keep auto-lock in step. */
  touched (): void
}

/** Paths served without a session. */
const PUBLIC_PATHS = new Set(['/unlock', ...STATIC_PATHS])

declare module 'fastify' {
  interface FastifyRequest {
    smtorpSession?: Session
  }
}

export function uiServer (init: UiInit, components: UiComponents): UiServer {
  if (!isLoopback(init.host) && init.allowNonLoopback !== true) {
    throw new UiConfigError(`config: ui.host is ${init.host}, which is not a loopback address. The web UI opens your mail to whoever can reach it, so it listens on 127.0.0.1 only, unless you also set ui.allowNonLoopback: true (for a container whose port is published on the host's loopback, say).`)
  }
  const pathKey = init.pathKey ?? randomBytes(16).toString('base64url')
  if (!PATH_KEY.test(pathKey)) throw new UiConfigError('The web UI\'s path key must be at least 22 base64url characters.')
  const root = `/s/${pathKey}`
  const { node } = components
  const log = components.logger.child({ component: 'ui' })
  const sessions = new Sessions()
  const maxUploadBytes = init.maxUploadBytes ?? 25 * 1024 * 1024
  let app: FastifyInstance | undefined
  let origin = ''
  /** Host header values served: the loopback names with the port (undefined: any, see allowNonLoopback). */
  let loopbackHosts: Set<string> | undefined
  let autoLockTimer: NodeJS.Timeout | undefined
  let autoLockMinutes = 15

  const context: RouteContext = {
    node,
    sessions,
    logger: log,
    root,
    maxUploadBytes,
    send (request, reply, page) {
      const partial = request.headers['hx-request'] === 'true' && request.headers['hx-boosted'] !== 'true' && page.fragment !== undefined
      const body = partial ? page.fragment! : layout({ title: page.title, body: page.body, ...(request.smtorpSession !== undefined ? { csrfToken: request.smtorpSession.csrfToken } : {}), ...(page.nav !== undefined ? { nav: page.nav } : {}) })
      return reply.type('text/html; charset=utf-8').send(body.value)
    },
    session (request) {
      if (request.smtorpSession === undefined) throw new Error('no session')
      return request.smtorpSession
    },
    flash (request, text) {
      if (request.smtorpSession !== undefined) request.smtorpSession.flash = text
    },
    takeFlash (request) {
      const text = request.smtorpSession?.flash
      if (request.smtorpSession !== undefined) delete request.smtorpSession.flash
      return text
    },
    touched () { refreshAutoLock() }
  }

  function refreshAutoLock (): void {
    node.uiSettings().then(s => { autoLockMinutes = s.autoLockMinutes }, (err: unknown) => {
      log.error({ err: (err as Error).message }, 'The auto-lock setting cannot be read; the last one known stays in force.')
    })
  }

  async function autoLockCheck (): Promise<void> {
    if (node.vaultState() !== 'unlocked') {
      sessions.clear()
      return
    }
    const last = sessions.lastActiveAt()
    if (autoLockMinutes > 0 && last > 0 && Date.now() - last > autoLockMinutes * 60_000) {
      log.info({ minutes: autoLockMinutes }, 'The vault was locked after the UI was idle.')
      sessions.clear()
      await node.lock()
    }
  }

  async function build (): Promise<FastifyInstance> {
    // No request logging: URLs and bodies stay out of the logs. Errors are logged by hand.
    const fastify = Fastify({ logger: false, bodyLimit: maxUploadBytes, trustProxy: false, rewriteUrl: request => withoutRoot(root, request.url ?? '/') })
    await registerPageGuards(fastify, { log, hosts: () => loopbackHosts, origin: () => origin, open: path => PUBLIC_PATHS.has(path) })
    // Outside the secret path there is nothing, and nothing says where it is.
    fastify.addHook('onRequest', async (request, reply) => {
      if (withoutRoot(root, request.originalUrl) === request.originalUrl) {
        return await reply.code(404).type('text/html; charset=utf-8').send(notHere().value)
      }
    })
    // Only answers to requests under the secret path carry it: the 404 above and the guards'
    // refusals of requests from elsewhere (another host name, say) must not reveal it.
    fastify.addHook('onSend', async (request, reply, payload) => {
      if (withoutRoot(root, request.originalUrl) === request.originalUrl) return payload
      for (const header of ['location', 'hx-redirect']) {
        const to = reply.getHeader(header)
        if (typeof to === 'string' && /^\/(?!\/)/.test(to)) reply.header(header, root + to)
      }
      if (typeof payload === 'string' && String(reply.getHeader('content-type')).startsWith('text/html')) return linksUnder(root, payload)
      return payload
    })
    await fastify.register(formbody, { bodyLimit: 1024 * 1024 })
    // Compose forms are small enough to hold in memory (bounded by maxUploadBytes); their
    // fields, files included, land in request.body before the CSRF check runs.
    await fastify.register(multipart, {
      attachFieldsToBody: true,
      onFile: async (part) => { (part as unknown as { value: Buffer }).value = await part.toBuffer() },
      // A field as big as the whole message (a long body); enough fields and files for the
      // attachments compose allows. A truncated field is refused by the compose route.
      limits: { fileSize: maxUploadBytes, files: 100, fields: 300, fieldSize: maxUploadBytes }
    })
    await fastify.register(rateLimit, { global: false })

    // Every request: the guards (Host, Origin of POSTs, fetch metadata), then the session, then
    // the CSRF token.
    fastify.addHook('onRequest', async (request, reply) => {
      const path = pathOf(request)
      const session = sessions.get(cookieValue(request.headers.cookie, SESSION_COOKIE))
      if (session !== undefined && node.vaultState() !== 'unlocked') {
        // Locked from elsewhere (the CLI, auto-lock): every session ends with the lock.
        sessions.clear()
      } else if (session !== undefined) {
        request.smtorpSession = session
      }
      if (PUBLIC_PATHS.has(path)) return
      const site = request.headers['sec-fetch-site']
      if (request.smtorpSession === undefined) {
        if (request.method !== 'GET') {
          return await reply.code(401).header('Set-Cookie', clearedSessionCookie(root)).type('text/html; charset=utf-8').send(errorPage('Not signed in', 'Unlock first: this request has no session.').value)
        }
        if (request.headers['hx-request'] === 'true') return await reply.code(401).header('HX-Redirect', '/unlock').send()
        return await reply.redirect('/unlock', 303)
      }
      // Use of the page keeps the vault open: pages the owner opens (GET from the UI itself, or
      // typed), and posts that pass the CSRF check below. The UI's own polling does not count.
      if (request.method === 'GET' && !path.startsWith('/live/') && (site === undefined || site === 'same-origin' || site === 'none')) request.smtorpSession.lastActiveAt = Date.now()
    })
    // The CSRF check needs the parsed body (form field) or the header (htmx).
    fastify.addHook('preHandler', async (request, reply) => {
      if (request.method !== 'POST' || request.smtorpSession === undefined) return
      const body = request.body as Record<string, unknown> | undefined
      const fromForm = typeof body?._csrf === 'string' ? body._csrf : (body?._csrf as { value?: string } | undefined)?.value
      const given = (request.headers['x-csrf-token'] as string | undefined) ?? fromForm
      if (!sameToken(given, request.smtorpSession.csrfToken)) {
        log.warn('A request without a valid CSRF token was refused.')
        return await reply.code(403).type('text/html; charset=utf-8').send(errorPage('Refused', 'This request did not carry the page\'s security token, so it was refused. Reload the page and try again.').value)
      }
      request.smtorpSession.lastActiveAt = Date.now()
    })
    fastify.setErrorHandler(async (err: Error & { statusCode?: number }, request, reply) => {
      if (err.name === 'VaultLockedError') {
        sessions.clear()
        if (request.headers['hx-request'] === 'true') return await reply.code(401).header('HX-Redirect', '/unlock').send()
        return await reply.redirect('/unlock', 303)
      }
      const status = err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500
      if (status === 500) log.error({ err: err.message, name: err.name }, 'A UI request failed.')
      return await reply.code(status).type('text/html; charset=utf-8').send(errorPage(status === 500 ? 'Something went wrong' : 'That did not work', err.message).value)
    })

    unlockRoutes(fastify, context, { attemptsPerMinute: init.unlockAttemptsPerMinute ?? 10 })
    mailRoutes(fastify, context)
    composeRoutes(fastify, context)
    dashboardRoutes(fastify, context)
    outboxRoutes(fastify, context)
    settingsRoutes(fastify, context)
    contactsRoutes(fastify, context)
    friendsRoutes(fastify, context)
    backupRoutes(fastify, context)
    recoveryRoutes(fastify, context)
    fastify.get('/', async (_request, reply) => reply.redirect('/mail/Inbox', 303))
    return fastify
  }

  return {
    async start () {
      app = await build()
      try {
        await app.listen({ host: init.host, port: init.port })
      } catch (err) {
        await app.close().catch(() => {})
        const code = (err as NodeJS.ErrnoException).code
        const why = code === 'EADDRINUSE' ? 'the port is in use (another smtorp?): set ui.port in config.yaml' : code === 'EADDRNOTAVAIL' ? 'this machine has no such address' : (err as Error).message
        throw new UiConfigError(`The web UI cannot listen on ${init.host}:${init.port}: ${why}.`)
      }
      const address = app.server.address() as AddressInfo
      const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
      origin = `http://${host}:${address.port}`
      if (isLoopback(init.host)) loopbackHosts = loopbackHostsOf(host, address.port)
      refreshAutoLock()
      autoLockTimer = setInterval(() => { autoLockCheck().catch((err: unknown) => { log.error({ err: (err as Error).message }, 'Auto-lock failed.') }) }, init.autoLockCheckMs ?? 15_000)
      autoLockTimer.unref()
      log.info({ url: origin }, 'The web UI is listening (under its secret path, not logged).')
    },
    async stop () {
      clearInterval(autoLockTimer)
      sessions.clear()
      await app?.close()
    },
    url: () => origin + root,
    endSessions: () => { sessions.clear() }
  }
}

const PATH_KEY = /^[A-Za-z0-9_-]{22,}$/

/**
 * The request's URL without the secret path (`/s/K/mail/Inbox` → `/mail/Inbox`, `/s/K` → `/`),
 * or unchanged when it is not under it.
 */
function withoutRoot (root: string, url: string): string {
  if (!url.startsWith(root)) return url
  const rest = url.slice(root.length)
  if (rest === '' || rest.startsWith('?')) return `/${rest}`
  return rest.startsWith('/') ? rest : url
}

/**
 * The UI's own links in a page put under the secret path: attributes the views write with a
 * path from the UI's root. Text from mail and from the owner is escaped by html.ts (a quote
 * becomes &quot;), so it cannot form one of these attributes.
 */
function linksUnder (root: string, page: string): string {
  return page.replace(/(\s(?:href|src|action|hx-get|hx-post)=")\/(?!\/)/g, `$1${root}/`)
}

function notHere (): Html {
  return errorPage('Not here', 'There is no page at this address. The web UI is at the address smtorp printed when it started ("smtorp status" prints it again).', { back: false })
}
