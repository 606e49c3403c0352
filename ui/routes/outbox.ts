// The outbox: every message still being delivered, each recipient's state in plain words,
// retry now and cancel.
import type { FastifyInstance } from 'fastify'
import type { RouteContext } from '../server.ts'
import { outboxList, outboxView } from '../views/outbox.ts'

const QUEUE_ID = /^[A-Za-z0-9_-]{1,64}$/

export function outboxRoutes (fastify: FastifyInstance, context: RouteContext): void {
  const { node } = context

  fastify.get('/outbox', async (request, reply) => {
    const flash = context.takeFlash(request)
    return context.send(request, reply, { title: 'Outbox', nav: 'outbox', body: outboxView({ entries: await node.outbox(), csrfToken: context.session(request).csrfToken, ...(flash !== undefined ? { notice: flash } : {}) }) })
  })

  fastify.get('/live/outbox', async (request, reply) => {
    return await reply.type('text/html; charset=utf-8').send(outboxList(await node.outbox(), context.session(request).csrfToken).value)
  })

  fastify.post<{ Params: { id: string } }>('/outbox/:id/retry', async (request, reply) => {
    if (!QUEUE_ID.test(request.params.id)) throw Object.assign(new Error('No such message in the outbox.'), { statusCode: 404 })
    context.flash(request, node.retry(request.params.id) ? 'Trying again now.' : 'That message is no longer being sent.')
    return await reply.redirect('/outbox', 303)
  })

  fastify.post<{ Params: { id: string } }>('/outbox/:id/cancel', async (request, reply) => {
    if (!QUEUE_ID.test(request.params.id)) throw Object.assign(new Error('No such message in the outbox.'), { statusCode: 404 })
    const cancelled = await node.cancel(request.params.id)
    context.flash(request, cancelled ? 'Sending was cancelled for the recipients not reached yet. The message goes to Sent.' : 'That message is no longer being sent: there was nothing to cancel.')
    return await reply.redirect('/outbox', 303)
  })
}
