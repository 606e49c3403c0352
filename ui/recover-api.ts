// What the recovery page of a new machine (recover-server.ts) needs from the recovery that runs
// behind it (node/cli/recover.ts implements it with node/recovery/recover.ts). Nothing here is
// secret except the new passphrase, which goes one way: from the form into `start`.

export interface RecoverRequest {
  /** The owner's old onion address (with or without ".onion"). */
  owner: string
  /** The custodians' onion addresses. */
  custodians: string[]
  from: 'friends' | 'imap'
  newPassphrase: string
}

/** rejected: it approved, but its share is forged, damaged or of another split, and was left out. */
export type CustodianPhase = 'asking' | 'waiting' | 'unreachable' | 'approved' | 'refused' | 'rejected'

export interface CustodianProgress {
  onion: string
  phase: CustodianPhase
  /** The verification code the custodian must see on their own screen. */
  code?: string
  /** Why it could not be reached, or why it refused. */
  detail?: string
}

export interface RecoverProgress {
  /**
   * form: nothing asked yet; asking: waiting for approvals; restoring: the key is rebuilt and
   * the mail comes back; done; failed (nothing, or not everything, was written: `error` says).
   */
  phase: 'form' | 'asking' | 'restoring' | 'done' | 'failed'
  tor: { ready: boolean, error?: string }
  /** The new data directory the node comes back into. */
  dataDir: string
  owner?: string
  custodians: CustodianProgress[]
  /** Known once a share has arrived (each share carries it). */
  threshold?: number
  restore?: { from: string, done: number, total: number }
  /** `backupMadeAt`: when the backup restored was made (ISO 8601): mail that came later is not in it. */
  result?: { onion: string, messages: number, restored: number, damaged: number, backupMadeAt: string }
  error?: string
  /** When approvals stop being waited for. */
  deadline?: number
}

/** Bad input in the form, said in words; nothing was started. */
export class RecoverInputError extends Error {
  override name = 'RecoverInputError'
}

export interface UiRecovery {
  progress (): RecoverProgress
  /** What the command line already named, to fill the form with. */
  suggested (): { owner?: string, custodians: string[], from: 'friends' | 'imap' }
  /** Starts the recovery (throws RecoverInputError, or if one is running or done). */
  start (request: RecoverRequest): void
  /** The owner is finished with the page: the command ends. */
  finish (): void
}
