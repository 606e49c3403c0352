// The Postfix harness driven by real clients: nodemailer through the relay
// role (STARTTLS, then optionally AUTH), smtp-source into the sink role.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import nodemailer from 'nodemailer'
import { runSmtpSource } from '../../bench/lib/smtp-source.ts'
import { missingPostfixPrerequisites, startPostfix } from './postfix.ts'

const missing = missingPostfixPrerequisites()
const missingAuth = missingPostfixPrerequisites({ auth: true })
const skip = missing.length > 0 ? missing.join('; ') : false
const skipAuth = missingAuth.length > 0 ? missingAuth.join('; ') : false

describe('Postfix harness', { timeout: 90_000 }, () => {
  it('relay: accepts mail for any domain over STARTTLS and delivers it to the Maildir', { skip, timeout: 30_000 }, async () => {
    const relay = await startPostfix({ role: 'relay' })
    try {
      const transport = nodemailer.createTransport({
        host: relay.host,
        port: relay.port,
        requireTLS: true,
        tls: { rejectUnauthorized: false },
      })
      const info = await transport.sendMail({
        from: 'alice@node.test',
        to: 'someone@example.org',
        subject: 'through the legacy relay',
        text: 'hello from the harness test',
      })
      assert.match(info.response, /^250 /)
      const [message, ...rest] = await relay.waitForMessages(1, 10_000)
      assert.ok(message)
      assert.equal(rest.length, 0)
      assert.equal(message.envelopeTo, 'someone@example.org')
      assert.equal(message.envelopeFrom, 'alice@node.test')
      const text = message.raw.toString('utf8')
      assert.match(text, /^Subject: through the legacy relay$/m)
      assert.match(text, /hello from the harness test/)
      // Received: says the session was encrypted (Postfix adds the cipher when TLS was used).
      assert.match(text, /with ESMTPS /)
      transport.close()
    } finally {
      await relay.stop()
    }
  })

  it('relay with auth: accepts only an authenticated client', { skip: skipAuth, timeout: 30_000 }, async () => {
    const relay = await startPostfix({ role: 'relay', auth: { user: 'node', pass: 'relay-secret' } })
    const base = { host: relay.host, port: relay.port, requireTLS: true, tls: { rejectUnauthorized: false } }
    const mail = { from: 'alice@node.test', to: 'someone@example.org', text: 'authenticated' }
    try {
      await assert.rejects(nodemailer.createTransport(base).sendMail(mail), { responseCode: 554 })
      await assert.rejects(nodemailer.createTransport({ ...base, auth: { user: 'node', pass: 'wrong' } }).sendMail(mail), { responseCode: 535 })
      const info = await nodemailer.createTransport({ ...base, auth: { user: 'node', pass: 'relay-secret' } }).sendMail(mail)
      assert.match(info.response, /^250 /)
      const messages = await relay.waitForMessages(1, 10_000)
      assert.equal(messages.length, 1)
      assert.equal(messages[0]?.envelopeTo, 'someone@example.org')
    } finally {
      await relay.stop()
    }
  })

  it('sink: every message smtp-source sends is accepted and delivered', { skip, timeout: 60_000 }, async () => {
    const sink = await startPostfix({ role: 'sink' })
    try {
      const n = 200
      const result = await runSmtpSource({ host: sink.host, port: sink.port, messages: n, sessions: 10, messageSize: 5120, timeoutMs: 30_000 })
      assert.equal(result.messages, n)
      assert.ok(result.perSecond > 0)
      assert.equal(await sink.waitForCount(n, 30_000), n)
    } finally {
      await sink.stop()
    }
  })

  it('stop: frees the port and removes the directory', { skip, timeout: 30_000 }, async () => {
    const { existsSync } = await import('node:fs')
    const { createServer } = await import('node:net')
    const relay = await startPostfix({ role: 'relay' })
    await relay.stop()
    await relay.stop() // idempotent
    assert.equal(existsSync(relay.dir), false)
    await new Promise<void>((resolve, reject) => {
      const server = createServer().once('error', reject).listen(relay.port, '127.0.0.1', () => server.close(() => resolve()))
    })
  })
})
