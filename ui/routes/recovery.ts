// Recovery: custodians (checked on demand), appointing them (the passphrase is asked again),
// the shares held for friends, and recovery requests approved or refused by hand. No share
// and no kit ever reaches a page or a log line.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { RouteContext } from '../server.ts'
import { custodiansFragment, recoveryView, requestsFragment } from '../views/recovery.ts'
import { FRIENDS_OFF } from '../views/friends.ts'
import { html } from '../html.ts'
import { notice } from '../views/layout.ts'

type Form = Record<string, string | string[] | undefined>

const REQUEST_ID = /^[A-Za-z0-9_-]{1,128}$/

export function recoveryRoutes (fastify: FastifyInstance, context: RouteContext): void {
  const { node } = context

  async function render (request: FastifyRequest, reply: FastifyReply, result?: { ok: boolean, text: string }): Promise<FastifyReply> {
    if (!node.friendsEnabled()) return context.send(request, reply, { title: 'Recovery', nav: 'recovery', body: html`<h1>Recovery</h1>${notice('warning', FRIENDS_OFF)}` })
    const flash = context.takeFlash(request)
    const shown = result ?? (flash !== undefined ? { ok: true, text: flash } : undefined)
    const body = recoveryView({ overview: await node.recoveryOverview(), csrfToken: context.session(request).csrfToken, ...(shown !== undefined ? { result: shown } : {}) })
    return context.send(request, reply, { title: 'Recovery', nav: 'recovery', body })
  }

  async function attempt (request: FastifyRequest, reply: FastifyReply, work: () => Promise<string>): Promise<FastifyReply> {
    let text: string
    try {
      text = await work()
    } catch (err) {
      const e = err as Error & { statusCode?: number }
      if (e.name === 'VaultLockedError') throw e
      if (e.name === 'WrongSecretError') return await render(request, reply.code(400), { ok: false, text: 'The passphrase is wrong; nothing was changed.' })
      if (e.name === 'UnlockThrottledError') return await render(request, reply.code(400), { ok: false, text: 'Too many wrong passphrases: wait, then try again.' })
      if (e.statusCode !== 400) throw e
      return await render(request, reply.code(400), { ok: false, text: e.message })
    }
    context.flash(request, text)
    return await reply.redirect('/recovery', 303)
  }

  fastify.get('/recovery', async (request, reply) => await render(request, reply))

  fastify.get('/live/recovery/requests', async (request, reply) => {
    if (!node.friendsEnabled()) return await reply.code(286).send() // htmx: stop polling
    return await reply.type('text/html; charset=utf-8').send(requestsFragment(await node.recoveryOverview(), context.session(request).csrfToken).value)
  })

  fastify.get('/live/recovery/custodians', async (request, reply) => {
    if (!node.friendsEnabled()) return await reply.code(286).send()
    return await reply.type('text/html; charset=utf-8').send(custodiansFragment(await node.recoveryOverview(), context.session(request).csrfToken).value)
  })

  fastify.post('/recovery/check', async (request, reply) => {
    return await attempt(request, reply, async () => {
      node.startCustodianCheck()
      return 'Your custodians are being asked to prove they hold their shares.'
    })
  })

  fastify.post<{ Body: Form }>('/recovery/appoint', async (request, reply) => {
    const form = request.body ?? {}
    return await attempt(request, reply, async () => {
      const chosen = [form.custodian ?? []].flat().filter((c): c is string => typeof c === 'string')
      const threshold = Number(form.threshold)
      const passphrase = typeof form.passphrase === 'string' ? form.passphrase : ''
      if (passphrase === '') throw Object.assign(new Error('Enter your passphrase to appoint custodians.'), { statusCode: 400 })
      if (chosen.length < 2) throw Object.assign(new Error('Choose at least two custodians.'), { statusCode: 400 })
      if (!Number.isInteger(threshold)) throw Object.assign(new Error('Say how many custodians are needed, as a whole number.'), { statusCode: 400 })
      await node.appointCustodians(chosen, threshold, passphrase)
      return `Your ${chosen.length} custodians were appointed: any ${threshold} of them can bring your key back.`
    })
  })

  fastify.post<{ Params: { id: string } }>('/recovery/requests/:id/approve', async (request, reply) => {
    return await attempt(request, reply, async () => {
      if (!REQUEST_ID.test(request.params.id)) throw Object.assign(new Error('There is no such recovery request.'), { statusCode: 400 })
      await node.approveRecovery(request.params.id)
      context.logger.info('A recovery request was approved from the web UI.')
      return 'Approved: the share was sealed to the requester\'s key; their new machine fetches it now.'
    })
  })

  fastify.post<{ Params: { id: string } }>('/recovery/requests/:id/refuse', async (request, reply) => {
    return await attempt(request, reply, async () => {
      if (!REQUEST_ID.test(request.params.id)) throw Object.assign(new Error('There is no such recovery request.'), { statusCode: 400 })
      await node.refuseRecovery(request.params.id)
      return 'Refused: nothing was released.'
    })
  })
}
