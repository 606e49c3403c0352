// RFC 5322 header handling: the header block, unfolding, Message-ID, the headers a submission
// server adds (RFC 6409 8), and Bcc removal.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { completeSubmittedMessage, headerEnd, headerValue, messageIdOf, newMessageId, parseHeaders, prependHeaders, rfc5322Date, withoutBcc } from './message.ts'

const b = (text: string): Buffer => Buffer.from(text, 'latin1')

// RFC 5322 A.1.1, a message from one person to another with simple addressing.
const RFC5322_A11 = [
  'From: John Doe <jdoe@machine.example>',
  'To: Mary Smith <mary@example.net>',
  'Subject: Saying Hello',
  'Date: Fri, 21 Nov 1997 09:55:06 -0600',
  'Message-ID: <1234@local.machine.example>',
  '',
  'This is a message just to say hello.',
  'So, "Hello".',
  ''
].join('\r\n')

describe('headerEnd', () => {
  const table: Array<[string, string, number]> = [
    ['CRLF blank line', 'A: 1\r\nB: 2\r\n\r\nbody', 14],
    ['LF blank line', 'A: 1\nB: 2\n\nbody', 11],
    ['blank line at the very end', 'A: 1\r\n\r\n', 8],
    ['no blank line: all header', 'A: 1\r\nB: 2\r\n', 12],
    ['no newline at all', 'A: 1', 4],
    ['empty', '', 0],
    ['"\\n\\n" inside the body does not count twice', 'A: 1\r\n\r\nx\n\ny', 8]
  ]
  for (const [name, raw, end] of table) it(name, () => { assert.equal(headerEnd(b(raw)), end) })
})

describe('parseHeaders', () => {
  it('RFC 5322 A.1.1', () => {
    assert.deepEqual(parseHeaders(b(RFC5322_A11)), [
      ['From', 'John Doe <jdoe@machine.example>'],
      ['To', 'Mary Smith <mary@example.net>'],
      ['Subject', 'Saying Hello'],
      ['Date', 'Fri, 21 Nov 1997 09:55:06 -0600'],
      ['Message-ID', '<1234@local.machine.example>']
    ])
  })
  it('unfolds (RFC 5322 2.2.3), keeps order and repeats, reads no body', () => {
    const raw = b('Received: from a\r\n\tby b;\r\n Fri, 21 Nov 1997\r\nReceived: from c\r\nSubject: one:two\r\nnot a header\r\n\r\nX-In-Body: no\r\n')
    assert.deepEqual(parseHeaders(raw), [['Received', 'from a\tby b; Fri, 21 Nov 1997'], ['Received', 'from c'], ['Subject', 'one:two']])
  })
  it('headerValue is case-insensitive and takes the first', () => {
    const raw = b('subject: first\r\nSUBJECT: second\r\n\r\n')
    assert.equal(headerValue(raw, 'Subject'), 'first')
    assert.equal(headerValue(raw, 'Date'), undefined)
  })
})

describe('Message-ID', () => {
  const table: Array<[string, string, string | undefined]> = [
    ['RFC 5322 A.1.1', RFC5322_A11, '1234@local.machine.example'],
    ['folded', 'Message-ID:\r\n <abc@x.onion>\r\n\r\n', 'abc@x.onion'],
    ['lowercase name', 'message-id: <a@b>\r\n\r\n', 'a@b'],
    ['missing', 'Subject: x\r\n\r\n', undefined],
    ['no angle brackets', 'Message-ID: a@b\r\n\r\n', undefined],
    ['white space inside', 'Message-ID: <a b@c>\r\n\r\n', undefined],
    ['empty brackets', 'Message-ID: <>\r\n\r\n', undefined],
    ['too long', `Message-ID: <${'a'.repeat(901)}@b>\r\n\r\n`, undefined],
    ['only in the body', 'Subject: x\r\n\r\nMessage-ID: <a@b>\r\n', undefined]
  ]
  for (const [name, raw, id] of table) it(name, () => { assert.equal(messageIdOf(b(raw)), id) })

  it('newMessageId: 128 random bits at the domain', () => {
    const id = newMessageId('aoqqpp7tzyil4hlq3umoos6atft6jvrqtosq2xy53sdgiesvgg4bqead.onion')
    assert.match(id, /^[0-9a-f]{32}@aoqqpp7tzyil4hlq3umoos6atft6jvrqtosq2xy53sdgiesvgg4bqead\.onion$/)
    assert.notEqual(newMessageId('x.onion'), newMessageId('x.onion'))
  })
})

describe('dates and trace headers', () => {
  it('rfc5322Date', () => {
    assert.equal(rfc5322Date(new Date(0)), 'Thu, 01 Jan 1970 00:00:00 +0000')
    assert.equal(rfc5322Date(new Date('2024-02-29T23:59:58.900Z')), 'Thu, 29 Feb 2024 23:59:58 +0000')
  })
  it('prependHeaders puts lines on top with CRLF', () => {
    assert.equal(prependHeaders(b('A: 1\r\n\r\nx'), ['Received: one', 'Received: two']).toString(), 'Received: one\r\nReceived: two\r\nA: 1\r\n\r\nx')
    const raw = b('A: 1\r\n\r\nx')
    assert.equal(prependHeaders(raw, []), raw)
  })
})

describe('completeSubmittedMessage', () => {
  const now = new Date('2024-05-01T12:00:00Z')
  const date = 'Date: Wed, 01 May 2024 12:00:00 \\+0000' // a regular expression
  const ID = /Message-ID: <[0-9a-f]{32}@d\.onion>/

  it('a complete message is returned as it is', () => {
    const raw = b(RFC5322_A11)
    const result = completeSubmittedMessage(raw, 'd.onion', now)
    assert.equal(result.raw, raw)
    assert.equal(result.messageId, '1234@local.machine.example')
  })

  const table: Array<[string, string, RegExp]> = [
    ['both missing, CRLF: before the blank line', 'Subject: x\r\n\r\nbody\r\n', new RegExp(`^Subject: x\\r\\n${ID.source}\\r\\n${date}\\r\\n\\r\\nbody\\r\\n$`)],
    ['both missing, LF: before the blank line', 'Subject: x\n\nbody\n', new RegExp(`^Subject: x\\n${ID.source}\\r\\n${date}\\r\\n\\nbody\\n$`)],
    ['headers only, blank line at the end', 'Subject: x\r\n\r\n', new RegExp(`^Subject: x\\r\\n${ID.source}\\r\\n${date}\\r\\n\\r\\n$`)],
    ['headers only, no final newline', 'Subject: x', new RegExp(`^Subject: x\\r\\n${ID.source}\\r\\n${date}\\r\\n$`)],
    // Regression: a CRLF was added after the final CRLF, a blank line that turned the new
    // Message-ID and Date into body.
    ['headers only, final CRLF and no blank line', 'Subject: x\r\n', new RegExp(`^Subject: x\\r\\n${ID.source}\\r\\n${date}\\r\\n$`)],
    ['headers only, final LF', 'Subject: x\n', new RegExp(`^Subject: x\\n${ID.source}\\r\\n${date}\\r\\n$`)],
    ['empty message', '', new RegExp(`^${ID.source}\\r\\n${date}\\r\\n$`)],
    ['only Date missing', 'Message-ID: <k@x>\r\n\r\nbody', new RegExp(`^Message-ID: <k@x>\\r\\n${date}\\r\\n\\r\\nbody$`)],
    ['body text that looks like headers stays body', 'Subject: x\r\n\r\nDate: no\r\nMessage-ID: <no@no>\r\n', new RegExp(`^Subject: x\\r\\n${ID.source}\\r\\n${date}\\r\\n\\r\\nDate: no\\r\\nMessage-ID: <no@no>\\r\\n$`)]
  ]
  for (const [name, input, expected] of table) {
    it(name, () => {
      const result = completeSubmittedMessage(b(input), 'd.onion', now)
      const text = result.raw.toString('latin1')
      assert.match(text, expected)
      // The added fields are header fields of the result, and the Message-ID is the one returned.
      assert.equal(messageIdOf(result.raw), result.messageId)
      assert.ok(parseHeaders(result.raw).some(([name]) => name === 'Date'), 'Date is a header field')
    })
  }
})

describe('withoutBcc', () => {
  const table: Array<[string, string, string]> = [
    ['simple', 'To: a@x\r\nBcc: s@y\r\nSubject: hi\r\n\r\nbody', 'To: a@x\r\nSubject: hi\r\n\r\nbody'],
    ['first field', 'Bcc: s@y\r\nTo: a@x\r\n\r\nbody', 'To: a@x\r\n\r\nbody'],
    ['last field', 'To: a@x\r\nBcc: s@y\r\n\r\nbody', 'To: a@x\r\n\r\nbody'],
    ['folded over lines', 'To: a@x\r\nBcc: s@y,\r\n t@z,\r\n\tu@w\r\nSubject: hi\r\n\r\nbody', 'To: a@x\r\nSubject: hi\r\n\r\nbody'],
    ['upper case', 'BCC: s@y\r\nTo: a@x\r\n\r\nbody', 'To: a@x\r\n\r\nbody'],
    ['empty Bcc', 'To: a@x\r\nBcc:\r\n\r\nbody', 'To: a@x\r\n\r\nbody'],
    ['two Bcc fields', 'Bcc: s@y\r\nTo: a@x\r\nbcc: t@z\r\n\r\nbody', 'To: a@x\r\n\r\nbody'],
    ['LF line ends', 'To: a@x\nBcc: s@y\n\nbody', 'To: a@x\n\nbody'],
    ['Bcc in the body stays', 'To: a@x\r\n\r\nBcc: body@text\r\n', 'To: a@x\r\n\r\nBcc: body@text\r\n'],
    ['other fields that contain "bcc" stay', 'X-Bcc: k\r\nResent-Bcc: r\r\nSubject: Bcc: x\r\n\r\nb', 'X-Bcc: k\r\nResent-Bcc: r\r\nSubject: Bcc: x\r\n\r\nb'],
    // Regressions: each of these left the Bcc recipients in the copy sent to everyone.
    ['white space before the colon (RFC 5322 4.5 obsolete syntax)', 'To: a@x\r\nBcc : s@y\r\n\r\nbody', 'To: a@x\r\n\r\nbody'],
    ['tab before the colon', 'To: a@x\r\nBcc\t: s@y\r\n\r\nbody', 'To: a@x\r\n\r\nbody'],
    ['last field of a body-less message without final newline', 'To: a@x\r\nBcc: s@y', 'To: a@x\r\n'],
    ['bare CR inside the field', 'To: a@x\r\nBcc: s@y\r t@z\r\n\r\nbody', 'To: a@x\r\n\r\nbody']
  ]
  for (const [name, input, expected] of table) {
    it(name, () => {
      const out = withoutBcc(b(input))
      assert.equal(out.toString('latin1'), expected)
      assert.equal(headerValue(out, 'Bcc'), undefined)
    })
  }
  it('a message without Bcc is the same buffer', () => {
    const raw = b(RFC5322_A11)
    assert.equal(withoutBcc(raw), raw)
  })
  it('8-bit bytes in the header and the body stay byte for byte', () => {
    const raw = Buffer.concat([b('Subject: '), Buffer.from('caf\u00e9 \u2603', 'utf8'), b('\r\nBcc: s@y\r\n\r\n'), Buffer.from([0xff, 0x00, 0x80])])
    assert.deepEqual(withoutBcc(raw), Buffer.concat([b('Subject: '), Buffer.from('caf\u00e9 \u2603', 'utf8'), b('\r\n\r\n'), Buffer.from([0xff, 0x00, 0x80])]))
  })
})
