// What every page server of smtorp does before its own routes (threat-model.md, "The web UI"):
// the web UI of a running node (server.ts) and the recovery page of a new machine
// (recover-server.ts) both use it.
// - Content-Security-Policy allows scripts, styles and images from the server itself only, no
//   inline script, no frames, no form posts elsewhere; helmet sets the other headers;
// - only loopback Host names are served (DNS rebinding), when the server listens on loopback;
// - a POST whose Origin is not the page's own is refused;
// - fetch metadata: another site (another port of this machine included) may link to a page
//   but not load it as an image, script or fetch;
// - no page is cached (mail, codes and passphrases must not outlive the tab);
// - htmx and the UI's own script and style are served from the installed packages.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import helmet from '@fastify/helmet'
import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { isIP } from 'node:net'
import type { Logger } from 'pino'
import { errorPage } from './views/layout.ts'

export function isLoopback (host: string): boolean {
  if (host === 'localhost') return true
  if (isIP(host) === 4) return host.startsWith('127.')
  if (isIP(host) === 6) return host === '::1'
  return false
}

/** The static files every page loads. */
export const STATIC_PATHS = ['/static/htmx.min.js', '/static/app.css', '/static/app.js', '/favicon.ico']

export interface PageGuards {
  log: Logger
  /** Host header values served (the loopback names with the port); undefined: any. */
  hosts: () => Set<string> | undefined
  /** The page's own origin, for the "wrong address" answer. */
  origin: () => string
  /** Paths that other sites may load (the statics). */
  open: (path: string) => boolean
}

/** Helmet, the statics and the request checks above, on `fastify` before any route. */
export async function registerPageGuards (fastify: FastifyInstance, guards: PageGuards): Promise<void> {
  const { log } = guards
  await fastify.register(helmet, {
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'none'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'", 'data:'],
        connectSrc: ["'self'"],
        formAction: ["'self'"],
        frameAncestors: ["'none'"],
        baseUri: ["'none'"]
      }
    },
    crossOriginEmbedderPolicy: true,
    // same-origin, not no-referrer: under no-referrer Chromium sends "Origin: null" with the
    // page's own form posts (Fetch standard, "serializing a request origin"), and the Origin
    // check below would refuse every one of them. same-origin still sends no Referer to
    // any other site.
    referrerPolicy: { policy: 'same-origin' },
    hsts: false // plain HTTP on loopback
  })

  const htmxPath = createRequire(import.meta.url).resolve('htmx.org/dist/htmx.min.js')
  const statics = new Map<string, { type: string, body: Buffer }>([
    ['/static/htmx.min.js', { type: 'text/javascript; charset=utf-8', body: await readFile(htmxPath) }],
    ['/static/app.js', { type: 'text/javascript; charset=utf-8', body: await readFile(new URL('./static/app.js', import.meta.url)) }],
    ['/static/app.css', { type: 'text/css; charset=utf-8', body: await readFile(new URL('./static/app.css', import.meta.url)) }]
  ])
  for (const [path, file] of statics) {
    fastify.get(path, async (_request, reply) => reply.type(file.type).header('Cache-Control', 'no-cache').send(file.body))
  }
  fastify.get('/favicon.ico', async (_request, reply) => reply.code(204).send())

  fastify.addHook('onRequest', async (request, reply) => {
    const host = request.headers.host ?? ''
    // DNS rebinding: a page of evil.example whose name now points at 127.0.0.1 reaches this
    // port with "Host: evil.example:<port>". Only loopback names are served (unless the
    // server was explicitly opened beyond loopback, where the Host cannot be known here).
    const hosts = guards.hosts()
    if (hosts !== undefined && !hosts.has(host.toLowerCase())) {
      log.warn('A request for another host name was refused (DNS rebinding?).')
      return await reply.code(421).type('text/html; charset=utf-8').send(errorPage('Wrong address', `Open this page at ${guards.origin()}.`).value)
    }
    if (request.method === 'POST') {
      const from = request.headers.origin
      // Browsers send Origin on every POST (Fetch standard); one that is not this page's
      // own, or "null" (an opaque origin: a sandboxed frame, or a cross-origin post under
      // our referrer policy), means another page is trying to act with the owner's cookie.
      if (from !== undefined && from !== `http://${host}`) {
        log.warn('A request from another origin was refused.')
        return await reply.code(403).type('text/html; charset=utf-8').send(errorPage('Refused', 'This request came from another web site, so it was refused.').value)
      }
    }
    if (guards.open(pathOf(request))) return
    // Fetch metadata (resource isolation): another page, even on another port of this
    // machine (the same site, so the cookie goes along), may link here but not load the
    // pages as images, scripts or fetches, which would act with the owner's cookie.
    const site = request.headers['sec-fetch-site']
    if ((site === 'cross-site' || site === 'same-site') && request.headers['sec-fetch-mode'] !== 'navigate') {
      return await reply.code(403).type('text/html; charset=utf-8').send(errorPage('Refused', 'This request came from another web site, so it was refused.').value)
    }
  })
  // Pages must not outlive a lock (or the end of a recovery) in the browser's cache or history.
  fastify.addHook('onSend', async (request, reply, payload) => {
    if (!request.url.startsWith('/static/')) reply.header('Cache-Control', 'no-store')
    return payload
  })
}

export function pathOf (request: FastifyRequest): string {
  return request.url.split('?')[0]!
}

/** The Host values a loopback listener answers to. */
export function loopbackHostsOf (host: string, port: number): Set<string> {
  return new Set([`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`, `${host}:${port}`])
}
