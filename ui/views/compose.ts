import { html, type Html } from '../html.ts'
import type { Draft, Route } from '../node-api.ts'
import { csrfField, formatBytes, notice } from './layout.ts'
import { recipientKey } from './security.ts'

export interface EncryptionView {
  /** The box is ticked. */
  encrypt: boolean
  /** The owner changed it (or a saved draft or a reply set it): typing recipients no longer changes it. */
  touched: boolean
}

/** The Encrypt box. Typing recipients re-renders it (out of band) until the owner changes it. */
function encryptBox (encryption: EncryptionView, oob = false): Html {
  return html`<span id="encrypt-box"${oob ? html` hx-swap-oob="true"` : ''}><label class="inline-label"><input type="checkbox" id="encrypt" name="encrypt" value="1"${encryption.encrypt ? ' checked' : ''} aria-describedby="encrypt-help"> Encrypt</label></span>`
}

function encryptHelp (routes: Route[], encryption: EncryptionView, oob = false): Html {
  const missing = routes.some(r => r.key?.state === 'none')
  const changed = routes.some(r => r.key?.changedKey !== undefined)
  return html`<span id="encrypt-help" class="muted"${oob ? html` hx-swap-oob="true"` : ''}>${encryption.encrypt
    ? html`${missing
      ? html`<strong class="state-failed">Not every recipient has a key: sending is refused until their keys are looked up, or Encrypt is unticked.</strong>`
      : 'Only the recipients (and you) can read it. It is signed with your key.'}${changed ? html` <strong class="state-delayed">A recipient's key changed: the message is encrypted to the key you had, which they may no longer read. Decide in <a href="/contacts">Contacts</a>.</strong>` : ''}`
    : 'Not encrypted: anyone on the way (a relay, a provider) can read it. It is still signed with your key.'}</span>`
}

/** Each recipient's route and key, with "Look up key" for a recipient without one. */
export function routesFragment (routes: Route[], encryption: EncryptionView): Html {
  if (routes.length === 0) return html`<p class="muted">Type a recipient to see how the message will travel.</p>`
  return html`<ul class="routes">${routes.map((r, i) => html`<li class="route-${r.kind}"><span class="onion">${r.address}</span>: ${r.description}${r.key !== undefined ? html` — ${recipientKey(r.key, encryption.encrypt)}` : ''}${r.key?.state === 'none'
    ? html` <button type="button" hx-post="/contacts/lookup" hx-vals="${JSON.stringify({ address: r.address })}" hx-params="address" hx-target="#lookup-${i}" hx-indicator="#lookup-${i}-busy">Look up key</button> <span id="lookup-${i}-busy" class="htmx-indicator muted">Asking over Tor; this can take a minute…</span><div id="lookup-${i}" class="lookup-result"></div>`
    : ''}</li>`)}</ul>`
}

/** The answer to /compose/routes: the list, the help text, and the box while the owner has not changed it. */
export function routesUpdate (routes: Route[], encryption: EncryptionView): Html {
  return html`${routesFragment(routes, encryption)}${encryptHelp(routes, encryption, true)}${encryption.touched ? '' : encryptBox(encryption, true)}`
}

export function composeView (view: { draft: Draft, draftId?: string, routes: Route[], encryption: EncryptionView, csrfToken: string, error?: string, notice?: string, maxUploadBytes: number }): Html {
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
<input type="hidden" name="encryptShown" value="1">
<input type="hidden" id="encrypt-touched" name="encryptTouched" value="${view.encryption.touched ? '1' : '0'}">
<p class="encrypt-choice" id="encrypt-choice">${encryptBox(view.encryption)} ${encryptHelp(view.routes, view.encryption)}</p>
<div id="routes" aria-live="polite" hx-post="/compose/routes" hx-trigger="input changed delay:400ms from:.recipient-field, change from:#encrypt-choice, keys-changed from:body" hx-include=".recipient-field, #encrypt, #encrypt-touched, [name=inReplyToId]" hx-params="to,cc,bcc,encrypt,encryptTouched,inReplyToId" hx-sync="this:replace" hx-disinherit="*">${routesFragment(view.routes, view.encryption)}</div>
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
