// Contacts: the people the owner writes with and their OpenPGP keys: compare fingerprints and
// mark a key verified, decide on a changed key, add a key by pasting it, look one up over Tor
// and accept what was found. Nothing found by a lookup is used until the owner accepts it.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { RouteContext } from '../server.ts'
import type { FoundKey } from '../node-api.ts'
import { contactsView, foundKeysView, type ContactsView } from '../views/contacts.ts'
import { contactAnchor, formatFingerprint } from '../views/security.ts'
import { html } from '../html.ts'

type Form = Record<string, unknown>

/** Keys from lookups kept per session (see Session.foundKeys). */
const MAX_FOUND_KEPT = 20

/** A form field as text: urlencoded bodies give strings, multipart ones (htmx inside the compose form) { value }. */
function field (form: Form | undefined, name: string): string {
  const v = form?.[name]
  if (typeof v === 'string') return v
  const value = (v as { value?: unknown } | undefined)?.value
  return typeof value === 'string' ? value : ''
}

/** Errors that are the owner's to read (a wrong fingerprint, an unusable key): shown on the page. */
function isOwnersMistake (err: unknown): boolean {
  const e = err as Error & { statusCode?: number }
  return e.statusCode === 400 || e.name === 'OpenPgpKeyError' || e.name === 'KeyLookupError'
}

export function contactsRoutes (fastify: FastifyInstance, context: RouteContext): void {
  const { node } = context

  async function render (request: FastifyRequest, reply: FastifyReply, extra: Partial<ContactsView> = {}): Promise<FastifyReply> {
    const flash = context.takeFlash(request)
    const view: ContactsView = {
      contacts: await node.contacts(),
      csrfToken: context.session(request).csrfToken,
      ...(flash !== undefined ? { result: { ok: true, text: flash } } : {}),
      ...extra
    }
    return context.send(request, reply, { title: 'Contacts', nav: 'contacts', body: contactsView(view) })
  }

  /** Run an action that changes a contact; its mistakes are shown on the page, with 400. */
  async function act (request: FastifyRequest, reply: FastifyReply, work: () => Promise<string>, anchor?: string): Promise<FastifyReply> {
    let text: string
    try {
      text = await work()
    } catch (err) {
      if (!isOwnersMistake(err)) throw err
      return await render(request, reply.code(400), { result: { ok: false, text: (err as Error).message } })
    }
    context.flash(request, text)
    return await reply.redirect(`/contacts${anchor !== undefined ? `#${anchor}` : ''}`, 303)
  }

  fastify.get('/contacts', async (request, reply) => await render(request, reply))

  fastify.post<{ Body: Form }>('/contacts/verify', async (request, reply) => {
    const address = field(request.body, 'address')
    const fingerprint = field(request.body, 'fingerprint')
    return await act(request, reply, async () => {
      if (fingerprint.trim() === '') throw Object.assign(new Error('Type the fingerprint they read to you.'), { statusCode: 400 })
      await node.verifyContact(address, fingerprint)
      return `The key of ${address} is marked verified.`
    }, contactAnchor(address))
  })

  fastify.post<{ Body: Form }>('/contacts/accept', async (request, reply) => {
    const address = field(request.body, 'address')
    const fingerprint = field(request.body, 'fingerprint')
    return await act(request, reply, async () => {
      await node.acceptChangedKey(address, fingerprint)
      return `The new key ${formatFingerprint(fingerprint)} is now used for ${address}. Compare it with them and mark it verified.`
    }, contactAnchor(address))
  })

  fastify.post<{ Body: Form }>('/contacts/keep', async (request, reply) => {
    const address = field(request.body, 'address')
    const fingerprint = field(request.body, 'fingerprint')
    return await act(request, reply, async () => {
      await node.keepOldKey(address, fingerprint)
      return `The old key stays in use for ${address}. The new key stays listed until you accept it.`
    }, contactAnchor(address))
  })

  fastify.post<{ Body: Form }>('/contacts/import', async (request, reply) => {
    const armored = field(request.body, 'armored')
    const address = field(request.body, 'address').trim()
    return await act(request, reply, async () => {
      const added = await node.importContactKey(armored, address === '' ? undefined : address)
      if (added.length === 0) return 'That key names only your own addresses: nothing was added.'
      return `The key is now used for ${added.map(c => c.address).join(', ')}.`
    }, address !== '' ? contactAnchor(address) : undefined)
  })

  // A lookup goes over Tor to the recipient's domain and the keyservers configured. From the
  // compose page (htmx) the answer is the list of keys found, to swap in beside the recipient.
  fastify.post<{ Body: Form }>('/contacts/lookup', async (request, reply) => {
    const address = field(request.body, 'address').trim()
    const inline = request.headers['hx-request'] === 'true'
    let lookup: { address: string, found: FoundKey[], problems: string[] }
    try {
      if (address === '') throw Object.assign(new Error('Give the address whose key to look up.'), { statusCode: 400 })
      lookup = { address, ...(await node.lookupKey(address)) }
    } catch (err) {
      if (!isOwnersMistake(err)) throw err
      // htmx swaps only 2xx answers: the problem goes in the box as a sentence.
      if (inline) return await reply.type('text/html; charset=utf-8').send(html`<p class="notice error" role="alert">${(err as Error).message}</p>`.value)
      return await render(request, reply.code(400), { result: { ok: false, text: (err as Error).message } })
    }
    const session = context.session(request)
    session.foundKeys = [...lookup.found.map(k => ({ address, fingerprint: k.fingerprint, armoredPublicKey: k.armoredPublicKey })), ...(session.foundKeys ?? [])].slice(0, MAX_FOUND_KEPT)
    if (inline) return await reply.type('text/html; charset=utf-8').send(foundKeysView(lookup, { inline: true, csrfToken: session.csrfToken }).value)
    return await render(request, reply, { lookup })
  })

  fastify.post<{ Body: Form }>('/contacts/accept-found', async (request, reply) => {
    const address = field(request.body, 'address')
    const fingerprint = field(request.body, 'fingerprint')
    const inline = request.headers['hx-request'] === 'true'
    const found = context.session(request).foundKeys?.find(k => k.fingerprint === fingerprint && k.address.toLowerCase() === address.toLowerCase())
    let text: string
    try {
      if (found === undefined) throw Object.assign(new Error('That key is no longer at hand: look it up again.'), { statusCode: 400 })
      await node.importContactKey(found.armoredPublicKey, address)
      text = `The key ${formatFingerprint(fingerprint)} is now used for ${address}.`
    } catch (err) {
      if (!isOwnersMistake(err)) throw err
      if (inline) return await reply.type('text/html; charset=utf-8').send(html`<p class="notice error" role="alert">${(err as Error).message}</p>`.value)
      return await render(request, reply.code(400), { result: { ok: false, text: (err as Error).message } })
    }
    if (inline) {
      // The compose page redraws the recipients' routes and keys when this event fires.
      return await reply.header('HX-Trigger-After-Settle', 'keys-changed').type('text/html; charset=utf-8').send(html`<p class="notice ok" role="status">${text}</p>`.value)
    }
    context.flash(request, text)
    return await reply.redirect(`/contacts#${contactAnchor(address)}`, 303)
  })
}
