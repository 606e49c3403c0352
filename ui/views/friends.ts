// Friends (spec/friends.md): who holds shards of the owner's backup and whose shards this node
// holds, how much each way, and what the audits found; inviting, accepting, changing the
// storage offered, removing.
import { html, trusted, type Html } from '../html.ts'
import type { FriendInfo, FriendInvite } from '../node-api.ts'
import { csrfField, formatBytes, formatDate, notice } from './layout.ts'

const MiB = 1024 * 1024
/** The storage a new friend is offered unless the owner says otherwise (config friends.offerMiB's default). */
export const DEFAULT_OFFER_MIB = 1024

export interface FriendsView {
  enabled: boolean
  friends: FriendInfo[]
  csrfToken: string
  result?: { ok: boolean, text: string }
  /** An invite just made: shown once. */
  invite?: FriendInvite
}

export const FRIENDS_OFF = 'Friends are turned off in config.yaml (friends.enabled: false): there are no friends to hold a backup or recovery shares.'

/**
 * The QR code's SVG comes from the qrcode package (paths and rects only) and holds nothing the
 * owner or a peer typed. It is still checked before it goes into the page unescaped: anything
 * that could run or fetch (a script, an event handler, a link, foreign content) drops it.
 */
export function safeQrSvg (svg: string, label: string): Html | undefined {
  const text = svg.trim()
  if (!/^<svg\s[^>]*>[\s\S]*<\/svg>$/.test(text)) return undefined
  if (/<(?!\/?(?:svg|path|rect)[\s>/])|\son[a-z]+\s*=|href|javascript:|url\(|@import/i.test(text)) return undefined
  return trusted(text.replace(/^<svg\s/, html`<svg role="img" aria-label="${label}" `.value))
}

export function describeAudits (audits: FriendInfo['audits']): string {
  if (audits === undefined || audits.passed + audits.failed === 0) return 'Not audited yet.'
  const when = audits.lastAt !== undefined ? ` Last audit ${formatDate(audits.lastAt)}` : ''
  const last = audits.lastResult !== undefined ? `${when === '' ? ' Last audit' : ''}: ${audits.lastResult}.` : when !== '' ? `${when}.` : ''
  if (audits.failed === 0) return `All ${audits.passed} shard checks passed.${last}`
  return `${audits.failed} of ${audits.passed + audits.failed} shard checks failed.${last}`
}

export function inviteResult (invite: FriendInvite): Html {
  const qr = safeQrSvg(invite.qrSvg, 'QR code of the invite')
  return html`<div class="notice ok" role="status" id="invite-made">
<p>Give this invite to your friend (by a channel you trust). It works once, until ${formatDate(invite.expiresAt)}.</p>
<pre class="invite-code" id="invite-code">${invite.code}</pre>
<p><button type="button" data-copy="invite-code">Copy invite</button></p>
${qr !== undefined ? html`<div class="qr">${qr}</div>` : html`<p class="muted">The QR code could not be shown; copy the text instead.</p>`}
</div>`
}

function friendRow (f: FriendInfo, csrfToken: string): Html {
  const id = `friend-${f.onion.slice(0, 16)}`
  return html`<article class="friend" id="${id}" data-onion="${f.onion}">
<h3>${f.name}</h3>
<p class="onion muted">${f.onion}.onion</p>
<dl class="facts">
<dt>Last seen</dt><dd data-testid="last-seen">${f.lastSeen !== undefined ? formatDate(f.lastSeen) : 'not yet'}</dd>
<dt>Your backup on their node</dt><dd data-testid="holds-of-ours">${formatBytes(f.holdsOfOurs)} in ${f.shardsOfOurs} shards, of ${formatBytes(f.quotaFromThem)} they offered</dd>
<dt>Their backup on yours</dt><dd data-testid="we-hold">${formatBytes(f.weHoldOfTheirs)}, of ${formatBytes(f.quotaForThem)} you offer</dd>
<dt>Audits</dt><dd data-testid="audits" class="${f.audits !== undefined && f.audits.failed > 0 ? 'state-failed' : ''}">${describeAudits(f.audits)}</dd>
</dl>
<form method="post" action="/friends/${f.onion}/quota" class="actions">
${csrfField(csrfToken)}
<label for="${id}-quota">Storage you offer ${f.name} (MiB)</label>
<input type="number" id="${id}-quota" name="quotaMiB" min="0" max="16777216" value="${Math.round(f.quotaForThem / MiB)}" required>
<button type="submit">Change</button>
</form>
<details>
<summary>Remove ${f.name}…</summary>
<form method="post" action="/friends/${f.onion}/remove" class="stack">
${csrfField(csrfToken)}
<p>If you remove ${f.name}, the shards of your backup on their node are placed on your other friends, and the shards of their backup on this node are deleted.</p>
<label class="inline-label"><input type="checkbox" name="confirm" value="1" required> Remove ${f.name} as a friend</label>
<button type="submit">Remove friend</button>
</form>
</details>
</article>`
}

export function friendsView (view: FriendsView): Html {
  if (!view.enabled) return html`<h1>Friends</h1>${notice('warning', FRIENDS_OFF)}`
  return html`<h1>Friends</h1>
${view.result !== undefined ? notice(view.result.ok ? 'ok' : 'error', view.result.text) : ''}
<p>Friends' nodes hold your backup in pieces (shards), encrypted: no friend can read it, and a few of them together bring it back. You hold theirs in return.</p>

<section aria-labelledby="friends-heading">
<h2 id="friends-heading">Your friends</h2>
${view.friends.length === 0
  ? html`<p data-testid="no-friends">No friends yet. Invite one, or accept an invite below.</p>`
  : view.friends.map(f => friendRow(f, view.csrfToken))}
</section>

<section aria-labelledby="invite-heading">
<h2 id="invite-heading">Invite a friend</h2>
<form method="post" action="/friends/invite" class="stack" hx-post="/friends/invite" hx-target="#invite-result" hx-swap="innerHTML">
${csrfField(view.csrfToken)}
<label for="invite-quota">Storage to offer them (MiB)</label>
<input type="number" id="invite-quota" name="quotaMiB" min="0" max="16777216" value="${DEFAULT_OFFER_MIB}" required>
<button type="submit" id="make-invite">Make an invite</button>
</form>
<div id="invite-result" aria-live="polite">${view.invite !== undefined ? inviteResult(view.invite) : ''}</div>
</section>

<section aria-labelledby="accept-heading">
<h2 id="accept-heading">Accept an invite</h2>
<form method="post" action="/friends/accept" class="stack">
${csrfField(view.csrfToken)}
<label for="accept-code">The invite your friend gave you</label>
<textarea id="accept-code" name="code" rows="3" required spellcheck="false" autocomplete="off"></textarea>
<label for="accept-quota">Storage to offer them (MiB)</label>
<input type="number" id="accept-quota" name="quotaMiB" min="0" max="16777216" value="${DEFAULT_OFFER_MIB}" required>
<button type="submit">Accept</button>
</form>
</section>`
}
