import { html, type Html } from '../html.ts'
import { FOLDER_NAMES, type FolderName, type FolderSummary, type Mailbox, type MessagePage, type MessageSummary, type ReadableMessage } from '../node-api.ts'
import { csrfField, formatBytes, formatDate, notice } from './layout.ts'
import { listBadges, messageSecurity } from './security.ts'

/** Where a message may be moved by hand: not into Outbox (only sending puts mail there) nor Drafts (a received message is not the owner's draft). */
export const MOVE_TARGETS: readonly FolderName[] = FOLDER_NAMES.filter(f => f !== 'Outbox' && f !== 'Drafts')

export function folderList (folders: FolderSummary[], current?: FolderName): Html {
  return html`<nav class="folders" aria-label="Folders"><ul>
${folders.map(f => html`<li><a href="/mail/${f.name}"${f.name === current ? html` aria-current="page"` : ''}>${f.name}</a>${f.unread > 0 ? html` <span class="count">${f.unread}<span class="visually-hidden"> unread</span></span>` : ''}</li>`)}
</ul></nav>`
}

export function searchForm (query: string, csrfToken: string): Html {
  return html`<form method="post" action="/search" role="search" class="actions">
${csrfField(csrfToken)}
<label for="q">Search mail</label>
<input type="search" id="q" name="q" value="${query}" placeholder="words, from:, to:, subject:">
<button type="submit">Search</button>
</form>`
}

function senderOrRecipients (m: MessageSummary): string {
  return m.folder === 'Sent' || m.folder === 'Outbox' || m.folder === 'Drafts' ? `To: ${m.to.join(', ')}` : m.from
}

/** The list rows and the "older" control: the fragment htmx swaps when paging. */
export function messageRows (page: MessagePage, more: Html): Html {
  if (page.messages.length === 0) return html`<p id="message-list">No messages.</p>`
  return html`<div id="message-list"><table>
<caption class="muted">Newest first</caption>
<thead><tr><th scope="col">From / To</th><th scope="col">Subject</th><th scope="col">Date</th><th scope="col">Size</th></tr></thead>
<tbody>
${page.messages.map(m => html`<tr class="${m.seen ? 'read' : 'unread'}">
<td><bdi>${senderOrRecipients(m)}</bdi></td>
<td><a href="${m.folder === 'Drafts' ? `/compose?draft=${m.id}` : `/message/${m.id}`}"><bdi>${m.subject === '' ? '(no subject)' : m.subject}</bdi></a>${m.flagged ? html` <span class="badge">flagged</span>` : ''}${!m.seen ? html` <span class="badge">unread</span>` : ''}${(m.threadSize ?? 1) > 1 ? html` <span class="badge">${m.threadSize} in thread</span>` : ''}${listBadges(m.security)}</td>
<td>${formatDate(m.date)}</td>
<td>${formatBytes(m.size)}</td>
</tr>`)}
</tbody></table>
${page.nextBefore !== undefined ? more : ''}
</div>`
}

/** The link to the next (older) page of a folder; htmx swaps the list in place. */
export function olderLink (folder: FolderName, page: MessagePage): Html {
  const href = `/mail/${folder}?before=${page.nextBefore ?? ''}`
  return html`<p><a href="${href}" hx-get="${href}" hx-target="#message-list" hx-swap="outerHTML">Older messages</a></p>`
}

/** The button for more search results (POST: the words stay out of URLs). */
export function moreResults (query: string, page: MessagePage, csrfToken: string): Html {
  return html`<form method="post" action="/search" hx-post="/search" hx-target="#message-list" hx-swap="outerHTML">${csrfField(csrfToken)}<input type="hidden" name="q" value="${query}"><input type="hidden" name="before" value="${page.nextBefore ?? ''}"><button type="submit">More results</button></form>`
}

export function mailboxView (view: { folders: FolderSummary[], folder: FolderName, page: MessagePage, csrfToken: string, notice?: string }): Html {
  const more = olderLink(view.folder, view.page)
  return html`<div class="mail">
${folderList(view.folders, view.folder)}
<section aria-labelledby="folder-heading">
<h1 id="folder-heading">${view.folder}</h1>
${notice('ok', view.notice)}
${searchForm('', view.csrfToken)}
${view.folder === 'Trash' && view.page.messages.length > 0
  ? html`<form method="post" action="/trash/empty" class="actions">${csrfField(view.csrfToken)}<label><input type="checkbox" name="confirm" value="1" required> Delete every message in Trash for good</label><button type="submit">Empty Trash</button></form>`
  : ''}
${messageRows(view.page, more)}
</section>
</div>`
}

export function searchView (view: { folders: FolderSummary[], query: string, page: MessagePage, csrfToken: string }): Html {
  const more = moreResults(view.query, view.page, view.csrfToken)
  return html`<div class="mail">
${folderList(view.folders)}
<section aria-labelledby="search-heading">
<h1 id="search-heading">Search</h1>
${searchForm(view.query, view.csrfToken)}
${messageRows(view.page, more)}
</section>
</div>`
}

function mailboxes (list: Mailbox[]): string {
  return list.map(m => m.name !== '' && m.name !== m.address ? `${m.name} <${m.address}>` : m.address).join(', ')
}

export function messageView (view: { message: ReadableMessage, thread: MessageSummary[], folders: FolderSummary[], csrfToken: string, notice?: string }): Html {
  const m = view.message
  const s = m.summary
  const base = `/message/${s.id}`
  const action = (path: string, label: string, fields: Html = html``): Html =>
    html`<form method="post" action="${base}/${path}" class="inline">${csrfField(view.csrfToken)}${fields}<button type="submit">${label}</button></form>`
  return html`<div class="mail">
${folderList(view.folders, s.folder)}
<article aria-labelledby="subject">
<h1 id="subject"><bdi>${s.subject === '' ? '(no subject)' : s.subject}</bdi></h1>
${notice('ok', view.notice)}
${messageSecurity(m.security, m.from.length === 1 ? m.from[0]!.address : undefined)}
${m.problems.length > 0 ? html`<div class="notice warning" role="alert"><p>This message could not be read completely:</p><ul>${m.problems.map(p => html`<li>${p}</li>`)}</ul></div>` : ''}
<dl class="facts">
<dt>From</dt><dd><bdi>${mailboxes(m.from) || s.from}</bdi></dd>
<dt>To</dt><dd>${mailboxes(m.to)}</dd>
${m.cc.length > 0 ? html`<dt>Cc</dt><dd>${mailboxes(m.cc)}</dd>` : ''}
${m.replyTo.length > 0 ? html`<dt>Reply to</dt><dd>${mailboxes(m.replyTo)}</dd>` : ''}
<dt>Date</dt><dd>${formatDate(s.date)}</dd>
<dt>Folder</dt><dd>${s.folder}</dd>
</dl>
<div class="actions" aria-label="Message actions" role="group">
<a href="/compose?reply=${s.id}&amp;mode=reply">Reply</a>
<a href="/compose?reply=${s.id}&amp;mode=replyAll">Reply all</a>
<a href="/compose?reply=${s.id}&amp;mode=forward">Forward</a>
${action('seen', s.seen ? 'Mark unread' : 'Mark read', html`<input type="hidden" name="seen" value="${s.seen ? '0' : '1'}">`)}
${action('flag', s.flagged ? 'Unflag' : 'Flag', html`<input type="hidden" name="flagged" value="${s.flagged ? '0' : '1'}">`)}
${s.folder === 'Outbox'
  ? html`<span class="muted">Being sent: follow it, retry or cancel it in the <a href="/outbox">Outbox</a>.</span>`
  : html`${s.folder === 'Trash' ? action('delete', 'Delete for good', html`<label><input type="checkbox" name="confirm" value="1" required> Yes, for good</label> `) : action('trash', 'Move to Trash')}
<form method="post" action="${base}/move" class="inline">${csrfField(view.csrfToken)}
<label for="move-to">Move to</label>
<select id="move-to" name="folder">${MOVE_TARGETS.filter(f => f !== s.folder).map(f => html`<option value="${f}">${f}</option>`)}</select>
<button type="submit">Move</button></form>`}
</div>
${m.fromHtml ? html`<p class="muted">This message was written in HTML. It is shown as plain text: nothing in it is loaded from the network and nothing in it runs.</p>` : ''}
<pre class="body" aria-label="Message text">${m.text}</pre>
${m.attachments.length > 0
  ? html`<h2>Attachments</h2><ul>${m.attachments.map(a => html`<li><a href="${base}/attachment/${a.index}" download>${a.filename}</a> <span class="muted">${a.contentType}, ${formatBytes(a.size)}</span>${a.risk !== undefined ? html` <strong class="risk">Warning: ${a.risk}</strong>` : ''}</li>`)}</ul>`
  : ''}
${view.thread.length > 1
  ? html`<h2>Thread</h2><ol>${view.thread.map(t => html`<li>${t.id === s.id ? html`<strong>${t.subject || '(no subject)'}</strong> (this message)` : html`<a href="/message/${t.id}">${t.subject || '(no subject)'}</a>`} <span class="muted">${t.from}, ${formatDate(t.date)}</span></li>`)}</ol>`
  : ''}
</article>
</div>`
}
