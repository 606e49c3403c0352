import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import PostalMime from 'postal-mime'
import { headerValue, rfc5322Date, withoutBcc } from '../../protocol/message.ts'
import { buildMessage, ComposeError, parseRecipients, recipientsOf, replyDraft, type DraftInput, type ReplySource } from './index.ts'

const ME = { address: 'me@example.org', name: 'Me Myself' }
const NOW = new Date(Date.UTC(2025, 0, 2, 3, 4, 5))

function draft (over: Partial<DraftInput> = {}): DraftInput {
  return { to: 'bob@example.org', cc: '', bcc: '', subject: 'Hello', body: 'Hi Bob.\n', attachments: [], ...over }
}

async function rejects (promise: Promise<unknown>, message: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof ComposeError, String(err))
    assert.equal(err.name, 'ComposeError')
    assert.match(err.message, message)
    return true
  })
}

describe('recipientsOf', () => {
  const table: Array<[string, string[]]> = [
    ['', []],
    ['  ', []],
    ['bob@example.org', ['bob@example.org']],
    ['Bob <BOB@Example.ORG>', ['bob@example.org']],
    ['"Doe, Jane" <jane@example.org>, bob@example.org', ['jane@example.org', 'bob@example.org']],
    ['"Say \\"hi\\", ok" <a@example.org>; b@example.org,', ['a@example.org', 'b@example.org']],
    ['a@example.org (work, mostly), b@example.org', ['a@example.org', 'b@example.org']],
    ['a@example.org, A@EXAMPLE.org', ['a@example.org']]
  ]
  for (const [field, expected] of table) {
    it(JSON.stringify(field), () => assert.deepEqual(recipientsOf(field), expected))
  }

  it('keeps display names', () => {
    assert.deepEqual(parseRecipients('"Doe, Jane" <jane@example.org>, Bob  Smith <bob@example.org>'), [
      { name: 'Doe, Jane', address: 'jane@example.org' }, { name: 'Bob Smith', address: 'bob@example.org' }])
  })

  it('names the bad address', () => {
    const table: Array<[string, string]> = [['good@example.org, not-an-address', 'not-an-address'], ['Eve <eve@localhost>', 'eve@localhost'],
      ['x@[127.0.0.1]', 'x@[127.0.0.1]'], ['Bob <bob@example.org', 'Bob <bob@example.org']]
    for (const [field, bad] of table) {
      assert.throws(() => recipientsOf(field), (err: unknown) => {
        assert.ok(err instanceof ComposeError)
        assert.ok(err.message.includes(`"${bad}"`), err.message)
        return true
      })
    }
  })
})

describe('buildMessage', () => {
  it('builds a message postal-mime reads back: headers, body, attachment bytes', async () => {
    const pdf = Buffer.from('%PDF-1.4\n\x00\x01\x02binary\xff', 'latin1')
    const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 0, 0, 0x0d])
    const built = await buildMessage(draft({
      to: '"Doe, Jane" <jane@example.org>, bob@example.org',
      cc: 'Jürgen <j@example.org>',
      subject: 'Grüße, with attachments',
      body: 'Line one\nLine two: ünïcödé\n\nA very long line '.padEnd(300, 'x') + '\n',
      attachments: [{ filename: 'report.pdf', contentType: 'application/pdf', content: pdf },
        { filename: 'Bild ä.png', contentType: 'IMAGE/PNG', content: png }]
    }), ME, { domain: 'example.org', now: NOW })
    const email = await PostalMime.parse(built.raw)
    assert.deepEqual(email.from, { name: 'Me Myself', address: 'me@example.org' })
    assert.deepEqual(email.to, [{ name: 'Doe, Jane', address: 'jane@example.org' }, { name: '', address: 'bob@example.org' }])
    assert.deepEqual(email.cc, [{ name: 'Jürgen', address: 'j@example.org' }])
    assert.equal(email.subject, 'Grüße, with attachments')
    // postal-mime keeps the line break that belongs to the boundary (RFC 2046 5.1.1), hence trimEnd.
    assert.equal(email.text?.trimEnd(), 'Line one\nLine two: ünïcödé\n\nA very long line '.padEnd(300, 'x'))
    assert.equal(email.messageId, `<${built.messageId}>`)
    assert.match(built.messageId, /^[0-9a-f]{32}@example\.org$/)
    assert.equal(headerValue(built.raw, 'Date'), rfc5322Date(NOW))
    assert.match(headerValue(built.raw, 'Content-Type') ?? '', /^multipart\/mixed/)
    assert.deepEqual(email.attachments.map(a => [a.filename, a.mimeType, Buffer.from(a.content as ArrayBuffer)]),
      [['report.pdf', 'application/pdf', pdf], ['Bild ä.png', 'image/png', png]])
    assert.deepEqual(built.envelope, { from: 'me@example.org', to: ['jane@example.org', 'bob@example.org', 'j@example.org'] })
  })

  it('puts Bcc recipients in the envelope and keeps the Bcc header for the queue to strip', async () => {
    const built = await buildMessage(draft({ to: 'a@example.org', cc: 'b@example.org, A@example.org', bcc: 'Hidden <c@example.org>, b@example.org' }), ME, { domain: 'example.org', now: NOW })
    assert.deepEqual(built.envelope.to, ['a@example.org', 'b@example.org', 'c@example.org'])
    assert.match(headerValue(built.raw, 'Bcc') ?? '', /c@example\.org/)
    assert.equal(headerValue(withoutBcc(built.raw), 'Bcc'), undefined)
  })

  it('writes no X-Mailer, User-Agent or host name', async () => {
    const built = await buildMessage(draft({ attachments: [{ filename: 'a.txt', contentType: 'text/plain', content: Buffer.from('a') }] }), ME, { domain: 'node.example.org', now: NOW })
    const head = built.raw.subarray(0, built.raw.indexOf('\r\n\r\n')).toString()
    assert.doesNotMatch(head, /^(x-mailer|user-agent|x-originating-ip|received)\s*:/im)
    const { hostname } = await import('node:os')
    assert.ok(!built.raw.toString('latin1').includes(hostname()), 'the host name leaks')
    assert.ok(!/nodemailer/i.test(built.raw.toString('latin1')))
  })

  it('writes In-Reply-To and References from the parent (RFC 5322 3.6.4)', async () => {
    const built = await buildMessage(draft({ inReplyTo: { messageId: 'p3@example.org', references: ['p1@example.org', 'p2@example.org'] } }), ME, { domain: 'example.org', now: NOW })
    assert.equal(headerValue(built.raw, 'In-Reply-To'), '<p3@example.org>')
    assert.equal(headerValue(built.raw, 'References'), '<p1@example.org> <p2@example.org> <p3@example.org>')
    const fresh = await buildMessage(draft(), ME, { domain: 'example.org', now: NOW })
    assert.equal(headerValue(fresh.raw, 'In-Reply-To'), undefined)
    assert.equal(headerValue(fresh.raw, 'References'), undefined)
  })

  it('refuses a draft without recipients, with a bad address, or too big', async () => {
    await rejects(buildMessage(draft({ to: '', cc: ' ', bcc: '' }), ME, { domain: 'example.org' }), /at least one recipient/)
    await rejects(buildMessage(draft({ to: 'ok@example.org', cc: 'broken@@example.org' }), ME, { domain: 'example.org' }), /"broken@@example\.org"/)
    await rejects(buildMessage(draft(), { address: 'not me' }, { domain: 'example.org' }), /sender address "not me"/)
    const big = { filename: 'big.bin', contentType: 'application/octet-stream', content: Buffer.alloc(100_000) }
    await rejects(buildMessage(draft({ attachments: [big] }), ME, { domain: 'example.org', maxBytes: 100_000 }), /too big/)
    await rejects(buildMessage(draft({ body: 'x'.repeat(90_000) + '\u00e9'.repeat(5000) }), ME, { domain: 'example.org', maxBytes: 100_000 }), /too big/)
  })

  it('keeps header injection out of the subject', async () => {
    const built = await buildMessage(draft({ subject: 'Hi\r\nBcc: evil@example.org' }), ME, { domain: 'example.org', now: NOW })
    assert.equal(headerValue(built.raw, 'Bcc'), undefined)
    assert.deepEqual(built.envelope.to, ['bob@example.org'])
  })
})

describe('replyDraft', () => {
  const original: ReplySource = {
    from: [{ name: 'Alice', address: 'alice@example.org' }],
    to: [{ name: 'Me', address: 'ME@example.org' }, { name: 'Bob', address: 'bob@example.org' }],
    cc: [{ name: '', address: 'carol@example.org' }, { name: 'Bob again', address: 'BOB@example.org' }, { name: 'Alice', address: 'alice@example.org' }],
    replyTo: [],
    subject: 'Plans',
    date: Date.UTC(2025, 6, 1, 8, 0, 0),
    messageId: 'm2@example.org',
    references: ['m1@example.org'],
    text: 'Shall we meet?\r\n> earlier line\r\n\r\nAlice\r\n'
  }

  it('reply goes to From, or Reply-To when there is one', () => {
    assert.equal(replyDraft(original, 'reply', 'me@example.org').to, '"Alice" <alice@example.org>')
    assert.equal(replyDraft({ ...original, replyTo: [{ name: '', address: 'list@example.org' }] }, 'reply', 'me@example.org').to, 'list@example.org')
    assert.equal(replyDraft(original, 'reply', 'me@example.org').cc, '')
  })

  it('replyAll adds the other recipients, without self and duplicates', () => {
    const d = replyDraft(original, 'replyAll', 'Me@Example.org')
    assert.equal(d.to, '"Alice" <alice@example.org>')
    assert.deepEqual(recipientsOf(d.cc), ['bob@example.org', 'carol@example.org'])
    assert.equal(d.bcc, '')
  })

  it('answering my own message goes to its recipients', () => {
    const d = replyDraft({ ...original, from: [{ name: 'Me', address: 'me@example.org' }], to: [{ name: '', address: 'bob@example.org' }], cc: [] }, 'reply', 'me@example.org')
    assert.equal(d.to, 'bob@example.org')
  })

  it('subjects get exactly one prefix', () => {
    const table: Array<[string, 'reply' | 'forward', string]> = [
      ['Plans', 'reply', 'Re: Plans'], ['Re: Plans', 'reply', 'Re: Plans'], ['RE: re: Plans', 'reply', 'Re: Plans'],
      ['Re[2]: Plans', 'reply', 'Re: Plans'], ['Fwd: Plans', 'reply', 'Re: Fwd: Plans'], ['', 'reply', 'Re: '],
      ['Plans', 'forward', 'Fwd: Plans'], ['Fwd: Plans', 'forward', 'Fwd: Plans'], ['FW: Plans', 'forward', 'Fwd: Plans'],
      ['Re: Plans', 'forward', 'Fwd: Re: Plans']
    ]
    for (const [subject, mode, expected] of table) assert.equal(replyDraft({ ...original, subject }, mode, 'me@example.org').subject, expected, subject)
  })

  it('quotes the original after an attribution line', () => {
    assert.equal(replyDraft(original, 'reply', 'me@example.org').body,
      '\n\nOn Tue, 01 Jul 2025 08:00:00 GMT, Alice wrote:\n> Shall we meet?\n>> earlier line\n>\n> Alice\n')
    const { date: _, ...undated } = original
    assert.match(replyDraft(undated, 'reply', 'me@example.org').body, /^\n\nAlice wrote:\n/)
  })

  it('threads a reply and not a forward', () => {
    assert.deepEqual(replyDraft(original, 'replyAll', 'me@example.org').inReplyTo, { messageId: 'm2@example.org', references: ['m1@example.org'] })
    assert.deepEqual(replyDraft({ ...original, references: [], inReplyTo: 'm0@example.org' }, 'reply', 'me@example.org').inReplyTo,
      { messageId: 'm2@example.org', references: ['m0@example.org'] })
    assert.equal(replyDraft(original, 'forward', 'me@example.org').inReplyTo, undefined)
  })

  it('forward has the original headers and text and no recipients', () => {
    const d = replyDraft(original, 'forward', 'me@example.org')
    assert.deepEqual([d.to, d.cc, d.bcc], ['', '', ''])
    assert.equal(d.body, ['', '', '---------- Forwarded message ----------', 'From: "Alice" <alice@example.org>',
      'Date: Tue, 01 Jul 2025 08:00:00 GMT', 'Subject: Plans', 'To: "Me" <ME@example.org>, "Bob" <bob@example.org>',
      'Cc: carol@example.org, "Bob again" <BOB@example.org>, "Alice" <alice@example.org>', '',
      'Shall we meet?', '> earlier line', '', 'Alice', ''].join('\n'))
  })

  it('a reply draft builds into a threaded message', async () => {
    const d = replyDraft(original, 'replyAll', 'me@example.org')
    const built = await buildMessage({ ...d, attachments: [] }, ME, { domain: 'example.org', now: NOW })
    assert.equal(headerValue(built.raw, 'In-Reply-To'), '<m2@example.org>')
    assert.equal(headerValue(built.raw, 'References'), '<m1@example.org> <m2@example.org>')
    assert.deepEqual(built.envelope.to, ['alice@example.org', 'bob@example.org', 'carol@example.org'])
  })
})
