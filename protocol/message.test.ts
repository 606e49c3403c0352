// RFC 5322 header handling: the header block, unfolding, Message-ID, the headers a submission
// server adds (RFC 6409 8), Bcc removal, and the summary a message list shows (RFC 2047
// encoded-words, the thread root of RFC 5322 3.6.4).
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { completeSubmittedMessage, decodeEncodedWords, headerEnd, headerValue, messageIdOf, newMessageId, parseHeaders, prependHeaders, rfc5322Date, summarizeHeaders, withoutBcc } from './message.ts'

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

describe('decodeEncodedWords', () => {
  // RFC 2047 8, the table of encoded-words in comments: white space between adjacent words goes.
  const rfc2047: Array<[string, string]> = [
    ['(=?ISO-8859-1?Q?a?=)', '(a)'],
    ['(=?ISO-8859-1?Q?a?= b)', '(a b)'],
    ['(=?ISO-8859-1?Q?a?= =?ISO-8859-1?Q?b?=)', '(ab)'],
    ['(=?ISO-8859-1?Q?a?=  =?ISO-8859-1?Q?b?=)', '(ab)'],
    ['(=?ISO-8859-1?Q?a?=    =?ISO-8859-1?Q?b?=)', '(ab)'], // the folded example, unfolded
    ['(=?ISO-8859-1?Q?a_b?=)', '(a b)'],
    ['(=?ISO-8859-1?Q?a?= =?ISO-8859-2?Q?_b?=)', '(a b)'],
    // RFC 2047 8, the example message's headers.
    ['=?US-ASCII?Q?Keith_Moore?= <moore@cs.utk.edu>', 'Keith Moore <moore@cs.utk.edu>'],
    ['=?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?= <keld@dkuug.dk>', 'Keld J\u00f8rn Simonsen <keld@dkuug.dk>'],
    ['=?ISO-8859-1?Q?Andr=E9?= Pirard <PIRARD@vm1.ulg.ac.be>', 'Andr\u00e9 Pirard <PIRARD@vm1.ulg.ac.be>'],
    ['=?ISO-8859-1?B?SWYgeW91IGNhbiByZWFkIHRoaXMgeW8=?= =?ISO-8859-2?B?dSB1bmRlcnN0YW5kIHRoZSBleGFtcGxlLg==?=', 'If you can read this you understand the example.'],
    ['Nathaniel Borenstein <nsb@thumper.bellcore.com> (=?iso-8859-8?b?7eXs+SDv4SDp7Oj08A==?=)', 'Nathaniel Borenstein <nsb@thumper.bellcore.com> (\u05dd\u05d5\u05dc\u05e9 \u05df\u05d1 \u05d9\u05dc\u05d8\u05e4\u05e0)'],
    // Lower case names, UTF-8, and a character split across two words (decoded together).
    ['=?utf-8?b?Y2Fmw6k=?=', 'caf\u00e9'],
    ['=?UTF-8?Q?=E2=98?= =?UTF-8?Q?=83?=', '\u2603'],
    ['=?utf-8?B?4pg=?= =?utf-8?B?gw==?=', '\u2603'],
    ['=?utf-8*en?Q?hi?=', 'hi'], // RFC 2231 language
    ['=?utf-8?b?Y2Fmw6k?=', 'caf\u00e9'], // padding left out
    // Stays as written: unknown charset, broken Q and B, not an encoded-word at all.
    ['=?x-no-such-charset?Q?a?=', '=?x-no-such-charset?Q?a?='],
    ['=?utf-8?Q?a=Zb?=', '=?utf-8?Q?a=Zb?='],
    ['=?utf-8?B?!!!!?=', '=?utf-8?B?!!!!?='],
    ['=?utf-8?X?abc?=', '=?utf-8?X?abc?='],
    ['=?utf-8?Q?a b?=', '=?utf-8?Q?a b?='],
    ['a broken =?utf-8?Q?x=?= then =?utf-8?Q?ok?=', 'a broken =?utf-8?Q?x=?= then ok'],
    ['plain text', 'plain text'],
    ['', '']
  ]
  for (const [input, expected] of rfc2047) it(JSON.stringify(input), () => { assert.equal(decodeEncodedWords(input), expected) })
})

describe('summarizeHeaders', () => {
  it('RFC 5322 A.1.1', () => {
    assert.deepEqual(summarizeHeaders(b(RFC5322_A11)), {
      subject: 'Saying Hello', from: 'John Doe <jdoe@machine.example>', date: Date.UTC(1997, 10, 21, 15, 55, 6), thread: '1234@local.machine.example'
    })
  })
  it('unfolds and decodes folded encoded-words (RFC 2047 8)', () => {
    const raw = b('From: =?US-ASCII?Q?Keith_Moore?= <moore@cs.utk.edu>\r\nSubject: =?ISO-8859-1?B?SWYgeW91IGNhbiByZWFkIHRoaXMgeW8=?=\r\n    =?ISO-8859-2?B?dSB1bmRlcnN0YW5kIHRoZSBleGFtcGxlLg==?=\r\n\r\nbody')
    assert.deepEqual(summarizeHeaders(raw), { subject: 'If you can read this you understand the example.', from: 'Keith Moore <moore@cs.utk.edu>', thread: '' })
  })
  it('unfolds a plain folded subject and turns tabs and decoded line breaks into spaces', () => {
    assert.equal(summarizeHeaders(b('Subject: a long\r\n\tsubject\r\n\r\n')).subject, 'a long subject')
    assert.equal(summarizeHeaders(b('Subject: =?utf-8?Q?one=0D=0ABcc:_x?=\r\n\r\n')).subject, 'one  Bcc: x')
  })
  it('reads raw UTF-8 (RFC 6532), and Latin-1 when the bytes are not UTF-8', () => {
    assert.equal(summarizeHeaders(Buffer.from('Subject: caf\u00e9 \u2603\r\n\r\n', 'utf8')).subject, 'caf\u00e9 \u2603')
    assert.equal(summarizeHeaders(Buffer.from('Subject: caf\u00e9\r\n\r\n', 'latin1')).subject, 'caf\u00e9')
  })
  it('reads no body', () => {
    assert.deepEqual(summarizeHeaders(b('X: y\r\n\r\nSubject: in the body\r\nMessage-ID: <body@x>\r\n')), { subject: '', from: '', thread: '' })
  })
  const threads: Array<[string, string, string]> = [
    ['own Message-ID for a first message', 'Message-ID: <root@x>\r\n', 'root@x'],
    ['In-Reply-To when there is no References', 'Message-ID: <r1@x>\r\nIn-Reply-To: <root@x>\r\n', 'root@x'],
    ['the FIRST id of References (RFC 5322 3.6.4)', 'Message-ID: <r2@x>\r\nIn-Reply-To: <r1@x>\r\nReferences: <root@x> <r1@x>\r\n', 'root@x'],
    ['folded References', 'References:\r\n <root@x>\r\n <r1@x>\r\nMessage-ID: <r2@x>\r\n', 'root@x'],
    ['References without an id falls back to In-Reply-To', 'References: garbage\r\nIn-Reply-To: <root@x>\r\n', 'root@x'],
    ['none at all', 'Subject: x\r\n', '']
  ]
  for (const [name, header, thread] of threads) it(`thread: ${name}`, () => { assert.equal(summarizeHeaders(b(`${header}\r\nbody`)).thread, thread) })
  const dates: Array<[string, number | undefined]> = [
    ['Fri, 21 Nov 1997 09:55:06 -0600', Date.UTC(1997, 10, 21, 15, 55, 6)],
    ['Thu, 13 Feb 1969 23:32:54 -0330 (Newfoundland Time)', Date.UTC(1969, 1, 14, 3, 2, 54)], // RFC 5322 A.5
    ['not a date', undefined],
    ['', undefined]
  ]
  for (const [value, date] of dates) it(`date: ${JSON.stringify(value)}`, () => { assert.equal(summarizeHeaders(b(`Date: ${value}\r\n\r\n`)).date, date) })
  it('caps subject and From at 998 characters, never in the middle of a surrogate pair', () => {
    assert.equal(summarizeHeaders(b(`Subject: ${'x'.repeat(5000)}\r\nFrom: ${'y'.repeat(1200)}\r\n\r\n`)).subject.length, 998)
    const pairs = summarizeHeaders(Buffer.from(`Subject: x${'\u{1f600}'.repeat(600)}\r\n\r\n`, 'utf8')).subject
    assert.equal(pairs.length, 997)
    assert.ok(pairs.endsWith('\u{1f600}'))
  })
  it('never throws on garbage', () => {
    const hostile = [
      Buffer.alloc(0), Buffer.from([0xff, 0xfe, 0x00, 0x0a, 0x0d]), randomish(4096, 1), randomish(4096, 2),
      b('Subject: =?=?=?\r\nFrom: =?utf-8?B?=?=\r\nDate: 99999999999999999999\r\nReferences: <<<>>>\r\n\r\n'),
      b(`Subject: ${'=?utf-8?Q?=FF?='.repeat(20000)}\r\n\r\n`), b(':\r\n:\r\n: \r\n\r\n')
    ]
    for (const raw of hostile) {
      const s = summarizeHeaders(raw)
      assert.equal(typeof s.subject, 'string')
      assert.ok(s.subject.length <= 998 && s.from.length <= 998)
      assert.ok(s.date === undefined || Number.isFinite(s.date))
    }
  })
})

/** `n` bytes from a small deterministic generator, header-like often enough to be interesting. */
function randomish (n: number, seed: number): Buffer {
  const alphabet = b('=?QBqb_:<>\r\n \tutf-8SubjectFromReferences\xff\x80')
  const out = Buffer.alloc(n)
  let x = seed
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff
    out[i] = alphabet[x % alphabet.length]!
  }
  return out
}
