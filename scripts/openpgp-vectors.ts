// Prints the ```vectors block of spec/openpgp.md: a fixed key for alice (test only!), her
// Autocrypt header, and messages made with it. Signatures and encryption are randomized, so
// the output differs each run; test/openpgp-vectors.test.ts checks the block's meaning (the
// message verifies with the key, the route and protected Subject are as stated), not its bytes.
//   node_modules/.bin/node --import tsx scripts/openpgp-vectors.ts [alice-key.asc] [bob-key.asc]
import { readFileSync } from 'node:fs'
import * as openpgp from 'openpgp'
import { generateOwnKey, minimalPublicKey, fingerprintOf } from '../node/openpgp/keys.ts'
import { encryptMessage, signMessage } from '../node/openpgp/outgoing.ts'
import { formatAutocryptHeader } from '../protocol/autocrypt.ts'

const ALICE = 'alice@example.org'
const ALICE_ONION = 'alice@aoqqpp7tzyil4hlq3umoos6atft6jvrqtosq2xy53sdgiesvgg4bqead.onion'
const BOB = 'bob@fgwlvykbxtfpbmrodkkngtily43b4utnbp7bfsexss6jgiuwnxluewad.onion'
const DATE = new Date('2026-11-22T12:00:00Z')

async function key (file: string | undefined, addresses: string[]): Promise<openpgp.PrivateKey> {
  const armored = file !== undefined ? readFileSync(file, 'utf8') : (await generateOwnKey({ addresses, date: DATE })).armoredPrivateKey
  return await openpgp.readPrivateKey({ armoredKey: armored })
}

const alice = await key(process.argv[2], [ALICE, ALICE_ONION])
const bob = await key(process.argv[3], [BOB])
const b64 = (data: Uint8Array | Buffer | string): string => Buffer.from(data).toString('base64')
const autocrypt = formatAutocryptHeader({ addr: ALICE, preferEncrypt: 'mutual', keydata: Buffer.from(await minimalPublicKey(alice, ALICE)) })
const plain = Buffer.from(`Autocrypt: ${autocrypt}\r\nFrom: Alice <${ALICE}>\r\nTo: ${BOB}\r\nSubject: Lunch on Friday?\r\nDate: Sun, 22 Nov 2026 12:00:00 +0000\r\nMessage-ID: <vector-1@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nShall we?\r\n`)
const route = `SMTorP-Route: ${ALICE_ONION}`
const signed = await signMessage(plain, { signingKey: alice, protectedExtra: [route] })
const [encrypted] = await encryptMessage(plain, { signingKey: alice, protectedExtra: [route], ownKey: alice.toPublic(), visible: [{ address: BOB, key: bob.toPublic() }], blind: [], gossip: [] })

const lines = [
  '[key alice]',
  `secret-key-base64: ${b64(alice.write())}`,
  `fingerprint: ${fingerprintOf(alice)}`,
  `addresses: ${ALICE} ${ALICE_ONION}`,
  '',
  '[key bob]',
  `secret-key-base64: ${b64(bob.write())}`,
  `fingerprint: ${fingerprintOf(bob)}`,
  '',
  '[autocrypt alice]',
  `header: ${autocrypt.replace(/\r?\n /g, ' ')}`,
  '',
  '[message signed]',
  `from: ${ALICE}`,
  `route: ${ALICE_ONION}`,
  'subject: Lunch on Friday?',
  `raw-base64: ${b64(signed)}`,
  '',
  '[message encrypted]',
  `from: ${ALICE}`,
  `to: ${BOB}`,
  'outer-subject: ...',
  'subject: Lunch on Friday?',
  `route: ${ALICE_ONION}`,
  `raw-base64: ${b64(encrypted!.raw)}`
]
process.stdout.write(`${lines.join('\n')}\n`)
