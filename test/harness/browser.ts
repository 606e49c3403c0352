/**
 * A real Chromium for web UI tests, driven by playwright-core.
 *
 * The browser is Debian's `chromium` package (scripts/test.sh installs it
 * when run as root); `npx playwright install` is never needed. It is started
 * headless, without the sandbox (we run as root), with a fresh empty profile
 * in a temporary directory that close() removes, and with every switch that
 * stops Chromium's own background traffic (component updates, sync,
 * first-run, QUIC).
 *
 * Network guard: Chromium is also told to send everything through a SOCKS
 * proxy at 127.0.0.1:9, where nothing listens. Chromium never proxies
 * loopback (localhost, 127.0.0.1, [::1]), so the UI under test, served on
 * 127.0.0.1, works, while any other request (a remote image in a mail, a
 * prefetch, a preconnect, the browser's own traffic) fails at the local proxy
 * before a DNS lookup or a packet leaves the machine. watchRequests() is how a
 * test sees that such requests were attempted at all.
 *
 * Why launchPersistentContext(tempDir) rather than launch(): Playwright's
 * launch() refuses a --user-data-dir argument and makes its own profile
 * directory that we cannot name; the persistent form takes a directory we
 * created, so close() can remove it (and a test can check it is gone). Pages
 * do not use that persistent context: each newPage() opens a new incognito-like
 * context (browser.newContext()) with its own cookies and storage.
 *
 * Why /usr/lib/chromium/chromium rather than /usr/bin/chromium when present:
 * Debian's /usr/bin/chromium is a shell wrapper that sources /etc/chromium.d/
 * and so adds switches of its own (--enable-remote-extensions,
 * --load-extension=..., Google API keys in the environment, and on machines
 * with a large /dev/shm a shell error on stderr). The binary behind it runs
 * with exactly the switches listed here.
 */
import { existsSync, mkdirSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium, type Browser, type BrowserContext, type CDPSession, type Page, type Request } from 'playwright-core'
import { TEST_PASSPHRASE } from './vault.ts'

export type { Page } from 'playwright-core'

/** What Debian's `chromium` package installs; the launcher script, checked to say whether the package is there. */
export const chromiumLauncher = '/usr/bin/chromium'
/** The browser binary behind the launcher script (see the file comment). */
const chromiumBinary = '/usr/lib/chromium/chromium'

const launchTimeoutMs = 30_000

/** Switches for Chromium as root, offline, with nothing of its own reaching the network. */
export const chromiumArgs: readonly string[] = [
  '--headless',
  '--no-sandbox', // the sandbox refuses to run as root
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  // The network guard (file comment): loopback bypasses every proxy, the rest goes nowhere.
  '--proxy-server=socks5://127.0.0.1:9',
]

export class BrowserNotInstalledError extends Error {
  override name = 'BrowserNotInstalledError'
}

/** Why the browser cannot run here, as sentences; empty when it can. For `skip` in tests. */
export function missingBrowserPrerequisites (): string[] {
  return existsSync(chromiumLauncher) ? [] : ['chromium is not installed: npm test installs it when run as root']
}

export interface TestBrowser {
  /** A new page in a new browser context: its own cookies, storage and cache. Closing the page closes the context. */
  newPage (): Promise<Page>
  /** Closes every page and the browser, and removes the profile directory. Safe to call twice. */
  close (): Promise<void>
  /** The temporary profile directory (removed by close). */
  readonly userDataDir: string
  /** Chromium's version, for logs. */
  readonly version: string
}

/**
 * esbuild (under tsx) compiles with keepNames, so a function a test passes to
 * page.evaluate() that declares a named function or arrow calls `__name(fn, "fn")`,
 * a helper that exists in Node but not in the page: without this shim such a
 * call fails with "ReferenceError: __name is not defined".
 */
const nameShim = 'globalThis.__name ??= (fn) => fn'

export async function startBrowser (): Promise<TestBrowser> {
  const missing = missingBrowserPrerequisites()
  if (missing.length > 0) throw new BrowserNotInstalledError(missing.join('; '))
  const executablePath = existsSync(chromiumBinary) ? chromiumBinary : chromiumLauncher
  const userDataDir = await mkdtemp(join(tmpdir(), 'smtorp-chromium-'))
  let persistent: BrowserContext
  try {
    persistent = await chromium.launchPersistentContext(userDataDir, {
      executablePath,
      args: [...chromiumArgs],
      headless: true,
      timeout: launchTimeoutMs,
    })
  } catch (error) {
    await rm(userDataDir, { recursive: true, force: true })
    throw new Error(`Chromium (${executablePath}) did not start (limit ${launchTimeoutMs / 1000} s): ${(error as Error).message}`, { cause: error })
  }
  const browser: Browser | null = persistent.browser()
  if (browser === null) {
    await persistent.close()
    await rm(userDataDir, { recursive: true, force: true })
    throw new Error('Chromium started, but Playwright gave no Browser for its persistent context')
  }
  const contexts = new Set<BrowserContext>()
  let closed = false

  return {
    userDataDir,
    version: browser.version(),
    async newPage () {
      if (closed) throw new Error('the test browser is closed')
      const context = await browser.newContext()
      contexts.add(context)
      context.on('close', () => contexts.delete(context))
      await context.addInitScript(nameShim)
      const page = await context.newPage()
      // The context only fails to close when the browser is already gone, which close() handles.
      page.on('close', () => { void context.close().catch(() => {}) })
      return page
    },
    async close () {
      if (closed) return
      closed = true
      try {
        await Promise.allSettled([...contexts].map(async (context) => await context.close()))
        await persistent.close()
      } finally {
        await rm(userDataDir, { recursive: true, force: true })
      }
    },
  }
}

// ---------------------------------------------------------------------------
// Artifacts

/** A name safe as one path component. */
function fileName (name: string): string {
  const safe = name.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^[-.]+|-+$/g, '')
  return safe === '' ? 'unnamed' : safe
}

/** Unlocks a test node's web UI (TEST_PASSPHRASE) in `page`, which lands on the Inbox. */
export async function signIn (page: Page, base: string): Promise<void> {
  await page.goto(`${base}/unlock`)
  await page.getByLabel('Passphrase', { exact: true }).fill(TEST_PASSPHRASE)
  await Promise.all([
    page.waitForURL(`${base}/mail/Inbox`),
    page.getByRole('button', { name: 'Unlock' }).click()
  ])
}

/** test/artifacts/<testName>/, created; the root is $SMTORP_ARTIFACTS when set. */
export function artifactDir (testName: string): string {
  const root = process.env.SMTORP_ARTIFACTS !== undefined && process.env.SMTORP_ARTIFACTS !== ''
    ? resolve(process.env.SMTORP_ARTIFACTS)
    : fileURLToPath(new URL('../artifacts/', import.meta.url))
  const dir = join(root, fileName(testName))
  // Synchronous so it can be used in an expression; a directory that exists is fine.
  mkdirSync(dir, { recursive: true })
  return dir
}

/** Saves a full-page PNG as <artifactDir(testName)>/<stepName>.png and returns its path. */
export async function screenshot (page: Page, testName: string, stepName: string): Promise<string> {
  const path = join(artifactDir(testName), `${fileName(stepName)}.png`)
  await page.screenshot({ path, fullPage: true, type: 'png' })
  return path
}

// ---------------------------------------------------------------------------
// Requests that leave the origin under test

export interface RequestWatch {
  /** Distinct URLs, in the order first seen, of requests to anywhere but the allowed origin. */
  readonly outside: string[]
}

export interface WatchInit {
  /** Abort those requests (net::ERR_BLOCKED_BY_CLIENT) and close such WebSockets before they connect. */
  blockOutside?: boolean
}

/**
 * Records every request made by the page's browser context (the page, its
 * frames, popups, workers and service workers) whose origin is not
 * `allowedOrigin`: documents, scripts, styles, images, fonts, fetch/XHR,
 * EventSource, prefetch, beacons and WebSockets.
 *
 * Not recorded, by decision: data: and blob: URLs and about: pages, which are
 * built in the browser and reach no host. Not recorded because Chromium makes
 * no request of them: `<link rel=preconnect>` and `rel=dns-prefetch`, which
 * only open a connection or look up a name; the launch's network guard stops
 * those (file comment).
 *
 * Async because blocking must be in place before the page's next navigation.
 * Call it before page.goto().
 */
export async function watchRequests (page: Page, allowedOrigin: string, init: WatchInit = {}): Promise<RequestWatch> {
  const allowed = originOf(allowedOrigin)
  if (allowed === undefined) throw new Error(`not an origin: ${allowedOrigin}`)
  const isOutside = (url: string): boolean => {
    const origin = originOf(url)
    return origin !== undefined && origin !== allowed
  }
  const outside: string[] = []
  const record = (url: string): void => {
    if (isOutside(url) && !outside.includes(url)) outside.push(url)
  }
  const context = page.context()
  // Context-level, not page-level: it also sees service workers and popups.
  context.on('request', (request: Request) => record(request.url()))
  // WebSockets are not requests to Playwright; they are reported per page.
  const watchSockets = (p: Page): void => { p.on('websocket', (socket) => record(socket.url())) }
  watchSockets(page)
  context.on('page', watchSockets)
  if (init.blockOutside === true) {
    await context.route((url) => isOutside(url.href), async (route) => await route.abort('blockedbyclient'))
    // Without connectToServer() the socket never reaches its server; closing tells the page at once.
    // A routed WebSocket raises no 'websocket' event on the page, so it is recorded here.
    await context.routeWebSocket((url) => isOutside(url.href), async (socket) => {
      record(socket.url())
      await socket.close({ code: 1008, reason: 'blocked by the test' })
    })
  }
  return { outside }
}

/**
 * The origin of a URL for comparison, with ws:/wss: counted as http:/https:
 * (a WebSocket to the UI's own host and port is not outside). Undefined for
 * data:, blob:, about: and anything unparsable: no host is contacted.
 */
function originOf (url: string): string | undefined {
  let parsed: URL
  try { parsed = new URL(url) } catch { return undefined }
  if (parsed.protocol === 'data:' || parsed.protocol === 'blob:' || parsed.protocol === 'about:') return undefined
  if (parsed.protocol === 'ws:') parsed.protocol = 'http:'
  if (parsed.protocol === 'wss:') parsed.protocol = 'https:'
  // new URL() gives "null" as the origin of non-special schemes (file:, chrome:); keep them distinct.
  return parsed.origin === 'null' ? `${parsed.protocol}//${parsed.host}` : parsed.origin
}

// ---------------------------------------------------------------------------
// Accessibility

/** ARIA roles a user acts on, which therefore need a name a screen reader can say. */
const interactiveRoles = new Set([
  'button', 'link', 'textbox', 'searchbox', 'checkbox', 'radio', 'combobox', 'listbox',
  'menuitem', 'menuitemcheckbox', 'menuitemradio', 'tab', 'switch', 'slider', 'spinbutton',
])
/** Chromium calls an <img> "image" (older versions "img"). */
const imageRoles = new Set(['image', 'img'])

interface AXValue { type: string, value?: unknown }
interface AXNode {
  nodeId: string
  ignored: boolean
  role?: AXValue
  name?: AXValue
  backendDOMNodeId?: number
}
interface FrameTree { frame: { id: string }, childFrames?: FrameTree[] }

/**
 * Sentences, one per problem, from Chromium's own accessibility tree (what a
 * screen reader is given): every interactive node without an accessible name,
 * and every <img> or role="img" element without alt text or another name
 * (see claimsToBeImage). Nodes the tree marks as
 * ignored (hidden, aria-hidden, alt="" images) are skipped. Each sentence ends
 * with the element's opening tag so the problem can be found in the markup.
 *
 * Covers the main frame and same-process iframes; a cross-origin iframe, which
 * Chromium runs out of process, is not inspected.
 */
export async function accessibilityProblems (page: Page): Promise<string[]> {
  const cdp = await page.context().newCDPSession(page)
  try {
    const { frameTree } = await cdp.send('Page.getFrameTree') as { frameTree: FrameTree }
    const frameIds: string[] = []
    const walk = (tree: FrameTree): void => { frameIds.push(tree.frame.id); tree.childFrames?.forEach(walk) }
    walk(frameTree)
    const problems: string[] = []
    const seen = new Set<number>()
    for (const frameId of frameIds) {
      let nodes: AXNode[]
      try {
        ({ nodes } = await cdp.send('Accessibility.getFullAXTree', { frameId }) as { nodes: AXNode[] })
      } catch {
        continue // an out-of-process frame: not reachable from this session (see above)
      }
      for (const node of nodes) {
        if (node.ignored) continue
        if (node.backendDOMNodeId !== undefined) {
          if (seen.has(node.backendDOMNodeId)) continue
          seen.add(node.backendDOMNodeId)
        }
        const role = String(node.role?.value ?? '')
        const name = String(node.name?.value ?? '').trim()
        if (name !== '') continue
        if (interactiveRoles.has(role)) {
          problems.push(`a ${role} has no accessible name: ${await openingTag(cdp, node.backendDOMNodeId)}`)
        } else if (imageRoles.has(role) && await claimsToBeImage(cdp, node.backendDOMNodeId)) {
          problems.push(`an image has no alt text or accessible name: ${await openingTag(cdp, node.backendDOMNodeId)}`)
        }
      }
    }
    return problems
  } finally {
    await cdp.detach().catch(() => {})
  }
}

type DomSession = Pick<CDPSession, 'send'>

/** The element's opening tag, to find it in the markup. */
async function openingTag (cdp: DomSession, backendNodeId: number | undefined): Promise<string> {
  if (backendNodeId === undefined) return '(no DOM element)'
  try {
    const { outerHTML } = await cdp.send('DOM.getOuterHTML', { backendNodeId })
    const tag = /^<[^>]*>/.exec(outerHTML)?.[0] ?? outerHTML
    return tag.length > 200 ? `${tag.slice(0, 200)}…` : tag
  } catch {
    return '(element gone)'
  }
}

/**
 * Chromium gives the image role to inline <svg> as well as <img>. Like
 * axe-core, only an <img> or an element with role="img" must have a name; other
 * SVG is taken as decoration.
 */
async function claimsToBeImage (cdp: DomSession, backendNodeId: number | undefined): Promise<boolean> {
  if (backendNodeId === undefined) return true
  try {
    const { node } = await cdp.send('DOM.describeNode', { backendNodeId })
    const attributes = node.attributes ?? []
    const roleAt = attributes.findIndex((value, i) => i % 2 === 0 && value.toLowerCase() === 'role')
    const roles = roleAt >= 0 ? (attributes[roleAt + 1] ?? '').toLowerCase().split(/\s+/) : []
    return node.nodeName === 'IMG' || roles.includes('img') || roles.includes('image')
  } catch {
    return true
  }
}

// ---------------------------------------------------------------------------
// Keyboard

export interface KeyboardReach {
  /** Each element focus reached, in Tab order, described as `tag "name"`. */
  reached: string[]
  /** Focusable elements focus never reached. */
  unreachable: string[]
}

interface InPageElement { id: number, description: string, group?: string, frame?: boolean }

/**
 * In-page code, as JavaScript source: the project compiles for Node without
 * the DOM library, and functions written here would be compiled with esbuild's
 * `__name` calls (see nameShim). State lives in one global so the calls made
 * between Tab presses can share it.
 */
const inPageHelpers = String.raw`(() => {
  if (globalThis.__smtorpKeyboard) return
  const ids = new WeakMap()
  let next = 1
  const idOf = (el) => { if (!ids.has(el)) ids.set(el, next++); return ids.get(el) }
  const text = (s) => (s ?? '').replace(/\s+/g, ' ').trim()
  const nameOf = (el) => {
    const label = el.getAttribute('aria-label')
    if (text(label)) return text(label)
    const by = el.getAttribute('aria-labelledby')
    if (by) {
      const t = text(by.split(/\s+/).map((id) => el.ownerDocument.getElementById(id)?.textContent ?? '').join(' '))
      if (t) return t
    }
    if (el.labels && el.labels.length > 0) {
      const t = text([...el.labels].map((l) => l.textContent).join(' '))
      if (t) return t
    }
    if (el.getAttribute('alt')) return text(el.getAttribute('alt'))
    if (el.tagName === 'INPUT' && ['button', 'submit', 'reset'].includes(el.type) && el.value) return text(el.value)
    if (!['INPUT', 'SELECT', 'TEXTAREA'].includes(el.tagName) && text(el.textContent)) return text(el.textContent)
    return text(el.getAttribute('title')) || text(el.getAttribute('placeholder'))
  }
  const describe = (el) => {
    let tag = el.tagName.toLowerCase()
    if (tag === 'input') tag += '[type=' + el.type + ']'
    if (el.id) tag += '#' + el.id
    const name = nameOf(el)
    const shown = name.length > 60 ? name.slice(0, 60) + '…' : name
    let d = name ? tag + ' "' + shown + '"' : tag + ' (no name)'
    if (el.tagName === 'A' && el.getAttribute('href')) d += ' -> ' + el.getAttribute('href')
    return d
  }
  // a without href is not focusable, so a[href]; a negative tabindex takes an element out of the
  // Tab order on purpose (roving tabindex, arrow keys), so those are not expected to be reached.
  const selector = 'a[href], area[href], button, input, select, textarea, summary, [tabindex], [contenteditable]:not([contenteditable="false"])'
  const focusable = (el) => {
    const tabindex = el.getAttribute('tabindex')
    if (tabindex !== null && tabindex.trim() !== '' && Number(tabindex) < 0) return false
    if (el.tagName === 'INPUT' && el.type === 'hidden') return false
    if (el.matches(':disabled') || el.closest('[inert]')) return false
    return el.checkVisibility({ checkVisibilityCSS: true, visibilityProperty: true })
  }
  const candidates = (doc) => {
    const list = []
    for (const el of doc.querySelectorAll(selector)) {
      if (focusable(el)) list.push(el)
    }
    // Same-origin iframes are part of the page's Tab order; cross-origin ones cannot be read.
    for (const frame of doc.querySelectorAll('iframe')) {
      let inner = null
      try { inner = frame.contentDocument } catch {}
      if (inner && frame.checkVisibility()) list.push(...candidates(inner))
    }
    return list
  }
  const radioGroup = (el) => {
    if (el.tagName !== 'INPUT' || el.type !== 'radio' || !el.name) return undefined
    return 'radio ' + (el.form ? idOf(el.form) : 0) + ' ' + el.name
  }
  const deepActive = () => {
    let el = document.activeElement
    let frame = false
    for (;;) {
      if (el && el.shadowRoot && el.shadowRoot.activeElement) { el = el.shadowRoot.activeElement; continue }
      if (el && el.tagName === 'IFRAME') {
        let inner = null
        try { inner = el.contentDocument } catch {}
        if (inner && inner.activeElement && inner.activeElement !== inner.body) { el = inner.activeElement; continue }
        if (!inner) frame = true
      }
      return { el, frame }
    }
  }
  globalThis.__smtorpKeyboard = {
    start () {
      const list = candidates(document).map((el) => ({ id: idOf(el), description: describe(el), group: radioGroup(el) }))
      // Start the sequential focus navigation at the top of the page: a marker that takes focus
      // but is not itself in the Tab order.
      const marker = document.createElement('span')
      marker.tabIndex = -1
      marker.id = '__smtorp-keyboard-start'
      document.body.prepend(marker)
      marker.focus()
      return list
    },
    active () {
      const { el, frame } = deepActive()
      if (!el || el === document.body || el === document.documentElement || el.id === '__smtorp-keyboard-start') return null
      return { id: idOf(el), description: describe(el), group: radioGroup(el), frame }
    },
    stop () { document.getElementById('__smtorp-keyboard-start')?.remove() },
  }
})()`

/**
 * Presses Tab (at most maxTabs times) from the top of the page and compares
 * the elements focus reaches with every focusable control on the page: links
 * with href, buttons, inputs, selects, textareas, summaries, contenteditable
 * and [tabindex] elements, leaving out hidden, disabled, inert, type=hidden
 * and negative-tabindex ones. Stops when focus comes back to the first
 * element, stays on one element three presses running (a keyboard trap), or
 * leaves the page three presses running.
 *
 * Radio buttons: Tab visits one radio per group (arrow keys move within it),
 * so a radio counts as reached when any radio of its group was.
 */
export async function keyboardReach (page: Page, maxTabs = 200): Promise<KeyboardReach> {
  await page.evaluate(inPageHelpers)
  const candidates = await page.evaluate('globalThis.__smtorpKeyboard.start()') as InPageElement[]
  const reached = new Map<number, InPageElement>()
  try {
    let first: number | undefined
    let last: number | undefined
    let away = 0
    let stuck = 0
    for (let i = 0; i < maxTabs; i++) {
      await page.keyboard.press('Tab')
      const focused = await page.evaluate('globalThis.__smtorpKeyboard.active()') as InPageElement | null
      if (focused === null) {
        if (++away >= 3) break
        last = undefined
        continue
      }
      away = 0
      if (focused.id === first) break
      // Inside a cross-origin iframe the same <iframe> stays focused while focus moves within it.
      stuck = focused.id === last && focused.frame !== true ? stuck + 1 : 0
      if (stuck >= 2) break
      first ??= focused.id
      last = focused.id
      if (!reached.has(focused.id)) reached.set(focused.id, focused)
    }
  } finally {
    await page.evaluate('globalThis.__smtorpKeyboard.stop()').catch(() => {})
  }
  const reachedGroups = new Set([...reached.values()].map((e) => e.group).filter((g) => g !== undefined))
  return {
    reached: [...reached.values()].map((e) => e.description),
    unreachable: candidates
      .filter((c) => !reached.has(c.id) && !(c.group !== undefined && reachedGroups.has(c.group)))
      .map((c) => c.description),
  }
}
