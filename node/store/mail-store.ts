// The MailStore interface: where received and sent mail is kept.
//
// Contract (every implementation must hold it; test/store-compliance.ts checks it):
// - `add` is durable when its promise resolves: after a crash (kill -9) the message is there.
// - A message is stored byte for byte; `get` returns exactly the bytes given to `add`.
// - Ids are assigned by the store, unique within it, and never reused.
// - `add` with a `messageId` already present in the same folder returns the existing
//   entry (`duplicate: true`) instead of storing a second copy: at-least-once delivery
//   from peers must show each message once.
// - `list` returns entries of one folder in arrival order (oldest first).
// - Flags are a set of strings (IMAP style, e.g. "\\Seen"); `setFlags` replaces them.
// - `move` changes the folder of a message; the id stays.
// - Unknown ids give `undefined` from `get` and a MailStoreError from mutating calls.
//
// The implementation is the vault (node/vault/), which adds what this contract does not
// cover: locking (calls other than `add` then fail with VaultLockedError), search and scrub.

export type Folder = 'Inbox' | 'Sent' | 'Outbox' | 'Drafts' | 'Trash'
/**
 * Append only: the vault keeps a folder as its index in this list (node/vault/mailbox-index.ts,
 * 3 bits, so at most 8), and stored names must keep their meaning.
 */
export const FOLDERS: readonly Folder[] = ['Inbox', 'Sent', 'Outbox', 'Drafts', 'Trash']

export interface StoredMessageMeta {
  id: string
  folder: Folder
  /** Message-ID header value without angle brackets, if the message had one. */
  messageId?: string
  /** Envelope sender and recipients as given by SMTP. */
  from: string
  to: string[]
  /** Milliseconds since the epoch when the store received it. */
  receivedAt: number
  size: number
  flags: string[]
  /**
   * What a message list shows, read from the header block when the message was stored
   * (protocol/message.ts summarizeHeaders). Absent for messages stored before stores kept it.
   * Subject and From header decoded ('' when missing); Date header in ms since the epoch when
   * it parses; thread: the Message-ID of the thread's root ('' when the message names none).
   */
  subject?: string
  headerFrom?: string
  date?: number
  thread?: string
  /** What the message's OpenPGP said when it was read (node/openpgp/); absent when not read yet. */
  security?: MessageSecurity
}

/** What a message's OpenPGP says; kept in the message's metadata record (spec/storage.md). */
export interface MessageSecurity {
  /** The message was encrypted (PGP/MIME or inline). */
  encrypted: boolean
  /** It was encrypted and one of the owner's keys opened it. */
  decrypted?: boolean
  /** 'good': a signature that verifies; 'bad': one that does not; 'unknown-key': by a key we do not have. */
  signature: 'none' | 'good' | 'bad' | 'unknown-key'
  /** Fingerprint of the key that made a good or bad signature; key id (16 hex) for an unknown one. */
  signer?: string
  /**
   * The signer key against what is known of the From address (TOFU, spec/openpgp.md 3):
   * 'verified' (the owner compared fingerprints), 'pinned' (the key first seen for it),
   * 'first-seen' (pinned by this very message), 'changed' (not the pinned key), 'other'
   * (a good signature by a key that is not the sender's).
   */
  keyState?: 'verified' | 'pinned' | 'first-seen' | 'changed' | 'other'
  format?: 'pgp-mime' | 'inline'
  /** What went wrong, in one sentence for the owner. */
  problem?: string
}

export interface StoredMessage extends StoredMessageMeta {
  raw: Buffer
}

export interface NewMessage {
  folder: Folder
  raw: Buffer
  from: string
  to: string[]
  messageId?: string
  flags?: string[]
}

export interface AddResult {
  meta: StoredMessageMeta
  duplicate: boolean
}

export interface MailStore {
  open (): Promise<void>
  close (): Promise<void>
  add (message: NewMessage): Promise<AddResult>
  get (id: string): Promise<StoredMessage | undefined>
  list (folder: Folder): Promise<StoredMessageMeta[]>
  setFlags (id: string, flags: string[]): Promise<void>
  move (id: string, folder: Folder): Promise<void>
  remove (id: string): Promise<void>
}

export class MailStoreError extends Error {
  override name = 'MailStoreError'
}
