// spec/recovery.md section 14 (part 2), read from the spec: the kit key, the verification code,
// the custodian's proof; and the kit and the release open only with what they were sealed to.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes, hkdfSync } from 'node:crypto'
import { readSpecVectors } from './harness/spec-vectors.ts'
import { openKit, sealKit, KitError } from '../node/recovery/kit.ts'
import { newRequestKeyPair, openRelease, releaseCode, sealRelease, ReleaseError } from '../node/recovery/release.ts'
import { proofOf } from '../node/recovery/custody.ts'
import { parseShare } from '../protocol/recovery-share.ts'

const vectors = readSpecVectors(new URL('../spec/recovery.md', import.meta.url), 'recovery-custody-vectors')

describe('spec/recovery.md part 2 test vectors', () => {
  it('the kit key is HKDF-SHA256(master key, set id, "smtorp recovery kit v1"), and the kit opens only under it', () => {
    const master = vectors.bytes('kit', 'master-key')
    const setId = vectors.bytes('kit', 'set-id')
    const key = Buffer.from(hkdfSync('sha256', master, setId, 'smtorp recovery kit v1', 32))
    assert.equal(key.toString('hex'), vectors.get('kit', 'kit-key'))
    const kit = { format: 1, onionSeed: randomBytes(32).toString('base64'), vaultId: randomBytes(16).toString('base64'), friends: [] }
    const sealed = sealKit(master, setId, kit)
    assert.deepEqual(openKit(master, setId, sealed), kit)
    assert.throws(() => openKit(randomBytes(32), setId, sealed), KitError)
    assert.throws(() => openKit(master, randomBytes(16), sealed), KitError)
    const flipped = Buffer.from(sealed)
    flipped[flipped.length - 20]! ^= 1
    assert.throws(() => openKit(master, setId, flipped), KitError)
  })

  it('the verification code', () => {
    assert.equal(releaseCode(vectors.bytes('code', 'public-key')), vectors.get('code', 'code'))
  })

  it('the custodian\'s proof is SHA-256(nonce | share record)', () => {
    const share = parseShare(vectors.get('proof', 'share'))
    assert.equal(proofOf(vectors.bytes('proof', 'nonce'), share).toString('hex'), vectors.get('proof', 'proof'))
  })

  it('a release opens only with the request\'s key and id', async () => {
    const pair = await newRequestKeyPair()
    const other = await newRequestKeyPair()
    const released = { share: vectors.get('proof', 'share'), kit: 'a2l0' }
    const sealed = await sealRelease(pair.publicKey, 'request-1', released)
    assert.deepEqual(await openRelease(pair.privateKey, 'request-1', sealed), released)
    await assert.rejects(openRelease(other.privateKey, 'request-1', sealed), ReleaseError)
    await assert.rejects(openRelease(pair.privateKey, 'request-2', sealed), ReleaseError)
    await assert.rejects(openRelease(pair.privateKey, 'request-1', sealed.subarray(0, 40)), ReleaseError)
  })
})
