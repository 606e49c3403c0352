// Recovery from the browser of a new machine (issue "Friends", point 7: "`smtorp recover` (and
// the UI) asks the custodians"), in a real headless Chromium: alice has three friends who hold
// her backup and recovery shares (2 of 3); her data directory is wiped. `smtorp recover --ui`
// runs as its own process and prints the page's address with its key. On the page alice names
// her custodians and a new passphrase; the page shows each custodian's verification code; bob
// sees the same code on his own Recovery page and approves there, carol approves too, and the
// page follows the restore to the end. The node comes back with every message.
//
// Also: the page opens only with the key the terminal printed, and the key leaves the address
// bar; a wrong form is refused in words and comes back filled in (never with the passphrase);
// nothing leaves the page's origin, and the page passes the accessibility checks.
// Friends dial each other directly on loopback here (friends.direct); the same recovery over
// Tor is test/disaster-recovery.test.ts.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { get } from 'node:http'
import { join } from 'node:path'
import type { Page } from 'playwright-core'
import { accessibilityProblems, missingBrowserPrerequisites, screenshot, startBrowser, watchRequests, type RequestWatch, type TestBrowser, signIn } from './harness/browser.ts'
import { sharedTorNetwork, type PrivateTorNetwork } from './harness/tor-network.ts'
import { startTestNode, testSettings, waitFor, type TestNode } from './harness/nodes.ts'
import { TEST_KDF } from './harness/vault.ts'
import { vault as openVault } from '../node/vault/index.ts'
import { FOLDERS } from '../node/store/mail-store.ts'

const CLI = join(import.meta.dirname, '..', 'node', 'cli', 'main.ts')
const MESSAGES = 30
const NEW_PASSPHRASE = 'alice typed this on the new machine'
const missing = missingBrowserPrerequisites()
const skip = missing.length > 0 ? missing.join('; ') : false
const SCREENSHOTS = 'recover-ui'

describe('recovery from the browser of a new machine', { skip, timeout: 600_000 }, () => {
  let network: PrivateTorNetwork
  let alice: TestNode, bob: TestNode, carol: TestNode, dave: TestNode
  let browser: TestBrowser
  let page: Page, bobPage: Page
  let watch: RequestWatch
  const consoleErrors: string[] = []
  const kept = new Map<string, Buffer>()
  let aliceOnion = ''
  let aliceSeed: Buffer
  /** When alice's backup started and finished (ms). */
  let backupTimes: [number, number] = [0, 0]
  let child: ChildProcess | undefined
  let childOut = ''
  let childExit: Promise<number | null> | undefined
  let accessUrl = ''
  let newDir = ''
  const scratch: string[] = []

  before(async () => {
    network = await sharedTorNetwork()
    const settings = testSettings(network, { friends: { direct: true, everyMinutes: 0, afterNewMailSeconds: 0, auditEveryMinutes: 0 } })
    ;[alice, bob, carol, dave, browser] = await Promise.all([
      startTestNode('alice', settings), startTestNode('bob', settings), startTestNode('carol', settings), startTestNode('dave', settings), startBrowser()
    ])
    aliceOnion = alice.identity.onionKey.address
    aliceSeed = await readFile(join(alice.dir, 'identity', 'onion.seed'))
    bobPage = await browser.newPage()
    await signIn(bobPage, bob.node.ui!.url())
  })

  after(async () => {
    child?.kill('SIGKILL')
    await browser?.close()
    await Promise.allSettled([alice, bob, carol, dave].map(async n => await n?.stop()))
    await Promise.allSettled([alice, bob, carol, dave].map(async n => await n?.remove()))
    for (const dir of scratch) await rm(dir, { recursive: true, force: true })
    await network?.stop()
  })

  it('alice makes three friends custodians (2 of 3) and backs up to them; then her disk is gone', async () => {
    for (const friend of [bob, carol, dave]) await friend.node.friends!.accept((await alice.node.friends!.invite()).code)
    for (let n = 0; n < MESSAGES; n++) {
      const raw = Buffer.from(`From: <f${n}@example.org>\r\nTo: <alice@example.org>\r\nSubject: kept ${n}\r\nMessage-ID: <kept-${n}@example.org>\r\n\r\nzqrecoveruimarker${n} ${randomBytes(400).toString('base64')}\r\n`)
      kept.set(`kept-${n}@example.org`, raw)
      await alice.node.vault.add({ folder: n % 4 === 0 ? 'Sent' : 'Inbox', raw, from: `f${n}@example.org`, to: ['alice@example.org'], flags: [] })
    }
    const custodians = await alice.node.friends!.custody.appoint([bob, carol, dave].map(n => n.identity.onionKey.address), 2)
    assert.deepEqual(custodians.map(c => c.check?.ok), [true, true, true])
    const backup = await alice.node.friends!.backupNow()
    assert.equal(backup.ok, true, backup.error ?? '')
    backupTimes = [Date.parse(backup.startedAt), Date.parse(backup.finishedAt)]
    await alice.stop()
    await rm(alice.dir, { recursive: true, force: true })
  })

  it('`smtorp recover --ui` prints the page\'s address with a key; without the key the page stays shut', async () => {
    const parent = await mkdtemp(join(tmpdir(), 'smtorp-new-machine-'))
    scratch.push(parent)
    newDir = join(parent, 'alice')
    const direct = [bob, carol, dave].flatMap(n => ['--direct', `${n.identity.onionKey.address}=${n.node.friends!.directAddress()!}`])
    const socks = bob.node.tor.socksEndpoint() // given so that no tor is started; friends are dialled directly here
    child = spawn(process.execPath, ['--import', 'tsx', CLI, 'recover', '--ui', '--data', newDir, '--tor-socks', `${socks.host}:${socks.port}`, '--wait-minutes', '5', ...direct],
      { stdio: ['ignore', 'pipe', 'pipe'] })
    child.stdout!.on('data', (d: Buffer) => { childOut += d.toString() })
    child.stderr!.on('data', (d: Buffer) => { childOut += d.toString() })
    childExit = new Promise(resolve => child!.on('exit', resolve))
    accessUrl = await waitFor('the page address on stdout', () => /http:\/\/127\.0\.0\.1:\d+\/\?key=[\w-]{43}/.exec(childOut)?.[0], 60_000)
    const origin = new URL(accessUrl).origin

    for (const url of [`${origin}/`, `${origin}/?key=${'A'.repeat(43)}`, `${origin}/s/`, `${origin}/live/progress`]) {
      const answer = await fetch(url, { redirect: 'manual' })
      assert.equal(answer.status, 401, url)
      assert.match(await answer.text(), /printed in its terminal/)
    }
    const post = await fetch(`${origin}/start`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `owner=${aliceOnion}&custodians=x&passphrase=aaaaaaaa&passphrase2=aaaaaaaa` })
    assert.equal(post.status, 401, 'nothing starts without the key')
    const rebinding = await new Promise<number | undefined>((resolve, reject) => {
      // fetch() will not send another Host header; http.get will.
      get(accessUrl, { headers: { host: `evil.example:${new URL(origin).port}` } }, answer => { answer.resume(); resolve(answer.statusCode) }).on('error', reject)
    })
    assert.equal(rebinding, 421, 'another host name is refused (DNS rebinding)')

    // The key becomes a cookie sent only under the page's own random path: a cookie of
    // 127.0.0.1 goes to every port of it, and another local user's page must not get it.
    const opened = await fetch(accessUrl, { redirect: 'manual' })
    assert.equal(opened.status, 303)
    const base = opened.headers.get('location')!
    assert.match(base, /^\/s\/[\w-]{22}\/$/)
    const setCookie = opened.headers.get('set-cookie')!
    assert.match(setCookie, new RegExp(`; Path=${base}; HttpOnly; SameSite=Strict$`))
    const cookie = setCookie.split(';')[0]!
    assert.equal((await fetch(`${origin}/s/other/`, { headers: { cookie } })).status, 401, 'the cookie opens only the page\'s path')
    // The statics are open, but only to GET: a post there (no key, no Origin, any body) reaches
    // neither the CSRF check nor the error handler, whose pages must not name the path.
    for (const path of ['/favicon.ico', '/static/app.css']) {
      for (const contentType of ['application/x-www-form-urlencoded', 'application/x-unknown']) {
        const posted = await fetch(`${origin}${path}`, { method: 'POST', redirect: 'manual', headers: { 'content-type': contentType }, body: 'x=1' })
        assert.equal(posted.status, 405, `${path} ${contentType}`)
        assert.ok(!(await posted.text()).includes(base.slice(3, -1)), 'the answer does not name the path')
      }
    }
    assert.equal((await fetch(accessUrl, { redirect: 'manual', headers: { cookie } })).status, 303, 'the key is always sent away from the address bar')
    // With the cookie, a post still needs the page's CSRF token and its own Origin.
    const form = { 'content-type': 'application/x-www-form-urlencoded', cookie }
    const body = `owner=${aliceOnion}&custodians=${bob.identity.onionKey.address}&passphrase=aaaaaaaa&passphrase2=aaaaaaaa`
    assert.equal((await fetch(`${origin}${base}start`, { method: 'POST', redirect: 'manual', headers: form, body })).status, 403, 'no CSRF token')
    const page = await (await fetch(`${origin}${base}`, { headers: { cookie } })).text()
    const csrf = /name="_csrf" value="([^"]+)"/.exec(page)![1]!
    assert.equal((await fetch(`${origin}${base}start`, { method: 'POST', redirect: 'manual', headers: { ...form, origin: 'http://evil.example' }, body: `${body}&_csrf=${csrf}` })).status, 403, 'another origin')
    assert.match(await (await fetch(`${origin}${base}live/progress`, { headers: { cookie } })).text(), /Ask my custodians/, 'nothing was started')
  })

  it('the key becomes a cookie and leaves the address bar; a wrong form is refused in words and comes back filled in', async () => {
    page = await browser.newPage()
    const origin = new URL(accessUrl).origin
    watch = await watchRequests(page, origin, { blockOutside: true })
    page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()) })
    await page.goto(accessUrl)
    assert.match(page.url(), new RegExp(`^${origin}/s/[\\w-]{22}/$`), 'the key is gone from the address')
    await page.getByText('Tor is ready.').waitFor({ timeout: 10_000 })
    await page.getByLabel('Your old onion address').fill(aliceOnion)
    await page.getByLabel('Your custodians\' onion addresses, one per line').fill([bob, carol, dave].map(n => `${n.identity.onionKey.address}.onion`).join('\n'))
    await page.getByLabel('your friends\' nodes').check()
    await page.getByLabel('New passphrase', { exact: true }).fill(NEW_PASSPHRASE)
    await page.getByLabel('The new passphrase again').fill('something else entirely')
    await page.getByRole('button', { name: 'Ask my custodians' }).click()
    await page.getByText('The two passphrases differ.').waitFor({ timeout: 10_000 })
    assert.equal(await page.getByLabel('Your old onion address').inputValue(), aliceOnion, 'the form comes back filled in')
    assert.equal(await page.getByLabel('New passphrase', { exact: true }).inputValue(), '', 'but never with the passphrase')
    // Chromium reports the refused form's 400 answer on the console; nothing else may be there.
    assert.deepEqual(consoleErrors.splice(0), ['Failed to load resource: the server responded with a status of 400 (Bad Request)'])
    assert.deepEqual(await accessibilityProblems(page), [])
  })

  it('an attempt that fails says why and brings the form back, filled in, to try again', async () => {
    // Only carol and dave are named (2 of 3 are needed), and carol refuses: nobody else could
    // make up for her, so the wait ends at once.
    await page.getByLabel('Your custodians\' onion addresses, one per line').fill(`${carol.identity.onionKey.address}\n${dave.identity.onionKey.address}`)
    await page.getByLabel('New passphrase', { exact: true }).fill(NEW_PASSPHRASE)
    await page.getByLabel('The new passphrase again').fill(NEW_PASSPHRASE)
    await page.getByRole('button', { name: 'Ask my custodians' }).click()
    const request = await waitFor('carol\'s request', () => carol.node.friends!.custody.recoveryRequests().find(r => r.state === 'pending'), 30_000)
    carol.node.friends!.custody.refuse(request.id, 'carol could not reach alice')
    const failed = page.getByTestId('recover-failed')
    await failed.waitFor({ timeout: 60_000 })
    const why = await failed.innerText()
    assert.match(why, /No key was rebuilt: 0 custodians approved; .*refused \(carol could not reach alice\)/)
    assert.match(why, new RegExp(`${dave.identity.onionKey.address.slice(0, 8)}… had not decided[.;]`), 'dave is named, without a deadline that had not come')
    assert.equal(await page.getByLabel('Your custodians\' onion addresses, one per line').inputValue(), `${carol.identity.onionKey.address}\n${dave.identity.onionKey.address}`, 'the form is back, filled in')
    assert.deepEqual(await readdir(newDir).catch(() => []), [], 'nothing was written')
    await page.getByLabel('Your custodians\' onion addresses, one per line').fill([bob, carol, dave].map(n => `${n.identity.onionKey.address}.onion`).join('\n'))
  })

  it('the page shows each custodian\'s code; bob sees the same code in his own UI and approves, carol approves, and alice comes back', async () => {
    await page.getByLabel('New passphrase', { exact: true }).fill(NEW_PASSPHRASE)
    await page.getByLabel('The new passphrase again').fill(NEW_PASSPHRASE)
    await page.getByRole('button', { name: 'Ask my custodians' }).click()
    const bobRow = page.locator(`tr[data-onion="${bob.identity.onionKey.address}"]`)
    const code = (await bobRow.getByTestId('code').innerText({ timeout: 60_000 })).trim()
    assert.match(code, /^\d{4}-\d{4}$/)
    await screenshot(page, SCREENSHOTS, 'asking')
    assert.match(await page.getByTestId('approvals').innerText(), /0 approved/)

    // bob compares the code on his own Recovery page, then approves there.
    await bobPage.goto(`${bob.node.ui!.url()}/recovery`)
    await bobPage.getByTestId('release-code').first().waitFor({ timeout: 15_000 })
    assert.equal((await bobPage.getByTestId('release-code').first().innerText()).trim(), code, 'bob sees the code the new machine shows')
    await bobPage.getByRole('button', { name: 'Approve the request for alice\'s share' }).click()
    await page.locator(`tr[data-onion="${bob.identity.onionKey.address}"][data-phase="approved"]`).waitFor({ timeout: 30_000 })
    assert.match(await page.getByTestId('approvals').innerText(), /1 approved; 2 are needed/)

    const carolCode = (await page.locator(`tr[data-onion="${carol.identity.onionKey.address}"]`).getByTestId('code').innerText()).trim()
    const request = await waitFor('carol\'s request', () => carol.node.friends!.custody.recoveryRequests().find(r => r.state === 'pending'), 30_000)
    assert.equal(request.code, carolCode)
    await carol.node.friends!.custody.approve(request.id)

    const done = page.getByTestId('recover-done')
    await done.waitFor({ timeout: 180_000 })
    const doneText = await done.innerText()
    assert.match(doneText, new RegExp(`${aliceOnion}\\.onion\\. ${MESSAGES} of ${MESSAGES} messages restored`))
    // When the backup was made, so that an old one (a friend holding back the newest) shows.
    const madeAt = Date.parse(`${/from the backup made (\d{4}-\d\d-\d\d \d\d:\d\d) UTC: mail that arrived after it is not in it/.exec(doneText)?.[1]?.replace(' ', 'T')}Z`)
    assert.ok(madeAt >= backupTimes[0] - 60_000 && madeAt <= backupTimes[1], `the backup's time: ${doneText}`)
    await screenshot(page, SCREENSHOTS, 'done')
    assert.deepEqual(await accessibilityProblems(page), [])
    assert.deepEqual(watch.outside, [], 'nothing left the page\'s origin')
    assert.deepEqual(consoleErrors, [], 'no script error and no CSP violation')

    await page.getByRole('button', { name: 'Close the recovery' }).click()
    await page.getByText('The recovery has ended.').waitFor({ timeout: 10_000 })
    let timer: NodeJS.Timeout | undefined
    const exit = await Promise.race([childExit!, new Promise<'timeout'>(resolve => { timer = setTimeout(() => resolve('timeout'), 30_000) })])
    clearTimeout(timer)
    assert.equal(exit, 0, childOut.slice(-2000))
    assert.match(childOut, /Your node is back in[^]*from the backup made \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d/)
    assert.equal(childOut.includes(NEW_PASSPHRASE), false, 'the passphrase is never printed')

    assert.deepEqual(await readFile(join(newDir, 'identity', 'onion.seed')), aliceSeed, 'the same onion key')
    const vault = openVault({ dir: join(newDir, 'vault'), passphraseKdf: TEST_KDF, recoveryKdf: TEST_KDF })
    await vault.open()
    try {
      await vault.unlock({ passphrase: NEW_PASSPHRASE })
      const restored = new Map<string, Buffer>()
      for (const folder of FOLDERS) {
        for (const meta of await vault.list(folder)) {
          const m = (await vault.get(meta.id))!
          restored.set(/Message-ID: <([^>]+)>/.exec(m.raw.toString('latin1'))![1]!, m.raw)
        }
      }
      assert.deepEqual(restored, kept, 'every message byte for byte')
    } finally {
      await vault.close()
    }
  })
})
