// The Friends, Backup and Recovery pages in a real headless Chromium (the HTTP behaviour is
// test/ui-friends.test.ts): the invite is made with htmx in place and its QR code is drawn,
// nothing leaves the UI's origin and the CSP blocks nothing; the invite pasted into a second
// node's Friends page makes them friends; "Back up now" swaps its answer in with htmx; the
// three pages pass the accessibility checks.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import type { Page } from 'playwright-core'
import { accessibilityProblems, missingBrowserPrerequisites, screenshot, startBrowser, watchRequests, type RequestWatch, type TestBrowser, signIn } from './harness/browser.ts'
import { sharedTorNetwork, type PrivateTorNetwork } from './harness/tor-network.ts'
import { startTestNode, testSettings, type TestNode } from './harness/nodes.ts'

const missing = missingBrowserPrerequisites()
const skip = missing.length > 0 ? missing.join('; ') : false
const SCREENSHOTS = 'ui-friends'

describe('the Friends, Backup and Recovery pages in Chromium', { skip, timeout: 180_000 }, () => {
  let network: PrivateTorNetwork
  let alice: TestNode, bob: TestNode
  let browser: TestBrowser
  let alicePage: Page, bobPage: Page
  let aliceWatch: RequestWatch
  const consoleErrors: string[] = []
  let invite = ''

  before(async () => {
    network = await sharedTorNetwork()
    const settings = testSettings(network, { friends: { direct: true, everyMinutes: 0, afterNewMailSeconds: 0, auditEveryMinutes: 0 } })
    ;[alice, bob, browser] = await Promise.all([startTestNode('alice', settings), startTestNode('bob', settings), startBrowser()])
    alicePage = await browser.newPage()
    aliceWatch = await watchRequests(alicePage, alice.node.ui!.url(), { blockOutside: true })
    // A CSP violation (an inline script or style in the invite's SVG, say) shows as a console error.
    alicePage.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()) })
    await signIn(alicePage, alice.node.ui!.url())
    bobPage = await browser.newPage()
    await signIn(bobPage, bob.node.ui!.url())
  })

  after(async () => {
    await browser?.close()
    await Promise.allSettled([alice?.stop(), bob?.stop()])
    await Promise.allSettled([alice?.remove(), bob?.remove()])
    await network?.stop()
  })

  it('makes an invite in place with htmx and draws its QR code', async () => {
    const base = alice.node.ui!.url()
    await alicePage.getByRole('link', { name: 'Friends' }).click()
    await alicePage.waitForURL(`${base}/friends`)
    await alicePage.getByLabel('Storage to offer them (MiB)').first().fill('64')
    await alicePage.getByRole('button', { name: 'Make an invite' }).click()
    const qr = alicePage.locator('#invite-result .qr svg')
    await qr.waitFor({ state: 'visible', timeout: 10_000 })
    assert.equal(alicePage.url(), `${base}/friends`, 'htmx swapped the invite in: no navigation')
    const box = await qr.boundingBox()
    assert.ok(box !== null && box.width > 100 && box.height > 100, 'the QR code is drawn at a scannable size')
    assert.equal(await qr.getAttribute('role'), 'img')
    invite = (await alicePage.locator('#invite-code').innerText()).trim()
    assert.ok(invite.length > 40)
    await screenshot(alicePage, SCREENSHOTS, 'invite')
    assert.deepEqual(aliceWatch.outside, [], 'nothing left the UI\'s origin')
    assert.deepEqual(consoleErrors, [], 'no script error and no CSP violation')
  })

  it('the invite pasted on another node makes them friends', async () => {
    const base = bob.node.ui!.url()
    await bobPage.goto(`${base}/friends`)
    await bobPage.getByLabel('The invite your friend gave you').fill(invite)
    await Promise.all([
      bobPage.waitForURL(`${base}/friends`),
      bobPage.getByRole('button', { name: 'Accept' }).click()
    ])
    await bobPage.getByText('alice is now your friend.').waitFor({ timeout: 10_000 })
    assert.equal(await bobPage.getByRole('heading', { name: 'alice', level: 3 }).count(), 1)
    await alicePage.reload()
    assert.equal(await alicePage.getByRole('heading', { name: 'bob', level: 3 }).count(), 1)
  })

  it('"Back up now" answers in place, saying why it cannot run with one friend', async () => {
    const base = alice.node.ui!.url()
    await alicePage.getByRole('link', { name: 'Backup' }).click()
    await alicePage.waitForURL(`${base}/backup`)
    await alicePage.getByRole('button', { name: 'Back up now' }).click()
    const failed = alicePage.locator('[data-testid="friends-failed"]')
    await failed.waitFor({ timeout: 20_000 })
    assert.match(await failed.innerText(), /needs at least 3 friends/)
    assert.equal(alicePage.url(), `${base}/backup`)
    await screenshot(alicePage, SCREENSHOTS, 'backup')
  })

  it('the three pages pass the accessibility checks', async () => {
    const base = alice.node.ui!.url()
    for (const path of ['/friends', '/backup', '/recovery']) {
      await alicePage.goto(`${base}${path}`)
      assert.deepEqual(await accessibilityProblems(alicePage), [], path)
    }
    assert.deepEqual(aliceWatch.outside, [])
    assert.deepEqual(consoleErrors, [])
  })
})
