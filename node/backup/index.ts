// Backup: encrypted blobs kept on backup targets (spec/backup.md). This first part holds the
// targets (the owner's IMAP account; an in-memory one for tests) and the incremental sync
// onto one; the friends' nodes and the encryption and layout of blobs come later.
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
