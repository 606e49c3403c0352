// RFC 4648 section 6 base32, lowercase, without padding (as onion addresses use it).
const ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567'

export function base32Encode (bytes: Uint8Array): string {
  return encodeFiveBits(bytes, ALPHABET)
}

/**
 * Bytes as 5-bit groups, most significant bit first, each written as a character of
 * `alphabet` (32 characters), the last group padded with zero bits, no "=" padding: RFC 4648
 * base32 with its alphabet, and z-base-32 (RFC 6189 5.1.6) with its own.
 */
export function encodeFiveBits (bytes: Uint8Array, alphabet: string): string {
  let out = ''
  let buffer = 0
  let bits = 0
  for (const byte of bytes) {
    buffer = (buffer << 8) | byte
    bits += 8
    while (bits >= 5) {
      out += alphabet[(buffer >>> (bits - 5)) & 31]
      bits -= 5
    }
    buffer &= (1 << bits) - 1
  }
  if (bits > 0) out += alphabet[(buffer << (5 - bits)) & 31]
  return out
}

export function base32Decode (text: string): Buffer {
  const out: number[] = []
  let buffer = 0
  let bits = 0
  for (const char of text.toLowerCase()) {
    const value = ALPHABET.indexOf(char)
    if (value < 0) throw new Error(`not a base32 character: ${JSON.stringify(char)}`)
    buffer = (buffer << 5) | value
    bits += 5
    if (bits >= 8) {
      out.push((buffer >>> (bits - 8)) & 255)
      bits -= 8
    }
    buffer &= (1 << bits) - 1
  }
  return Buffer.from(out)
}
