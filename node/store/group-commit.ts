// Group commit for LevelDB: writes that arrive while a synced batch is on its way to disk
// wait and go together in the next one, so durability (fsync per batch, not per write)
// does not cap throughput. Every caller's promise resolves only after its own write is synced,
// and batches reach the disk in call order, so the last write to a key wins.
import type { ClassicLevel } from 'classic-level'

export type BatchOp<K> = { type: 'put', key: K, value: Buffer | string } | { type: 'del', key: K }

export class GroupCommit<K = string> {
  private pending: Array<{ ops: Array<BatchOp<K>>, resolve: () => void, reject: (err: Error) => void }> = []
  private writing = false
  /** Synced batches written so far. */
  batches = 0

  constructor (private readonly db: ClassicLevel<K, Buffer | string>) {}

  async write (ops: Array<BatchOp<K>>): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.pending.push({ ops, resolve, reject })
      if (!this.writing) void this.flush()
    })
  }

  /** Resolves once every write queued so far is on disk (or failed). */
  async idle (): Promise<void> {
    while (this.writing) await new Promise(resolve => setImmediate(resolve))
  }

  private async flush (): Promise<void> {
    this.writing = true
    while (this.pending.length > 0) {
      const group = this.pending
      this.pending = []
      try {
        await this.db.batch(group.flatMap(g => g.ops), { sync: true })
        this.batches++
        for (const g of group) g.resolve()
      } catch (err) {
        for (const g of group) g.reject(err as Error)
      }
    }
    this.writing = false
  }
}
