// The web UI of one real node (real vault, real queue, its own tor on the private Tor network)
// driven by a real headless Chromium, as its owner would use it: signing in on the unlock
// page, clicking to a message. What is checked is what only a browser can show: hostile HTML
// mail stays text and loads nothing, every page is usable by screen reader and keyboard, a
// cross-site form cannot act with the owner's cookie, and wrong passphrases are answered in
// the page. (ui-security.test.ts checks the server's rules over plain HTTP.)
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { BrowserContext, Dialog, Page } from 'playwright-core'
import {
  accessibilityProblems, keyboardReach, missingBrowserPrerequisites, screenshot, signIn, startBrowser, watchRequests,
  type RequestWatch, type TestBrowser
} from './harness/browser.ts'
import { sharedTorNetwork, type PrivateTorNetwork } from './harness/tor-network.ts'
import { startTestNode, testSettings, type TestNode } from './harness/nodes.ts'
import { generateOnionKey } from '../protocol/onion.ts'
import { newMessageId, rfc5322Date } from '../protocol/message.ts'

const missing = missingBrowserPrerequisites()
const skip = missing.length > 0 ? missing.join('; ') : false

const VISIBLE_WORDS = 'Quarterly figures for the harbour office are below'
const HOSTILE_SUBJECT = 'Invoice <img src="http://remote.invalid/subject.png"> overdue'
const ATTACHMENT_SUBJECT = 'Your invoice, attached'
const SCREENSHOTS = 'ui-pages'

/** One text/html part, no text/plain alternative: everything a mail can try to load or run. */
const HOSTILE_HTML = `<!doctype html>
<html><head>
<meta http-equiv="refresh" content="0;url=http://remote.invalid/refresh">
<link rel="stylesheet" href="http://remote.invalid/s.css">
<style>@import url(http://remote.invalid/i.css); body { background: url(http://remote.invalid/bg.png) }</style>
<script>alert('head script')</script>
</head>
<body onload="alert('onload')">
<p style="background-image: url(http://remote.invalid/inline.png)">${VISIBLE_WORDS}.</p>
<script>alert(document.cookie)</script>
<img src="http://remote.invalid/track.png" width="1" height="1" alt="">
<img srcset="http://remote.invalid/a.png 1x, http://remote.invalid/b.png 2x" alt="chart">
<picture><source srcset="http://remote.invalid/c.webp"><img src="http://remote.invalid/d.png" alt="logo"></picture>
<form action="http://remote.invalid/post" method="post"><input name="x"><button>Go</button></form>
<iframe src="http://remote.invalid/"></iframe>
<a href="javascript:alert(1)">click</a>
<a href="http://remote.invalid/phish">Check your account</a>
<svg onload="alert(1)"><image href="http://remote.invalid/svg.png"/></svg>
<object data="http://remote.invalid/o"></object>
<embed src="http://remote.invalid/e">
<video poster="http://remote.invalid/p.png" src="http://remote.invalid/v.mp4"></video>
<audio src="http://remote.invalid/a.mp3" autoplay></audio>
<p>Regards, the harbour office</p>
</body></html>
`

function message (node: TestNode, from: string, subject: string, headers: string[], body: string): Buffer {
  return Buffer.from([
    `From: ${from}`,
    `To: <${node.identity.address}>`,
    `Subject: ${subject}`,
    `Date: ${rfc5322Date(new Date())}`,
    `Message-ID: <${newMessageId('sender.example')}>`,
    'MIME-Version: 1.0',
    ...headers,
    '',
    body
  ].join('\r\n'))
}

/** A plain message with an attachment whose name ends in a second, dangerous extension. */
function withAttachment (node: TestNode): Buffer {
  const boundary = 'b-9f2c'
  return message(node, 'Accounts <accounts@sender.example>', ATTACHMENT_SUBJECT, [`Content-Type: multipart/mixed; boundary="${boundary}"`], [
    `--${boundary}`,
    'Content-Type: text/plain; charset=utf-8',
    '',
    'Please find the invoice attached.',
    `--${boundary}`,
    'Content-Type: application/octet-stream',
    'Content-Disposition: attachment; filename="invoice.pdf.exe"',
    'Content-Transfer-Encoding: base64',
    '',
    Buffer.from('MZ this is not really a program').toString('base64'),
    `--${boundary}--`,
    ''
  ].join('\r\n'))
}

/** A page that answers a few paths, and notes the Cookie header of each request; for the cross-site attacker. */
async function serve (pages: Record<string, string>): Promise<{ server: Server, origin: string, cookies: string[] }> {
  const cookies: string[] = []
  const server = createServer((req, res) => {
    cookies.push(req.headers.cookie ?? '')
    const body = pages[new URL(req.url ?? '/', 'http://x').pathname]
    if (body === undefined) { res.writeHead(404).end(); return }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(body)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, cookies }
}

describe('the web UI of a real node in Chromium', { skip, timeout: 180_000 }, () => {
  let network: PrivateTorNetwork
  let node: TestNode
  let browser: TestBrowser
  let base: string
  /** The secret path the UI is under (/s/<key>). */
  let root: string
  /** The owner's signed-in tab: every request leaving the UI's origin is recorded and blocked. */
  let owner: Page
  let ownerWatch: RequestWatch
  const dialogs: string[] = []
  /** While set, htmx's polling (/live/...) is held back, so the page stays still under keyboardReach. */
  let holdPolling = false
  let hostileId: string
  let attachmentId: string

  before(async () => {
    network = await sharedTorNetwork()
    ;[node, browser] = await Promise.all([startTestNode('uibrowser', testSettings(network)), startBrowser()])
    const ui = node.node.ui
    assert.ok(ui !== undefined, 'the node started its web UI')
    base = ui.url()
    root = new URL(base).pathname
    const store = node.node.store
    const to = [node.identity.address]
    for (let i = 1; i <= 3; i++) {
      await store.add({ folder: 'Inbox', raw: message(node, `Friend ${i} <friend${i}@sender.example>`, `Plain note ${i}`, ['Content-Type: text/plain; charset=utf-8'], `Note number ${i}.`), from: `friend${i}@sender.example`, to })
    }
    attachmentId = (await store.add({ folder: 'Inbox', raw: withAttachment(node), from: 'accounts@sender.example', to })).meta.id
    hostileId = (await store.add({
      folder: 'Inbox',
      raw: message(node, '"<script>alert(2)</script>" <mallory@sender.example>', HOSTILE_SUBJECT, ['Content-Type: text/html; charset=utf-8', 'Content-Transfer-Encoding: 8bit'], HOSTILE_HTML),
      from: 'mallory@sender.example',
      to
    })).meta.id

    owner = await browser.newPage()
    ownerWatch = await watchRequests(owner, base, { blockOutside: true })
    owner.context().on('dialog', (dialog: Dialog) => { dialogs.push(`${dialog.type()}: ${dialog.message()}`); void dialog.dismiss().catch(() => {}) })
    await owner.context().route((url) => holdPolling && url.pathname.startsWith(`${root}/live/`), async (route) => await route.abort())
    await signIn(owner, base)
  })

  after(async () => {
    await browser?.close()
    await node?.stop()
    await node?.remove()
    await network?.stop()
  })

  it('shows hostile HTML mail as text: its words are there, nothing loads, nothing runs', async () => {
    await owner.goto(`${base}/mail/Inbox`)
    await owner.getByRole('link', { name: HOSTILE_SUBJECT }).click()
    await owner.waitForURL(`${base}/message/${hostileId}`)
    await owner.waitForLoadState('networkidle')

    const body = owner.locator('pre.body')
    assert.match(await body.innerText(), new RegExp(VISIBLE_WORDS))
    assert.match(await body.innerText(), /Regards, the harbour office/)
    // The subject and sender are text too: their markup is shown, not made into elements.
    assert.equal(await owner.getByRole('heading', { level: 1 }).innerText(), HOSTILE_SUBJECT)
    assert.match(await owner.locator('dl.facts').innerText(), /<script>alert\(2\)<\/script>/)

    assert.deepEqual(ownerWatch.outside, [], 'no request left the UI\'s origin')
    assert.deepEqual(dialogs, [], 'no dialog opened')
    assert.equal(await body.evaluate((el) => (el as unknown as { childElementCount: number }).childElementCount), 0, 'the message body is text only')
    assert.equal(await owner.locator('pre.body').count(), 1)
    const remote = await owner.evaluate(`[...document.querySelectorAll('img, iframe, frame, object, embed, video, audio, source, link[rel~=stylesheet], script, form, a, base, meta[http-equiv]')]
      .filter((el) => ['src', 'href', 'data', 'action', 'poster', 'srcset', 'content'].some((name) => /remote\\.invalid|javascript:/i.test(el.getAttribute(name) ?? '')))
      .map((el) => el.outerHTML.slice(0, 120))`)
    assert.deepEqual(remote, [], 'no element points at the remote host')
    // Wider: no attribute anywhere in the DOM names the remote host or runs code.
    const attributes = await owner.evaluate(`[...document.querySelectorAll('*')].flatMap((el) => [...el.attributes]
      .filter((a) => /remote\\.invalid|javascript:/i.test(a.value) || /^on/i.test(a.name))
      .map((a) => el.tagName + ' ' + a.name + '=' + a.value))`)
    assert.deepEqual(attributes, [])
    // The page is still the message: no refresh took it anywhere.
    assert.equal(owner.url(), `${base}/message/${hostileId}`)
  })

  it('warns about an attachment named like a document but a program, and only ever downloads it', async () => {
    await owner.goto(`${base}/mail/Inbox`)
    await owner.getByRole('link', { name: ATTACHMENT_SUBJECT }).click()
    await owner.waitForURL(`${base}/message/${attachmentId}`)
    const item = owner.locator('li', { has: owner.getByRole('link', { name: 'invoice.pdf.exe' }) })
    const warning = await item.locator('.risk').innerText()
    assert.match(warning, /^Warning: /)
    assert.match(warning, /\.exe/)
    assert.match(warning, /program/)

    const link = owner.getByRole('link', { name: 'invoice.pdf.exe' })
    const href = await link.getAttribute('href')
    assert.equal(href, `${root}/message/${attachmentId}/attachment/0`)
    // Clicking saves it; the browser turns a download's response into no page event, so the
    // headers are read with the same session by the context's own request client.
    const [download] = await Promise.all([owner.waitForEvent('download'), link.click()])
    assert.equal(download.suggestedFilename(), 'invoice.pdf.exe')
    await download.cancel()
    const response = await owner.context().request.get(`${new URL(base).origin}${href}`)
    assert.equal(response.status(), 200)
    assert.match(response.headers()['content-disposition'] ?? '', /^attachment; filename="invoice\.pdf\.exe"/)
    assert.equal(response.headers()['content-type'], 'application/octet-stream')
    assert.match(response.headers()['content-security-policy'] ?? '', /sandbox/)
    assert.equal((await response.body()).toString(), 'MZ this is not really a program')
    // The page stayed where it was: the file was not opened in the UI's origin.
    assert.equal(owner.url(), `${base}/message/${attachmentId}`)
    assert.deepEqual(ownerWatch.outside, [])
  })

  it('every main page has names for all its controls, and Tab reaches every control', async () => {
    // Something in the outbox, so its page has its buttons: a message to an onion no one runs.
    const submitted = await node.submit([`nobody@${generateOnionKey().address}.onion`], 'To nowhere', 'This waits in the queue.\r\n')
    assert.equal(submitted.results[0]?.ok, true)

    const signedOut = await browser.newPage()
    const pages: Array<{ name: string, page: Page, path: string }> = [
      { name: 'unlock', page: signedOut, path: '/unlock' },
      { name: 'unlock-recovery', page: signedOut, path: '/unlock?method=recovery' },
      { name: 'mailbox', page: owner, path: '/mail/Inbox' },
      { name: 'message', page: owner, path: `/message/${attachmentId}` },
      { name: 'message-html', page: owner, path: `/message/${hostileId}` },
      { name: 'compose', page: owner, path: '/compose' },
      { name: 'outbox', page: owner, path: '/outbox' },
      { name: 'dashboard', page: owner, path: '/dashboard' },
      { name: 'settings', page: owner, path: '/settings' }
    ]
    const problems: string[] = []
    holdPolling = true
    try {
      for (const { name, page, path } of pages) {
        await page.goto(`${base}${path}`)
        assert.equal(new URL(page.url()).pathname, `${root}${path.split('?')[0]}`, `${name}: not sent elsewhere`)
        await page.waitForLoadState('networkidle')
        await screenshot(page, SCREENSHOTS, name)
        for (const problem of await accessibilityProblems(page)) problems.push(`${name}: ${problem}`)
        const { reached, unreachable } = await keyboardReach(page)
        for (const control of unreachable) problems.push(`${name}: Tab never reaches ${control}`)
        if (reached.length === 0) problems.push(`${name}: Tab reaches nothing`)
        // The first Tab stop is the skip link, so keyboard users can pass the navigation.
        if (reached[0] !== 'a "Skip to content" -> #main') problems.push(`${name}: the first Tab stop is ${reached[0]}, not the skip link`)
      }
    } finally {
      holdPolling = false
      await signedOut.close()
    }
    assert.deepEqual(problems, [])
    assert.deepEqual(ownerWatch.outside, [])
  })

  it('keeps keyboard focus on a control while htmx replaces the part of the page it is in', async () => {
    // The dashboard and outbox replace their live part every 2 s; a keyboard user on a button
    // there must not be thrown back to the top of the page each time.
    for (const [path, button, live] of [
      ['/dashboard', 'Check and repair storage now', '/live/dashboard'],
      ['/outbox', 'Retry now', '/live/outbox']
    ] as const) {
      await owner.goto(`${base}${path}`)
      await owner.getByRole('button', { name: button }).first().focus()
      await owner.waitForResponse((r) => r.url() === `${base}${live}` && r.status() === 200, { timeout: 5000 })
      // htmx swaps, then settles (20 ms by default), then restores focus.
      await owner.waitForTimeout(200)
      const focused = await owner.evaluate('document.activeElement?.tagName + " " + document.activeElement?.textContent')
      assert.equal(focused, `BUTTON ${button}`, `${path}: focus stays on "${button}" after a poll`)
    }
  })

  it('refuses a cross-site form that posts to /lock and /settings/autolock with the owner\'s cookie', async () => {
    // The attacker's page is on another port of 127.0.0.1. That is the SAME SITE as the UI
    // (a site is scheme and registrable domain; ports do not count), so the SameSite=Strict
    // session cookie IS sent with these posts: what stops them is the UI's Origin check and
    // CSRF token, and that is what this test exercises. (The attacker here knows the UI's
    // secret path; one that does not cannot even aim a form at it.)
    // The third page hides where it is from (no-referrer: the browser sends "Origin: null").
    const forms = (action: string, field: string, head = ''): string => `<!doctype html><html lang="en"><head><title>Win a prize</title>${head}</head><body>
<form id="f" method="post" action="${base}${action}"><input type="hidden" name="${field}" value="1"></form>
<script>document.getElementById('f').submit()</script></body></html>`
    const attacker = await serve({
      '/lock': forms('/lock', 'x'),
      '/autolock': forms('/settings/autolock', 'minutes'),
      '/lock-hidden': forms('/lock', 'x', '<meta name="referrer" content="no-referrer">')
    })
    const context: BrowserContext = (await browser.newPage()).context()
    try {
      const victim = context.pages()[0]!
      await signIn(victim, base)
      for (const [path, target, origin] of [
        ['/lock', '/lock', attacker.origin],
        ['/autolock', '/settings/autolock', attacker.origin],
        ['/lock-hidden', '/lock', 'null']
      ] as const) {
        const tab = await context.newPage()
        const posted = tab.waitForRequest((r) => r.url() === `${base}${target}` && r.method() === 'POST')
        const answered = tab.waitForResponse((r) => r.url() === `${base}${target}`)
        await tab.goto(`${attacker.origin}${path}`)
        const request = await posted
        const headers = await request.allHeaders()
        assert.match(headers.cookie ?? '', /smtorp_session=/, 'the session cookie went along (same site), so the refusal is the server\'s doing')
        assert.equal(headers.origin, origin)
        const response = await answered
        assert.equal(response.status(), 403, `${target} was refused`)
        await tab.waitForLoadState()
        // The Origin check answers first; the token check would refuse it as well.
        assert.match(await tab.getByRole('alert').innerText(), /another web site|security token/)
        await tab.close()
      }
      assert.equal(node.node.vault.state(), 'unlocked')
      // The owner is still signed in, and auto-lock still has its old value.
      await victim.goto(`${base}/settings`)
      assert.equal(new URL(victim.url()).pathname, `${root}/settings`)
      // The attacker's own pages, on another port of the same host, never got the session
      // cookie: browsers send it to every port, but only under the UI's secret path.
      assert.ok(attacker.cookies.length >= 3)
      for (const cookie of attacker.cookies) assert.doesNotMatch(cookie, /smtorp_session/)
      assert.equal(await victim.getByLabel(/Lock the vault after/).inputValue(), '15')
    } finally {
      await context.close()
      await new Promise((resolve) => attacker.server.close(resolve))
    }
  })

  it('says in the page when the passphrase is wrong, and to wait after several wrong ones', async () => {
    const page = await browser.newPage()
    try {
      const seen: string[] = []
      let waitSeconds: number | undefined
      // Three wrong ones are free (node/vault/unlock-throttle.ts); then each must wait, doubling from 1 s.
      for (let attempt = 1; attempt <= 5 && waitSeconds === undefined; attempt++) {
        await page.goto(`${base}/unlock`)
        await page.getByLabel('Passphrase', { exact: true }).fill(`wrong guess ${attempt}`)
        const [response] = await Promise.all([
          page.waitForResponse((r) => r.url() === `${base}/unlock` && r.request().method() === 'POST'),
          page.getByRole('button', { name: 'Unlock' }).click()
        ])
        await page.waitForLoadState()
        const alert = await page.getByRole('alert').innerText()
        seen.push(`${response.status()} ${alert}`)
        const wait = /Wait (\d+) seconds?/.exec(alert)
        if (wait !== null) waitSeconds = Number(wait[1])
        // Still the unlock page, still not signed in.
        assert.equal(new URL(page.url()).pathname, `${root}/unlock`)
        assert.equal(await page.getByLabel('Passphrase', { exact: true }).count(), 1)
      }
      assert.deepEqual(seen.slice(0, 3), Array(3).fill('401 That passphrase is wrong.'))
      assert.ok(waitSeconds !== undefined && waitSeconds >= 1, `the page says to wait; it said: ${seen.join(' | ')}`)
      assert.match(seen.at(-1)!, /^429 Too many wrong attempts\. Wait \d+ seconds?, then try again\.$/)
      assert.deepEqual((await page.context().cookies()).filter((c) => c.name === 'smtorp_session'), [])

      // After the wait, the right passphrase signs in (and resets the throttle for the owner).
      await page.waitForTimeout(waitSeconds * 1000 + 200)
      await signIn(page, base)
      assert.equal(node.node.vault.state(), 'unlocked')
    } finally {
      await page.close()
    }
  })
})
