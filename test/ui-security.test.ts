// The web UI's own security, on the real fastify server over HTTP with a stand-in node (the
// browser tests in ui-browser.test.ts run the same against a real node): loopback only, CSRF
// token and Origin checks, sessions, unlock errors and throttling, headers, no secrets in URLs.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { request as httpRequest } from 'node:http'
import pino from 'pino'
import { uiServer, UiConfigError, type UiServer } from '../ui/server.ts'
import type { UiNode, UnlockSecret } from '../ui/node-api.ts'

const PASSPHRASE = 'correct horse battery staple'

/** A node with an empty mailbox whose vault opens with PASSPHRASE and throttles like the real one. */
function standInNode (): UiNode & { state: 'locked' | 'unlocked', wrong: number } {
  const node = {
    state: 'locked' as 'locked' | 'unlocked',
    wrong: 0,
    check (secret: UnlockSecret) {
      if (node.wrong >= 3) throw Object.assign(new Error('wait'), { name: 'UnlockThrottledError', retryAfterSeconds: 2 ** (node.wrong - 3) })
      if (!('passphrase' in secret) || secret.passphrase !== PASSPHRASE) { node.wrong++; throw Object.assign(new Error('wrong'), { name: 'WrongSecretError' }) }
      node.wrong = 0
    },
    vaultState: () => node.state,
    async unlock (secret: UnlockSecret) { node.check(secret); node.state = 'unlocked' },
    async checkSecret (secret: UnlockSecret) { node.check(secret) },
    async lock () { node.state = 'locked' },
    async folders () { return [] },
    async listMessages () { return { messages: [] } },
    async search () { return { messages: [] } },
    async outbox () { return [] },
    async uiSettings () { return { autoLockMinutes: 0 } }
  }
  return node as unknown as UiNode & typeof node
}

interface Answer { status: number, headers: Headers, body: string }

async function request (base: string, path: string, init: { method?: string, cookie?: string, form?: Record<string, string>, headers?: Record<string, string> } = {}): Promise<Answer> {
  const headers: Record<string, string> = { ...init.headers }
  if (init.cookie !== undefined) headers.cookie = init.cookie
  let body: string | undefined
  if (init.form !== undefined) {
    headers['content-type'] = 'application/x-www-form-urlencoded'
    body = new URLSearchParams(init.form).toString()
  }
  const res = await fetch(base + path, { method: init.method ?? 'GET', headers, body, redirect: 'manual' })
  return { status: res.status, headers: res.headers, body: await res.text() }
}

/** A GET with headers fetch would not let a caller set (Host, Sec-Fetch-*). */
async function rawGet (port: string, host: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number }> {
  return await new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: Number(port), path, headers: { host, ...headers } }, res => { res.resume(); resolve({ status: res.statusCode ?? 0 }) })
    req.on('error', reject)
    req.end()
  })
}

async function signIn (base: string): Promise<{ cookie: string, csrf: string }> {
  const res = await request(base, '/unlock', { method: 'POST', form: { method: 'passphrase', passphrase: PASSPHRASE } })
  assert.equal(res.status, 303)
  const cookie = res.headers.get('set-cookie')!.split(';')[0]!
  const page = await request(base, '/mail/Inbox', { cookie })
  const csrf = /name="_csrf" value="([^"]+)"/.exec(page.body)?.[1]
  assert.ok(csrf !== undefined, 'the page carries a CSRF token')
  return { cookie, csrf }
}

describe('web UI security', () => {
  let node: ReturnType<typeof standInNode>
  let ui: UiServer
  let base: string
  /** The secret path every page is under, /s/<key>. */
  let root: string

  before(async () => {
    node = standInNode()
    ui = uiServer({ host: '127.0.0.1', port: 0, unlockAttemptsPerMinute: 50 }, { node, logger: pino({ level: 'silent' }) })
    await ui.start()
    base = ui.url()
    root = new URL(base).pathname
  })
  after(async () => { await ui.stop() })

  it('refuses to listen on a non-loopback address unless the config allows it, and says why', () => {
    for (const host of ['0.0.0.0', '192.168.1.10', '::', 'example.org']) {
      assert.throws(() => uiServer({ host, port: 0 }, { node, logger: pino({ level: 'silent' }) }), (err: Error) => err instanceof UiConfigError && /not a loopback address/.test(err.message) && /allowNonLoopback/.test(err.message))
    }
    assert.doesNotThrow(() => uiServer({ host: '0.0.0.0', port: 0, allowNonLoopback: true }, { node, logger: pino({ level: 'silent' }) }))
    assert.doesNotThrow(() => uiServer({ host: '127.0.0.1', port: 0 }, { node, logger: pino({ level: 'silent' }) }))
    assert.doesNotThrow(() => uiServer({ host: '::1', port: 0 }, { node, logger: pino({ level: 'silent' }) }))
    assert.match(base, /^http:\/\/127\.0\.0\.1:\d+\/s\/[\w-]{22}$/)
  })

  it('says so plainly when its port is taken', async () => {
    const second = uiServer({ host: '127.0.0.1', port: Number(new URL(base).port) }, { node, logger: pino({ level: 'silent' }) })
    await assert.rejects(second.start(), (err: Error) => err instanceof UiConfigError && /cannot listen on 127\.0\.0\.1:\d+: the port is in use/.test(err.message))
  })

  it('sends strict security headers: CSP without inline script, no framing, no referrer to other sites', async () => {
    const res = await request(base, '/unlock')
    assert.equal(res.status, 200)
    const csp = res.headers.get('content-security-policy') ?? ''
    assert.match(csp, /default-src 'none'/)
    assert.match(csp, /script-src 'self'(;|$)/)
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/)
    assert.match(csp, /frame-ancestors 'none'/)
    assert.match(csp, /form-action 'self'/)
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff')
    assert.equal(res.headers.get('referrer-policy'), 'same-origin')
    assert.doesNotMatch(res.body, /<script>|<script [^>]*>[^<]/, 'no inline script in the page')
    const htmx = await request(base, '/static/htmx.min.js')
    assert.equal(htmx.status, 200)
    assert.match(htmx.body, /htmx/)
  })

  it('answers only to its loopback names, so a rebound DNS name cannot reach it', async () => {
    const port = new URL(base).port
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`]) {
      const res = await rawGet(port, host, `${root}/unlock`)
      assert.equal(res.status, 200, host)
    }
    for (const host of [`evil.example:${port}`, `127.0.0.1.evil.example:${port}`, 'localhost', `localhost:${Number(port) + 1}`]) {
      const res = await rawGet(port, host, `${root}/unlock`)
      assert.equal(res.status, 421, host)
    }
  })

  it('refuses other sites\' pages loading the UI as images or fetches, but lets them link to it', async () => {
    const port = new URL(base).port
    const host = `127.0.0.1:${port}`
    const asImage = await rawGet(port, host, `${root}/mail/Inbox`, { 'sec-fetch-site': 'same-site', 'sec-fetch-mode': 'no-cors', 'sec-fetch-dest': 'image' })
    assert.equal(asImage.status, 403)
    const asFetch = await rawGet(port, host, `${root}/live/dashboard`, { 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'cors' })
    assert.equal(asFetch.status, 403)
    const link = await rawGet(port, host, `${root}/mail/Inbox`, { 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'navigate' })
    assert.equal(link.status, 303, 'a link from elsewhere leads to the unlock page')
  })

  it('keeps decrypted pages out of the browser cache; only static files may be cached', async () => {
    node.state = 'locked'
    const { cookie } = await signIn(base)
    assert.equal((await request(base, '/mail/Inbox', { cookie })).headers.get('cache-control'), 'no-store')
    assert.equal((await request(base, '/unlock')).headers.get('cache-control'), 'no-store')
    assert.equal((await request(base, '/static/app.css')).headers.get('cache-control'), 'no-cache')
  })

  it('refuses requests without a session: pages redirect to unlock, actions get 401', async () => {
    const page = await request(base, '/mail/Inbox')
    assert.equal(page.status, 303)
    assert.equal(page.headers.get('location'), `${root}/unlock`)
    const action = await request(base, '/lock', { method: 'POST', form: {} })
    assert.equal(action.status, 401)
    const htmx = await request(base, '/live/dashboard', { headers: { 'hx-request': 'true' } })
    assert.equal(htmx.status, 401)
    assert.equal(htmx.headers.get('hx-redirect'), `${root}/unlock`)
  })

  it('shows a wrong passphrase as an error, and slows repeated ones', async () => {
    node.state = 'locked'
    node.wrong = 0
    const first = await request(base, '/unlock', { method: 'POST', form: { method: 'passphrase', passphrase: 'not it at all' } })
    assert.equal(first.status, 401)
    assert.match(first.body, /That passphrase is wrong/)
    assert.equal(first.headers.get('set-cookie'), null, 'no session for a wrong passphrase')
    await request(base, '/unlock', { method: 'POST', form: { method: 'passphrase', passphrase: 'wrong again' } })
    await request(base, '/unlock', { method: 'POST', form: { method: 'passphrase', passphrase: 'and again' } })
    const slowed = await request(base, '/unlock', { method: 'POST', form: { method: 'passphrase', passphrase: PASSPHRASE } })
    assert.equal(slowed.status, 429)
    assert.match(slowed.body, /Too many wrong attempts\. Wait \d+ seconds?,/)
    assert.ok(slowed.headers.get('retry-after') !== null)
    assert.equal(node.state, 'locked', 'even the right passphrase waits while throttled')
    node.wrong = 0
  })

  it('rate-limits unlock attempts per client before the vault is asked', async () => {
    const limited = uiServer({ host: '127.0.0.1', port: 0, unlockAttemptsPerMinute: 3 }, { node, logger: pino({ level: 'silent' }) })
    await limited.start()
    try {
      const codes: number[] = []
      for (let i = 0; i < 5; i++) codes.push((await request(limited.url(), '/unlock', { method: 'POST', form: { passphrase: 'x' } })).status)
      assert.deepEqual(codes.slice(3), [429, 429])
    } finally {
      await limited.stop()
      node.wrong = 0
    }
  })

  it('refuses a state-changing request without the CSRF token, or from another origin', async () => {
    node.state = 'locked'
    const { cookie, csrf } = await signIn(base)
    assert.equal(node.state, 'unlocked')
    const noToken = await request(base, '/lock', { method: 'POST', cookie, form: {} })
    assert.equal(noToken.status, 403)
    const wrongToken = await request(base, '/lock', { method: 'POST', cookie, form: { _csrf: csrf.slice(0, -2) + 'xx' } })
    assert.equal(wrongToken.status, 403)
    const crossSite = await request(base, '/lock', { method: 'POST', cookie, form: { _csrf: csrf }, headers: { origin: 'http://127.0.0.1:1' } })
    assert.equal(crossSite.status, 403)
    assert.match(crossSite.body, /another web site/)
    const opaque = await request(base, '/lock', { method: 'POST', cookie, form: { _csrf: csrf }, headers: { origin: 'null' } })
    assert.equal(opaque.status, 403, 'an opaque origin (sandboxed frame) is refused too')
    assert.equal(node.state, 'unlocked', 'none of them locked the vault')
    const viaHeader = await request(base, '/lock', { method: 'POST', cookie, form: {}, headers: { 'x-csrf-token': csrf, origin: new URL(base).origin } })
    assert.equal(viaHeader.status, 303)
    assert.equal(node.state, 'locked')
  })

  it('ends every session when the vault is locked elsewhere', async () => {
    node.state = 'locked'
    const { cookie } = await signIn(base)
    assert.equal((await request(base, '/mail/Inbox', { cookie })).status, 200)
    node.state = 'locked' // the CLI locked it
    assert.equal((await request(base, '/mail/Inbox', { cookie })).status, 303)
    node.state = 'unlocked' // and someone unlocked it again: the old cookie is still dead
    assert.equal((await request(base, '/mail/Inbox', { cookie })).status, 303)
  })

  it('sets the session cookie HttpOnly and SameSite=Strict, and keeps searches out of URLs', async () => {
    node.state = 'locked'
    const res = await request(base, '/unlock', { method: 'POST', form: { method: 'passphrase', passphrase: PASSPHRASE } })
    const cookie = res.headers.get('set-cookie') ?? ''
    assert.match(cookie, /HttpOnly/)
    assert.match(cookie, /SameSite=Strict/)
    const page = await request(base, '/mail/Inbox', { cookie: cookie.split(';')[0]! })
    assert.ok(page.body.includes(`<form method="post" action="${root}/search"`))
  })

  // Browsers send a cookie of 127.0.0.1 to every port of it: a server of another local user,
  // opened in the same browser, would receive the session cookie unless its Path confines it.
  it('serves every page under a secret path, scopes the session cookie to it, and says nothing of it elsewhere', async () => {
    const origin = new URL(base).origin
    node.state = 'locked'
    const unlocked = await request(base, '/unlock', { method: 'POST', form: { method: 'passphrase', passphrase: PASSPHRASE } })
    const setCookie = unlocked.headers.get('set-cookie') ?? ''
    assert.match(setCookie, new RegExp(`; Path=${root};`), 'the cookie is sent back only under the secret path')
    assert.equal(unlocked.headers.get('location'), `${root}/mail/Inbox`)
    const cookie = setCookie.split(';')[0]!

    // Each of the UI's own links in a page stays under the secret path.
    const page = await request(base, '/mail/Inbox', { cookie })
    const links = [...page.body.matchAll(/\s(?:href|src|action|hx-get|hx-post)="([^"#][^"]*)"/g)].map(m => m[1]!)
    assert.ok(links.length > 10, `the mailbox has links (${links.length})`)
    for (const link of links) assert.ok(link.startsWith(`${root}/`), `a link outside the secret path: ${link}`)
    assert.equal((await request(base, '/', { cookie })).headers.get('location'), `${root}/mail/Inbox`)
    assert.equal((await request(origin, root, { cookie })).headers.get('location'), `${root}/mail/Inbox`, 'the secret path without its slash')
    assert.equal((await request(base, '/static/app.css')).status, 200, 'the statics are there too')

    // Outside it, with the cookie or without, every path is a 404 that does not give it away.
    const wrongKey = `/s/${'A'.repeat(22)}`
    for (const path of ['/', '/unlock', '/mail/Inbox', '/static/htmx.min.js', '/favicon.ico', `${wrongKey}/unlock`, `${root}x/unlock`, `/x${root}/unlock`]) {
      for (const headers of [{}, { cookie }]) {
        const outside = await request(origin, path, headers)
        assert.equal(outside.status, 404, path)
        assert.ok(!outside.body.includes(root.slice(3)) && !JSON.stringify([...outside.headers]).includes(root.slice(3)), `${path}: the answer names the secret path`)
      }
    }
    const posted = await request(origin, '/lock', { method: 'POST', cookie, form: {} })
    assert.equal(posted.status, 404)
    assert.equal(node.state, 'unlocked')
    // A rebound DNS name is refused before anything, without the path.
    const port = new URL(base).port
    const rebound = await new Promise<string>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: Number(port), path: '/', headers: { host: `evil.example:${port}` } }, res => {
        let text = ''
        res.setEncoding('utf8').on('data', (d: string) => { text += d }).on('end', () => resolve(`${res.statusCode} ${text}`))
      })
      req.on('error', reject)
      req.end()
    })
    assert.match(rebound, /^421 /)
    assert.ok(!rebound.includes(root.slice(3)))
  })

  it('keeps the path key it is given, and refuses a short one', async () => {
    const key = 'k'.repeat(22)
    const given = uiServer({ host: '127.0.0.1', port: 0, pathKey: key }, { node, logger: pino({ level: 'silent' }) })
    await given.start()
    try {
      assert.equal(new URL(given.url()).pathname, `/s/${key}`)
      assert.equal((await request(given.url(), '/unlock')).status, 200)
    } finally {
      await given.stop()
    }
    assert.throws(() => uiServer({ host: '127.0.0.1', port: 0, pathKey: 'short' }, { node, logger: pino({ level: 'silent' }) }), UiConfigError)
  })

  it('locks the vault after the configured idle time, and polling does not count as use', async () => {
    const idle = standInNode()
    let minutes = 0.002 // 120 ms
    idle.uiSettings = async () => ({ autoLockMinutes: minutes })
    const quick = uiServer({ host: '127.0.0.1', port: 0, autoLockCheckMs: 40 }, { node: idle, logger: pino({ level: 'silent' }) })
    await quick.start()
    try {
      const res = await request(quick.url(), '/unlock', { method: 'POST', form: { method: 'passphrase', passphrase: PASSPHRASE } })
      const cookie = res.headers.get('set-cookie')!.split(';')[0]!
      assert.equal(idle.state, 'unlocked')
      // The dashboard's own polling every 2 s must not keep an abandoned page unlocked.
      const deadline = Date.now() + 3000
      while (idle.state === 'unlocked' && Date.now() < deadline) {
        await request(quick.url(), '/live/outbox', { cookie, headers: { 'hx-request': 'true' } })
        await new Promise(resolve => setTimeout(resolve, 30))
      }
      assert.equal(idle.state, 'locked', 'locked after the idle time')
      assert.equal((await request(quick.url(), '/mail/Inbox', { cookie })).status, 303, 'and the session ended with it')

      // With auto-lock off (0), nothing locks however long it stays idle.
      minutes = 0
      const again = await request(quick.url(), '/unlock', { method: 'POST', form: { method: 'passphrase', passphrase: PASSPHRASE } })
      assert.equal(again.status, 303)
      await new Promise(resolve => setTimeout(resolve, 400))
      assert.equal(idle.state, 'unlocked')
    } finally {
      await quick.stop()
    }
  })

  it('shows a storage check\'s progress as it moves, then its result', async () => {
    let progress: { done: number, total: number } | undefined
    const health = { address: 'me@x.onion', onion: 'x.onion', tor: { bootstrapPercent: 100, summary: 'Done', ready: true }, smtpPublished: true, submission: { host: '127.0.0.1', port: 2525 }, queue: { queued: 0, delivering: 0, delayed: 0, failed: 0 }, disk: { dataBytes: 1 }, warnings: [] }
    node.health = async () => ({ ...health, storage: { vault: 'unlocked', damagedRecords: 0, shardBytes: 10, ...(progress !== undefined ? { scrub: progress } : { lastScrub: { finishedAt: Date.now(), objects: 40, repairedShards: 2, lost: 0 } }) } })
    node.state = 'locked'
    const { cookie } = await signIn(base)
    const values: string[] = []
    for (const done of [0, 10, 30]) {
      progress = { done, total: 40 }
      const live = await request(base, '/live/dashboard', { cookie, headers: { 'hx-request': 'true' } })
      assert.doesNotMatch(live.body, /<html/, 'a fragment for htmx')
      assert.match(live.body, /hx-trigger="every 2s"/, 'which keeps polling')
      values.push(/<progress max="100" value="(\d+)" aria-label="Checking and repairing storage"/.exec(live.body)?.[1] ?? 'none')
    }
    assert.deepEqual(values, ['0', '25', '75'])
    progress = undefined
    const finished = await request(base, '/live/dashboard', { cookie, headers: { 'hx-request': 'true' } })
    assert.match(finished.body, /40 objects checked, 2 shards repaired/)
    assert.doesNotMatch(finished.body, /<progress[^>]*Checking and repairing/)
  })
})

