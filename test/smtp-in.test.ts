// The inbound SMTorP endpoint driven as a peer and as an attacker would: real smtp-server on
// loopback, real LevelDB store, our own client for honest peers and a raw client for abuse.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect } from 'node:net'
import { smtpIn, type SmtpIn } from '../node/smtp-in/index.ts'
import type { MailStore } from '../node/store/index.ts'
import { openTestVault } from './harness/vault.ts'
import { silentLogger } from '../node/log/index.ts'
import { SmtpConnection } from '../node/smtp-client/index.ts'
import { generateOnionKey, signWithOnionKey, type OnionKey } from '../protocol/onion.ts'
import { onionAuthSignedBytes } from '../protocol/smtorp-auth.ts'
import { RawSmtp } from './harness/raw-smtp.ts'

const server = generateOnionKey()
const peer = generateOnionKey()
const other = generateOnionKey()
const bob = `bob@${server.address}.onion`
const alice = `alice@${peer.address}.onion`
const LIMIT = 64 * 1024
const RATE = 20

let dir: string
let store: MailStore
let endpoint: SmtpIn

async function peerConnection (key: OnionKey = peer): Promise<SmtpConnection> {
  const socket = await SmtpConnection.dial('127.0.0.1', endpoint.port(), 5000)
  const connection = await SmtpConnection.open(socket, { ehloName: `${key.address}.onion`, timeoutMs: 5000 })
  await connection.authOnion(key, server.address)
  return connection
}

/** A raw session that has proved `key` (the honest exchange, done by hand). */
async function rawAuthenticated (key: OnionKey = peer, serverOnion = server.address): Promise<{ smtp: RawSmtp, code: number }> {
  const smtp = await RawSmtp.connect(endpoint.port())
  assert.equal((await smtp.reply()).code, 220)
  assert.equal((await smtp.command('EHLO peer')).code, 250)
  const challenge = await smtp.command('AUTH X-SMTORP-ONION')
  assert.equal(challenge.code, 334)
  const signature = signWithOnionKey(key.seed, onionAuthSignedBytes(serverOnion, key.address, Buffer.from(challenge.text, 'base64')))
  const answer = await smtp.command(Buffer.concat([Buffer.from([1]), key.publicKey, signature]).toString('base64'))
  return { smtp, code: answer.code }
}

function message (id: string, body = 'Hello Bob.\r\n'): Buffer {
  return Buffer.from(`From: <${alice}>\r\nTo: <${bob}>\r\nSubject: test ${id}\r\nMessage-ID: <${id}@${peer.address}.onion>\r\n\r\n${body}`)
}

describe('inbound SMTorP endpoint', () => {
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'smtorp-smtp-in-'))
    store = (await openTestVault(join(dir, 'vault'))).vault
    endpoint = smtpIn({ onion: server.address, users: ['bob'], port: 0, maxMessageBytes: LIMIT, maxMessagesPerPeerPerMinute: RATE, maxConnections: 10 }, { logger: silentLogger(), store })
    await endpoint.start()
  })
  after(async () => {
    await endpoint.stop()
    await store.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('greets with the onion name only, and offers the onion proof', async () => {
    const smtp = await RawSmtp.connect(endpoint.port())
    const greeting = await smtp.reply()
    assert.equal(greeting.code, 220)
    assert.equal(greeting.text, `${server.address}.onion ESMTP`)
    const ehlo = await smtp.command('EHLO peer')
    assert.match(ehlo.text, /^AUTH X-SMTORP-ONION$/m)
    assert.doesNotMatch(ehlo.text, /STARTTLS/)
    assert.equal(ehlo.text.split('\n')[0] ?? '', `${server.address}.onion greets you`)
    smtp.close()
  })

  it('stores a message from a peer that proved its onion, byte for byte after the trace header', async () => {
    const connection = await peerConnection()
    const raw = message('first', 'Caf\xe9 8-bit body\r\n.leading dot\r\n')
    const results = await connection.send({ from: alice, to: [bob], raw })
    await connection.quit()
    assert.equal(results[0]?.ok, true, String(results[0]?.reply))
    const inbox = await store.list('Inbox')
    const stored = await store.get(inbox.at(-1)!.id)
    assert.ok(stored)
    assert.match(stored.raw.toString('latin1'), new RegExp(`^Received: from ${peer.address}\\.onion by ${server.address}\\.onion with ESMTPA`))
    assert.ok(stored.raw.subarray(stored.raw.length - raw.length).equals(raw))
    assert.equal(stored.from, alice)
    assert.deepEqual(stored.to, [bob])
  })

  it('drops a second copy with the same Message-ID but acknowledges it', async () => {
    const before = (await store.list('Inbox')).length
    const connection = await peerConnection()
    const first = await connection.send({ from: alice, to: [bob], raw: message('dup') })
    const second = await connection.send({ from: alice, to: [bob], raw: message('dup') })
    await connection.quit()
    assert.equal(first[0]?.ok, true)
    assert.equal(second[0]?.ok, true)
    assert.match(second[0]!.reply, /Already delivered/)
    assert.equal((await store.list('Inbox')).length, before + 1)
  })

  it('refuses MAIL before the onion proof with 530', async () => {
    const smtp = await RawSmtp.connect(endpoint.port())
    await smtp.reply()
    await smtp.command('EHLO peer')
    const reply = await smtp.command(`MAIL FROM:<${alice}>`)
    assert.equal(reply.code, 530)
    assert.match(reply.text, /5\.7\.0 .*X-SMTORP-ONION/)
    smtp.close()
  })

  it('refuses forged proofs: a wrong signature, a signature for another server, a garbled answer', async () => {
    const forged = await RawSmtp.connect(endpoint.port())
    await forged.reply()
    await forged.command('EHLO peer')
    await forged.command('AUTH X-SMTORP-ONION')
    const wrong = await forged.command(Buffer.concat([Buffer.from([1]), peer.publicKey, Buffer.alloc(64, 7)]).toString('base64'))
    assert.equal(wrong.code, 535)
    assert.match(wrong.text, /5\.7\.8/)
    forged.close()

    const relayed = await rawAuthenticated(peer, other.address) // signed for another server's challenge
    assert.equal(relayed.code, 535)
    relayed.smtp.close()

    const garbled = await RawSmtp.connect(endpoint.port())
    await garbled.reply()
    await garbled.command('EHLO peer')
    await garbled.command('AUTH X-SMTORP-ONION')
    assert.equal((await garbled.command('!!not base64!!')).code, 535)
    assert.equal((await garbled.command('AUTH X-SMTORP-ONION dGVzdA==')).code, 501) // no initial response allowed
    assert.equal((await garbled.command('AUTH PLAIN dGVzdAB0ZXN0AHRlc3Q=')).code, 504)
    garbled.close()
  })

  it('refuses a sender onion other than the proven one, and non-onion senders', async () => {
    const { smtp, code } = await rawAuthenticated()
    assert.equal(code, 235)
    const claimsOther = await smtp.command(`MAIL FROM:<mallory@${other.address}.onion>`)
    assert.equal(claimsOther.code, 550)
    assert.match(claimsOther.text, /5\.7\.1/)
    assert.equal((await smtp.command('MAIL FROM:<someone@example.com>')).code, 550)
    assert.equal((await smtp.command(`MAIL FROM:<${alice}>`)).code, 250)
    smtp.close()
  })

  it('never relays: other domains, source routes, percent and bang hacks, literals, localhost, unknown users', async () => {
    const { smtp } = await rawAuthenticated()
    assert.equal((await smtp.command(`MAIL FROM:<${alice}>`)).code, 250)
    const attempts = [
      'victim@example.com',
      `victim@${other.address}.onion`,
      `@${server.address}.onion:victim@example.com`,
      `victim%example.com@${server.address}.onion`,
      `example.com!victim@${server.address}.onion`,
      'bob@[127.0.0.1]',
      'bob@[IPv6:::1]',
      'bob@localhost',
      'bob@127.0.0.1',
      `"bob@example.com"@${server.address}.onion`,
      `bob@${server.address}.onion.example.com`
    ]
    for (const address of attempts) {
      const reply = await smtp.command(`RCPT TO:<${address}>`)
      assert.ok(reply.code >= 500 && reply.code < 600, `${address} got ${reply.code} ${reply.text}`)
    }
    const unknown = await smtp.command(`RCPT TO:<nobody@${server.address}.onion>`)
    assert.equal(unknown.code, 550)
    assert.match(unknown.text, /5\.1\.1/)
    assert.equal((await smtp.command(`RCPT TO:<BOB@${server.address.toUpperCase()}.ONION>`)).code, 250)
    assert.equal((await smtp.command(`RCPT TO:<postmaster@${server.address}.onion>`)).code, 250)
    smtp.close()
  })

  it('refuses oversized messages, declared or not, and keeps serving', async () => {
    const { smtp } = await rawAuthenticated()
    const declared = await smtp.command(`MAIL FROM:<${alice}> SIZE=${LIMIT + 1}`)
    assert.equal(declared.code, 552)
    assert.equal((await smtp.command(`MAIL FROM:<${alice}>`)).code, 250)
    assert.equal((await smtp.command(`RCPT TO:<${bob}>`)).code, 250)
    assert.equal((await smtp.command('DATA')).code, 354)
    const line = `${'x'.repeat(998)}\r\n`
    smtp.write(line.repeat(Math.ceil((LIMIT + 1000) / line.length)))
    const tooBig = await smtp.command('.')
    assert.equal(tooBig.code, 552)
    assert.match(tooBig.text, /5\.3\.4/)
    smtp.close()
    const connection = await peerConnection()
    assert.equal((await connection.send({ from: alice, to: [bob], raw: message('after-big') }))[0]?.ok, true)
    await connection.quit()
  })

  it('answers malformed commands and 8-bit garbage with 5xx, and keeps serving', async () => {
    const smtp = await RawSmtp.connect(endpoint.port())
    await smtp.reply()
    assert.equal((await smtp.command('FROBNICATE')).code, 500)
    assert.equal((await smtp.command(Buffer.from([0xff, 0xfe, 0x00, 0x80, 0x41, 0x0d, 0x41]))).code >= 500, true)
    await smtp.command('EHLO peer')
    assert.ok((await smtp.command('MAIL FROM:not-an-address')).code >= 500)
    assert.ok((await smtp.command('RCPT TO:<bob@x>')).code >= 500)
    assert.ok((await smtp.command('DATA')).code >= 500)
    smtp.close()
    // A client that hangs up in the middle of DATA loses nothing already stored.
    const before = (await store.list('Inbox')).length
    const { smtp: quitter } = await rawAuthenticated()
    await quitter.command(`MAIL FROM:<${alice}>`)
    await quitter.command(`RCPT TO:<${bob}>`)
    await quitter.command('DATA')
    quitter.write('Subject: half\r\n\r\nhalf a mess')
    quitter.close()
    const connection = await peerConnection()
    assert.equal((await connection.send({ from: alice, to: [bob], raw: message('after-garbage') }))[0]?.ok, true)
    await connection.quit()
    assert.equal((await store.list('Inbox')).length, before + 1)
  })

  it('limits the message rate of one peer without affecting another', async () => {
    const noisy = generateOnionKey()
    const from = `n@${noisy.address}.onion`
    const { smtp } = await rawAuthenticated(noisy)
    const codes: number[] = []
    for (let i = 0; i < RATE + 2; i++) {
      codes.push((await smtp.command(`MAIL FROM:<${from}>`)).code)
      await smtp.command('RSET')
    }
    smtp.close()
    assert.deepEqual(codes, [...Array(RATE).fill(250), 451, 451])
    const quiet = generateOnionKey()
    const { smtp: other } = await rawAuthenticated(quiet)
    assert.equal((await other.command(`MAIL FROM:<q@${quiet.address}.onion>`)).code, 250)
    other.close()
  })

  it('caps concurrent connections', async () => {
    const sockets = await Promise.all(Array.from({ length: 12 }, async () => await new Promise<import('node:net').Socket>(resolve => {
      const s = connect({ host: '127.0.0.1', port: endpoint.port() }, () => resolve(s))
    })))
    const greetings = await Promise.all(sockets.map(async s => await new Promise<string>(resolve => {
      s.setEncoding('latin1')
      s.once('data', (d: string) => resolve(d.slice(0, 3)))
      setTimeout(() => resolve('none'), 3000)
    })))
    for (const s of sockets) s.destroy()
    assert.ok(greetings.includes('421'), `expected some 421 among ${greetings.join(',')}`)
  })
})
