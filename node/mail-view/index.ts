// A received message made safe to show: everything becomes text, nothing is fetched or run.
// MIME (RFC 2045, 2046) and encoded words (RFC 2047) are decoded with postal-mime; the
// text/plain part is preferred, an HTML-only body is turned into text (html-text.ts);
// attachments are listed with a sanitised name and, when opening one could harm the
// computer, a sentence saying why (attachment-risk.ts).
//
// Nothing here throws on a bad message: broken MIME, missing headers, 8-bit bytes, very long
// lines and deep nesting give what could be read, the rest as raw text, and `problems` in
// words. The work is bounded: at most MAX_PARSE_BYTES are parsed, MIME nesting is limited,
// HTML is cut before conversion and the text shown is cut at MAX_TEXT_CHARS.
import { isUtf8 } from 'node:buffer'
import PostalMime, { type Address, type Email, type PostalMimeOptions } from 'postal-mime'
import { headerEnd, parseHeaders } from '../../protocol/message.ts'
import { attachmentRisk, safeFilename } from './attachment-risk.ts'
import { htmlToSafeText } from './html-text.ts'

export { attachmentRisk, safeFilename } from './attachment-risk.ts'
export { htmlToSafeText } from './html-text.ts'

// These match ui/node-api.ts structurally; the node does not import from ui/.
export interface Mailbox {
  name: string
  address: string
}

export interface Attachment {
  /** Position among the message's attachments, for attachmentContent(). */
  index: number
  filename: string
  contentType: string
  size: number
  /** Why opening it could harm the computer, if it could. */
  risk?: string
}

export interface AttachmentContent {
  filename: string
  contentType: string
  content: Buffer
}

export interface ReadableMessageContent {
  from: Mailbox[]
  to: Mailbox[]
  cc: Mailbox[]
  replyTo: Mailbox[]
  subject: string
  /** Milliseconds since the epoch, when the Date header parses. */
  date?: number
  /** Message-ID without angle brackets. */
  messageId?: string
  /** The first message id of In-Reply-To, without angle brackets. */
  inReplyTo?: string
  /** The message ids of References, without angle brackets, oldest first. */
  references: string[]
  text: string
  /** The text came from HTML (scripts, styles and remote content were dropped). */
  fromHtml: boolean
  attachments: Attachment[]
  /** Problems met while reading, as sentences for the reader. */
  problems: string[]
}

export interface ReadOptions {
  /** Parse at most this many bytes of the message; MAX_PARSE_BYTES when not given. */
  maxParseBytes?: number
}

/** The text shown is cut at this many UTF-16 code units (1 MiB of ASCII). */
export const MAX_TEXT_CHARS = 1024 * 1024
/** Only this much of a message is parsed: parsing costs memory a few times the size. */
export const MAX_PARSE_BYTES = 64 * 1024 * 1024
/** At most this many attachments are listed. */
export const MAX_ATTACHMENTS = 1000
/** RFC 5322 3.6.4 lets a References field grow with the thread; only the latest are kept. */
const MAX_REFERENCES = 100
const TRUNCATED = '\n… (truncated)'

// postal-mime rejects a parse past these limits; the rejection becomes a problem below.
const PARSER_OPTIONS: PostalMimeOptions = {
  maxNestingDepth: 50,
  maxHeadersSize: 2 * 1024 * 1024,
  maxRfc822NestingDepth: 5,
  attachmentEncoding: 'arraybuffer'
}

interface Parsed { email: Email, parser: PostalMime }

async function parse (raw: Buffer, maxBytes: number): Promise<Parsed> {
  const parser = new PostalMime(PARSER_OPTIONS)
  const email = await parser.parse(raw.byteLength > maxBytes ? raw.subarray(0, maxBytes) : raw)
  return { email, parser }
}

export async function readableMessage (raw: Buffer, options: ReadOptions = {}): Promise<ReadableMessageContent> {
  const maxBytes = options.maxParseBytes ?? MAX_PARSE_BYTES
  const problems: string[] = []
  if (raw.byteLength > maxBytes) {
    problems.push(`The message is ${mib(raw.byteLength)}; only its first ${mib(maxBytes)} were read.`)
  }
  let parsed: Parsed
  try {
    parsed = await parse(raw, maxBytes)
  } catch {
    // postal-mime rejects on its limits (nesting, header size) and on input it cannot read.
    // Nothing is logged: the reason is in `problems`, and a log line could carry plaintext.
    problems.push('The message could not be read as MIME (it may be damaged or nested too deeply); it is shown as it arrived.')
    return { ...emptyContent(problems), text: capText(rawText(raw), problems) }
  }
  const { email, parser } = parsed
  problems.push(...structureProblems(raw.subarray(0, maxBytes)))

  const content: ReadableMessageContent = {
    from: mailboxes(email.from),
    to: mailboxes(email.to),
    cc: mailboxes(email.cc),
    replyTo: mailboxes(email.replyTo),
    subject: oneLine(email.subject ?? ''),
    references: messageIds(email.references ?? '').slice(-MAX_REFERENCES),
    text: '',
    fromHtml: false,
    attachments: [],
    problems
  }
  const date = email.date !== undefined ? Date.parse(email.date) : NaN
  if (Number.isFinite(date)) content.date = date
  const messageId = messageIds(email.messageId ?? '')[0]
  if (messageId !== undefined) content.messageId = messageId
  const inReplyTo = messageIds(email.inReplyTo ?? '')[0]
  if (inReplyTo !== undefined) content.inReplyTo = inReplyTo

  if (email.headers.length === 0 || !startsWithHeaderField(raw)) {
    // RFC 5322 2.1: a message starts with header fields. Text without them parses as one long
    // header, and its words would be lost; show all of it instead.
    problems.push('The message does not start with a header; it is shown as it arrived.')
    content.text = capText(rawText(raw, false), problems)
    return content
  }

  const body = bodyText(parser, email)
  content.fromHtml = body.fromHtml
  if (body.htmlCut) problems.push('The HTML part is very long or very deeply nested; only its beginning was turned into text.')
  content.text = capText(body.text, problems)

  content.attachments = email.attachments.slice(0, MAX_ATTACHMENTS).map((a, index) => {
    const filename = safeFilename(a.filename, index)
    const contentType = safeContentType(a.mimeType)
    const attachment: Attachment = { index, filename, contentType, size: byteLength(a.content) }
    const risk = attachmentRisk(filename, contentType)
    if (risk !== undefined) attachment.risk = risk
    return attachment
  })
  if (email.attachments.length > MAX_ATTACHMENTS) {
    problems.push(`The message has ${email.attachments.length} attachments; only the first ${MAX_ATTACHMENTS} are listed.`)
  }
  return content
}

/**
 * One attachment's bytes, by its index in readableMessage()'s list; undefined when there is
 * no such attachment or the message no longer parses. The message is parsed again: nothing
 * is kept between calls.
 */
export async function attachmentContent (raw: Buffer, index: number, options: ReadOptions = {}): Promise<AttachmentContent | undefined> {
  if (!Number.isSafeInteger(index) || index < 0 || index >= MAX_ATTACHMENTS) return undefined
  return (await attachmentContents(raw, options))[index]
}

/** Every attachment's bytes, in readableMessage()'s order, from one parse; [] if it no longer parses. */
export async function attachmentContents (raw: Buffer, options: ReadOptions = {}): Promise<AttachmentContent[]> {
  let email: Email
  try {
    email = (await parse(raw, options.maxParseBytes ?? MAX_PARSE_BYTES)).email
  } catch {
    return []
  }
  return email.attachments.slice(0, MAX_ATTACHMENTS).map((a, index) => {
    const content = typeof a.content === 'string'
      ? Buffer.from(a.content, a.encoding === 'base64' ? 'base64' : 'utf8')
      : Buffer.from(a.content instanceof ArrayBuffer ? new Uint8Array(a.content) : a.content)
    return { filename: safeFilename(a.filename, index), contentType: safeContentType(a.mimeType), content }
  })
}

// -- body text --------------------------------------------------------------------------

type TextItem = { type: 'text', value: string } | { type: 'subMessage', value: Email }
interface TextEntry { plain?: TextItem[], html?: TextItem[] }

/**
 * The body as text. postal-mime joins the text parts itself, but where one part has only
 * HTML it converts that HTML with its own converter, which shows every link target,
 * javascript: included. So the parts are taken from the parser's per-part map (an internal
 * of postal-mime 4.0.0, checked at run time) and each HTML-only part goes through
 * htmlToSafeText. Should the map be missing, the HTML body is converted whole.
 */
function bodyText (parser: PostalMime, email: Email): { text: string, fromHtml: boolean, htmlCut: boolean } {
  const map = (parser as unknown as { textMap?: unknown }).textMap
  let fromHtml = false
  let htmlCut = false
  const html = (value: string): string => {
    fromHtml = true
    const converted = htmlToSafeText(value)
    htmlCut ||= converted.cut
    return converted.text
  }
  if (!(map instanceof Map)) {
    const text = email.html !== undefined ? html(email.html) : email.text ?? ''
    return { text, fromHtml, htmlCut }
  }
  const out: string[] = []
  let length = 0
  for (const entry of (map as Map<unknown, TextEntry>).values()) {
    if (length > MAX_TEXT_CHARS) break // the rest would be cut anyway
    // A text/plain alternative left empty beside an HTML one (some mailers do) is no text.
    const plain = Array.isArray(entry.plain) &&
      (!Array.isArray(entry.html) || entry.plain.some(item => item.type !== 'text' || item.value.trim().length > 0))
    for (const item of (plain ? entry.plain : entry.html) ?? []) {
      const piece = item.type === 'subMessage'
        ? headerBlock(item.value)
        : plain ? normaliseText(item.value) : html(item.value)
      out.push(piece)
      length += piece.length
    }
  }
  return { text: out.join('\n'), fromHtml, htmlCut }
}

/** The header lines shown before an attached message's text (message/rfc822, RFC 2046 5.2.1). */
function headerBlock (email: Email): string {
  const lines = ['---------- Attached message ----------']
  const from = mailboxes(email.from).map(formatMailbox).join(', ')
  if (from.length > 0) lines.push(`From: ${from}`)
  if (email.date !== undefined) lines.push(`Date: ${oneLine(email.date)}`)
  if (email.subject !== undefined) lines.push(`Subject: ${oneLine(email.subject)}`)
  const to = mailboxes(email.to).map(formatMailbox).join(', ')
  if (to.length > 0) lines.push(`To: ${to}`)
  return `${lines.join('\n')}\n`
}

function formatMailbox (m: Mailbox): string {
  return m.name.length > 0 ? `${m.name} <${m.address}>` : m.address
}

/** Line ends as "\n"; control characters other than tab and line feed removed. */
function normaliseText (text: string): string {
  return text.replace(/\r\n?/g, '\n').replace(/[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/g, '')
}

function capText (text: string, problems: string[]): string {
  if (text.length <= MAX_TEXT_CHARS) return text
  problems.push('The text is longer than 1 MiB; only its beginning is shown.')
  let end = MAX_TEXT_CHARS
  const last = text.charCodeAt(end - 1)
  if (last >= 0xd800 && last <= 0xdbff) end-- // do not split a surrogate pair
  return text.slice(0, end) + TRUNCATED
}

/** RFC 5322 2.2: field-name ":" (printable ASCII but ":"), or an empty message. */
function startsWithHeaderField (raw: Buffer): boolean {
  return raw.length === 0 || /^[\x21-\x39\x3b-\x7e]{1,200}[ \t]*:/.test(raw.subarray(0, 256).toString('latin1'))
}

/**
 * The message as it arrived, as UTF-8 if it is, else latin1: the body when `bodyOnly` and a
 * header ends, else all of it.
 */
function rawText (raw: Buffer, bodyOnly = true): string {
  const end = headerEnd(raw)
  let body = bodyOnly && end < raw.length ? raw.subarray(end) : raw
  // A little more than can be shown, so capText still sees it is too long.
  body = body.subarray(0, MAX_TEXT_CHARS * 4 + 4)
  // A cut can split a UTF-8 sequence: ignore up to 3 trailing bytes when judging.
  let judged = body
  for (let i = 0; i < 3 && judged.length > 0 && !isUtf8(judged); i++) judged = judged.subarray(0, judged.length - 1)
  return normaliseText(isUtf8(judged) ? body.toString('utf8') : body.toString('latin1'))
}

/**
 * What postal-mime reads through without a word: RFC 2046 5.1.1 multipart structure that is
 * missing or unfinished. Only the top level is checked, on the raw bytes.
 */
function structureProblems (raw: Buffer): string[] {
  const type = parseHeaders(raw).find(([name]) => name.toLowerCase() === 'content-type')?.[1]
  if (type === undefined || !/^\s*multipart\//i.test(type)) return []
  const boundary = /;\s*boundary\s*=\s*(?:"([^"]{1,200})"|([^\s;"]{1,200}))/i.exec(type)
  const value = boundary?.[1] ?? boundary?.[2]
  if (value === undefined) return ['The message says it has several parts but not where they begin (no MIME boundary); some of it may be missing or shown as plain text.']
  const body = raw.subarray(headerEnd(raw))
  if (!body.includes(`--${value}`)) return ['The parts this message announces are not in it; some of it may be missing.']
  if (!body.includes(`--${value}--`)) return ['The message ends before its last part was closed; it may have been cut short.']
  return []
}

// -- headers ----------------------------------------------------------------------------

function mailboxes (list: Address[] | Address | undefined): Mailbox[] {
  if (list === undefined) return []
  const out: Mailbox[] = []
  for (const a of Array.isArray(list) ? list : [list]) {
    // RFC 5322 3.4 groups: the members are the recipients, the group name is only a label.
    for (const m of a.group !== undefined ? a.group : [a]) {
      const address = oneLine(m.address ?? '')
      if (address.length > 0 || m.name.length > 0) out.push({ name: oneLine(m.name), address })
    }
  }
  return out
}

/** Message ids (RFC 5322 3.6.4 msg-id) without angle brackets, in order. */
function messageIds (value: string): string[] {
  const ids = [...value.matchAll(/<([^<>\s]{1,900})>/g)].map(m => m[1]!)
  if (ids.length > 0) return ids
  // Bare ids without brackets are common enough in broken mailers to be worth reading.
  const bare = value.trim()
  return /^[^<>\s]{1,900}@[^<>\s]+$/.test(bare) ? [bare] : []
}

function oneLine (s: string): string {
  return s.replace(/[\x00-\x1f\x7f]+/g, ' ').trim()
}

function safeContentType (type: string | undefined): string {
  const t = (type ?? '').toLowerCase().trim()
  return /^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}\/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$/.test(t) ? t : 'application/octet-stream'
}

function byteLength (content: ArrayBuffer | Uint8Array | string): number {
  return typeof content === 'string' ? Buffer.byteLength(content) : content.byteLength
}

function mib (bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`
}

function emptyContent (problems: string[]): ReadableMessageContent {
  return { from: [], to: [], cc: [], replyTo: [], subject: '', references: [], text: '', fromHtml: false, attachments: [], problems }
}
