// SMTP wire pieces: replies as RFC 5321 and real servers write them, hostile replies, and
// dot-stuffing of hostile message bodies.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { dotStuff, ehloExtensions, MAX_REPLY_LINE, MAX_REPLY_LINES, ReplyParser, replyText, SmtpProtocolError, type SmtpReply } from './smtp.ts'

describe('reply parser', () => {
  const table: Array<[string, string, SmtpReply[]]> = [
    ['single line', '250 OK\r\n', [{ code: 250, lines: ['OK'] }]],
    ['bare LF line ending', '250 OK\n', [{ code: 250, lines: ['OK'] }]],
    ['code only', '250\r\n', [{ code: 250, lines: [''] }]],
    ['greeting', '220 foo.com Simple Mail Transfer Service Ready\r\n', [{ code: 220, lines: ['foo.com Simple Mail Transfer Service Ready'] }]],
    // RFC 5321 D.1, the EHLO reply
    ['multi-line EHLO (RFC 5321 D.1)', '250-foo.com greets bar.com\r\n250-8BITMIME\r\n250-SIZE\r\n250-DSN\r\n250 HELP\r\n',
      [{ code: 250, lines: ['foo.com greets bar.com', '8BITMIME', 'SIZE', 'DSN', 'HELP'] }]],
    ['354', '354 Start mail input; end with <CRLF>.<CRLF>\r\n', [{ code: 354, lines: ['Start mail input; end with <CRLF>.<CRLF>'] }]],
    // RFC 3463 enhanced codes, RFC 2034 placement
    ['enhanced code', '550 5.1.1 No such user here\r\n', [{ code: 550, enhanced: '5.1.1', lines: ['No such user here'] }]],
    ['enhanced code alone', '250 2.0.0\r\n', [{ code: 250, enhanced: '2.0.0', lines: [''] }]],
    ['three-digit enhanced parts', '452 4.523.999 x\r\n', [{ code: 452, enhanced: '4.523.999', lines: ['x'] }]],
    ['multi-line with enhanced code', '550-5.7.1 Relaying denied\r\n550 5.7.1 see policy\r\n', [{ code: 550, enhanced: '5.7.1', lines: ['Relaying denied', '5.7.1 see policy'] }]],
    ['not an enhanced code (two parts)', '250 5.1 ok\r\n', [{ code: 250, lines: ['5.1 ok'] }]],
    ['not an enhanced code (class 3)', '250 3.1.1 ok\r\n', [{ code: 250, lines: ['3.1.1 ok'] }]],
    ['not an enhanced code (no space after)', '250 2.0.0ok\r\n', [{ code: 250, lines: ['2.0.0ok'] }]],
    ['334 challenge keeps base64 intact', '334 QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8=\r\n', [{ code: 334, lines: ['QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8='] }]],
    ['334 empty challenge', '334 \r\n', [{ code: 334, lines: [''] }]],
    // RFC 2920 pipelined replies arrive together
    ['pipelined replies in one chunk', '250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 No\r\n354 End data with <CR><LF>.<CR><LF>\r\n', [
      { code: 250, enhanced: '2.1.0', lines: ['Ok'] },
      { code: 250, enhanced: '2.1.5', lines: ['Ok'] },
      { code: 550, enhanced: '5.1.1', lines: ['No'] },
      { code: 354, lines: ['End data with <CR><LF>.<CR><LF>'] }
    ]],
    ['incomplete line waits', '250 OK', []],
    ['incomplete multi-line reply waits', '250-one\r\n250-two\r\n', []]
  ]
  for (const [name, input, expected] of table) {
    it(name, () => {
      assert.deepEqual(new ReplyParser().push(input), expected)
    })
    if (expected.length > 0) {
      it(`${name}, one byte at a time`, () => {
        const parser = new ReplyParser()
        const replies: SmtpReply[] = []
        for (const char of input) replies.push(...parser.push(char))
        assert.deepEqual(replies, expected)
      })
    }
  }

  it('a reply split between chunks, CR and LF in different chunks', () => {
    const parser = new ReplyParser()
    assert.deepEqual(parser.push('250-foo.com\r'), [])
    assert.deepEqual(parser.push('\n250-PIPE'), [])
    assert.deepEqual(parser.push('LINING\r\n250 SIZE 1000\r'), [])
    assert.deepEqual(parser.push('\n221 2.0.0 Bye\r\n'), [{ code: 250, lines: ['foo.com', 'PIPELINING', 'SIZE 1000'] }, { code: 221, enhanced: '2.0.0', lines: ['Bye'] }])
  })

  const malformed: Array<[string, string, RegExp]> = [
    ['not a reply', 'hello\r\n', /malformed/],
    ['empty line', '\r\n', /malformed/],
    ['two-digit code', '25 ok\r\n', /malformed/],
    ['four-digit code', '2500 ok\r\n', /malformed/],
    ['1xx code', '199 ok\r\n', /malformed/],
    ['6xx code', '600 ok\r\n', /malformed/],
    ['wrong separator', '250_ok\r\n', /malformed/],
    ['leading space', ' 250 ok\r\n', /malformed/],
    ['HTTP answer', 'HTTP/1.1 400 Bad Request\r\n', /malformed/],
    ['codes disagree', '250-one\r\n251 two\r\n', /disagree/],
    ['continuation with another class', '250-one\r\n550 two\r\n', /disagree/]
  ]
  for (const [name, input, error] of malformed) {
    it(`throws on ${name}`, () => {
      assert.throws(() => new ReplyParser().push(input), (err: Error) => err instanceof SmtpProtocolError && error.test(err.message))
    })
  }

  it('throws on an unfinished line longer than the limit', () => {
    const parser = new ReplyParser()
    assert.deepEqual(parser.push(`250 ${'x'.repeat(MAX_REPLY_LINE - 4)}`), [])
    assert.throws(() => parser.push('x'), /too long/)
  })

  it('a line of exactly the limit is accepted', () => {
    const text = 'x'.repeat(MAX_REPLY_LINE - 4)
    assert.deepEqual(new ReplyParser().push(`250 ${text}\r\n`), [{ code: 250, lines: [text] }])
  })

  // Regression: the limit was checked only on the unfinished rest of the buffer, so a
  // finished line of any length arriving in one chunk was accepted.
  it('too-long line in a single chunk is refused like one split over chunks', () => {
    const line = `250 ${'x'.repeat(MAX_REPLY_LINE)}\r\n`
    assert.throws(() => new ReplyParser().push(line), /too long/)
    assert.throws(() => {
      const parser = new ReplyParser()
      for (let i = 0; i < line.length; i += 1000) parser.push(line.slice(i, i + 1000))
    }, /too long/)
  })

  it('throws on more continuation lines than the limit', () => {
    const parser = new ReplyParser()
    assert.throws(() => parser.push('250-x\r\n'.repeat(MAX_REPLY_LINES + 1)), /too many lines/)
    assert.deepEqual(new ReplyParser().push(`${'250-x\r\n'.repeat(MAX_REPLY_LINES - 1)}250 x\r\n`)[0]?.lines.length, MAX_REPLY_LINES)
  })
})

describe('reply helpers', () => {
  it('replyText', () => {
    assert.equal(replyText({ code: 550, enhanced: '5.1.1', lines: ['No such user'] }), '550 5.1.1 No such user')
    assert.equal(replyText({ code: 250, lines: ['a', 'b'] }), '250 a / b')
    assert.equal(replyText({ code: 250, lines: [''] }), '250')
  })
  it('EHLO extensions: keywords uppercased, parameters kept, greeting line skipped', () => {
    const [reply] = new ReplyParser().push('250-abc.onion greets you\r\n250-PIPELINING\r\n250-size 10240000\r\n250-8BITMIME\r\n250-AUTH PLAIN  X-SMTORP-ONION\r\n250 ENHANCEDSTATUSCODES\r\n')
    const extensions = ehloExtensions(reply!)
    assert.deepEqual([...extensions], [['PIPELINING', ''], ['SIZE', '10240000'], ['8BITMIME', ''], ['AUTH', 'PLAIN X-SMTORP-ONION'], ['ENHANCEDSTATUSCODES', '']])
    assert.equal(extensions.has('ABC.ONION'), false)
    assert.deepEqual([...ehloExtensions({ code: 250, lines: ['only a greeting'] })], [])
  })
})

describe('dotStuff', () => {
  const table: Array<[string, string, string]> = [
    ['CRLF lines', 'a\r\nb\r\n', 'a\r\nb\r\n.\r\n'],
    ['leading dot on the first line', '.a\r\n', '..a\r\n.\r\n'],
    ['a line that is only a dot', 'a\r\n.\r\nb\r\n', 'a\r\n..\r\nb\r\n.\r\n'],
    ['two dots', '..\r\n', '...\r\n.\r\n'],
    ['dot in the middle of a line', 'a.b\r\n', 'a.b\r\n.\r\n'],
    ['bare LF becomes CRLF', 'a\nb\n', 'a\r\nb\r\n.\r\n'],
    ['bare LF first', '\nx', '\r\nx\r\n.\r\n'],
    ['bare LF then a dot line', 'a\n.\nb', 'a\r\n..\r\nb\r\n.\r\n'],
    ['no final newline', 'no newline', 'no newline\r\n.\r\n'],
    ['dot without final newline', '.', '..\r\n.\r\n'],
    ['only CRLF', '\r\n', '\r\n.\r\n'],
    ['empty message', '', '.\r\n'],
    // Regressions: RFC 5321 2.3.8 forbids bare CR; passed through, "\r.\r\n" ends the data
    // for some receivers ("SMTP smuggling", 2023) and lets a sender inject a second message.
    ['bare CR before a dot line (SMTP smuggling)', 'a\r.\r\nMAIL FROM:<x@y>\r\n', 'a\r\n..\r\nMAIL FROM:<x@y>\r\n.\r\n'],
    ['bare LF then dot then CRLF (SMTP smuggling)', 'a\n.\r\nMAIL FROM:<x@y>\r\n', 'a\r\n..\r\nMAIL FROM:<x@y>\r\n.\r\n'],
    ['bare CR becomes CRLF', 'a\rb', 'a\r\nb\r\n.\r\n'],
    ['trailing bare CR', 'a\r', 'a\r\n.\r\n'],
    ['CR CR LF', 'a\r\r\nb', 'a\r\n\r\nb\r\n.\r\n']
  ]
  for (const [name, input, expected] of table) {
    it(name, () => {
      assert.equal(dotStuff(Buffer.from(input, 'latin1')).toString('latin1'), expected)
    })
  }

  it('keeps 8-bit bytes as they are', () => {
    const body = Buffer.from('caf\u00e9 \u2603\r\n', 'utf8')
    assert.deepEqual(dotStuff(body), Buffer.concat([body, Buffer.from('.\r\n')]))
  })

  it('random hostile bodies: only CRLF line ends, the end marker only at the end, and unstuffing gives the body back', () => {
    // Deterministic generator over the bytes that matter: ".", CR, LF and a letter.
    let state = 12345
    const next = (): number => { state = (state * 1103515245 + 12345) & 0x7fffffff; return state }
    for (let round = 0; round < 2000; round++) {
      const input = Buffer.from(Array.from({ length: next() % 24 }, () => ['.', '\r', '\n', 'a'][next() % 4]!.charCodeAt(0)))
      const out = dotStuff(input).toString('latin1')
      const name = JSON.stringify(input.toString('latin1'))
      assert.doesNotMatch(out, /\r(?!\n)|(?<!\r)\n/, `bare CR or LF in the output for ${name}`)
      assert.ok(out.endsWith('\r\n.\r\n') || out === '.\r\n', name)
      const end = `\r\n${out}`.indexOf('\r\n.\r\n')
      assert.equal(end, out.length - 3, `end of data before the end for ${name}`)
      // The receiver's view (RFC 5321 4.5.2): drop the end line, then one leading dot per line.
      const lines = out.slice(0, -3).split('\r\n').slice(0, -1).map(line => line.startsWith('.') ? line.slice(1) : line)
      const normalized = input.toString('latin1').replace(/\r\n|\r|\n/g, '\r\n')
      const expected = normalized === '' ? '' : normalized.endsWith('\r\n') ? normalized : `${normalized}\r\n`
      assert.equal(lines.map(line => `${line}\r\n`).join(''), expected, name)
    }
  })
})
