import { html, type Html } from '../html.ts'
import type { Contact, FoundKey } from '../node-api.ts'
import { csrfField, formatDate, notice } from './layout.ts'
import { contactAnchor, formatFingerprint } from './security.ts'

export interface ContactsView {
  contacts: Contact[]
  csrfToken: string
  result?: { ok: boolean, text: string }
  /** The last lookup, shown with its keys to accept. */
  lookup?: { address: string, found: FoundKey[], problems: string[] }
}

const SOURCE_WORDS: Record<string, string> = {
  autocrypt: 'from their mail (Autocrypt)',
  imported: 'added by you',
  lookup: 'found by a lookup and accepted by you'
}

function fingerprint (fp: string): Html {
  return html`<span class="fingerprint">${formatFingerprint(fp)}</span>`
}

/**
 * Keys a lookup found. `inline`: inside the compose form (no nested forms: htmx buttons that
 * replace this box); else ordinary forms, for the contacts page.
 */
export function foundKeysView (lookup: { address: string, found: FoundKey[], problems: string[] }, options: { inline: boolean, csrfToken: string }): Html {
  const problems = lookup.problems.length > 0 ? html`<ul class="muted">${lookup.problems.map(p => html`<li>${p}</li>`)}</ul>` : ''
  if (lookup.found.length === 0) return html`<div role="status"><p>No key was found for <span class="onion">${lookup.address}</span>. Ask them for their key and add it in <a href="/contacts">Contacts</a>, or send without encryption.</p>${problems}</div>`
  return html`<div role="status"><p>Found for <span class="onion">${lookup.address}</span>: check the fingerprint with them before you rely on it. Nothing is used until you accept it.</p>
<ul class="found-keys">${lookup.found.map(k => html`<li><dl class="facts"><dt>Fingerprint</dt><dd>${fingerprint(k.fingerprint)}</dd><dt>User ids</dt><dd>${k.userIds.join(', ')}</dd><dt>Made</dt><dd>${formatDate(k.created)}</dd><dt>From</dt><dd>${k.source === 'wkd' ? 'the Web Key Directory of their domain' : k.source}</dd></dl>
${options.inline
  ? html`<button type="button" hx-post="/contacts/accept-found" hx-vals="${JSON.stringify({ address: lookup.address, fingerprint: k.fingerprint })}" hx-params="address,fingerprint" hx-target="closest .lookup-result">Accept this key for ${lookup.address}</button>`
  : html`<form method="post" action="/contacts/accept-found" class="inline">${csrfField(options.csrfToken)}<input type="hidden" name="address" value="${lookup.address}"><input type="hidden" name="fingerprint" value="${k.fingerprint}"><button type="submit">Accept this key for ${lookup.address}</button></form>`}</li>`)}</ul>${problems}</div>`
}

function contactEntry (c: Contact, csrfToken: string): Html {
  const hidden = (name: string, value: string): Html => html`<input type="hidden" name="${name}" value="${value}">`
  const id = contactAnchor(c.address)
  return html`<article class="contact${c.changed !== undefined ? ' changed' : ''}" id="${id}" aria-labelledby="${id}-name">
<h3 id="${id}-name" class="onion">${c.address}</h3>
<dl class="facts">
<dt>Key</dt><dd>${c.pinned !== undefined ? fingerprint(c.pinned.fingerprint) : c.gossipOnly ? 'none of their own yet; one from another correspondent\'s mail is used' : 'none'}</dd>
${c.pinned !== undefined
  ? html`<dt>Verified</dt><dd>${c.pinned.verified ? html`<strong class="state-delivered">Yes</strong>: you compared fingerprints` : 'No: pinned when first seen, not compared with them yet'}</dd>
<dt>Since</dt><dd>${formatDate(c.pinned.since)}, ${SOURCE_WORDS[c.pinned.source] ?? c.pinned.source}</dd>`
  : ''}
<dt>Last seen</dt><dd>${c.lastSeen !== undefined ? formatDate(c.lastSeen) : 'never (no mail from them yet)'}</dd>
<dt>Prefers encryption</dt><dd>${c.preferEncrypt === 'mutual' ? 'yes' : c.preferEncrypt === 'nopreference' ? 'no preference' : 'not said'}</dd>
<dt>Route</dt><dd>${c.route !== undefined ? html`directly over Tor to <span class="onion">${c.route}</span> (learned from their signed mail)` : 'as the address says'}</dd>
</dl>
${c.changed !== undefined
  ? html`<div class="notice warning" role="alert"><p><strong>Their key changed.</strong> On ${formatDate(c.changed.seenAt)} their mail came with another key:</p>
<dl class="facts"><dt>Old key (in use)</dt><dd>${c.pinned !== undefined ? fingerprint(c.pinned.fingerprint) : 'none'}</dd><dt>New key</dt><dd>${fingerprint(c.changed.fingerprint)}</dd></dl>
<p>This happens when they set up a new device or lost their key, and also when someone pretends to be them. Ask them, by another way than mail, which key is theirs.
Accept the new key and mail to them is encrypted to it from now on. Keep the old key and nothing changes: mail to them stays encrypted to the old key, their messages signed by the new key keep their warning, and the new key stays listed here until you accept it.</p>
${c.changed.keptOldAt !== undefined ? html`<p>You chose to keep the old key on ${formatDate(c.changed.keptOldAt)}.</p>` : ''}
<div class="actions">
<form method="post" action="/contacts/accept" class="inline">${csrfField(csrfToken)}${hidden('address', c.address)}${hidden('fingerprint', c.changed.fingerprint)}<button type="submit">Accept the new key</button></form>
${c.changed.keptOldAt === undefined ? html`<form method="post" action="/contacts/keep" class="inline">${csrfField(csrfToken)}${hidden('address', c.address)}${hidden('fingerprint', c.changed.fingerprint)}<button type="submit">Keep the old key</button></form>` : ''}
</div></div>`
  : ''}
${c.pinned !== undefined && !c.pinned.verified
  ? html`<form method="post" action="/contacts/verify" class="stack">${csrfField(csrfToken)}${hidden('address', c.address)}
<label for="${id}-verify">Fingerprint ${c.address} read to you</label>
<input type="text" id="${id}-verify" name="fingerprint" autocomplete="off" spellcheck="false" required aria-describedby="${id}-verify-help">
<span id="${id}-verify-help" class="muted">Ask them to read their key's fingerprint to you, in person or on the phone, and type it here. It is marked verified only if it is the one above.</span>
<button type="submit">Mark verified</button></form>`
  : ''}
</article>`
}

export function contactsView (view: ContactsView): Html {
  return html`<h1>Contacts</h1>
${view.result !== undefined ? notice(view.result.ok ? 'ok' : 'error', view.result.text) : ''}
<p>The OpenPGP keys of the people you write with. The first key seen for an address (in their mail's Autocrypt header) is pinned and used from then on. Compare fingerprints with them by another way than mail and mark the key verified. When a different key turns up, it is not used until you decide.</p>

<section aria-labelledby="lookup-heading">
<h2 id="lookup-heading">Look up a key</h2>
<form method="post" action="/contacts/lookup" class="stack">
${csrfField(view.csrfToken)}
<label for="lookup-address">Address</label>
<input type="email" id="lookup-address" name="address" value="${view.lookup?.address ?? ''}" required autocomplete="off" aria-describedby="lookup-help">
<span id="lookup-help" class="muted">Asks their domain's Web Key Directory and the keyservers in your configuration, over Tor. This can take a minute.</span>
<button type="submit">Look up</button>
</form>
${view.lookup !== undefined ? foundKeysView(view.lookup, { inline: false, csrfToken: view.csrfToken }) : ''}
</section>

<section aria-labelledby="import-heading">
<h2 id="import-heading">Add a key</h2>
<form method="post" action="/contacts/import" class="stack">
${csrfField(view.csrfToken)}
<label for="import-key">Public key (armored: it starts with -----BEGIN PGP PUBLIC KEY BLOCK-----)</label>
<textarea id="import-key" name="armored" rows="6" class="armored" required spellcheck="false"></textarea>
<label for="import-address">For the address (empty: every address the key names)</label>
<input type="email" id="import-address" name="address" autocomplete="off">
<button type="submit">Add this key</button>
</form>
</section>

<section aria-labelledby="contacts-heading">
<h2 id="contacts-heading">People (${view.contacts.length})</h2>
${view.contacts.length === 0 ? html`<p>No one yet: keys arrive with signed mail, or add one above.</p>` : view.contacts.map(c => contactEntry(c, view.csrfToken))}
</section>`
}
