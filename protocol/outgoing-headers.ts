// What leaves the node in an outgoing message's header (spec/openpgp.md 5, after Mailpile's and
// StartMail's header stripping): nothing that names the machine, the software or the sender's
// time zone. Applied to every message before it is stored in the Outbox and queued.
import { newMessageId, rfc5322Date } from './message.ts'
import { fieldValue, joinEntity, splitEntity } from './pgp-mime.ts'

/** Fields that describe the sending machine or software, removed from every outgoing message. */
export const IDENTIFYING_FIELDS: ReadonlySet<string> = new Set([
  'received', 'user-agent', 'x-mailer', 'x-originating-ip', 'x-originating-host', 'x-mimeole',
  'x-msmail-priority', 'x-ms-tnef-correlator', 'x-ms-has-attach', 'x-source', 'x-source-args',
  'x-source-dir', 'x-php-originating-script', 'x-authenticated-sender', 'x-sender-ip', 'x-client-ip',
  'x-forwarded-for', 'x-pgp-agent', 'x-enigmail-version', 'x-smtorp-draft-to', 'x-smtorp-draft-cc',
  'x-smtorp-draft-bcc', 'x-smtorp-draft-reply-to', 'x-smtorp-draft-encrypt'
])

/**
 * The message as it may leave: identifying fields removed; Date in UTC (the same instant;
 * added when missing); a Message-ID whose right-hand side is the sender's own mail domain
 * (a client's id naming its host is replaced; RFC 5322 3.6.4 asks only for uniqueness).
 */
export function sanitizeOutgoing (raw: Buffer, senderDomain: string, now: Date): { raw: Buffer, messageId: string } {
  const entity = splitEntity(raw)
  const domain = senderDomain.toLowerCase()
  let messageId: string | undefined
  let dated = false
  const fields: string[] = []
  for (const field of entity.fields) {
    if (IDENTIFYING_FIELDS.has(field.key)) continue
    if (field.key === 'message-id') {
      const id = /<([^<>\s@]{1,500})@([^<>\s@]{1,500})>/.exec(fieldValue(field))
      if (messageId === undefined && id !== null && (id[2] ?? '').toLowerCase() === domain) messageId = `${id[1] ?? ''}@${domain}`
      continue
    }
    if (field.key === 'date') {
      if (dated) continue
      const at = Date.parse(fieldValue(field))
      fields.push(`Date: ${rfc5322Date(Number.isFinite(at) ? new Date(at) : now)}`)
      dated = true
      continue
    }
    fields.push(field.text)
  }
  if (!dated) fields.push(`Date: ${rfc5322Date(now)}`)
  messageId ??= newMessageId(domain)
  fields.push(`Message-ID: <${messageId}>`)
  return { raw: joinEntity(fields, entity.body), messageId }
}
