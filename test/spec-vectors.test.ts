// The test vectors in spec/smtorp.md ("Test vectors") against the code, read out of the spec
// itself so that the document and the implementation cannot drift apart.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { expandedSecretKey, onionKeyFromSeed, publicKeyFromOnionAddress, signWithOnionKey, verifyOnionSignature } from '../protocol/onion.ts'
import { onionAuthResponse, onionAuthSignedBytes, verifyOnionAuthResponse } from '../protocol/smtorp-auth.ts'
import { specVectors } from '../scripts/spec-vectors.ts'

import { readSpecVectors } from './harness/spec-vectors.ts'

const SPEC = new URL('../spec/smtorp.md', import.meta.url)

const { sections, get } = readSpecVectors(SPEC)

describe('spec/smtorp.md test vectors', () => {
  it('the block is exactly what scripts/spec-vectors.ts prints now', () => {
    const text = readFileSync(SPEC, 'utf8')
    const block = /^```vectors\n([\s\S]*?)\n^```$/m.exec(text)
    assert.equal(block?.[1], specVectors(), 'run `tsx scripts/spec-vectors.ts` and paste its output into the spec')
  })

  const keySections = [...sections.keys()].filter(name => name.startsWith('key '))
  it('has the three keys and the auth vector', () => {
    assert.deepEqual(keySections, ['key rfc8032-test1', 'key client', 'key server'])
    assert.ok(sections.has('auth client-to-server'))
  })

  for (const section of keySections) {
    it(`[${section}]: public key, onion, expanded key and ADD_ONION key from the seed`, () => {
      const seed = Buffer.from(get(section, 'seed'), 'hex')
      assert.equal(seed.length, 32)
      const key = onionKeyFromSeed(seed)
      assert.equal(key.publicKey.toString('hex'), get(section, 'public-key'))
      assert.equal(`${key.address}.onion`, get(section, 'onion'))
      assert.deepEqual(publicKeyFromOnionAddress(get(section, 'onion')), key.publicKey)
      const expanded = expandedSecretKey(seed)
      assert.equal(expanded.toString('hex'), get(section, 'expanded-secret-key'))
      assert.equal(`ED25519-V3:${expanded.toString('base64')}`, get(section, 'add-onion-key'))
    })
  }

  it('[key rfc8032-test1] is the key RFC 8032 7.1 TEST 1 publishes', () => {
    assert.equal(get('key rfc8032-test1', 'public-key'), 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a')
  })

  it('[auth client-to-server]: signed bytes, signature and response', () => {
    const client = onionKeyFromSeed(Buffer.from(get('key client', 'seed'), 'hex'))
    const server = onionKeyFromSeed(Buffer.from(get('key server', 'seed'), 'hex'))
    const s = 'auth client-to-server'
    assert.equal(get(s, 'server-onion'), server.address)
    assert.equal(get(s, 'client-onion'), client.address)
    const challenge = Buffer.from(get(s, 'challenge'), 'hex')
    assert.equal(challenge.toString('base64'), get(s, 'challenge-base64'))
    const signed = onionAuthSignedBytes(get(s, 'server-onion'), get(s, 'client-onion'), challenge)
    assert.equal(signed.toString('hex'), get(s, 'signed-bytes'))
    // The layout the spec's table gives, independently of onionAuthSignedBytes.
    assert.equal(signed.toString('latin1'), `SMTORP-ONION-AUTH-1\0${server.address}\0${client.address}\0${challenge.toString('latin1')}`)
    const signature = Buffer.from(get(s, 'signature'), 'hex')
    assert.deepEqual(signWithOnionKey(client.seed, signed), signature)
    assert.equal(verifyOnionSignature(client.publicKey, signed, signature), true)
    const response = get(s, 'response-base64')
    assert.equal(onionAuthResponse(client, server.address, get(s, 'challenge-base64')), response)
    assert.deepEqual(Buffer.from(response, 'base64'), Buffer.concat([Buffer.from([1]), client.publicKey, signature]))
    assert.equal(verifyOnionAuthResponse(server.address, challenge, response), client.address)
  })
})
