// spec/friends.md section 7, read from the spec itself: the onion key as libp2p identity, the
// invite and the frame; and what a reader must refuse (sections 3 and 4).
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readSpecVectors } from './harness/spec-vectors.ts'
import { onionKeyFromSeed } from '../protocol/onion.ts'
import { formatInvite, parseInvite, InviteError } from '../protocol/friend-invite.ts'
import { decodeFrame, encodeFrame, FrameError, MAX_HEADER_BYTES } from '../protocol/friends-wire.ts'
import { onionOfPeerId, onionOfSeed, peerIdOfOnion } from '../node/friends/p2p.ts'

const vectors = readSpecVectors(new URL('../spec/friends.md', import.meta.url))

describe('spec/friends.md test vectors', () => {
  it('the onion key is the libp2p identity: onion address and peer id name one key', async () => {
    const seed = vectors.bytes('identity', 'seed')
    const key = onionKeyFromSeed(seed)
    assert.equal(key.publicKey.toString('hex'), vectors.get('identity', 'public-key'))
    assert.equal(key.address, vectors.get('identity', 'onion'))
    assert.equal(await onionOfSeed(seed), key.address)
    assert.equal(peerIdOfOnion(key.address).toString(), vectors.get('identity', 'peer-id'))
    assert.equal(onionOfPeerId(vectors.get('identity', 'peer-id')), key.address)
  })

  it('the invite', () => {
    const text = vectors.get('invite', 'text')
    const onion = vectors.get('identity', 'onion')
    assert.equal(formatInvite({ onion, secret: vectors.bytes('invite', 'secret') }), text)
    assert.equal(text.length, 'smtorp-invite-1:'.length + 82)
    const parsed = parseInvite(`  ${text.toUpperCase().replace('SMTORP-INVITE-1:', 'smtorp-invite-1:')}\n`)
    assert.equal(parsed.onion, onion)
    assert.deepEqual(parsed.secret, vectors.bytes('invite', 'secret'))
    assert.equal(parsed.dial, undefined)
    assert.equal(parseInvite(`${text}@/ip4/127.0.0.1/tcp/4001`).dial, '/ip4/127.0.0.1/tcp/4001')
  })

  it('refuses a mistyped, cut, foreign or future invite, saying why', () => {
    const text = vectors.get('invite', 'text')
    const last = text.at(-1) === 'a' ? 'b' : 'a'
    assert.throws(() => parseInvite(text.slice(0, -1) + last), (err: Error) => err instanceof InviteError && /mistyped/.test(err.message))
    assert.throws(() => parseInvite(text.slice(0, -4)), (err: Error) => err instanceof InviteError && /copied whole/.test(err.message))
    assert.throws(() => parseInvite(text.replace('invite-1', 'invite-2')), /starts with/)
    assert.throws(() => parseInvite('smtorp-invite-1:abc1!'), /alphabet/)
    assert.throws(() => parseInvite(`${text}@not a multiaddr`), /multiaddr/)
  })

  it('the frame', () => {
    const header = JSON.parse(vectors.get('frame', 'header')) as Record<string, unknown>
    const frame = encodeFrame(header, vectors.bytes('frame', 'body'))
    assert.equal(frame.toString('hex'), vectors.get('frame', 'frame'))
    const back = decodeFrame(vectors.bytes('frame', 'frame'))
    assert.deepEqual(back.header, header)
    assert.deepEqual(back.body, vectors.bytes('frame', 'body'))
  })

  it('refuses malformed frames with a FrameError, never anything else', () => {
    const good = vectors.bytes('frame', 'frame')
    const bad: Buffer[] = [
      Buffer.alloc(0), good.subarray(0, 4), Buffer.concat([Buffer.from([2]), good.subarray(1)]),
      Buffer.from('01ffffffff7b7d', 'hex'), Buffer.from('01000000027b', 'hex'),
      Buffer.concat([Buffer.from('0100000005', 'hex'), Buffer.from('[1,2]')]),
      Buffer.concat([Buffer.from('0100000004', 'hex'), Buffer.from('null')]),
      Buffer.concat([Buffer.from('0100000003', 'hex'), Buffer.from('{"a')])
    ]
    for (const bytes of bad) assert.throws(() => decodeFrame(bytes), FrameError, bytes.toString('hex'))
    for (let i = 0; i < 2000; i++) {
      const mutated = Buffer.from(good)
      mutated[i % mutated.length] = (mutated[i % mutated.length]! + 1 + (i >> 5)) & 0xff
      try { decodeFrame(mutated) } catch (err) { assert.ok(err instanceof FrameError) }
    }
    assert.throws(() => encodeFrame({ pad: 'x'.repeat(MAX_HEADER_BYTES) }), FrameError)
  })
})
