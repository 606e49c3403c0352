// Writing: a new message, a reply, reply-all, a forward, or a saved draft; the route each
// recipient will take and the key mail to them is encrypted to, shown while typing; the
// Encrypt choice; send (signed, encrypted as chosen, into the outbound queue) or save as a draft.
//
// Encrypt: until the owner changes the box, it follows Autocrypt's recommendation for the
// recipients typed (and is on for a reply to encrypted mail); a saved draft keeps a choice the
// owner made. What the box shows when Send is pressed is what happens: ticked, the message is
// encrypted or refused (naming who has no key, the draft kept); unticked, signed only.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { RouteContext } from '../server.ts'
import type { Draft, DraftAttachment, Route, UiNode } from '../node-api.ts'
import { composeView, routesUpdate, type EncryptionView } from '../views/compose.ts'

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

/** Whether the message answered was encrypted (Autocrypt Level 1 2.4: then encrypt the reply if possible). */
async function repliesToEncrypted (node: UiNode, inReplyToId: string | undefined): Promise<boolean> {
  return inReplyToId !== undefined && (await node.summary(inReplyToId))?.security?.encrypted === true
}

/** The Encrypt box for a draft: the choice it carries, else the recommendation. */
function encryptionOf (node: UiNode, draft: Draft, replyToEncrypted: boolean): EncryptionView {
  if (draft.encrypt !== undefined) return { encrypt: draft.encrypt, touched: true }
  return { encrypt: node.wouldEncrypt([draft.to, draft.cc, draft.bcc], { replyToEncrypted }), touched: false }
}

export function composeRoutes (fastify: FastifyInstance, context: RouteContext): void {
  const { node } = context

  /** The routes and the Encrypt box of a form; `encryption` as the form was posted, if it was. */
  async function form (draft: Draft, encryption?: EncryptionView): Promise<{ routes: Route[], encryption: EncryptionView }> {
    const replyToEncrypted = await repliesToEncrypted(node, draft.inReplyToId)
    return { routes: node.routesFor([draft.to, draft.cc, draft.bcc], { replyToEncrypted }), encryption: encryption ?? encryptionOf(node, draft, replyToEncrypted) }
  }

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
      body: composeView({ draft, ...(draftId !== undefined ? { draftId } : {}), ...await form(draft), csrfToken: context.session(request).csrfToken, maxUploadBytes: context.maxUploadBytes, ...(flash !== undefined ? { notice: flash } : {}) })
    })
  })

  // Writing is use of the page: the form posts here now and then while the owner types, so a
  // long message does not look idle to auto-lock (and get lost with the session).
  fastify.post('/compose/alive', async (_request, reply) => await reply.code(204).send())

  fastify.post<{ Body: { to?: string, cc?: string, bcc?: string, encrypt?: string, encryptTouched?: string, inReplyToId?: string } }>('/compose/routes', async (request, reply) => {
    const b = request.body ?? {}
    const fields = [String(b.to ?? ''), String(b.cc ?? ''), String(b.bcc ?? '')]
    const inReplyToId = typeof b.inReplyToId === 'string' && ID.test(b.inReplyToId) ? b.inReplyToId : undefined
    const replyToEncrypted = await repliesToEncrypted(node, inReplyToId)
    const encryption: EncryptionView = b.encryptTouched === '1'
      ? { encrypt: b.encrypt === '1', touched: true }
      : { encrypt: node.wouldEncrypt(fields, { replyToEncrypted }), touched: false }
    return await reply.type('text/html; charset=utf-8').send(routesUpdate(node.routesFor(fields, { replyToEncrypted }), encryption).value)
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
    // A form without the Encrypt box (another client) leaves the choice to the node.
    const posted: EncryptionView | undefined = text(fields, 'encryptShown') === '1' ? { encrypt: text(fields, 'encrypt') === '1', touched: text(fields, 'encryptTouched') === '1' } : undefined
    // A draft keeps only a choice the owner made; sending does what the box showed.
    if (posted !== undefined && (action === 'send' || posted.touched)) draft.encrypt = posted.encrypt
    const asDraft: Draft = { ...draft }
    if (posted?.touched !== true) delete asDraft.encrypt
    const truncated = [...fields.values()].flat().some(f => f.valueTruncated === true)
    try {
      // A field cut by the size limit would be sent cut, silently.
      if (truncated) throw new Error('the message is bigger than this node takes')
      if (action === 'save') {
        const id = await node.saveDraft(asDraft, draftId)
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
          saved = await node.saveDraft(asDraft, draftId)
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
        body: composeView({ draft: shown, ...(shownId !== undefined ? { draftId: shownId } : {}), ...await form(shown, posted), csrfToken: context.session(request).csrfToken, maxUploadBytes: context.maxUploadBytes, error: `${action === 'save' ? 'Not saved' : 'Not sent'}: ${e.message.endsWith('.') ? e.message : `${e.message}.`}${note}` })
      })
    }
    context.flash(request, 'Your message is queued. Follow its delivery here.')
    return await reply.redirect('/outbox', 303)
  })
}
