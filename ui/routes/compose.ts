// Writing: a new message, a reply, reply-all, a forward, or a saved draft; the route each
// recipient will take, shown while typing; send (into the outbound queue) or save as a draft.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { RouteContext } from '../server.ts'
import type { Draft, DraftAttachment } from '../node-api.ts'
import { composeView, routesFragment } from '../views/compose.ts'

const ID = /^[0-9]{1,20}$/

interface Field { value?: unknown, filename?: string, mimetype?: string, type?: string, valueTruncated?: boolean }

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
      body: composeView({ draft, ...(draftId !== undefined ? { draftId } : {}), routes: node.routesFor([draft.to, draft.cc, draft.bcc]), csrfToken: context.session(request).csrfToken, maxUploadBytes: context.maxUploadBytes, ...(flash !== undefined ? { notice: flash } : {}) })
    })
  })

  // Writing is use of the page: the form posts here now and then while the owner types, so a
  // long message does not look idle to auto-lock (and get lost with the session).
  fastify.post('/compose/alive', async (_request, reply) => await reply.code(204).send())

  fastify.post<{ Body: { to?: string, cc?: string, bcc?: string } }>('/compose/routes', async (request, reply) => {
    const b = request.body ?? {}
    return await reply.type('text/html; charset=utf-8').send(routesFragment(node.routesFor([String(b.to ?? ''), String(b.cc ?? ''), String(b.bcc ?? '')])).value)
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
      // Sent or deleted meanwhile (a second click, another tab): going on would send or save
      // it without its attachments.
      if (old === undefined) throw Object.assign(new Error('This draft was sent or deleted meanwhile, so nothing was done. Find it in Sent, Outbox or Trash.'), { statusCode: 409 })
      old.attachments.forEach((a, i) => { if (keep.has(i)) attachments.push(a) })
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
    const truncated = [...fields.values()].flat().some(f => f.valueTruncated === true)
    try {
      // A field cut by the size limit would be sent cut, silently.
      if (truncated) throw new Error('the message is bigger than this node takes')
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
      let saved: string | undefined
      let note = ''
      if (action === 'send' && !truncated) {
        try {
          saved = await node.saveDraft(draft, draftId)
          note = ' It is saved in Drafts.'
        } catch (saveErr) {
          context.logger.error({ err: (saveErr as Error).message }, 'A message that could not be sent could not be saved as a draft either.')
        }
      }
      // The form shows what was typed; only a draft saved just now is shown from the vault
      // (it carries the attachments). Otherwise the draft being edited still holds its own
      // attachments, and new files must be attached again.
      const shownId = saved ?? draftId
      const shown: Draft = saved !== undefined ? (await node.loadDraft(saved)) ?? draft : { ...draft, attachments: draftId !== undefined ? ((await node.loadDraft(draftId))?.attachments ?? []) : [] }
      const added = fields.get('attachments')?.some(f => f.type === 'file' && f.filename !== undefined && f.filename !== '') === true
      if (saved === undefined && added) note += ' Attach the new files again.'
      return context.send(request, reply.code(400), {
        title: 'Write',
        nav: 'compose',
        body: composeView({ draft: shown, ...(shownId !== undefined ? { draftId: shownId } : {}), routes: node.routesFor([draft.to, draft.cc, draft.bcc]), csrfToken: context.session(request).csrfToken, maxUploadBytes: context.maxUploadBytes, error: `${action === 'save' ? 'Not saved' : 'Not sent'}: ${e.message.endsWith('.') ? e.message : `${e.message}.`}${note}` })
      })
    }
    context.flash(request, 'Your message is queued. Follow its delivery here.')
    return await reply.redirect('/outbox', 303)
  })
}
