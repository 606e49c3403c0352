// Unlock (signing in) and lock. Entering the passphrase or recovery code is the only way to
// get a session: when the vault is locked it unlocks it, when it is already unlocked (from the
// CLI) the secret is checked against the key slots all the same.
import type { FastifyInstance } from 'fastify'
import type { RouteContext } from '../server.ts'
import { sessionCookie, clearedSessionCookie } from '../sessions.ts'
import { unlockView } from '../views/unlock.ts'

interface UnlockForm { passphrase?: string, recoveryCode?: string, method?: string }

export function unlockRoutes (fastify: FastifyInstance, context: RouteContext, options: { attemptsPerMinute: number }): void {
  const { node } = context

  fastify.get('/unlock', async (request, reply) => {
    const method = (request.query as { method?: string }).method === 'recovery' ? 'recovery' : 'passphrase'
    return context.send(request, reply, { title: 'Unlock', body: unlockView({ state: node.vaultState(), method }) })
  })

  fastify.post('/unlock', {
    config: { rateLimit: { max: options.attemptsPerMinute, timeWindow: 60_000, errorResponseBuilder: (_req, ctx) => ({ statusCode: 429, message: `Too many unlock attempts: wait ${Math.ceil(ctx.ttl / 1000)} seconds and try again.` }) } }
  }, async (request, reply) => {
    const form = (request.body ?? {}) as UnlockForm
    const method = form.method === 'recovery' ? 'recovery' : 'passphrase'
    const state = node.vaultState()
    if (state === 'uninitialized') return context.send(request, reply.code(409), { title: 'Unlock', body: unlockView({ state, method }) })
    const secret = method === 'recovery' ? { recoveryCode: String(form.recoveryCode ?? '') } : { passphrase: String(form.passphrase ?? '') }
    try {
      if (state === 'locked') await node.unlock(secret)
      else await node.checkSecret(secret)
    } catch (err) {
      const e = err as Error & { retryAfterSeconds?: number }
      let message: string
      let code = 401
      if (e.name === 'UnlockThrottledError') {
        code = 429
        message = `Too many wrong attempts. Wait ${e.retryAfterSeconds === 1 ? '1 second' : `${e.retryAfterSeconds ?? 'a few'} seconds`}, then try again.`
        if (e.retryAfterSeconds !== undefined) reply.header('Retry-After', String(e.retryAfterSeconds))
      } else if (e.name === 'WrongSecretError') {
        message = method === 'recovery' ? 'That recovery code does not open this vault.' : 'That passphrase is wrong.'
      } else {
        code = 500
        context.logger.error({ err: e.message }, 'Unlocking failed.')
        message = `The vault could not be unlocked: ${e.message}`
      }
      return context.send(request, reply.code(code), { title: 'Unlock', body: unlockView({ state, method, error: message }) })
    }
    const session = context.sessions.create()
    context.touched()
    context.logger.info('Signed in to the web UI.')
    return reply.header('Set-Cookie', sessionCookie(session.id, context.root)).redirect('/mail/Inbox', 303)
  })

  fastify.post('/lock', async (_request, reply) => {
    context.sessions.clear()
    await node.lock()
    context.logger.info('The vault was locked from the web UI.')
    return reply.header('Set-Cookie', clearedSessionCookie(context.root)).redirect('/unlock', 303)
  })
}
