// Recovery (spec/recovery.md part 2): the custodians who hold shares of the owner's master key
// and whether they still hold them, appointing them, the shares this node holds for friends
// (who and since when: never the share), and recovery requests waiting for the owner's
// decision, with the code to compare.
import { html, type Html } from '../html.ts'
import type { RecoveryOverview, RecoveryRequestInfo } from '../node-api.ts'
import { csrfField, formatDate, notice } from './layout.ts'

export interface RecoveryView {
  overview: RecoveryOverview
  csrfToken: string
  result?: { ok: boolean, text: string }
}

function requestArticle (r: RecoveryRequestInfo, csrfToken: string): Html {
  const who = r.ownerName !== undefined ? r.ownerName : `${r.owner}.onion`
  if (r.state !== 'pending') {
    return html`<li>${formatDate(r.createdAt)}: a request for ${who}'s share was ${r.state === 'approved' ? 'approved: the share was released to the requester' : `refused (${r.reason ?? 'refused'})`}.</li>`
  }
  return html`<article class="recovery-request" id="request-${r.id}">
<h3>Someone asks for ${who}'s recovery share</h3>
<p>A new machine (${r.requester}.onion) says it is ${who}, who lost their node, and asks for the share you hold. Its verification code:</p>
<p class="release-code" data-testid="release-code">${r.code}</p>
<p><strong>Approve only after the person asking has read you this same code</strong>, on the phone or face to face, and you are sure it is ${who}. If the code differs, or you did not expect this, refuse.</p>
<div class="actions">
<form method="post" action="/recovery/requests/${r.id}/approve">${csrfField(csrfToken)}<button type="submit" aria-label="Approve the request for ${who}'s share">Approve</button></form>
<form method="post" action="/recovery/requests/${r.id}/refuse">${csrfField(csrfToken)}<button type="submit" aria-label="Refuse the request for ${who}'s share">Refuse</button></form>
</div>
</article>`
}

/** Requests can arrive at any time: this part polls every 5 seconds. */
export function requestsFragment (overview: RecoveryOverview, csrfToken: string): Html {
  const pending = overview.requests.filter(r => r.state === 'pending')
  const decided = overview.requests.filter(r => r.state !== 'pending')
  return html`<section id="recovery-requests" aria-labelledby="requests-heading" hx-get="/live/recovery/requests" hx-trigger="every 5s" hx-swap="outerHTML">
<h2 id="requests-heading">Recovery requests</h2>
${pending.length === 0 ? html`<p data-testid="no-requests">No request is waiting for you.</p>` : pending.map(r => requestArticle(r, csrfToken))}
${decided.length > 0 ? html`<ul class="muted">${decided.map(r => requestArticle(r, csrfToken))}</ul>` : ''}
</section>`
}

function custodiansSection (overview: RecoveryOverview, csrfToken: string): Html {
  const split = overview.custodians
  return html`<section id="custodians" aria-labelledby="custodians-heading"${overview.checking ? html` hx-get="/live/recovery/custodians" hx-trigger="every 2s" hx-swap="outerHTML"` : ''}>
<h2 id="custodians-heading">Your custodians</h2>
${split === undefined
  ? html`<p data-testid="no-custodians">No custodians yet. Without them, losing this node and your passphrase means losing your mail: appoint some below.</p>`
  : html`<p>Any ${split.threshold} of these ${split.count} friends can together give you back your key (appointed ${formatDate(split.createdAt)}).</p>
<table><caption class="muted">Custodians</caption><thead><tr><th scope="col">Friend</th><th scope="col">Share</th><th scope="col">Last check</th></tr></thead><tbody>
${split.custodians.map(c => html`<tr data-onion="${c.onion}"><td>${c.name}</td><td>${c.index} of ${split.count}</td>
<td>${c.check === undefined
  ? (c.deliveredAt !== undefined ? `took its share ${formatDate(c.deliveredAt)}` : 'not given its share yet')
  : html`<span class="${c.check.ok ? 'state-delivered' : 'state-failed'}">${formatDate(c.check.at)}: ${c.check.ok ? 'OK' : 'Problem'}, ${c.check.message}</span>`}</td></tr>`)}
</tbody></table>
${overview.checking
  ? html`<p role="status">Checking the custodians…</p>`
  : html`<form method="post" action="/recovery/check" class="actions">${csrfField(csrfToken)}<button type="submit" id="check-custodians">Check custodians now</button></form>`}`}
</section>`
}

export function custodiansFragment (overview: RecoveryOverview, csrfToken: string): Html {
  return custodiansSection(overview, csrfToken)
}

function appointSection (overview: RecoveryOverview, csrfToken: string): Html {
  if (overview.friends.length < 2) {
    return html`<section aria-labelledby="appoint-heading"><h2 id="appoint-heading">Appoint custodians</h2><p>Custodians are chosen among your friends; you need at least two friends.</p></section>`
  }
  return html`<section aria-labelledby="appoint-heading">
<h2 id="appoint-heading">${overview.custodians === undefined ? 'Appoint custodians' : 'Appoint new custodians'}</h2>
<p>Your key is split so that the number of custodians you choose below can rebuild it together, and fewer learn nothing.${overview.custodians !== undefined ? ' The new split replaces the current one.' : ''}</p>
<form method="post" action="/recovery/appoint" class="stack">
${csrfField(csrfToken)}
<fieldset><legend>Custodians</legend>
${overview.friends.map(f => html`<label class="inline-label"><input type="checkbox" name="custodian" value="${f.onion}"${overview.custodians?.custodians.some(c => c.onion === f.onion) === true ? ' checked' : ''}> ${f.name} <span class="muted onion">${f.onion.slice(0, 16)}…</span></label>`)}
</fieldset>
<label for="threshold">How many of them are needed to bring your key back</label>
<input type="number" id="threshold" name="threshold" min="2" max="${overview.friends.length}" value="${overview.custodians?.threshold ?? 2}" required>
<label for="appoint-passphrase">Your passphrase (asked again: this hands out your key in pieces)</label>
<input type="password" id="appoint-passphrase" name="passphrase" autocomplete="current-password" required>
<button type="submit">Appoint</button>
</form>
</section>`
}

function heldSection (overview: RecoveryOverview): Html {
  return html`<section aria-labelledby="held-heading">
<h2 id="held-heading">Shares you hold for friends</h2>
${overview.held.length === 0
  ? html`<p>You hold no one's share.</p>`
  : html`<table><caption class="muted">Held for</caption><thead><tr><th scope="col">Friend</th><th scope="col">Since</th></tr></thead><tbody>
${overview.held.map(h => html`<tr><td>${h.ownerName} <span class="muted onion">${h.owner.slice(0, 16)}…</span></td><td>${formatDate(h.receivedAt)}</td></tr>`)}
</tbody></table>
<p class="muted">If one of them loses their node, they will ask you for it; you approve by hand above.</p>`}
</section>`
}

export function recoveryView (view: RecoveryView): Html {
  return html`<h1>Recovery</h1>
${view.result !== undefined ? notice(view.result.ok ? 'ok' : 'error', view.result.text) : ''}
${requestsFragment(view.overview, view.csrfToken)}
${custodiansSection(view.overview, view.csrfToken)}
${appointSection(view.overview, view.csrfToken)}
${heldSection(view.overview)}`
}
