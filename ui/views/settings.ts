import { html, type Html } from '../html.ts'
import type { Credential, OwnKey, RelaySettings, UiSettings } from '../node-api.ts'
import { csrfField, formatDate, notice } from './layout.ts'
import { formatFingerprint } from './security.ts'

export interface SettingsView {
  relay?: RelaySettings
  credentials: Credential[]
  /** Why the credentials could not be read, if they could not. */
  credentialsProblem?: string
  ui: UiSettings
  submission: { host: string, port: number }
  csrfToken: string
  /** What the last action did, and whether it worked. */
  result?: { ok: boolean, text: string }
  /** A password just made: shown once. */
  newCredential?: { credential: Credential, password: string }
  /** The owner's OpenPGP key, or why it cannot be shown. */
  ownKey?: OwnKey
  ownKeyProblem?: string
  /** Just revoked: the revoked public key, to publish. */
  revokedPublicKey?: string
}

function ownKeySection (view: SettingsView): Html {
  const k = view.ownKey
  return html`<section aria-labelledby="openpgp-heading">
<h2 id="openpgp-heading">Your OpenPGP key</h2>
<p>Mail you send is signed with this key, and people encrypt to it. It travels with your mail (Autocrypt), so your correspondents usually have it already.</p>
${view.revokedPublicKey !== undefined
  ? html`<div class="notice ok" role="status"><p>The old key is revoked and a new one is in use. Publish the revoked key where the old one was (a keyserver, your Web Key Directory) so that others stop using it.</p>
<p><a href="/settings/openpgp/revoked-key" download>Download the revoked public key</a></p>
<label for="revoked-key">Revoked public key</label>
<textarea id="revoked-key" rows="6" class="armored" readonly>${view.revokedPublicKey}</textarea></div>`
  : ''}
${k === undefined
  ? notice('warning', view.ownKeyProblem ?? 'The key is not loaded yet.')
  : html`<dl class="facts">
<dt>Fingerprint</dt><dd class="fingerprint" id="own-fingerprint">${formatFingerprint(k.fingerprint)}</dd>
<dt>Addresses</dt><dd>${k.addresses.join(', ')}</dd>
<dt>Made</dt><dd>${formatDate(k.created)}</dd>
</dl>
<p><a href="/settings/openpgp/public-key" download>Download your public key</a> <span class="muted">(to give to people, or to publish)</span></p>`}

<h3>Back up your secret key</h3>
<form method="post" action="/settings/openpgp/export" class="stack">
${csrfField(view.csrfToken)}
<label for="export-passphrase">Passphrase for the backup (at least 8 characters)</label>
<input type="password" id="export-passphrase" name="passphrase" autocomplete="new-password" minlength="8" required>
<label for="export-repeat">The same again</label>
<input type="password" id="export-repeat" name="repeat" autocomplete="new-password" minlength="8" required>
<span class="muted">The file downloaded holds your secret key, locked with this passphrase. Keep both safe: whoever has them can read your mail and sign as you.</span>
<button type="submit">Download the secret key backup</button>
</form>

<h3>Use another key</h3>
<form method="post" action="/settings/openpgp/import" class="stack">
${csrfField(view.csrfToken)}
<label for="import-secret">Secret key (the armored text of a backup or of gpg --export-secret-keys --armor)</label>
<textarea id="import-secret" name="armored" rows="6" class="armored" required spellcheck="false" autocomplete="off"></textarea>
<label for="import-passphrase">Its passphrase (if it has one)</label>
<input type="password" id="import-passphrase" name="passphrase" autocomplete="off">
<span class="muted">The current key is kept to read mail already encrypted to it.</span>
<button type="submit">Use this key</button>
</form>

<h3>Make a new key</h3>
<form method="post" action="/settings/openpgp/regenerate" class="stack">
${csrfField(view.csrfToken)}
<label class="inline-label"><input type="checkbox" name="confirm" value="1" required> Make a new key. Your correspondents get it with your next mail; until then they encrypt to the old one, which is kept.</label>
<button type="submit">Make a new key</button>
</form>

<h3>Revoke your key</h3>
<form method="post" action="/settings/openpgp/revoke" class="stack">
${csrfField(view.csrfToken)}
<label class="inline-label"><input type="checkbox" name="confirm" value="1" required> Revoke the key (when it may have been stolen, or is no longer used) and make a new one. The old key is kept only to read old mail.</label>
<button type="submit">Revoke the key</button>
</form>
</section>`
}

export function relayTestResult (result: { ok: boolean, message: string }): Html {
  return html`<p class="notice ${result.ok ? 'ok' : 'error'}" role="status">${result.message}</p>`
}

export function settingsView (view: SettingsView): Html {
  const r = view.relay
  const check = (name: keyof RelaySettings, label: string, on: boolean): Html =>
    html`<label><input type="checkbox" name="${name}" value="1"${on ? ' checked' : ''}> ${label}</label>`
  return html`<h1>Settings</h1>
${view.result !== undefined ? notice(view.result.ok ? 'ok' : 'error', view.result.text) : ''}

${ownKeySection(view)}

<section aria-labelledby="relay-heading">
<h2 id="relay-heading">Legacy relay (smarthost)</h2>
<p>Mail to ordinary addresses (not <code>.onion</code>) goes through this SMTP server, usually your mail provider's. ${r === undefined ? html`<strong>None is set: such mail cannot be sent.</strong>` : ''}</p>
<form method="post" action="/settings/relay" class="stack" id="relay-form">
${csrfField(view.csrfToken)}
<label for="relay-host">Server</label>
<input type="text" id="relay-host" name="host" value="${r?.host ?? ''}" placeholder="smtp.example.org" autocomplete="off">
<label for="relay-port">Port</label>
<input type="number" id="relay-port" name="port" value="${r?.port ?? 587}" min="1" max="65535">
<label for="relay-username">User name</label>
<input type="text" id="relay-username" name="username" value="${r?.username ?? ''}" autocomplete="off">
<label for="relay-password">Password</label>
<input type="password" id="relay-password" name="password" autocomplete="new-password" aria-describedby="relay-password-help">
<span id="relay-password-help" class="muted">${r?.username !== undefined ? 'Leave empty to keep the saved password.' : 'Only if the server needs a login.'}</span>
${check('requireTls', 'Require an encrypted connection (STARTTLS)', r?.requireTls ?? true)}
${check('verifyCertificate', 'Check the server\'s certificate', r?.verifyCertificate ?? true)}
${check('viaTor', 'Connect through Tor', r?.viaTor ?? false)}
<div class="actions">
<button type="submit" name="action" value="save">Save relay</button>
<button type="submit" name="action" value="test" hx-post="/settings/relay/test" hx-target="#relay-test" hx-include="#relay-form">Test connection</button>
${r !== undefined ? html`<button type="submit" name="action" value="remove">Remove relay</button>` : ''}
</div>
<div id="relay-test" aria-live="polite"></div>
</form>
</section>

<section aria-labelledby="devices-heading">
<h2 id="devices-heading">Mail clients</h2>
<p>Each mail program or device gets its own password for sending through this node (SMTP submission on <span class="onion">${view.submission.host}:${view.submission.port}</span>, no TLS needed on this computer). Revoke one and only that device stops. After 10 wrong passwords in a row a credential is disabled.</p>
${view.newCredential !== undefined
  ? html`<div class="notice ok" role="status"><p>New credential for <strong>${view.newCredential.credential.name}</strong>. Enter these in the mail program now; the password is not shown again.</p>
<dl class="facts"><dt>User name</dt><dd class="onion" id="new-username">${view.newCredential.credential.username}</dd><dt>Password</dt><dd class="onion" id="new-password">${view.newCredential.password}</dd></dl></div>`
  : ''}
${view.credentialsProblem !== undefined
  ? notice('error', `The mail client credentials cannot be read, so device logins are refused: ${view.credentialsProblem}`)
  : view.credentials.length === 0
  ? html`<p>No per-device credentials yet.</p>`
  : html`<table><caption class="muted">Credentials</caption><thead><tr><th scope="col">Device</th><th scope="col">User name</th><th scope="col">Made</th><th scope="col">Last used</th><th scope="col">State</th><th scope="col"><span class="muted">Action</span></th></tr></thead><tbody>
${view.credentials.map(c => html`<tr><td>${c.name}</td><td class="onion">${c.username}</td><td>${formatDate(c.createdAt)}</td><td>${c.lastUsedAt !== undefined ? formatDate(c.lastUsedAt) : 'never'}</td>
<td>${c.disabled ? html`<strong class="state-failed">Disabled after ${c.failures} wrong passwords</strong>` : c.failures > 0 ? `${c.failures} wrong passwords in a row` : 'Active'}</td>
<td>${c.disabled ? html`<form method="post" action="/settings/credentials/${c.id}/enable" class="inline">${csrfField(view.csrfToken)}<button type="submit" aria-label="Enable ${c.name} again">Enable again</button></form> ` : ''}<form method="post" action="/settings/credentials/${c.id}/revoke" class="inline">${csrfField(view.csrfToken)}<button type="submit" aria-label="Revoke ${c.name}">Revoke</button></form></td></tr>`)}
</tbody></table>`}
<form method="post" action="/settings/credentials" class="stack">
${csrfField(view.csrfToken)}
<label for="credential-name">New device</label>
<input type="text" id="credential-name" name="name" maxlength="64" placeholder="laptop, phone…" required>
<button type="submit">Make a password for it</button>
</form>
</section>

<section aria-labelledby="passphrase-heading">
<h2 id="passphrase-heading">Passphrase</h2>
<form method="post" action="/settings/passphrase" class="stack">
${csrfField(view.csrfToken)}
<label for="current-passphrase">Current passphrase</label>
<input type="password" id="current-passphrase" name="current" autocomplete="current-password" required>
<label for="new-passphrase">New passphrase</label>
<input type="password" id="new-passphrase" name="next" autocomplete="new-password" minlength="8" required>
<label for="repeat-passphrase">New passphrase again</label>
<input type="password" id="repeat-passphrase" name="repeat" autocomplete="new-password" minlength="8" required>
<button type="submit">Change passphrase</button>
</form>
</section>

<section aria-labelledby="autolock-heading">
<h2 id="autolock-heading">Automatic lock</h2>
<form method="post" action="/settings/autolock" class="stack">
${csrfField(view.csrfToken)}
<label for="autolock">Lock the vault after this many minutes without using this page (0: never)</label>
<input type="number" id="autolock" name="minutes" value="${view.ui.autoLockMinutes}" min="0" max="1440">
<button type="submit">Save</button>
</form>
</section>`
}
