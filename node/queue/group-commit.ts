// Group commit for LevelDB: writes that arrive while a synced batch is on its way to disk
// wait and go together in the next one, so durability (fsync per batch, not per write)
// does not cap throughput. Every caller's promise resolves only after its own write is synced.
import type { ClassicLevel } from 'classic-level'

export type BatchOp = { type: 'put', key: string, value: Buffer | string } | { type: 'del', key: string }

export class GroupCommit {
  private pending: Array<{ ops: BatchOp[], resolve: () => void, reject: (err: Error) => void }> = []
  private writing = false

  constructor (private readonly db: ClassicLevel<string, Buffer | string>) {}

  async write (ops: BatchOp[]): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.pending.push({ ops, resolve, reject })
      if (!this.writing) void this.flush()
    })
  }

  private async flush (): Promise<void> {
    this.writing = true
    while (this.pending.length > 0) {
      const group = this.pending
      this.pending = []
      try {
        await this.db.batch(group.flatMap(g => g.ops), { sync: true })
        for (const g of group) g.resolve()
      } catch (err) {
        for (const g of group) g.reject(err as Error)
      }
    }
    this.writing = false
  }
}
