// Writing: a new message, a reply, reply-all, a forward, or a saved draft; the route each
// recipient will take, shown while typing; send (into the outbound queue) or save as a draft.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { RouteContext } from '../server.ts'
import type { Draft, DraftAttachment, Route } from '../node-api.ts'
import { composeView, routesFragment } from '../views/compose.ts'

const ID = /^[0-9]{1,20}$/
const MAX_ROUTES_SHOWN = 50

interface Field { value?: unknown, filename?: string, mimetype?: string, type?: string }

/** Fields of a multipart form (attachFieldsToBody): each is { value } or a list of them. */
function fieldsOf (body: unknown): Map<string, Field[]> {
  const out = new Map<string, Field[]>()
  if (typeof body !== 'object' || body === null) return out
  for (const [name, value] of Object.entries(body as Record<string, Field | Field[] | string>)) {
    const list = Array.isArray(value) ? value : [value]
    out.set(name, list.map(v => (typeof v === 'object' && v !== null ? v : { value: v })))
  }
  return out
}

function text (fields: Map<string, Field[]>, name: string): string {
  const v = fields.get(name)?.[0]?.value
  return typeof v === 'string' ? v : ''
}

export function splitAddresses (field: string): string[] {
  // Commas inside quoted display names do not separate addresses.
  const out: string[] = []
  let current = ''
  let quoted = false
  for (const c of field) {
    if (c === '"') quoted = !quoted
    if (c === ',' && !quoted) { out.push(current); current = '' } else current += c
  }
  out.push(current)
  return out.map(a => { const m = /<([^<>]*)>/.exec(a); return (m?.[1] ?? a).trim() }).filter(a => a !== '')
}

export function routesFor (node: RouteContext['node'], fields: string[]): Route[] {
  const seen = new Set<string>()
  const routes: Route[] = []
  for (const field of fields) {
    for (const address of splitAddresses(field)) {
      const key = address.toLowerCase()
      if (seen.has(key) || routes.length >= MAX_ROUTES_SHOWN) continue
      seen.add(key)
      routes.push(node.routeFor(address))
    }
  }
  return routes
}

export function composeRoutes (fastify: FastifyInstance, context: RouteContext): void {
  const { node } = context

  fastify.get<{ Querystring: { reply?: string, mode?: string, draft?: string } }>('/compose', async (request, reply) => {
    const q = request.query
    let draft: Draft = { to: '', cc: '', bcc: '', subject: '', body: '', attachments: [] }
    let draftId: string | undefined
    if (q.draft !== undefined && ID.test(q.draft)) {
      const loaded = await node.loadDraft(q.draft)
      if (loaded === undefined) throw Object.assign(new Error('That draft is gone (sent or deleted).'), { statusCode: 404 })
      draft = loaded
      draftId = q.draft
    } else if (q.reply !== undefined && ID.test(q.reply)) {
      const mode = q.mode === 'replyAll' || q.mode === 'forward' ? q.mode : 'reply'
      draft = await node.draftFrom(q.reply, mode)
    }
    const flash = context.takeFlash(request)
    return context.send(request, reply, {
      title: 'Write',
      nav: 'compose',
      body: composeView({ draft, ...(draftId !== undefined ? { draftId } : {}), routes: routesFor(node, [draft.to, draft.cc, draft.bcc]), csrfToken: context.session(request).csrfToken, maxUploadBytes: context.maxUploadBytes, ...(flash !== undefined ? { notice: flash } : {}) })
    })
  })

  fastify.post<{ Body: { to?: string, cc?: string, bcc?: string } }>('/compose/routes', async (request, reply) => {
    const b = request.body ?? {}
    return await reply.type('text/html; charset=utf-8').send(routesFragment(routesFor(node, [String(b.to ?? ''), String(b.cc ?? ''), String(b.bcc ?? '')])).value)
  })

  fastify.post('/compose', async (request: FastifyRequest, reply) => {
    if (!request.isMultipart()) throw Object.assign(new Error('The form must be sent as multipart/form-data.'), { statusCode: 400 })
    const fields = fieldsOf(request.body)
    const draftId = ID.test(text(fields, 'draftId')) ? text(fields, 'draftId') : undefined
    const inReplyToId = ID.test(text(fields, 'inReplyToId')) ? text(fields, 'inReplyToId') : undefined
    const attachments: DraftAttachment[] = []
    // Attachments shown on the form (of the draft being edited, or of the forwarded message)
    // stay unless unticked.
    const keep = new Set((fields.get('keepAttachment') ?? []).map(f => Number(f.value)))
    const forwardOfId = ID.test(text(fields, 'forwardOfId')) ? text(fields, 'forwardOfId') : undefined
    if (draftId !== undefined) {
      const old = await node.loadDraft(draftId)
      old?.attachments.forEach((a, i) => { if (keep.has(i)) attachments.push(a) })
    } else if (forwardOfId !== undefined) {
      for (const index of [...keep].sort((a, b) => a - b)) {
        const file = Number.isInteger(index) && index >= 0 ? await node.attachment(forwardOfId, index) : undefined
        if (file !== undefined) attachments.push(file)
      }
    }
    for (const file of fields.get('attachments') ?? []) {
      if (file.type !== 'file' || !Buffer.isBuffer(file.value) || file.filename === undefined || file.filename === '') continue
      attachments.push({ filename: file.filename, contentType: file.mimetype ?? 'application/octet-stream', content: file.value })
    }
    const draft: Draft = {
      to: text(fields, 'to'),
      cc: text(fields, 'cc'),
      bcc: text(fields, 'bcc'),
      subject: text(fields, 'subject'),
      body: text(fields, 'body'),
      attachments,
      ...(inReplyToId !== undefined ? { inReplyToId } : {})
    }
    const action = text(fields, 'action') === 'save' ? 'save' : 'send'
    try {
      if (action === 'save') {
        const id = await node.saveDraft(draft, draftId)
        context.flash(request, 'The draft is saved.')
        return await reply.redirect(`/compose?draft=${id}`, 303)
      }
      await node.send(draft, draftId)
    } catch (err) {
      const e = err as Error
      if (e.name === 'VaultLockedError') throw e
      context.logger.info({ err: e.name }, 'A message could not be sent from the UI.')
      // Nothing typed or attached may be lost: a message that could not be sent is kept as a
      // draft (the form alone cannot carry attachments back), and the form shows that draft.
      let kept = draftId
      let note = ''
      if (action === 'send') {
        try {
          kept = await node.saveDraft(draft, draftId)
          note = ' It is saved in Drafts.'
        } catch (saveErr) {
          context.logger.error({ err: (saveErr as Error).message }, 'A message that could not be sent could not be saved as a draft either.')
          if (draft.attachments.length > 0) note = ' Attach the files again.'
        }
      }
      const shown: Draft = kept !== undefined ? (await node.loadDraft(kept)) ?? draft : { ...draft, attachments: [] }
      return context.send(request, reply.code(400), {
        title: 'Write',
        nav: 'compose',
        body: composeView({ draft: shown, ...(kept !== undefined ? { draftId: kept } : {}), routes: routesFor(node, [draft.to, draft.cc, draft.bcc]), csrfToken: context.session(request).csrfToken, maxUploadBytes: context.maxUploadBytes, error: `${action === 'save' ? 'Not saved' : 'Not sent'}: ${e.message}${note}` })
      })
    }
    context.flash(request, 'Your message is queued. Follow its delivery here.')
    return await reply.redirect('/outbox', 303)
  })
}
