// Folders, message lists (paged, newest first), search, reading, and what can be done to a
// message: read/unread, flag, move, Trash, delete for good, empty Trash, attachments.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { RouteContext } from '../server.ts'
import { FOLDER_NAMES, type FolderName } from '../node-api.ts'
import { mailboxView, messageRows, messageView, moreResults, MOVE_TARGETS, olderLink, searchView } from '../views/mail.ts'

export const PAGE_SIZE = 50
/** Message ids: 16 digits (spec/storage.md). */
const ID = /^[0-9]{16}$/

function folderOf (name: string): FolderName | undefined {
  return FOLDER_NAMES.find(f => f.toLowerCase() === name.toLowerCase())
}

function flashOf (context: RouteContext, request: FastifyRequest): { notice?: string } {
  const text = context.takeFlash(request)
  return text !== undefined ? { notice: text } : {}
}

/** Deleting for good needs its box ticked (the form requires it; this is for other clients). */
function unconfirmed (): Error {
  return Object.assign(new Error('Nothing was deleted: tick the box to confirm that it is for good.'), { statusCode: 400 })
}

function beingSent (): Error {
  return Object.assign(new Error('This message is being sent: follow it, retry or cancel it in the Outbox. Once sent, it is in Sent.'), { statusCode: 409 })
}

function notFound (reply: FastifyReply): Error {
  reply.code(404)
  return Object.assign(new Error('There is no such message (it may have been deleted).'), { statusCode: 404 })
}

export function mailRoutes (fastify: FastifyInstance, context: RouteContext): void {
  const { node } = context

  fastify.get<{ Params: { folder: string }, Querystring: { before?: string } }>('/mail/:folder', async (request, reply) => {
    const folder = folderOf(request.params.folder)
    if (folder === undefined) throw Object.assign(new Error('There is no such folder.'), { statusCode: 404 })
    const before = request.query.before !== undefined && ID.test(request.query.before) ? request.query.before : undefined
    const [folders, page] = await Promise.all([node.folders(), node.listMessages(folder, { limit: PAGE_SIZE, ...(before !== undefined ? { before } : {}) })])
    return context.send(request, reply, {
      title: folder,
      nav: 'mail',
      body: mailboxView({ folders, folder, page, csrfToken: context.session(request).csrfToken, ...flashOf(context, request) }),
      fragment: messageRows(page, olderLink(folder, page))
    })
  })

  // POST, so the words searched for stay out of URLs, history and logs.
  fastify.post<{ Body: { q?: string, before?: string } }>('/search', async (request, reply) => {
    const query = String(request.body?.q ?? '').slice(0, 500)
    const before = request.body?.before !== undefined && ID.test(request.body.before) ? request.body.before : undefined
    const [folders, page] = await Promise.all([node.folders(), query.trim() === '' ? { messages: [] } : node.search(query, { limit: PAGE_SIZE, ...(before !== undefined ? { before } : {}) })])
    const view = searchView({ folders, query, page, csrfToken: context.session(request).csrfToken })
    return context.send(request, reply, { title: 'Search', nav: 'mail', body: view, fragment: before !== undefined ? messageRows(page, moreResults(query, page, context.session(request).csrfToken)) : view })
  })

  fastify.get<{ Params: { id: string } }>('/message/:id', async (request, reply) => {
    const { id } = request.params
    if (!ID.test(id)) throw notFound(reply)
    const message = await node.readMessage(id)
    if (message === undefined) throw notFound(reply)
    if (!message.summary.seen) {
      await node.setSeen(id, true)
      message.summary.seen = true
    }
    const [folders, thread] = await Promise.all([node.folders(), node.thread(id)])
    return context.send(request, reply, {
      title: message.summary.subject || '(no subject)',
      nav: 'mail',
      body: messageView({ message, thread, folders, csrfToken: context.session(request).csrfToken, ...flashOf(context, request) })
    })
  })

  fastify.get<{ Params: { id: string, index: string } }>('/message/:id/attachment/:index', async (request, reply) => {
    const { id } = request.params
    const index = Number(request.params.index)
    if (!ID.test(id) || !Number.isInteger(index) || index < 0) throw notFound(reply)
    const attachment = await node.attachment(id, index)
    if (attachment === undefined) throw notFound(reply)
    // Always a download, never rendered here: an HTML or SVG attachment must not run as part
    // of the UI's origin. The name is given both plainly (ASCII) and as RFC 8187 UTF-8.
    const ascii = attachment.filename.replace(/[^\x20-\x7e]|["\\]/g, '_')
    return reply
      .header('Content-Type', 'application/octet-stream')
      .header('Content-Disposition', `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(attachment.filename.toWellFormed())}`)
      .header('Content-Security-Policy', "default-src 'none'; sandbox")
      .send(attachment.content)
  })

  fastify.post<{ Params: { id: string }, Body: { seen?: string } }>('/message/:id/seen', async (request, reply) => {
    const { id } = request.params
    if (!ID.test(id) || await node.summary(id) === undefined) throw notFound(reply)
    const seen = request.body?.seen === '1'
    await node.setSeen(id, seen)
    // Marking unread from the message page goes back to the list, or opening it again would mark it read.
    if (!seen) {
      const message = await node.summary(id)
      context.flash(request, 'Marked as unread.')
      return reply.redirect(`/mail/${message?.folder ?? 'Inbox'}`, 303)
    }
    return reply.redirect(`/message/${id}`, 303)
  })

  fastify.post<{ Params: { id: string }, Body: { flagged?: string } }>('/message/:id/flag', async (request, reply) => {
    const { id } = request.params
    if (!ID.test(id) || await node.summary(id) === undefined) throw notFound(reply)
    await node.setFlagged(id, request.body?.flagged === '1')
    return reply.redirect(`/message/${id}`, 303)
  })

  fastify.post<{ Params: { id: string }, Body: { folder?: string } }>('/message/:id/move', async (request, reply) => {
    const { id } = request.params
    const folder = folderOf(String(request.body?.folder ?? ''))
    if (!ID.test(id)) throw notFound(reply)
    if (folder === undefined || !MOVE_TARGETS.includes(folder)) throw Object.assign(new Error(`Messages can be moved to ${MOVE_TARGETS.join(', ')}.`), { statusCode: 400 })
    const message = await node.summary(id)
    if (message === undefined) throw notFound(reply)
    if (message.folder === 'Outbox') throw beingSent()
    await node.move(id, folder)
    context.flash(request, `Moved to ${folder}.`)
    return reply.redirect(`/message/${id}`, 303)
  })

  fastify.post<{ Params: { id: string } }>('/message/:id/trash', async (request, reply) => {
    const { id } = request.params
    if (!ID.test(id)) throw notFound(reply)
    const message = await node.summary(id)
    if (message === undefined) throw notFound(reply)
    if (message.folder === 'Outbox') throw beingSent()
    await node.move(id, 'Trash')
    context.flash(request, 'Moved to Trash.')
    return reply.redirect(`/mail/${message.folder}`, 303)
  })

  fastify.post<{ Params: { id: string } }>('/message/:id/delete', async (request, reply) => {
    const { id } = request.params
    if (!ID.test(id)) throw notFound(reply)
    const message = await node.summary(id)
    if (message === undefined) throw notFound(reply)
    if ((request.body as { confirm?: string } | undefined)?.confirm !== '1') throw unconfirmed()
    if (message.folder !== 'Trash') throw Object.assign(new Error('Only messages in Trash can be deleted for good: move it to Trash first.'), { statusCode: 400 })
    await node.remove(id)
    context.flash(request, 'Deleted for good.')
    return reply.redirect(`/mail/Trash`, 303)
  })

  fastify.post<{ Body: { confirm?: string } }>('/trash/empty', async (request, reply) => {
    if (request.body?.confirm !== '1') throw unconfirmed()
    const count = await node.emptyTrash()
    context.flash(request, `Deleted ${count} message${count === 1 ? '' : 's'} for good.`)
    return reply.redirect(`/mail/Trash`, 303)
  })
}
