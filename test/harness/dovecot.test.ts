// The Dovecot harness itself: it starts, a user logs in with imapflow, a wrong password is
// refused, and kick/pause/resume do what the tests built on them expect.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { ImapFlow } from 'imapflow'
import { missingDovecotPrerequisites, startDovecot, type DovecotInstance } from './dovecot.ts'

const missing = missingDovecotPrerequisites()

describe('Dovecot harness', { skip: missing.length > 0 ? missing.join('; ') : false }, () => {
  let dovecot: DovecotInstance

  before(async () => {
    dovecot = await startDovecot({ users: [{ user: 'alice', pass: 'alice secret' }, { user: 'bob', pass: 'bob-pw' }] })
  })

  after(async () => {
    await dovecot?.stop()
  })

  it('lets each user log in with imapflow, in plain text on 127.0.0.1, with UIDPLUS', async () => {
    for (const user of ['alice', 'bob']) {
      const client = new ImapFlow(dovecot.clientOptions(user))
      await client.connect()
      assert.ok(client.authenticated)
      assert.ok(client.capabilities.has('UIDPLUS'))
      const box = await client.mailboxOpen('INBOX')
      assert.equal(box.exists, 0)
      await client.logout()
    }
  })

  it('refuses a wrong password with AUTHENTICATIONFAILED', async () => {
    const client = new ImapFlow(dovecot.clientOptions('alice', 'wrong'))
    client.on('error', () => {})
    await assert.rejects(client.connect(), (err: { authenticationFailed?: boolean, serverResponseCode?: string }) => {
      assert.equal(err.authenticationFailed, true)
      assert.equal(err.serverResponseCode, 'AUTHENTICATIONFAILED')
      return true
    })
  })

  it('kick drops a connection; pause refuses connections; resume serves the same mail on the same port', async () => {
    const client = new ImapFlow(dovecot.clientOptions('alice'))
    client.on('error', () => {})
    await client.connect()
    await client.append('INBOX', 'Subject: kept\r\n\r\nhello\r\n')
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()))
    assert.equal(await dovecot.kick('alice'), true)
    await closed
    assert.equal(client.usable, false)
    assert.equal(await dovecot.kick('alice'), false)

    await dovecot.pause()
    const refused = new ImapFlow({ ...dovecot.clientOptions('alice'), connectionTimeout: 3000 })
    refused.on('error', () => {})
    await assert.rejects(refused.connect(), (err: { code?: string }) => err.code === 'ECONNREFUSED')
    await dovecot.resume()

    const again = new ImapFlow(dovecot.clientOptions('alice'))
    await again.connect()
    assert.equal((await again.mailboxOpen('INBOX')).exists, 1)
    await again.logout()
  })

  it('removes its directory on stop', async () => {
    const other = await startDovecot({ users: [{ user: 'carol', pass: 'x' }] })
    assert.ok(existsSync(other.dir))
    await other.stop()
    assert.ok(!existsSync(other.dir))
    await other.stop()
  })
})
