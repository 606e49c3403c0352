// smtorp against real GnuPG (Debian's 2.2; spec/openpgp.md 1): keys move both ways, gpg
// decrypts and verifies the PGP/MIME smtorp makes, and smtorp reads the PGP/MIME and inline
// PGP mail gpg makes as mutt would send it. Every verdict on the gpg side is taken from its
// status lines (test/harness/gnupg.ts), never from its human messages.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { after, before, describe, it } from 'node:test'
import * as openpgp from 'openpgp'
import { encryptedPayload, signedParts, splitEntity, contentTypeOf } from '../protocol/pgp-mime.ts'
import { readIncoming } from '../node/openpgp/incoming.ts'
import { exportSecretKeyBackup, fingerprintOf, generateOwnKey, importSecretKey, readPublicKey } from '../node/openpgp/keys.ts'
import { encryptMessage, signMessage } from '../node/openpgp/outgoing.ts'
import {
  Gpg, goodSigner, gpgClearSignedMessage, gpgEncryptedMessage, gpgInlineEncryptedMessage, gpgSignedMessage, micalgName, statusArgs
} from './harness/gnupg.ts'

const gpgMissing = spawnSync('gpg', ['--version'], { timeout: 5_000 }).status !== 0
const skip = gpgMissing ? 'gpg (GnuPG) is not installed' : false

const ALICE = 'alice@example.org' // smtorp's owner
const BOB = 'bob@example.net' // a gpg user
const CAROL = 'carol@example.com' // a gpg key smtorp has no secret for

interface SmtorpPerson { priv: openpgp.PrivateKey, pub: openpgp.PublicKey, fingerprint: string, armoredPrivateKey: string }

async function smtorpPerson (address: string): Promise<SmtorpPerson> {
  const record = await generateOwnKey({ name: 'Alice', addresses: [address] })
  const priv = await openpgp.readPrivateKey({ armoredKey: record.armoredPrivateKey })
  return { priv, pub: priv.toPublic(), fingerprint: fingerprintOf(priv), armoredPrivateKey: record.armoredPrivateKey }
}

const outgoing = (subject: string): Buffer => Buffer.from(
  `From: Alice <${ALICE}>\r\nTo: <${BOB}>\r\nSubject: ${subject}\r\nDate: Sun, 22 Nov 2026 20:00:00 +0000\r\n` +
  'Message-ID: <interop-1@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n' +
  'Content-Transfer-Encoding: 8bit\r\n\r\nHello Bob,\r\nthe plans are in the usual place.\r\n-- \r\nAlice\r\n')

const fromBob = (subject: string): string[] => [
  `From: Bob <${BOB}>`, `To: <${ALICE}>`, `Subject: ${subject}`, 'Date: Sun, 22 Nov 2026 21:00:00 +0000', 'Message-ID: <interop-2@example.net>'
]

/** The key id (16 hex digits) of a key's encryption subkey in gpg's colon listing. */
function encryptionSubkeyId (colons: string[][]): string {
  const sub = colons.find(f => f[0] === 'sub' && (f[11] ?? '').includes('e'))
  assert.ok(sub !== undefined, 'the key has an encryption subkey')
  return sub[4] ?? ''
}

describe('GnuPG 2.2 interoperability', { skip, timeout: 60_000 }, () => {
  let gpg: Gpg
  let alice: SmtorpPerson
  let bobFingerprint: string
  let carolFingerprint: string
  let aliceImported: string[]

  before(async () => {
    gpg = await Gpg.start()
    alice = await smtorpPerson(ALICE)
    bobFingerprint = await gpg.generateKey(BOB)
    carolFingerprint = await gpg.generateKey(CAROL)
    aliceImported = await gpg.importKey(alice.pub.armor())
  })

  after(async () => {
    await gpg?.stop()
  })

  it('an smtorp public key imports into gpg as ed25519 + cv25519, and gpg encrypts to it', async () => {
    assert.deepEqual(aliceImported, [alice.fingerprint])
    const colons = await gpg.listColons(alice.fingerprint)
    // doc/DETAILS: field 4 is the algorithm (22 EdDSA, 18 ECDH), field 17 the curve.
    const pub = colons.find(f => f[0] === 'pub')
    assert.equal(pub?.[3], '22')
    assert.equal(pub?.[16], 'ed25519')
    const sub = colons.find(f => f[0] === 'sub')
    assert.equal(sub?.[3], '18')
    assert.equal(sub?.[16], 'cv25519')

    const armored = await gpg.encryptSign('for Alice only\n', [alice.fingerprint])
    const message = await openpgp.readMessage({ armoredMessage: armored })
    const aliceEncryption = (await alice.pub.getEncryptionKey()).getKeyID()
    assert.ok(message.getEncryptionKeyIDs().some(id => id.equals(aliceEncryption)), 'gpg encrypted to the smtorp encryption subkey')
    const { data } = await openpgp.decrypt({ message, decryptionKeys: alice.priv })
    assert.equal(data, 'for Alice only\n')
  })

  it('a gpg public key reads in smtorp as a v4 key, and gpg decrypts what smtorp encrypts to it', async () => {
    const bob = await readPublicKey(await gpg.exportPublic(BOB))
    assert.equal(fingerprintOf(bob), bobFingerprint)
    assert.equal(bob.keyPacket.version, 4)
    assert.equal(bob.getAlgorithmInfo().algorithm, 'eddsaLegacy')
    const encryption = await bob.getEncryptionKey()
    assert.deepEqual(encryption.getAlgorithmInfo(), { algorithm: 'ecdh', curve: 'curve25519Legacy' })

    const armored = await openpgp.encrypt({ message: await openpgp.createMessage({ text: 'for Bob only' }), encryptionKeys: bob, format: 'armored' })
    const result = await gpg.decrypt(armored)
    assert.equal(result.code, 0)
    assert.ok(result.status.includes('DECRYPTION_OKAY'), result.status.join('\n'))
    assert.equal(statusArgs(result.status, 'ENC_TO')?.[0], encryption.getKeyID().toHex().toUpperCase())
    assert.equal(result.data.toString(), 'for Bob only')
  })

  it('a gpg secret key exported under a passphrase imports into smtorp only with that passphrase', async () => {
    const passphrase = 'dave keeps it safe'
    const daveFingerprint = await gpg.generateKey('dave@example.com', { passphrase })
    const exported = await gpg.exportSecret('dave@example.com', passphrase)
    // The export really is protected (S2K), not a bare key.
    assert.equal((await openpgp.readPrivateKey({ armoredKey: exported })).isDecrypted(), false)
    await assert.rejects(importSecretKey(exported, 'not the passphrase'), /passphrase does not open/)
    const imported = await openpgp.readPrivateKey({ armoredKey: await importSecretKey(exported, passphrase) })
    assert.equal(fingerprintOf(imported), daveFingerprint)
    // The imported secret decrypts what gpg encrypts to the key, and signs what gpg verifies.
    const armored = await gpg.encryptSign('for Dave\n', [daveFingerprint])
    const { data } = await openpgp.decrypt({ message: await openpgp.readMessage({ armoredMessage: armored }), decryptionKeys: imported })
    assert.equal(data, 'for Dave\n')
    const signature = await openpgp.sign({ message: await openpgp.createMessage({ binary: Buffer.from('signed by Dave') }), signingKeys: imported, detached: true, format: 'armored' })
    assert.equal(goodSigner(await gpg.verifyDetached('signed by Dave', signature)), daveFingerprint)
  })

  it("smtorp's secret key backup imports into gpg with its passphrase, and gpg signs with it", async () => {
    const erin = await smtorpPerson('erin@example.org')
    const passphrase = 'correct horse battery'
    const backup = await exportSecretKeyBackup(erin.armoredPrivateKey, passphrase)
    assert.deepEqual(await gpg.importKey(backup, { passphrase }), [erin.fingerprint])
    const secret = await gpg.listColons(erin.fingerprint, true)
    assert.ok(secret.some(f => f[0] === 'sec'), 'gpg holds the secret key')
    assert.ok(secret.some(f => f[0] === 'ssb'), 'gpg holds the secret subkey')

    // gpg kept the backup's protection: the wrong passphrase does not sign.
    const refused = await gpg.run(['--detach-sign', '--local-user', erin.fingerprint], { input: 'x', passphrase: 'wrong horse battery' })
    assert.notEqual(refused.code, 0)
    const { armored } = await gpg.detachSign('signed by gpg with the smtorp key\n', erin.fingerprint, { passphrase })
    const verified = await openpgp.verify({
      message: await openpgp.createMessage({ binary: Buffer.from('signed by gpg with the smtorp key\n') }),
      signature: await openpgp.readSignature({ armoredSignature: armored }),
      verificationKeys: erin.pub
    })
    assert.equal(await verified.signatures[0]?.verified, true)
    assert.ok(verified.signatures[0]?.keyID.equals(erin.pub.getKeyID()))
  })

  it('gpg decrypts and verifies the encrypted part of a message smtorp encrypted, with the protected Subject inside', async () => {
    const bob = await readPublicKey(await gpg.exportPublic(BOB))
    const copies = await encryptMessage(outgoing('Secret plans'), {
      signingKey: alice.priv, protectedExtra: [], ownKey: alice.pub,
      visible: [{ address: BOB, key: bob }], blind: [], gossip: []
    })
    assert.equal(copies.length, 1)
    const raw = (copies[0] as { raw: Buffer }).raw
    assert.doesNotMatch(raw.toString(), /Secret plans/)
    const result = await gpg.decrypt(encryptedPayload(splitEntity(raw)))
    assert.equal(result.code, 0, result.status.join('\n'))
    assert.ok(result.status.includes('DECRYPTION_OKAY'), result.status.join('\n'))
    assert.equal(goodSigner(result.status), alice.fingerprint)
    // Encrypted to Bob and to Alice herself (so she can read her sent mail).
    const recipients = result.status.filter(l => l.startsWith('ENC_TO ')).map(l => l.split(' ')[1])
    assert.ok(recipients.includes((await bob.getEncryptionKey()).getKeyID().toHex().toUpperCase()))
    assert.ok(recipients.includes((await alice.pub.getEncryptionKey()).getKeyID().toHex().toUpperCase()))
    const inner = result.data.toString()
    assert.match(inner, /^Content-Type: multipart\/mixed; .*protected-headers="v1"/m)
    assert.match(inner, /^Subject: Secret plans\r$/m)
    assert.match(inner, /the plans are in the usual place/)
  })

  it('gpg verifies the detached signature of a message smtorp signed, over the exact signed part', async () => {
    const raw = await signMessage(outgoing('Lunch on Friday'), { signingKey: alice.priv, protectedExtra: [] })
    const entity = splitEntity(raw)
    const { signed, signature } = signedParts(entity)
    const status = await gpg.verifyDetached(signed, signature)
    assert.equal(goodSigner(status), alice.fingerprint, status.join('\n'))
    // RFC 3156 5: micalg names the hash gpg found in the signature (VALIDSIG's 8th argument,
    // an RFC 4880 9.4 id; openpgp.js picks SHA-512 for these keys).
    const hashAlgo = statusArgs(status, 'VALIDSIG')?.[7] ?? ''
    assert.equal(contentTypeOf(entity).params.get('micalg'), `pgp-${micalgName(hashAlgo)}`)
    // One changed byte in the signed part: gpg says BADSIG.
    const changed = Buffer.from(signed.toString('latin1').replace('usual place', 'usual plaice'), 'latin1')
    const bad = await gpg.verifyDetached(changed, signature)
    assert.ok(statusArgs(bad, 'BADSIG') !== undefined, bad.join('\n'))
    assert.equal(goodSigner(bad), undefined)
  })

  describe('smtorp reads mail gpg made', () => {
    let bob: openpgp.PublicKey
    before(async () => {
      bob = await readPublicKey(await gpg.exportPublic(BOB))
    })
    const keys = (): { decryptionKeys: openpgp.PrivateKey[], verificationKeys: openpgp.PublicKey[] } =>
      ({ decryptionKeys: [alice.priv], verificationKeys: [bob] })

    it('PGP/MIME signed: good, by the gpg key; one changed byte of the body makes it bad', async () => {
      const { raw } = await gpgSignedMessage(gpg, {
        headers: fromBob('Signed by gpg'),
        entity: 'Content-Type: text/plain; charset=us-ascii\n\nHi Alice,\nthis is signed.\n',
        signer: BOB
      })
      const read = await readIncoming(raw, keys())
      assert.equal(read.security.format, 'pgp-mime')
      assert.equal(read.security.encrypted, false)
      assert.equal(read.security.signature, 'good', read.security.problem ?? '')
      assert.equal(read.security.signer, bobFingerprint)
      assert.match(read.display?.toString() ?? '', /this is signed\./)

      const tampered = Buffer.from(raw.toString('latin1').replace('this is signed.', 'this is signeD.'), 'latin1')
      const bad = await readIncoming(tampered, keys())
      assert.equal(bad.security.signature, 'bad')
      assert.equal(bad.security.signer, bobFingerprint)
      assert.match(bad.security.problem ?? '', /does not match/)
    })

    it('PGP/MIME encrypted and signed: decrypted, good, with the protected Subject shown', async () => {
      // mutt 2's protected headers: the Subject in the header of the encrypted entity.
      const raw = await gpgEncryptedMessage(gpg, {
        headers: fromBob('...'),
        entity: 'Content-Type: text/plain; charset=us-ascii; protected-headers="v1"\nSubject: Meeting place\n\nThe meeting moved to the library.\n',
        recipients: [alice.fingerprint],
        signer: BOB
      })
      const read = await readIncoming(raw, keys())
      assert.equal(read.security.format, 'pgp-mime')
      assert.equal(read.security.encrypted, true)
      assert.equal(read.security.decrypted, true, read.security.problem ?? '')
      assert.equal(read.security.signature, 'good')
      assert.equal(read.security.signer, bobFingerprint)
      const display = read.display?.toString() ?? ''
      assert.match(display, /^Subject: Meeting place\r$/m)
      assert.doesNotMatch(display, /^Subject: \.\.\./m)
      assert.match(display, /The meeting moved to the library\./)
    })

    it('inline encrypted (armored in text/plain): decrypted, the text shown, the signature good', async () => {
      const raw = await gpgInlineEncryptedMessage(gpg, {
        headers: fromBob('Inline'),
        text: 'Inline secret: the key is under the mat.\n',
        recipients: [alice.fingerprint],
        signer: BOB
      })
      assert.doesNotMatch(raw.toString(), /under the mat/)
      const read = await readIncoming(raw, keys())
      assert.equal(read.security.format, 'inline')
      assert.equal(read.security.encrypted, true)
      assert.equal(read.security.decrypted, true, read.security.problem ?? '')
      assert.equal(read.security.signature, 'good')
      assert.equal(read.security.signer, bobFingerprint)
      const display = read.display?.toString() ?? ''
      assert.match(display, /Inline secret: the key is under the mat\./)
      assert.doesNotMatch(display, /BEGIN PGP MESSAGE/)
    })

    it('inline cleartext-signed: good, by the gpg key; a changed word makes it bad', async () => {
      const raw = await gpgClearSignedMessage(gpg, { headers: fromBob('Clearsigned'), text: 'I agree to the terms.\n- Bob\n', signer: BOB })
      const read = await readIncoming(raw, keys())
      assert.equal(read.security.format, 'inline')
      assert.equal(read.security.signature, 'good', read.security.problem ?? '')
      assert.equal(read.security.signer, bobFingerprint)
      assert.match(read.display?.toString() ?? '', /I agree to the terms\./)
      const bad = await readIncoming(Buffer.from(raw.toString().replace('I agree', 'I disagree')), keys())
      assert.equal(bad.security.signature, 'bad')
    })

    it('a message gpg encrypted to a third key only: a clear "someone else" problem naming that key', async () => {
      const raw = await gpgEncryptedMessage(gpg, {
        headers: fromBob('Not for Alice'),
        entity: 'Content-Type: text/plain\n\nFor Carol.\n',
        recipients: [carolFingerprint],
        signer: BOB
      })
      const read = await readIncoming(raw, keys())
      assert.equal(read.security.encrypted, true)
      assert.equal(read.security.decrypted, undefined)
      assert.equal(read.display, undefined)
      const carolSubkey = encryptionSubkeyId(await gpg.listColons(carolFingerprint))
      assert.match(read.security.problem ?? '', /someone else/)
      assert.ok((read.security.problem ?? '').includes(carolSubkey), read.security.problem ?? '')
    })
  })
})
