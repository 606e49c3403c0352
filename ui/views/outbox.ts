import { html, type Html } from '../html.ts'
import type { OutboxEntry, OutboxRecipient } from '../node-api.ts'
import { csrfField, formatDate, notice } from './layout.ts'

const STATE_WORDS: Record<OutboxRecipient['state'], string> = {
  queued: 'Queued',
  delivering: 'Delivering now',
  delayed: 'Delayed',
  delivered: 'Delivered',
  failed: 'Failed'
}

function recipientLine (r: OutboxRecipient): Html {
  const detail = r.state === 'delayed'
    ? html` — the last try failed: ${r.lastResult ?? 'no answer'}.${r.nextAttemptAt !== undefined ? html` Next try ${formatDate(r.nextAttemptAt)}.` : ''}`
    : r.state === 'failed'
      ? html` — ${r.lastResult ?? 'gave up'}. It will not be tried again.`
      : r.state === 'delivered' && r.lastResult !== undefined ? html` <span class="muted">(${r.lastResult})</span>` : ''
  return html`<li><span class="onion">${r.address}</span>: <strong class="state-${r.state}" data-state="${r.state}">${STATE_WORDS[r.state]}</strong>${detail}${r.attempts > 0 ? html` <span class="muted">${r.attempts} attempt${r.attempts === 1 ? '' : 's'}</span>` : ''}</li>`
}

function entrySection (e: OutboxEntry, csrfToken: string): Html {
  const open = e.recipients.some(r => r.state === 'queued' || r.state === 'delayed' || r.state === 'delivering')
  return html`<section class="outbox-entry" aria-label="${e.subject === undefined || e.subject === '' ? '(no subject)' : e.subject}">
<h3>${e.subject === undefined || e.subject === '' ? '(no subject)' : e.subject} <span class="muted">written ${formatDate(e.createdAt)}</span></h3>
<ul>${e.recipients.map(recipientLine)}</ul>
${open
  ? html`<div class="actions">
<form method="post" action="/outbox/${e.id}/retry" class="inline">${csrfField(csrfToken)}<button type="submit" id="retry-${e.id}">Retry now</button></form>
<form method="post" action="/outbox/${e.id}/cancel" class="inline">${csrfField(csrfToken)}<button type="submit" id="cancel-${e.id}">Cancel sending</button></form>
</div>`
  : ''}
</section>`
}

/**
 * The list, polled every few seconds while the page is open. Its buttons have ids: htmx gives
 * focus back after a swap only to an element with the id the focused one had.
 */
export function outboxList (entries: OutboxEntry[], csrfToken: string): Html {
  const done = (e: OutboxEntry): boolean => e.recipients.every(r => r.state === 'delivered' || r.state === 'failed')
  const sending = entries.filter(e => !done(e))
  const finished = entries.filter(done)
  return html`<div id="outbox-list" hx-get="/live/outbox" hx-trigger="every 2s" hx-swap="outerHTML">
<h2>Being sent</h2>
${sending.length === 0 ? html`<p>Nothing is waiting to be sent.</p>` : sending.map(e => entrySection(e, csrfToken))}
${finished.length > 0 ? html`<h2>Finished in the last hour</h2>${finished.map(e => entrySection(e, csrfToken))}<p class="muted">Finished messages are in <a href="/mail/Sent">Sent</a>.</p>` : ''}
</div>`
}

export function outboxView (view: { entries: OutboxEntry[], csrfToken: string, notice?: string }): Html {
  return html`<h1>Outbox</h1>
${notice('ok', view.notice)}
<p>Where each recipient of your mail stands. Nothing is dropped silently: every recipient ends delivered, or failed with the reason (and a notice in your Inbox).</p>
${outboxList(view.entries, view.csrfToken)}`
}
