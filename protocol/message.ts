// Just enough RFC 5322 header handling for the node: read a header, add trace and
// identification headers, summarize a message for a list (RFC 2047 encoded-words, the thread
// root of RFC 5322 3.6.4). Bodies are never parsed or rewritten here.
import { randomBytes } from 'node:crypto'

/** Offset just past the blank line that ends the header block (or the message length). */
export function headerEnd (raw: Buffer): number {
  for (let i = 0; i < raw.length - 1; i++) {
    if (raw[i] === 0x0a) {
      if (raw[i + 1] === 0x0a) return i + 2
      if (raw[i + 1] === 0x0d && raw[i + 2] === 0x0a) return i + 3
    }
  }
  return raw.length
}

/** The header block, unfolded (RFC 5322 2.2.3), as [name, value] pairs in order. */
export function parseHeaders (raw: Buffer): Array<[string, string]> {
  const text = raw.subarray(0, headerEnd(raw)).toString('latin1')
  const unfolded = text.replace(/\r?\n(?=[ \t])/g, '')
  const headers: Array<[string, string]> = []
  for (const line of unfolded.split(/\r?\n/)) {
    const colon = line.indexOf(':')
    if (colon <= 0) continue
    headers.push([line.slice(0, colon).trim(), line.slice(colon + 1).trim()])
  }
  return headers
}

export function headerValue (raw: Buffer, name: string): string | undefined {
  const lower = name.toLowerCase()
  return parseHeaders(raw).find(([key]) => key.toLowerCase() === lower)?.[1]
}

/** One msg-id (RFC 5322 3.6.4) without its angle brackets; the first if there are several. */
function firstMessageId (value: string | undefined): string | undefined {
  if (value === undefined) return undefined
  return /<([^<>\s]{1,900})>/.exec(value)?.[1]
}

/** The Message-ID without angle brackets, if the message has a well-formed one. */
export function messageIdOf (raw: Buffer): string | undefined {
  return firstMessageId(headerValue(raw, 'Message-ID'))
}

/** What a message list shows of a message, read from its header block alone. */
export interface HeaderSummary {
  /** Subject, decoded (RFC 2047), on one line; '' when missing. */
  subject: string
  /** The From header as written (display name and address), decoded; '' when missing. */
  from: string
  /** The Date header in ms since the epoch, when it parses. */
  date?: number
  /**
   * The Message-ID (without angle brackets) of the thread's root: the first id of References,
   * else the id of In-Reply-To, else the message's own Message-ID (RFC 5322 3.6.4); '' if none.
   */
  thread: string
}

/** RFC 5322 2.1.1: a line is at most 998 characters; a summary keeps no more than one line. */
const SUMMARY_MAX_CHARS = 998

/** Subject, From, Date and thread root of a message. Never throws, whatever the bytes. */
export function summarizeHeaders (raw: Buffer): HeaderSummary {
  const headers = parseHeaders(raw)
  const first = (name: string): string | undefined => headers.find(([key]) => key.toLowerCase() === name)?.[1]
  const dateValue = first('date')
  const date = dateValue === undefined ? NaN : Date.parse(dateValue)
  const thread = firstMessageId(first('references')) ?? firstMessageId(first('in-reply-to')) ?? firstMessageId(first('message-id')) ?? ''
  return {
    subject: readableHeader(first('subject')),
    from: readableHeader(first('from')),
    ...(Number.isFinite(date) ? { date } : {}),
    thread
  }
}

/**
 * An unstructured header value made readable: raw 8-bit text taken as UTF-8 when it is valid
 * UTF-8 (RFC 6532) and as Latin-1 otherwise, encoded-words decoded, control characters
 * (a decoded CR or LF included) turned into spaces, cut to one line's length.
 */
function readableHeader (value: string | undefined): string {
  if (value === undefined) return ''
  let text = value
  if (/[^\x00-\x7f]/.test(value)) {
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(value, 'latin1'))
    } catch {} // not UTF-8: the Latin-1 reading parseHeaders gave is the best guess
  }
  text = decodeEncodedWords(text).replace(/[\x00-\x1f\x7f]/g, ' ').trim()
  if (text.length <= SUMMARY_MAX_CHARS) return text
  const cut = text.slice(0, SUMMARY_MAX_CHARS)
  // Do not end on half of a surrogate pair.
  return /[\ud800-\udbff]$/.test(cut) ? cut.slice(0, -1) : cut
}

// RFC 2047 2: "=?" charset "?" encoding "?" encoded-text "?="; no white space inside.
const ENCODED_WORD = /=\?([^?\s]+)\?([BbQq])\?([^?\s]*)\?=/g

/**
 * Decode the RFC 2047 encoded-words in `text`. A word whose charset is unknown or whose
 * encoding is broken stays as written. White space between two encoded-words is dropped
 * (RFC 2047 6.2), and adjacent words in one charset are decoded together, since encoders split
 * multibyte characters across words.
 */
export function decodeEncodedWords (text: string): string {
  let out = ''
  let run: { charset: string, decoder: TextDecoder, chunks: Buffer[] } | undefined
  const flush = (): void => {
    if (run !== undefined) out += run.decoder.decode(Buffer.concat(run.chunks))
    run = undefined
  }
  let last = 0
  for (const match of text.matchAll(ENCODED_WORD)) {
    const between = text.slice(last, match.index)
    last = match.index + match[0].length
    const word = encodedWordBytes(match[1]!, match[2]!, match[3]!)
    if (word === undefined) {
      flush()
      out += between + match[0]
      continue
    }
    if (run !== undefined && /^[ \t]*$/.test(between)) {
      if (run.charset === word.decoder.encoding) {
        run.chunks.push(word.bytes)
        continue
      }
      flush()
    } else {
      flush()
      out += between
    }
    run = { charset: word.decoder.encoding, decoder: word.decoder, chunks: [word.bytes] }
  }
  flush()
  return out + text.slice(last)
}

function encodedWordBytes (charset: string, encoding: string, encoded: string): { decoder: TextDecoder, bytes: Buffer } | undefined {
  let decoder: TextDecoder
  try {
    // RFC 2231 5: a language may follow the charset after "*".
    decoder = new TextDecoder(charset.split('*')[0]!)
  } catch {
    return undefined // a charset this runtime does not know
  }
  if (encoding === 'B' || encoding === 'b') {
    // RFC 2047 4.1; padding left out is tolerated, other garbage is not.
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(encoded) || encoded.replace(/=+$/, '').length % 4 === 1) return undefined
    return { decoder, bytes: Buffer.from(encoded, 'base64') }
  }
  // RFC 2047 4.2: "_" is a space, "=XX" a byte, anything else itself.
  const bytes: number[] = []
  for (let i = 0; i < encoded.length; i++) {
    const c = encoded.charCodeAt(i)
    if (c === 0x5f) {
      bytes.push(0x20)
    } else if (c === 0x3d) {
      const hex = encoded.slice(i + 1, i + 3)
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return undefined
      bytes.push(parseInt(hex, 16))
      i += 2
    } else {
      bytes.push(c & 0xff)
    }
  }
  return { decoder, bytes: Buffer.from(bytes) }
}

export function newMessageId (domain: string): string {
  return `${randomBytes(16).toString('hex')}@${domain}`
}

/** Add header lines at the top (trace headers go first, RFC 5321 4.4). */
export function prependHeaders (raw: Buffer, lines: string[]): Buffer {
  if (lines.length === 0) return raw
  return Buffer.concat([Buffer.from(lines.map(line => `${line}\r\n`).join(''), 'utf8'), raw])
}

/**
 * Headers a submission server adds when the client left them out (RFC 6409 8.2, 8.3):
 * Message-ID and Date. Returns the message and its Message-ID.
 */
export function completeSubmittedMessage (raw: Buffer, domain: string, now: Date): { raw: Buffer, messageId: string } {
  const add: string[] = []
  let messageId = messageIdOf(raw)
  if (messageId === undefined) {
    messageId = newMessageId(domain)
    add.push(`Message-ID: <${messageId}>`)
  }
  if (headerValue(raw, 'Date') === undefined) add.push(`Date: ${now.toUTCString().replace('GMT', '+0000')}`)
  if (add.length === 0) return { raw, messageId }
  // Put them just before the blank line, so trace headers stay on top.
  const end = headerEnd(raw)
  const bodyStartsAfterBlank = end < raw.length || /\r?\n\r?\n$/.test(raw.subarray(Math.max(0, end - 4), end).toString('latin1'))
  if (!bodyStartsAfterBlank) {
    // Header fields only, no body: append, ending the last line first if it is not ended.
    // Never add a CRLF after one that is there: that blank line would make the new fields body.
    const ended = raw.length === 0 || raw[raw.length - 1] === 0x0a
    return { raw: Buffer.concat([raw, Buffer.from(`${ended ? '' : '\r\n'}${add.join('\r\n')}\r\n`)]), messageId }
  }
  const blank = raw[end - 2] === 0x0d ? end - 2 : end - 1
  return { raw: Buffer.concat([raw.subarray(0, blank), Buffer.from(add.map(h => `${h}\r\n`).join('')), raw.subarray(blank)]), messageId }
}

/** RFC 5322 3.3 date-time. */
export function rfc5322Date (date: Date): string {
  return date.toUTCString().replace('GMT', '+0000')
}

/**
 * The message without its Bcc header fields (RFC 5322 3.6.3: the copies sent to To and Cc
 * recipients must not show Bcc recipients). Everything else stays byte for byte.
 */
export function withoutBcc (raw: Buffer): Buffer {
  const end = headerEnd(raw)
  const header = raw.subarray(0, end).toString('latin1')
  if (!/^bcc[ \t]*:/im.test(header)) return raw
  // A field runs from its name to the next line that does not start with white space. The name
  // may be followed by white space (RFC 5322 4.5, obsolete syntax, which readers still accept);
  // a bare CR inside does not end it; the last field of a body-less message may lack its CRLF.
  const kept = header.replace(/^bcc[ \t]*:[^\n]*(?:\n[ \t][^\n]*)*(?:\n|(?![\s\S]))/gim, '')
  return Buffer.concat([Buffer.from(kept, 'latin1'), raw.subarray(end)])
}
