// Errors of the shard store. Every failure the store reports, whether bad input, a damaged
// disk or an I/O error, is a ShardStoreError, so callers need one catch.

export class ShardStoreError extends Error {
  override name = 'ShardStoreError'
}

/** Why one shard record could not be used. */
export interface BadShard {
  index: number
  reason: string
}

/** More than m shards of one object are bad: the object cannot be rebuilt from this store. */
export class ObjectDamagedError extends ShardStoreError {
  override name = 'ObjectDamagedError'
  readonly objectId: string
  readonly bad: readonly BadShard[]

  constructor (objectId: Buffer, bad: readonly BadShard[], m: number) {
    const list = bad.map((b) => `${b.index} (${b.reason})`).join(', ')
    super(`Object ${objectId.toString('hex')} is damaged beyond repair: ${bad.length} shards are bad and at most ${m} may be: ${list}.`)
    this.objectId = objectId.toString('hex')
    this.bad = bad
  }
}
