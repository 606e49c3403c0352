// The BackupTarget compliance suite: each `it` a point of the contract written on
// node/backup/target.ts (spec/backup.md section 2). Every implementation runs it: the memory
// and IMAP targets in test/backup-targets.test.ts, the friends' nodes in
// test/friends-backup.test.ts.
import { describe, it, beforeEach, afterEach } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { syncToTarget, BackupTargetError, InvalidBlobError, MAX_BLOB_BYTES, type BackupTarget } from '../node/backup/index.ts'

export interface TargetUnderTest {
  target: BackupTarget
  /** A new target on the same place (the same blobs), as after a restart of the node. */
  reopen (): Promise<BackupTarget>
  cleanup (): Promise<void>
}

/** Every byte value, then random bytes: what ciphertext looks like. */
export function binaryBlob (size: number): Buffer {
  const all = Buffer.alloc(256)
  for (let i = 0; i < 256; i++) all[i] = i
  return Buffer.concat([all, randomBytes(Math.max(0, size - 256))]).subarray(0, size)
}

export const hexName = (n: number): string => n.toString(16).padStart(8, '0')

export async function sorted (target: BackupTarget): Promise<Array<{ name: string, size: number }>> {
  return (await target.list()).sort((a, b) => a.name.localeCompare(b.name))
}

export function backupTargetCompliance (name: string, make: () => Promise<TargetUnderTest>, skip: string | false = false): void {
  describe(`BackupTarget compliance: ${name}`, { skip }, () => {
    let sut: TargetUnderTest
    let target: BackupTarget
    const opened: BackupTarget[] = []

    beforeEach(async () => {
      sut = await make()
      target = sut.target
    })

    afterEach(async () => {
      for (const t of opened.splice(0)) await t.close()
      await target.close()
      await sut.cleanup()
    })

    async function reopen (): Promise<BackupTarget> {
      const t = await sut.reopen()
      opened.push(t)
      return t
    }

    it('returns exactly the bytes put, binary, empty and 5 MiB', async () => {
      const blobs = new Map([['a1', binaryBlob(1000)], ['b2', Buffer.alloc(0)], ['c3', binaryBlob(5 * 1024 * 1024)]])
      for (const [n, bytes] of blobs) await target.put(n, bytes)
      for (const [n, bytes] of blobs) {
        const got = await target.get(n)
        assert.ok(Buffer.isBuffer(got), `get(${n}) gives a Buffer`)
        assert.equal(got.byteLength, bytes.byteLength)
        assert.ok(got.equals(bytes), `get(${n}) gives the bytes put`)
      }
    })

    it('takes a Uint8Array view with an offset, and keeps a copy rather than the caller\'s buffer', async () => {
      const backing = Buffer.from(Array.from({ length: 600 }, (_, i) => i % 251))
      const expected = Buffer.from(backing.subarray(100, 400))
      const view = new Uint8Array(backing.buffer, backing.byteOffset + 100, 300)
      await target.put('ab', view)
      backing.fill(0)
      const got = await target.get('ab')
      assert.ok(got?.equals(expected), 'the 300 bytes of the view, not the zeroed buffer')
    })

    it('gives undefined for a name never put', async () => {
      assert.equal(await target.get('deadbeef'), undefined)
      assert.deepEqual(await target.list(), [])
    })

    it('replaces the blob of a name put again; the list shows it once with the new size', async () => {
      await target.put('0a', Buffer.from('first version'))
      await target.put('0a', Buffer.from('second, longer version'))
      assert.equal((await target.get('0a'))?.toString(), 'second, longer version')
      assert.deepEqual(await target.list(), [{ name: '0a', size: 22 }])
      await target.put('0a', Buffer.alloc(0))
      assert.equal((await target.get('0a'))?.byteLength, 0)
      assert.deepEqual(await target.list(), [{ name: '0a', size: 0 }])
    })

    it('lists every name once with the size of its blob', async () => {
      const sizes = [0, 1, 2, 3, 57, 58, 1000, 65536]
      for (const [i, size] of sizes.entries()) await target.put(hexName(i), binaryBlob(size))
      assert.deepEqual(await sorted(target), sizes.map((size, i) => ({ name: hexName(i), size })))
    })

    it('deletes a name; deleting a name that is not there is not an error', async () => {
      await target.put('01', Buffer.from('one'))
      await target.put('02', Buffer.from('two'))
      await target.delete('01')
      assert.equal(await target.get('01'), undefined)
      assert.deepEqual(await target.list(), [{ name: '02', size: 3 }])
      await target.delete('01')
      await target.delete('ffff')
      assert.equal((await target.get('02'))?.toString(), 'two')
    })

    it('refuses names that are not 1 to 64 lowercase hex characters, before storing anything', async () => {
      for (const bad of ['', 'ABCD', 'xyz', 'a'.repeat(65), '../etc', 'ab cd', 'ab\r\nX-Evil: 1', '0x12', 'é']) {
        for (const call of [() => target.put(bad, Buffer.from('x')), () => target.get(bad), () => target.delete(bad)]) {
          await assert.rejects(call(), (err: Error) => {
            assert.ok(err instanceof InvalidBlobError, `${JSON.stringify(bad)}: ${err.name}: ${err.message}`)
            assert.equal(err.transient, false)
            assert.match(err.message, /1 to 64 lowercase hex characters/)
            return true
          })
        }
      }
      await target.put('f'.repeat(64), Buffer.from('longest name'))
      await target.put('0', Buffer.from('shortest name'))
      assert.deepEqual(await sorted(target), [{ name: '0', size: 13 }, { name: 'f'.repeat(64), size: 12 }])
    })

    it('refuses a blob over 16 MiB with a clear error, and accepts exactly 16 MiB', async () => {
      await assert.rejects(target.put('0b', Buffer.alloc(MAX_BLOB_BYTES + 1)), (err: Error) => {
        assert.ok(err instanceof InvalidBlobError)
        assert.equal(err.transient, false)
        assert.match(err.message, /16777217 bytes, more than the 16777216 bytes \(16 MiB\)/)
        return true
      })
      assert.deepEqual(await target.list(), [])
      const max = binaryBlob(MAX_BLOB_BYTES)
      await target.put('0c', max)
      assert.ok((await target.get('0c'))?.equals(max))
    })

    it('keeps blobs for a new target on the same place (close and reopen)', async () => {
      const bytes = binaryBlob(70_000)
      await target.put('c0ffee', bytes)
      await target.put('0d', Buffer.from('gone'))
      await target.delete('0d')
      await target.close()
      const again = await reopen()
      assert.ok((await again.get('c0ffee'))?.equals(bytes))
      assert.deepEqual(await again.list(), [{ name: 'c0ffee', size: 70_000 }])
    })

    it('carries out calls made together one after the other', async () => {
      const names = Array.from({ length: 12 }, (_, i) => hexName(i))
      await Promise.all(names.map(async (n, i) => await target.put(n, Buffer.from(`blob ${i}`))))
      await Promise.all([target.put(names[0]!, Buffer.from('replaced')), target.delete(names[1]!)])
      const listed = await sorted(target)
      assert.equal(listed.length, 11)
      assert.equal((await target.get(names[0]!))?.toString(), 'replaced')
      assert.deepEqual(await Promise.all(names.slice(2).map(async (n) => (await target.get(n))?.toString())), names.slice(2).map((_, i) => `blob ${i + 2}`))
    })

    it('syncs incrementally: uploads only what the target lacks, deletes what is no longer wanted', async () => {
      const blobs = new Map(Array.from({ length: 6 }, (_, i) => [hexName(i), binaryBlob(100 * (i + 1))] as const))
      let loads = 0
      const wanted = (names: string[]): Map<string, () => Promise<Buffer>> =>
        new Map(names.map((n) => [n, async () => { loads++; return blobs.get(n)! }]))

      await target.put('99', Buffer.from('stale'))
      const first = await syncToTarget(target, wanted([...blobs.keys()]))
      assert.deepEqual(first, { uploaded: 6, uploadedBytes: 2100, deleted: 1, deletedBytes: 5, kept: 0, keptBytes: 0 })
      assert.equal(loads, 6)

      const second = await syncToTarget(target, wanted([...blobs.keys()]))
      assert.deepEqual(second, { uploaded: 0, uploadedBytes: 0, deleted: 0, deletedBytes: 0, kept: 6, keptBytes: 2100 })
      assert.equal(loads, 6, 'a second sync loads nothing')

      const third = await syncToTarget(target, wanted([...blobs.keys()].slice(1)))
      assert.deepEqual(third, { uploaded: 0, uploadedBytes: 0, deleted: 1, deletedBytes: 100, kept: 5, keptBytes: 2000 })
      for (const [n, bytes] of [...blobs].slice(1)) assert.ok((await target.get(n))?.equals(bytes))
      assert.equal(await target.get(hexName(0)), undefined)
    })

    it('refuses calls after close', async () => {
      await target.close()
      await assert.rejects(target.list(), BackupTargetError)
    })
  })
}
