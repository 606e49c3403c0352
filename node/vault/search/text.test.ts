// Search text: the plain-text fast path finds the same words as postal-mime, and leaves
// everything else to postal-mime.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { extractSearchText, plainTextMessage } from './text.ts'
import { documentTerms } from './terms.ts'

const simple = [
  'From: Alice Example <alice@example.org>\r\nTo: <bob@example.net>,\r\n carol@example.com\r\nCc: dave@example.org\r\nSubject: quarterly\r\n report\r\nContent-Type: text/plain; charset="utf-8"\r\n\r\nBody with grüße and 你好.\r\nSecond line.\r\n',
  'From: a@b.example\nSubject: bare LF\n\nbody words here\n',
  'From: a@b.example\r\nTo: c@d.example\r\nSubject: no content type\r\nMessage-ID: <x@y>\r\n\r\nplain body\r\n'
]

test('the fast path finds the same terms as postal-mime for plain messages', async () => {
  for (const text of simple) {
    const raw = Buffer.from(text, 'utf8')
    const fast = plainTextMessage(raw)
    assert.ok(fast !== undefined, text)
    // The same message with one more header holding an encoded word (the word "x") goes
    // through postal-mime; compare what matters to search: the terms.
    const slow = await extractSearchText(Buffer.concat([raw.subarray(0, raw.indexOf('\n') + 1), Buffer.from('X-Force-Parser: =?utf-8?q?x?=\r\n'), raw.subarray(raw.indexOf('\n') + 1)]))
    assert.deepEqual([...documentTerms(fast)].filter(t => !t.includes('force')).sort(), [...documentTerms(slow)].filter(t => !t.includes('force') && !t.endsWith(':x') && t !== '*:x').sort(), text)
  }
})

test('encoded words, transfer encodings, other charsets and multipart go to postal-mime', async () => {
  for (const text of [
    'Subject: =?utf-8?q?gr=C3=BC=C3=9Fe?=\r\n\r\nbody\r\n',
    'Subject: x\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nsoft=\r\nbreak\r\n',
    'Subject: x\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\ncaf\xe9\r\n',
    'Subject: x\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n',
    'Subject: x\r\nContent-Type: text/html\r\n\r\n<p>x</p>\r\n',
    'no header here at all'
  ]) assert.equal(plainTextMessage(Buffer.from(text, 'latin1')), undefined, text)
  const qp = await extractSearchText(Buffer.from('Subject: x\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nsoft=\r\nbreak\r\n'))
  assert.match(qp.body, /softbreak/)
})
