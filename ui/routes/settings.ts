// Settings: the owner's OpenPGP key (download the public key, back up and replace the secret
// key, make a new one, revoke), the legacy relay (with a connection test), per-device
// submission credentials, the passphrase, and the auto-lock time.
//
// Secrets (the backup passphrase, a secret key pasted in) are never logged and never put back
// in a page: a form that failed comes back empty. The secret key leaves only as the download
// the owner asked for, locked with their passphrase.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { RouteContext } from '../server.ts'
import type { RelaySettings } from '../node-api.ts'
import { relayTestResult, settingsView, type SettingsView } from '../views/settings.ts'
import { formatFingerprint } from '../views/security.ts'

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
    const [relay, credentials, ui, health, ownKey] = await Promise.all([node.relaySettings(), node.credentials().catch((err: Error) => err), node.uiSettings(), node.health(), node.ownKey().catch((err: Error) => err)])
    const flash = context.takeFlash(request)
    const view: SettingsView = {
      ...(relay !== undefined ? { relay } : {}),
      credentials: credentials instanceof Error ? [] : credentials,
      ...(credentials instanceof Error ? { credentialsProblem: credentials.message } : {}),
      ui,
      submission: health.submission,
      ...(ownKey instanceof Error ? { ownKeyProblem: ownKey.message } : { ownKey }),
      csrfToken: context.session(request).csrfToken,
      ...(flash !== undefined ? { result: { ok: true, text: flash } } : {}),
      ...extra
    }
    return context.send(request, reply, { title: 'Settings', nav: 'settings', body: settingsView(view) })
  }

  fastify.get('/settings', async (request, reply) => await render(request, reply))

  /** An armored key as a file download, never shown as a page. */
  function download (reply: FastifyReply, filename: string, armored: string): FastifyReply {
    return reply
      .header('Content-Type', 'application/pgp-keys')
      .header('Content-Disposition', `attachment; filename="${filename}"`)
      .header('Content-Security-Policy', "default-src 'none'; sandbox")
      .send(armored)
  }

  /** A key operation whose mistakes (a short passphrase, a key that is not one) the owner reads on the page. */
  async function keyAction (request: FastifyRequest, reply: FastifyReply, work: () => Promise<FastifyReply | string>): Promise<FastifyReply> {
    let done: FastifyReply | string
    try {
      done = await work()
    } catch (err) {
      const e = err as Error & { statusCode?: number }
      if (e.statusCode !== 400 && e.name !== 'OpenPgpKeyError') throw e
      return await render(request, reply.code(400), { result: { ok: false, text: e.message } })
    }
    if (typeof done !== 'string') return done
    context.flash(request, done)
    return await reply.redirect('/settings', 303)
  }

  fastify.get('/settings/openpgp/public-key', async (_request, reply) => {
    const key = await node.ownKey()
    return download(reply, `${key.fingerprint}.asc`, key.armoredPublicKey)
  })

  fastify.post<{ Body: Form }>('/settings/openpgp/export', async (request, reply) => {
    const { passphrase = '', repeat = '' } = request.body ?? {}
    return await keyAction(request, reply, async () => {
      if (passphrase !== repeat) throw Object.assign(new Error('The two passphrases differ; nothing was exported.'), { statusCode: 400 })
      const armored = await node.exportSecretKey(passphrase)
      const key = await node.ownKey()
      return download(reply, `${key.fingerprint}-secret-backup.asc`, armored)
    })
  })

  fastify.post<{ Body: Form }>('/settings/openpgp/import', async (request, reply) => {
    const { armored = '', passphrase = '' } = request.body ?? {}
    return await keyAction(request, reply, async () => {
      const key = await node.importSecretKey(armored, passphrase === '' ? undefined : passphrase)
      context.logger.info('The owner replaced their OpenPGP key from the web UI.')
      return `Your key is now ${formatFingerprint(key.fingerprint)}. The old one is kept to read old mail.`
    })
  })

  fastify.post<{ Body: Form }>('/settings/openpgp/regenerate', async (request, reply) => {
    return await keyAction(request, reply, async () => {
      if (request.body?.confirm !== '1') throw Object.assign(new Error('Nothing was changed: tick the box to confirm.'), { statusCode: 400 })
      const key = await node.regenerateKey()
      return `Your new key is ${formatFingerprint(key.fingerprint)}. The old one is kept to read old mail.`
    })
  })

  fastify.post<{ Body: Form }>('/settings/openpgp/revoke', async (request, reply) => {
    if (request.body?.confirm !== '1') return await render(request, reply.code(400), { result: { ok: false, text: 'Nothing was revoked: tick the box to confirm.' } })
    const { revokedPublicKey, newKey } = await node.revokeKey()
    context.session(request).revokedPublicKey = revokedPublicKey
    return await render(request, reply, { revokedPublicKey, result: { ok: true, text: `The key is revoked. Your new key is ${formatFingerprint(newKey.fingerprint)}.` } })
  })

  fastify.get('/settings/openpgp/revoked-key', async (request, reply) => {
    const revoked = context.session(request).revokedPublicKey
    if (revoked === undefined) throw Object.assign(new Error('There is no revoked key to download in this session.'), { statusCode: 404 })
    return download(reply, 'revoked-public-key.asc', revoked)
  })

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
