// A credential per mail client on the submission port, driven by nodemailer as a real client:
// a new credential logs in and sends, a revoked one is refused, ten wrong passwords in a row
// disable one (then even the right password is refused), the initial password keeps working,
// and the list survives a save and load. The queue is not started, so nothing leaves.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import nodemailer from 'nodemailer'
import { submission, CredentialStore, MAX_FAILED_LOGINS, type Submission } from '../node/submission/index.ts'
import { slugOf } from '../node/submission/credentials.ts'
import { outboundQueue, type OutboundQueue } from '../node/queue/index.ts'
import type { MailStore } from '../node/store/index.ts'
import { openTestVault, testQueueCipher } from './harness/vault.ts'
import { ScriptedDelivery } from './harness/scripted-delivery.ts'
import { silentLogger } from '../node/log/index.ts'
import { generateOnionKey } from '../protocol/onion.ts'
import { RawSmtp } from './harness/raw-smtp.ts'

const me = generateOnionKey()
const peer = generateOnionKey()
const address = `gina@${me.address}.onion`
const friend = `hal@${peer.address}.onion`
const initialPassword = 'correct horse battery staple'

/** A vault record in memory: what the node's load/save would keep sealed in the vault. */
function memoryRecord (): { load: () => Promise<Buffer | undefined>, save: (b: Buffer) => Promise<void>, saves: () => number, bytes: () => Buffer | undefined } {
  let bytes: Buffer | undefined
  let saves = 0
  return {
    load: async () => bytes,
    save: async (b) => { bytes = Buffer.from(b); saves++ },
    saves: () => saves,
    bytes: () => bytes
  }
}

let dir: string
let store: MailStore
let queue: OutboundQueue
let server: Submission
let credentials: CredentialStore

/** Log in and send one message with nodemailer; the server's reply, or the error's. */
async function send (user: string, pass: string): Promise<{ ok: boolean, code?: number, response: string }> {
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port: server.port(), secure: false, ignoreTLS: true, auth: { user, pass } })
  try {
    const info = await transport.sendMail({ from: address, to: friend, subject: 'from nodemailer', text: 'hello' })
    return { ok: true, response: info.response }
  } catch (err) {
    const e = err as { responseCode?: number, response?: string, message: string }
    return { ok: false, ...(e.responseCode !== undefined ? { code: e.responseCode } : {}), response: e.response ?? e.message }
  } finally {
    transport.close()
  }
}

describe('submission credentials per mail client', () => {
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'smtorp-credentials-'))
    store = (await openTestVault(join(dir, 'vault'))).vault
    queue = outboundQueue({ path: join(dir, 'queue'), domain: `${me.address}.onion`, retry: { delaysMs: [1000], delayedNoticeAfterAttempts: 1 }, concurrency: 1, hasRelay: false }, { logger: silentLogger(), store, delivery: new ScriptedDelivery(), cipher: testQueueCipher() })
    const record = memoryRecord()
    credentials = new CredentialStore({}, { logger: silentLogger(), load: record.load, save: record.save })
    await credentials.load()
    server = submission({ address, password: initialPassword, port: 0, requireAuth: true, maxMessageBytes: 100_000 }, { logger: silentLogger(), store, queue, credentials })
    await server.start()
  })
  after(async () => {
    await server.stop()
    await queue.stop()
    await store.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('a new credential logs in and sends', async () => {
    const { credential, password } = await credentials.add('  Gina\'s Phone ')
    assert.equal(credential.name, 'Gina\'s Phone')
    assert.match(credential.username, /^ginas-phone-[a-z2-7]{4}$/)
    assert.match(password, /^[a-z2-7]{20}$/)
    const sent = await send(credential.username, password)
    assert.ok(sent.ok, sent.response)
    assert.match(sent.response, /^250 2\.0\.0 Queued as /)
    assert.equal(queue.list().length, 1)
    const listed = credentials.list().find(c => c.id === credential.id)!
    assert.ok(listed.lastUsedAt !== undefined && listed.lastUsedAt >= credential.createdAt)
    assert.equal(JSON.stringify(credentials.list()).includes(password), false)
  })

  it('a revoked credential is refused', async () => {
    const { credential, password } = await credentials.add('laptop')
    assert.ok((await send(credential.username, password)).ok)
    assert.equal(await credentials.revoke(credential.id), true)
    const refused = await send(credential.username, password)
    assert.equal(refused.code, 535)
    assert.match(refused.response, /5\.7\.8 Authentication credentials invalid/)
    assert.equal(credentials.list().some(c => c.id === credential.id), false)
    assert.equal(await credentials.revoke(credential.id), false)
  })

  it(`${MAX_FAILED_LOGINS} wrong passwords in a row disable a credential; then even the right one is refused`, async () => {
    const { credential, password } = await credentials.add('tablet')
    for (let i = 1; i < MAX_FAILED_LOGINS; i++) {
      const wrong = await send(credential.username, `wrong-${i}`)
      assert.equal(wrong.code, 535)
      assert.match(wrong.response, /Authentication credentials invalid/)
    }
    assert.equal(credentials.list().find(c => c.id === credential.id)!.failures, MAX_FAILED_LOGINS - 1)
    const last = await send(credential.username, 'wrong-again')
    assert.equal(last.code, 535)
    assert.match(last.response, /disabled after too many failed logins/)
    const right = await send(credential.username, password)
    assert.equal(right.ok, false)
    assert.equal(right.code, 535)
    assert.match(right.response, /5\.7\.8 This credential is disabled .* web UI/)
    assert.equal(credentials.list().find(c => c.id === credential.id)!.disabled, true)
    // The owner re-enables it: the right password works again.
    assert.equal(await credentials.enable(credential.id), true)
    assert.ok((await send(credential.username, password)).ok)
  })

  it('a success resets the count of wrong passwords', async () => {
    const { credential, password } = await credentials.add('watch')
    for (let i = 0; i < MAX_FAILED_LOGINS - 1; i++) assert.equal(credentials.verify(credential.username, 'nope'), 'wrong')
    assert.equal(credentials.verify(credential.username, password), 'ok')
    assert.equal(credentials.list().find(c => c.id === credential.id)!.failures, 0)
    assert.equal(credentials.verify(credential.username, 'nope'), 'wrong')
  })

  it('the initial password still works, as the local part or the whole address, and a device credential is not the owner\'s', async () => {
    assert.ok((await send('gina', initialPassword)).ok)
    assert.ok((await send(address, initialPassword)).ok)
    assert.equal((await send('gina', 'wrong')).code, 535)
    const { password } = await credentials.add('desktop')
    assert.equal((await send('gina', password)).code, 535) // a device's password is for its own user name
  })

  it('an unknown user name is refused, and nothing is counted for it', async () => {
    assert.equal((await send('nobody-abcd', 'whatever')).code, 535)
    assert.equal(credentials.verify('nobody-abcd', 'whatever'), 'wrong')
  })

  it('before the credentials are loaded (vault never unlocked), a device login gets a temporary failure', async () => {
    const unloaded = new CredentialStore({}, { logger: silentLogger(), load: async () => undefined, save: async () => {} })
    const other = submission({ address, password: initialPassword, port: 0, requireAuth: true, maxMessageBytes: 100_000 }, { logger: silentLogger(), store, queue, credentials: unloaded })
    await other.start()
    try {
      const smtp = await RawSmtp.connect(other.port())
      await smtp.reply()
      await smtp.command('EHLO client')
      const reply = await smtp.command(`AUTH PLAIN ${Buffer.from('\0phone-abcd\0secret').toString('base64')}`)
      assert.equal(reply.code, 454)
      assert.match(reply.text, /^4\.7\.0 /)
      smtp.close()
      assert.throws(() => unloaded.list(), /not available until the vault is unlocked/)
    } finally {
      await other.stop()
    }
  })
})

describe('credential store', () => {
  it('keeps credentials through a save and a load: digests only, failures, disabled, last use', async () => {
    const record = memoryRecord()
    const first = new CredentialStore({ lazySaveMs: 10 }, { logger: silentLogger(), ...record })
    await first.load()
    assert.deepEqual(first.list(), [])
    const phone = await first.add('Phone')
    const laptop = await first.add('Laptop')
    const gone = await first.add('Old tablet')
    assert.equal(record.saves(), 3) // each add is on disk before it resolves
    await first.revoke(gone.credential.id)
    assert.equal(record.saves(), 4)
    assert.equal(first.verify(phone.credential.username, phone.password), 'ok')
    assert.equal(first.verify(laptop.credential.username, 'wrong'), 'wrong')
    assert.equal(first.verify(laptop.credential.username, 'wrong'), 'wrong')
    await first.flush()
    const text = record.bytes()!.toString('utf8')
    for (const secret of [phone.password, laptop.password]) assert.equal(text.includes(secret), false)

    const second = new CredentialStore({}, { logger: silentLogger(), ...record })
    await second.load()
    assert.deepEqual(second.list(), first.list())
    assert.equal(second.list().length, 2)
    assert.equal(second.list().find(c => c.name === 'Laptop')!.failures, 2)
    assert.ok(second.list().find(c => c.name === 'Phone')!.lastUsedAt !== undefined)
    assert.equal(second.verify(phone.credential.username, phone.password), 'ok')
    assert.equal(second.verify(laptop.credential.username, laptop.password), 'ok')
    assert.equal(second.verify(gone.credential.username, gone.password), 'wrong')
  })

  it('saves a disabled credential at once, and it stays disabled after a load', async () => {
    const record = memoryRecord()
    const first = new CredentialStore({ maxFailures: 3, lazySaveMs: 60_000 }, { logger: silentLogger(), ...record })
    await first.load()
    const { credential, password } = await first.add('phone')
    assert.equal(first.verify(credential.username, 'a'), 'wrong')
    assert.equal(first.verify(credential.username, 'b'), 'wrong')
    assert.equal(first.verify(credential.username, 'c'), 'disabled')
    await new Promise(resolve => setImmediate(resolve))
    const second = new CredentialStore({ maxFailures: 3 }, { logger: silentLogger(), ...record })
    await second.load()
    assert.equal(second.list()[0]!.disabled, true)
    assert.equal(second.verify(credential.username, password), 'disabled')
  })

  it('refuses empty and overlong device names, and makes user names from any name', async () => {
    const store = new CredentialStore({}, { logger: silentLogger(), load: async () => undefined, save: async () => {} })
    await store.load()
    await assert.rejects(store.add('   '), /1 to 64 characters/)
    await assert.rejects(store.add('x'.repeat(65)), /1 to 64 characters/)
    assert.equal(slugOf('Éloïse’s iPhone 15 Pro Max!!'), 'eloises-iphone-15-pr') // at most 20 characters
    assert.equal(slugOf('☃☃☃'), 'device')
    assert.match((await store.add('☃')).credential.username, /^device-[a-z2-7]{4}$/)
  })

  it('an unreadable record is an error, not an empty list that would be saved over it', async () => {
    const store = new CredentialStore({}, { logger: silentLogger(), load: async () => Buffer.from('not json'), save: async () => { throw new Error('must not save') } })
    await assert.rejects(store.load(), /cannot be read/)
  })
})
