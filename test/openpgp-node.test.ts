// The OpenPGP service on real vaults: alice and bob (and carol, mallory) in one process, mail
// handed from one's prepared copies straight into the other's Inbox. What must hold (issue 5):
// Autocrypt and TOFU between peers, encryption by recommendation, Bcc privacy by key ids,
// hostile mail marked and never lost, routes learned only from well-signed mail, header
// stripping.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as openpgp from 'openpgp'
import { openTestVault } from './harness/vault.ts'
import { silentLogger } from '../node/log/index.ts'
import { openPgpService, EncryptionRefusedError, ROUTE_FIELD, type OpenPgp } from '../node/openpgp/index.ts'
import type { Vault } from '../node/vault/index.ts'
import { generateOwnKey, minimalPublicKey, fingerprintOf } from '../node/openpgp/keys.ts'
import { signMessage } from '../node/openpgp/outgoing.ts'
import { formatAutocryptHeader } from '../protocol/autocrypt.ts'
import { splitEntity, pgpMimeKind, encryptedPayload } from '../protocol/pgp-mime.ts'
import { headerValue } from '../protocol/message.ts'
import { generateOnionKey } from '../protocol/onion.ts'

// Real onion addresses (the checksum matters: a route must name a valid onion).
const onions = new Map<string, string>()
const onion = (name: string): string => {
  if (!onions.has(name)) onions.set(name, `${generateOnionKey().address}.onion`)
  return onions.get(name) as string
}

interface Person {
  address: string
  vault: Vault
  pgp: OpenPgp
}

const dirs: string[] = []
async function person (address: string, onionAddress = address): Promise<Person> {
  const dir = await mkdtemp(join(tmpdir(), 'smtorp-pgp-'))
  dirs.push(dir)
  const { vault } = await openTestVault(dir)
  const pgp = openPgpService({ address, onionAddress }, { logger: silentLogger(), vault, socks: () => ({ host: '127.0.0.1', port: 9 }) })
  pgp.start()
  await waitFor(() => pgp.ready())
  return { address, vault, pgp }
}

async function waitFor (ok: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms
  while (!ok()) {
    if (Date.now() > end) throw new Error('timed out waiting')
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}

function message (from: string, to: string[], subject: string, options: { cc?: string[], bcc?: string[], extra?: string[], body?: string } = {}): Buffer {
  return Buffer.from([
    `From: ${from}`,
    `To: ${to.join(', ')}`,
    ...(options.cc !== undefined ? [`Cc: ${options.cc.join(', ')}`] : []),
    ...(options.bcc !== undefined ? [`Bcc: ${options.bcc.join(', ')}`] : []),
    `Subject: ${subject}`,
    ...(options.extra ?? []),
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    '',
    options.body ?? `About ${subject}.`,
    ''
  ].join('\r\n'))
}

/** Hand a message to a person as smtp-in would, and let their OpenPGP read it. */
async function receive (to: Person, raw: Buffer, from: string): Promise<string> {
  const { meta } = await to.vault.add({ folder: 'Inbox', raw, from, to: [to.address] })
  await to.pgp.processNew()
  return meta.id
}

async function securityOf (p: Person, id: string): Promise<NonNullable<Awaited<ReturnType<Vault['meta']>>>> {
  const meta = await p.vault.meta(id)
  assert.ok(meta !== undefined)
  return meta
}

async function recipientsOf (raw: Buffer): Promise<string[]> {
  const armored = encryptedPayload(splitEntity(raw))
  const msg = await openpgp.readMessage({ armoredMessage: armored })
  return msg.getEncryptionKeyIDs().map(k => k.toHex().toUpperCase())
}

async function encryptionKeyIdOf (p: Person): Promise<string> {
  const key = await openpgp.readKey({ armoredKey: (await p.pgp.ownKey()).armoredPublicKey })
  return (await key.getEncryptionKey()).getKeyID().toHex().toUpperCase()
}

let alice: Person
let bob: Person
let carol: Person

before(async () => {
  alice = await person('alice@example.org', `alice@${onion('a')}`)
  bob = await person(`bob@${onion('b')}`)
  carol = await person(`carol@${onion('c')}`)
})

after(async () => {
  for (const p of [alice, bob, carol]) { await p.pgp.stop(); await p.vault.close() }
  for (const dir of dirs) await rm(dir, { recursive: true, force: true })
})

describe('between two nodes', () => {
  test('a first message is signed, carries Autocrypt, is pinned on first use; the answer goes encrypted', async () => {
    assert.equal(alice.pgp.wouldEncrypt([bob.address]), false)
    const first = await alice.pgp.prepareOutgoing(message(alice.address, [bob.address], 'Hello'), [bob.address], 'auto')
    assert.equal(first.encrypted, false)
    assert.equal(first.signed, true)
    assert.match(headerValue(first.stored, 'Autocrypt') ?? '', /^addr=alice@example.org; prefer-encrypt=mutual; keydata=/)
    const copy = first.copies![0]!
    assert.equal(pgpMimeKind(splitEntity(copy.raw)), 'signed')
    // The route to alice's onion travels inside the signed part only.
    assert.doesNotMatch(copy.raw.toString().split('\r\n\r\n')[0] ?? '', new RegExp(ROUTE_FIELD))
    assert.match(copy.raw.toString(), new RegExp(`${ROUTE_FIELD}: alice@${onion('a')}`))

    const id = await receive(bob, copy.raw, alice.address)
    const meta = await securityOf(bob, id)
    assert.equal(meta.security?.signature, 'good')
    assert.equal(meta.security?.keyState, 'first-seen')
    assert.equal(meta.security?.signer, (await alice.pgp.ownKey()).fingerprint)
    const peer = bob.pgp.peer(alice.address)
    assert.equal(peer?.pinned?.fingerprint, (await alice.pgp.ownKey()).fingerprint)
    assert.equal(peer?.route, `alice@${onion('a')}`)
    assert.equal(bob.pgp.routeOf('Alice@Example.org'), `alice@${onion('a')}`)

    // Both prefer mutual, bob has alice's key: his reply is encrypted, with the subject hidden.
    assert.equal(bob.pgp.wouldEncrypt([alice.address]), true)
    const reply = await bob.pgp.prepareOutgoing(message(bob.address, [alice.address], 'Re: Hello'), [alice.address], 'auto')
    assert.equal(reply.encrypted, true)
    const replyCopy = reply.copies![0]!
    assert.equal(pgpMimeKind(splitEntity(replyCopy.raw)), 'encrypted')
    assert.equal(headerValue(replyCopy.raw, 'Subject'), '...')
    assert.doesNotMatch(replyCopy.raw.toString(), /Re: Hello|About/)
    const replyId = await receive(alice, replyCopy.raw, bob.address)
    const replyMeta = await securityOf(alice, replyId)
    assert.equal(replyMeta.security?.encrypted, true)
    assert.equal(replyMeta.security?.decrypted, true)
    assert.equal(replyMeta.security?.signature, 'good')
    assert.equal(replyMeta.subject, 'Re: Hello', 'the list shows the protected subject')
    const shown = await alice.pgp.readMessage((await alice.vault.get(replyId))!.raw)
    assert.match(shown.display!.toString(), /About Re: Hello/)
    // The search index reads the decrypted words.
    await alice.vault.searchReady()
    await waitFor(() => alice.vault.indexingProgress().total === 0)
    assert.deepEqual((await alice.vault.search('about')).map(m => m.id), [replyId])
  })

  test('the owner verifies a contact only with the right fingerprint', async () => {
    const fingerprint = (await alice.pgp.ownKey()).fingerprint
    await assert.rejects(bob.pgp.verifyPeer(alice.address, 'AAAA'.repeat(10)), /not the fingerprint/)
    await bob.pgp.verifyPeer(alice.address, fingerprint.replace(/(.{4})/g, '$1 ').toLowerCase())
    assert.equal(bob.pgp.peer(alice.address)?.pinned?.verified, true)
    assert.equal(bob.pgp.recipientSecurity([alice.address])[0]?.key, 'verified')
  })

  test('Bcc: each blind recipient has a copy of their own, and no copy names another\'s key', async () => {
    // carol gets alice's key by a message from alice, and alice gets carol's.
    const hello = await alice.pgp.prepareOutgoing(message(alice.address, [carol.address], 'Hi carol'), [carol.address], 'auto')
    await receive(carol, hello.copies![0]!.raw, alice.address)
    const back = await carol.pgp.prepareOutgoing(message(carol.address, [alice.address], 'Hi alice'), [alice.address], 'auto')
    await receive(alice, back.copies![0]!.raw, carol.address)

    const raw = message(alice.address, [bob.address], 'Plans', { bcc: [carol.address] })
    const prepared = await alice.pgp.prepareOutgoing(raw, [bob.address, carol.address], 'encrypt')
    assert.equal(prepared.copies?.length, 2)
    const [toBob, toCarol] = prepared.copies!
    assert.deepEqual(toBob!.to, [bob.address])
    assert.deepEqual(toCarol!.to, [carol.address])
    const [bobKey, carolKey, aliceKey] = await Promise.all([encryptionKeyIdOf(bob), encryptionKeyIdOf(carol), encryptionKeyIdOf(alice)])
    const bobCopyIds = await recipientsOf(toBob!.raw)
    const carolCopyIds = await recipientsOf(toCarol!.raw)
    assert.ok(bobCopyIds.includes(bobKey) && bobCopyIds.includes(aliceKey))
    assert.ok(!bobCopyIds.includes(carolKey), 'the To copy must not name the Bcc recipient\'s key')
    assert.ok(carolCopyIds.includes(carolKey) && !carolCopyIds.includes(bobKey))
    assert.doesNotMatch(toBob!.raw.toString(), /carol/)
    // The sender's own copy keeps the Bcc line, readable.
    assert.match(prepared.stored.toString(), /^Bcc: carol@/m)
    // Both can read their copy.
    const atBob = await receive(bob, toBob!.raw, alice.address)
    assert.equal((await securityOf(bob, atBob)).security?.decrypted, true)
    const atCarol = await receive(carol, toCarol!.raw, alice.address)
    assert.equal((await securityOf(carol, atCarol)).security?.decrypted, true)
  })

  test('gossip: in encrypted mail to several people each learns the others\' keys (not pinned)', async () => {
    const dave = await person(`dave@${onion('d')}`)
    const raw = message(alice.address, [bob.address, carol.address], 'Team')
    const prepared = await alice.pgp.prepareOutgoing(raw, [bob.address, carol.address], 'encrypt')
    assert.equal(prepared.copies?.length, 1)
    const id = await receive(bob, prepared.copies![0]!.raw, alice.address)
    assert.equal((await securityOf(bob, id)).security?.signature, 'good')
    const carolAtBob = bob.pgp.peer(carol.address)
    assert.equal(carolAtBob?.gossipOnly, true)
    assert.equal(bob.pgp.recipientSecurity([carol.address])[0]?.key, 'gossip')
    assert.equal(bob.pgp.recipientSecurity([carol.address])[0]?.recommendation, 'discourage')
    // dave, who has no key of anyone, cannot be sent encrypted mail: refused, naming him.
    await assert.rejects(alice.pgp.prepareOutgoing(message(alice.address, [dave.address], 'x'), [dave.address], 'encrypt'),
      (err: unknown) => err instanceof EncryptionRefusedError && err.withoutKey.includes(dave.address) && err.message.includes(dave.address))
    await dave.pgp.stop(); await dave.vault.close()
  })
})

describe('hostile and broken mail is marked, never lost, never a crash', () => {
  test('a changed key is flagged and not used; the pinned key stays until the owner accepts', async () => {
    const pinned = bob.pgp.peer(alice.address)?.pinned?.fingerprint
    // mallory writes as alice, with a key of her own in the Autocrypt header, signed with it.
    const mallory = await generateOwnKey({ addresses: [alice.address] })
    const malloryKey = await openpgp.readPrivateKey({ armoredKey: mallory.armoredPrivateKey })
    const autocrypt = `Autocrypt: ${formatAutocryptHeader({ addr: alice.address, preferEncrypt: 'mutual', keydata: Buffer.from(await minimalPublicKey(malloryKey, alice.address)) })}`
    const forged = await signMessage(message(alice.address, [bob.address], 'New key, trust me', { extra: [autocrypt] }), { signingKey: malloryKey, protectedExtra: [`${ROUTE_FIELD}: alice@${onion('m')}`] })
    const id = await receive(bob, forged, alice.address)
    const meta = await securityOf(bob, id)
    assert.equal(meta.security?.signature, 'good')
    assert.equal(meta.security?.keyState, 'changed')
    const peer = bob.pgp.peer(alice.address)
    assert.equal(peer?.pinned?.fingerprint, pinned, 'the pinned key stays')
    assert.equal(peer?.changed?.fingerprint, fingerprintOf(malloryKey))
    assert.equal(bob.pgp.routeOf(alice.address), `alice@${onion('a')}`, 'a route from a changed key is not learned')
    const rec = bob.pgp.recipientSecurity([alice.address])[0]!
    assert.equal(rec.changedKey, fingerprintOf(malloryKey))
    assert.notEqual(rec.recommendation, 'encrypt')
    // Mail to alice still goes to the pinned key, never mallory's.
    const out = await bob.pgp.prepareOutgoing(message(bob.address, [alice.address], 'to alice'), [alice.address], 'encrypt')
    const ids = await recipientsOf(out.copies![0]!.raw)
    const malloryEnc = (await malloryKey.getEncryptionKey()).getKeyID().toHex().toUpperCase()
    assert.ok(!ids.includes(malloryEnc))
    assert.ok(ids.includes(await encryptionKeyIdOf(alice)))
    // Accepting needs the changed key's fingerprint.
    await assert.rejects(bob.pgp.acceptChangedKey(alice.address, pinned!), /No changed key/)
  })

  test('a route header on an unsigned, badly signed or stranger-signed message changes nothing', async () => {
    const before = bob.pgp.routeOf(alice.address)
    // Unsigned: the header in the open, and in a protected-looking part without a signature.
    await receive(bob, message(alice.address, [bob.address], 'route?', { extra: [`${ROUTE_FIELD}: alice@${onion('x')}`] }), alice.address)
    // Signed by alice's real key, then a byte changed: a bad signature.
    const signed = (await alice.pgp.prepareOutgoing(message(alice.address, [bob.address], 'sig'), [bob.address], 'sign')).copies![0]!.raw
    const tampered = Buffer.from(signed.toString('latin1').replace(`${ROUTE_FIELD}: alice@${onion('a')}`, `${ROUTE_FIELD}: alice@${onion('y')}`), 'latin1')
    assert.notDeepEqual(tampered, signed)
    const badId = await receive(bob, tampered, alice.address)
    assert.equal((await securityOf(bob, badId)).security?.signature, 'bad')
    assert.match((await securityOf(bob, badId)).security?.problem ?? '', /changed after it was signed|forged/)
    // Signed by a key bob has never seen (no Autocrypt header): unknown key.
    const stranger = await openpgp.readPrivateKey({ armoredKey: (await generateOwnKey({ addresses: [alice.address] })).armoredPrivateKey })
    const strangerSigned = await signMessage(message(alice.address, [bob.address], 'stranger'), { signingKey: stranger, protectedExtra: [`${ROUTE_FIELD}: alice@${onion('z')}`] })
    const strangerId = await receive(bob, strangerSigned, alice.address)
    assert.equal((await securityOf(bob, strangerId)).security?.signature, 'unknown-key')
    assert.equal(bob.pgp.routeOf(alice.address), before)
    // The bytes are stored as they came.
    assert.deepEqual((await bob.vault.get(badId))!.raw, tampered)
  })

  test('tampered ciphertext, mail for someone else, bad armor and broken MIME each get a stated problem', async () => {
    const enc = (await bob.pgp.prepareOutgoing(message(bob.address, [alice.address], 'secret'), [alice.address], 'encrypt')).copies![0]!.raw
    const text = enc.toString('latin1')
    // A character in the middle of the armored data: inside the encrypted content, past the key packets.
    const armorStart = text.indexOf('-----BEGIN PGP MESSAGE-----')
    const armorEnd = text.indexOf('-----END PGP MESSAGE-----')
    let bodyLine = Math.floor((armorStart + armorEnd) / 2)
    while (!/[A-Za-z0-9]/.test(text[bodyLine] ?? '')) bodyLine++
    const flipped = text.slice(0, bodyLine) + (text[bodyLine] === 'A' ? 'B' : 'A') + text.slice(bodyLine + 1)
    const cases: Array<[string, Buffer, RegExp]> = [
      ['tampered', Buffer.from(flipped, 'latin1'), /could not be decrypted|not a readable OpenPGP message/],
      ['for someone else', enc, /someone else/],
      ['bad armor', Buffer.from(text.replace(/(-----BEGIN PGP MESSAGE-----\r\n\r\n)[A-Za-z0-9+/]{10}/, '$1!!!!!!!!!!'), 'latin1'), /not a readable OpenPGP message|could not be decrypted/],
      ['broken MIME', Buffer.from(text.replace(/\r\n--[^\r\n]+--\r\n$/, '\r\n'), 'latin1'), /closing boundary|cut short/],
      ['garbage', Buffer.from('From: bob@x.onion\r\nContent-Type: multipart/encrypted; protocol="application/pgp-encrypted"; boundary=x\r\n\r\n--x\r\n\x00\xff\r\n--x--\r\n', 'latin1'), /two parts|pgp-encrypted/]
    ]
    for (const [name, raw, problem] of cases) {
      const atCarol = name === 'for someone else'
      const who = atCarol ? carol : alice
      const id = await receive(who, raw, bob.address)
      const meta = await securityOf(who, id)
      assert.equal(meta.security?.encrypted, true, name)
      assert.equal(meta.security?.decrypted, undefined, name)
      assert.match(meta.security?.problem ?? '', problem, name)
      assert.deepEqual((await who.vault.get(id))!.raw, raw, `${name}: stored byte for byte`)
    }
  })

  test('mail that came while locked is read at the next unlock', async () => {
    const raw = (await bob.pgp.prepareOutgoing(message(bob.address, [alice.address], 'while locked'), [alice.address], 'encrypt')).copies![0]!.raw
    await alice.vault.lock()
    const { meta } = await alice.vault.add({ folder: 'Inbox', raw, from: bob.address, to: [alice.address] })
    await alice.vault.unlock({ passphrase: 'correct horse battery staple' })
    const end = Date.now() + 10_000
    let security
    while (Date.now() < end) {
      security = (await alice.vault.meta(meta.id))?.security
      if (security !== undefined) break
      await new Promise(resolve => setTimeout(resolve, 20))
    }
    assert.equal(security?.decrypted, true)
    assert.equal(security?.signature, 'good')
  })
})

describe('the owner\'s key', () => {
  test('regenerating keeps old mail readable; revoking gives a revoked public key and a new key; a backup imports back', async () => {
    const frank = await person(`frank@${onion('f')}`)
    const old = await frank.pgp.ownKey()
    // carol learns frank's key and writes to him encrypted.
    const hello = await frank.pgp.prepareOutgoing(message(frank.address, [carol.address], 'hi'), [carol.address], 'sign')
    await receive(carol, hello.copies![0]!.raw, frank.address)
    const toOld = (await carol.pgp.prepareOutgoing(message(carol.address, [frank.address], 'to the old key'), [frank.address], 'encrypt')).copies![0]!.raw

    const fresh = await frank.pgp.regenerateKey()
    assert.notEqual(fresh.fingerprint, old.fingerprint)
    const oldMail = await receive(frank, toOld, carol.address)
    assert.equal((await securityOf(frank, oldMail)).security?.decrypted, true, 'a retired key still opens old mail')

    const { revokedPublicKey, newKey } = await frank.pgp.revokeKey()
    const revoked = await openpgp.readKey({ armoredKey: revokedPublicKey })
    assert.equal(fingerprintOf(revoked), fresh.fingerprint)
    assert.equal(await revoked.isRevoked(), true)
    assert.notEqual(newKey.fingerprint, fresh.fingerprint)

    const backup = await frank.pgp.exportSecretKey('a long backup passphrase')
    assert.match(backup, /^-----BEGIN PGP PRIVATE KEY BLOCK-----/)
    await assert.rejects(frank.pgp.importSecretKey(backup, 'wrong passphrase'), /passphrase/)
    await frank.pgp.regenerateKey()
    const back = await frank.pgp.importSecretKey(backup, 'a long backup passphrase')
    assert.equal(back.fingerprint, newKey.fingerprint)
    await frank.pgp.stop(); await frank.vault.close()
  })
})

describe('outgoing header fields', () => {
  test('what names the machine or software is removed, the date is UTC and the Message-ID names the sender\'s domain', async () => {
    const raw = message(alice.address, [bob.address], 'headers', {
      extra: [
        'Received: from laptop.home (192.168.1.20) by mail', 'User-Agent: Mozilla Thunderbird 128', 'X-Mailer: Foo 1.0',
        'X-Originating-IP: [192.168.1.20]', 'Date: Sun, 22 Nov 2026 21:00:00 +0100', 'Message-ID: <123@laptop.home>'
      ]
    })
    const prepared = await alice.pgp.prepareOutgoing(raw, [bob.address], 'sign')
    for (const text of [prepared.stored.toString(), prepared.copies![0]!.raw.toString()]) {
      assert.doesNotMatch(text, /laptop|192\.168|Thunderbird|X-Mailer|Received:/i)
      assert.match(text, /^Date: Sun, 22 Nov 2026 20:00:00 \+0000$/m)
      assert.match(text, /^Message-ID: <[0-9a-f]{32}@example\.org>$/m)
    }
    assert.equal(prepared.messageId.endsWith('@example.org'), true)
  })
})
