// SMTorP sender-node authentication: the SASL mechanism X-SMTORP-ONION (spec/smtorp.md).
//
// A peer that says MAIL FROM:<someone@X.onion> must first prove it holds the Ed25519 key
// of X. Over RFC 4954 AUTH the server sends a fresh 32-byte random challenge; the client
// answers with its public key and an Ed25519 signature over
//
//   "SMTORP-ONION-AUTH-1" 0x00 | server onion (56 ASCII) | 0x00 | client onion (56 ASCII) | 0x00 | challenge (32)
//
// The server derives the client's onion address from the public key. Naming the server's
// onion inside the signed bytes stops a malicious server from relaying a challenge it got
// from another node to a client and replaying the answer there.
import { onionAddressFromPublicKey, signWithOnionKey, verifyOnionSignature, type OnionKey } from './onion.ts'

export const ONION_AUTH_MECHANISM = 'X-SMTORP-ONION'
export const ONION_AUTH_CONTEXT = 'SMTORP-ONION-AUTH-1'
export const ONION_AUTH_VERSION = 1
export const CHALLENGE_BYTES = 32
const RESPONSE_BYTES = 1 + 32 + 64

export class OnionAuthError extends Error {
  override name = 'OnionAuthError'
}

/** The exact bytes the client signs. Onion addresses are the 56-char labels, lowercase. */
export function onionAuthSignedBytes (serverOnion: string, clientOnion: string, challenge: Buffer): Buffer {
  if (challenge.length !== CHALLENGE_BYTES) throw new OnionAuthError(`the challenge has ${CHALLENGE_BYTES} bytes`)
  const zero = Buffer.from([0])
  return Buffer.concat([
    Buffer.from(ONION_AUTH_CONTEXT, 'ascii'), zero,
    Buffer.from(stripOnion(serverOnion), 'ascii'), zero,
    Buffer.from(stripOnion(clientOnion), 'ascii'), zero,
    challenge
  ])
}

function stripOnion (address: string): string {
  const label = address.toLowerCase().replace(/\.onion$/, '')
  if (!/^[a-z2-7]{56}$/.test(label)) throw new OnionAuthError('not a v3 onion address')
  return label
}

/** Client side: the base64 text to send in answer to the server's 334 challenge. */
export function onionAuthResponse (key: OnionKey, serverOnion: string, challengeBase64: string): string {
  const challenge = decodeBase64Strict(challengeBase64)
  const signature = signWithOnionKey(key.seed, onionAuthSignedBytes(serverOnion, key.address, challenge))
  return Buffer.concat([Buffer.from([ONION_AUTH_VERSION]), key.publicKey, signature]).toString('base64')
}

/**
 * Server side: check a client's answer. Returns the client's proven onion address (56 chars),
 * or throws OnionAuthError saying what was wrong.
 */
export function verifyOnionAuthResponse (serverOnion: string, challenge: Buffer, responseBase64: string): string {
  const response = decodeBase64Strict(responseBase64)
  if (response.length !== RESPONSE_BYTES) throw new OnionAuthError('the answer has the wrong length')
  if (response[0] !== ONION_AUTH_VERSION) throw new OnionAuthError('unsupported X-SMTORP-ONION version')
  const publicKey = response.subarray(1, 33)
  const signature = response.subarray(33)
  const clientOnion = onionAddressFromPublicKey(publicKey)
  if (!verifyOnionSignature(publicKey, onionAuthSignedBytes(serverOnion, clientOnion, challenge), signature)) {
    throw new OnionAuthError('the signature does not verify')
  }
  return clientOnion
}

function decodeBase64Strict (text: string): Buffer {
  const trimmed = text.trim()
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(trimmed) || trimmed.length % 4 !== 0) throw new OnionAuthError('not base64')
  return Buffer.from(trimmed, 'base64')
}
