// Friends: the list, invites (made here, shown once with their QR code), accepting one,
// the storage offered to a friend, removing one. The invite text holds a secret: it is never
// logged and never put in a URL.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { RouteContext } from '../server.ts'
import type { FriendInvite } from '../node-api.ts'
import { friendsView, inviteResult } from '../views/friends.ts'
import { notice } from '../views/layout.ts'

type Form = Record<string, string | undefined>

const ONION = /^[a-z2-7]{56}$/
const MAX_MIB = 16 * 1024 * 1024

function mib (value: string | undefined): number {
  const n = Number(value)
  if (value === undefined || value.trim() === '' || !Number.isInteger(n) || n < 0 || n > MAX_MIB) throw Object.assign(new Error('The storage is a whole number of MiB (1024 MiB is 1 GiB).'), { statusCode: 400 })
  return n
}

function onionParam (onion: string): string {
  if (!ONION.test(onion)) throw Object.assign(new Error('That is not a friend\'s address.'), { statusCode: 400 })
  return onion
}

export function friendsRoutes (fastify: FastifyInstance, context: RouteContext): void {
  const { node } = context

  async function render (request: FastifyRequest, reply: FastifyReply, extra: { result?: { ok: boolean, text: string }, invite?: FriendInvite } = {}): Promise<FastifyReply> {
    const enabled = node.friendsEnabled()
    const flash = context.takeFlash(request)
    const body = friendsView({
      enabled,
      friends: enabled ? await node.friends() : [],
      csrfToken: context.session(request).csrfToken,
      ...(flash !== undefined ? { result: { ok: true, text: flash } } : {}),
      ...extra
    })
    return context.send(request, reply, { title: 'Friends', nav: 'friends', body })
  }

  /** Runs an action; a mistake of the owner's (status 400) comes back on the page, in words. */
  async function attempt (request: FastifyRequest, reply: FastifyReply, work: () => Promise<string>): Promise<FastifyReply> {
    let text: string
    try {
      text = await work()
    } catch (err) {
      const e = err as Error & { statusCode?: number }
      if (e.statusCode !== 400) throw e
      return await render(request, reply.code(400), { result: { ok: false, text: e.message } })
    }
    context.flash(request, text)
    return await reply.redirect('/friends', 303)
  }

  fastify.get('/friends', async (request, reply) => await render(request, reply))

  fastify.post<{ Body: Form }>('/friends/invite', async (request, reply) => {
    const htmx = request.headers['hx-request'] === 'true'
    let invite: FriendInvite
    try {
      invite = await node.inviteFriend(mib(request.body?.quotaMiB))
    } catch (err) {
      const e = err as Error & { statusCode?: number }
      if (e.statusCode !== 400) throw e
      // htmx swaps only 2xx answers in: the mistake goes into the result box.
      if (htmx) return await reply.type('text/html; charset=utf-8').send(notice('error', e.message).value)
      return await render(request, reply.code(400), { result: { ok: false, text: e.message } })
    }
    if (htmx) return await reply.type('text/html; charset=utf-8').send(inviteResult(invite).value)
    return await render(request, reply, { invite })
  })

  fastify.post<{ Body: Form }>('/friends/accept', async (request, reply) => {
    const { code = '', quotaMiB } = request.body ?? {}
    return await attempt(request, reply, async () => {
      const text = code.trim()
      if (text === '') throw Object.assign(new Error('Paste the invite your friend gave you.'), { statusCode: 400 })
      const friend = await node.acceptInvite(text, mib(quotaMiB))
      return `${friend.name} is now your friend.`
    })
  })

  fastify.post<{ Params: { onion: string }, Body: Form }>('/friends/:onion/quota', async (request, reply) => {
    return await attempt(request, reply, async () => {
      const onion = onionParam(request.params.onion)
      const quota = mib(request.body?.quotaMiB)
      if (!await node.setFriendQuota(onion, quota)) throw Object.assign(new Error('There is no such friend (removed already?).'), { statusCode: 400 })
      return `You now offer ${quota} MiB to this friend.`
    })
  })

  fastify.post<{ Params: { onion: string }, Body: Form }>('/friends/:onion/remove', async (request, reply) => {
    return await attempt(request, reply, async () => {
      const onion = onionParam(request.params.onion)
      if (request.body?.confirm !== '1') throw Object.assign(new Error('Nothing was changed: tick the box to confirm.'), { statusCode: 400 })
      const { told } = await node.removeFriend(onion)
      return `The friend was removed${told ? ' and told so' : ' (their node could not be told now)'}. Your shards they held are being placed on your other friends.`
    })
  })
}
