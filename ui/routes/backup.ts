// Backups: state and progress on every target, what would be lost now, "Back up now" and
// "Audit friends now". Both start work and answer at once; the page polls while it runs.
import type { FastifyInstance } from 'fastify'
import type { RouteContext } from '../server.ts'
import { backupFragment, backupView } from '../views/backup.ts'

export function backupRoutes (fastify: FastifyInstance, context: RouteContext): void {
  const { node } = context

  fastify.get('/backup', async (request, reply) => {
    const flash = context.takeFlash(request)
    return context.send(request, reply, { title: 'Backups', nav: 'backup', body: backupView(await node.backupOverview(), context.session(request).csrfToken, flash) })
  })

  fastify.get('/live/backup', async (request, reply) => {
    return await reply.type('text/html; charset=utf-8').send(backupFragment(await node.backupOverview(), context.session(request).csrfToken).value)
  })

  for (const [path, start, said] of [
    ['/backup/run', () => { node.startBackup() }, 'The backup started. Its progress shows below.'],
    ['/backup/audit', () => { node.startAudit() }, 'The audit of your friends started.']
  ] as const) {
    fastify.post(path, async (request, reply) => {
      start()
      if (request.headers['hx-request'] === 'true') {
        return await reply.type('text/html; charset=utf-8').send(backupFragment(await node.backupOverview(), context.session(request).csrfToken, said).value)
      }
      context.flash(request, said)
      return await reply.redirect('/backup', 303)
    })
  }
}
