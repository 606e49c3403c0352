// Settings: the legacy relay (with a connection test), per-device submission credentials,
// the passphrase, and the auto-lock time.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { RouteContext } from '../server.ts'
import type { RelaySettings } from '../node-api.ts'
import { relayTestResult, settingsView, type SettingsView } from '../views/settings.ts'

type Form = Record<string, string | undefined>

function relayFrom (form: Form): RelaySettings {
  const host = String(form.host ?? '').trim()
  if (host === '' || host.length > 253 || /[\s/@]/.test(host)) throw Object.assign(new Error('Enter the relay server\'s host name, like smtp.example.org.'), { statusCode: 400 })
  const port = Number(form.port)
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw Object.assign(new Error('The port must be a number from 1 to 65535 (usually 587).'), { statusCode: 400 })
  const username = String(form.username ?? '').trim()
  const password = String(form.password ?? '')
  const settings: RelaySettings = { host, port, requireTls: form.requireTls === '1', verifyCertificate: form.verifyCertificate === '1', viaTor: form.viaTor === '1' }
  if (username !== '') {
    settings.username = username
    // An empty password field keeps the saved one: the node never sends it back to the page.
    if (password !== '') settings.password = password
  }
  return settings
}

export function settingsRoutes (fastify: FastifyInstance, context: RouteContext): void {
  const { node } = context

  async function render (request: FastifyRequest, reply: FastifyReply, extra: Partial<SettingsView> = {}): Promise<FastifyReply> {
    // The rest of the page must stay usable when the credentials cannot be read.
    const [relay, credentials, ui, health] = await Promise.all([node.relaySettings(), node.credentials().catch((err: Error) => err), node.uiSettings(), node.health()])
    const flash = context.takeFlash(request)
    const view: SettingsView = {
      ...(relay !== undefined ? { relay } : {}),
      credentials: credentials instanceof Error ? [] : credentials,
      ...(credentials instanceof Error ? { credentialsProblem: credentials.message } : {}),
      ui,
      submission: health.submission,
      csrfToken: context.session(request).csrfToken,
      ...(flash !== undefined ? { result: { ok: true, text: flash } } : {}),
      ...extra
    }
    return context.send(request, reply, { title: 'Settings', nav: 'settings', body: settingsView(view) })
  }

  fastify.get('/settings', async (request, reply) => await render(request, reply))

  fastify.post<{ Body: Form }>('/settings/relay', async (request, reply) => {
    const form = request.body ?? {}
    if (form.action === 'remove') {
      await node.saveRelaySettings(undefined)
      context.flash(request, 'The relay was removed. Mail to ordinary addresses now fails at once, saying so.')
      return await reply.redirect('/settings', 303)
    }
    let settings: RelaySettings
    try {
      settings = relayFrom(form)
    } catch (err) {
      return await render(request, reply.code(400), { result: { ok: false, text: (err as Error).message } })
    }
    if (form.action === 'test') {
      const result = await node.testRelay(settings).catch((err: Error) => ({ ok: false, message: err.message }))
      return await render(request, reply, { result: { ok: result.ok, text: result.message } })
    }
    await node.saveRelaySettings(settings)
    context.flash(request, `The relay is now ${settings.host}:${settings.port}.`)
    return await reply.redirect('/settings', 303)
  })

  fastify.post<{ Body: Form }>('/settings/relay/test', async (request, reply) => {
    let settings: RelaySettings
    try {
      settings = relayFrom(request.body ?? {})
    } catch (err) {
      return await reply.type('text/html; charset=utf-8').send(relayTestResult({ ok: false, message: (err as Error).message }).value)
    }
    // Errors go into the page's result box: htmx does not swap a 4xx answer in.
    const result = await node.testRelay(settings).catch((err: Error) => ({ ok: false, message: err.message }))
    return await reply.type('text/html; charset=utf-8').send(relayTestResult(result).value)
  })

  fastify.post<{ Body: Form }>('/settings/credentials', async (request, reply) => {
    const name = String(request.body?.name ?? '').trim()
    if (name === '' || name.length > 64) return await render(request, reply.code(400), { result: { ok: false, text: 'Name the device in 1 to 64 characters.' } })
    const made = await node.addCredential(name)
    context.logger.info({ credential: made.credential.id }, 'A submission credential was made.')
    return await render(request, reply, { newCredential: made })
  })

  fastify.post<{ Params: { id: string } }>('/settings/credentials/:id/revoke', async (request, reply) => {
    const revoked = await node.revokeCredential(request.params.id)
    context.flash(request, revoked ? 'The credential was revoked: that device can no longer send.' : 'There is no such credential (revoked already?).')
    return await reply.redirect('/settings', 303)
  })

  fastify.post<{ Params: { id: string } }>('/settings/credentials/:id/enable', async (request, reply) => {
    const enabled = await node.enableCredential(request.params.id)
    context.flash(request, enabled ? 'The credential works again, with the same password.' : 'There is no such credential (revoked?).')
    return await reply.redirect('/settings', 303)
  })

  fastify.post<{ Body: Form }>('/settings/passphrase', async (request, reply) => {
    const { current = '', next = '', repeat = '' } = request.body ?? {}
    if (next !== repeat) return await render(request, reply.code(400), { result: { ok: false, text: 'The two new passphrases differ.' } })
    try {
      await node.changePassphrase(current, next)
    } catch (err) {
      const e = err as Error
      if (e.name === 'VaultLockedError') throw e
      const text = e.name === 'WrongSecretError' ? 'The current passphrase is wrong; nothing was changed.' : e.name === 'UnlockThrottledError' ? 'Too many wrong passphrases: wait, then try again.' : e.message
      return await render(request, reply.code(400), { result: { ok: false, text } })
    }
    context.logger.info('The passphrase was changed from the web UI.')
    context.flash(request, 'The passphrase is changed. Use the new one from now on.')
    return await reply.redirect('/settings', 303)
  })

  fastify.post<{ Body: Form }>('/settings/autolock', async (request, reply) => {
    const minutes = Number(request.body?.minutes)
    if (!Number.isInteger(minutes) || minutes < 0 || minutes > 1440) return await render(request, reply.code(400), { result: { ok: false, text: 'Auto-lock takes a whole number of minutes from 0 to 1440.' } })
    await node.saveUiSettings({ autoLockMinutes: minutes })
    context.touched()
    context.flash(request, minutes === 0 ? 'The vault no longer locks by itself.' : `The vault locks after ${minutes} minutes without use.`)
    return await reply.redirect('/settings', 303)
  })
}
