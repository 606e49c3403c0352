import { test } from 'node:test'
import assert from 'node:assert/strict'
import * as openpgp from 'openpgp'
import { generateOwnKey, minimalPublicKey, publicKeyFromBytes, fingerprintOf, exportSecretKeyBackup, importSecretKey } from './keys.ts'
import { encryptMessage, signMessage } from './outgoing.ts'
import { readIncoming } from './incoming.ts'
import { contentTypeOf, decodeTransfer, multipartParts, pgpMimeKind, signedParts, splitEntity } from '../../protocol/pgp-mime.ts'

async function person (address: string): Promise<{ address: string, priv: openpgp.PrivateKey, pub: openpgp.PublicKey }> {
  const record = await generateOwnKey({ addresses: [address] })
  const priv = await openpgp.readPrivateKey({ armoredKey: record.armoredPrivateKey })
  return { address, priv, pub: priv.toPublic() }
}

const plain = (subject: string, extra = ''): Buffer => Buffer.from(
  'From: alice@example.org\r\nTo: bob@example.net\r\nCc: carol@example.com\r\n' + extra +
  `Subject: ${subject}\r\nDate: Sun, 22 Nov 2026 20:00:00 +0000\r\nMessage-ID: <abc@example.org>\r\n` +
  'MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nHello Bob,\r\nsee you.\r\n')

test('a signed message verifies with the signer key, and a changed byte makes it bad', async () => {
  const alice = await person('alice@example.org')
  const signed = await signMessage(plain('Lunch'), { signingKey: alice.priv, protectedExtra: ['SMTorP-Route: alice@' + 'a'.repeat(56) + '.onion'] })
  assert.equal(pgpMimeKind(splitEntity(signed)), 'signed')
  const read = await readIncoming(signed, { decryptionKeys: [], verificationKeys: [alice.pub] })
  assert.equal(read.security.signature, 'good')
  assert.equal(read.security.signer, fingerprintOf(alice.pub))
  assert.ok(read.protectedFields?.some(f => f.key === 'smtorp-route'))
  assert.match(read.display?.toString() ?? '', /Hello Bob/)
  const tampered = Buffer.from(signed.toString('latin1').replace('see you.', 'see you!'), 'latin1')
  const bad = await readIncoming(tampered, { decryptionKeys: [], verificationKeys: [alice.pub] })
  assert.equal(bad.security.signature, 'bad')
  assert.ok(bad.security.problem !== undefined)
  const unknown = await readIncoming(signed, { decryptionKeys: [], verificationKeys: [] })
  assert.equal(unknown.security.signature, 'unknown-key')
})

test('an encrypted message hides the subject, decrypts for each recipient, and the bcc copy is separate', async () => {
  const [alice, bob, carol, dave] = await Promise.all([person('alice@example.org'), person('bob@example.net'), person('carol@example.com'), person('dave@example.com')])
  const copies = await encryptMessage(plain('Secret plans', 'Bcc: dave@example.com\r\n'), {
    signingKey: alice.priv, protectedExtra: [], ownKey: alice.pub,
    visible: [{ address: bob.address, key: bob.pub }, { address: carol.address, key: carol.pub }],
    blind: [{ address: dave.address, key: dave.pub }],
    gossip: ['addr=bob@example.net; keydata=AAAA']
  })
  assert.equal(copies.length, 2)
  const visible = copies[0]!
  assert.doesNotMatch(visible.raw.toString(), /Secret plans|dave/)
  assert.match(visible.raw.toString(), /^Subject: \.\.\.$/m)
  const read = await readIncoming(visible.raw, { decryptionKeys: [bob.priv], verificationKeys: [alice.pub] })
  assert.equal(read.security.encrypted, true)
  assert.equal(read.security.decrypted, true)
  assert.equal(read.security.signature, 'good')
  assert.match(read.display?.toString() ?? '', /^Subject: Secret plans$/m)
  assert.deepEqual(read.gossip, ['addr=bob@example.net; keydata=AAAA'])
  const ids = (await openpgp.readMessage({ armoredMessage: /-----BEGIN PGP MESSAGE-----[\s\S]*-----END PGP MESSAGE-----/.exec(visible.raw.toString())![0] })).getEncryptionKeyIDs().map(k => k.toHex())
  const daveIds = dave.pub.getKeyIDs().map(k => k.toHex())
  assert.ok(!ids.some(id => daveIds.includes(id)))
  const bcc = await readIncoming(copies[1]!.raw, { decryptionKeys: [dave.priv], verificationKeys: [alice.pub] })
  assert.equal(bcc.security.decrypted, true)
  const other = await readIncoming(visible.raw, { decryptionKeys: [dave.priv], verificationKeys: [alice.pub] })
  assert.equal(other.security.decrypted, undefined)
  assert.match(other.security.problem ?? '', /someone else/)
})

test('keys: minimal Autocrypt keydata reads back, and a backup opens only with its passphrase', async () => {
  const record = await generateOwnKey({ addresses: ['alice@example.org', 'alice@' + 'b'.repeat(56) + '.onion'] })
  const key = await openpgp.readPrivateKey({ armoredKey: record.armoredPrivateKey })
  const keydata = await minimalPublicKey(key, 'alice@example.org')
  const back = await publicKeyFromBytes(keydata)
  assert.equal(back && fingerprintOf(back), fingerprintOf(key))
  assert.equal(back?.users.length, 1)
  const backup = await exportSecretKeyBackup(record.armoredPrivateKey, 'correct horse')
  await assert.rejects(importSecretKey(backup, 'wrong horse'), /passphrase/)
  const imported = await importSecretKey(backup, 'correct horse')
  assert.equal(fingerprintOf(await openpgp.readPrivateKey({ armoredKey: imported })), fingerprintOf(key))
})

test('a signed 8-bit body with trailing white space is re-encoded to 7 bit first, and reads back the same (RFC 3156 5.1)', async () => {
  const alice = await person('alice@example.org')
  const text = 'Caf\u00e9 au lait,   \r\nline two\t\r\n' + 'x'.repeat(1200) + '\r\n'
  const raw = Buffer.from(`From: alice@example.org\r\nTo: bob@example.net\r\nSubject: 8bit\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n${text}`, 'utf8')
  const signed = await signMessage(raw, { signingKey: alice.priv, protectedExtra: [] })
  const { signed: part } = signedParts(splitEntity(signed))
  assert.doesNotMatch(part.toString('latin1'), /[\x80-\xff]/, 'the signed part is 7-bit')
  assert.doesNotMatch(part.toString('latin1'), /[ \t]\r\n/, 'no line of the signed part ends in white space')
  assert.ok(part.toString('latin1').split('\r\n').every(line => line.length <= 998))
  const read = await readIncoming(signed, { decryptionKeys: [], verificationKeys: [alice.pub] })
  assert.equal(read.security.signature, 'good')
  const inner = splitEntity(read.display!)
  const original = splitEntity(multipartParts(inner.body, contentTypeOf(inner).params.get('boundary')!)[0]!)
  assert.equal(decodeTransfer(original).toString('utf8'), text)
})

test('a plain 7-bit body is re-encoded only when a line is longer than 998 characters (RFC 5322 2.1.1)', async () => {
  const alice = await person('alice@example.org')
  const signedBody = async (text: string): Promise<string> => {
    const raw = Buffer.from(`From: alice@example.org\r\nTo: bob@example.net\r\nSubject: long\r\n\r\n${text}`, 'latin1')
    const { signed } = signedParts(splitEntity(await signMessage(raw, { signingKey: alice.priv, protectedExtra: [] })))
    return signed.toString('latin1')
  }
  const fits = `${'y'.repeat(998)}\r\nshort\r\n`
  const kept = await signedBody(fits)
  assert.ok(kept.includes(`\r\n\r\n${fits}`), 'lines of 998 stay as they are')
  assert.doesNotMatch(kept, /quoted-printable/)
  const tooLong = await signedBody(`short\r\n${'z'.repeat(999)}\r\n`)
  assert.match(tooLong, /Content-Transfer-Encoding: quoted-printable/)
  assert.ok(tooLong.split('\r\n').every(line => line.length <= 998))
  const lastLine = await signedBody(`short\r\n${'z'.repeat(999)}`)
  assert.match(lastLine, /Content-Transfer-Encoding: quoted-printable/, 'also the last line, without a line end')
})
