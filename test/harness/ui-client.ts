// A browser in miniature for the web UI's HTTP tests: one session cookie, the page's CSRF
// token, forms posted as browsers post them (with the page's Origin), and every HTML page it
// was sent, so a test can look for what must never be in one. The Chromium tests drive the
// same pages through a real browser.
import { TEST_PASSPHRASE } from './vault.ts'

export interface Answer {
  status: number
  /**
   * Where a redirect goes, as a path within the UI: the UI's secret path (/s/<key>) taken off,
   * so tests read "/outbox". The raw header is in `headers`.
   */
  location: string | null
  /**
   * The page, its links written as the views write them: the secret path taken off each
   * ("/message/1", not "/s/<key>/message/1"). ui-security.test.ts checks the links as sent.
   */
  body: string
  headers: Headers
}

export class UiClient {
  cookie = ''
  csrf = ''
  readonly pages: string[] = []
  /** The origin browsers send with a post (the base without its path). */
  readonly origin: string
  private readonly root: string

  /** `base`: the UI's address as the node gives it (ui.url(): origin and secret path). */
  constructor (readonly base: string) {
    const url = new URL(base)
    this.origin = url.origin
    this.root = url.pathname.replace(/\/$/, '')
  }

  async get (path: string, headers: Record<string, string> = {}): Promise<Answer> {
    return await this.answer(await fetch(this.base + path, { headers: { cookie: this.cookie, ...headers }, redirect: 'manual' }))
  }

  /** `csrf: false` leaves the token out. */
  async post (path: string, form: Record<string, string | string[]>, options: { headers?: Record<string, string>, csrf?: boolean } = {}): Promise<Answer> {
    const body = new URLSearchParams()
    for (const [k, v] of Object.entries({ ...(options.csrf !== false ? { _csrf: this.csrf } : {}), ...form })) for (const one of [v].flat()) body.append(k, one)
    const res = await fetch(this.base + path, { method: 'POST', headers: { cookie: this.cookie, origin: this.origin, 'content-type': 'application/x-www-form-urlencoded', ...options.headers }, body: body.toString(), redirect: 'manual' })
    const setCookie = res.headers.get('set-cookie')
    if (setCookie !== null) this.cookie = setCookie.split(';')[0]!
    return await this.answer(res)
  }

  async postMultipart (path: string, fields: Record<string, string>, files: Array<{ name: string, filename: string, type: string, content: Buffer }> = []): Promise<Answer> {
    const form = new FormData()
    form.append('_csrf', this.csrf)
    for (const [k, v] of Object.entries(fields)) form.append(k, v)
    for (const f of files) form.append(f.name, new Blob([new Uint8Array(f.content)], { type: f.type }), f.filename)
    return await this.answer(await fetch(this.base + path, { method: 'POST', headers: { cookie: this.cookie, origin: this.origin }, body: form, redirect: 'manual' }))
  }

  /** Unlocks with the passphrase: a 303 into the mailbox when it is right. */
  async signIn (passphrase = TEST_PASSPHRASE): Promise<Answer> {
    await this.get('/unlock')
    return await this.post('/unlock', { method: 'passphrase', passphrase })
  }

  private async answer (res: Response): Promise<Answer> {
    const raw = res.headers.get('location')
    const location = raw !== null && raw.startsWith(`${this.root}/`) ? raw.slice(this.root.length) : raw
    const body = (await res.text()).replaceAll(`="${this.root}/`, '="/')
    const answer = { status: res.status, location, body, headers: res.headers }
    if ((res.headers.get('content-type') ?? '').startsWith('text/html')) this.pages.push(answer.body)
    const token = /name="_csrf" value="([^"]+)"/.exec(answer.body)?.[1]
    if (token !== undefined) this.csrf = token
    return answer
  }
}
