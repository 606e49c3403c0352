// The web UI over HTTP against a real node (vault, queue, tor on the private network): what
// the owner does with mail and settings, form by form, as the browser would post them.
// The Chromium tests (ui-e2e, ui-browser) cover the same pages through a real browser.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { sharedTorNetwork, type PrivateTorNetwork } from './harness/tor-network.ts'
import { startTestNode, testSettings, waitFor, type TestNode } from './harness/nodes.ts'
import { TEST_PASSPHRASE } from './harness/vault.ts'
import { SmtpConnection } from '../node/smtp-client/index.ts'
import { generateOnionKey } from '../protocol/onion.ts'
import { UiClient } from './harness/ui-client.ts'

function rows (page: string): string[] {
  return [...page.matchAll(/<tr class="(?:read|unread)">[\s\S]*?<\/tr>/g)].map(m => m[0])
}

function message (n: number, extra: string[] = []): Buffer {
  return Buffer.from([`From: Carol <carol@example.org>`, 'To: owner@example.org', `Subject: Note ${n}`, `Message-ID: <note-${n}@example.org>`, `Date: ${new Date(Date.UTC(2026, 0, 1, 0, n)).toUTCString()}`, ...extra, '', `Body of note ${n}.`, ''].join('\r\n'))
}

describe('the web UI against a real node', { timeout: 300_000 }, () => {
  let network: PrivateTorNetwork
  let alice: TestNode
  let ui: UiClient

  before(async () => {
    network = await sharedTorNetwork()
    alice = await startTestNode('alice', testSettings(network))
    ui = new UiClient(alice.node.ui!.url())
    assert.equal((await ui.signIn()).status, 303)
  })
  after(async () => {
    await alice?.stop()
    await alice?.remove()
    await network?.stop()
  })

  it('pages through a folder newest first, 50 at a time, with unread counts', async () => {
    for (let n = 1; n <= 120; n++) {
      await alice.node.store.add({ folder: 'Inbox', raw: message(n), from: 'carol@example.org', to: [alice.identity.address], messageId: `note-${n}@example.org`, flags: n % 3 === 0 ? ['\\Seen'] : [] })
    }
    const first = await ui.get('/mail/Inbox')
    assert.equal(first.status, 200)
    assert.match(first.body, /Inbox<\/a> <span class="count">80<span class="visually-hidden"> unread<\/span>/)
    const page1 = rows(first.body)
    assert.equal(page1.length, 50)
    assert.match(page1[0]!, /Note 120/)
    assert.match(page1[49]!, /Note 71</)
    const older = /href="(\/mail\/Inbox\?before=\d+)"/.exec(first.body)![1]!
    // htmx asks for the fragment only: the rows and the next link, not the page around them.
    const fragment = await ui.get(older, { 'hx-request': 'true' })
    assert.doesNotMatch(fragment.body, /<html/)
    assert.equal(rows(fragment.body).length, 50)
    assert.match(rows(fragment.body)[0]!, /Note 70</)
    const last = await ui.get(/href="(\/mail\/Inbox\?before=\d+)"/.exec(fragment.body)![1]!)
    assert.equal(rows(last.body).length, 20)
    assert.match(rows(last.body)[19]!, /Note 1</)
    assert.doesNotMatch(last.body, /Older messages/)
  })

  it('reads, marks unread, flags, moves, trashes, deletes and empties Trash', async () => {
    const [meta] = (await alice.node.vault.page('Inbox', { limit: 1 })).messages
    const id = meta!.id
    const read = await ui.get(`/message/${id}`)
    assert.match(read.body, /Body of note 120\./)
    assert.ok((await alice.node.vault.meta(id))!.flags.includes('\\Seen'), 'opening a message marks it read')
    assert.equal((await ui.post(`/message/${id}/seen`, { seen: '0' })).status, 303)
    assert.ok(!(await alice.node.vault.meta(id))!.flags.includes('\\Seen'))
    await ui.post(`/message/${id}/flag`, { flagged: '1' })
    assert.ok((await alice.node.vault.meta(id))!.flags.includes('\\Flagged'))
    assert.match((await ui.get('/mail/Inbox')).body, /Note 120<\/bdi><\/a> <span class="badge">flagged/)
    assert.equal((await ui.post(`/message/${id}/move`, { folder: 'Outbox' })).status, 400, 'nothing is moved into the Outbox by hand')
    await ui.post(`/message/${id}/move`, { folder: 'Sent' })
    assert.equal((await alice.node.vault.meta(id))!.folder, 'Sent')
    assert.equal((await ui.post(`/message/${id}/delete`, {})).status, 400, 'deleting for good only from Trash')
    await ui.post(`/message/${id}/trash`, {})
    assert.equal((await alice.node.vault.meta(id))!.folder, 'Trash')
    const second = (await alice.node.vault.page('Inbox', { limit: 1 })).messages[0]!.id
    await ui.post(`/message/${second}/trash`, {})
    const trash = await ui.get('/mail/Trash')
    assert.equal(rows(trash.body).length, 2)
    assert.equal((await ui.post(`/message/${id}/delete`, {})).status, 400, 'not without the box ticked')
    assert.ok(await alice.node.vault.meta(id) !== undefined)
    await ui.post(`/message/${id}/delete`, { confirm: '1' })
    assert.equal(await alice.node.vault.meta(id), undefined)
    assert.equal((await ui.post('/trash/empty', {})).status, 400)
    const emptied = await ui.post('/trash/empty', { confirm: '1' })
    assert.equal(emptied.status, 303)
    assert.match((await ui.get('/mail/Trash')).body, /Deleted 1 message for good\.[\s\S]*No messages\./)
    assert.equal(await alice.node.vault.meta(second), undefined)
  })

  it('shows a message\'s thread, found by References and In-Reply-To', async () => {
    const root = await alice.node.store.add({ folder: 'Inbox', raw: message(500), from: 'carol@example.org', to: [alice.identity.address], messageId: 'note-500@example.org' })
    await alice.node.store.add({ folder: 'Sent', raw: message(501, ['In-Reply-To: <note-500@example.org>']), from: alice.identity.address, to: ['carol@example.org'], messageId: 'note-501@example.org' })
    const last = await alice.node.store.add({ folder: 'Inbox', raw: message(502, ['In-Reply-To: <note-501@example.org>', 'References: <note-500@example.org> <note-501@example.org>']), from: 'carol@example.org', to: [alice.identity.address], messageId: 'note-502@example.org' })
    const page = await ui.get(`/message/${last.meta.id}`)
    const thread = /<h2>Thread<\/h2><ol>([\s\S]*?)<\/ol>/.exec(page.body)?.[1] ?? ''
    assert.deepEqual([...thread.matchAll(/Note (50\d)/g)].map(m => m[1]), ['500', '501', '502'])
    assert.match(thread, new RegExp(`href="/message/${root.meta.id}"`))
    assert.match((await ui.get('/mail/Inbox')).body, /Note 502<\/bdi><\/a>[^<]*(<span class="badge">[^<]*<\/span> )*<span class="badge">3 in thread/)
  })

  it('starts a reply to all and a forward from a message', async () => {
    const many = await alice.node.store.add({ folder: 'Inbox', raw: Buffer.from(['From: Carol <carol@example.org>', `To: ${alice.identity.address}, dan@example.org`, 'Cc: erin@example.org', 'Subject: Team lunch', 'Message-ID: <lunch@example.org>', '', 'Thursday?', ''].join('\r\n')), from: 'carol@example.org', to: [alice.identity.address], messageId: 'lunch@example.org' })
    const all = await ui.get(`/compose?reply=${many.meta.id}&mode=replyAll`)
    const field = (page: string, id: string): string => new RegExp(`id="${id}" name="${id}" value="([^"]*)"`).exec(page)?.[1] ?? ''
    assert.match(field(all.body, 'to'), /carol@example\.org/)
    assert.match(field(all.body, 'to') + field(all.body, 'cc'), /dan@example\.org[\s\S]*erin@example\.org|erin@example\.org[\s\S]*dan@example\.org/)
    assert.doesNotMatch(field(all.body, 'to') + field(all.body, 'cc'), new RegExp(alice.identity.address.replace(/\./g, '\\.')), 'not to oneself')
    assert.match(all.body, /name="inReplyToId" value="\d+"/)
    const forward = await ui.get(`/compose?reply=${many.meta.id}&mode=forward`)
    assert.equal(field(forward.body, 'to'), '')
    assert.match(forward.body, /id="subject" name="subject" value="Fwd: Team lunch"/)
    assert.match(forward.body, /Forwarded message[\s\S]*Thursday\?/)
    assert.doesNotMatch(forward.body, /name="inReplyToId"/)
  })

  it('forwards a message with its attachment, unless unticked', async () => {
    const boundary = 'b-fwd'
    const raw = Buffer.from(['From: Carol <carol@example.org>', `To: ${alice.identity.address}`, 'Subject: The plans', 'Message-ID: <plans@example.org>', 'MIME-Version: 1.0', `Content-Type: multipart/mixed; boundary="${boundary}"`, '',
      `--${boundary}`, 'Content-Type: text/plain; charset=utf-8', '', 'See the attached plan.', `--${boundary}`, 'Content-Type: text/plain; name="plan.txt"', 'Content-Disposition: attachment; filename="plan.txt"', '', 'step one, step two', `--${boundary}--`, ''].join('\r\n'))
    const original = await alice.node.store.add({ folder: 'Inbox', raw, from: 'carol@example.org', to: [alice.identity.address], messageId: 'plans@example.org' })
    const form = await ui.get(`/compose?reply=${original.meta.id}&mode=forward`)
    assert.match(form.body, new RegExp(`name="forwardOfId" value="${original.meta.id}"`))
    assert.match(form.body, /name="keepAttachment" value="0" checked> plan\.txt/)
    const sent = await ui.postMultipart('/compose', { forwardOfId: original.meta.id, to: 'frank@example.org', cc: '', bcc: '', subject: 'Fwd: The plans', body: 'For you.', keepAttachment: '0', action: 'send' })
    assert.equal(sent.status, 303, sent.body.slice(0, 300))
    const stored = await waitFor('the forward in Outbox or Sent', async () => {
      for (const folder of ['Outbox', 'Sent'] as const) {
        for (const m of (await alice.node.vault.page(folder, { limit: 10 })).messages) {
          const message = await alice.node.vault.get(m.id)
          if (message?.raw.includes('For you.') === true) return message
        }
      }
      return undefined
    }, 10_000)
    assert.match(stored.raw.toString(), /filename=plan\.txt[\s\S]*c3RlcCBvbmUsIHN0ZXAgdHdv|filename=plan\.txt[\s\S]*step one, step two/)
    const without = await ui.postMultipart('/compose', { forwardOfId: original.meta.id, to: 'frank@example.org', cc: '', bcc: '', subject: 'Fwd: The plans', body: 'No file this time.', action: 'save' })
    const draft = await ui.get(without.location!)
    assert.doesNotMatch(draft.body, /plan\.txt/, 'an unticked attachment is left out')
  })

  it('keeps a message that cannot be sent, attachment included, as a draft', async () => {
    const refused = await ui.postMultipart('/compose', { to: 'not an address', cc: '', bcc: '', subject: 'Keep me', body: 'Words I typed', action: 'send' }, [{ name: 'attachments', filename: 'keep.txt', type: 'text/plain', content: Buffer.from('kept bytes') }])
    assert.equal(refused.status, 400)
    assert.match(refused.body, /Not sent: [^<]*not an address[^<]*It is saved in Drafts\./)
    const draftId = /name="draftId" value="(\d+)"/.exec(refused.body)?.[1]
    assert.ok(draftId !== undefined, 'the form now edits the saved draft')
    assert.match(refused.body, /name="keepAttachment" value="0" checked> keep\.txt/)
    const draft = await alice.node.vault.get(draftId)
    assert.equal(draft?.folder, 'Drafts')
    assert.match(draft!.raw.toString(), /Words I typed/)
    await ui.post(`/message/${draftId}/trash`, {})
  })

  it('saves a draft with unfinished recipients and an attachment, and sends it later', async () => {
    const saved = await ui.postMultipart('/compose', { to: 'bo', cc: '', bcc: '', subject: 'Half written', body: 'Not done yet', action: 'save' }, [{ name: 'attachments', filename: 'notes.txt', type: 'text/plain', content: Buffer.from('attached words') }])
    assert.equal(saved.status, 303)
    const draftUrl = saved.location!
    assert.match(draftUrl, /^\/compose\?draft=\d+$/)
    const draft = await ui.get(draftUrl)
    assert.match(draft.body, /id="to" name="to" value="bo"/)
    assert.match(draft.body, /Not done yet\n?<\/textarea>/)
    assert.match(draft.body, /name="keepAttachment" value="0" checked> notes\.txt/)
    assert.match((await ui.get('/mail/Drafts')).body, /Half written/)

    const draftId = /draft=(\d+)/.exec(draftUrl)![1]!
    const peer = `dora@${generateOnionKey().address}.onion`
    const sent = await ui.postMultipart('/compose', { draftId, to: peer, cc: '', bcc: 'hidden@example.org', subject: 'Half written', body: 'Done now', keepAttachment: '0', action: 'send' })
    assert.equal(sent.status, 303, sent.body.slice(0, 500))
    assert.equal(sent.location, '/outbox')
    assert.doesNotMatch((await ui.get('/mail/Drafts')).body, /Half written/, 'the draft is gone once sent')
    const [outgoing] = await alice.node.vault.page('Outbox', { limit: 1 }).then(p => p.messages)
    const stored = await alice.node.vault.get(outgoing!.id)
    assert.match(stored!.raw.toString(), /Content-Disposition: attachment; filename=notes\.txt/)
    assert.match(stored!.raw.toString(), /Bcc: hidden@example\.org/, 'the sender\'s copy keeps Bcc; the queue strips it per copy')
  })

  it('shows each recipient\'s state in words, retries, and cancels', async () => {
    // Dora's onion does not exist: tor cannot find it, so her delivery is delayed, not lost.
    // hidden@example.org has no route: no relay is set, so it fails at once, saying why.
    let lastSeen = ''
    const outbox = await waitFor('dora\'s delivery to be delayed', async () => {
      const page = await ui.get('/live/outbox')
      lastSeen = page.body
      return /data-state="delayed"/.test(page.body) && page.body
    }, 120_000, 500).catch((err: Error) => { throw new Error(`${err.message}; the outbox showed: ${lastSeen}`) })
    assert.match(outbox, /hidden@example\.org<\/span>: <strong class="state-failed" data-state="failed">Failed<\/strong> — no legacy relay is configured/)
    assert.match(outbox, /Delayed<\/strong> — the last try failed: [^<]{10,}\. Next try/)
    const queueId = /action="\/outbox\/([^/]+)\/cancel"/.exec(outbox)![1]!
    assert.equal((await ui.post(`/outbox/${queueId}/retry`, {})).status, 303)
    assert.equal((await ui.post(`/outbox/${queueId}/cancel`, {})).status, 303)
    const after = await ui.get('/outbox')
    assert.match(after.body, /dora@[a-z2-7]{56}\.onion<\/span>: <strong class="state-failed" data-state="failed">Failed<\/strong> — cancelled by you/)
    await waitFor('the cancelled message to be filed in Sent', async () => (await alice.node.vault.page('Outbox', { limit: 5 })).messages.length === 0, 10_000)
    assert.match((await ui.get('/mail/Sent')).body, /Half written/)
  })

  it('does not let a message being sent be moved or trashed, nor anything be moved into Drafts', async () => {
    const peer = `gus@${generateOnionKey().address}.onion`
    await ui.get('/compose')
    assert.equal((await ui.postMultipart('/compose', { to: peer, cc: '', bcc: '', subject: 'Still going', body: 'x', action: 'send' })).status, 303)
    const [sending] = (await alice.node.vault.page('Outbox', { limit: 1 })).messages
    const page = await ui.get(`/message/${sending!.id}`)
    assert.match(page.body, /Being sent: follow it, retry or cancel it in the <a href="\/outbox">Outbox<\/a>/)
    assert.doesNotMatch(page.body, /Move to Trash/)
    assert.equal((await ui.post(`/message/${sending!.id}/trash`, {})).status, 409)
    assert.equal((await ui.post(`/message/${sending!.id}/move`, { folder: 'Inbox' })).status, 409)
    assert.equal((await alice.node.vault.meta(sending!.id))!.folder, 'Outbox')
    const [received] = (await alice.node.vault.page('Inbox', { limit: 1 })).messages
    assert.equal((await ui.post(`/message/${received!.id}/move`, { folder: 'Drafts' })).status, 400)
    const queueId = alice.node.queue.list().find(e => e.storeId === sending!.id)!.id
    await ui.post(`/outbox/${queueId}/cancel`, {})
    assert.match((await ui.get('/outbox')).body, /Sending was cancelled/)
    await ui.post('/outbox/no-such-entry/cancel', {})
    assert.match((await ui.get('/outbox')).body, /no longer being sent: there was nothing to cancel/)
  })

  it('refuses to act on a draft that was sent meanwhile, and keeps over-long text for an attachment', async () => {
    await ui.get('/compose')
    const saved = await ui.postMultipart('/compose', { to: 'someone@example.org', cc: '', bcc: '', subject: 'Twice', body: 'once', action: 'save' })
    const draftId = /draft=(\d+)/.exec(saved.location!)![1]!
    await ui.get(saved.location!)
    assert.equal((await ui.postMultipart('/compose', { draftId, to: 'someone@example.org', cc: '', bcc: '', subject: 'Twice', body: 'once', action: 'send' })).status, 303)
    const again = await ui.postMultipart('/compose', { draftId, to: 'someone@example.org', cc: '', bcc: '', subject: 'Twice', body: 'once', action: 'send' })
    assert.equal(again.status, 409, 'a second click does not send it again')
    assert.match(again.body, /sent or deleted meanwhile/)

    const long = 'l'.repeat(1024 * 1024 + 10)
    const refused = await ui.postMultipart('/compose', { to: 'someone@example.org', cc: '', bcc: '', subject: 'Long', body: long + 'END', action: 'send' })
    assert.equal(refused.status, 400)
    assert.match(refused.body, /longer than 1 MiB; send it as an attachment\./)
    assert.match(refused.body, /lllllEND<\/textarea>/, 'what was typed is still in the form')
    assert.equal((await fetch(`${ui.base}/compose/alive`, { method: 'POST', headers: { cookie: ui.cookie, origin: ui.origin, 'x-csrf-token': ui.csrf } })).status, 204)
  })

  it('shows the route of each recipient while writing', async () => {
    await ui.get('/compose')
    const res = await fetch(`${ui.base}/compose/routes`, { method: 'POST', headers: { cookie: ui.cookie, origin: ui.origin, 'x-csrf-token': ui.csrf, 'hx-request': 'true', 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ to: `"Bob, the friend" <bob@${alice.identity.domain}>, someone@example.org`, cc: 'not an address', bcc: '' }).toString() })
    const text = await res.text()
    assert.match(text, /class="route-onion"[^]*directly over Tor/)
    assert.match(text, /class="route-none"[^]*someone@example\.org[^]*no legacy relay is set/)
    assert.match(text, /class="route-invalid"[^]*not a usable address/)
    // Split exactly as sending splits: semicolons, and commas inside quoted names.
    const tricky = await fetch(`${ui.base}/compose/routes`, { method: 'POST', headers: { cookie: ui.cookie, origin: ui.origin, 'x-csrf-token': ui.csrf, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ to: `"a\\"b, c" <x@example.org>; y@example.net`, cc: '', bcc: '' }).toString() }).then(r => r.text())
    assert.deepEqual([...tricky.matchAll(/<span class="onion">([^<]+)<\/span>/g)].map(m => m[1]), ['x@example.org', 'y@example.net'])
  })

  it('gives each mail client its own password: disabled after ten wrong ones, enabled again, refused once revoked', async () => {
    const made = await ui.post('/settings/credentials', { name: 'phone' })
    const username = /id="new-username">([^<]+)</.exec(made.body)![1]!
    const password = /id="new-password">([^<]+)</.exec(made.body)![1]!
    assert.match(username, /^phone-/)
    assert.doesNotMatch((await ui.get('/settings')).body, new RegExp(password), 'the password is shown once only')
    const send = async (): Promise<void> => {
      const connection = await SmtpConnection.open(await SmtpConnection.dial('127.0.0.1', alice.node.submissionPort(), 5000), { ehloName: 'localhost', timeoutMs: 10_000 })
      try {
        await connection.authPlain(username, password)
      } finally {
        await connection.quit().catch(() => {})
      }
    }
    await send()
    // Ten wrong passwords in a row disable it; the owner can enable it again.
    for (let i = 0; i < 10; i++) {
      const connection = await SmtpConnection.open(await SmtpConnection.dial('127.0.0.1', alice.node.submissionPort(), 5000), { ehloName: 'localhost', timeoutMs: 10_000 })
      await assert.rejects(connection.authPlain(username, 'not-the-password'), /535/)
      await connection.quit().catch(() => {})
    }
    await assert.rejects(send(), /535[\s\S]*disabled/)
    const disabled = await ui.get('/settings')
    assert.match(disabled.body, /Disabled after 10 wrong passwords/)
    const id = /action="\/settings\/credentials\/([^/]+)\/enable"/.exec(disabled.body)![1]!
    assert.equal((await ui.post(`/settings/credentials/${id}/enable`, {})).status, 303)
    await send()
    assert.doesNotMatch((await ui.get('/settings')).body, /Disabled after/)
    await ui.post(`/settings/credentials/${id}/revoke`, {})
    await assert.rejects(send(), /535/)
  })

  it('sets a relay, tests the connection and says what failed, and removes it', async () => {
    const form = { host: '127.0.0.1', port: '9', username: 'me', password: 'relay-secret', requireTls: '1', verifyCertificate: '1' }
    const tested = await ui.post('/settings/relay', { ...form, action: 'test' })
    assert.match(tested.body, /Could not connect to 127\.0\.0\.1:9/)
    await ui.post('/settings/relay', { ...form, action: 'save' })
    const settings = await ui.get('/settings')
    assert.match(settings.body, /id="relay-host" name="host" value="127\.0\.0\.1"/)
    assert.doesNotMatch(settings.body, /relay-secret/, 'the relay password never comes back to the page')
    assert.match(alice.node.ui !== undefined ? (await fetch(`${ui.base}/compose/routes`, { method: 'POST', headers: { cookie: ui.cookie, origin: ui.origin, 'x-csrf-token': ui.csrf, 'content-type': 'application/x-www-form-urlencoded' }, body: 'to=someone%40example.org' }).then(r => r.text())) : '', /through the legacy relay 127\.0\.0\.1/)
    // Saved again without a password: the old one is kept, not erased.
    await ui.post('/settings/relay', { ...form, password: '', action: 'save' })
    assert.equal((await alice.node.vault.getRecord('settings', 'relay'))!.toString().includes('relay-secret'), true)
    // But it never goes to another server: a changed host needs the password typed again.
    const elsewhere = await ui.post('/settings/relay', { ...form, host: 'typo.example.org', password: '', action: 'test' })
    assert.match(elsewhere.body, /Enter the password for that user name\./)
    await ui.post('/settings/relay', { action: 'remove' })
    assert.match((await ui.get('/settings')).body, /None is set: such mail cannot be sent\./)
  })

  it('saves the auto-lock time, and refuses nonsense', async () => {
    await ui.get('/settings')
    assert.equal((await ui.post('/settings/autolock', { minutes: '-3' })).status, 400)
    assert.equal((await ui.post('/settings/autolock', { minutes: '30' })).status, 303)
    assert.match((await ui.get('/settings')).body, /The vault locks after 30 minutes without use\.[\s\S]*id="autolock" name="minutes" value="30"/)
  })

  it('changes the passphrase only with the right current one, and the new one unlocks', async () => {
    const wrong = await ui.post('/settings/passphrase', { current: 'not the passphrase', next: 'a new long passphrase', repeat: 'a new long passphrase' })
    assert.equal(wrong.status, 400)
    assert.match(wrong.body, /The current passphrase is wrong; nothing was changed\./)
    const differ = await ui.post('/settings/passphrase', { current: TEST_PASSPHRASE, next: 'a new long passphrase', repeat: 'a new long passphrasf' })
    assert.match(differ.body, /The two new passphrases differ\./)
    assert.equal((await ui.post('/settings/passphrase', { current: TEST_PASSPHRASE, next: 'a new long passphrase', repeat: 'a new long passphrase' })).status, 303)
    await ui.get('/settings')
    await ui.post('/lock', {})
    assert.equal(alice.node.vault.state(), 'locked')
    assert.equal((await ui.signIn(TEST_PASSPHRASE)).status, 401)
    assert.equal((await ui.signIn('a new long passphrase')).status, 303)
    assert.equal(alice.node.vault.state(), 'unlocked')
  })

  it('unlocks with the recovery code when the passphrase is lost', async () => {
    await ui.get('/settings')
    await ui.post('/lock', {})
    const form = await ui.get('/unlock?method=recovery')
    assert.match(form.body, /<label for="recoveryCode">Recovery code<\/label>/)
    const wrong = await ui.post('/unlock', { method: 'recovery', recoveryCode: 'AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA' })
    assert.equal(wrong.status, 401)
    assert.match(wrong.body, /That recovery code does not open this vault\./)
    assert.equal(alice.node.vault.state(), 'locked')
  })

  it('shows the node\'s health, and a storage check with its result', async () => {
    await ui.signIn('a new long passphrase')
    const page = await ui.get('/dashboard')
    assert.match(page.body, new RegExp(`id="own-address" class="onion">${alice.identity.address.replace(/\./g, '\\.')}<`))
    assert.match(page.body, /<svg role="img" aria-label="QR code of your mail address"/)
    await alice.node.tor.waitForDescriptorUpload(alice.identity.onionKey.address, 60_000)
    assert.match((await ui.get('/live/dashboard')).body, /Connected to the Tor network[\s\S]*Published: peers can deliver to you over Tor/)
    assert.equal((await ui.post('/scrub', {})).status, 303)
    const report = await waitFor('the storage check to finish', async () => {
      const live = await ui.get('/live/dashboard')
      return /objects checked/.test(live.body) && live.body
    }, 60_000, 200)
    assert.match(report, /\d+ objects checked, 0 shards repaired, <span class="">0 lost/)
  })
})
