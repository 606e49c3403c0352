// The submission port as ordinary mail clients use it: Python's smtplib (a real, independent
// SMTP client), plus the refusals a client must get. Accepted mail is in the Outbox and the
// queue when the 250 comes; the queue is not started here, so nothing leaves.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { submission, type Submission } from '../node/submission/index.ts'
import { outboundQueue, type OutboundQueue } from '../node/queue/index.ts'
import type { MailStore } from '../node/store/index.ts'
import { openTestVault, testQueueCipher } from './harness/vault.ts'
import { delivery } from '../node/delivery/index.ts'
import { silentLogger } from '../node/log/index.ts'
import { generateOnionKey } from '../protocol/onion.ts'
import { RawSmtp } from './harness/raw-smtp.ts'

const run = promisify(execFile)
const me = generateOnionKey()
const peer = generateOnionKey()
const address = `gina@${me.address}.onion`
const friend = `hal@${peer.address}.onion`
const password = 'correct horse battery staple'

// One key for the whole file: a queue reopened after a restart must read what it wrote.
const cipher = testQueueCipher()
let dir: string
let store: MailStore
let queue: OutboundQueue
let server: Submission

/** Send with Python's smtplib; returns what it printed, or throws with its error. */
async function python (script: string): Promise<string> {
  const { stdout } = await run('python3', ['-c', script], { timeout: 20_000 })
  return stdout.trim()
}

const smtplib = (user: string, pass: string, from: string, to: string): string => `
import smtplib, sys
from email.message import EmailMessage
m = EmailMessage()
m['From'] = '${from}'
m['To'] = '${to}'
m['Subject'] = 'from smtplib'
m.set_content('Hello from Python, caf\\u00e9.')
try:
    with smtplib.SMTP('127.0.0.1', ${'${PORT}'}, timeout=10) as s:
        s.login('${user}', '${pass}')
        refused = s.send_message(m)
        print('sent', len(refused))
except smtplib.SMTPResponseException as e:
    print('error', e.smtp_code, e.smtp_error.decode())
except smtplib.SMTPRecipientsRefused as e:
    print('refused', list(e.recipients.values())[0][0])
`

describe('submission port', () => {
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'smtorp-submission-'))
    store = (await openTestVault(join(dir, 'vault'))).vault
    const unused = delivery({ onionKey: me, idleConnectionMs: 1000 }, { logger: silentLogger(), socksEndpoint: () => ({ host: '127.0.0.1', port: 9 }) })
    queue = outboundQueue({ path: join(dir, 'queue'), domain: `${me.address}.onion`, retry: { delaysMs: [1000], delayedNoticeAfterAttempts: 1 }, concurrency: 1, hasRelay: false }, { logger: silentLogger(), store, delivery: unused, cipher })
    server = submission({ address, password, port: 0, requireAuth: true, maxMessageBytes: 100_000 }, { logger: silentLogger(), store, queue })
    await server.start()
  })
  after(async () => {
    await server.stop()
    await queue.stop()
    await store.close()
    await rm(dir, { recursive: true, force: true })
  })

  const script = (s: string): string => s.replace('${PORT}', String(server.port()))

  it('takes mail from Python\'s smtplib after login, into the Outbox and the queue, with Message-ID and Date added', async () => {
    assert.equal(await python(script(smtplib('gina', password, address, friend))), 'sent 0')
    const outbox = await store.list('Outbox')
    assert.equal(outbox.length, 1)
    const stored = (await store.get(outbox[0]!.id))!
    assert.match(stored.raw.toString(), /^Message-ID: <[0-9a-f]{32}@/m)
    assert.match(stored.raw.toString(), /^Date: /m)
    assert.match(stored.raw.toString(), /Hello from Python/)
    const entries = queue.list()
    assert.equal(entries.length, 1)
    assert.equal(entries[0]!.storeId, outbox[0]!.id)
    assert.deepEqual(entries[0]!.recipients.map(r => [r.address, r.state]), [[friend, 'pending']])
  })

  it('refuses a wrong password with 535', async () => {
    assert.equal(await python(script(smtplib('gina', 'wrong', address, friend))), 'error 535 5.7.8 Authentication credentials invalid')
  })

  it('refuses sending as anyone else with 553', async () => {
    assert.match(await python(script(smtplib('gina', password, `mallory@${me.address}.onion`, friend))), /^error 553 5\.7\.1 You may send only as/)
  })

  it('refuses mail without login, and bad recipients', async () => {
    const smtp = await RawSmtp.connect(server.port())
    await smtp.reply()
    await smtp.command('EHLO client')
    assert.equal((await smtp.command(`MAIL FROM:<${address}>`)).code, 530)
    const token = Buffer.from(`\0gina\0${password}`).toString('base64')
    assert.equal((await smtp.command(`AUTH PLAIN ${token}`)).code, 235)
    assert.equal((await smtp.command(`MAIL FROM:<${address}>`)).code, 250)
    // (A source route such as <@a.org:x@b.onion> is dropped by smtp-server, as RFC 5321 4.1.1.3
    // says to; the mail goes to x@b.onion and never to a.org.)
    for (const bad of ['x@[127.0.0.1]', 'x@localhost', 'x%y@example.org', 'a!x@example.org', 'x@badonion.onion', 'x@10.0.0.1']) {
      assert.equal((await smtp.command(`RCPT TO:<${bad}>`)).code, 553, bad)
    }
    smtp.close()
  })

  it('refuses more than 100 recipients in one message', async () => {
    const smtp = await RawSmtp.connect(server.port())
    await smtp.reply()
    await smtp.command('EHLO client')
    await smtp.command(`AUTH PLAIN ${Buffer.from(`\0gina\0${password}`).toString('base64')}`)
    await smtp.command(`MAIL FROM:<${address}>`)
    const codes: number[] = []
    for (let i = 0; i < 101; i++) codes.push((await smtp.command(`RCPT TO:<r${i}@example.org>`)).code)
    assert.equal(codes.filter(c => c === 250).length, 100)
    assert.equal(codes[100], 452)
    smtp.close()
  })
})

// node.ts wires `prepare` to OpenPGP (sign, or encrypt, on a worker). A message whose copies
// cannot be made is refused with a 4xx, and nothing of it is kept: not in the Outbox (a restart
// would queue it, and the client sends it again), not in the queue.
describe('submission port with copies made by prepare', () => {
  let copyDir: string
  let copyStore: MailStore
  let copyQueue: OutboundQueue
  let copyServer: Submission
  let signing = 0

  before(async () => {
    copyDir = await mkdtemp(join(tmpdir(), 'smtorp-submission-copies-'))
    copyStore = (await openTestVault(join(copyDir, 'vault'))).vault
    const unused = delivery({ onionKey: me, idleConnectionMs: 1000 }, { logger: silentLogger(), socksEndpoint: () => ({ host: '127.0.0.1', port: 9 }) })
    copyQueue = outboundQueue({ path: join(copyDir, 'queue'), domain: `${me.address}.onion`, retry: { delaysMs: [1000], delayedNoticeAfterAttempts: 1 }, concurrency: 1, hasRelay: false }, { logger: silentLogger(), store: copyStore, delivery: unused, cipher })
    copyServer = submission({ address, password, port: 0, requireAuth: true, maxMessageBytes: 100_000 }, {
      logger: silentLogger(),
      store: copyStore,
      queue: copyQueue,
      prepare: async (raw, to) => {
        if (raw.includes('Subject: break the signer')) throw new Error('the signing worker died')
        return { stored: raw, messageId: `m${++signing}@${me.address}.onion`, copies: [{ to, raw: Buffer.concat([Buffer.from('X-Signed: yes\r\n'), raw]) }] }
      }
    })
    await copyServer.start()
  })
  after(async () => {
    await copyServer.stop()
    await copyQueue.stop()
    await copyStore.close()
    await rm(copyDir, { recursive: true, force: true })
  })

  async function send (subject: string): Promise<number> {
    const smtp = await RawSmtp.connect(copyServer.port())
    await smtp.reply()
    await smtp.command('EHLO client')
    await smtp.command(`AUTH PLAIN ${Buffer.from(`\0gina\0${password}`).toString('base64')}`)
    await smtp.command(`MAIL FROM:<${address}>`)
    await smtp.command(`RCPT TO:<${friend}>`)
    await smtp.command('DATA')
    const answer = await smtp.command(`From: <${address}>\r\nTo: <${friend}>\r\nSubject: ${subject}\r\n\r\nbody\r\n.`)
    smtp.close()
    return answer.code
  }

  it('keeps what the sender wrote in the Outbox and queues the copy for the recipient', async () => {
    assert.equal(await send('a signed one'), 250)
    const outbox = await copyStore.list('Outbox')
    assert.equal(outbox.length, 1)
    assert.doesNotMatch((await copyStore.get(outbox[0]!.id))!.raw.toString(), /X-Signed/, 'the Outbox keeps what the sender wrote')
    const entries = copyQueue.list()
    assert.equal(entries.length, 1)
    assert.equal(entries[0]!.recipients[0]!.copy, 0, 'the recipient is sent the copy')
  })

  it('refuses with 451 a message whose copy cannot be made, and keeps none of it', async () => {
    assert.equal(await send('break the signer'), 451)
    assert.equal((await copyStore.list('Outbox')).length, 1, 'only the earlier message is in the Outbox')
    assert.equal(copyQueue.list().length, 1)
  })
})
