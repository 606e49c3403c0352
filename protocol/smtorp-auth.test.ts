// X-SMTORP-ONION: the round trip, every way an answer can be wrong, and a fixed vector
// (Ed25519 is deterministic, so fixed seeds and a fixed challenge give fixed bytes).
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { onionKeyFromSeed, signWithOnionKey } from './onion.ts'
import {
  CHALLENGE_BYTES, ONION_AUTH_CONTEXT, ONION_AUTH_MECHANISM, ONION_AUTH_VERSION, OnionAuthError,
  onionAuthResponse, onionAuthSignedBytes, verifyOnionAuthResponse
} from './smtorp-auth.ts'

const counting = (first: number, count = 32): Buffer => Buffer.from(Array.from({ length: count }, (_, i) => (first + i) & 0xff))
const client = onionKeyFromSeed(counting(0x00))
const server = onionKeyFromSeed(counting(0x20))
const other = onionKeyFromSeed(counting(0x60))
const challenge = counting(0x40)

// The same vector as spec/smtorp.md, "Test vectors", section [auth client-to-server].
const VECTOR = {
  serverOnion: 'fgwlvykbxtfpbmrodkkngtily43b4utnbp7bfsexss6jgiuwnxluewad',
  clientOnion: 'aoqqpp7tzyil4hlq3umoos6atft6jvrqtosq2xy53sdgiesvgg4bqead',
  challengeBase64: 'QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8=',
  signedBytes: '534d544f52502d4f4e494f4e2d415554482d31006667776c76796b6278746670626d726f646b6b6e6774696c793433623475746e62703762667365787373366a676975776e786c756577616400616f7171707037747a79696c34686c7133756d6f6f733661746674366a767271746f7371327879353373646769657376676734627165616400404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f',
  signature: 'e5978c63a28c34485b793ce43b49e2526c4ddfa06663c31636525078ba5490f73c22b7293015444eab33d2565104cab158039e14df49d5a6ccd84bbc76dd5f02',
  response: 'AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG45ZeMY6KMNEhbeTzkO0niUmxN36BmY8MWNlJQeLpUkPc8IrcpMBVETqsz0lZRBMqxWAOeFN9J1abM2Eu8dt1fAg=='
}

function answer (version: number, publicKey: Buffer, signature: Buffer): string {
  return Buffer.concat([Buffer.from([version]), publicKey, signature]).toString('base64')
}

describe('X-SMTORP-ONION fixed vector', () => {
  it('the signed bytes are "SMTORP-ONION-AUTH-1" 0 | server | 0 | client | 0 | challenge', () => {
    assert.equal(ONION_AUTH_MECHANISM, 'X-SMTORP-ONION')
    assert.equal(ONION_AUTH_CONTEXT, 'SMTORP-ONION-AUTH-1')
    assert.equal(ONION_AUTH_VERSION, 1)
    assert.equal(CHALLENGE_BYTES, 32)
    assert.equal(server.address, VECTOR.serverOnion)
    assert.equal(client.address, VECTOR.clientOnion)
    assert.equal(challenge.toString('base64'), VECTOR.challengeBase64)
    const signed = onionAuthSignedBytes(server.address, client.address, challenge)
    assert.equal(signed.toString('hex'), VECTOR.signedBytes)
    assert.equal(signed.length, 19 + 1 + 56 + 1 + 56 + 1 + 32)
    assert.equal(signed.toString('latin1'), `SMTORP-ONION-AUTH-1\0${VECTOR.serverOnion}\0${VECTOR.clientOnion}\0${challenge.toString('latin1')}`)
  })

  it('the signature and the response are fixed', () => {
    const signed = Buffer.from(VECTOR.signedBytes, 'hex')
    assert.equal(signWithOnionKey(client.seed, signed).toString('hex'), VECTOR.signature)
    assert.equal(onionAuthResponse(client, server.address, VECTOR.challengeBase64), VECTOR.response)
    assert.equal(VECTOR.response, answer(1, client.publicKey, Buffer.from(VECTOR.signature, 'hex')))
    assert.equal(verifyOnionAuthResponse(VECTOR.serverOnion, challenge, VECTOR.response), VECTOR.clientOnion)
  })

  it('onion names are taken with or without ".onion", in any case, and signed as 56 lowercase characters', () => {
    for (const [s, c] of [[`${server.address}.onion`, client.address], [server.address.toUpperCase(), `${client.address.toUpperCase()}.ONION`]] as const) {
      assert.equal(onionAuthSignedBytes(s, c, challenge).toString('hex'), VECTOR.signedBytes)
    }
    assert.equal(onionAuthResponse(client, `${server.address}.onion`, VECTOR.challengeBase64), VECTOR.response)
    assert.equal(verifyOnionAuthResponse(`${server.address}.onion`, challenge, VECTOR.response), client.address)
  })

  it('the signed bytes refuse a challenge of another size and names that are not onion labels', () => {
    assert.throws(() => onionAuthSignedBytes(server.address, client.address, counting(0, 31)), OnionAuthError)
    assert.throws(() => onionAuthSignedBytes(server.address, client.address, counting(0, 33)), OnionAuthError)
    assert.throws(() => onionAuthSignedBytes('example.com', client.address, challenge), OnionAuthError)
    assert.throws(() => onionAuthSignedBytes(server.address, `${client.address}x`, challenge), OnionAuthError)
    assert.throws(() => onionAuthSignedBytes(`${server.address}\0`, client.address, challenge), OnionAuthError)
  })
})

describe('X-SMTORP-ONION round trip', () => {
  it('a fresh random challenge: the server learns the client onion', () => {
    for (let i = 0; i < 5; i++) {
      const fresh = Buffer.from(crypto.getRandomValues(new Uint8Array(32)))
      const response = onionAuthResponse(client, server.address, fresh.toString('base64'))
      assert.equal(verifyOnionAuthResponse(server.address, fresh, response), client.address)
    }
  })

  it('an answer is bound to its challenge: the same answer to another challenge fails (replay)', () => {
    const response = onionAuthResponse(client, server.address, challenge.toString('base64'))
    const next = Buffer.from(challenge)
    next[31]! ^= 1
    assert.throws(() => verifyOnionAuthResponse(server.address, next, response), /signature does not verify/)
  })

  it('an answer is bound to the server onion: a relayed challenge fails at the real server', () => {
    // A malicious "other" node passes the real server's challenge to the client as its own;
    // the client signs for "other", which the real server rejects.
    const relayed = onionAuthResponse(client, other.address, challenge.toString('base64'))
    assert.equal(verifyOnionAuthResponse(other.address, challenge, relayed), client.address)
    assert.throws(() => verifyOnionAuthResponse(server.address, challenge, relayed), /signature does not verify/)
  })

  it('a public key with another key\'s signature fails', () => {
    const signed = onionAuthSignedBytes(server.address, client.address, challenge)
    const forged = answer(1, client.publicKey, signWithOnionKey(other.seed, signed))
    assert.throws(() => verifyOnionAuthResponse(server.address, challenge, forged), /signature does not verify/)
  })

  it('a signature over another client onion does not prove that onion', () => {
    // The client onion in the signed bytes is derived from the key in the answer, not claimed.
    const signed = onionAuthSignedBytes(server.address, other.address, challenge)
    const response = answer(1, client.publicKey, signWithOnionKey(client.seed, signed))
    assert.throws(() => verifyOnionAuthResponse(server.address, challenge, response), /signature does not verify/)
  })

  it('a small-order public key with a forged signature fails (regression)', () => {
    // The identity point: with R = identity and S = 0 plain RFC 8032 verification passes for
    // every message; OpenSSL 3.0 accepted it, so anyone could authenticate as this onion.
    const identity = Buffer.alloc(32)
    identity[0] = 1
    const forged = answer(1, identity, Buffer.concat([identity, Buffer.alloc(32)]))
    assert.throws(() => verifyOnionAuthResponse(server.address, challenge, forged), /signature does not verify/)
  })
})

describe('malformed X-SMTORP-ONION answers', () => {
  const good = Buffer.from(VECTOR.response, 'base64')
  const table: Array<[string, string, RegExp]> = [
    ['empty', '', /wrong length/],
    ['cancel "*"', '*', /not base64/],
    ['truncated by one byte', good.subarray(0, 96).toString('base64'), /wrong length/],
    ['one byte too many', Buffer.concat([good, Buffer.from([0])]).toString('base64'), /wrong length/],
    ['only the public key', good.subarray(0, 33).toString('base64'), /wrong length/],
    ['version 0', Buffer.concat([Buffer.from([0]), good.subarray(1)]).toString('base64'), /version/],
    ['version 2', Buffer.concat([Buffer.from([2]), good.subarray(1)]).toString('base64'), /version/],
    ['hex instead of base64', good.toString('hex'), /wrong length|not base64/],
    ['base64url alphabet', good.toString('base64url'), /not base64/],
    ['one "=" too many', `${VECTOR.response}=`, /not base64/],
    ['four "=" more', `${VECTOR.response}====`, /not base64/],
    ['padding removed', VECTOR.response.replace(/=+$/, ''), /not base64/],
    ['"=" in the middle', `${VECTOR.response.slice(0, 8)}=${VECTOR.response.slice(9)}`, /not base64/],
    ['space inside', `${VECTOR.response.slice(0, 8)} ${VECTOR.response.slice(8)}`, /not base64/],
    ['NUL inside', `${VECTOR.response.slice(0, 8)}\0${VECTOR.response.slice(9)}`, /not base64/],
    ['non-ASCII', `${VECTOR.response.slice(0, 8)}é${VECTOR.response.slice(9)}`, /not base64/],
    ['an SMTP command', 'MAIL FROM:<a@b.onion>', /not base64/],
    ['a flipped signature bit', answer(1, client.publicKey, Buffer.from(VECTOR.signature, 'hex').map((b, i) => i === 63 ? b ^ 0x40 : b) as Buffer), /signature does not verify/]
  ]
  for (const [name, response, error] of table) {
    it(name, () => {
      assert.throws(() => verifyOnionAuthResponse(server.address, challenge, response), (err: Error) => err instanceof OnionAuthError && error.test(err.message))
    })
  }

  it('the answer may carry surrounding white space (the SMTP line\'s)', () => {
    assert.equal(verifyOnionAuthResponse(server.address, challenge, ` ${VECTOR.response}\r\n`), client.address)
  })

  it('the client refuses a challenge that is not 32 bytes of base64', () => {
    for (const bad of ['', '*', 'not base64!', counting(0, 31).toString('base64'), counting(0, 33).toString('base64'), `${VECTOR.challengeBase64}=`]) {
      assert.throws(() => onionAuthResponse(client, server.address, bad), OnionAuthError, JSON.stringify(bad))
    }
  })

  it('the client refuses to sign for a server name that is not an onion', () => {
    assert.throws(() => onionAuthResponse(client, 'mail.example.com', VECTOR.challengeBase64), OnionAuthError)
  })
})
