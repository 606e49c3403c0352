// Delivery status notifications: the RFC 6522 / RFC 3464 structure, per-recipient fields,
// and that nothing a peer says (diagnostics) or a sender wrote (subject) can add header lines.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { buildDsn, type DsnInit } from './dsn.ts'
import { headerValue, parseHeaders } from './message.ts'

const NODE = 'aoqqpp7tzyil4hlq3umoos6atft6jvrqtosq2xy53sdgiesvgg4bqead.onion'
const PEER = 'fgwlvykbxtfpbmrodkkngtily43b4utnbp7bfsexss6jgiuwnxluewad.onion'

function init (overrides: Partial<DsnInit> = {}): DsnInit {
  return {
    reportingDomain: NODE,
    to: `alice@${NODE}`,
    originalMessageId: 'orig1@x.onion',
    originalSubject: 'Lunch?',
    arrivalDate: new Date('2024-05-01T10:00:00Z'),
    recipients: [
      { address: `bob@${PEER}`, action: 'failed', status: '5.1.1', diagnostic: '550 5.1.1 No such user here', lastAttemptAt: new Date('2024-05-01T10:00:05Z') },
      { address: 'carol@example.com', action: 'delayed', status: '4.4.1', diagnostic: 'no connection to the relay', willRetryUntil: new Date('2024-05-02T17:52:30Z') }
    ],
    original: Buffer.from('From: alice\r\nSubject: Lunch?\r\nMessage-ID: <orig1@x.onion>\r\n\r\nsecret body text\r\n'),
    now: new Date('2024-05-01T12:00:00Z'),
    ...overrides
  }
}

interface Part { headers: Array<[string, string]>, body: string }

/** Split a multipart message at its boundary (RFC 2046 5.1.1). */
function parts (raw: Buffer): { boundary: string, parts: Part[], epilogueAfterClose: string } {
  const contentType = headerValue(raw, 'Content-Type') ?? ''
  const boundary = /boundary="([^"]+)"/.exec(contentType)?.[1]
  assert.ok(boundary !== undefined, 'a boundary parameter')
  const text = raw.toString('utf8')
  const [, ...rest] = text.split(`\r\n--${boundary}`)
  const last = rest.pop()!
  assert.ok(last.startsWith('--'), 'a close delimiter')
  return {
    boundary,
    parts: rest.map(chunk => {
      assert.ok(chunk.startsWith('\r\n'), 'delimiter line ends with CRLF')
      const body = chunk.slice(2)
      const end = body.indexOf('\r\n\r\n')
      return { headers: parseHeaders(Buffer.from(body.slice(0, end + 4))), body: body.slice(end + 4) }
    }),
    epilogueAfterClose: last.slice(2)
  }
}

/** RFC 3464 2.1: per-message fields, a blank line, then per-recipient groups separated by blank lines. */
function statusGroups (body: string): Array<Map<string, string>> {
  return body.trim().split(/\r\n\r\n/).map(group => new Map(group.split('\r\n').map(line => {
    const colon = line.indexOf(':')
    return [line.slice(0, colon), line.slice(colon + 1).trim()] as [string, string]
  })))
}

describe('DSN structure (RFC 6522, RFC 3464)', () => {
  const { raw, messageId } = buildDsn(init())
  const text = raw.toString('utf8')

  it('top-level headers', () => {
    assert.equal(headerValue(raw, 'From'), `Mail Delivery System <mailer-daemon@${NODE}>`)
    assert.equal(headerValue(raw, 'To'), `<alice@${NODE}>`)
    assert.equal(headerValue(raw, 'Subject'), 'Undelivered mail: delivery failed')
    assert.equal(headerValue(raw, 'Date'), 'Wed, 01 May 2024 12:00:00 +0000')
    assert.equal(headerValue(raw, 'Message-ID'), `<${messageId}>`)
    assert.match(messageId, new RegExp(`^[0-9a-f]{32}@${NODE.replace(/\./g, '\\.')}$`))
    assert.equal(headerValue(raw, 'In-Reply-To'), '<orig1@x.onion>')
    assert.equal(headerValue(raw, 'Auto-Submitted'), 'auto-replied') // RFC 3834 5
    assert.equal(headerValue(raw, 'MIME-Version'), '1.0')
    assert.match(headerValue(raw, 'Content-Type')!, /^multipart\/report; report-type=delivery-status; boundary="smtorp-[0-9a-f]{24}"$/)
  })

  it('three parts: human text, message/delivery-status, the original headers only', () => {
    const { parts: [human, status, original, ...more] } = parts(raw)
    assert.equal(more.length, 0)
    assert.equal(new Map(human!.headers).get('Content-Type'), 'text/plain; charset=utf-8')
    assert.equal(new Map(status!.headers).get('Content-Type'), 'message/delivery-status')
    assert.equal(new Map(original!.headers).get('Content-Type'), 'text/rfc822-headers')
    assert.match(human!.body, /could not be delivered to:\r\n\r\n {2}bob@/)
    assert.match(human!.body, /has not been delivered yet to:\r\n\r\n {2}carol@example\.com/)
    assert.match(human!.body, /The node keeps trying until Thu, 02 May 2024 17:52:30 \+0000\./)
    assert.match(human!.body, /Your message "Lunch\?"/)
    assert.equal(original!.body, 'From: alice\r\nSubject: Lunch?\r\nMessage-ID: <orig1@x.onion>\r\n')
    assert.doesNotMatch(text, /secret body text/)
  })

  it('per-message and per-recipient fields', () => {
    const status = parts(raw).parts[1]!
    const [perMessage, bob, carol, ...more] = statusGroups(status.body)
    assert.equal(more.length, 0)
    assert.deepEqual([...perMessage!], [['Reporting-MTA', `dns; ${NODE}`], ['Arrival-Date', 'Wed, 01 May 2024 10:00:00 +0000'], ['X-Original-Message-ID', '<orig1@x.onion>']])
    assert.deepEqual([...bob!], [
      ['Final-Recipient', `rfc822; bob@${PEER}`],
      ['Action', 'failed'],
      ['Status', '5.1.1'],
      ['Diagnostic-Code', 'smtp; 550 5.1.1 No such user here'],
      ['Last-Attempt-Date', 'Wed, 01 May 2024 10:00:05 +0000']
    ])
    assert.deepEqual([...carol!], [
      ['Final-Recipient', 'rfc822; carol@example.com'],
      ['Action', 'delayed'],
      ['Status', '4.4.1'],
      ['Diagnostic-Code', 'smtp; no connection to the relay'],
      ['Will-Retry-Until', 'Thu, 02 May 2024 17:52:30 +0000']
    ])
  })

  it('every line ends with CRLF; no bare CR or LF', () => {
    assert.doesNotMatch(text, /\r(?!\n)|(?<!\r)\n/)
    assert.ok(text.endsWith('--\r\n'))
  })

  it('a fresh boundary and Message-ID each time', () => {
    const again = buildDsn(init())
    assert.notEqual(again.messageId, messageId)
    assert.notEqual(parts(again.raw).boundary, parts(raw).boundary)
  })
})

describe('DSN variants', () => {
  it('only delayed recipients: a "delayed" subject and no failure text', () => {
    const { raw } = buildDsn(init({ recipients: [{ address: 'c@example.com', action: 'delayed', status: '4.4.1', diagnostic: 'timeout' }] }))
    assert.equal(headerValue(raw, 'Subject'), 'Delayed mail: still trying')
    assert.doesNotMatch(raw.toString(), /could not be delivered/)
  })
  it('without original Message-ID and subject', () => {
    const { raw } = buildDsn(init({ originalMessageId: undefined, originalSubject: undefined }))
    assert.equal(headerValue(raw, 'In-Reply-To'), undefined)
    assert.doesNotMatch(raw.toString(), /X-Original-Message-ID/)
    assert.match(raw.toString(), /Your message could not be delivered/)
  })
  it('an original without a blank line (headers only) is still only headers', () => {
    const { raw } = buildDsn(init({ original: Buffer.from('Subject: a\nX: b') }))
    assert.equal(parts(raw).parts[2]!.body, 'Subject: a\r\nX: b\r\n')
  })
})

describe('no injection from diagnostics and subjects', () => {
  const hostile = '550 bad\r\nAction: delivered\r\n\r\nFinal-Recipient: rfc822; mallory@evil.example\nStatus: 2.0.0\rX: y\0\x1b[31m\t'
  const { raw } = buildDsn(init({
    originalSubject: 'hi\r\nBcc: mallory@evil.example\r\n\r\n--fake-boundary',
    recipients: [{ address: 'bob@example.com', action: 'failed', status: '5.0.0', diagnostic: hostile }]
  }))
  const text = raw.toString('utf8')

  it('the report has exactly the fields we wrote', () => {
    const groups = statusGroups(parts(raw).parts[1]!.body)
    assert.equal(groups.length, 2)
    assert.deepEqual([...groups[1]!.keys()], ['Final-Recipient', 'Action', 'Status', 'Diagnostic-Code'])
    assert.equal(groups[1]!.get('Action'), 'failed')
    assert.equal(groups[1]!.get('Diagnostic-Code'), 'smtp; 550 bad Action: delivered Final-Recipient: rfc822; mallory@evil.example Status: 2.0.0 X: y[31m')
  })
  it('no line of the message starts with an injected field', () => {
    assert.doesNotMatch(text, /^(Action: delivered|Final-Recipient: rfc822; mallory|Status: 2\.0\.0|Bcc:|X: y|--fake-boundary)/m)
    assert.equal(headerValue(raw, 'Bcc'), undefined)
    assert.doesNotMatch(text, /[\0\x1b]/)
  })
  it('diagnostics are cut at 500 characters', () => {
    const { raw: long } = buildDsn(init({ recipients: [{ address: 'b@example.com', action: 'failed', status: '5.0.0', diagnostic: 'x'.repeat(5000) }] }))
    const groups = statusGroups(parts(long).parts[1]!.body)
    assert.equal(groups[1]!.get('Diagnostic-Code'), `smtp; ${'x'.repeat(500)}`)
  })
})
