// The node at a glance: Tor, the published endpoint, the queue, storage health and disk use,
// with the live part polled by htmx; and starting a storage check (scrub) with its progress.
import type { FastifyInstance } from 'fastify'
import type { RouteContext } from '../server.ts'
import { dashboardView, healthFragment } from '../views/dashboard.ts'

export function dashboardRoutes (fastify: FastifyInstance, context: RouteContext): void {
  const { node } = context

  fastify.get('/dashboard', async (request, reply) => {
    const flash = context.takeFlash(request)
    return context.send(request, reply, { title: 'Node', nav: 'dashboard', body: await dashboardView(await node.health(), context.session(request).csrfToken, flash) })
  })

  fastify.get('/live/dashboard', async (request, reply) => {
    return await reply.type('text/html; charset=utf-8').send(healthFragment(await node.health(), context.session(request).csrfToken).value)
  })

  fastify.post('/scrub', async (request, reply) => {
    node.startScrub()
    context.flash(request, 'The storage check started. Its progress shows below.')
    return await reply.redirect('/dashboard', 303)
  })
}
