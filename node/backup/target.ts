// The BackupTarget interface: a place that keeps the node's encrypted backup blobs, such as a
// folder of the owner's IMAP account (imap-target.ts) or, later, a friend's node.
//
// Contract (every implementation must hold it; test/backup-targets.test.ts checks it, and
// spec/backup.md section 2 states it for other implementations):
// - A target stores opaque blobs under opaque names. The caller encrypts and authenticates
//   every blob before `put` and chooses names that say nothing (for example a keyed hash):
//   a target sees only ciphertext, names, sizes and timing.
// - A name is 1 to 64 lowercase hex characters (`isBlobName`). A blob is at most
//   MAX_BLOB_BYTES (16 MiB) and may be empty. Anything else is refused with InvalidBlobError
//   before the target is contacted.
// - `put(name, bytes)` is durable when its promise resolves: after that, a crash of this
//   process or the target's restart does not lose the blob. Putting an existing name replaces
//   the blob; a put that fails or is interrupted leaves either the old blob or the new one
//   under the name, never neither and never a mixture.
// - `get(name)` returns exactly the bytes of the last completed put of the name, or
//   `undefined` when there is none. A stored copy that cannot be read back whole raises
//   BlobDamagedError (the caller's own MAC catches anything subtler).
// - `list()` returns every stored name once, with the size of its blob in bytes, in no
//   particular order.
// - `delete(name)` removes the name; deleting a name that is not there is not an error.
//   Once it resolves, `get` returns `undefined` and `list` leaves the name out.
// - Every method may be called again after it failed; a target reconnects by itself.
//   Calls made together are carried out one after the other, except puts and gets of different
//   names when the target says `parallel` > 1.
// - One writer per place: one node writes to a target's place at a time (a second writer may
//   not see the first one's latest changes at once; see spec/backup.md 3.3).
// - `close()` releases connections; the target may not be used after it. Stored blobs stay:
//   a new target for the same place sees them.
//
// Errors: every failure is a BackupTargetError, whose `transient` says whether trying again
// later may help (TargetUnavailableError: network down, server stopped, timeouts, the
// server's "try again later") or not without the owner changing something
// (TargetRefusedError: wrong password, quota exceeded, the server refused the folder;
// InvalidBlobError; BlobDamagedError). Messages are sentences an owner can act on and
// never contain a password.

/** The largest blob a target must accept: 16 MiB. */
export const MAX_BLOB_BYTES = 16 * 1024 * 1024

/** 1 to 64 lowercase hex characters. */
const BLOB_NAME = /^[0-9a-f]{1,64}$/

export interface BlobInfo {
  name: string
  /** Size of the blob in bytes (not of the target's encoding of it). */
  size: number
}

export interface BackupTarget {
  /** What kind of target this is and where, for log lines and the UI: "imap alice@127.0.0.1:1143/smtorp-backup". Carries no secret. */
  readonly description: string
  put (name: string, bytes: Uint8Array): Promise<void>
  get (name: string): Promise<Buffer | undefined>
  list (): Promise<BlobInfo[]>
  delete (name: string): Promise<void>
  close (): Promise<void>
  /**
   * How many puts or gets a caller may have under way at once (default 1). A target that says
   * more than 1 carries out puts and gets of different names side by side; everything else
   * stays one at a time.
   */
  readonly parallel?: number
  /** Makes what the target keeps for itself durable now (friends: the placement record). */
  flush? (): Promise<void>
}

export function isBlobName (name: unknown): name is string {
  return typeof name === 'string' && BLOB_NAME.test(name)
}

export class BackupTargetError extends Error {
  override name = 'BackupTargetError'
  /** True when trying again later may succeed without anything changing. */
  readonly transient: boolean = false

  constructor (message: string, options?: { cause?: unknown }) {
    super(message, options)
  }
}

/** The target cannot be reached now, or asked us to come back later. Try again later. */
export class TargetUnavailableError extends BackupTargetError {
  override name = 'TargetUnavailableError'
  override readonly transient = true
}

/** The target refused: wrong credentials, quota, a folder it will not create. Trying again will not help. */
export class TargetRefusedError extends BackupTargetError {
  override name = 'TargetRefusedError'
}

/** The name or the size of a blob is not allowed; nothing was sent. */
export class InvalidBlobError extends BackupTargetError {
  override name = 'InvalidBlobError'
}

/** A stored copy could not be read back whole (wrong size, broken encoding). */
export class BlobDamagedError extends BackupTargetError {
  override name = 'BlobDamagedError'
}

/** Throws InvalidBlobError unless `name` is a blob name. */
export function checkBlobName (name: unknown): asserts name is string {
  if (!isBlobName(name)) {
    throw new InvalidBlobError(`a backup blob name must be 1 to 64 lowercase hex characters, and ${JSON.stringify(String(name).slice(0, 80))} is not`)
  }
}

/** Throws InvalidBlobError unless `name` is a blob name and `bytes` is at most MAX_BLOB_BYTES. */
export function checkBlob (name: unknown, bytes: Uint8Array): asserts name is string {
  checkBlobName(name)
  if (!(bytes instanceof Uint8Array)) throw new InvalidBlobError(`the blob ${name} is not a byte array`)
  if (bytes.byteLength > MAX_BLOB_BYTES) {
    throw new InvalidBlobError(`the blob ${name} is ${bytes.byteLength} bytes, more than the ${MAX_BLOB_BYTES} bytes (16 MiB) a backup target accepts; cut it into smaller blobs`)
  }
}
