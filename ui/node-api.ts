// What the web UI needs from the node, declared here and implemented by the node
// (node/ui-backend/). The UI never reaches into node internals: it is handed a UiNode.
//
// Errors: a call that fails for a reason the owner should read throws an Error whose message
// is a sentence meant for them (it is shown as is). `name` tells the kind:
//   'VaultLockedError'      the vault is locked (the UI sends the owner to the unlock page)
//   'WrongSecretError'      a passphrase or recovery code did not open the vault
//   'UnlockThrottledError'  too many wrong attempts; `retryAfterSeconds` says how long to wait
//   'EncryptionRefusedError' a message to be encrypted has a recipient without a key (the
//                           message names them; the draft is kept)
//   'OpenPgpKeyError'       a key given or asked for cannot be used (the message says why)
// Anything else is shown as "something went wrong" with its message.

export type FolderName = 'Inbox' | 'Drafts' | 'Sent' | 'Outbox' | 'Trash'
export const FOLDER_NAMES: readonly FolderName[] = ['Inbox', 'Drafts', 'Sent', 'Outbox', 'Trash']

export type UnlockSecret = { passphrase: string } | { recoveryCode: string }

/**
 * What a message's OpenPGP said when the node read it (spec/openpgp.md 4): encrypted or not,
 * whose signature and whether it holds, and how the signer's key stands against what is known
 * of the sender (trust on first use).
 */
export interface MessageSecurity {
  encrypted: boolean
  /** It was encrypted and one of the owner's keys opened it. */
  decrypted?: boolean
  signature: 'none' | 'good' | 'bad' | 'unknown-key'
  /** Fingerprint of the key that signed (40 hex digits); the key id (16) for an unknown key. */
  signer?: string
  /**
   * 'verified': the owner compared fingerprints; 'pinned': the key first seen for the sender;
   * 'first-seen': pinned by this very message; 'changed': not the key the node had for the
   * sender; 'other': a good signature by a key that is not the sender's.
   */
  keyState?: 'verified' | 'pinned' | 'first-seen' | 'changed' | 'other'
  /** What went wrong, in one sentence. */
  problem?: string
}

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
  /** Absent for plain mail and for mail not read for OpenPGP yet. */
  security?: MessageSecurity
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
  /**
   * Its OpenPGP, when it was signed or encrypted. The text, the header fields and the
   * attachments shown are then those of the decrypted (or verified) content.
   */
  security?: MessageSecurity
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
  /**
   * The owner's choice: true encrypt (or refuse to send), false sign only, absent: decide by
   * the recipients' keys and preferences (Autocrypt's recommendation).
   */
  encrypt?: boolean
}

export type RouteKind = 'onion' | 'relay' | 'none' | 'invalid'

export interface Route {
  address: string
  kind: RouteKind
  /** In words: "directly over Tor to …", "through the relay smtp.example.org", why there is none. */
  description: string
  /** The onion mailbox this ordinary address said to use (in its signed mail): delivered there over Tor. */
  learnedRoute?: string
  /** What is known of the recipient's OpenPGP key (absent for an unusable address). */
  key?: RecipientKey
}

export interface RecipientKey {
  /** The key mail would be encrypted to: a verified or merely pinned one, one only gossiped by others, none. */
  state: 'verified' | 'pinned' | 'gossip' | 'none'
  fingerprint?: string
  /** Another key was seen for them and waits for the owner (Contacts). */
  changedKey?: string
  /** Autocrypt's recommendation (Level 1 2.4) for this recipient. */
  recommendation: 'disable' | 'discourage' | 'available' | 'encrypt'
}

/** The owner's own OpenPGP key. */
export interface OwnKey {
  fingerprint: string
  created: number
  addresses: string[]
  armoredPublicKey: string
}

/** A correspondent, and what is known of their key. */
export interface Contact {
  address: string
  /** When their last mail came (ms since the epoch). */
  lastSeen?: number
  /** Autocrypt prefer-encrypt: 'mutual' or 'nopreference'. */
  preferEncrypt?: string
  /** The key in use for them (trust on first use), and whether the owner compared fingerprints. */
  pinned?: { fingerprint: string, since: number, verified: boolean, source: string }
  /** A different key seen in their mail, waiting for the owner; `keptOldAt`: the owner chose to keep the old one. */
  changed?: { fingerprint: string, seenAt: number, keptOldAt?: number }
  /** Only someone else's mail gave a key for them (Autocrypt gossip). */
  gossipOnly: boolean
  /** The onion mailbox their signed mail said to use. */
  route?: string
}

/** A key found by a lookup (WKD or a keyserver, over Tor): offered, never trusted by being found. */
export interface FoundKey {
  source: string
  fingerprint: string
  userIds: string[]
  created: number
  armoredPublicKey: string
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

// ---- Friends, backups and recovery (spec/friends.md, spec/backup.md, spec/recovery.md) ----
// Times are milliseconds since the epoch. Nothing here ever carries a recovery share, a kit
// or a key: only names, counts and states.

/** A friend: whose node holds shards of our backup, and for whom we hold theirs. */
export interface FriendInfo {
  onion: string
  name: string
  addedAt: number
  lastSeen?: number
  /** Bytes this node offers to hold for them, and what they use of it. */
  quotaForThem: number
  weHoldOfTheirs: number
  /** Bytes they offered to hold for us, and what our backup uses of it (in how many shards). */
  quotaFromThem: number
  holdsOfOurs: number
  shardsOfOurs: number
  audits?: { passed: number, failed: number, lastAt?: number, lastResult?: string }
}

export interface FriendInvite {
  /** The text to give the friend (it holds a secret: shown once, never logged). */
  code: string
  expiresAt: number
  /** The code as a QR code: SVG made by the node's QR encoder, never from user input. */
  qrSvg: string
}

/** One backup run, counts only. */
export interface BackupRun {
  startedAt: number
  finishedAt: number
  ok: boolean
  messages?: number
  uploaded?: number
  uploadedBytes?: number
  /** Why it failed, in words. */
  error?: string
  /** When the node tries a failed backup again by itself (ms since the epoch). */
  retryAt?: number
}

export interface BackupTargetState {
  /** In words: "your friends", "imap me@example.org:993/Backup". */
  description: string
  running: boolean
  progress?: Progress
  /** The last run, good or bad. */
  last?: BackupRun
  /** The last run that completed: what the target holds now. */
  lastSuccess?: BackupRun
}

export interface FriendsBackupState extends BackupTargetState {
  /** Friends that offered storage, and how many a backup needs. */
  friends: number
  needed: number
  auditing: boolean
  lastAudit?: { at: number, checked: number, passed: number, failed: number, replaced: number, unreachable: string[] }
  lastRepair?: { at: number, replaced: number, unplaced: number }
  /** Why the last audit started here could not be done. */
  auditError?: string
}

export interface BackupOverview {
  /** Absent when friends are turned off. */
  friends?: FriendsBackupState
  /** Absent when no IMAP backup is configured. */
  imap?: BackupTargetState
  /**
   * What would be lost if this disk died now: messages stored after the start of the last
   * successful backup on any target (all of them when there was none). Undefined while locked.
   */
  atRisk?: { messages: number, total: number, since?: number }
}

export interface CustodianInfo {
  onion: string
  name: string
  index: number
  deliveredAt?: number
  check?: { at: number, ok: boolean, message: string }
}

export interface RecoveryRequestInfo {
  id: string
  owner: string
  ownerName?: string
  requester: string
  /** The verification code the new machine shows. */
  code: string
  createdAt: number
  state: 'pending' | 'approved' | 'refused'
  reason?: string
}

export interface RecoveryOverview {
  custodians?: { threshold: number, count: number, createdAt: number, custodians: CustodianInfo[] }
  /** A check of the custodians started here is under way. */
  checking: boolean
  /** Shares this node holds for friends: who and since when (never the share). */
  held: Array<{ owner: string, ownerName: string, receivedAt: number }>
  requests: RecoveryRequestInfo[]
  /** Friends that can be appointed. */
  friends: Array<{ onion: string, name: string }>
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
  /**
   * The route and key of every recipient in these address fields (To, Cc, Bcc), split as
   * sending will split them. `replyToEncrypted`: the message answers an encrypted one.
   */
  routesFor (fields: string[], options?: { replyToEncrypted?: boolean }): Route[]
  /** Whether a message to these recipients is encrypted when the owner does not choose (Autocrypt's recommendation). */
  wouldEncrypt (fields: string[], options?: { replyToEncrypted?: boolean }): boolean
  /** A draft that replies to, replies to all of, or forwards message `id`. */
  draftFrom (id: string, mode: 'reply' | 'replyAll' | 'forward'): Promise<Draft>
  /** Save a draft (replacing `replaces`, a draft id); returns the new draft's id. */
  saveDraft (draft: Draft, replaces?: string): Promise<string>
  loadDraft (id: string): Promise<Draft | undefined>
  /**
   * Sign (and encrypt, as `draft.encrypt` says) and queue the message; a draft it came from
   * (`fromDraft`) is removed. Returns the queue id. EncryptionRefusedError when it must be
   * encrypted and a recipient has no key.
   */
  send (draft: Draft, fromDraft?: string): Promise<string>

  // OpenPGP: the owner's key
  ownKey (): Promise<OwnKey>
  /** The secret key, armored, locked with `passphrase` (at least 8 characters): a backup for the owner. */
  exportSecretKey (passphrase: string): Promise<string>
  /** Replace the key with one the owner gives (a backup, a key from GnuPG); the old one is kept to read old mail. */
  importSecretKey (armored: string, passphrase: string | undefined): Promise<OwnKey>
  /** A new key; the old one is kept to read old mail. */
  regenerateKey (): Promise<OwnKey>
  /** Revoke the key (the revoked public key is returned, to publish) and make a new one. */
  revokeKey (): Promise<{ revokedPublicKey: string, newKey: OwnKey }>

  // OpenPGP: correspondents
  contacts (): Promise<Contact[]>
  /** The owner compared fingerprints: OpenPgpKeyError unless `fingerprint` is the pinned key's. */
  verifyContact (address: string, fingerprint: string): Promise<void>
  /** The changed key becomes the one in use. */
  acceptChangedKey (address: string, fingerprint: string): Promise<void>
  /** The owner keeps the old key: noted, nothing else changes (the new key stays listed). */
  keepOldKey (address: string, fingerprint: string): Promise<void>
  /** Pin a key the owner pasted or accepted from a lookup, for `address` or every address it names. */
  importContactKey (armored: string, address?: string): Promise<Contact[]>
  /** Ask the Web Key Directory and the configured keyservers, over Tor. */
  lookupKey (address: string): Promise<{ found: FoundKey[], problems: string[] }>

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

  // Friends (absent or false: friends.enabled is false in config.yaml; the pages say so)
  friendsEnabled (): boolean
  friends (): Promise<FriendInfo[]>
  /** A new invite offering `quotaMiB` of storage to whoever accepts it. */
  inviteFriend (quotaMiB: number): Promise<FriendInvite>
  /** Accept a friend's invite, offering them `quotaMiB`; returns the new friend. */
  acceptInvite (code: string, quotaMiB: number): Promise<{ onion: string, name: string }>
  /** False if there is no such friend. */
  setFriendQuota (onion: string, quotaMiB: number): Promise<boolean>
  /** Remove a friend: our shards on them are placed elsewhere, theirs here deleted. */
  removeFriend (onion: string): Promise<{ told: boolean }>

  // Backups
  backupOverview (): Promise<BackupOverview>
  /** Start a backup on every target (friends, IMAP) that is not running; progress shows in the overview. */
  startBackup (): void
  /** Start an audit and repair of the friends' shards. */
  startAudit (): void

  // Recovery
  recoveryOverview (): Promise<RecoveryOverview>
  /** Start asking every custodian to prove it holds its share. */
  startCustodianCheck (): void
  /** Split the master key t-of-n among these friends; the passphrase is asked again (WrongSecretError). */
  appointCustodians (onions: string[], threshold: number, passphrase: string): Promise<void>
  approveRecovery (id: string): Promise<void>
  refuseRecovery (id: string): Promise<void>
}
