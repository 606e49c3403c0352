// The SMTP client against a real smtp-server: pipelined batches where some transactions fail
// and others must still arrive whole, without pipelining too.
import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import { SMTPServer } from 'smtp-server'
import type { AddressInfo } from 'node:net'
import { SmtpConnection, SmtpClientError } from './index.ts'

const servers: SMTPServer[] = []

async function server (options: { pipelining: boolean }): Promise<{ port: number, received: Array<{ from: string, to: string[], body: string }> }> {
  const received: Array<{ from: string, to: string[], body: string }> = []
  const s = new SMTPServer({
    disabledCommands: ['STARTTLS', 'AUTH'],
    hidePIPELINING: !options.pipelining,
    size: 10_000,
    closeTimeout: 100,
    logger: false,
    onMailFrom (address, _session, callback) { callback(address.address.startsWith('banned') ? Object.assign(new Error('5.7.1 Sender refused'), { responseCode: 550 }) : null) },
    onRcptTo (address, _session, callback) { callback(address.address.startsWith('nobody') ? Object.assign(new Error('5.1.1 No such user'), { responseCode: 550 }) : null) },
    onData (stream, session, callback) {
      let body = ''
      stream.on('data', (d: Buffer) => { body += d.toString('latin1') })
      stream.on('end', () => {
        received.push({ from: session.envelope.mailFrom === false ? '' : session.envelope.mailFrom.address, to: session.envelope.rcptTo.map(r => r.address), body })
        if (body.includes('REJECT-AT-END')) callback(Object.assign(new Error('5.6.0 Content refused'), { responseCode: 554 }))
        else callback()
      })
    }
  })
  servers.push(s)
  await new Promise<void>(resolve => s.listen(0, '127.0.0.1', () => resolve()))
  return { port: (s.server.address() as AddressInfo).port, received }
}

const message = (n: string, extra = ''): Buffer => Buffer.from(`Subject: ${n}\r\n\r\n.line with a dot ${n}\r\n${extra}`)

for (const pipelining of [true, false]) {
  describe(`SMTP client, ${pipelining ? 'with' : 'without'} PIPELINING`, () => {
    after(async () => { await Promise.all(servers.map(async s => await new Promise<void>(resolve => s.close(() => resolve())))) })

    it('sends a batch where some transactions fail, and every good one arrives whole', async () => {
      const target = await server({ pipelining })
      const connection = await SmtpConnection.open(await SmtpConnection.dial('127.0.0.1', target.port, 2000), { ehloName: 'client.example', timeoutMs: 5000 })
      assert.equal(connection.extensions.has('PIPELINING'), pipelining)
      const outcomes = await connection.sendBatch([
        { from: 'a@x.org', to: ['one@x.org'], raw: message('1') },
        { from: 'banned@x.org', to: ['two@x.org'], raw: message('2') },
        { from: 'a@x.org', to: ['nobody@x.org'], raw: message('3') },
        { from: 'a@x.org', to: ['four@x.org', 'nobody2@x.org'], raw: message('4') },
        { from: 'a@x.org', to: ['five@x.org'], raw: message('5', 'REJECT-AT-END\r\n') },
        { from: 'a@x.org', to: ['six@x.org'], raw: Buffer.alloc(20_000, 0x61) },
        { from: 'a@x.org', to: ['seven@x.org'], raw: message('7') }
      ])
      await connection.quit()
      const [one, two, three, four, five, six, seven] = outcomes
      assert.ok(Array.isArray(one) && one.length === 1 && one[0]!.ok && /^250 /.test(one[0]!.reply))
      assert.ok(two instanceof SmtpClientError && two.permanent && /Sender refused/.test(two.message))
      assert.ok(Array.isArray(three) && three[0]!.ok === false && three[0]!.permanent && /No such user/.test(three[0]!.reply))
      assert.ok(Array.isArray(four))
      assert.deepEqual(four.map(r => [r.address, r.ok]), [['four@x.org', true], ['nobody2@x.org', false]])
      assert.ok(Array.isArray(five) && five[0]!.ok === false && five[0]!.permanent && /Content refused/.test(five[0]!.reply))
      assert.ok(six instanceof SmtpClientError && six.permanent && /larger than the server accepts/.test(six.message))
      assert.ok(Array.isArray(seven) && seven[0]!.ok)
      assert.deepEqual(target.received.map(r => r.to), [['one@x.org'], ['four@x.org'], ['five@x.org'], ['seven@x.org']])
      assert.equal(target.received[0]!.body, message('1').toString('latin1'))
      assert.equal(target.received[3]!.body, message('7').toString('latin1'))
    })

    it('a connection that dies mid-batch fails the unfinished transactions, transiently', async () => {
      const target = await server({ pipelining })
      const connection = await SmtpConnection.open(await SmtpConnection.dial('127.0.0.1', target.port, 2000), { ehloName: 'client.example', timeoutMs: 5000 })
      const first = await connection.send({ from: 'a@x.org', to: ['one@x.org'], raw: message('1') })
      assert.equal(first[0]!.ok, true)
      await new Promise<void>(resolve => servers.at(-1)!.close(() => resolve()))
      const outcomes = await connection.sendBatch([{ from: 'a@x.org', to: ['b@x.org'], raw: message('2') }, { from: 'a@x.org', to: ['c@x.org'], raw: message('3') }])
      for (const outcome of outcomes) assert.ok(outcome instanceof SmtpClientError && !outcome.permanent)
      assert.equal(connection.usable, false)
    })
  })
}
