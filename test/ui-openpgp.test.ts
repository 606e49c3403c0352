// OpenPGP in the web UI, over HTTP against real nodes: alice's node with its UI, bob's node
// making real signed and encrypted mail (its OpenPGP service), delivered straight into alice's
// vault (no Tor in between: ui-e2e covers delivery). Each security badge and warning appears on
// the right message; contacts are verified and a changed key accepted; a key is looked up over
// Tor (an HKP keyserver published as an onion service) and accepted; compose refuses to encrypt
// to a recipient without a key and keeps the draft; the owner's key is exported, replaced,
// imported back and revoked. No page and no log line ever holds a passphrase or secret key.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import * as openpgp from 'openpgp'
import { pino } from 'pino'
import { sharedTorNetwork, connectThroughTor, type PrivateTorNetwork } from './harness/tor-network.ts'
import { startTestNode, testSettings, waitFor, type TestNode } from './harness/nodes.ts'
import { TEST_PASSPHRASE } from './harness/vault.ts'
import { startKeyserver, type TestKeyserver } from './harness/keyserver.ts'
import { expandedSecretKey, generateOnionKey } from '../protocol/onion.ts'
import { formatAutocryptHeader } from '../protocol/autocrypt.ts'
import { pgpMimeKind, splitEntity } from '../protocol/pgp-mime.ts'
import { generateOwnKey, minimalPublicKey } from '../node/openpgp/keys.ts'
import { encryptMessage, signMessage } from '../node/openpgp/outgoing.ts'
import { ENCRYPT_FLAG } from '../node/openpgp/index.ts'
import { UiClient } from './harness/ui-client.ts'

const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
const grouped = (fingerprint: string): string => fingerprint.replace(/(.{4})/g, '$1 ').trim()
const short = (fingerprint: string): string => grouped(fingerprint.slice(-16))

function plainMessage (from: string, to: string, subject: string, body: string, extra: string[] = [], contentType = 'text/plain; charset=utf-8'): Buffer {
  return Buffer.from([`From: ${from}`, `To: ${to}`, `Subject: ${subject}`, `Date: ${new Date().toUTCString()}`, `Message-ID: <${subject.replace(/\W+/g, '-')}-${Date.now()}@test.example>`, ...extra, 'MIME-Version: 1.0', `Content-Type: ${contentType}`, '', body, ''].join('\r\n'))
}

async function person (address: string): Promise<{ address: string, priv: openpgp.PrivateKey, pub: openpgp.PublicKey }> {
  const record = await generateOwnKey({ addresses: [address] })
  const priv = await openpgp.readPrivateKey({ armoredKey: record.armoredPrivateKey })
  return { address, priv, pub: priv.toPublic() }
}

/** The list row of the message with this subject. */
function row (page: string, subject: string): string {
  const found = [...page.matchAll(/<tr class="(?:read|unread)">[\s\S]*?<\/tr>/g)].map(m => m[0]).find(r => r.includes(`<bdi>${subject}</bdi>`))
  assert.ok(found !== undefined, `a row for "${subject}"`)
  return found
}

describe('OpenPGP in the web UI', { timeout: 300_000 }, () => {
  let network: PrivateTorNetwork
  let alice: TestNode
  let bob: TestNode
  let ui: UiClient
  let keyserver: TestKeyserver
  const logLines: string[] = []
  const keyserverOnion = generateOnionKey()
  const backupPassphrase = `backup-pass-${Date.now().toString(36)}`
  const importPassphrase = `import-pass-${Date.now().toString(36)}`
  let exportedBackup = ''
  const ids: Record<string, string> = {}

  /** A message from bob's node (its OpenPGP: signed, or encrypted to alice), stored in alice's Inbox once read. */
  async function fromBob (subject: string, body: string, choice: 'sign' | 'encrypt', change?: (raw: Buffer) => Buffer, extra: string[] = []): Promise<string> {
    const raw = plainMessage(`Bob <${bob.identity.address}>`, alice.identity.address, subject, body, extra)
    const prepared = await bob.node.openpgp.prepareOutgoing(raw, [alice.identity.address], choice)
    assert.equal(prepared.encrypted, choice === 'encrypt')
    const copy = prepared.copies![0]!.raw
    return await deliver(change !== undefined ? change(copy) : copy, bob.identity.address)
  }

  async function deliver (raw: Buffer, from: string): Promise<string> {
    const stored = await alice.node.store.add({ folder: 'Inbox', raw, from, to: [alice.identity.address] })
    await waitFor('alice\'s node to read the message for OpenPGP', async () => (await alice.node.vault.meta(stored.meta.id))?.security !== undefined, 20_000, 50)
    return stored.meta.id
  }

  before(async () => {
    network = await sharedTorNetwork()
    keyserver = await startKeyserver()
    // Every log line of alice's node is kept: none may carry a passphrase or key material.
    const logger = pino({ level: 'debug', base: undefined }, { write (line: string) { logLines.push(line) } })
    ;[alice, bob] = await Promise.all([
      startTestNode('alice', testSettings(network, { openpgp: { wkd: false, keyservers: [`http://${keyserverOnion.address}.onion`] } }), logger),
      startTestNode('bob', testSettings(network))
    ])
    await waitFor('both nodes\' OpenPGP keys', () => alice.node.openpgp.ready() && bob.node.openpgp.ready(), 20_000, 50)
    ui = new UiClient(alice.node.ui!.url())
    assert.equal((await ui.signIn()).status, 303)
    // Bob learns alice's key from her signed mail (Autocrypt), as he would from any of her messages.
    const hers = await alice.node.openpgp.prepareOutgoing(plainMessage(`Alice <${alice.identity.address}>`, bob.identity.address, 'Hi Bob', 'Hello.'), [bob.identity.address], 'sign')
    const atBob = await bob.node.store.add({ folder: 'Inbox', raw: hers.copies![0]!.raw, from: alice.identity.address, to: [bob.identity.address] })
    await waitFor('bob\'s node to pin alice\'s key', async () => (await bob.node.vault.meta(atBob.meta.id))?.security !== undefined, 20_000, 50)
  })
  after(async () => {
    await Promise.allSettled([alice?.stop(), bob?.stop()])
    await Promise.allSettled([alice?.remove(), bob?.remove()])
    await keyserver?.stop()
    await network?.stop()
  })

  it('shows a signed message as signed by a key first seen, then pinned, with badges in the list', async () => {
    ids.first = await fromBob('First words', 'Hello Alice, this is signed.', 'sign')
    ids.second = await fromBob('Second words', 'Signed again.', 'sign')
    const bobKey = bob.node.openpgp
    const fingerprint = (await bobKey.ownKey()).fingerprint
    const first = await ui.get(`/message/${ids.first}`)
    assert.match(first.body, new RegExp(`Signed by ${short(fingerprint)} \\(first seen\\)`))
    assert.doesNotMatch(first.body, /sec-encrypted/)
    assert.match(first.body, /Hello Alice, this is signed\./)
    assert.match((await ui.get(`/message/${ids.second}`)).body, new RegExp(`Signed by ${short(fingerprint)} \\(pinned\\)`))
    const list = (await ui.get('/mail/Inbox')).body
    assert.match(row(list, 'First words'), /<span class="badge sec-signed"><span aria-hidden="true">✓<\/span> signed<\/span>/)
    assert.doesNotMatch(row(list, 'First words'), /encrypted/)
  })

  it('shows an encrypted message decrypted, with its protected subject and its attachment from the decrypted content', async () => {
    const boundary = 'b-secret'
    const body = ['--' + boundary, 'Content-Type: text/plain; charset=utf-8', '', 'The plans are attached.', '--' + boundary, 'Content-Type: text/plain; name="plan.txt"', 'Content-Disposition: attachment; filename="plan.txt"', '', 'step one: the orchard', '--' + boundary + '--'].join('\r\n')
    const raw = plainMessage(`Bob <${bob.identity.address}>`, alice.identity.address, 'Secret plans', body, [], `multipart/mixed; boundary="${boundary}"`)
    const prepared = await bob.node.openpgp.prepareOutgoing(raw, [alice.identity.address], 'encrypt')
    const copy = prepared.copies![0]!.raw
    assert.equal(pgpMimeKind(splitEntity(copy)), 'encrypted')
    assert.doesNotMatch(copy.toString(), /Secret plans|orchard/)
    ids.encrypted = await deliver(copy, bob.identity.address)
    const page = await ui.get(`/message/${ids.encrypted}`)
    assert.match(page.body, /<h1 id="subject"><bdi>Secret plans<\/bdi><\/h1>/, 'the protected subject, not "..."')
    assert.match(page.body, /<span class="badge sec-encrypted"><span aria-hidden="true"><svg[^]*?<\/svg><\/span> Encrypted<\/span>/)
    assert.match(page.body, /Signed by [0-9A-F ]{19} \(pinned\)/)
    assert.match(page.body, /The plans are attached\./)
    assert.match(page.body, /href="\/message\/\d+\/attachment\/0" download>plan\.txt</)
    const file = await fetch(`${ui.base}/message/${ids.encrypted}/attachment/0`, { headers: { cookie: ui.cookie } })
    assert.match(await file.text(), /^step one: the orchard\s*$/)
    const list = (await ui.get('/mail/Inbox')).body
    assert.match(row(list, 'Secret plans'), /<\/svg><\/span> encrypted<\/span> <span class="badge sec-signed">/)
    // Answering it: quoted from the decrypted text, Encrypt ticked.
    const answer = await ui.get(`/compose?reply=${ids.encrypted}&mode=reply`)
    assert.match(answer.body, /&gt; The plans are attached\./)
    assert.match(answer.body, /id="encrypt" name="encrypt" value="1" checked/)
  })

  it('warns of a bad signature when a signed byte was changed on the way', async () => {
    ids.bad = await fromBob('Flipped', 'Pay the original amount.', 'sign', raw => Buffer.from(raw.toString('latin1').replace('original amount', 'origiNal amount'), 'latin1'))
    const page = await ui.get(`/message/${ids.bad}`)
    assert.match(page.body, /<p class="notice error" role="alert">Bad signature — the message was changed or forged\./)
    assert.match(row((await ui.get('/mail/Inbox')).body, 'Flipped'), /sec-bad"><span aria-hidden="true">⚠<\/span> bad signature/)
  })

  it('warns when the signer\'s key changed, links to the contact, and the contact page shows both keys', async () => {
    const impostor = await generateOwnKey({ addresses: [bob.identity.address] })
    const key = await openpgp.readPrivateKey({ armoredKey: impostor.armoredPrivateKey })
    const autocrypt = `Autocrypt: ${formatAutocryptHeader({ addr: bob.identity.address, preferEncrypt: 'mutual', keydata: Buffer.from(await minimalPublicKey(key, bob.identity.address)) })}`
    const raw = await signMessage(plainMessage(`Bob <${bob.identity.address}>`, alice.identity.address, 'New phone', 'I have a new key.', [autocrypt]), { signingKey: key, protectedExtra: [] })
    ids.changed = await deliver(raw, bob.identity.address)
    assert.equal((await alice.node.vault.meta(ids.changed))?.security?.keyState, 'changed')
    const page = await ui.get(`/message/${ids.changed}`)
    assert.match(page.body, /role="alert">Signer's key changed — this is not the key you had for this sender\./)
    const link = /href="(\/contacts#contact-[^"]+)"/.exec(page.body)?.[1]
    assert.ok(link !== undefined)
    assert.match(row((await ui.get('/mail/Inbox')).body, 'New phone'), /⚠<\/span> signer&#39;s key changed/)
    const contacts = await ui.get('/contacts')
    const anchor = link.split('#')[1]!
    const entry = new RegExp(`<article class="contact changed" id="${anchor}"[\\s\\S]*?</article>`).exec(contacts.body)?.[0] ?? ''
    const old = (await bob.node.openpgp.ownKey()).fingerprint
    assert.match(entry, new RegExp(`Old key \\(in use\\)</dt><dd><span class="fingerprint">${grouped(old)}</span>`))
    assert.match(entry, new RegExp(`New key</dt><dd><span class="fingerprint">${grouped(key.getFingerprint().toUpperCase())}</span>`))
    assert.match(entry, /Accept the new key[\s\S]*Keep the old key/)
    ids.impostorFingerprint = key.getFingerprint().toUpperCase()
    // The main navigation leads here.
    assert.match(contacts.body, /<a href="\/contacts" aria-current="page">Contacts<\/a>/)
  })

  it('says when a message is signed by an unknown key, or encrypted to someone else', async () => {
    const carol = await person('carol@example.org')
    ids.unknown = await deliver(await signMessage(plainMessage('carol@example.org', alice.identity.address, 'From Carol', 'Who am I?'), { signingKey: carol.priv, protectedExtra: [] }), carol.address)
    const unknown = await ui.get(`/message/${ids.unknown}`)
    assert.match(unknown.body, /Signed by an unknown key/)
    assert.match(row((await ui.get('/mail/Inbox')).body, 'From Carol'), /unknown signer/)

    const [dave, erin] = await Promise.all([person('dave@example.org'), person('erin@example.org')])
    const [copy] = await encryptMessage(plainMessage(dave.address, erin.address, 'Not for you', 'For Erin only.'), { signingKey: dave.priv, protectedExtra: [], ownKey: dave.pub, visible: [{ address: erin.address, key: erin.pub }], blind: [], gossip: [] })
    ids.elsewhere = await deliver(copy!.raw, dave.address)
    const elsewhere = await ui.get(`/message/${ids.elsewhere}`)
    assert.match(elsewhere.body, /<p class="notice error" role="alert">Could not decrypt: This message is encrypted to someone else&#39;s key/)
    assert.doesNotMatch(elsewhere.body, /For Erin only/)
    assert.match(row((await ui.get('/mail/Inbox')).body, '...'), /⚠<\/span> could not decrypt/)
  })

  it('marks a contact verified only with the right fingerprint, then accepts the changed key', async () => {
    const address = bob.identity.address
    const old = (await bob.node.openpgp.ownKey()).fingerprint
    await ui.get('/contacts')
    const wrong = await ui.post('/contacts/verify', { address, fingerprint: grouped(ids.impostorFingerprint!) })
    assert.equal(wrong.status, 400)
    assert.match(wrong.body, /That is not the fingerprint of the key pinned for/)
    assert.equal(alice.node.openpgp.peer(address)?.pinned?.verified, false)
    const right = await ui.post('/contacts/verify', { address, fingerprint: grouped(old).toLowerCase() })
    assert.equal(right.status, 303)
    assert.equal(alice.node.openpgp.peer(address)?.pinned?.verified, true)
    assert.match((await ui.get('/contacts')).body, /<strong class="state-delivered">Yes<\/strong>: you compared fingerprints/)
    // New mail signed by the verified key says so.
    const later = await fromBob('After verifying', 'Still me.', 'sign')
    assert.match((await ui.get(`/message/${later}`)).body, /Signed by [0-9A-F ]{19} \(verified\)/)

    // Keeping the old key changes nothing but says so; accepting makes the new key the one in use.
    assert.equal((await ui.post('/contacts/keep', { address, fingerprint: ids.impostorFingerprint! })).status, 303)
    assert.match((await ui.get('/contacts')).body, /You chose to keep the old key on/)
    assert.equal(alice.node.openpgp.peer(address)?.pinned?.fingerprint, old)
    assert.equal((await ui.post('/contacts/accept', { address, fingerprint: 'F'.repeat(40) })).status, 400)
    assert.equal((await ui.post('/contacts/accept', { address, fingerprint: ids.impostorFingerprint! })).status, 303)
    const peer = alice.node.openpgp.peer(address)
    assert.equal(peer?.pinned?.fingerprint, ids.impostorFingerprint)
    assert.equal(peer?.changed, undefined)
    assert.doesNotMatch((await ui.get('/contacts')).body, /Their key changed/)
    // Put bob's real key back for what follows (pasted, as the owner would).
    assert.equal((await ui.post('/contacts/import', { armored: (await bob.node.openpgp.ownKey()).armoredPublicKey, address })).status, 303)
    assert.equal(alice.node.openpgp.peer(address)?.pinned?.fingerprint, old)
  })

  it('shows each recipient\'s key while writing, and refuses to encrypt to someone without a key, keeping the draft', async () => {
    await ui.get('/compose')
    const routes = await ui.post('/compose/routes', { to: `${bob.identity.address}, frank@example.org`, cc: '', bcc: '', encryptTouched: '0' }, { headers: { 'hx-request': 'true' } })
    assert.match(routes.body, /frank@example\.org<\/span>: [^<]*— <span class="key key-none">no key — look it up<\/span> <button type="button" hx-post="\/contacts\/lookup"/)
    assert.match(routes.body, /<span class="key key-ok">not encrypted: key pinned/, 'frank has no key, so the box is not ticked by itself')
    assert.match(routes.body, /id="encrypt-box" hx-swap-oob="true"><label class="inline-label"><input type="checkbox" id="encrypt" name="encrypt" value="1" aria-describedby/)
    const toBob = await ui.post('/compose/routes', { to: bob.identity.address, cc: '', bcc: '', encryptTouched: '0' }, { headers: { 'hx-request': 'true' } })
    assert.match(toBob.body, /encrypted: key pinned/)
    assert.match(toBob.body, /id="encrypt" name="encrypt" value="1" checked/, 'bob has a key and wants encryption: ticked by itself')
    // An ordinary address whose signed mail named an onion mailbox goes there over Tor.
    const ivan = await generateOwnKey({ addresses: ['ivan@example.net'] })
    const ivanKey = await openpgp.readPrivateKey({ armoredKey: ivan.armoredPrivateKey })
    const ivanOnion = `ivan@${generateOnionKey().address}.onion`
    const ivanAutocrypt = `Autocrypt: ${formatAutocryptHeader({ addr: 'ivan@example.net', preferEncrypt: 'mutual', keydata: Buffer.from(await minimalPublicKey(ivanKey, 'ivan@example.net')) })}`
    await deliver(await signMessage(plainMessage('ivan@example.net', alice.identity.address, 'My route', 'Write to my node.', [ivanAutocrypt]), { signingKey: ivanKey, protectedExtra: [`SMTorP-Route: ${ivanOnion}`] }), 'ivan@example.net')
    const toIvan = await ui.post('/compose/routes', { to: 'ivan@example.net', cc: '', bcc: '', encryptTouched: '0' }, { headers: { 'hx-request': 'true' } })
    assert.match(toIvan.body, new RegExp(`class="route-onion"><span class="onion">ivan@example\\.net</span>: directly over Tor \\(learned route: their signed mail named ${escape(ivanOnion)}\\) — <span class="key key-ok">encrypted: key pinned`))
    // The owner's own choice is kept: no out-of-band box once touched.
    const touched = await ui.post('/compose/routes', { to: bob.identity.address, cc: '', bcc: '', encryptTouched: '1' }, { headers: { 'hx-request': 'true' } })
    assert.doesNotMatch(touched.body, /id="encrypt-box"/)
    assert.match(touched.body, /not encrypted: key pinned/)

    const refused = await ui.postMultipart('/compose', { to: `${bob.identity.address}, frank@example.org`, cc: '', bcc: '', subject: 'For both', body: 'Words kept', encryptShown: '1', encryptTouched: '1', encrypt: '1', action: 'send' })
    assert.equal(refused.status, 400)
    assert.match(refused.body, /Not sent: The message cannot be encrypted: there is no key for frank@example\.org\.[^<]*It is saved in Drafts\./)
    assert.match(refused.body, /id="encrypt" name="encrypt" value="1" checked/)
    const draftId = /name="draftId" value="(\d+)"/.exec(refused.body)?.[1]
    assert.ok(draftId !== undefined)
    assert.match((await alice.node.vault.get(draftId))!.raw.toString(), /Words kept/)
    assert.equal(alice.node.queue.list().length, 0, 'nothing was queued')

    // To bob alone it goes, encrypted: the Outbox holds the readable message, flagged.
    const sent = await ui.postMultipart('/compose', { draftId, to: bob.identity.address, cc: '', bcc: '', subject: 'For both', body: 'Words kept', encryptShown: '1', encryptTouched: '1', encrypt: '1', action: 'send' })
    assert.equal(sent.status, 303, sent.body.slice(0, 500))
    const [outgoing] = (await alice.node.vault.page('Outbox', { limit: 1 })).messages
    assert.ok(outgoing!.flags.includes(ENCRYPT_FLAG))
    assert.match((await alice.node.vault.get(outgoing!.id))!.raw.toString(), /^Autocrypt: addr=/m)
    const entry = alice.node.queue.list().find(e => e.storeId === outgoing!.id)
    assert.ok(entry !== undefined && entry.recipients.every(r => r.copy === 0), 'bob is sent the encrypted copy')
    await alice.node.queue.cancel(entry.id)
  })

  it('looks a key up over Tor from the compose page, and uses it only once accepted', async () => {
    const grace = await person('grace@example.org')
    keyserver.serve(grace.address, grace.pub.armor())
    await alice.node.tor.waitForBootstrap(90_000)
    const onion = await alice.node.tor.publishOnion({ expandedSecretKey: expandedSecretKey(keyserverOnion.seed), virtualPort: 80, target: { host: '127.0.0.1', port: keyserver.port } })
    await alice.node.tor.waitForDescriptorUpload(onion, 60_000)
    const probe = await connectThroughTor(alice.node.tor.socksEndpoint().port, `${onion}.onion`, 80, 30_000)
    probe.socket.destroy()

    await ui.get('/compose')
    const found = await ui.post('/contacts/lookup', { address: grace.address }, { headers: { 'hx-request': 'true' } })
    assert.equal(found.status, 200)
    assert.match(found.body, new RegExp(`<span class="fingerprint">${grouped(grace.pub.getFingerprint().toUpperCase())}</span>`))
    assert.match(found.body, /&lt;grace@example\.org&gt;/)
    assert.equal(alice.node.openpgp.peer(grace.address), undefined, 'found is not accepted')
    const accepted = await ui.post('/contacts/accept-found', { address: grace.address, fingerprint: grace.pub.getFingerprint().toUpperCase() }, { headers: { 'hx-request': 'true' } })
    assert.equal(accepted.status, 200)
    assert.equal(accepted.headers.get('hx-trigger-after-settle'), 'keys-changed')
    assert.equal(alice.node.openpgp.peer(grace.address)?.pinned?.fingerprint, grace.pub.getFingerprint().toUpperCase())
    const routes = await ui.post('/compose/routes', { to: grace.address, cc: '', bcc: '', encryptTouched: '1', encrypt: '1' }, { headers: { 'hx-request': 'true' } })
    assert.match(routes.body, /encrypted: key pinned/)
    // A fingerprint that no lookup showed is not accepted.
    assert.equal((await ui.post('/contacts/accept-found', { address: 'heidi@example.org', fingerprint: 'A'.repeat(40) })).status, 400)
  })

  it('downloads the public key, exports the secret key under a passphrase, and imports it back', async () => {
    const own = await alice.node.openpgp.ownKey()
    const settings = await ui.get('/settings')
    assert.match(settings.body, new RegExp(`id="own-fingerprint">${grouped(own.fingerprint)}<`))
    const pub = await fetch(`${ui.base}/settings/openpgp/public-key`, { headers: { cookie: ui.cookie } })
    assert.match(pub.headers.get('content-disposition') ?? '', /^attachment; filename="[0-9A-F]{40}\.asc"$/)
    assert.match(await pub.text(), /^-----BEGIN PGP PUBLIC KEY BLOCK-----/)

    const tooShort = await ui.post('/settings/openpgp/export', { passphrase: 'short', repeat: 'short' })
    assert.equal(tooShort.status, 400)
    assert.match(tooShort.body, /at least 8 characters/)
    const exported = await ui.post('/settings/openpgp/export', { passphrase: backupPassphrase, repeat: backupPassphrase })
    assert.equal(exported.status, 200)
    assert.match(exported.headers.get('content-disposition') ?? '', /^attachment; filename="[0-9A-F]{40}-secret-backup\.asc"$/)
    assert.doesNotMatch(exported.headers.get('content-type') ?? '', /html/)
    exportedBackup = exported.body
    assert.match(exportedBackup, /^-----BEGIN PGP PRIVATE KEY BLOCK-----/)
    const locked = await openpgp.readPrivateKey({ armoredKey: exportedBackup })
    assert.equal(locked.isDecrypted(), false, 'the backup is locked with the passphrase')

    assert.equal((await ui.post('/settings/openpgp/regenerate', {})).status, 400, 'not without the box ticked')
    assert.equal((await ui.post('/settings/openpgp/regenerate', { confirm: '1' })).status, 303)
    const fresh = await alice.node.openpgp.ownKey()
    assert.notEqual(fresh.fingerprint, own.fingerprint)
    const wrong = await ui.post('/settings/openpgp/import', { armored: exportedBackup, passphrase: importPassphrase })
    assert.equal(wrong.status, 400)
    assert.match(wrong.body, /The passphrase does not open this key\./)
    assert.equal((await ui.post('/settings/openpgp/import', { armored: exportedBackup, passphrase: backupPassphrase })).status, 303)
    assert.equal((await alice.node.openpgp.ownKey()).fingerprint, own.fingerprint)
    assert.match((await ui.get('/settings')).body, new RegExp(`Your key is now ${grouped(own.fingerprint)}\\.`))
    // Mail encrypted to the key in between is still read: replaced keys are kept.
    assert.match((await ui.get(`/message/${ids.encrypted}`)).body, /The plans are attached\./)
  })

  it('revokes the key only when confirmed, and offers the revoked key to publish', async () => {
    const before = (await alice.node.openpgp.ownKey()).fingerprint
    assert.equal((await ui.post('/settings/openpgp/revoke', {})).status, 400)
    const revoked = await ui.post('/settings/openpgp/revoke', { confirm: '1' })
    assert.equal(revoked.status, 200)
    assert.match(revoked.body, /<a href="\/settings\/openpgp\/revoked-key" download>Download the revoked public key<\/a>/)
    const file = await fetch(`${ui.base}/settings/openpgp/revoked-key`, { headers: { cookie: ui.cookie } })
    assert.match(file.headers.get('content-disposition') ?? '', /^attachment;/)
    const key = await openpgp.readKey({ armoredKey: await file.text() })
    assert.equal(key.getFingerprint().toUpperCase(), before)
    assert.equal(await key.isRevoked(), true)
    assert.notEqual((await alice.node.openpgp.ownKey()).fingerprint, before)
  })

  it('never puts a passphrase or secret key material in a page or a log line', () => {
    assert.ok(ui.pages.length > 20)
    const secretLines = exportedBackup.split('\n').filter(l => /^[A-Za-z0-9+/=]{40,}$/.test(l))
    assert.ok(secretLines.length > 3)
    for (const text of [...ui.pages, ...logLines]) {
      assert.doesNotMatch(text, /PRIVATE KEY BLOCK/)
      assert.ok(!text.includes(backupPassphrase), 'the backup passphrase')
      assert.ok(!text.includes(importPassphrase), 'the wrong import passphrase')
      assert.ok(!text.includes(TEST_PASSPHRASE), 'the vault passphrase')
      for (const line of secretLines) assert.ok(!text.includes(line), 'a line of the secret key backup')
    }
    assert.ok(logLines.some(l => /exported a backup of their OpenPGP secret key/.test(l)), 'the export itself is logged, without the key')
    assert.match(ui.pages.join('\n'), new RegExp(escape(alice.identity.address)))
  })
})
