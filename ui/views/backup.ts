// Backups (spec/backup.md): on friends and on the owner's IMAP account, their state and
// progress, the last complete backup, the last audit of the friends, and, first, what would be
// lost if this disk died now. The live part polls itself while a run or an audit is under way.
import { html, type Html } from '../html.ts'
import type { BackupOverview, BackupRun, BackupTargetState, FriendsBackupState } from '../node-api.ts'
import { csrfField, formatBytes, formatDate, notice, progressBar } from './layout.ts'

function plural (n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`
}

export function describeAtRisk (atRisk: BackupOverview['atRisk']): string {
  if (atRisk === undefined) return 'Unlock the vault to see.'
  if (atRisk.since === undefined) {
    if (atRisk.total === 0) return 'Nothing: there is no mail yet.'
    return `No backup has completed since the node started: all ${plural(atRisk.total, 'message')} would be lost.`
  }
  if (atRisk.messages === 0) return `Nothing would be lost: every message is in the last backup (started ${formatDate(atRisk.since)}).`
  return `${plural(atRisk.messages, 'message')} would be lost: ${atRisk.messages === 1 ? 'it' : 'they'} arrived after the last backup started (${formatDate(atRisk.since)}).`
}

function describeRun (run: BackupRun): string {
  return `${formatDate(run.finishedAt)}: ${plural(run.messages ?? 0, 'message')} backed up; ${plural(run.uploaded ?? 0, 'new message')} uploaded (${formatBytes(run.uploadedBytes ?? 0)}).`
}

function targetFacts (state: BackupTargetState, label: string): Html {
  const failed = state.last !== undefined && !state.last.ok ? state.last : undefined
  return html`<dt>State</dt><dd data-testid="${label}-state">${state.running ? 'Backing up now' : 'Idle'}</dd>
<dt>Last complete backup</dt><dd data-testid="${label}-last">${state.lastSuccess !== undefined ? describeRun(state.lastSuccess) : 'None since the node started.'}</dd>
${failed !== undefined ? html`<dt>Last attempt</dt><dd class="state-failed" data-testid="${label}-failed">Failed ${formatDate(failed.finishedAt)}: ${failed.error ?? 'for an unknown reason'}${failed.retryAt !== undefined ? `. Next try, by itself: ${formatDate(failed.retryAt)}.` : ''}</dd>` : ''}`
}

function friendsSection (f: FriendsBackupState): Html {
  const a = f.lastAudit
  return html`<section aria-labelledby="friends-backup-heading">
<h2 id="friends-backup-heading">On your friends</h2>
${f.friends < f.needed ? notice('warning', `A backup on friends needs ${f.needed} friends who offer storage; you have ${f.friends}. Invite more on the Friends page.`) : ''}
${f.running && f.progress !== undefined ? progressBar('Backing up to your friends', f.progress.done, f.progress.total) : ''}
<dl class="facts">
${targetFacts(f, 'friends')}
<dt>Friends</dt><dd>${plural(f.friends, 'friend')} ${f.friends === 1 ? 'offers' : 'offer'} storage; a backup needs ${f.needed}.</dd>
<dt>Last audit</dt><dd data-testid="last-audit">${f.auditing
  ? 'Auditing now…'
  : a === undefined
  ? 'None since the node started.'
  : `${formatDate(a.at)}: ${a.passed} of ${plural(a.checked, 'shard')} checked were intact, ${a.failed} failed, ${a.replaced} replaced${a.unreachable.length > 0 ? `; ${plural(a.unreachable.length, 'friend')} did not answer` : ''}.`}</dd>
${f.lastRepair !== undefined ? html`<dt>Last repair</dt><dd>${formatDate(f.lastRepair.at)}: ${plural(f.lastRepair.replaced, 'shard')} placed again${f.lastRepair.unplaced > 0 ? html`, <span class="state-failed">${f.lastRepair.unplaced} could not be placed</span>` : ''}.</dd>` : ''}
${f.auditError !== undefined ? html`<dt>Audit problem</dt><dd class="state-failed">${f.auditError}</dd>` : ''}
</dl>
</section>`
}

function imapSection (state: BackupTargetState): Html {
  return html`<section aria-labelledby="imap-backup-heading">
<h2 id="imap-backup-heading">On your IMAP account</h2>
<p class="muted">${state.description}</p>
${state.running && state.progress !== undefined ? progressBar('Backing up to IMAP', state.progress.done, state.progress.total) : ''}
<dl class="facts">
${targetFacts(state, 'imap')}
</dl>
</section>`
}

/** The part that updates itself: it polls every 2 seconds while a backup or an audit runs. */
export function backupFragment (o: BackupOverview, csrfToken: string, flash?: string): Html {
  const busy = o.friends?.running === true || o.friends?.auditing === true || o.imap?.running === true
  const running = o.friends?.running === true || o.imap?.running === true
  return html`<div id="backup-live"${busy ? html` hx-get="/live/backup" hx-trigger="every 2s" hx-swap="outerHTML"` : ''}>
${notice('ok', flash)}
<section aria-labelledby="at-risk-heading">
<h2 id="at-risk-heading">If this disk died now</h2>
<p data-testid="at-risk" class="${o.atRisk !== undefined && o.atRisk.messages > 0 ? 'state-delayed' : ''}">${describeAtRisk(o.atRisk)}</p>
</section>
${o.friends !== undefined ? friendsSection(o.friends) : html`<p>Friends are turned off in config.yaml, so there is no backup on friends.</p>`}
${o.imap !== undefined ? imapSection(o.imap) : html`<p class="muted">No IMAP backup is configured (backup.imap in config.yaml).</p>`}
${o.friends !== undefined || o.imap !== undefined
  ? html`<div class="actions">
<form method="post" action="/backup/run" hx-post="/backup/run" hx-target="#backup-live" hx-swap="outerHTML">${csrfField(csrfToken)}<button type="submit" id="backup-now"${running ? ' disabled' : ''}>Back up now</button></form>
${o.friends !== undefined ? html`<form method="post" action="/backup/audit" hx-post="/backup/audit" hx-target="#backup-live" hx-swap="outerHTML">${csrfField(csrfToken)}<button type="submit" id="audit-now"${o.friends.auditing ? ' disabled' : ''}>Audit friends now</button></form>` : ''}
</div>`
  : ''}
</div>`
}

export function backupView (o: BackupOverview, csrfToken: string, flash?: string): Html {
  return html`<h1>Backups</h1>
${backupFragment(o, csrfToken, flash)}`
}
