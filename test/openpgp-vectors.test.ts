// The test vectors of spec/openpgp.md against the code: the keys read back to their stated
// fingerprints, the Autocrypt header parses to alice's key, and each message reads as the spec
// says (signature, signer, protected Subject, route), so the spec cannot drift from the code.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import * as openpgp from 'openpgp'
import { readSpecVectors } from './harness/spec-vectors.ts'
import { fingerprintOf, publicKeyFromBytes } from '../node/openpgp/keys.ts'
import { readIncoming } from '../node/openpgp/incoming.ts'
import { parseAutocryptHeader } from '../protocol/autocrypt.ts'
import { fieldValue, pgpMimeKind, splitEntity } from '../protocol/pgp-mime.ts'
import { headerValue } from '../protocol/message.ts'

const vectors = readSpecVectors(new URL('../spec/openpgp.md', import.meta.url))
const secretKey = async (name: string): Promise<openpgp.PrivateKey> =>
  await openpgp.readPrivateKey({ binaryKey: Buffer.from(vectors.get(`key ${name}`, 'secret-key-base64'), 'base64') })

describe('spec/openpgp.md test vectors', () => {
  it('the keys are v4 ed25519 + legacy curve25519 with the stated fingerprints and addresses', async () => {
    const alice = await secretKey('alice')
    assert.equal(fingerprintOf(alice), vectors.get('key alice', 'fingerprint'))
    assert.equal(alice.keyPacket.version, 4)
    assert.equal(alice.getAlgorithmInfo().algorithm, 'eddsaLegacy')
    assert.equal((await alice.getEncryptionKey()).getAlgorithmInfo().curve, 'curve25519Legacy')
    assert.deepEqual(alice.users.map(u => u.userID?.email), vectors.get('key alice', 'addresses').split(' '))
    assert.equal(fingerprintOf(await secretKey('bob')), vectors.get('key bob', 'fingerprint'))
  })

  it('the Autocrypt header carries alice\'s key alone', async () => {
    const header = parseAutocryptHeader(vectors.get('autocrypt alice', 'header'))
    assert.equal(header.addr, 'alice@example.org')
    assert.equal(header.preferEncrypt, 'mutual')
    const key = await publicKeyFromBytes(header.keydata)
    assert.equal(key && fingerprintOf(key), vectors.get('key alice', 'fingerprint'))
    assert.equal(key?.users.length, 1)
  })

  it('the signed message verifies with alice\'s key and carries the route inside the signed part', async () => {
    const raw = Buffer.from(vectors.get('message signed', 'raw-base64'), 'base64')
    assert.equal(pgpMimeKind(splitEntity(raw)), 'signed')
    const alice = (await secretKey('alice')).toPublic()
    const read = await readIncoming(raw, { decryptionKeys: [], verificationKeys: [alice] })
    assert.equal(read.security.signature, 'good')
    assert.equal(read.security.signer, vectors.get('key alice', 'fingerprint'))
    const field = (name: string): string | undefined => { const f = read.protectedFields?.find(x => x.key === name); return f && fieldValue(f) }
    assert.equal(field('smtorp-route'), vectors.get('message signed', 'route'))
    assert.equal(field('subject'), vectors.get('message signed', 'subject'))
    assert.equal(headerValue(raw, 'SMTorP-Route'), undefined, 'the route is not in the outer header')
  })

  it('the encrypted message opens with bob\'s key, is signed by alice, and hides its subject', async () => {
    const raw = Buffer.from(vectors.get('message encrypted', 'raw-base64'), 'base64')
    assert.equal(headerValue(raw, 'Subject'), vectors.get('message encrypted', 'outer-subject'))
    const bob = await secretKey('bob')
    const read = await readIncoming(raw, { decryptionKeys: [bob], verificationKeys: [(await secretKey('alice')).toPublic()] })
    assert.equal(read.security.decrypted, true)
    assert.equal(read.security.signature, 'good')
    const subject = read.protectedFields?.find(f => f.key === 'subject')
    assert.equal(subject && fieldValue(subject), vectors.get('message encrypted', 'subject'))
    assert.equal(fieldValue(read.protectedFields!.find(f => f.key === 'smtorp-route')!), vectors.get('message encrypted', 'route'))
  })
})
