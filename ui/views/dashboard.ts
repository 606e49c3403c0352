import QRCode from 'qrcode'
import { html, trusted, type Html } from '../html.ts'
import type { Health } from '../node-api.ts'
import { csrfField, formatBytes, formatDate, notice, progressBar } from './layout.ts'

/** The QR code of the address, as SVG made by the qrcode package (no script, no style). */
export async function addressQr (address: string): Promise<Html> {
  const svg = await QRCode.toString(address, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 })
  return trusted(svg.replace('<svg ', '<svg role="img" aria-label="QR code of your mail address" '))
}

/**
 * The part that updates itself (polled every 2 seconds). Its controls have ids: htmx gives
 * focus back after a swap only to an element with the id the focused one had.
 */
export function healthFragment (h: Health, csrfToken: string): Html {
  const q = h.queue
  const s = h.storage
  return html`<div id="health" hx-get="/live/dashboard" hx-trigger="every 2s" hx-swap="outerHTML">
${h.warnings.map(w => notice('warning', w))}
<h2>Tor</h2>
<dl class="facts">
<dt>State</dt><dd data-testid="tor-state">${h.tor.ready ? 'Connected to the Tor network' : `Connecting: ${h.tor.summary}`}</dd>
<dt>Bootstrap</dt><dd>${progressBar('Tor bootstrap', h.tor.bootstrapPercent, 100)}</dd>
<dt>Mail endpoint</dt><dd data-testid="smtp-published">${h.smtpPublished ? 'Published: peers can deliver to you over Tor' : 'Not published yet: peers cannot reach you until it is'}</dd>
</dl>
<h2>Outgoing mail</h2>
<p>${q.queued + q.delivering + q.delayed + q.failed === 0
  ? 'Nothing waiting.'
  : html`${q.queued} queued, ${q.delivering} being delivered, <span class="${q.delayed > 0 ? 'state-delayed' : ''}">${q.delayed} delayed</span>, <span class="${q.failed > 0 ? 'state-failed' : ''}">${q.failed} failed</span>. <a href="/outbox">See the outbox</a>`}</p>
<h2>Storage</h2>
<dl class="facts">
<dt>Vault</dt><dd>${s.vault === 'unlocked' ? 'Unlocked' : 'Locked'}</dd>
<dt>Last check</dt><dd>${s.lastScrub === undefined
  ? 'Not checked since the node started.'
  : html`${formatDate(s.lastScrub.finishedAt)}: ${s.lastScrub.objects} objects checked, ${s.lastScrub.repairedShards} shards repaired, <span class="${s.lastScrub.lost > 0 ? 'state-failed' : ''}">${s.lastScrub.lost} lost</span>.`}</dd>
${s.damagedRecords > 0 ? html`<dt>Damaged</dt><dd class="state-failed">${s.damagedRecords} message records could not be read.</dd>` : ''}
<dt>Mail stored</dt><dd>${formatBytes(s.shardBytes)} in shards; ${formatBytes(h.disk.dataBytes)} in the data directory${h.disk.freeBytes !== undefined ? html`, ${formatBytes(h.disk.freeBytes)} free on the disk` : ''}</dd>
</dl>
${s.scrub !== undefined ? progressBar('Checking and repairing storage', s.scrub.done, s.scrub.total) : ''}
${s.indexing !== undefined ? progressBar('Indexing mail for search', s.indexing.done, s.indexing.total) : ''}
${s.scrub === undefined
  ? html`<form method="post" action="/scrub" class="actions">${csrfField(csrfToken)}<button type="submit" id="scrub-now">Check and repair storage now</button></form>`
  : ''}
</div>`
}

export async function dashboardView (h: Health, csrfToken: string, flash?: string): Promise<Html> {
  return html`<h1>Your node</h1>
${notice('ok', flash)}
<section aria-labelledby="address-heading">
<h2 id="address-heading">Your address</h2>
<p><span id="own-address" class="onion">${h.address}</span> <button type="button" data-copy="own-address">Copy address</button></p>
<div class="qr">${await addressQr(h.address)}</div>
<p class="muted">Give this address to the people who write to you. Mail between smtorp nodes goes over Tor, end to end.</p>
</section>
${healthFragment(h, csrfToken)}`
}
