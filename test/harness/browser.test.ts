// The browser harness against tiny pages served here, good and bad, so every check is seen both
// passing and failing: accessibility names, keyboard reach, requests leaving the origin, screenshots.
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import {
  accessibilityProblems, artifactDir, keyboardReach, missingBrowserPrerequisites, screenshot,
  startBrowser, watchRequests, type TestBrowser,
} from './browser.ts'

const missing = missingBrowserPrerequisites()
const skip = missing.length > 0 ? missing.join('; ') : false

// A 1×1 PNG.
const png = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==', 'base64')

const page = (title: string, body: string, head = ''): string =>
  `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${title}</title>${head}</head><body>${body}</body></html>`

const pages: Record<string, { type: string, body: string | Buffer, headers?: Record<string, string> }> = {
  // Every control labelled; hidden, disabled and type=hidden controls, which Tab must not reach.
  '/good': {
    type: 'text/html',
    body: page('Compose', `
      <h1>Compose</h1>
      <form method="post" action="/send">
        <label for="to">To</label> <input id="to" name="to" type="email">
        <label>Subject <input name="subject"></label>
        <label><input type="checkbox" name="encrypt" checked> Encrypt</label>
        <fieldset><legend>Priority</legend>
          <label><input type="radio" name="priority" value="normal" checked> Normal</label>
          <label><input type="radio" name="priority" value="high"> High</label>
        </fieldset>
        <label for="folder">Folder</label> <select id="folder"><option>Inbox</option><option>Sent</option></select>
        <label for="text">Message</label> <textarea id="text"></textarea>
        <input type="hidden" name="csrf" value="token">
        <button type="submit"><svg aria-hidden="true" width="16" height="16"><circle cx="8" cy="8" r="6"></circle></svg> Send</button>
        <button type="button" disabled>Schedule</button>
        <button type="button" hidden>Hidden</button>
        <div style="display: none"><a href="/nowhere">Invisible</a></div>
      </form>
      <a href="/bad">Another page</a>
      <img src="/logo.png" alt="smtorp logo">
      <img src="/logo.png" alt="">
      <div style="height: 2500px">A long page, to see the screenshot is of all of it.</div>`),
  },
  // An icon button without a name, an input without a label, an image without alt, an SVG that
  // says it is an image but has no name, an empty link,
  // and a keyboard trap (an input that swallows Tab) in front of a button.
  '/bad': {
    type: 'text/html',
    body: page('Bad', `
      <button type="button"><svg width="16" height="16"><circle cx="8" cy="8" r="6"></circle></svg></button>
      <input type="text" name="q">
      <img src="/logo.png">
      <svg role="img" width="16" height="16"><circle cx="8" cy="8" r="6"></circle></svg>
      <a href="/good"></a>
      <input aria-label="Trap" onkeydown="if (event.key === 'Tab') event.preventDefault()">
      <button type="button">After the trap</button>`),
  },
  // Things a mail's HTML might load from elsewhere: an image, a CSS background and font, a
  // prefetch, a fetch, a WebSocket; and two that reach no host: same-origin and data: images.
  '/remote': {
    type: 'text/html',
    body: page('Remote', `
      <img src="http://remote.invalid/x.png" alt="remote picture">
      <img src="/logo.png" alt="local picture">
      <img src="data:image/png;base64,${png.toString('base64')}" alt="inline picture">
      <p class="fancy">Styled text</p>
      <script>
        fetch('http://remote.invalid/api').catch(() => {})
        try { new WebSocket('ws://remote.invalid/socket') } catch {}
      </script>`,
    '<link rel="stylesheet" href="/remote.css"><link rel="prefetch" href="http://remote.invalid/next.html">'),
  },
  '/remote.css': {
    type: 'text/css',
    body: `@font-face { font-family: Remote; src: url(http://remote.invalid/font.woff2) format("woff2") }
      body { background: url(http://remote.invalid/bg.png) }
      .fancy { font-family: Remote, sans-serif }`,
  },
  '/logo.png': { type: 'image/png', body: png },
  '/cookie': { type: 'text/html', body: page('Cookie', '<p>set</p>'), headers: { 'set-cookie': 'session=one; Path=/; HttpOnly' } },
}

async function serve (): Promise<{ server: Server, origin: string }> {
  const server = createServer((req, res) => {
    const found = pages[new URL(req.url ?? '/', 'http://x').pathname]
    if (found === undefined) { res.writeHead(404).end(); return }
    res.writeHead(200, { 'content-type': found.type, ...found.headers }).end(found.body)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }
}

/** Waits until every wanted URL is in the list, or says which never came. */
async function waitForAll (list: string[], wanted: string[], timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (wanted.some((url) => !list.includes(url)) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50))
  assert.deepEqual(wanted.filter((url) => !list.includes(url)), [], `requests never seen; seen: ${list.join(', ')}`)
}

describe('browser harness', { skip, timeout: 120_000 }, () => {
  let browser: TestBrowser
  let server: Server
  let origin: string

  before(async () => {
    ({ server, origin } = await serve())
    const started = Date.now()
    browser = await startBrowser()
    process.stdout.write(`# Chromium ${browser.version} started in ${Date.now() - started} ms\n`)
  })
  after(async () => {
    await browser?.close()
    await new Promise((resolve) => server?.close(resolve))
  })

  it('finds no accessibility problem on a labelled form, and Tab reaches every control', async () => {
    const tab = await browser.newPage()
    await tab.goto(`${origin}/good`)
    assert.deepEqual(await accessibilityProblems(tab), [])
    const { reached, unreachable } = await keyboardReach(tab)
    assert.deepEqual(unreachable, [])
    assert.deepEqual(reached, [
      'input[type=email]#to "To"',
      'input[type=text] "Subject"',
      'input[type=checkbox] "Encrypt"',
      'input[type=radio] "Normal"', // one stop for the group: the checked radio
      'select#folder "Folder"',
      'textarea#text "Message"',
      'button "Send"',
      'a "Another page" -> /bad',
    ])
    await tab.close()
  })

  it('reports unnamed controls, an image without alt, and controls behind a keyboard trap', async () => {
    const tab = await browser.newPage()
    await tab.goto(`${origin}/bad`)
    assert.deepEqual(await accessibilityProblems(tab), [
      'a button has no accessible name: <button type="button">',
      'a textbox has no accessible name: <input type="text" name="q">',
      'an image has no alt text or accessible name: <img src="/logo.png">',
      'an image has no alt text or accessible name: <svg role="img" width="16" height="16">',
      'a link has no accessible name: <a href="/good">',
    ])
    const { reached, unreachable } = await keyboardReach(tab)
    assert.deepEqual(reached, ['button (no name)', 'input[type=text] (no name)', 'a (no name) -> /good', 'input[type=text] "Trap"'])
    assert.deepEqual(unreachable, ['button "After the trap"'])
    await tab.close()
  })

  it('records requests that leave the origin, and blockOutside aborts them', async () => {
    const tab = await browser.newPage()
    const watch = await watchRequests(tab, origin, { blockOutside: true })
    const failed = new Map<string, string | undefined>()
    tab.on('requestfailed', (request) => failed.set(request.url(), request.failure()?.errorText))
    await tab.goto(`${origin}/remote`)
    await waitForAll(watch.outside, [
      'http://remote.invalid/x.png',
      'http://remote.invalid/bg.png',
      'http://remote.invalid/font.woff2',
      'http://remote.invalid/api',
      'ws://remote.invalid/socket',
    ])
    // Same-origin and data: URLs are not outside.
    assert.deepEqual(watch.outside.filter((url) => !url.startsWith('http://remote.invalid/') && !url.startsWith('ws://remote.invalid/')), [])
    await waitForAll([...failed.keys()], ['http://remote.invalid/x.png'])
    assert.match(failed.get('http://remote.invalid/x.png') ?? '', /^net::ERR_BLOCKED_BY_CLIENT/) // Chromium adds ".Inspector"
    // The page itself and its same-origin image loaded.
    assert.equal(await tab.evaluate('document.images[1].naturalWidth'), 1)
    await tab.close()
  })

  it('without blockOutside, an outside request is recorded and the launch guard still stops it', async () => {
    const tab = await browser.newPage()
    const watch = await watchRequests(tab, `${origin}/`)
    const failed = new Map<string, string | undefined>()
    tab.on('requestfailed', (request) => failed.set(request.url(), request.failure()?.errorText))
    await tab.goto(`${origin}/remote`)
    await waitForAll(watch.outside, ['http://remote.invalid/x.png'])
    await waitForAll([...failed.keys()], ['http://remote.invalid/x.png'])
    // The request went to the dead local proxy, not to a DNS server or the internet.
    assert.equal(failed.get('http://remote.invalid/x.png'), 'net::ERR_PROXY_CONNECTION_FAILED')
    await tab.close()
  })

  it('gives each page its own cookies', async () => {
    const first = await browser.newPage()
    await first.goto(`${origin}/cookie`)
    assert.deepEqual((await first.context().cookies()).map((c) => c.name), ['session'])
    const second = await browser.newPage()
    await second.goto(`${origin}/good`)
    assert.deepEqual(await second.context().cookies(), [])
    await first.close()
    await second.close()
  })

  it('writes a full-page PNG screenshot under test/artifacts/<test>/, or under $SMTORP_ARTIFACTS', async () => {
    const tab = await browser.newPage()
    await tab.goto(`${origin}/good`)
    const path = await screenshot(tab, 'browser harness', 'good page')
    assert.equal(path, join(artifactDir('browser harness'), 'good-page.png'))
    assert.match(path, /test\/artifacts\/browser-harness\/good-page\.png$/)
    const file = await readFile(path)
    assert.deepEqual([...file.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])
    // IHDR: width and height, big-endian, at bytes 16 and 20. Full page: taller than the viewport.
    assert.equal(file.readUInt32BE(16), 1280)
    assert.ok(file.readUInt32BE(20) > 2500, `height ${file.readUInt32BE(20)}`)

    const elsewhere = await mkdtemp(join(tmpdir(), 'smtorp-artifacts-'))
    const saved = process.env.SMTORP_ARTIFACTS
    process.env.SMTORP_ARTIFACTS = elsewhere
    try {
      const redirected = await screenshot(tab, 'browser harness', 'good page')
      assert.equal(redirected, join(elsewhere, 'browser-harness', 'good-page.png'))
      assert.ok(existsSync(redirected))
    } finally {
      if (saved === undefined) delete process.env.SMTORP_ARTIFACTS
      else process.env.SMTORP_ARTIFACTS = saved
      await rm(elsewhere, { recursive: true, force: true })
    }
    await tab.close()
  })

  it('removes its profile directory on close, and closing twice is harmless', async () => {
    const other = await startBrowser()
    assert.ok(existsSync(other.userDataDir))
    await (await other.newPage()).goto(`${origin}/good`)
    await other.close()
    assert.equal(existsSync(other.userDataDir), false)
    await other.close()
    await assert.rejects(other.newPage(), /closed/)
  })
})
