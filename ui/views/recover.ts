// The recovery page of a new machine (spec/recovery.md part 2, "Recovery"): the form that
// starts a recovery, then each custodian with the code to read to them and what they decided,
// the restore's progress, and the outcome in words.
import { html, type Html } from '../html.ts'
import type { CustodianProgress, RecoverProgress } from '../recover-api.ts'
import { csrfField, formatDate, notice, progressBar } from './layout.ts'

export interface RecoverFormValues { owner?: string, custodians: string[], from: 'friends' | 'imap' }

const PHASE_WORDS: Record<CustodianProgress['phase'], string> = {
  asking: 'being asked',
  waiting: 'waiting for their approval',
  unreachable: 'not reachable yet; asking again',
  approved: 'approved',
  refused: 'refused',
  rejected: 'approved, but its share does not fit and was left out'
}

function recoverForm (values: RecoverFormValues, csrfToken: string, base: string): Html {
  return html`<form method="post" action="${base}start" class="recover-form">
${csrfField(csrfToken)}
<p><label for="owner">Your old onion address</label><br>
<input id="owner" name="owner" required size="70" autocomplete="off" spellcheck="false" value="${values.owner ?? ''}"></p>
<p><label for="custodians">Your custodians' onion addresses, one per line</label><br>
<textarea id="custodians" name="custodians" required rows="4" cols="70" spellcheck="false">${values.custodians.join('\n')}</textarea></p>
<fieldset><legend>Bring your mail back from</legend>
<label><input type="radio" name="from" value="friends"${values.from === 'friends' ? html` checked` : ''}> your friends' nodes</label>
<label><input type="radio" name="from" value="imap"${values.from === 'imap' ? html` checked` : ''}> your IMAP account</label>
</fieldset>
<p><label for="passphrase">New passphrase</label><br>
<input id="passphrase" name="passphrase" type="password" required minlength="8" autocomplete="new-password"></p>
<p><label for="passphrase2">The new passphrase again</label><br>
<input id="passphrase2" name="passphrase2" type="password" required minlength="8" autocomplete="new-password"></p>
<div class="actions"><button type="submit">Ask my custodians</button></div>
</form>`
}

function custodianRows (p: RecoverProgress): Html {
  return html`<table><caption class="muted">Custodians</caption>
<thead><tr><th scope="col">Custodian</th><th scope="col">Code to read them</th><th scope="col">State</th></tr></thead>
<tbody>${p.custodians.map(c => html`<tr data-onion="${c.onion}" data-phase="${c.phase}"><td><code>${c.onion.slice(0, 16)}…</code></td>
<td>${c.code !== undefined ? html`<span class="release-code" data-testid="code">${c.code}</span>` : '—'}</td>
<td><span class="${c.phase === 'approved' ? 'state-delivered' : c.phase === 'refused' || c.phase === 'rejected' ? 'state-failed' : ''}">${PHASE_WORDS[c.phase]}</span>${c.detail !== undefined ? html` <span class="muted">(${c.detail})</span>` : ''}</td></tr>`)}</tbody>
</table>`
}

/** Tor's state while the form is filled in; it polls itself (not the form) until tor is ready or failed. */
export function torStatus (p: RecoverProgress, base: string): Html {
  if (p.tor.error !== undefined) return html`<div id="tor-status">${notice('error', `Tor could not start: ${p.tor.error}`)}</div>`
  if (!p.tor.ready) return html`<div id="tor-status" hx-get="${base}live/tor" hx-trigger="every 2s" hx-swap="outerHTML"><p role="status" class="muted">Connecting to Tor…</p></div>`
  return html`<div id="tor-status"><p role="status" class="muted">Tor is ready.</p></div>`
}

/** The whole changing part of the page; it polls itself while the recovery runs. */
export function recoverSection (p: RecoverProgress, values: RecoverFormValues, csrfToken: string, base: string): Html {
  const running = p.phase === 'asking' || p.phase === 'restoring'
  const approved = p.custodians.filter(c => c.phase === 'approved').length
  return html`<section id="recover" aria-live="polite"${running ? html` hx-get="${base}live/progress" hx-trigger="every 2s" hx-swap="outerHTML"` : ''}>
${p.phase === 'form' || p.phase === 'failed' ? torStatus(p, base) : ''}
${p.phase === 'form' || p.phase === 'failed'
  ? html`${p.phase === 'failed' ? html`<div data-testid="recover-failed">${notice('error', p.error)}</div><h2>Try again</h2>` : ''}
<p>Your node comes back into <code>${p.dataDir}</code>. You need your old onion address and the onion addresses of the friends who hold your recovery shares: both are on your recovery sheet, and your friends can read them from their own smtorp.</p>
${recoverForm(values, csrfToken, base)}`
  : ''}
${p.phase === 'asking' || p.phase === 'restoring' || p.phase === 'done'
  ? html`<h2>Your custodians</h2>
<p>Call each custodian and read them the code next to their name. They approve on the Recovery page of their own smtorp, and only if they see the same code there.</p>
${custodianRows(p)}
<p role="status" data-testid="approvals">${approved} approved${p.threshold !== undefined ? `; ${p.threshold} are needed` : '; each share says how many are needed'}.${p.phase === 'asking' && p.deadline !== undefined ? ` Waiting until ${formatDate(p.deadline)}.` : ''}</p>`
  : ''}
${p.restore !== undefined && p.phase !== 'failed'
  ? html`<h2>Your mail</h2><p>The key is rebuilt. Restoring from ${p.restore.from}.</p>${progressBar('Messages restored', p.restore.done, p.restore.total)}`
  : ''}
${p.phase === 'done' && p.result !== undefined
  ? html`<div data-testid="recover-done">${notice('ok', `Your node is back: ${p.result.onion}.onion. ${p.result.restored} of ${p.result.messages} messages restored${p.result.damaged > 0 ? `; ${p.result.damaged} could not be, see the terminal` : ''}, from the backup made ${formatDate(Date.parse(p.result.backupMadeAt))}: mail that arrived after it is not in it. The new passphrase is set; your recovery code is unchanged.`)}</div>
<p>Start your node with <code>smtorp start --data ${p.dataDir}</code>, then unlock it with the new passphrase.</p>
<form method="post" action="${base}finish">${csrfField(csrfToken)}<button type="submit">Close the recovery</button></form>`
  : ''}
</section>`
}

export function recoverPage (p: RecoverProgress, values: RecoverFormValues, csrfToken: string, base: string, problem?: string): Html {
  return html`<h1>Recover your node</h1>
${notice('error', problem)}
${recoverSection(p, values, csrfToken, base)}`
}

export function finishedPage (): Html {
  return html`<h1>Recovery closed</h1><p role="status">The recovery has ended. You can close this tab.</p>`
}
