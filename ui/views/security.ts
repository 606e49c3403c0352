// How a message's OpenPGP is shown: small badges in message lists, and on the message page
// what was found (encrypted, signed by whom) with a clear warning for each thing that went
// wrong. Every mark has its words: an icon is decoration (aria-hidden), never the only sign.
import { html, type Html } from '../html.ts'
import type { MessageSecurity, RecipientKey } from '../node-api.ts'

/** Four-digit groups, as people compare fingerprints aloud (GnuPG shows them so). */
export function formatFingerprint (fingerprint: string): string {
  return fingerprint.replace(/\s+/g, '').toUpperCase().replace(/(.{4})/g, '$1 ').trim()
}

/** The last 16 digits (the key id), grouped: enough to tell keys apart at a glance. */
export function shortFingerprint (fingerprint: string): string {
  return formatFingerprint(fingerprint.replace(/\s+/g, '').slice(-16))
}

/** The id of a contact's entry on the contacts page (addresses go in fragments, never queries). */
export function contactAnchor (address: string): string {
  return 'contact-' + address.toLowerCase().replace(/[^a-z0-9.-]/g, c => `_${c.charCodeAt(0).toString(16)}`)
}

const KEY_STATE_WORDS: Record<NonNullable<MessageSecurity['keyState']>, string> = {
  verified: 'verified',
  pinned: 'pinned',
  'first-seen': 'first seen',
  changed: 'changed key',
  other: 'not the sender\'s key'
}

/** A padlock drawn inline (no emoji font is needed, and the CSP allows no other images but our own). */
const LOCK = html`<svg class="icon" viewBox="0 0 16 16" width="12" height="12" focusable="false"><path fill="currentColor" d="M4 7V5a4 4 0 0 1 8 0v2h1v8H3V7h1zm2 0h4V5a2 2 0 0 0-4 0v2z"/></svg>`

function badge (kind: string, icon: string | Html, text: string): Html {
  return html`<span class="badge sec-${kind}"><span aria-hidden="true">${icon}</span> ${text}</span>`
}

/** The badges of one line of a message list. */
export function listBadges (security: MessageSecurity | undefined): Html {
  if (security === undefined) return html``
  const out: Html[] = []
  if (security.encrypted) out.push(security.decrypted === true ? badge('encrypted', LOCK, 'encrypted') : badge('bad', '⚠', 'could not decrypt'))
  if (security.signature === 'good') {
    if (security.keyState === 'changed') out.push(badge('bad', '⚠', 'signer\'s key changed'))
    else if (security.keyState === 'other') out.push(badge('bad', '⚠', 'signed by another key'))
    else out.push(badge('signed', '✓', 'signed'))
  } else if (security.signature === 'bad') {
    out.push(badge('bad', '⚠', 'bad signature'))
  } else if (security.signature === 'unknown-key') {
    out.push(badge('unknown', '?', 'unknown signer'))
  }
  return html`${out.map(b => html` ${b}`)}`
}

/** What the message page says of a message's OpenPGP: badges, then a warning for each problem. */
export function messageSecurity (security: MessageSecurity | undefined, sender: string | undefined): Html {
  if (security === undefined) return html``
  const badges: Html[] = []
  const warnings: Html[] = []
  if (security.encrypted) {
    if (security.decrypted === true) badges.push(badge('encrypted', LOCK, 'Encrypted'))
    else warnings.push(html`<p class="notice error" role="alert">Could not decrypt: ${security.problem ?? 'none of your keys opens it.'}</p>`)
  }
  const signer = security.signer !== undefined ? shortFingerprint(security.signer) : 'an unknown key'
  const contact = sender !== undefined ? html` <a href="/contacts#${contactAnchor(sender)}">Check the sender's keys in Contacts.</a>` : html``
  if (security.signature === 'good') {
    if (security.keyState === 'changed') {
      badges.push(badge('bad', '⚠', `Signed by ${signer} (changed key)`))
      warnings.push(html`<p class="notice warning" role="alert">Signer's key changed — this is not the key you had for this sender. Someone may be pretending to be them, or they may have a new key: ask them, by another way than mail, before you trust it.${contact}</p>`)
    } else if (security.keyState === 'other') {
      badges.push(badge('bad', '⚠', `Signed by ${signer} (not the sender's key)`))
      warnings.push(html`<p class="notice warning" role="alert">The signature holds, but the key that made it is not the one you have for the sender.${contact}</p>`)
    } else {
      const state = security.keyState !== undefined ? ` (${KEY_STATE_WORDS[security.keyState]})` : ''
      badges.push(badge('signed', '✓', `Signed by ${signer}${state}`))
    }
  } else if (security.signature === 'bad') {
    badges.push(badge('bad', '⚠', 'Bad signature'))
    warnings.push(html`<p class="notice error" role="alert">Bad signature — the message was changed or forged. Do not trust what it says.${security.problem !== undefined ? html` <span class="muted">(${security.problem})</span>` : ''}</p>`)
  } else if (security.signature === 'unknown-key') {
    badges.push(badge('unknown', '?', 'Signed by an unknown key'))
    warnings.push(html`<p class="notice warning" role="status">Signed by an unknown key (${signer}): the signature cannot be checked, so who wrote it is not known.${contact}</p>`)
  } else if (security.problem !== undefined && !security.encrypted) {
    warnings.push(html`<p class="notice warning" role="status">${security.problem}</p>`)
  }
  return html`${badges.length > 0 ? html`<p class="security-badges" aria-label="Security">${badges.map(b => html`${b} `)}</p>` : ''}${warnings}`
}

/** The key part of a recipient's line while writing. */
export function recipientKey (key: RecipientKey | undefined, encrypt: boolean): Html {
  if (key === undefined) return html``
  if (key.changedKey !== undefined) return html`<span class="key key-changed"><span aria-hidden="true">⚠</span> key changed — check it in <a href="/contacts">Contacts</a></span>`
  const prefix = encrypt ? 'encrypted' : 'not encrypted'
  switch (key.state) {
    case 'verified': return html`<span class="key key-ok">${prefix}: key verified</span>`
    case 'pinned': return html`<span class="key key-ok">${prefix}: key pinned (not verified)</span>`
    case 'gossip': return html`<span class="key key-ok">${prefix}: key known from another correspondent's mail</span>`
    case 'none': return html`<span class="key key-none">no key — look it up</span>`
  }
}
