// The worker pool that signs and encrypts: results verify like the in-thread functions', a
// worker that dies fails only what it had (with an error that says so) and the next message
// gets a new worker with the key, and a stopped pool refuses work.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import * as openpgp from 'openpgp'
import { generateOwnKey } from './keys.ts'
import { readIncoming } from './incoming.ts'
import { outgoingPool } from './outgoing-pool.ts'

const message = (subject: string): Buffer => Buffer.from(`From: a@example.org\r\nTo: b@example.org\r\nSubject: ${subject}\r\nContent-Type: text/plain\r\n\r\nhello\r\n`)

test('signs and encrypts on a worker; survives a worker that dies; refuses work once stopped', async () => {
  const [a, b] = await Promise.all([generateOwnKey({ addresses: ['a@example.org'] }), generateOwnKey({ addresses: ['b@example.org'] })])
  const alice = await openpgp.readPrivateKey({ armoredKey: a.armoredPrivateKey })
  const bob = await openpgp.readPrivateKey({ armoredKey: b.armoredPrivateKey })
  const pool = outgoingPool({ size: 1, workerUrl: new URL('../../test/fixtures/openpgp/dying-worker.ts', import.meta.url) })
  try {
    await pool.setKey(a.armoredPrivateKey)
    const signed = await pool.sign(message('pooled'), ['SMTorP-Route: x'])
    const read = await readIncoming(signed, { decryptionKeys: [], verificationKeys: [alice.toPublic()] })
    assert.equal(read.security.signature, 'good')
    const copies = await pool.encrypt(message('pooled'), { protectedExtra: [], ownKey: alice.toPublic().armor(), visible: [{ address: 'b@example.org', armoredKey: bob.toPublic().armor() }], blind: [], gossip: [] })
    assert.deepEqual(copies.map(c => c.to), [['b@example.org']])
    const opened = await readIncoming(copies[0]!.raw, { decryptionKeys: [bob], verificationKeys: [alice.toPublic()] })
    assert.equal(opened.security.decrypted, true)
    assert.equal(opened.security.signature, 'good')

    // The worker dies holding this message: it fails with a sentence, and the next one is
    // signed by a new worker that was given the key.
    await assert.rejects(pool.sign(message('die'), []), /the OpenPGP worker stopped \(exit code 3\)/)
    const again = await pool.sign(message('after'), [])
    assert.equal((await readIncoming(again, { decryptionKeys: [], verificationKeys: [alice.toPublic()] })).security.signature, 'good')
  } finally {
    await pool.stop()
  }
  await assert.rejects(pool.sign(message('late'), []), /stopped/)
})
