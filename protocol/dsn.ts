// Delivery status notifications (RFC 3464, carried in RFC 6522 multipart/report), the
// messages that tell a sender in plain words that mail is delayed or has failed.
import { randomBytes } from 'node:crypto'
import { headerEnd, rfc5322Date } from './message.ts'

export interface DsnRecipient {
  address: string
  action: 'failed' | 'delayed'
  /** RFC 3463 enhanced status, e.g. "5.1.1" or "4.4.1". */
  status: string
  /** What happened, in words (a server's reply or our own diagnosis). */
  diagnostic: string
  lastAttemptAt?: Date
  willRetryUntil?: Date
}

export interface DsnInit {
  /** The node's domain, e.g. "<56 chars>.onion". */
  reportingDomain: string
  /** Who gets the notice (the original sender). */
  to: string
  originalMessageId?: string
  originalSubject?: string
  arrivalDate: Date
  recipients: DsnRecipient[]
  original: Buffer
  now: Date
}

export function buildDsn (init: DsnInit): { raw: Buffer, messageId: string } {
  const boundary = `smtorp-${randomBytes(12).toString('hex')}`
  const messageId = `${randomBytes(16).toString('hex')}@${init.reportingDomain}`
  const failed = init.recipients.filter(r => r.action === 'failed')
  const delayed = init.recipients.filter(r => r.action === 'delayed')
  const subject = failed.length > 0 ? 'Undelivered mail: delivery failed' : 'Delayed mail: still trying'
  const about = init.originalSubject !== undefined ? ` "${oneLine(init.originalSubject)}"` : ''
  const human: string[] = []
  if (failed.length > 0) {
    human.push(`Your message${about} could not be delivered to:`, '')
    for (const r of failed) human.push(`  ${r.address}`, `    ${oneLine(r.diagnostic)}`, '')
    human.push('The node will not try again for these recipients.', '')
  }
  if (delayed.length > 0) {
    human.push(`Your message${about} has not been delivered yet to:`, '')
    for (const r of delayed) {
      human.push(`  ${r.address}`, `    ${oneLine(r.diagnostic)}`)
      if (r.willRetryUntil !== undefined) human.push(`    The node keeps trying until ${rfc5322Date(r.willRetryUntil)}.`)
      human.push('')
    }
    human.push('You do not need to do anything; you will hear from the node again if it gives up.', '')
  }
  const perMessage = [`Reporting-MTA: dns; ${init.reportingDomain}`, `Arrival-Date: ${rfc5322Date(init.arrivalDate)}`]
  if (init.originalMessageId !== undefined) perMessage.push(`X-Original-Message-ID: <${init.originalMessageId}>`)
  const perRecipient = init.recipients.map(r => {
    const fields = [
      `Final-Recipient: rfc822; ${r.address}`,
      `Action: ${r.action}`,
      `Status: ${r.status}`,
      `Diagnostic-Code: smtp; ${oneLine(r.diagnostic)}`
    ]
    if (r.lastAttemptAt !== undefined) fields.push(`Last-Attempt-Date: ${rfc5322Date(r.lastAttemptAt)}`)
    if (r.willRetryUntil !== undefined) fields.push(`Will-Retry-Until: ${rfc5322Date(r.willRetryUntil)}`)
    return fields.join('\r\n')
  })
  const headers = init.original.subarray(0, headerEnd(init.original))
  const parts = [
    `From: Mail Delivery System <mailer-daemon@${init.reportingDomain}>`,
    `To: <${init.to}>`,
    `Subject: ${subject}`,
    `Date: ${rfc5322Date(init.now)}`,
    `Message-ID: <${messageId}>`,
    ...(init.originalMessageId !== undefined ? [`In-Reply-To: <${init.originalMessageId}>`] : []),
    'Auto-Submitted: auto-replied',
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type=delivery-status; boundary="${boundary}"`,
    '',
    `--${boundary}`,
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    '',
    ...human,
    `--${boundary}`,
    'Content-Type: message/delivery-status',
    '',
    perMessage.join('\r\n'),
    '',
    perRecipient.join('\r\n\r\n'),
    '',
    `--${boundary}`,
    'Content-Type: text/rfc822-headers',
    '',
    headers.toString('latin1').replace(/\r?\n/g, '\r\n').trimEnd(),
    '',
    `--${boundary}--`,
    ''
  ]
  return { raw: Buffer.from(parts.join('\r\n'), 'utf8'), messageId }
}

function oneLine (text: string): string {
  return text.replace(/[\r\n\t]+/g, ' ').replace(/[\x00-\x1f\x7f]/g, '').slice(0, 500)
}
