// The page around every view: navigation, the CSRF token for htmx requests, and the scripts
// (htmx and the UI's own small app.js, both from this server: the CSP allows nothing else).
import { html, type Html } from '../html.ts'

// htmx 2: no indicator <style> injection (the CSP forbids inline style), no eval, no
// <script> tags run from swapped content.
const HTMX_CONFIG = JSON.stringify({ includeIndicatorStyles: false, allowEval: false, allowScriptTags: false, selfRequestsOnly: true, historyCacheSize: 0 })

const NAV: Array<[string, string, string]> = [
  ['mail', '/mail/Inbox', 'Mail'],
  ['compose', '/compose', 'Write'],
  ['outbox', '/outbox', 'Outbox'],
  ['contacts', '/contacts', 'Contacts'],
  ['friends', '/friends', 'Friends'],
  ['backup', '/backup', 'Backup'],
  ['recovery', '/recovery', 'Recovery'],
  ['dashboard', '/dashboard', 'Node'],
  ['settings', '/settings', 'Settings']
]

/** `menu: false`: a page of its own (the recovery page of a new machine), without the node's menu. */
export function layout (page: { title: string, body: Html, csrfToken?: string, nav?: string, menu?: boolean }): Html {
  const signedIn = page.csrfToken !== undefined
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="htmx-config" content="${HTMX_CONFIG}">
<meta name="referrer" content="same-origin">
<title>${page.title} · smtorp</title>
<link rel="stylesheet" href="/static/app.css">
<script src="/static/htmx.min.js" defer></script>
<script src="/static/app.js" defer></script>
</head>
<body${signedIn ? html` hx-headers="${JSON.stringify({ 'X-CSRF-Token': page.csrfToken })}"` : ''}>
<a class="skip" href="#main">Skip to content</a>
${signedIn && page.menu !== false
  ? html`<header class="top">
<nav aria-label="Main">
<ul>${NAV.map(([key, href, label]) => html`<li><a href="${href}"${page.nav === key ? html` aria-current="page"` : ''}>${label}</a></li>`)}</ul>
</nav>
<form method="post" action="/lock" class="lock-form">
<input type="hidden" name="_csrf" value="${page.csrfToken}">
<button type="submit">Lock</button>
</form>
</header>`
  : ''}
<main id="main" tabindex="-1">
${page.body}
</main>
</body>
</html>
`
}

/** `back`: where the "Back" link goes (default: the start page, "/"); false: no link. */
export function errorPage (title: string, message: string, options: { back?: string | false } = {}): Html {
  const back = options.back ?? '/'
  return layout({ title, body: html`<h1>${title}</h1><p role="alert">${message}</p>${back === false ? '' : html`<p><a href="${back}">Back</a></p>`}` })
}

/** A notice at the top of a view: what just happened, in words. */
export function notice (kind: 'ok' | 'error' | 'warning', text: string | undefined): Html {
  if (text === undefined || text === '') return html``
  return html`<p class="notice ${kind}" role="${kind === 'ok' ? 'status' : 'alert'}">${text}</p>`
}

export function csrfField (token: string): Html {
  return html`<input type="hidden" name="_csrf" value="${token}">`
}

export function formatDate (ms: number): string {
  const d = new Date(ms)
  return Number.isFinite(d.getTime()) ? d.toISOString().slice(0, 16).replace('T', ' ') + ' UTC' : ''
}

export function formatBytes (n: number): string {
  if (n < 1024) return `${n} B`
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`
  if (n < 1024 * 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MiB`
  return `${(n / 1024 / 1024 / 1024).toFixed(2)} GiB`
}

export function progressBar (label: string, done: number, total: number): Html {
  const percent = total > 0 ? Math.min(100, Math.round(done * 100 / total)) : 0
  return html`<div class="progress"><label>${label} <progress max="100" value="${percent}" aria-label="${label}">${percent}%</progress> <span>${done} of ${total}</span></label></div>`
}
