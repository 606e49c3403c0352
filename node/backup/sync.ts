// Incremental backup onto one target: upload the wanted blobs the target lacks and delete the
// ones no longer wanted, judged by name alone. Blob names are content-derived (a keyed hash of
// the ciphertext, chosen by the caller), so a name the target holds is the blob the caller
// means and is not uploaded again.
import type { BackupTarget } from './target.ts'

/** The blobs that should be on the target: name → how to get its (encrypted) bytes, called only for uploads. */
export type WantedBlobs = Map<string, () => Promise<Uint8Array>>

export interface SyncReport {
  uploaded: number
  uploadedBytes: number
  deleted: number
  deletedBytes: number
  /** Wanted names the target already had. */
  kept: number
  keptBytes: number
}

/**
 * Brings the target to exactly the wanted names. Uploads first and deletes only after every
 * upload succeeded, so an interrupted sync never leaves the target with less than it had.
 * The first failure is thrown (a BackupTargetError); running the sync again continues where
 * it stopped, since what was uploaded is now listed.
 */
export async function syncToTarget (target: BackupTarget, wanted: WantedBlobs): Promise<SyncReport> {
  const report: SyncReport = { uploaded: 0, uploadedBytes: 0, deleted: 0, deletedBytes: 0, kept: 0, keptBytes: 0 }
  const present = new Map((await target.list()).map((b) => [b.name, b.size]))
  for (const [name, load] of wanted) {
    const size = present.get(name)
    if (size !== undefined) {
      report.kept++
      report.keptBytes += size
      continue
    }
    const bytes = await load()
    await target.put(name, bytes)
    report.uploaded++
    report.uploadedBytes += bytes.byteLength
  }
  for (const [name, size] of present) {
    if (wanted.has(name)) continue
    await target.delete(name)
    report.deleted++
    report.deletedBytes += size
  }
  return report
}
