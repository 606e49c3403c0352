// A BackupTarget kept in memory, for tests of the backup logic built on targets. Several
// targets may share one MemoryBlobs, the way several connections reach one IMAP account, so a
// test can close a target and open a new one on the same blobs.
import { checkBlob, checkBlobName, BackupTargetError, type BackupTarget, type BlobInfo } from './target.ts'

/** Where memory targets keep their blobs; share it to "reconnect". */
export type MemoryBlobs = Map<string, Buffer>

export interface MemoryTargetInit {
  /** The blobs; a fresh empty map when absent. */
  blobs?: MemoryBlobs
}

export class MemoryBackupTarget implements BackupTarget {
  readonly description = 'memory'
  readonly blobs: MemoryBlobs
  private closed = false

  constructor (init: MemoryTargetInit = {}) {
    this.blobs = init.blobs ?? new Map()
  }

  private checkOpen (): void {
    if (this.closed) throw new BackupTargetError('this memory backup target was closed')
  }

  async put (name: string, bytes: Uint8Array): Promise<void> {
    checkBlob(name, bytes)
    this.checkOpen()
    // A copy: the caller may reuse its buffer.
    this.blobs.set(name, Buffer.from(bytes))
  }

  async get (name: string): Promise<Buffer | undefined> {
    checkBlobName(name)
    this.checkOpen()
    const blob = this.blobs.get(name)
    return blob === undefined ? undefined : Buffer.from(blob)
  }

  async list (): Promise<BlobInfo[]> {
    this.checkOpen()
    return [...this.blobs].map(([name, blob]) => ({ name, size: blob.byteLength }))
  }

  async delete (name: string): Promise<void> {
    checkBlobName(name)
    this.checkOpen()
    this.blobs.delete(name)
  }

  async close (): Promise<void> {
    this.closed = true
  }
}

export function memoryBackupTarget (init: MemoryTargetInit = {}): MemoryBackupTarget {
  return new MemoryBackupTarget(init)
}
