// The IMAP backup target through Tor (config backup.imap.viaTor, the default): the account is
// reached only through Tor's SOCKS port, so the provider does not learn where the node is. The
// private Tor network has no exits, so the test's Dovecot is published as an onion service of
// the same tor; the target is told only the onion name and the proxy.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { sharedTorNetwork, connectThroughTor, type PrivateTorNetwork, type TorClient } from './harness/tor-network.ts'
import { startDovecot, type DovecotInstance } from './harness/dovecot.ts'
import { torService, type TorService } from '../node/tor/index.ts'
import { silentLogger } from '../node/log/index.ts'
import { expandedSecretKey, generateOnionKey } from '../protocol/onion.ts'
import { imapBackupTarget } from '../node/backup/index.ts'

describe('the IMAP backup target through Tor', { timeout: 180_000 }, () => {
  let network: PrivateTorNetwork | undefined
  let client: TorClient | undefined
  let dovecot: DovecotInstance | undefined
  let publisher: TorService | undefined
  let onion = ''

  before(async () => {
    network = await sharedTorNetwork()
    ;[client, dovecot] = await Promise.all([network.startClient('imap-backup-tor'), startDovecot({ users: [{ user: 'owner', pass: 'imap-secret' }] })])
    publisher = torService({ mode: 'attach', controlHost: '127.0.0.1', controlPort: client.controlPort, cookieFile: client.cookieFile, socksHost: '127.0.0.1', socksPort: client.socksPort }, { logger: silentLogger() })
    await publisher.start()
    onion = await publisher.publishOnion({ expandedSecretKey: expandedSecretKey(generateOnionKey().seed), virtualPort: 143, target: { host: '127.0.0.1', port: dovecot.port } })
    await publisher.waitForDescriptorUpload(onion, 60_000)
    // For a few seconds after publication tor may answer "descriptor not found"; wait until it connects.
    const probe = await connectThroughTor(client.socksPort, `${onion}.onion`, 143, 30_000)
    probe.socket.destroy()
  })

  after(async () => {
    await publisher?.stop()
    await dovecot?.stop()
    await client?.stop()
    await network?.stop()
  })

  it('puts, lists and gets blobs over Tor, and without the proxy the onion name leads nowhere', async () => {
    const blob = randomBytes(200_000)
    const target = imapBackupTarget({
      host: `${onion}.onion`, port: 143, secure: false, doSTARTTLS: false, user: 'owner', pass: 'imap-secret',
      proxy: `socks5://127.0.0.1:${client!.socksPort}`, connectTimeoutMs: 30_000
    }, { logger: silentLogger() })
    try {
      await target.put('ab12', blob)
      assert.deepEqual((await target.list()).map(b => [b.name, b.size]), [['ab12', blob.length]])
      assert.deepEqual(await target.get('ab12'), blob)
    } finally {
      await target.close()
    }
    // The same target without the proxy cannot even resolve the name: nothing goes around Tor.
    const direct = imapBackupTarget({ host: `${onion}.onion`, port: 143, secure: false, doSTARTTLS: false, user: 'owner', pass: 'imap-secret', connectTimeoutMs: 5_000 }, { logger: silentLogger() })
    try {
      await assert.rejects(direct.list())
    } finally {
      await direct.close().catch(() => {})
    }
  })
})
