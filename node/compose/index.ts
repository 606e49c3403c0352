// New messages from what the owner typed: addresses checked, RFC 5322 headers written
// (From, To, Cc, Bcc, Subject, Date, Message-ID, In-Reply-To, References), a text/plain UTF-8
// body and attachments in MIME (RFC 2045, 2046, 2183), built with nodemailer's MailComposer.
// Nothing identifies the software or the host: no User-Agent or X-Mailer, no host name in the
// Message-ID or MIME boundaries, Date in UTC.
import MailComposer from 'nodemailer/lib/mail-composer/index.js'
import { parseAddress } from '../../protocol/address.ts'
import { newMessageId, rfc5322Date } from '../../protocol/message.ts'
import { ComposeError, parseRecipients, type Recipient } from './recipients.ts'

export { addressesAsTyped, ComposeError, formatRecipient, parseRecipients, recipientsOf, type Recipient } from './recipients.ts'
export { prefixed, replyDraft, type ReplyDraft, type ReplyMode, type ReplySource } from './reply.ts'

export interface DraftInput {
  to: string
  cc: string
  bcc: string
  subject: string
  body: string
  attachments: Array<{ filename: string, contentType: string, content: Buffer }>
  /** The message answered: its Message-ID and References (RFC 5322 3.6.4). */
  inReplyTo?: { messageId?: string, references: string[] }
}

export interface BuildOptions {
  /** The domain for the Message-ID (RFC 5322 3.6.4: id-right names where it was made). */
  domain: string
  now?: Date
  /** The built message may not be larger than this; DEFAULT_MAX_BYTES when not given. */
  maxBytes?: number
  /** Build a draft to store: recipients as typed, none required (see DRAFT_HEADERS). */
  draft?: boolean
}

export interface BuiltMessage {
  raw: Buffer
  /** RFC 5321 envelope: MAIL FROM and every RCPT TO (To, Cc and Bcc, each once). */
  envelope: { from: string, to: string[] }
  /** Without angle brackets. */
  messageId: string
}

/** As the node's default SMTP size limit (config smtpIn.maxMessageBytes). */
export const DEFAULT_MAX_BYTES = 25 * 1024 * 1024
const MAX_ATTACHMENTS = 100

export async function buildMessage (draft: DraftInput, sender: { address: string, name?: string }, options: BuildOptions): Promise<BuiltMessage> {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES
  const from = senderOf(sender)
  // A draft keeps the recipient fields as typed (maybe unfinished) in headers of its own,
  // read back by DRAFT_HEADERS; it is stored, never sent: sending builds the message anew.
  const asDraft = options.draft === true
  const to = asDraft ? [] : parseRecipients(draft.to)
  const cc = asDraft ? [] : parseRecipients(draft.cc)
  const bcc = asDraft ? [] : parseRecipients(draft.bcc)
  const envelopeTo = [...new Set([...to, ...cc, ...bcc].map(r => r.address))]
  if (envelopeTo.length === 0 && !asDraft) throw new ComposeError('Add at least one recipient.')
  if (draft.attachments.length > MAX_ATTACHMENTS) throw new ComposeError(`A message can have at most ${MAX_ATTACHMENTS} attachments.`)
  // Base64 (RFC 2045 6.8) makes an attachment 4/3 its size: refuse early what cannot fit.
  const estimate = Buffer.byteLength(draft.body) + draft.attachments.reduce((n, a) => n + Math.ceil(a.content.byteLength / 3) * 4, 0)
  if (estimate > maxBytes) throw tooBig(maxBytes)

  const messageId = newMessageId(options.domain)
  const now = options.now ?? new Date()
  const parent = draft.inReplyTo
  const parentId = parent?.messageId !== undefined && isMessageId(parent.messageId) ? parent.messageId : undefined
  // RFC 5322 3.6.4: References is the parent's References followed by the parent's Message-ID.
  const references = [...(parent?.references ?? []).filter(isMessageId), ...(parentId !== undefined ? [parentId] : [])]

  const composer = new MailComposer({
    from: mailbox(from),
    to: to.map(mailbox),
    cc: cc.map(mailbox),
    bcc: bcc.map(mailbox),
    subject: draft.subject.replace(/[\x00-\x1f\x7f]+/g, ' ').trim(),
    messageId: `<${messageId}>`,
    date: rfc5322Date(now),
    ...(parentId !== undefined ? { inReplyTo: `<${parentId}>` } : {}),
    ...(references.length > 0 ? { references: references.map(id => `<${id}>`) } : {}),
    text: { content: draft.body.replace(/\r\n?/g, '\n'), contentType: 'text/plain; charset=utf-8' },
    ...(asDraft ? { headers: { [DRAFT_HEADERS.to]: oneLine(draft.to), [DRAFT_HEADERS.cc]: oneLine(draft.cc), [DRAFT_HEADERS.bcc]: oneLine(draft.bcc) } } : {}),
    attachments: draft.attachments.map((a, i) => ({
      filename: attachmentName(a.filename, i),
      contentType: contentTypeOf(a.contentType),
      content: a.content,
      contentDisposition: 'attachment'
    })),
    // Content is only ever given as bytes: never read a path or fetch a URL named in a draft.
    disableFileAccess: true,
    disableUrlAccess: true
  })
  const node = composer.compile()
  // The queue removes Bcc from each copy it sends (protocol/message.ts withoutBcc); the
  // sender's own copy keeps it, so the Sent folder shows who was blind-copied.
  node.keepBcc = true
  const raw = await node.build()
  if (raw.byteLength > maxBytes) throw tooBig(maxBytes)
  return { raw, envelope: { from: from.address, to: envelopeTo }, messageId }
}

/** Where a stored draft keeps its recipient fields as typed (local only, see buildMessage). */
export const DRAFT_HEADERS = { to: 'X-Smtorp-Draft-To', cc: 'X-Smtorp-Draft-Cc', bcc: 'X-Smtorp-Draft-Bcc' } as const

function oneLine (text: string): string {
  // As long as an address field may be (recipients.ts): a draft keeps every recipient typed.
  return text.replace(/[\x00-\x1f\x7f]+/g, ' ').trim().slice(0, 64 * 1024)
}

function senderOf (sender: { address: string, name?: string }): Recipient {
  let address: string
  try {
    const parsed = parseAddress(sender.address)
    address = `${parsed.local}@${parsed.domain}`
  } catch {
    throw new ComposeError(`The sender address "${sender.address}" is not one mail can be sent from.`)
  }
  return { name: (sender.name ?? '').replace(/[\x00-\x1f\x7f]+/g, ' ').trim(), address }
}

function mailbox (r: Recipient): { name: string, address: string } {
  return { name: r.name, address: r.address }
}

/** RFC 5322 3.6.4 msg-id content: no brackets, no white space, one "@". */
function isMessageId (id: string): boolean {
  return /^[^<>\s@]{1,500}@[^<>\s@]{1,500}$/.test(id)
}

function attachmentName (name: string, index: number): string {
  const s = name.replace(/[/\\]/g, '_').replace(/[\x00-\x1f\x7f]/g, '').trim().slice(0, 200)
  return s.length > 0 ? s : `attachment-${index + 1}`
}

function contentTypeOf (type: string): string {
  const t = type.toLowerCase().trim()
  return /^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}\/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$/.test(t) ? t : 'application/octet-stream'
}

function tooBig (maxBytes: number): ComposeError {
  return new ComposeError(`The message is too big: with its attachments it may be at most ${(maxBytes / (1024 * 1024)).toFixed(1)} MiB.`)
}
