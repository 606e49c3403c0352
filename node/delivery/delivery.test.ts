// Delivery to a relay that does not behave: no STARTTLS while it is required, a relay that
// refuses recipients one by one. (SMTorP delivery over real Tor is in test/e2e.test.ts.)
import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import { SMTPServer } from 'smtp-server'
import type { AddressInfo } from 'node:net'
import { delivery, DeliveryError, RELAY_DESTINATION } from './index.ts'
import { silentLogger } from '../log/index.ts'
import { generateOnionKey } from '../../protocol/onion.ts'

const servers: SMTPServer[] = []

async function plainRelay (onRcpt: (address: string) => Error | undefined): Promise<{ port: number, received: string[] }> {
  const received: string[] = []
  const server = new SMTPServer({
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onRcptTo (address, _session, callback) { callback(onRcpt(address.address) ?? null) },
    onData (stream, _session, callback) {
      let text = ''
      stream.on('data', (d: Buffer) => { text += d.toString() })
      stream.on('end', () => { received.push(text); callback() })
    }
  })
  servers.push(server)
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', () => resolve()))
  return { port: (server.server.address() as AddressInfo).port, received }
}

function relayDelivery (port: number, requireTls: boolean): ReturnType<typeof delivery> {
  return delivery({
    onionKey: generateOnionKey(),
    relay: { host: '127.0.0.1', port, requireTls, verifyCertificate: true, viaTor: false },
    idleConnectionMs: 1000
  }, { logger: silentLogger(), socksEndpoint: () => ({ host: '127.0.0.1', port: 9 }) })
}

const envelope = (to: string[]): { from: string, to: string[], raw: Buffer } => ({ from: 'me@x.onion', to, raw: Buffer.from('Subject: t\r\n\r\nbody\r\n') })

describe('relay delivery', () => {
  after(async () => { await Promise.all(servers.map(async s => await new Promise<void>(resolve => s.close(() => resolve())))) })

  it('refuses to send in the clear when STARTTLS is required, and says so (transient)', async () => {
    const relay = await plainRelay(() => undefined)
    const d = relayDelivery(relay.port, true)
    await assert.rejects(d.deliver(RELAY_DESTINATION, envelope(['a@example.org'])), (err: unknown) => {
      assert.ok(err instanceof DeliveryError)
      assert.equal(err.permanent, false)
      assert.match(err.message, /does not offer STARTTLS.*requireTls/)
      return true
    })
    assert.equal(relay.received.length, 0)
    await d.stop()
  })

  it('reports each recipient\'s fate, and reuses the connection', async () => {
    const relay = await plainRelay(address => address.startsWith('bad') ? Object.assign(new Error('No such user'), { responseCode: 550 }) : address.startsWith('later') ? Object.assign(new Error('Try later'), { responseCode: 451 }) : undefined)
    const d = relayDelivery(relay.port, false)
    const results = await d.deliver(RELAY_DESTINATION, envelope(['good@example.org', 'bad@example.org', 'later@example.org']))
    assert.deepEqual(results.map(r => [r.address, r.ok, r.permanent]), [['good@example.org', true, false], ['bad@example.org', false, true], ['later@example.org', false, false]])
    await d.deliver(RELAY_DESTINATION, envelope(['good@example.org']))
    assert.equal(d.stats().connectionsOpened, 1)
    assert.equal(relay.received.length, 2)
    await d.stop()
  })

  it('takes new relay settings at run time: the idle connection closes, the next message goes to the new relay', async () => {
    const first = await plainRelay(() => undefined)
    const second = await plainRelay(() => undefined)
    const d = relayDelivery(first.port, false)
    assert.equal(d.hasRelay(), true)
    await d.deliver(RELAY_DESTINATION, envelope(['a@example.org']))
    assert.equal(d.stats().open, 1)
    d.setRelay({ host: '127.0.0.1', port: second.port, requireTls: false, verifyCertificate: true, viaTor: false })
    assert.equal(d.stats().open, 0) // the idle connection to the old relay is closed at once
    await d.deliver(RELAY_DESTINATION, envelope(['b@example.org']))
    assert.equal(first.received.length, 1)
    assert.equal(second.received.length, 1)
    assert.equal(d.stats().connectionsOpened, 2)
    d.setRelay(undefined)
    assert.equal(d.hasRelay(), false)
    await assert.rejects(d.deliver(RELAY_DESTINATION, envelope(['c@example.org'])), (err: unknown) => err instanceof DeliveryError && err.permanent && /no legacy relay/.test(err.message))
    await d.stop()
  })

  it('an unreachable relay is a transient failure', async () => {
    const d = relayDelivery(1, false)
    await assert.rejects(d.deliver(RELAY_DESTINATION, envelope(['a@example.org'])), (err: unknown) => err instanceof DeliveryError && !err.permanent)
    await d.stop()
  })
})

describe('onion delivery', () => {
  it('asks tor to fetch an onion\'s descriptor again when it cannot reach the onion', async () => {
    const refreshed: string[] = []
    const peer = `${generateOnionKey().address}.onion`
    // Nothing listens on port 9 here: the SOCKS connection fails as tor failing would.
    const d = delivery({ onionKey: generateOnionKey(), idleConnectionMs: 1000, connectTimeoutMs: 2000 }, {
      logger: silentLogger(),
      socksEndpoint: () => ({ host: '127.0.0.1', port: 9 }),
      refreshOnion: (onion) => { refreshed.push(onion) }
    })
    await assert.rejects(d.deliver(peer, envelope([`bob@${peer}`])), DeliveryError)
    assert.deepEqual(refreshed, [peer])
    await d.stop()
  })
})
