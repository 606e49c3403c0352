// The recovery page of a new machine (`smtorp recover --ui`): a one-page server on loopback,
// with the protections of every smtorp page (page-guards.ts). There is no vault yet, so no
// passphrase can sign anyone in: access is a capability instead. The command prints
// http://127.0.0.1:<port>/?key=<256-bit key>; opening it turns the key into an HttpOnly,
// SameSite=Strict cookie and sends the browser on to the page, so the key leaves the address
// bar. The page lives under a second random path, /s/<path key>/, and the cookie is sent only
// there: browsers send a cookie of 127.0.0.1 to every port of it, and a page of another local
// user on another port must not receive it. Every POST carries a CSRF token as well.
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import formbody from '@fastify/formbody'
import { randomBytes } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import type { Logger } from 'pino'
import { cookieValue, sameToken } from './sessions.ts'
import { errorPage, layout } from './views/layout.ts'
import { finishedPage, recoverPage, recoverSection, torStatus, type RecoverFormValues } from './views/recover.ts'
import { loopbackHostsOf, pathOf, registerPageGuards, STATIC_PATHS } from './page-guards.ts'
import { RecoverInputError, type UiRecovery } from './recover-api.ts'
import type { Html } from './html.ts'

const ACCESS_COOKIE = 'smtorp_recover'
const OPEN_PATHS = new Set(STATIC_PATHS)

export interface RecoverServer {
  start (): Promise<void>
  stop (): Promise<void>
  /** The address to open, with the access key: print it to the owner only. */
  accessUrl (): string
}

export function recoverServer (init: { port: number }, components: { recovery: UiRecovery, logger: Logger }): RecoverServer {
  const { recovery } = components
  const log = components.logger.child({ component: 'recover-ui' })
  const accessKey = randomBytes(32).toString('base64url')
  const csrfToken = randomBytes(32).toString('base64url')
  const base = `/s/${randomBytes(16).toString('base64url')}/`
  let app: FastifyInstance | undefined
  let origin = ''
  let hosts: Set<string> | undefined
  /** What the form said last, so a refused or failed form comes back filled in (never the passphrase). */
  let values: RecoverFormValues = { ...recovery.suggested() }

  const send = (reply: FastifyReply, body: Html, status = 200): FastifyReply =>
    reply.code(status).type('text/html; charset=utf-8').send(layout({ title: 'Recover your node', body, csrfToken, menu: false }).value)

  async function build (): Promise<FastifyInstance> {
    const fastify = Fastify({ logger: false, bodyLimit: 64 * 1024, trustProxy: false })
    await registerPageGuards(fastify, { log, hosts: () => hosts, origin: () => origin, open: path => OPEN_PATHS.has(path) })
    await fastify.register(formbody, { bodyLimit: 64 * 1024 })

    fastify.addHook('onRequest', async (request, reply) => {
      const path = pathOf(request)
      // The statics are open to any GET; nothing else is, so no request without the key reaches
      // the body parser, the CSRF check or the error handler. (Their pages carry no link with
      // the secret path either: the path is what keeps the cookie from other ports.)
      if (OPEN_PATHS.has(path)) {
        if (request.method === 'GET' || request.method === 'HEAD') return
        return await reply.code(405).header('Allow', 'GET, HEAD').send()
      }
      const given = (request.query as Record<string, unknown> | undefined)?.key
      if (request.method === 'GET' && path === '/' && sameToken(typeof given === 'string' ? given : undefined, accessKey)) {
        return await reply.header('Set-Cookie', `${ACCESS_COOKIE}=${accessKey}; Path=${base}; HttpOnly; SameSite=Strict`).redirect(base, 303)
      }
      if (path.startsWith(base) && sameToken(cookieValue(request.headers.cookie, ACCESS_COOKIE), accessKey)) return
      return await reply.code(401).type('text/html; charset=utf-8')
        .send(errorPage('Open the address from the terminal', 'This page opens only at the address that "smtorp recover --ui" printed in its terminal, which carries a key.', { back: false }).value)
    })
    fastify.addHook('preHandler', async (request, reply) => {
      if (request.method !== 'POST') return
      const body = request.body as Record<string, unknown> | undefined
      const given = (request.headers['x-csrf-token'] as string | undefined) ?? (typeof body?._csrf === 'string' ? body._csrf : undefined)
      if (!sameToken(given, csrfToken)) {
        log.warn('A request without a valid CSRF token was refused.')
        return await reply.code(403).type('text/html; charset=utf-8').send(errorPage('Refused', 'This request did not carry the page\'s security token, so it was refused. Reload the page and try again.', { back: false }).value)
      }
    })
    fastify.setErrorHandler(async (err: Error & { statusCode?: number }, _request, reply) => {
      const status = err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500
      if (status === 500) log.error({ err: err.message, name: err.name }, 'A recovery page request failed.')
      return await reply.code(status).type('text/html; charset=utf-8').send(errorPage(status === 500 ? 'Something went wrong' : 'That did not work', err.message, { back: false }).value)
    })

    fastify.get(base, async (_request, reply) => send(reply, recoverPage(recovery.progress(), values, csrfToken, base)))
    fastify.get(`${base}live/progress`, async (_request, reply) => reply.type('text/html; charset=utf-8').send(recoverSection(recovery.progress(), values, csrfToken, base).value))
    fastify.get(`${base}live/tor`, async (_request, reply) => reply.type('text/html; charset=utf-8').send(torStatus(recovery.progress(), base).value))
    fastify.post(`${base}start`, async (request: FastifyRequest, reply) => {
      const body = (request.body ?? {}) as Record<string, unknown>
      const text = (name: string): string => typeof body[name] === 'string' ? body[name] : ''
      const custodians = text('custodians').split(/[\s,]+/).map(s => s.trim()).filter(s => s !== '')
      const from = text('from') === 'imap' ? 'imap' : 'friends'
      values = { owner: text('owner').trim(), custodians, from }
      try {
        if (text('passphrase') !== text('passphrase2')) throw new RecoverInputError('The two passphrases differ.')
        recovery.start({ owner: values.owner!, custodians, from, newPassphrase: text('passphrase') })
      } catch (err) {
        if (!(err instanceof RecoverInputError)) throw err
        return send(reply, recoverPage(recovery.progress(), values, csrfToken, base, err.message), 400)
      }
      return await reply.redirect(base, 303)
    })
    fastify.post(`${base}finish`, async (_request, reply) => {
      const phase = recovery.progress().phase
      if (phase === 'asking' || phase === 'restoring') {
        return send(reply, recoverPage(recovery.progress(), values, csrfToken, base, 'The recovery is still running; close it when it is done.'), 409)
      }
      send(reply, finishedPage())
      setImmediate(() => { recovery.finish() })
      return reply
    })
    return fastify
  }

  return {
    async start () {
      app = await build()
      try {
        await app.listen({ host: '127.0.0.1', port: init.port })
      } catch (err) {
        await app.close().catch(() => {})
        throw err
      }
      const address = app.server.address() as AddressInfo
      origin = `http://127.0.0.1:${address.port}`
      hosts = loopbackHostsOf('127.0.0.1', address.port)
    },
    async stop () { await app?.close() },
    accessUrl: () => `${origin}/?key=${accessKey}`
  }
}
