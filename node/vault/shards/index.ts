// The shard store: the vault's erasure-coded object store on disk (see shard-store.ts for
// the layout and the durability rules, record.ts and locator.ts for the binary formats).
import { DiskShardStore, type ShardStore, type ShardStoreInit } from './shard-store.ts'

export { SHARD_STORE_FORMAT, type SegmentInfo, type ShardStore, type ShardStoreInit, type ShardStoreStats } from './shard-store.ts'
export { ShardStoreError, ObjectDamagedError, type BadShard } from './errors.ts'
export { decodeLocator, encodeLocator, LOCATOR_VERSION, type Locator, type ShardLocation } from './locator.ts'

/** A ShardStore in the directory `init.dir`. Call `open()` before use. */
export function shardStore (init: ShardStoreInit): ShardStore {
  return new DiskShardStore(init)
}
