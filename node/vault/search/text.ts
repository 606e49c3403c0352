// The searchable text of a raw message (RFC 5322 / MIME), parsed with postal-mime: the From,
// To/Cc/Bcc and Subject headers decoded (RFC 2047 encoded words included), and the body
// decoded from its transfer encoding (RFC 2045 6.7 quoted-printable, 6.8 base64) and charset.
// Attachments are ignored. Nothing here throws on a broken message: the raw bytes, read as
// latin1, are the fallback.
import PostalMime, { type Address } from 'postal-mime'
import type { Logger } from '../../log/index.ts'
import type { SearchText } from './terms.ts'

/** At most this much body text is indexed per message (UTF-16 code units). */
export const MAX_BODY_CHARS = 64 * 1024
/**
 * At most this much of the raw message is parsed. The text parts nearly always come before
 * any attachment, and parsing a 50 MB attachment only to ignore it would cost its size again
 * in memory.
 */
export const MAX_PARSE_BYTES = 4 * 1024 * 1024
/** HTML longer than this is cut before it is turned into text (the regexes are linear, but why). */
const MAX_HTML_CHARS = 1024 * 1024

function formatAddresses (list: Address[] | Address | undefined): string {
  if (list === undefined) return ''
  const out: string[] = []
  for (const a of Array.isArray(list) ? list : [list]) {
    if (a.group !== undefined) {
      if (a.name.length > 0) out.push(a.name)
      for (const m of a.group) out.push(m.name.length > 0 ? `${m.name} <${m.address}>` : m.address)
    } else {
      out.push(a.name.length > 0 ? `${a.name} <${a.address}>` : a.address)
    }
  }
  return out.join(', ')
}

export async function extractSearchText (raw: Buffer, options: { logger?: Logger } = {}): Promise<SearchText> {
  const simple = plainTextMessage(raw)
  if (simple !== undefined) return simple
  try {
    const email = await PostalMime.parse(raw.byteLength > MAX_PARSE_BYTES ? raw.subarray(0, MAX_PARSE_BYTES) : raw)
    const text = email.text !== undefined && email.text.trim().length > 0
      ? email.text
      : email.html !== undefined ? htmlToText(email.html) : ''
    const found: SearchText = {
      from: formatAddresses(email.from),
      to: [formatAddresses(email.to), formatAddresses(email.cc), formatAddresses(email.bcc)].filter((s) => s.length > 0).join(', '),
      subject: email.subject ?? '',
      body: text.length > MAX_BODY_CHARS ? text.slice(0, MAX_BODY_CHARS) : text
    }
    // Text with no header/body structure parses as one long header: nothing found. Its
    // words are still worth finding.
    if (found.from.length + found.to.length + found.subject.length + found.body.length > 0) return found
    return rawAsText(raw)
  } catch (err) {
    // Not a message postal-mime can read: index its bytes as text, headers and all. The
    // caller learns nothing useful from an error here, and search still finds the words.
    options.logger?.debug({ err: err instanceof Error ? err.name : 'unknown', bytes: raw.byteLength }, 'A message did not parse as MIME; indexing its raw bytes as text.')
    return rawAsText(raw)
  }
}

function rawAsText (raw: Buffer): SearchText {
  return { from: '', to: '', subject: '', body: raw.subarray(0, MAX_BODY_CHARS).toString('latin1') }
}

const NAMED_ENTITIES: Record<string, string> = {
  amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: ' ', copy: '©', reg: '®', hellip: '…',
  mdash: '—', ndash: '–', lsquo: '‘', rsquo: '’', ldquo: '“', rdquo: '”', euro: '€', shy: ''
}

function decodeEntities (text: string): string {
  return text.replace(/&(#x[0-9a-f]{1,6}|#[0-9]{1,7}|[a-z]{2,8});/giu, (whole, body: string) => {
    if (body.startsWith('#')) {
      const code = body[1] === 'x' || body[1] === 'X' ? parseInt(body.slice(2), 16) : parseInt(body.slice(1), 10)
      return code > 0 && code <= 0x10ffff && (code < 0xd800 || code > 0xdfff) ? String.fromCodePoint(code) : ' '
    }
    return NAMED_ENTITIES[body.toLowerCase()] ?? whole
  })
}

/**
 * The visible text of an HTML body, simply: comments, <script>, <style>, <head> and
 * <template> content dropped (an unclosed one runs to the end), every tag replaced by a
 * space, character references decoded. Attribute values (link targets, alt text) are not
 * text. Not a browser's rendering, and it need not be: it feeds a word index.
 */
export function htmlToText (html: string): string {
  let s = html.length > MAX_HTML_CHARS ? html.slice(0, MAX_HTML_CHARS) : html
  s = s.replace(/<!--[\s\S]*?(?:-->|$)/gu, ' ')
  s = s.replace(/<(script|style|head|template)\b[\s\S]*?(?:<\/\1\s*>|$)/giu, ' ')
  s = s.replace(/<\/?[a-z!?][^>]*(?:>|$)/giu, ' ')
  return decodeEntities(s).replace(/[ \t\r\f\v]+/gu, ' ')
}

/**
 * The common case without postal-mime: one text/plain part in UTF-8 or ASCII, no transfer
 * encoding, ASCII headers without encoded words. postal-mime reads a body line by line into
 * Blobs, about 0.9 ms for a 3.5 KiB message on Node 24; this takes a few microseconds, and
 * gives the same fields (text.test.ts compares the two). Anything else: undefined.
 */
export function plainTextMessage (raw: Buffer): SearchText | undefined {
  let end = raw.indexOf('\r\n\r\n')
  let bodyStart = end + 4
  if (end < 0) { end = raw.indexOf('\n\n'); bodyStart = end + 2 }
  if (end < 0 || end > 64 * 1024) return undefined
  const head = raw.subarray(0, end)
  for (const byte of head) if (byte >= 0x80) return undefined
  const fields = new Map<string, string[]>()
  for (const line of head.toString('latin1').replace(/\r?\n[ \t]+/g, ' ').split(/\r?\n/)) {
    const colon = line.indexOf(':')
    if (colon <= 0) return undefined
    const name = line.slice(0, colon).trim().toLowerCase()
    fields.set(name, [...(fields.get(name) ?? []), line.slice(colon + 1).trim()])
  }
  const one = (name: string): string => (fields.get(name) ?? []).join(', ')
  const from = one('from')
  const to = ['to', 'cc', 'bcc'].map(one).filter(v => v.length > 0).join(', ')
  const subject = one('subject')
  if ([from, to, subject].some(v => v.includes('=?'))) return undefined
  const type = one('content-type').toLowerCase()
  if (type !== '' && !/^text\/plain\s*(;|$)/.test(type)) return undefined
  const charset = /charset\s*=\s*"?([^";\s]+)/.exec(type)?.[1]
  if (charset !== undefined && !['utf-8', 'utf8', 'us-ascii', 'ascii'].includes(charset)) return undefined
  const encoding = one('content-transfer-encoding').toLowerCase()
  if (!['', '7bit', '8bit', 'binary'].includes(encoding)) return undefined
  const body = raw.subarray(bodyStart, bodyStart + MAX_BODY_CHARS * 4).toString('utf8')
  return { from, to, subject, body: body.length > MAX_BODY_CHARS ? body.slice(0, MAX_BODY_CHARS) : body }
}
