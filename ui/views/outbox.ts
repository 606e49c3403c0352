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

/** The list, polled every few seconds while the page is open. */
export function outboxList (entries: OutboxEntry[], csrfToken: string): Html {
  return html`<div id="outbox-list" hx-get="/live/outbox" hx-trigger="every 2s" hx-swap="outerHTML">
${entries.length === 0
  ? html`<p>Nothing is waiting to be sent. Sent mail is in <a href="/mail/Sent">Sent</a>.</p>`
  : entries.map(e => html`<section class="outbox-entry" aria-label="${e.subject ?? '(no subject)'}">
<h2>${e.subject === undefined || e.subject === '' ? '(no subject)' : e.subject} <span class="muted">queued ${formatDate(e.createdAt)}</span></h2>
<ul>${e.recipients.map(recipientLine)}</ul>
${e.recipients.some(r => r.state === 'queued' || r.state === 'delayed' || r.state === 'delivering')
  ? html`<div class="actions">
<form method="post" action="/outbox/${e.id}/retry" class="inline">${csrfField(csrfToken)}<button type="submit">Retry now</button></form>
<form method="post" action="/outbox/${e.id}/cancel" class="inline">${csrfField(csrfToken)}<button type="submit">Cancel sending</button></form>
</div>`
  : ''}
</section>`)}
</div>`
}

export function outboxView (view: { entries: OutboxEntry[], csrfToken: string, notice?: string }): Html {
  return html`<h1>Outbox</h1>
${notice('ok', view.notice)}
<p>Every message not yet delivered to all its recipients, and where each recipient stands. Nothing here is dropped silently: a recipient is either delivered, or marked failed with the reason.</p>
${outboxList(view.entries, view.csrfToken)}`
}
