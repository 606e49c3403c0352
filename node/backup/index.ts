// Backup: encrypted blobs kept on backup targets (spec/backup.md). Part 1: the targets (the
// owner's IMAP account; an in-memory one for tests) and the incremental sync onto one. Part 2
// (mailbox-backup.ts): the node's backup onto a target and the restore from it alone. The
// friends' nodes come later.
export {
  MAX_BLOB_BYTES, isBlobName, checkBlob, checkBlobName,
  BackupTargetError, TargetUnavailableError, TargetRefusedError, InvalidBlobError, BlobDamagedError
} from './target.ts'
export type { BackupTarget, BlobInfo } from './target.ts'
export { imapBackupTarget, ImapBackupTarget, DEFAULT_BACKUP_FOLDER } from './imap-target.ts'
export type { ImapTargetInit, ImapTargetComponents } from './imap-target.ts'
export { memoryBackupTarget, MemoryBackupTarget } from './memory-target.ts'
export type { MemoryBlobs, MemoryTargetInit } from './memory-target.ts'
export { syncToTarget } from './sync.ts'
export type { SyncReport, WantedBlobs } from './sync.ts'
export {
  backupToTarget, restoreFromTarget, backupKey, manifestBlobName, identityBlobName, messageBlobName, blobAssociatedData, sealBlob, openBlob,
  BackupError, WrongBackupPassphraseError, BACKUP_FORMAT, KEY_SLOTS_BLOB, BACKED_UP_RECORDS
} from './mailbox-backup.ts'
export type { BackupInit, BackupReport, RestoreInit, RestoreReport, Manifest, ManifestMessage, BlobKind } from './mailbox-backup.ts'
