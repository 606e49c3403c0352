// The web UI end to end, as the owner uses it: in headless Chromium, alice unlocks her node,
// reads a message bob's node delivered over the private Tor network, writes to bob, watches
// the message go from queued to delivered, finds it by search, answers bob's message, reads
// bob's encrypted answer, and locks. Bob's node checks what really arrived. A screenshot of
// each page is saved (test/artifacts/ui-e2e/).
//
// OpenPGP on the way: bob's first (signed) message carries his key (Autocrypt), so alice's
// Encrypt box ticks itself and her mail to bob goes encrypted; hers carries her key, so bob's
// next message to her is encrypted too, and her UI shows it decrypted, with its badges.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { sharedTorNetwork, type PrivateTorNetwork } from './harness/tor-network.ts'
import { startTestNode, testSettings, waitFor, type TestNode } from './harness/nodes.ts'
import { TEST_PASSPHRASE } from './harness/vault.ts'
import { startBrowser, screenshot, watchRequests, type TestBrowser, type Page } from './harness/browser.ts'
import type { StoredMessage } from '../node/store/index.ts'
import { headerValue, messageIdOf } from '../protocol/message.ts'
import { pgpMimeKind, splitEntity } from '../protocol/pgp-mime.ts'

const TEST = 'ui-e2e'

/** The stored message (as it arrived) whose text, decrypted if need be, holds `marker`. */
async function findIn (node: TestNode, folder: 'Inbox' | 'Sent', marker: string): Promise<StoredMessage | undefined> {
  const store = node.node.store
  for (const meta of await store.list(folder)) {
    const message = await store.get(meta.id)
    if (message === undefined) continue
    if (message.raw.includes(marker)) return message
    const shown = (await node.node.openpgp.readMessage(message.raw)).display
    if (shown?.includes(marker) === true) return message
  }
  return undefined
}

async function published (node: TestNode): Promise<void> {
  await node.node.tor.waitForBootstrap(90_000)
  await node.node.tor.waitForDescriptorUpload(node.identity.onionKey.address, 60_000)
}

describe('the web UI in Chromium, with two nodes on the private Tor network', { timeout: 600_000 }, () => {
  let network: PrivateTorNetwork
  let alice: TestNode
  let bob: TestNode
  let browser: TestBrowser
  let page: Page
  let outside: string[]
  const step = async (name: string): Promise<void> => { await screenshot(page, TEST, name) }

  before(async () => {
    network = await sharedTorNetwork()
    ;[alice, bob] = await Promise.all([startTestNode('alice', testSettings(network)), startTestNode('bob', testSettings(network))])
    browser = await startBrowser()
    await Promise.all([published(alice), published(bob)])
    // A fresh start: alice's vault locked, as after a reboot.
    await alice.node.lock()
    page = await browser.newPage()
    outside = (await watchRequests(page, alice.node.ui!.url(), { blockOutside: true })).outside
  })
  after(async () => {
    await browser?.close()
    await Promise.allSettled([alice?.stop(), bob?.stop()])
    await Promise.allSettled([alice?.remove(), bob?.remove()])
    await network?.stop()
  })

  const marker = `hello-${Date.now().toString(36)}`
  const sentMarker = `orchard${Date.now().toString(36)}`
  const replyMarker = `reply-${Date.now().toString(36)}`

  it('unlocks, and reads a message that came over Tor while the vault was locked', async () => {
    const sent = await bob.submit([alice.identity.address], 'Plans for Saturday', `Hi Alice,\r\nare we still on? ${marker}\r\n`)
    assert.equal(sent.results[0]?.ok, true, String(sent.results[0]?.reply))
    await waitFor('alice\'s node to receive bob\'s message (sealed: the vault is locked)', () => bob.node.queue.list().length === 0, 120_000, 250)

    await page.goto(alice.node.ui!.url() + '/mail/Inbox')
    assert.match(page.url(), /\/unlock$/, 'no session: the UI sends the owner to the unlock page')
    await step('01-unlock')
    await page.getByLabel('Passphrase').fill(TEST_PASSPHRASE)
    await page.getByRole('button', { name: 'Unlock' }).click()
    await page.waitForURL(/\/mail\/Inbox$/)
    assert.equal(alice.node.vault.state(), 'unlocked')
    await step('02-inbox')
    const row = page.getByRole('link', { name: 'Plans for Saturday' })
    await row.waitFor({ timeout: 30_000 })
    await row.click()
    await page.waitForURL(/\/message\/\d+$/)
    await page.getByRole('heading', { name: 'Plans for Saturday' }).waitFor()
    const body = await page.getByLabel('Message text').textContent()
    assert.match(body ?? '', new RegExp(marker))
    assert.match(await page.locator('dl.facts').textContent() ?? '', new RegExp(bob.identity.address.replace(/\./g, '\\.')))
    await step('03-message')
  })

  it('writes to bob, shows the route over Tor while typing, and follows the message from queued to delivered', async () => {
    await page.getByRole('link', { name: 'Write' }).click()
    await page.waitForURL(/\/compose$/)
    const alive = page.waitForRequest(r => r.url().endsWith('/compose/alive') && r.method() === 'POST', { timeout: 10_000 })
    await page.getByLabel('To', { exact: true }).fill(bob.identity.address)
    // The route appears as the address is typed (htmx, after a short pause), with bob's key
    // (from his signed mail): Encrypt ticks itself.
    await page.locator('#routes .route-onion').waitFor({ timeout: 10_000 })
    assert.match(await page.locator('#routes').textContent() ?? '', /directly over Tor/)
    await page.locator('#routes .key-ok', { hasText: 'encrypted: key pinned' }).waitFor({ timeout: 10_000 })
    assert.equal(await page.getByLabel('Encrypt', { exact: true }).isChecked(), true)
    // The owner's own choice sticks (app.js marks it), and the recipient's line follows it.
    await page.getByLabel('Encrypt', { exact: true }).uncheck()
    await page.locator('#routes .key-ok', { hasText: 'not encrypted: key pinned' }).waitFor({ timeout: 10_000 })
    assert.equal(await page.locator('#encrypt-touched').inputValue(), '1')
    await page.getByLabel('Encrypt', { exact: true }).check()
    await page.locator('#routes .key-ok', { hasText: /^encrypted: key pinned/ }).waitFor({ timeout: 10_000 })
    await page.getByLabel('Subject').fill('Saturday it is')
    await page.getByLabel('Message', { exact: true }).fill(`Yes! Bring the ${sentMarker} pie.\n`)
    // Typing counted as use of the page (auto-lock must not take a half-written message).
    assert.equal((await (await alive).response())?.status(), 204)
    await step('04-compose')
    await page.getByRole('button', { name: 'Send' }).click()
    await page.waitForURL(/\/outbox$/)
    await step('05-outbox-queued')
    // The outbox polls itself: the state changes on the page without a reload.
    const state = page.locator('.outbox-entry', { hasText: 'Saturday it is' }).locator('[data-state]')
    const seen = new Set<string>()
    await waitFor('the outbox to show the message delivered', async () => {
      const s = await state.first().getAttribute('data-state').catch(() => null)
      if (s !== null) seen.add(s)
      return s === 'delivered'
    }, 120_000, 200)
    assert.ok(seen.has('delivered'))
    assert.ok([...seen].every(s => ['queued', 'delivering', 'delivered'].includes(s)), [...seen].join(', '))
    await step('06-outbox-delivered')
    const arrived = await findIn(bob, 'Inbox', sentMarker)
    assert.ok(arrived !== undefined, 'bob\'s node holds the message')
    assert.equal(pgpMimeKind(splitEntity(arrived.raw)), 'encrypted', 'it went encrypted')
    assert.doesNotMatch(arrived.raw.toString(), new RegExp(sentMarker))
    assert.match((await bob.node.openpgp.readMessage(arrived.raw)).display?.toString() ?? '', /Subject: Saturday it is/)
  })

  it('finds the sent message by search', async () => {
    await page.getByRole('link', { name: 'Mail' }).click()
    await page.getByLabel('Search mail').fill(sentMarker)
    await page.getByRole('button', { name: 'Search' }).click()
    await page.waitForURL(/\/search$/)
    await waitFor('search to find it', async () => {
      if (await page.getByRole('link', { name: 'Saturday it is' }).count() > 0) return true
      // The index catches up in the background; search again.
      await page.getByRole('button', { name: 'Search' }).click()
      return false
    }, 30_000, 500)
    await step('07-search')
    assert.doesNotMatch(page.url(), new RegExp(sentMarker), 'the search words are not in the URL')
  })

  it('answers bob\'s message with a reply that threads', async () => {
    await page.getByRole('link', { name: 'Mail' }).click()
    await page.getByRole('link', { name: 'Plans for Saturday' }).click()
    await page.getByRole('link', { name: 'Reply', exact: true }).click()
    await page.waitForURL(/\/compose\?reply=/)
    assert.match(await page.getByLabel('To', { exact: true }).inputValue(), new RegExp(`<${bob.identity.address.replace(/\./g, '\\.')}>$`))
    assert.equal(await page.getByLabel('Subject').inputValue(), 'Re: Plans for Saturday')
    assert.match(await page.getByLabel('Message', { exact: true }).inputValue(), new RegExp(`> are we still on\\? ${marker}`))
    await page.getByLabel('Message', { exact: true }).press('Control+Home')
    await page.getByLabel('Message', { exact: true }).pressSequentially(`See you. ${replyMarker}\n`)
    await step('08-reply')
    await page.getByRole('button', { name: 'Send' }).click()
    await page.waitForURL(/\/outbox$/)
    const reply = await waitFor('bob to receive the reply', async () => await findIn(bob, 'Inbox', replyMarker), 120_000, 500)
    const original = await findIn(bob, 'Sent', marker)
    assert.equal(messageIdOf(reply.raw) !== undefined, true)
    assert.equal(headerValue(reply.raw, 'In-Reply-To'), `<${messageIdOf(original!.raw)}>`, 'the reply points at bob\'s message')
  })

  it('reads bob\'s next message, encrypted to alice\'s key from her mail, with its badges', async () => {
    const secret = `encrypted-${Date.now().toString(36)}`
    const sent = await bob.submit([alice.identity.address], 'Under the oak', `The key is ${secret}.\r\n`)
    assert.equal(sent.results[0]?.ok, true, String(sent.results[0]?.reply))
    const stored = await waitFor('alice\'s node to receive bob\'s encrypted message', async () => await findIn(alice, 'Inbox', secret), 120_000, 250)
    assert.equal(pgpMimeKind(splitEntity(stored.raw)), 'encrypted', 'stored in alice\'s vault as it came: multipart/encrypted')
    assert.doesNotMatch(stored.raw.toString(), new RegExp(`${secret}|Under the oak`))
    await page.getByRole('link', { name: 'Mail' }).click()
    // Its subject is inside the encryption; the list shows it once the node has read the message.
    await waitFor('the protected subject in the list', async () => {
      if (await page.getByRole('link', { name: 'Under the oak' }).count() > 0) return true
      await page.reload()
      return false
    }, 30_000, 300)
    const row = page.locator('tr', { has: page.getByRole('link', { name: 'Under the oak' }) })
    assert.match(await row.textContent() ?? '', /encrypted[\s\S]*signed/)
    await page.getByRole('link', { name: 'Under the oak' }).click()
    await page.getByRole('heading', { name: 'Under the oak' }).waitFor()
    const badges = await page.getByLabel('Security').textContent() ?? ''
    assert.match(badges, /Encrypted/)
    assert.match(badges, /Signed by [0-9A-F ]{19} \(pinned\)/)
    assert.match(await page.getByLabel('Message text').textContent() ?? '', new RegExp(secret))
    assert.equal(await page.getByRole('alert').count(), 0, 'no warning')
    await step('09-encrypted-message')
  })

  it('shows bob\'s key in Contacts and alice\'s own in Settings', async () => {
    await page.getByRole('link', { name: 'Contacts' }).click()
    await page.waitForURL(/\/contacts$/)
    const entry = page.getByRole('article', { name: bob.identity.address })
    const bobKey = (await bob.node.openpgp.ownKey()).fingerprint.replace(/(.{4})/g, '$1 ').trim()
    assert.match(await entry.textContent() ?? '', new RegExp(`${bobKey}[\\s\\S]*not compared with them yet`))
    await step('10-contacts')
    await page.getByRole('link', { name: 'Settings' }).click()
    const own = (await alice.node.openpgp.ownKey()).fingerprint.replace(/(.{4})/g, '$1 ').trim()
    assert.equal(await page.locator('#own-fingerprint').textContent(), own)
    await step('11-settings-key')
  })

  it('locks', async () => {
    await page.getByRole('button', { name: 'Lock' }).click()
    await page.waitForURL(/\/unlock$/)
    assert.equal(alice.node.vault.state(), 'locked')
    await step('12-locked')
    // Locked means locked: the old session no longer opens a page.
    await page.goto(alice.node.ui!.url() + '/mail/Inbox')
    assert.match(page.url(), /\/unlock$/)
    assert.deepEqual(outside, [], 'no request left the UI\'s origin')
  })
})
