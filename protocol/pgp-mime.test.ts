import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import {
  canonicalLineEndings, contentTypeOf, decodeTransfer, encryptedPayload, fieldValue, findInlinePgp, joinEntity,
  multipartEncrypted, multipartParts, multipartSigned, parseContentType, pgpMimeKind, protectedEntity,
  protectedFieldsOf, signedParts, splitEntity, PgpMimeError
} from './pgp-mime.ts'
import { IDENTIFYING_FIELDS, sanitizeOutgoing } from './outgoing-headers.ts'

describe('Content-Type (RFC 2045 5.1)', () => {
  const table: Array<[string | undefined, string, Record<string, string>]> = [
    [undefined, 'text/plain', {}],
    ['text/plain; charset=utf-8', 'text/plain', { charset: 'utf-8' }],
    ['Multipart/Signed; micalg=pgp-sha512; protocol="application/pgp-signature"; boundary="a b;c"', 'multipart/signed', { micalg: 'pgp-sha512', protocol: 'application/pgp-signature', boundary: 'a b;c' }],
    ['multipart/mixed (comment); boundary=xyz', 'multipart/mixed', { boundary: 'xyz' }],
    ['multipart/mixed; boundary="q\\"uote"', 'multipart/mixed', { boundary: 'q"uote' }],
    ['multipart/mixed; BOUNDARY=first; boundary=second', 'multipart/mixed', { boundary: 'first' }],
    ['garbage', 'text/plain', {}],
    ['', 'text/plain', {}]
  ]
  for (const [value, type, params] of table) {
    it(`${JSON.stringify(value)} is ${type}`, () => {
      const ct = parseContentType(value)
      assert.equal(ct.type, type)
      assert.deepEqual(Object.fromEntries(ct.params), params)
    })
  }
})

describe('multipart bodies (RFC 2046 5.1.1)', () => {
  it('parts are the exact bytes between delimiter lines; the CRLF before a delimiter belongs to it', () => {
    const body = Buffer.from('preamble\r\n--b\r\nContent-Type: text/plain\r\n\r\none\r\n--b  \r\n\r\ntwo\r\n\r\n--b--\r\nepilogue')
    const parts = multipartParts(body, 'b')
    assert.deepEqual(parts.map(p => p.toString()), ['Content-Type: text/plain\r\n\r\none', '\r\ntwo\r\n'])
  })
  it('a line that merely starts with the boundary is not a delimiter', () => {
    const parts = multipartParts(Buffer.from('--b\r\n\r\n--bx is text\r\n--b--'), 'b')
    assert.deepEqual(parts.map(p => p.toString()), ['\r\n--bx is text'])
  })
  it('bare LF line endings are read too', () => {
    assert.deepEqual(multipartParts(Buffer.from('--b\n\nx\n--b\n\ny\n--b--\n'), 'b').map(p => p.toString()), ['\nx', '\ny'])
  })
  const broken: Array<[string, string, RegExp]> = [
    ['no boundary at all', 'just text', /never appears/],
    ['no closing delimiter', '--b\r\n\r\nx\r\n--b\r\n\r\ny', /cut short/],
    ['empty boundary', '--\r\n', /missing/]
  ]
  for (const [name, body, error] of broken) {
    it(`${name} is a PgpMimeError`, () => {
      assert.throws(() => multipartParts(Buffer.from(body), name === 'empty boundary' ? '' : 'b'), (err: unknown) => err instanceof PgpMimeError && error.test(err.message))
    })
  }
})

describe('PGP/MIME structure (RFC 3156)', () => {
  const entity = Buffer.from('Content-Type: text/plain\r\n\r\nhello\r\n')
  it('multipart/signed round trip: the signed bytes come back exactly, with the signature', () => {
    const { contentType, body } = multipartSigned(entity, '-----BEGIN PGP SIGNATURE-----\n\nAAAA\n-----END PGP SIGNATURE-----\n', 'pgp-sha512')
    const message = splitEntity(joinEntity(['From: a@b.example', `Content-Type: ${contentType}`], body))
    assert.equal(pgpMimeKind(message), 'signed')
    assert.equal(contentTypeOf(message).params.get('micalg'), 'pgp-sha512')
    const parts = signedParts(message)
    // multipartSigned puts its own CRLF before the delimiter, so the signed part is exactly what was signed.
    assert.deepEqual(parts.signed, entity)
    assert.match(parts.signature, /^-----BEGIN PGP SIGNATURE-----\r\n\r\nAAAA\r\n-----END PGP SIGNATURE-----$/)
  })
  it('multipart/encrypted round trip: the payload is the armored message', () => {
    const { contentType, body } = multipartEncrypted('-----BEGIN PGP MESSAGE-----\n\nBBBB\n-----END PGP MESSAGE-----\n')
    const message = splitEntity(joinEntity([`Content-Type: ${contentType}`], body))
    assert.equal(pgpMimeKind(message), 'encrypted')
    assert.match(encryptedPayload(message), /BBBB/)
  })
  it('a multipart/encrypted with the parts swapped, or three parts, is refused with the reason', () => {
    const swapped = Buffer.from('Content-Type: multipart/encrypted; protocol="application/pgp-encrypted"; boundary=x\r\n\r\n--x\r\nContent-Type: application/octet-stream\r\n\r\nA\r\n--x\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n--x--\r\n')
    assert.throws(() => encryptedPayload(splitEntity(swapped)), /not application\/pgp-encrypted/)
    const three = Buffer.from('Content-Type: multipart/encrypted; protocol="application/pgp-encrypted"; boundary=x\r\n\r\n--x\r\n\r\na\r\n--x\r\n\r\nb\r\n--x\r\n\r\nc\r\n--x--\r\n')
    assert.throws(() => encryptedPayload(splitEntity(three)), /two parts; this one has 3/)
  })
  it('protocol parameters decide: multipart/signed without the pgp protocol is not PGP/MIME', () => {
    assert.equal(pgpMimeKind(splitEntity(Buffer.from('Content-Type: multipart/signed; protocol="application/pkcs7-signature"; boundary=x\r\n\r\n'))), 'none')
  })
})

describe('protected headers (draft-autocrypt-lamps-protected-headers-02)', () => {
  it('the protected entity carries the protected fields and extras, and wraps the original content', () => {
    const message = splitEntity(Buffer.from('From: a@b.example\r\nTo: c@d.example\r\nSubject: Real\r\nX-Other: no\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nbody\n'))
    const inner = splitEntity(canonicalLineEndings(protectedEntity(message, ['SMTorP-Route: a@x.onion'])))
    assert.deepEqual(protectedFieldsOf(inner)?.map(f => f.text), ['From: a@b.example', 'To: c@d.example', 'Subject: Real', 'SMTorP-Route: a@x.onion'])
    const [original] = multipartParts(inner.body, contentTypeOf(inner).params.get('boundary')!)
    assert.equal(original!.toString(), 'Content-Type: text/plain; charset=utf-8\r\n\r\nbody\r\n', 'the part keeps its last line end')
  })
  it('without protected-headers="v1" there are no protected fields', () => {
    assert.equal(protectedFieldsOf(splitEntity(Buffer.from('Content-Type: multipart/mixed; boundary=x\r\nSubject: s\r\n\r\n'))), undefined)
  })
})

describe('inline PGP and transfer encodings', () => {
  it('finds the first armored block, message or cleartext signature', () => {
    const message = '-----BEGIN PGP MESSAGE-----\n\nAAAA\n-----END PGP MESSAGE-----'
    const signed = '-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nhi\n-----BEGIN PGP SIGNATURE-----\n\nBBBB\n-----END PGP SIGNATURE-----'
    assert.deepEqual(findInlinePgp(`Hello\n${message}\nbye`), { kind: 'message', armored: message })
    assert.deepEqual(findInlinePgp(`${signed}\n${message}`), { kind: 'cleartext', armored: signed })
    assert.equal(findInlinePgp('-----BEGIN PGP MESSAGE-----\nno end'), undefined)
  })
  it('decodes base64 and quoted-printable bodies', () => {
    assert.equal(decodeTransfer(splitEntity(Buffer.from('Content-Transfer-Encoding: base64\r\n\r\naGVs\r\nbG8=\r\n'))).toString(), 'hello')
    assert.equal(decodeTransfer(splitEntity(Buffer.from('Content-Transfer-Encoding: quoted-printable\r\n\r\nCaf=C3=A9 =\r\nau lait'))).toString(), 'Café au lait')
  })
  it('header fields keep their folding, and values unfold', () => {
    const { fields } = splitEntity(Buffer.from('Subject: one\r\n two\r\nX: y\r\n\r\n'))
    assert.equal(fields[0]!.text, 'Subject: one\r\n two')
    assert.equal(fieldValue(fields[0]!), 'one two')
  })
})

describe('outgoing header fields (spec/openpgp.md 5.1)', () => {
  const now = new Date('2026-11-22T12:00:00Z')
  const raw = (...fields: string[]): Buffer => Buffer.from(`${fields.join('\r\n')}\r\n\r\nbody\r\n`)
  it('removes every identifying field, whatever its case', () => {
    const fields = [...IDENTIFYING_FIELDS].map(name => `${name.toUpperCase()}: secret-${name}`)
    const out = sanitizeOutgoing(raw('From: a@example.org', ...fields, 'Subject: s'), 'example.org', now)
    assert.doesNotMatch(out.raw.toString(), /secret-/)
    assert.match(out.raw.toString(), /^Subject: s$/m)
  })
  const dates: Array<[string | undefined, string]> = [
    ['Sun, 22 Nov 2026 14:30:00 +0200', 'Sun, 22 Nov 2026 12:30:00 +0000'],
    ['Sun, 22 Nov 2026 04:30:00 -0800', 'Sun, 22 Nov 2026 12:30:00 +0000'],
    ['not a date', 'Sun, 22 Nov 2026 12:00:00 +0000'],
    [undefined, 'Sun, 22 Nov 2026 12:00:00 +0000']
  ]
  for (const [given, expected] of dates) {
    it(`Date ${JSON.stringify(given)} becomes ${expected}`, () => {
      const out = sanitizeOutgoing(raw('From: a@example.org', ...(given !== undefined ? [`Date: ${given}`] : [])), 'example.org', now)
      assert.deepEqual(out.raw.toString().match(/^Date: .*$/gm), [`Date: ${expected}`])
    })
  }
  it('keeps a Message-ID at the sender\'s domain and replaces one naming a host', () => {
    assert.equal(sanitizeOutgoing(raw('Message-ID: <abc@Example.org>'), 'example.org', now).messageId, 'abc@example.org')
    const replaced = sanitizeOutgoing(raw('Message-ID: <abc@laptop.example.org>'), 'example.org', now)
    assert.match(replaced.messageId, /^[0-9a-f]{32}@example\.org$/)
    assert.doesNotMatch(replaced.raw.toString(), /laptop/)
    assert.equal((replaced.raw.toString().match(/^Message-ID:/gm) ?? []).length, 1)
  })
  it('leaves the body byte for byte', () => {
    const body = Buffer.from('\r\nline with trailing space \r\n\x00\xff\r\n', 'latin1')
    const out = sanitizeOutgoing(Buffer.concat([Buffer.from('From: a@example.org\r\n'), body]), 'example.org', now)
    assert.deepEqual(out.raw.subarray(out.raw.length - body.length + 2), body.subarray(2))
  })
})
