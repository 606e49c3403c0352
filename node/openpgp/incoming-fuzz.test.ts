// Hostile OpenPGP mail: valid signed and encrypted messages, mutated at random (bytes flipped,
// cut short, boundaries and armor lines broken, junk inserted), must each give a result with a
// stated problem or a verdict, never a throw, and never take long. Seeded, bounded in count
// and time.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import * as openpgp from 'openpgp'
import { generateOwnKey } from './keys.ts'
import { encryptMessage, signMessage } from './outgoing.ts'
import { readIncoming } from './incoming.ts'
import { prng } from '../../bench/lib/stats.ts'

const ROUNDS = 400
const MAX_MS = 60_000

test('mutated PGP/MIME mail never throws and never reports a good signature over changed content', async () => {
  const [a, b] = await Promise.all([generateOwnKey({ addresses: ['a@example.org'] }), generateOwnKey({ addresses: ['b@example.org'] })])
  const alice = await openpgp.readPrivateKey({ armoredKey: a.armoredPrivateKey })
  const bob = await openpgp.readPrivateKey({ armoredKey: b.armoredPrivateKey })
  const plain = Buffer.from('From: a@example.org\r\nTo: b@example.org\r\nSubject: fuzz\r\nContent-Type: text/plain\r\n\r\nThe quick brown fox.\r\n')
  const signed = await signMessage(plain, { signingKey: alice, protectedExtra: [] })
  const [encrypted] = await encryptMessage(plain, { signingKey: alice, protectedExtra: [], ownKey: alice.toPublic(), visible: [{ address: 'b@example.org', key: bob.toPublic() }], blind: [], gossip: [] })
  const seeds = [signed, encrypted!.raw]
  const keys = { decryptionKeys: [bob], verificationKeys: [alice.toPublic()] }
  const random = prng(20261122)
  const pick = (n: number): number => Math.floor(random() * n)
  const mutations: Array<(m: Buffer) => Buffer> = [
    m => { const c = Buffer.from(m); const at = pick(c.length); c[at] = (c[at] ?? 0) ^ (1 << pick(8)); return c },
    m => m.subarray(0, pick(m.length)),
    m => Buffer.from(m.toString('latin1').replace(/--=_[A-Za-z0-9_-]+--/, ''), 'latin1'),
    m => Buffer.from(m.toString('latin1').replace(/-----END PGP (MESSAGE|SIGNATURE)-----/, ''), 'latin1'),
    m => { const at = pick(m.length); return Buffer.concat([m.subarray(0, at), Buffer.from([0, 0xff, 0x0a, 0x2d, 0x2d]), m.subarray(at)]) },
    m => Buffer.from(m.toString('latin1').replace(/boundary="[^"]+"/, 'boundary=""'), 'latin1'),
    m => Buffer.from(m.toString('latin1').replace(/\r\n/g, '\n'), 'latin1')
  ]
  const started = Date.now()
  let goodOnChanged = 0
  for (let round = 0; round < ROUNDS && Date.now() - started < MAX_MS; round++) {
    const seed = seeds[round % seeds.length]!
    const mutated = mutations[pick(mutations.length)]!(seed)
    const read = await readIncoming(mutated, keys)
    assert.ok(['none', 'good', 'bad', 'unknown-key'].includes(read.security.signature))
    // A good signature must mean the signed text is intact: the display still says what alice wrote.
    if (read.security.signature === 'good' && !(read.display?.toString().includes('The quick brown fox.') ?? false)) goodOnChanged++
  }
  assert.equal(goodOnChanged, 0)
})
