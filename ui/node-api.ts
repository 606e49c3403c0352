// What the web UI needs from the node, declared here and implemented by the node
// (node/ui-backend/). The UI never reaches into node internals: it is handed a UiNode.
//
// Errors: a call that fails for a reason the owner should read throws an Error whose message
// is a sentence meant for them (it is shown as is). `name` tells the kind:
//   'VaultLockedError'      the vault is locked (the UI sends the owner to the unlock page)
//   'WrongSecretError'      a passphrase or recovery code did not open the vault
//   'UnlockThrottledError'  too many wrong attempts; `retryAfterSeconds` says how long to wait
// Anything else is shown as "something went wrong" with its message.

export type FolderName = 'Inbox' | 'Drafts' | 'Sent' | 'Outbox' | 'Trash'
export const FOLDER_NAMES: readonly FolderName[] = ['Inbox', 'Drafts', 'Sent', 'Outbox', 'Trash']

export type UnlockSecret = { passphrase: string } | { recoveryCode: string }

export interface FolderSummary {
  name: FolderName
  total: number
  unread: number
}

/** One line of a message list. Addresses are as written in the header (display name kept). */
export interface MessageSummary {
  id: string
  folder: FolderName
  /** The From header, decoded; the envelope sender when the header is missing. */
  from: string
  to: string[]
  subject: string
  /** Milliseconds since the epoch: the Date header if sane, else when the node received it. */
  date: number
  size: number
  seen: boolean
  flagged: boolean
  /** Messages in the same thread (References / In-Reply-To) that this node holds, this one included. */
  threadSize?: number
}

export interface MessagePage {
  messages: MessageSummary[]
  /** Pass as `before` to get the next (older) page; absent on the last page. */
  nextBefore?: string
}

export interface Mailbox {
  name: string
  address: string
}

export interface Attachment {
  /** Position among the message's attachments, for download. */
  index: number
  filename: string
  contentType: string
  size: number
  /** Why opening it could harm the computer (an executable, a script, a macro document), if it could. */
  risk?: string
}

/** A message made safe to show: everything is text, nothing is fetched or run. */
export interface ReadableMessage {
  summary: MessageSummary
  from: Mailbox[]
  to: Mailbox[]
  cc: Mailbox[]
  replyTo: Mailbox[]
  /** Message-ID, without angle brackets. */
  messageId?: string
  /** The text to show: the text/plain part, or the HTML part turned into plain text. */
  text: string
  /** The text came from HTML (remote content, scripts and styles were dropped). */
  fromHtml: boolean
  attachments: Attachment[]
  /** Problems met while reading (broken MIME, a damaged part), in words. */
  problems: string[]
}

export interface AttachmentContent {
  filename: string
  contentType: string
  content: Buffer
}

export interface DraftAttachment {
  filename: string
  contentType: string
  content: Buffer
}

export interface Draft {
  to: string
  cc: string
  bcc: string
  subject: string
  body: string
  /** The message this one answers (In-Reply-To and References are taken from it). */
  inReplyToId?: string
  /** The message this one forwards: the attachments shown come from it, until saved as a draft. */
  forwardOfId?: string
  attachments: DraftAttachment[]
}

export type RouteKind = 'onion' | 'relay' | 'none' | 'invalid'

export interface Route {
  address: string
  kind: RouteKind
  /** In words: "directly over Tor to …", "through the relay smtp.example.org", why there is none. */
  description: string
}

export type DeliveryState = 'queued' | 'delivering' | 'delayed' | 'delivered' | 'failed'

export interface OutboxRecipient {
  address: string
  state: DeliveryState
  attempts: number
  /** The last answer or error, in words. */
  lastResult?: string
  nextAttemptAt?: number
}

export interface OutboxEntry {
  /** The queue entry id (for retry and cancel). */
  id: string
  /** The message in the mailbox (Outbox folder), if it can be shown. */
  messageId?: string
  storeId: string
  subject?: string
  createdAt: number
  recipients: OutboxRecipient[]
}

export interface Progress {
  done: number
  total: number
}

export interface Health {
  address: string
  onion: string
  tor: {
    /** 0–100, from tor's bootstrap status. */
    bootstrapPercent: number
    /** tor's own words for where it is ("Done", "Connecting to a relay", …). */
    summary: string
    ready: boolean
  }
  /** The onion service (SMTP endpoint on port 25) is published. */
  smtpPublished: boolean
  /** Where mail clients submit mail (RFC 6409), with a credential from the settings. */
  submission: { host: string, port: number }
  queue: { queued: number, delivering: number, delayed: number, failed: number }
  storage: {
    vault: 'locked' | 'unlocked' | 'uninitialized'
    lastScrub?: { finishedAt: number, objects: number, repairedShards: number, lost: number }
    scrub?: Progress
    /** Messages not yet in the search index. */
    indexing?: Progress
    damagedRecords: number
    shardBytes: number
  }
  disk: { dataBytes: number, freeBytes?: number }
  /** Things the owner must know (arrival key restored, …), in words. */
  warnings: string[]
}

export interface RelaySettings {
  host: string
  port: number
  requireTls: boolean
  verifyCertificate: boolean
  username?: string
  /** Write-only: never returned by `relaySettings()`; undefined on save keeps the old one. */
  password?: string
  viaTor: boolean
}

export interface Credential {
  id: string
  /** The device it is for, as the owner named it. */
  name: string
  /** The user name the mail client logs in with. */
  username: string
  createdAt: number
  lastUsedAt?: number
  /** Failed logins in a row with this user name. */
  failures: number
  /** Disabled after too many failed logins; revoked ones are deleted. */
  disabled: boolean
}

export interface UiSettings {
  /** Lock the vault after this many minutes without use of the UI (0: never). */
  autoLockMinutes: number
}

export interface UiNode {
  health (): Promise<Health>

  // The vault
  vaultState (): 'locked' | 'unlocked' | 'uninitialized'
  unlock (secret: UnlockSecret): Promise<void>
  /** Check a secret without changing state (signing in while the vault is already unlocked). */
  checkSecret (secret: UnlockSecret): Promise<void>
  lock (): Promise<void>
  changePassphrase (current: string, next: string): Promise<void>
  startScrub (): void

  // Reading
  folders (): Promise<FolderSummary[]>
  listMessages (folder: FolderName, options: { before?: string, limit: number }): Promise<MessagePage>
  search (query: string, options: { before?: string, limit: number }): Promise<MessagePage>
  readMessage (id: string): Promise<ReadableMessage | undefined>
  /** The list line of one message, without reading the message. */
  summary (id: string): Promise<MessageSummary | undefined>
  /** Every message of the thread `id` belongs to, oldest first. */
  thread (id: string): Promise<MessageSummary[]>
  attachment (id: string, index: number): Promise<AttachmentContent | undefined>
  setSeen (id: string, seen: boolean): Promise<void>
  setFlagged (id: string, flagged: boolean): Promise<void>
  move (id: string, folder: FolderName): Promise<void>
  /** Delete for good (only from Trash). */
  remove (id: string): Promise<void>
  emptyTrash (): Promise<number>

  // Writing
  /** The route of every recipient in these address fields (To, Cc, Bcc), split as sending will split them. */
  routesFor (fields: string[]): Route[]
  /** A draft that replies to, replies to all of, or forwards message `id`. */
  draftFrom (id: string, mode: 'reply' | 'replyAll' | 'forward'): Promise<Draft>
  /** Save a draft (replacing `replaces`, a draft id); returns the new draft's id. */
  saveDraft (draft: Draft, replaces?: string): Promise<string>
  loadDraft (id: string): Promise<Draft | undefined>
  /** Queue the message; a draft it came from (`fromDraft`) is removed. Returns the queue id. */
  send (draft: Draft, fromDraft?: string): Promise<string>

  // Delivery
  outbox (): Promise<OutboxEntry[]>
  /** False if there is no such message being sent. */
  retry (queueId: string): boolean
  /** Stop delivering: recipients not reached yet are marked failed "cancelled by you". False if there is no such message. */
  cancel (queueId: string): Promise<boolean>

  // Settings
  relaySettings (): Promise<RelaySettings | undefined>
  /** Save (undefined: remove). Without a password, the saved one is kept for the same user name. */
  saveRelaySettings (settings: RelaySettings | undefined): Promise<void>
  /**
   * Connect, EHLO, STARTTLS and log in as `settings` say, then quit; `message` says what
   * happened. Without a password, the saved one is used if the user name is the saved one.
   */
  testRelay (settings: RelaySettings): Promise<{ ok: boolean, message: string }>
  credentials (): Promise<Credential[]>
  /** A new credential; the password is returned once and never stored in the clear. */
  addCredential (name: string): Promise<{ credential: Credential, password: string }>
  /** False if there is no such credential. */
  revokeCredential (id: string): Promise<boolean>
  /** Enable a credential disabled after failed logins (its password is unchanged); false if there is none. */
  enableCredential (id: string): Promise<boolean>
  uiSettings (): Promise<UiSettings>
  saveUiSettings (settings: UiSettings): Promise<void>
}
