// RFC 4648 base32 as onion addresses use it: lowercase, no padding.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { base32Decode, base32Encode } from './base32.ts'

describe('base32', () => {
  // RFC 4648 10, lowercased and without "=" padding.
  const table: Array<[string, string]> = [
    ['', ''], ['f', 'my'], ['fo', 'mzxq'], ['foo', 'mzxw6'], ['foob', 'mzxw6yq'], ['fooba', 'mzxw6ytb'], ['foobar', 'mzxw6ytboi']
  ]
  for (const [plain, encoded] of table) {
    it(`${JSON.stringify(plain)} <-> ${JSON.stringify(encoded)}`, () => {
      assert.equal(base32Encode(Buffer.from(plain)), encoded)
      assert.equal(base32Decode(encoded).toString(), plain)
      assert.equal(base32Decode(encoded.toUpperCase()).toString(), plain)
    })
  }
  it('all byte values round-trip', () => {
    const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i))
    assert.deepEqual(base32Decode(base32Encode(bytes)), bytes)
  })
  it('refuses characters outside the alphabet, padding included', () => {
    for (const bad of ['mzxw6=', 'mzx0', 'mzx1', 'mzx8', 'mzx ', 'mzx\0', 'mzxé']) assert.throws(() => base32Decode(bad), /not a base32 character/, JSON.stringify(bad))
  })
})
