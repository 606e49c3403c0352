import { html, type Html } from '../html.ts'
import type { Draft, Route } from '../node-api.ts'
import { csrfField, formatBytes, notice } from './layout.ts'

export function routesFragment (routes: Route[]): Html {
  if (routes.length === 0) return html`<p class="muted">Type a recipient to see how the message will travel.</p>`
  return html`<ul class="routes">${routes.map(r => html`<li class="route-${r.kind}"><span class="onion">${r.address}</span>: ${r.description}</li>`)}</ul>`
}

export function composeView (view: { draft: Draft, draftId?: string, routes: Route[], csrfToken: string, error?: string, notice?: string, maxUploadBytes: number }): Html {
  const d = view.draft
  const field = (id: keyof Draft, label: string, help: string): Html => html`<label for="${id}">${label}</label>
<input type="text" id="${id}" name="${id}" value="${String(d[id] ?? '')}" class="recipient-field" autocomplete="off" spellcheck="false" aria-describedby="${id}-help">
<span id="${id}-help" class="muted">${help}</span>`
  return html`<h1>${view.draftId !== undefined ? 'Edit draft' : d.inReplyToId !== undefined ? 'Reply' : 'Write a message'}</h1>
${notice('error', view.error)}
${notice('ok', view.notice)}
<form method="post" action="/compose" enctype="multipart/form-data" class="stack">
${csrfField(view.csrfToken)}
<span hidden hx-post="/compose/alive" hx-trigger="input from:closest form throttle:60s" hx-swap="none"></span>
${view.draftId !== undefined ? html`<input type="hidden" name="draftId" value="${view.draftId}">` : ''}
${d.inReplyToId !== undefined ? html`<input type="hidden" name="inReplyToId" value="${d.inReplyToId}">` : ''}
${view.draftId === undefined && d.forwardOfId !== undefined ? html`<input type="hidden" name="forwardOfId" value="${d.forwardOfId}">` : ''}
${field('to', 'To', 'Addresses separated by commas.')}
${field('cc', 'Cc', 'Copies; every recipient sees these.')}
${field('bcc', 'Bcc', 'Hidden copies: the others do not see these addresses.')}
<section aria-labelledby="route-heading" class="route-box">
<h2 id="route-heading">How it will travel</h2>
<div id="routes" aria-live="polite" hx-post="/compose/routes" hx-trigger="input changed delay:400ms from:.recipient-field" hx-include=".recipient-field" hx-sync="this:replace">${routesFragment(view.routes)}</div>
</section>
<label for="subject">Subject</label>
<input type="text" id="subject" name="subject" value="${d.subject}">
<label for="body">Message</label>
<textarea id="body" name="body" rows="14">${d.body}</textarea>
${d.attachments.length > 0
  ? html`<fieldset><legend>Attached</legend>${d.attachments.map((a, i) => html`<label class="inline-label"><input type="checkbox" name="keepAttachment" value="${i}" checked> ${a.filename} <span class="muted">(${formatBytes(a.content.length)})</span></label>`)}</fieldset>`
  : ''}
<label for="attachments">Attach files</label>
<input type="file" id="attachments" name="attachments" multiple aria-describedby="attachments-help">
<span id="attachments-help" class="muted">Up to ${formatBytes(view.maxUploadBytes)} in all.</span>
<div class="actions">
<button type="submit" name="action" value="send">Send</button>
<button type="submit" name="action" value="save">Save draft</button>
</div>
</form>`
}
