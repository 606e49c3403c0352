// Mail that arrives while the vault is locked (StartMail's queue key): it is sealed at once to
// the vault's X25519 arrival key with HPKE (RFC 9180, base mode, DHKEM(X25519, HKDF-SHA256),
// HKDF-SHA256, AES-256-GCM; the @hpke/core library), so the SMTP endpoint needs no secret to
// store it durably. Only the unlocked vault holds the private half and can open it.
// Format: spec/storage.md, "Arrivals".
import { Aes256Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from '@hpke/core'
import { createPrivateKey, createPublicKey } from 'node:crypto'
import { TamperError } from './crypto.ts'

export const ARRIVAL_VERSION = 1
const ENC_BYTES = 32
const INFO = new TextEncoder().encode('smtorp vault v1 arrival')

const suite = new CipherSuite({ kem: new DhkemX25519HkdfSha256(), kdf: new HkdfSha256(), aead: new Aes256Gcm() })

export interface ArrivalKeyPair {
  publicKey: Buffer
  privateKey: Buffer
}

/** The envelope of a message that arrived while locked; sealed together with its bytes. */
export interface ArrivalEnvelope {
  folder: string
  from: string
  to: string[]
  messageId?: string
  flags: string[]
  receivedAt: number
}

export async function newArrivalKeyPair (): Promise<ArrivalKeyPair> {
  const pair = await suite.kem.generateKeyPair()
  return {
    publicKey: Buffer.from(await suite.kem.serializePublicKey(pair.publicKey)),
    privateKey: Buffer.from(await suite.kem.serializePrivateKey(pair.privateKey))
  }
}

/** The public half of an X25519 private key (RFC 7748), through node:crypto's PKCS #8 import. */
export function arrivalPublicKeyOf (privateKey: Buffer): Buffer {
  // RFC 8410 section 7: PrivateKeyInfo for id-X25519 (1.3.101.110) around the 32-byte key.
  const der = Buffer.concat([Buffer.from('302e020100300506032b656e04220420', 'hex'), privateKey])
  const jwk = createPublicKey(createPrivateKey({ key: der, format: 'der', type: 'pkcs8' })).export({ format: 'jwk' })
  return Buffer.from(jwk.x!, 'base64url')
}

/**
 * version (1) | enc (32) | HPKE ciphertext of: envelope length (u32 BE) | envelope JSON | message.
 * The object id is the associated data, so a sealed arrival cannot be moved to another object.
 */
export async function sealArrival (publicKey: Buffer, objectId: Buffer, envelope: ArrivalEnvelope, raw: Uint8Array): Promise<Buffer> {
  const head = Buffer.from(JSON.stringify(envelope), 'utf8')
  const length = Buffer.alloc(4)
  length.writeUInt32BE(head.length)
  const sender = await suite.createSenderContext({ recipientPublicKey: await suite.kem.deserializePublicKey(toArrayBuffer(publicKey)), info: INFO })
  // The single-shot suite.seal/open pair of @hpke/core 1.9 fails to round-trip here; the
  // context API (the same HPKE operations, RFC 9180 section 6.1) works.
  const ciphertext = await sender.seal(toArrayBuffer(Buffer.concat([length, head, raw])), toArrayBuffer(objectId))
  return Buffer.concat([Buffer.of(ARRIVAL_VERSION), Buffer.from(sender.enc), Buffer.from(ciphertext)])
}

export async function openArrival (privateKey: Buffer, objectId: Buffer, sealed: Buffer): Promise<{ envelope: ArrivalEnvelope, raw: Buffer }> {
  if (sealed.length < 1 + ENC_BYTES + 16 || sealed[0] !== ARRIVAL_VERSION) throw new TamperError('Not a sealed arrival of a known version.')
  let plain: Buffer
  try {
    const recipient = await suite.createRecipientContext({
      recipientKey: await suite.kem.deserializePrivateKey(toArrayBuffer(privateKey)),
      enc: toArrayBuffer(sealed.subarray(1, 1 + ENC_BYTES)),
      info: INFO
    })
    plain = Buffer.from(await recipient.open(toArrayBuffer(sealed.subarray(1 + ENC_BYTES)), toArrayBuffer(objectId)))
  } catch {
    throw new TamperError('The sealed arrival does not open: it was changed, moved, or sealed to another key.')
  }
  const headLength = plain.length >= 4 ? plain.readUInt32BE(0) : Infinity
  if (4 + headLength > plain.length) throw new TamperError('The sealed arrival has a malformed envelope.')
  let envelope: ArrivalEnvelope
  try {
    envelope = JSON.parse(plain.subarray(4, 4 + headLength).toString('utf8')) as ArrivalEnvelope
  } catch {
    throw new TamperError('The sealed arrival\'s envelope is not JSON.')
  }
  // Authenticated, so written by someone holding the public key; still checked before it
  // becomes a metadata record.
  const strings = (v: unknown): boolean => Array.isArray(v) && v.every(x => typeof x === 'string')
  if (typeof envelope !== 'object' || envelope === null || typeof envelope.folder !== 'string' || typeof envelope.from !== 'string' ||
      !strings(envelope.to) || !strings(envelope.flags) || typeof envelope.receivedAt !== 'number' ||
      (envelope.messageId !== undefined && typeof envelope.messageId !== 'string')) {
    throw new TamperError('The sealed arrival\'s envelope lacks required fields.')
  }
  return { envelope, raw: plain.subarray(4 + headLength) }
}

function toArrayBuffer (bytes: Uint8Array): ArrayBuffer {
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer
}
