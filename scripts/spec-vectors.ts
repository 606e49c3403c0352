// Prints the SMTorP test vectors of spec/smtorp.md ("Test vectors"), computed by the code in
// protocol/. Paste the output into the spec's ```vectors block; test/spec-vectors.test.ts
// fails when the spec and the code disagree.
//
//   tsx scripts/spec-vectors.ts
import { pathToFileURL } from 'node:url'
import { expandedSecretKey, onionKeyFromSeed, signWithOnionKey } from '../protocol/onion.ts'
import { onionAuthResponse, onionAuthSignedBytes } from '../protocol/smtorp-auth.ts'

/** `count` bytes counting up from `first` (0x00..0x1f and so on): easy to type into another implementation. */
export function countingBytes (first: number, count: number): Buffer {
  return Buffer.from(Array.from({ length: count }, (_, i) => (first + i) & 0xff))
}

export const VECTOR_KEYS = {
  // RFC 8032 7.1 TEST 1: the seed's public key and signatures are published there.
  'key rfc8032-test1': Buffer.from('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60', 'hex'),
  'key client': countingBytes(0x00, 32),
  'key server': countingBytes(0x20, 32)
} as const

export const VECTOR_CHALLENGE = countingBytes(0x40, 32)

/** The vectors as the spec shows them: "[section]" lines, then "name: value" lines. */
export function specVectors (): string {
  const out: string[] = []
  for (const [section, seed] of Object.entries(VECTOR_KEYS)) {
    const key = onionKeyFromSeed(seed)
    const expanded = expandedSecretKey(seed)
    out.push(
      `[${section}]`,
      `seed: ${seed.toString('hex')}`,
      `public-key: ${key.publicKey.toString('hex')}`,
      `onion: ${key.address}.onion`,
      `expanded-secret-key: ${expanded.toString('hex')}`,
      `add-onion-key: ED25519-V3:${expanded.toString('base64')}`,
      ''
    )
  }
  const client = onionKeyFromSeed(VECTOR_KEYS['key client'])
  const server = onionKeyFromSeed(VECTOR_KEYS['key server'])
  const signed = onionAuthSignedBytes(server.address, client.address, VECTOR_CHALLENGE)
  const response = onionAuthResponse(client, server.address, VECTOR_CHALLENGE.toString('base64'))
  out.push(
    '[auth client-to-server]',
    `server-onion: ${server.address}`,
    `client-onion: ${client.address}`,
    `challenge: ${VECTOR_CHALLENGE.toString('hex')}`,
    `challenge-base64: ${VECTOR_CHALLENGE.toString('base64')}`,
    `signed-bytes: ${signed.toString('hex')}`,
    `signature: ${signWithOnionKey(client.seed, signed).toString('hex')}`,
    `response-base64: ${response}`
  )
  return out.join('\n')
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.stdout.write(`${specVectors()}\n`)
}
