// The test vectors of spec/backup.md section 21 (part 3, friends' nodes), read from the spec:
// the keys, a stored shard with its header and MAC, and an audit challenge with its answer,
// each computed by the code (protocol/friend-shard.ts) and again by node:crypto directly from
// the construction the spec gives, so the spec, the code and the construction agree.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, createHmac, hkdfSync } from 'node:crypto'
import {
  auditAnswer, auditKey, auditNonce, decodeShardHeader, encodeShardHeader, openShard, parseShardMeta, sealShard, shardKey, shardMeta,
  FriendShardError, type ShardHeader
} from '../protocol/friend-shard.ts'
import { friendsBackupKey } from '../node/friends/friends-target.ts'
import { readSpecVectors } from './harness/spec-vectors.ts'

const { sections, get, bytes } = readSpecVectors(new URL('../spec/backup.md', import.meta.url), 'friends-backup-vectors')
const hkdf = (key: Buffer, info: string): Buffer => Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), Buffer.from(info), 32))

describe('spec/backup.md part 3 test vectors', () => {
  it('has the vectors', () => {
    assert.deepEqual([...sections.keys()], ['keys', 'shard', 'audit'])
  })

  it('the friends backup key, shard key and audit key', () => {
    assert.ok(friendsBackupKey(bytes('keys', 'onion-seed')).equals(bytes('keys', 'friends-backup-key')))
    assert.ok(hkdf(bytes('keys', 'onion-seed'), 'smtorp friends backup key v1').equals(bytes('keys', 'friends-backup-key')))
    const key = bytes('keys', 'key')
    assert.ok(shardKey(key).equals(bytes('keys', 'shard-key')))
    assert.ok(auditKey(key).equals(bytes('keys', 'audit-key')))
    assert.ok(hkdf(key, 'smtorp friend shard v1').equals(bytes('keys', 'shard-key')))
    assert.ok(hkdf(key, 'smtorp friend audit v1').equals(bytes('keys', 'audit-key')))
  })

  const header = (): ShardHeader => ({
    codec: 'wasm', k: Number(get('shard', 'k')), m: Number(get('shard', 'm')), index: Number(get('shard', 'index')),
    length: Number(get('shard', 'length')), putId: bytes('shard', 'put-id')
  })

  it('a stored shard: its header, its MAC, and its meta', () => {
    const name = get('shard', 'name')
    const data = bytes('shard', 'data')
    const key = bytes('keys', 'shard-key')
    assert.ok(encodeShardHeader(header()).equals(bytes('shard', 'header')))
    const stored = sealShard(key, header(), name, data)
    assert.ok(stored.equals(bytes('shard', 'stored')))
    assert.equal(shardMeta(header()), get('shard', 'meta'))
    assert.deepEqual(parseShardMeta(get('shard', 'meta')), { k: 2, m: 2, length: 30, putId: bytes('shard', 'put-id') })
    // The same from the construction of section 17 with node:crypto.
    const h = Buffer.concat([Buffer.of(1, 1, 2, 2, 1), Buffer.from('0000001e', 'hex'), bytes('shard', 'put-id')])
    assert.ok(h.equals(bytes('shard', 'header')))
    const mac = createHmac('sha256', key).update(h).update(Buffer.of(name.length)).update(name, 'ascii').update(data).digest()
    assert.ok(Buffer.concat([h, data, mac]).equals(stored))
    // It opens; moved, altered or under another key it does not.
    const opened = openShard(key, name, stored)
    assert.ok(opened.data.equals(data))
    assert.deepEqual(opened.header, decodeShardHeader(h))
    assert.throws(() => openShard(key, '0123abce', stored), FriendShardError)
    assert.throws(() => openShard(bytes('keys', 'audit-key'), name, stored), FriendShardError)
    for (const at of [0, 4, 9, 20, stored.length - 1]) {
      const bad = Buffer.from(stored)
      bad.writeUInt8(bad.readUInt8(at) ^ 1, at)
      assert.throws(() => openShard(key, name, bad), FriendShardError, `a flipped bit at ${at}`)
    }
  })

  it('an audit challenge and its answer', () => {
    const name = get('shard', 'name')
    const wire = Number(get('audit', 'wire-index'))
    const generation = Number(get('audit', 'generation'))
    const j = Number(get('audit', 'j'))
    const nonce = auditNonce(bytes('keys', 'audit-key'), name, wire, generation, j)
    assert.ok(nonce.equals(bytes('audit', 'nonce')))
    assert.ok(createHmac('sha256', bytes('keys', 'audit-key')).update(`${name}|${wire}|${generation}|${j}`).digest().subarray(0, 16).equals(nonce))
    const answer = auditAnswer(nonce, bytes('shard', 'stored'))
    assert.ok(answer.equals(bytes('audit', 'answer')))
    // What a friend answers is the whole SHA-256; the owner compares its first 16 bytes.
    assert.ok(createHash('sha256').update(nonce).update(bytes('shard', 'stored')).digest().subarray(0, 16).equals(answer))
  })

  it('refuses malformed shard headers', () => {
    const h = bytes('shard', 'header')
    for (const [at, value] of [[0, 2], [1, 0], [2, 0], [4, 9]] as const) {
      const bad = Buffer.from(h)
      bad[at] = value
      assert.throws(() => decodeShardHeader(bad), FriendShardError, `byte ${at} = ${value}`)
    }
    assert.throws(() => decodeShardHeader(h.subarray(0, 16)), FriendShardError)
    assert.equal(parseShardMeta('1:2:2:30:01020304'), undefined)
    assert.equal(parseShardMeta('../../x'), undefined)
  })
})
