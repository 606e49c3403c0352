// SMTP wire pieces the client side needs (RFC 5321), with no sockets: reply parsing,
// dot-stuffing, and classification of replies into permanent and transient failures.

export interface SmtpReply {
  code: number
  /** Enhanced status code (RFC 3463) if the server gave one, e.g. "5.1.1". */
  enhanced?: string
  /** Text lines without the code prefix. */
  lines: string[]
}

export class SmtpProtocolError extends Error {
  override name = 'SmtpProtocolError'
}

// RFC 5321 4.5.3.1.5: a reply line is at most 512 octets; be generous but bounded.
export const MAX_REPLY_LINE = 4096
export const MAX_REPLY_LINES = 100

/**
 * Incremental reply parser: feed it bytes, take complete replies out.
 * RFC 5321 4.2.1: "250-text" continues a reply, "250 text" ends it; all lines share the code.
 */
export class ReplyParser {
  private buffer = ''
  private lines: string[] = []
  private code = 0

  push (chunk: string): SmtpReply[] {
    this.buffer += chunk
    const replies: SmtpReply[] = []
    let newline: number
    while ((newline = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, newline).replace(/\r$/, '')
      this.buffer = this.buffer.slice(newline + 1)
      if (line.length > MAX_REPLY_LINE) throw new SmtpProtocolError('reply line too long')
      const reply = this.line(line)
      if (reply !== undefined) replies.push(reply)
    }
    if (this.buffer.length > MAX_REPLY_LINE) throw new SmtpProtocolError('reply line too long')
    return replies
  }

  private line (line: string): SmtpReply | undefined {
    const match = /^([2-5][0-9][0-9])([ -]|$)(.*)$/.exec(line)
    if (match === null) throw new SmtpProtocolError('malformed reply line')
    const code = Number(match[1])
    if (this.lines.length > 0 && code !== this.code) throw new SmtpProtocolError('reply lines disagree on the code')
    this.code = code
    this.lines.push(match[3] ?? '')
    if (this.lines.length > MAX_REPLY_LINES) throw new SmtpProtocolError('reply has too many lines')
    if (match[2] === '-') return undefined
    const lines = this.lines
    this.lines = []
    const enhanced = /^([245]\.[0-9]{1,3}\.[0-9]{1,3})(?: |$)/.exec(lines[0] ?? '')
    return {
      code,
      ...(enhanced !== null ? { enhanced: enhanced[1]! } : {}),
      lines: enhanced !== null ? [lines[0]!.slice(enhanced[0].length), ...lines.slice(1)] : lines
    }
  }
}

export function replyText (reply: SmtpReply): string {
  return `${reply.code}${reply.enhanced !== undefined ? ` ${reply.enhanced}` : ''} ${reply.lines.join(' / ')}`.trim()
}

/**
 * The DATA payload for a message: CRLF line endings, leading dots doubled (RFC 5321 4.5.2),
 * ending with CRLF "." CRLF.
 */
export function dotStuff (message: Buffer): Buffer {
  const chunks: Buffer[] = []
  let start = 0
  let atLineStart = true
  for (let i = 0; i < message.length; i++) {
    const byte = message[i]
    if (atLineStart && byte === 0x2e) {
      chunks.push(message.subarray(start, i), Buffer.from('.'))
      start = i
    }
    if (byte === 0x0d && message[i + 1] !== 0x0a) {
      // bare CR (RFC 5321 2.3.8 forbids it): make it CRLF, so that no receiver can take
      // "\r.\r\n" for the end of the data ("SMTP smuggling")
      chunks.push(message.subarray(start, i), Buffer.from('\r\n'))
      start = i + 1
      atLineStart = true
      continue
    }
    if (byte === 0x0a && (i === 0 || message[i - 1] !== 0x0d)) {
      // bare LF: make it CRLF
      chunks.push(message.subarray(start, i), Buffer.from('\r\n'))
      start = i + 1
    }
    atLineStart = byte === 0x0a
  }
  chunks.push(message.subarray(start))
  // An empty message is no lines at all; a trailing bare CR became CRLF above.
  const last = message[message.length - 1]
  const endsWithNewline = message.length === 0 || last === 0x0a || last === 0x0d
  chunks.push(Buffer.from(endsWithNewline ? '.\r\n' : '\r\n.\r\n'))
  return Buffer.concat(chunks)
}

/** EHLO keywords (RFC 5321 4.1.1.1) from the lines after the greeting line, uppercased. */
export function ehloExtensions (reply: SmtpReply): Map<string, string> {
  const extensions = new Map<string, string>()
  for (const line of reply.lines.slice(1)) {
    const [keyword, ...params] = line.trim().split(/\s+/)
    if (keyword !== undefined && keyword !== '') extensions.set(keyword.toUpperCase(), params.join(' '))
  }
  return extensions
}
