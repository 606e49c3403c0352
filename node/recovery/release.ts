// A custodian's release of its share to a new machine (spec/recovery.md part 2, "Release"):
// the share and the kit, sealed with HPKE (RFC 9180, base mode, DHKEM(X25519, HKDF-SHA256),
// HKDF-SHA256, AES-256-GCM; @hpke/core) to the X25519 key the new machine sent in its request,
// info "smtorp recovery release v1", associated data the request id. Noise already encrypts the
// libp2p stream; this keeps the share sealed end to end whatever carries it.
//
// The verification code both screens show is derived from that public key, so a custodian who
// reads the code to the person (and hears the same code) knows the request came from the
// person's machine, not from someone who only knows the person's onion address.
import { Aes256Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from '@hpke/core'
import { createHash } from 'node:crypto'

const INFO = new TextEncoder().encode('smtorp recovery release v1')
const ENC_BYTES = 32
const suite = new CipherSuite({ kem: new DhkemX25519HkdfSha256(), kdf: new HkdfSha256(), aead: new Aes256Gcm() })

export interface Released {
  /** The share, in its text form. */
  share: string
  /** base64 of the sealed kit */
  kit: string
}

export class ReleaseError extends Error {
  override name = 'ReleaseError'
}

export async function newRequestKeyPair (): Promise<{ publicKey: Buffer, privateKey: Buffer }> {
  const pair = await suite.kem.generateKeyPair()
  return {
    publicKey: Buffer.from(await suite.kem.serializePublicKey(pair.publicKey)),
    privateKey: Buffer.from(await suite.kem.serializePrivateKey(pair.privateKey))
  }
}

/** Eight digits as "1234-5678": the first 4 bytes of SHA-256("smtorp recovery code v1" | public key), mod 10^8. */
export function releaseCode (publicKey: Uint8Array): string {
  const digest = createHash('sha256').update('smtorp recovery code v1').update(publicKey).digest()
  const n = digest.readUInt32BE(0) % 100_000_000
  const digits = n.toString().padStart(8, '0')
  return `${digits.slice(0, 4)}-${digits.slice(4)}`
}

/** enc (32 bytes) | ciphertext of the JSON of `released`. */
export async function sealRelease (publicKey: Uint8Array, requestId: string, released: Released): Promise<Buffer> {
  const sender = await suite.createSenderContext({ recipientPublicKey: await suite.kem.deserializePublicKey(toArrayBuffer(publicKey)), info: INFO })
  const ciphertext = await sender.seal(toArrayBuffer(Buffer.from(JSON.stringify(released), 'utf8')), toArrayBuffer(Buffer.from(requestId, 'utf8')))
  return Buffer.concat([Buffer.from(sender.enc), Buffer.from(ciphertext)])
}

export async function openRelease (privateKey: Uint8Array, requestId: string, sealed: Uint8Array): Promise<Released> {
  let plain: Buffer
  try {
    const recipient = await suite.createRecipientContext({
      recipientKey: await suite.kem.deserializePrivateKey(toArrayBuffer(privateKey)),
      enc: toArrayBuffer(sealed.subarray(0, ENC_BYTES)),
      info: INFO
    })
    plain = Buffer.from(await recipient.open(toArrayBuffer(sealed.subarray(ENC_BYTES)), toArrayBuffer(Buffer.from(requestId, 'utf8'))))
  } catch {
    throw new ReleaseError('The released share does not open: it was changed on the way or sealed to another key.')
  }
  let released: Released
  try {
    released = JSON.parse(plain.toString('utf8')) as Released
  } catch {
    throw new ReleaseError('The released share is not JSON.')
  }
  if (typeof released.share !== 'string' || typeof released.kit !== 'string') throw new ReleaseError('The release lacks the share or the kit.')
  return released
}

function toArrayBuffer (bytes: Uint8Array): ArrayBuffer {
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer
}
