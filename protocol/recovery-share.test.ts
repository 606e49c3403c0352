// The recovery share record and its text form (spec/recovery.md, section 3), from the spec's
// own test vectors and from hostile input.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { checkValue, decodeShare, encodeShare, formatShare, parseShare, ShareFormatError, type RecoveryShare } from './recovery-share.ts'
import { readSpecVectors } from '../test/harness/spec-vectors.ts'

const vectors = readSpecVectors(new URL('../spec/recovery.md', import.meta.url))
const secret = vectors.bytes('check', 'secret')
const setId = vectors.bytes('check', 'set-id')

/** A record body (everything before the digest) with its right digest, so field checks are what fails. */
function withDigest (body: Buffer): Buffer {
  return Buffer.concat([body, createHash('sha256').update(body).digest().subarray(0, 4)])
}
const record1 = vectors.bytes('shares 3-of-5', 'record-1')
const body1 = (): Buffer => Buffer.from(record1.subarray(0, record1.length - 4))
const changed = (offset: number, value: number): Buffer => { const b = body1(); b[offset] = value; return withDigest(b) }

describe('recovery share: spec vectors', () => {
  it('the check value of the secret is the spec\'s', () => {
    assert.equal(checkValue(secret, setId).toString('hex'), vectors.get('check', 'check'))
    assert.equal(checkValue(vectors.bytes('forged', 'other-secret'), setId).toString('hex'), vectors.get('forged', 'other-check'))
  })
  for (let i = 1; i <= 5; i++) {
    it(`share ${i}: text and record parse to the same fields and encode back byte for byte`, () => {
      const text = vectors.get('shares 3-of-5', `share-${i}`)
      const record = vectors.bytes('shares 3-of-5', `record-${i}`)
      const s = parseShare(text)
      assert.deepEqual(s, decodeShare(record))
      assert.deepEqual(s.setId, setId)
      assert.equal(s.threshold, 3)
      assert.equal(s.count, 5)
      assert.equal(s.index, i)
      assert.equal(s.check.toString('hex'), vectors.get('check', 'check'))
      assert.equal(s.share.length, 33)
      assert.equal(record.length, 74)
      assert.deepEqual(encodeShare(s), record)
      assert.equal(formatShare(s), text)
      assert.equal(text.length, 114)
    })
  }
})

describe('recovery share: text form', () => {
  const text = vectors.get('shares 3-of-5', 'share-1')
  it('ignores white space anywhere (a wrapped or indented line)', () => {
    const wrapped = `  ${text.slice(0, 40)}\n  ${text.slice(40, 80)}\r\n${text.slice(80)}\n`
    assert.deepEqual(parseShare(wrapped), parseShare(text))
  })
  const bad: Array<[string, string, RegExp]> = [
    ['empty', '', /not a recovery share/],
    ['no prefix', text.slice('smtorp-share-1:'.length), /not a recovery share/],
    ['another prefix', text.replace('smtorp-share-1:', 'smtorp-shard-1:'), /not a recovery share/],
    ['prefix in capitals', text.replace('smtorp-share-1:', 'SMTORP-SHARE-1:'), /not a recovery share/],
    ['text version 2', text.replace('smtorp-share-1:', 'smtorp-share-2:'), /text version 2/],
    ['a standard base64 character', `smtorp-share-1:+${text.slice(16)}`, /outside base64url/],
    ['a non-ASCII character', `${text.slice(0, 50)}é${text.slice(51)}`, /outside base64url/],
    ['padding', `${text}=`, /outside base64url/],
    ['a character missing', text.slice(0, -1), /digest does not match|is \d+ bytes|impossible length|not canonical/],
    ['a character too many', `${text}A`, /impossible length|is \d+ bytes/],
    ['a typo', text.slice(0, 60) + (text[60] === 'A' ? 'B' : 'A') + text.slice(61), /damaged: its digest does not match/],
    ['non-canonical last character (a stray bit past the data)', text.slice(0, -1) + String.fromCharCode(text.charCodeAt(text.length - 1) + 1), /not canonical/],
    ['prefix only', 'smtorp-share-1:', /outside base64url/]
  ]
  for (const [name, input, error] of bad) {
    it(`refuses ${name}`, () => {
      assert.throws(() => parseShare(input), (err: unknown) => err instanceof ShareFormatError && err.name === 'ShareFormatError' && error.test(err.message))
    })
  }
})

describe('recovery share: record', () => {
  const bad: Array<[string, Buffer, RegExp]> = [
    ['an empty record', Buffer.alloc(0), /empty/],
    ['format version 0', changed(0, 0), /format version 0/],
    ['format version 2', changed(0, 2), /format version 2/],
    ['a record cut in the header', record1.subarray(0, 30), /too short/],
    ['a record cut in the share', record1.subarray(0, 60), /is 60 bytes; a share of a 32-byte secret has 74/],
    ['a byte too many', Buffer.concat([record1, Buffer.of(0)]), /is 75 bytes/],
    ['a flipped bit in the share', (() => { const b = Buffer.from(record1); b[40]! ^= 1; return b })(), /damaged: its digest/],
    ['a flipped bit in the digest', (() => { const b = Buffer.from(record1); b[73]! ^= 0x80; return b })(), /damaged: its digest/],
    ['threshold 1', changed(17, 1), /threshold 1 is not between 2 and 16/],
    ['threshold 17', (() => { const b = body1(); b[17] = 17; b[18] = 17; return withDigest(b) })(), /threshold 17/],
    ['count below the threshold', changed(18, 2), /count 2 is not between the threshold 3 and 16/],
    ['count 17', changed(18, 17), /count 17/],
    ['index 0', changed(19, 0), /index 0 is not between 1 and the count 5/],
    ['index past the count', changed(19, 6), /index 6/],
    ['x coordinate 0', changed(37 + 32, 0), /x coordinate is 0/],
    ['a secret length that disagrees with the record', changed(20, 31), /is 74 bytes; a share of a 31-byte secret has 73/]
  ]
  for (const [name, input, error] of bad) {
    it(`refuses ${name}`, () => {
      assert.throws(() => decodeShare(input), (err: unknown) => err instanceof ShareFormatError && error.test(err.message))
    })
  }

  it('a share whose bytes were changed and whose digest was recomputed parses: the digest is no MAC', () => {
    // The digest is recomputed by anyone: a forged share passes it, and is caught when combining.
    const forged = withDigest(body1().fill(0xff, 37, 37 + 32))
    assert.equal(decodeShare(forged).share.subarray(0, 32).toString('hex'), 'ff'.repeat(32))
  })

  const good: RecoveryShare = { setId, threshold: 2, count: 16, index: 16, check: checkValue(secret, setId), share: Buffer.concat([Buffer.alloc(1, 7), Buffer.of(255)]) }
  it('the smallest secret (1 byte) and the largest n round-trip', () => {
    assert.deepEqual(decodeShare(encodeShare(good)), good)
    assert.deepEqual(parseShare(formatShare(good)), good)
  })
  it('the largest secret (255 bytes) round-trips', () => {
    const s = { ...good, share: Buffer.concat([Buffer.alloc(255, 9), Buffer.of(1)]) }
    assert.equal(encodeShare(s).length, 42 + 255)
    assert.deepEqual(decodeShare(encodeShare(s)), s)
  })
  const unencodable: Array<[string, Partial<RecoveryShare>, RegExp]> = [
    ['a short set id', { setId: Buffer.alloc(15) }, /share-set id has 15 bytes/],
    ['threshold above count', { threshold: 3, count: 2, index: 1 }, /count 2/],
    ['a fractional index', { index: 1.5 }, /index 1.5/],
    ['a short check value', { check: Buffer.alloc(8) }, /check value has 8 bytes/],
    ['a 256-byte secret', { share: Buffer.concat([Buffer.alloc(256), Buffer.of(1)]) }, /share has 257 bytes/],
    ['a share without its secret', { share: Buffer.of(1) }, /share has 1 bytes/]
  ]
  for (const [name, fields, error] of unencodable) {
    it(`does not encode ${name}`, () => {
      assert.throws(() => encodeShare({ ...good, ...fields }), (err: unknown) => err instanceof ShareFormatError && error.test(err.message))
    })
  }
  it('the check value depends on the set id and on every byte of the secret', () => {
    const base = checkValue(secret, setId)
    const otherSet = Buffer.from(setId); otherSet[15]! ^= 1
    const otherSecret = Buffer.from(secret); otherSecret[31]! ^= 1
    assert.notDeepEqual(checkValue(secret, otherSet), base)
    assert.notDeepEqual(checkValue(otherSecret, setId), base)
    assert.throws(() => checkValue(secret, Buffer.alloc(8)), RangeError)
  })
})
