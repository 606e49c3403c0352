// Signing and encrypting outgoing mail (spec/openpgp.md 5): PGP/MIME (RFC 3156), with the
// protected headers of draft-autocrypt-lamps-protected-headers-02 and Autocrypt-Gossip
// (Autocrypt Level 1 2.7). The message given is already sanitized (protocol/outgoing-headers.ts)
// and carries the sender's Autocrypt header.
import * as openpgp from 'openpgp'
import { encode, wrap } from 'nodemailer/lib/qp'
import {
  ENCRYPTED_SUBJECT, OUTER_FIELDS_ENCRYPTED, contentTypeOf, fieldValue, isContentField, joinEntity,
  multipartEncrypted, multipartSigned, protectedEntity, splitEntity, type SplitEntity
} from '../../protocol/pgp-mime.ts'

export interface ProtectOptions {
  signingKey: openpgp.PrivateKey
  /** Extra fields for the protected part (the route header), signed with it. */
  protectedExtra: string[]
}

export interface EncryptOptions extends ProtectOptions {
  /** The sender's own public key: every copy is encrypted to it too, so the sender can read it. */
  ownKey: openpgp.PublicKey
  /** To and Cc recipients, each with the key to encrypt to. */
  visible: Array<{ address: string, key: openpgp.PublicKey }>
  /** Bcc recipients: each gets a copy of their own, encrypted to them and the sender only. */
  blind: Array<{ address: string, key: openpgp.PublicKey }>
  /** Autocrypt-Gossip values for the visible recipients' copy (only when there are several). */
  gossip: string[]
}

export interface OutgoingCopy {
  to: string[]
  raw: Buffer
}

/** Signed only (RFC 3156 5), one copy for everyone; the Subject stays outside as well as inside. */
export async function signMessage (raw: Buffer, options: ProtectOptions): Promise<Buffer> {
  const message = sevenBit(splitEntity(raw))
  const inner = protectedEntity(message, options.protectedExtra)
  // Detached, as an object: a Signature (openpgp.js's types say Message).
  const signature: unknown = await openpgp.sign({
    message: await openpgp.createMessage({ binary: inner }),
    signingKeys: options.signingKey,
    detached: true,
    format: 'object'
  })
  if (!(signature instanceof openpgp.Signature)) throw new Error('openpgp.sign gave no detached signature')
  const body = multipartSigned(inner, signature.armor(), `pgp-${hashName(signature)}`)
  const outer = message.fields.filter(f => !isContentField(f.key) && f.key !== 'mime-version').map(f => f.text)
  return joinEntity([...outer, 'MIME-Version: 1.0', `Content-Type: ${body.contentType}`], body.body)
}

/**
 * Signed and encrypted (RFC 3156 6.2) with protected headers: one copy for the To and Cc
 * recipients, one per Bcc recipient, so no copy names a Bcc recipient's key.
 */
export async function encryptMessage (raw: Buffer, options: EncryptOptions): Promise<OutgoingCopy[]> {
  const message = splitEntity(raw)
  const copies: OutgoingCopy[] = []
  if (options.visible.length > 0) {
    copies.push({
      to: options.visible.map(r => r.address),
      raw: await encryptedCopy(message, options, options.visible.map(r => r.key), options.gossip)
    })
  }
  for (const recipient of options.blind) {
    copies.push({ to: [recipient.address], raw: await encryptedCopy(message, options, [recipient.key], []) })
  }
  return copies
}

async function encryptedCopy (message: SplitEntity, options: EncryptOptions, keys: openpgp.PublicKey[], gossip: string[]): Promise<Buffer> {
  // RFC 5322 3.6.3: no copy shows the Bcc field, inside or out.
  const visibleFields = { ...message, fields: message.fields.filter(f => f.key !== 'bcc') }
  const inner = protectedEntity(visibleFields, [...options.protectedExtra, ...gossip.map(g => `Autocrypt-Gossip: ${g}`)])
  const armored = await openpgp.encrypt({
    message: await openpgp.createMessage({ binary: inner }),
    encryptionKeys: [...keys, options.ownKey],
    signingKeys: options.signingKey,
    format: 'armored'
  })
  const body = multipartEncrypted(armored)
  const outer = visibleFields.fields.filter(f => OUTER_FIELDS_ENCRYPTED.has(f.key) && f.key !== 'mime-version').map(f => f.text)
  return joinEntity([...outer, `Subject: ${ENCRYPTED_SUBJECT}`, 'MIME-Version: 1.0', `Content-Type: ${body.contentType}`], body.body)
}

/**
 * RFC 3156 5.1: signed data must survive any transport unchanged, so it must be 7-bit, and
 * trailing white space must be encoded (mail software strips it). A single-part body that
 * is 8-bit or has trailing white space or overlong lines is re-encoded as quoted-printable
 * (RFC 2045 6.7) before signing. todo: the parts of a multipart body are signed as they are.
 */
function sevenBit (message: SplitEntity): SplitEntity {
  const type = contentTypeOf(message).type
  if (type.startsWith('multipart/') || type === 'message/rfc822') return message
  const encoding = message.fields.find(f => f.key === 'content-transfer-encoding')
  const cte = encoding === undefined ? '7bit' : fieldValue(encoding).toLowerCase()
  if (cte === 'base64' || cte === 'quoted-printable') return message
  const body = message.body.toString('latin1')
  // (A regex for the overlong line, /[^\r\n]{999}/, tried 999 characters from every position:
  // 0.9 ms for 5 KiB, more than the signature itself.)
  if (!/[\x80-\xff]|[ \t]\r?\n|[ \t]$/.test(body) && !hasLineLongerThan(body, 998)) return message
  const lines = message.body.toString('binary').split(/\r?\n/)
  const encoded = lines.map(line => wrap(encode(Buffer.from(line, 'binary')), 76)).join('\r\n')
  return {
    fields: [...message.fields.filter(f => f.key !== 'content-transfer-encoding'), { name: 'Content-Transfer-Encoding', key: 'content-transfer-encoding', text: 'Content-Transfer-Encoding: quoted-printable' }],
    body: Buffer.from(encoded, 'latin1')
  }
}

/** RFC 5322 2.1.1: lines of at most 998 characters, CRLF excluded. */
function hasLineLongerThan (text: string, max: number): boolean {
  let start = 0
  for (let i = 0; i <= text.length; i++) {
    const c = i < text.length ? text.charCodeAt(i) : 10
    if (c === 10 || c === 13) {
      if (i - start > max) return true
      start = i + 1
    }
  }
  return false
}

/** RFC 3156 5: micalg names the hash of the signature, e.g. "sha256". */
function hashName (signature: openpgp.Signature): string {
  const packet = signature.packets[0]
  const algorithm = packet?.hashAlgorithm
  const name = algorithm === undefined || algorithm === null ? 'sha256' : openpgp.enums.read(openpgp.enums.hash, algorithm)
  return String(name).toLowerCase()
}
