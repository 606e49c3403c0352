// Drafts that answer or pass on a message: the recipients, the subject with one "Re:" or
// "Fwd:", the quoted or forwarded text, and the threading ids (RFC 5322 3.6.4).
import { formatRecipient } from './recipients.ts'
import type { Mailbox } from '../mail-view/index.ts'

export type ReplyMode = 'reply' | 'replyAll' | 'forward'

/** What a reply needs of the original; mail-view's ReadableMessageContent has all of it. */
export interface ReplySource {
  from: Mailbox[]
  to: Mailbox[]
  cc: Mailbox[]
  replyTo: Mailbox[]
  subject: string
  /** Milliseconds since the epoch. */
  date?: number
  messageId?: string
  /** The original's In-Reply-To, used for References when it has none (RFC 5322 3.6.4). */
  inReplyTo?: string
  references: string[]
  text: string
}

export interface ReplyDraft {
  to: string
  cc: string
  bcc: string
  subject: string
  body: string
  /** The parent, for In-Reply-To and References; absent for a forward. */
  inReplyTo?: { messageId?: string, references: string[] }
}

/** References kept in a reply: the thread's first message and the latest ones. */
const MAX_REFERENCES = 50

export function replyDraft (original: ReplySource, mode: ReplyMode, self: string): ReplyDraft {
  if (mode === 'forward') {
    return { to: '', cc: '', bcc: '', subject: prefixed('Fwd', original.subject), body: forwardBody(original) }
  }
  const me = self.trim().toLowerCase()
  const isMe = (m: Mailbox): boolean => m.address.toLowerCase() === me
  let to = original.replyTo.length > 0 ? original.replyTo : original.from
  // Answering one's own sent message goes to the people it went to, as mail clients do.
  if (to.length > 0 && to.every(isMe) && original.to.length > 0) to = original.to
  to = unique(to, new Set())
  let cc: Mailbox[] = []
  if (mode === 'replyAll') {
    const taken = new Set(to.map(m => m.address.toLowerCase()))
    cc = unique([...original.to, ...original.cc].filter(m => !isMe(m)), taken)
  }
  // RFC 5322 3.6.4: the parent's References (or else its In-Reply-To), then its Message-ID,
  // which buildMessage appends.
  let references = original.references.length > 0
    ? original.references
    : original.inReplyTo !== undefined ? [original.inReplyTo] : []
  if (references.length > MAX_REFERENCES) references = [references[0]!, ...references.slice(-(MAX_REFERENCES - 1))]
  const inReplyTo: ReplyDraft['inReplyTo'] = { references: [...references] }
  if (original.messageId !== undefined) inReplyTo.messageId = original.messageId
  return {
    to: to.map(formatRecipient).join(', '),
    cc: cc.map(formatRecipient).join(', '),
    bcc: '',
    subject: prefixed('Re', original.subject),
    body: replyBody(original),
    inReplyTo
  }
}

/** Mailboxes with an address, each address once (case-insensitively), not in `taken`. */
function unique (list: Mailbox[], taken: Set<string>): Mailbox[] {
  const out: Mailbox[] = []
  for (const m of list) {
    const key = m.address.toLowerCase()
    if (key.length === 0 || taken.has(key)) continue
    taken.add(key)
    out.push(m)
  }
  return out
}

/** "Re: x" from "x", "Re: x", "RE: Re: x" or "Re[2]: x"; "Fwd: x" likewise from "Fw:"/"Fwd:". */
export function prefixed (prefix: 'Re' | 'Fwd', subject: string): string {
  const again = prefix === 'Re' ? /^\s*re(?:\[\d+\])?\s*:\s*/i : /^\s*fwd?(?:\[\d+\])?\s*:\s*/i
  let s = subject.trim()
  while (again.test(s)) s = s.replace(again, '')
  return `${prefix}: ${s}`
}

function who (list: Mailbox[]): string {
  const m = list[0]
  if (m === undefined) return 'someone'
  return m.name.length > 0 ? m.name : m.address
}

function dateText (date: number | undefined): string | undefined {
  if (date === undefined || !Number.isFinite(date)) return undefined
  return new Date(date).toUTCString()
}

function lines (text: string): string[] {
  return text.replace(/\r\n?/g, '\n').replace(/\n+$/, '').split('\n')
}

function replyBody (original: ReplySource): string {
  const date = dateText(original.date)
  const intro = date !== undefined ? `On ${date}, ${who(original.from)} wrote:` : `${who(original.from)} wrote:`
  // Already quoted lines get one more ">" without a space, so "> > x" reads as ">> x".
  const quoted = lines(original.text).map(l => l.length === 0 ? '>' : l.startsWith('>') ? `>${l}` : `> ${l}`)
  return `\n\n${intro}\n${quoted.join('\n')}\n`
}

function forwardBody (original: ReplySource): string {
  const list = (ms: Mailbox[]): string => ms.map(formatRecipient).join(', ')
  const head = ['---------- Forwarded message ----------', `From: ${list(original.from)}`]
  const date = dateText(original.date)
  if (date !== undefined) head.push(`Date: ${date}`)
  head.push(`Subject: ${original.subject}`, `To: ${list(original.to)}`)
  if (original.cc.length > 0) head.push(`Cc: ${list(original.cc)}`)
  return `\n\n${head.join('\n')}\n\n${lines(original.text).join('\n')}\n`
}
