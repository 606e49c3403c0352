// Reading OpenPGP mail (spec/openpgp.md 4): PGP/MIME encrypted and signed (RFC 3156), inline
// PGP in a text/plain body (RFC 4880 6.2 armor, 7 cleartext signatures), protected headers.
// Whatever the bytes, the answer is a result that says what was found and what went wrong,
// never a throw: the stored message is untouched and the mailbox shows the problem.
import * as openpgp from 'openpgp'
import {
  contentTypeOf, decodeTransfer, encryptedPayload, fieldValue, findInlinePgp, joinEntity, multipartParts,
  pgpMimeKind, protectedFieldsOf, signedParts, splitEntity, type HeaderField, type SplitEntity
} from '../../protocol/pgp-mime.ts'
import { fingerprintOf } from './keys.ts'
import type { MessageSecurity } from '../store/mail-store.ts'

export type { MessageSecurity }

export interface IncomingRead {
  security: MessageSecurity
  /**
   * The message to show instead of the stored one: the outer header fields (the protected ones
   * replacing theirs) over the decrypted or verified content. Undefined when there is nothing
   * better than the stored bytes.
   */
  display?: Buffer
  /** The protected header fields (from the signed or encrypted part), when the message has them. */
  protectedFields?: HeaderField[]
  /** Autocrypt-Gossip values found inside the encrypted part (Autocrypt Level 1 2.7). */
  gossip: string[]
}

export interface ReadKeys {
  /** The owner's keys, current first, then retired ones. */
  decryptionKeys: openpgp.PrivateKey[]
  /** Keys that may have signed: the sender's pinned key, a changed key, the message's Autocrypt key. */
  verificationKeys: openpgp.PublicKey[]
}

/** Most bytes of decrypted content kept (a zip bomb in compressed data is cut off here). */
const MAX_DECRYPTED_BYTES = 64 * 1024 * 1024

export async function readIncoming (raw: Buffer, keys: ReadKeys): Promise<IncomingRead> {
  let message: SplitEntity
  try {
    message = splitEntity(raw)
  } catch {
    return { security: { encrypted: false, signature: 'none', problem: 'The message header cannot be read.' }, gossip: [] }
  }
  try {
    const kind = pgpMimeKind(message)
    if (kind === 'encrypted') return await readEncrypted(message, keys)
    if (kind === 'signed') return await readSigned(message, message, keys, { encrypted: false, format: 'pgp-mime' }, [])
    return await readInline(message, keys)
  } catch (err) {
    // Broken MIME or armor: a stated problem, the stored bytes shown as they are.
    const looksEncrypted = pgpMimeKind(message) === 'encrypted'
    return { security: { encrypted: looksEncrypted, signature: 'none', problem: describe(err) }, gossip: [] }
  }
}

async function readEncrypted (message: SplitEntity, keys: ReadKeys): Promise<IncomingRead> {
  const armored = encryptedPayload(message)
  const base: MessageSecurity = { encrypted: true, format: 'pgp-mime', signature: 'none' }
  let pgpMessage: openpgp.Message<string>
  try {
    pgpMessage = await openpgp.readMessage({ armoredMessage: armored })
  } catch (err) {
    return { security: { ...base, problem: `The encrypted part is not a readable OpenPGP message (${describe(err)}).` }, gossip: [] }
  }
  const decrypted = await decrypt(pgpMessage, keys)
  if ('problem' in decrypted) return { security: { ...base, problem: decrypted.problem }, gossip: [] }
  const inner = splitEntity(decrypted.data)
  const gossip = inner.fields.filter(f => f.key === 'autocrypt-gossip').map(fieldValue)
  // RFC 3156 6.1: signed, then encrypted, as two layers.
  if (pgpMimeKind(inner) === 'signed' && decrypted.signature.signature === 'none') {
    return await readSigned(message, inner, keys, { encrypted: true, decrypted: true, format: 'pgp-mime' }, gossip)
  }
  const security: MessageSecurity = { ...base, decrypted: true, ...decrypted.signature }
  return finish(message, inner, security, gossip)
}

async function readSigned (outer: SplitEntity, signedEntity: SplitEntity, keys: ReadKeys, base: Omit<MessageSecurity, 'signature'>, gossip: string[]): Promise<IncomingRead> {
  const { signed, signature: armoredSignature } = signedParts(signedEntity)
  let signature: openpgp.Signature
  try {
    signature = await openpgp.readSignature({ armoredSignature })
  } catch (err) {
    return { security: { ...base, signature: 'bad', problem: `The signature part is not a readable OpenPGP signature (${describe(err)}).` }, gossip }
  }
  const result = await openpgp.verify({ message: await openpgp.createMessage({ binary: signed }), signature, verificationKeys: keys.verificationKeys, format: 'binary' })
  const verdict = await signatureVerdict(result.signatures, keys.verificationKeys)
  const inner = splitEntity(signed)
  const moreGossip = base.encrypted ? gossip : []
  return finish(outer, inner, { ...base, ...verdict }, moreGossip)
}

async function readInline (message: SplitEntity, keys: ReadKeys): Promise<IncomingRead> {
  const part = firstTextPart(message)
  const none: IncomingRead = { security: { encrypted: false, signature: 'none' }, gossip: [] }
  if (part === undefined) return none
  const charset = (contentTypeOf(part).params.get('charset') ?? 'utf-8').toLowerCase()
  const text = decodeText(decodeTransfer(part), charset)
  const block = findInlinePgp(text)
  if (block === undefined) return none
  if (block.kind === 'cleartext') {
    let cleartext: openpgp.CleartextMessage
    try {
      cleartext = await openpgp.readCleartextMessage({ cleartextMessage: block.armored })
    } catch (err) {
      return { security: { encrypted: false, format: 'inline', signature: 'bad', problem: `The signed text is not readable OpenPGP (${describe(err)}).` }, gossip: [] }
    }
    const result = await openpgp.verify({ message: cleartext, verificationKeys: keys.verificationKeys })
    const verdict = await signatureVerdict(result.signatures, keys.verificationKeys)
    return inlineResult(message, text.replace(block.armored, cleartext.getText()), { encrypted: false, format: 'inline', ...verdict })
  }
  let pgpMessage: openpgp.Message<string>
  try {
    pgpMessage = await openpgp.readMessage({ armoredMessage: block.armored })
  } catch (err) {
    return { security: { encrypted: true, format: 'inline', signature: 'none', problem: `The encrypted text is not a readable OpenPGP message (${describe(err)}).` }, gossip: [] }
  }
  const decrypted = await decrypt(pgpMessage, keys)
  if ('problem' in decrypted) return { security: { encrypted: true, format: 'inline', signature: 'none', problem: decrypted.problem }, gossip: [] }
  const plain = decodeText(decrypted.data, 'utf-8')
  return inlineResult(message, text.replace(block.armored, plain), { encrypted: true, decrypted: true, format: 'inline', ...decrypted.signature })
}

function inlineResult (message: SplitEntity, text: string, security: MessageSecurity): IncomingRead {
  const display = joinEntity([
    ...message.fields.filter(f => !f.key.startsWith('content-')).map(f => f.text),
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit'
  ], Buffer.from(text, 'utf8'))
  return { security, display, gossip: [] }
}

type Decrypted = { data: Buffer, signature: Pick<MessageSecurity, 'signature' | 'signer' | 'problem'> } | { problem: string }

async function decrypt (message: openpgp.Message<string>, keys: ReadKeys): Promise<Decrypted> {
  const recipients = message.getEncryptionKeyIDs().map(id => id.toHex().toUpperCase())
  const ours = new Set(keys.decryptionKeys.flatMap(k => k.getKeyIDs().map(id => id.toHex().toUpperCase())))
  // A wildcard key id (all zeros, a hidden recipient) may be ours: then try every key.
  if (recipients.length > 0 && !recipients.some(id => ours.has(id) || /^0+$/.test(id))) {
    return { problem: `This message is encrypted to someone else's key (key id ${recipients.join(', ')}), not to yours: it cannot be read here.` }
  }
  let result
  try {
    result = await openpgp.decrypt({ message, decryptionKeys: keys.decryptionKeys, verificationKeys: keys.verificationKeys, format: 'binary' })
  } catch (err) {
    return { problem: `The message could not be decrypted: ${describe(err)}. It may have been damaged or tampered with on the way.` }
  }
  const data = Buffer.from(result.data)
  if (data.length > MAX_DECRYPTED_BYTES) return { problem: 'The decrypted message is larger than 64 MiB; it is not shown.' }
  return { data, signature: await signatureVerdict(result.signatures, keys.verificationKeys) }
}

async function signatureVerdict (signatures: Array<{ keyID: openpgp.KeyID, verified: Promise<true> }>, verificationKeys: openpgp.PublicKey[]): Promise<Pick<MessageSecurity, 'signature' | 'signer' | 'problem'>> {
  if (signatures.length === 0) return { signature: 'none' }
  // The first signature decides; mail carries one.
  const sig = signatures[0] as { keyID: openpgp.KeyID, verified: Promise<true> }
  const key = verificationKeys.find(k => k.getKeyIDs().some(id => id.equals(sig.keyID)))
  try {
    await sig.verified
    return { signature: 'good', signer: key !== undefined ? fingerprintOf(key) : sig.keyID.toHex().toUpperCase() }
  } catch (err) {
    if (key === undefined) return { signature: 'unknown-key', signer: sig.keyID.toHex().toUpperCase() }
    return { signature: 'bad', signer: fingerprintOf(key), problem: `The signature does not match the message: it was changed after it was signed, or the signature is forged (${describe(err)}).` }
  }
}

/**
 * The message to show: outer fields, the protected fields in place of theirs, over the
 * decrypted or signed entity (its own Content-* fields and body).
 */
function finish (outer: SplitEntity, inner: SplitEntity, security: MessageSecurity, gossip: string[]): IncomingRead {
  const protectedFields = protectedFieldsOf(inner)
  const replaced = new Set((protectedFields ?? []).map(f => f.key))
  const fields = [
    ...outer.fields.filter(f => !f.key.startsWith('content-') && !replaced.has(f.key)),
    ...(protectedFields ?? []),
    ...inner.fields.filter(f => f.key.startsWith('content-'))
  ]
  return {
    security,
    display: joinEntity(fields, inner.body),
    gossip,
    ...(protectedFields !== undefined ? { protectedFields } : {})
  }
}

/** The body of a single-part text/plain message, or the first text/plain part of a top-level multipart. */
function firstTextPart (message: SplitEntity): SplitEntity | undefined {
  const ct = contentTypeOf(message)
  if (ct.type === 'text/plain') return message
  if (!ct.type.startsWith('multipart/')) return undefined
  let parts: Buffer[]
  try {
    parts = multipartParts(message.body, ct.params.get('boundary') ?? '')
  } catch {
    return undefined
  }
  for (const part of parts.slice(0, 16)) {
    const entity = splitEntity(part)
    if (contentTypeOf(entity).type === 'text/plain') return entity
  }
  return undefined
}

function decodeText (data: Buffer, charset: string): string {
  try {
    return new TextDecoder(charset).decode(data)
  } catch {
    return data.toString('latin1')
  }
}

function describe (err: unknown): string {
  const text = err instanceof Error ? err.message : String(err)
  return text.replace(/[\r\n]+/g, ' ').replace(/^Error (decrypting|reading|verifying)[^:]*: /i, '').slice(0, 300)
}
