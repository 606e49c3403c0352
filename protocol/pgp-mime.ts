// The MIME side of OpenPGP mail, without any cryptography (spec/openpgp.md):
// - RFC 3156 PGP/MIME: multipart/signed (section 5) and multipart/encrypted (section 4, and
//   6.2 for signed-and-encrypted in one OpenPGP message), with the signed part kept byte for
//   byte so its signature can be checked;
// - protected headers (draft-autocrypt-lamps-protected-headers-02, "v1"): the real Subject and
//   the other header fields inside the signed or encrypted part, a placeholder Subject outside;
// The crypto is node/openpgp/; this module only cuts and joins bytes.
import { randomBytes } from 'node:crypto'
import { headerEnd } from './message.ts'

/** One header field as written: its name and the whole field with folding, without the final CRLF. */
export interface HeaderField {
  name: string
  /** Lower-case name, for comparisons. */
  key: string
  text: string
}

export interface SplitEntity {
  fields: HeaderField[]
  body: Buffer
}

export class PgpMimeError extends Error {
  override name = 'PgpMimeError'
}

/** RFC 5322 2.2: the header block as fields (folded lines kept), and the body after the blank line. */
export function splitEntity (raw: Buffer): SplitEntity {
  const end = headerEnd(raw)
  const text = raw.subarray(0, end).toString('latin1')
  const fields: HeaderField[] = []
  for (const line of text.split(/\r?\n/)) {
    if (line === '') continue
    const last = fields[fields.length - 1]
    if (/^[ \t]/.test(line) && last !== undefined) {
      last.text += `\r\n${line}`
      continue
    }
    const colon = line.indexOf(':')
    if (colon <= 0) continue // not a field: dropped (it could not be read as one anyway)
    const name = line.slice(0, colon).trim()
    fields.push({ name, key: name.toLowerCase(), text: line })
  }
  return { fields, body: raw.subarray(end) }
}

/** A field's value, unfolded (RFC 5322 2.2.3). */
export function fieldValue (field: HeaderField): string {
  return field.text.slice(field.text.indexOf(':') + 1).replace(/\r?\n(?=[ \t])/g, '').trim()
}

export function joinEntity (fields: HeaderField[] | string[], body: Buffer | string): Buffer {
  const lines = fields.map(f => typeof f === 'string' ? f : f.text)
  return Buffer.concat([Buffer.from(lines.map(l => `${l}\r\n`).join('') + '\r\n', 'latin1'), typeof body === 'string' ? Buffer.from(body, 'utf8') : body])
}

export interface ContentType {
  /** Lower-case "type/subtype"; text/plain when the field is missing (RFC 2045 5.2). */
  type: string
  /** Parameter names in lower case; values unquoted. */
  params: Map<string, string>
}

/** RFC 2045 5.1 Content-Type, with quoted-string parameter values (RFC 822 quoting). */
export function parseContentType (value: string | undefined): ContentType {
  const params = new Map<string, string>()
  if (value === undefined) return { type: 'text/plain', params }
  const text = value.replace(/\([^()]*\)/g, ' ')
  const semi = text.indexOf(';')
  const type = (semi < 0 ? text : text.slice(0, semi)).trim().toLowerCase()
  const rest = semi < 0 ? '' : text.slice(semi + 1)
  const param = /\s*([^=;\s]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]*))\s*;?/g
  let m: RegExpExecArray | null
  while ((m = param.exec(rest)) !== null) {
    if (m[0] === '') break
    const name = (m[1] ?? '').toLowerCase()
    if (!params.has(name)) params.set(name, m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : (m[3] ?? ''))
  }
  return { type: /^[a-z0-9!#$&^_.+-]+\/[a-z0-9!#$&^_.+-]+$/.test(type) ? type : 'text/plain', params }
}

export function contentTypeOf (entity: SplitEntity): ContentType {
  const field = entity.fields.find(f => f.key === 'content-type')
  return parseContentType(field === undefined ? undefined : fieldValue(field))
}

/**
 * The body parts of a multipart body, each exactly as written between its delimiter lines
 * (RFC 2046 5.1.1: the CRLF before a delimiter belongs to the delimiter). Throws when the
 * boundary never appears or the closing delimiter is missing: a broken multipart.
 */
export function multipartParts (body: Buffer, boundary: string): Buffer[] {
  if (boundary === '' || boundary.length > 70) throw new PgpMimeError('The multipart boundary is missing or longer than RFC 2046 allows.')
  const text = body.toString('latin1')
  const delimiter = `--${boundary}`
  const parts: Buffer[] = []
  // A delimiter line starts a line and may be followed by white space (RFC 2046 5.1.1).
  const lines = /(^|\r?\n)--([^\r\n]*?)[ \t]*(?=\r?\n|$)/g
  let start = -1
  let m: RegExpExecArray | null
  while ((m = lines.exec(text)) !== null) {
    const label = `--${m[2] ?? ''}`
    const isClose = label === `${delimiter}--`
    if (label !== delimiter && !isClose) continue
    if (start >= 0) parts.push(body.subarray(start, m.index))
    if (isClose) return parts
    // The part starts after the delimiter line's CRLF.
    const after = m.index + m[0].length
    start = text.startsWith('\r\n', after) ? after + 2 : text.startsWith('\n', after) ? after + 1 : after
  }
  throw new PgpMimeError(start < 0 ? 'The multipart boundary never appears in the body.' : 'The multipart body has no closing boundary: it was cut short.')
}

/** Every line ending as CRLF (RFC 3156 5: the signed part is checked in canonical form). */
export function canonicalLineEndings (data: Buffer): Buffer {
  return Buffer.from(data.toString('latin1').replace(/\r?\n/g, '\r\n'), 'latin1')
}

function newBoundary (): string {
  return `=_${randomBytes(12).toString('base64url')}`
}

/**
 * RFC 3156 5: multipart/signed around an entity (header fields and body) and its detached,
 * armored signature. `signed` must be exactly the bytes that were signed, in canonical form.
 */
export function multipartSigned (signed: Buffer, armoredSignature: string, micalg: string): { contentType: string, body: Buffer } {
  const boundary = newBoundary()
  return {
    contentType: `multipart/signed; micalg=${micalg}; protocol="application/pgp-signature"; boundary="${boundary}"`,
    body: Buffer.concat([
      Buffer.from(`This is an OpenPGP/MIME signed message (RFC 4880 and 3156)\r\n--${boundary}\r\n`),
      signed,
      Buffer.from(`\r\n--${boundary}\r\n` +
        'Content-Type: application/pgp-signature; name="signature.asc"\r\n' +
        'Content-Description: OpenPGP digital signature\r\n' +
        'Content-Disposition: attachment; filename="signature.asc"\r\n\r\n' +
        `${crlf(armoredSignature)}\r\n--${boundary}--\r\n`)
    ])
  }
}

/** RFC 3156 4: multipart/encrypted with its version part and the armored OpenPGP message. */
export function multipartEncrypted (armoredMessage: string): { contentType: string, body: Buffer } {
  const boundary = newBoundary()
  return {
    contentType: `multipart/encrypted; protocol="application/pgp-encrypted"; boundary="${boundary}"`,
    body: Buffer.from(
      `This is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)\r\n--${boundary}\r\n` +
      'Content-Type: application/pgp-encrypted\r\n' +
      'Content-Description: PGP/MIME version identification\r\n\r\n' +
      `Version: 1\r\n\r\n--${boundary}\r\n` +
      'Content-Type: application/octet-stream; name="encrypted.asc"\r\n' +
      'Content-Description: OpenPGP encrypted message\r\n' +
      'Content-Disposition: inline; filename="encrypted.asc"\r\n\r\n' +
      `${crlf(armoredMessage)}\r\n--${boundary}--\r\n`)
  }
}

function crlf (text: string): string {
  return text.replace(/\r?\n/g, '\r\n').replace(/\r\n$/, '')
}

/** What a PGP/MIME message is, from its top-level Content-Type. */
export type PgpMimeKind = 'encrypted' | 'signed' | 'none'

export function pgpMimeKind (entity: SplitEntity): PgpMimeKind {
  const ct = contentTypeOf(entity)
  const protocol = (ct.params.get('protocol') ?? '').toLowerCase()
  if (ct.type === 'multipart/encrypted' && protocol === 'application/pgp-encrypted') return 'encrypted'
  if (ct.type === 'multipart/signed' && protocol === 'application/pgp-signature') return 'signed'
  return 'none'
}

/**
 * RFC 3156 4: the armored OpenPGP message of a multipart/encrypted entity (its second part,
 * after the "Version: 1" part). Throws PgpMimeError with the reason when the structure is wrong.
 */
export function encryptedPayload (entity: SplitEntity): string {
  const parts = multipartParts(entity.body, contentTypeOf(entity).params.get('boundary') ?? '')
  if (parts.length !== 2) throw new PgpMimeError(`A PGP/MIME encrypted message has two parts; this one has ${parts.length}.`)
  const control = splitEntity(parts[0] as Buffer)
  if (contentTypeOf(control).type !== 'application/pgp-encrypted') throw new PgpMimeError('The first part of a PGP/MIME encrypted message is not application/pgp-encrypted.')
  const payload = splitEntity(parts[1] as Buffer)
  return decodeTransfer(payload).toString('latin1')
}

/**
 * RFC 3156 5: the signed entity (exact bytes, canonical line endings) and the armored detached
 * signature of a multipart/signed entity.
 */
export function signedParts (entity: SplitEntity): { signed: Buffer, signature: string } {
  const parts = multipartParts(entity.body, contentTypeOf(entity).params.get('boundary') ?? '')
  if (parts.length !== 2) throw new PgpMimeError(`A PGP/MIME signed message has two parts; this one has ${parts.length}.`)
  const sig = splitEntity(parts[1] as Buffer)
  if (contentTypeOf(sig).type !== 'application/pgp-signature') throw new PgpMimeError('The second part of a PGP/MIME signed message is not application/pgp-signature.')
  return { signed: canonicalLineEndings(parts[0] as Buffer), signature: decodeTransfer(sig).toString('latin1') }
}

/** A body decoded from its Content-Transfer-Encoding (RFC 2045 6): base64, quoted-printable, or as is. */
export function decodeTransfer (entity: SplitEntity): Buffer {
  const field = entity.fields.find(f => f.key === 'content-transfer-encoding')
  const encoding = field === undefined ? '' : fieldValue(field).toLowerCase()
  if (encoding === 'base64') return Buffer.from(entity.body.toString('latin1').replace(/[^A-Za-z0-9+/=]/g, ''), 'base64')
  if (encoding === 'quoted-printable') {
    const text = entity.body.toString('latin1').replace(/=\r?\n/g, '')
    return Buffer.from(text.replace(/=([0-9A-Fa-f]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16))), 'latin1')
  }
  return entity.body
}

// Inline PGP (RFC 4880 6.2 armor, 7 cleartext signature) inside a text/plain body.
const ARMORED_MESSAGE = /-----BEGIN PGP MESSAGE-----\r?\n[\s\S]*?\r?\n-----END PGP MESSAGE-----/
const CLEARTEXT_SIGNED = /-----BEGIN PGP SIGNED MESSAGE-----\r?\n[\s\S]*?\r?\n-----END PGP SIGNATURE-----/

export type InlinePgp = { kind: 'message', armored: string } | { kind: 'cleartext', armored: string }

/** The first inline PGP block of a text, if any. */
export function findInlinePgp (text: string): InlinePgp | undefined {
  const message = ARMORED_MESSAGE.exec(text)
  const signed = CLEARTEXT_SIGNED.exec(text)
  if (message !== null && (signed === null || message.index < signed.index)) return { kind: 'message', armored: message[0] }
  if (signed !== null) return { kind: 'cleartext', armored: signed[0] }
  return undefined
}

// Outgoing header fields (spec/openpgp.md, "Outgoing header fields").

/** Fields that must stay outside an encrypted message for delivery, threading and display. */
export const OUTER_FIELDS_ENCRYPTED = new Set(['from', 'to', 'cc', 'date', 'message-id', 'in-reply-to', 'references', 'reply-to', 'mime-version', 'autocrypt'])

/** Copied into the protected part (draft-autocrypt-lamps-protected-headers-02 section 2). */
export const PROTECTED_FIELDS = new Set(['subject', 'from', 'to', 'cc', 'date', 'message-id', 'in-reply-to', 'references', 'reply-to', 'keywords', 'smtorp-route'])

/** The Subject shown outside an encrypted message (the draft's recommended placeholder). */
export const ENCRYPTED_SUBJECT = '...'

/** Content-* and MIME-Version fields belong to the entity, not to the message. */
export function isContentField (key: string): boolean {
  return key.startsWith('content-')
}

/**
 * The protected inner entity: a multipart/mixed marked protected-headers="v1" whose header
 * carries the protected fields (and any Autocrypt-Gossip fields), around the original entity
 * (its Content-* fields and body). Every line ends in CRLF, as RFC 3156 5 signs it.
 */
export function protectedEntity (message: SplitEntity, extraFields: string[]): Buffer {
  const boundary = newBoundary()
  const protectedFields = message.fields.filter(f => PROTECTED_FIELDS.has(f.key)).map(f => f.text)
  const contentFields = message.fields.filter(f => isContentField(f.key)).map(f => f.text)
  const original = joinEntity(contentFields.length > 0 ? contentFields : ['Content-Type: text/plain; charset=us-ascii'], message.body)
  return joinEntity([
    `Content-Type: multipart/mixed; boundary="${boundary}"; protected-headers="v1"`,
    ...protectedFields,
    ...extraFields
  ], Buffer.concat([
    Buffer.from(`--${boundary}\r\n`),
    canonicalLineEndings(original),
    // RFC 2046 5.1.1: the CRLF before a delimiter belongs to it, so the part keeps its own last line end.
    Buffer.from(`\r\n--${boundary}--\r\n`)
  ]))
}

/**
 * The protected header fields of a decrypted or verified inner entity, when it says
 * protected-headers="v1"; the fields are those of its own header block.
 */
export function protectedFieldsOf (inner: SplitEntity): HeaderField[] | undefined {
  const ct = contentTypeOf(inner)
  if ((ct.params.get('protected-headers') ?? '').toLowerCase() !== 'v1') return undefined
  return inner.fields.filter(f => !isContentField(f.key) && f.key !== 'mime-version')
}
