// Just enough RFC 5322 header handling for the node: read a header, add trace and
// identification headers. Bodies are never parsed or rewritten here.
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

/** The Message-ID without angle brackets, if the message has a well-formed one. */
export function messageIdOf (raw: Buffer): string | undefined {
  const value = headerValue(raw, 'Message-ID')
  if (value === undefined) return undefined
  const match = /<([^<>\s]{1,900})>/.exec(value)
  return match?.[1]
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
