// The MailStore compliance suite: every implementation runs it, each `it` checks one point
// of the contract written on the interface in node/store/mail-store.ts.
//
// Usage, from an implementation's test file:
//   mailStoreCompliance('Vault', async () => { ...; return { store, cleanup } })
// `makeStore` returns a fresh, empty store that is not yet open; `cleanup` removes what it
// left on disk. The suite opens and closes the store itself, and reopens the same instance
// to check that nothing is lost.
import { describe, it, beforeEach, afterEach } from 'node:test'
import assert from 'node:assert/strict'
import { FOLDERS, MailStoreError, type Folder, type MailStore, type NewMessage } from '../node/store/mail-store.ts'

export interface StoreUnderTest {
  store: MailStore
  cleanup (): Promise<void>
}

/** Every byte value, CR, LF and CRLF in odd places, and a NUL: what 8BITMIME and BINARYMIME allow. */
export function binaryMessage (): Buffer {
  const all = Buffer.alloc(256)
  for (let i = 0; i < 256; i++) all[i] = i
  return Buffer.concat([
    Buffer.from('Subject: =?utf-8?q?gr=C3=BC=C3=9Fe?=\r\nMessage-ID: <bin@example.onion>\r\n\r\n', 'latin1'),
    all,
    Buffer.from('\r\n\rlone CR\nlone LF\r\n\r\n.\r\n..\r\n\x00\xff\xfe\r\n', 'latin1'),
    Buffer.from('grüße, 你好, 🙂\r\n', 'utf8')
  ])
}

let counter = 0
function message (over: Partial<NewMessage> = {}): NewMessage {
  counter++
  return {
    folder: 'Inbox',
    raw: Buffer.from(`From: alice@example.onion\r\nSubject: test ${counter}\r\n\r\nbody ${counter}\r\n`),
    from: 'alice@example.onion',
    to: ['bob@example.onion'],
    ...over
  }
}

async function ids (store: MailStore, folder: Folder): Promise<string[]> {
  return (await store.list(folder)).map((m) => m.id)
}

function isStoreError (err: unknown): boolean {
  return err instanceof MailStoreError && err.name === 'MailStoreError'
}

export function mailStoreCompliance (name: string, makeStore: () => Promise<StoreUnderTest>): void {
  describe(`MailStore compliance: ${name}`, () => {
    let sut: StoreUnderTest
    let store: MailStore

    beforeEach(async () => {
      sut = await makeStore()
      store = sut.store
      await store.open()
    })

    afterEach(async () => {
      await store.close()
      await sut.cleanup()
    })

    async function reopen (): Promise<void> {
      await store.close()
      await store.open()
    }

    describe('bytes', () => {
      it('returns exactly the bytes given to add, 8-bit, binary and CRLF included', async () => {
        const raw = binaryMessage()
        const { meta } = await store.add(message({ raw }))
        const got = await store.get(meta.id)
        assert.ok(got)
        assert.ok(Buffer.isBuffer(got.raw))
        assert.ok(got.raw.equals(raw))
        assert.equal(got.size, raw.byteLength)
        assert.equal(meta.size, raw.byteLength)
      })

      it('stores an empty message and a 2 MiB message', async () => {
        const big = Buffer.alloc(2 * 1024 * 1024)
        for (let i = 0; i < big.length; i++) big[i] = (i * 7 + 3) & 0xff
        const empty = await store.add(message({ raw: Buffer.alloc(0) }))
        const large = await store.add(message({ raw: big }))
        assert.equal((await store.get(empty.meta.id))?.raw.byteLength, 0)
        assert.ok((await store.get(large.meta.id))?.raw.equals(big))
      })

      it('keeps the bytes as they were at add, even if the caller reuses its buffer', async () => {
        const raw = Buffer.from('Subject: x\r\n\r\noriginal\r\n')
        const copy = Buffer.from(raw)
        const pending = store.add(message({ raw }))
        raw.fill(0x21)
        const { meta } = await pending
        raw.fill(0x22)
        assert.ok((await store.get(meta.id))?.raw.equals(copy))
      })

      it('is unaffected by changes to a buffer returned by get', async () => {
        const raw = binaryMessage()
        const { meta } = await store.add(message({ raw }))
        const first = await store.get(meta.id)
        first?.raw.fill(0)
        assert.ok((await store.get(meta.id))?.raw.equals(raw))
      })
    })

    describe('metadata', () => {
      it('keeps envelope, folder, Message-ID, size, time and flags', async () => {
        const before = Date.now()
        const { meta, duplicate } = await store.add(message({
          folder: 'Sent', from: 'a@x.onion', to: ['b@y.onion', 'c@z.onion'], messageId: 'm1@x.onion', flags: ['\\Seen']
        }))
        const after = Date.now()
        assert.equal(duplicate, false)
        assert.equal(typeof meta.id, 'string')
        assert.ok(meta.id.length > 0)
        assert.equal(meta.folder, 'Sent')
        assert.equal(meta.from, 'a@x.onion')
        assert.deepEqual(meta.to, ['b@y.onion', 'c@z.onion'])
        assert.equal(meta.messageId, 'm1@x.onion')
        assert.deepEqual(meta.flags, ['\\Seen'])
        assert.ok(meta.receivedAt >= before && meta.receivedAt <= after)
        const got = await store.get(meta.id)
        assert.ok(got)
        const { raw: _raw, ...gotMeta } = got
        assert.deepEqual(gotMeta, meta)
        assert.deepEqual(await store.list('Sent'), [meta])
      })

      it('gives no flags when add gives none, and no messageId when the message has none', async () => {
        const { meta } = await store.add(message())
        assert.deepEqual(meta.flags, [])
        assert.equal(meta.messageId, undefined)
        assert.equal((await store.get(meta.id))?.messageId, undefined)
      })
    })

    describe('ids', () => {
      it('gives each message its own id', async () => {
        const a = await store.add(message())
        const b = await store.add(message())
        const c = await store.add(message({ folder: 'Sent' }))
        assert.equal(new Set([a.meta.id, b.meta.id, c.meta.id]).size, 3)
      })

      it('never reuses the id of a removed message, even the newest, even after reopening', async () => {
        const seen = new Set<string>()
        const a = await store.add(message())
        const b = await store.add(message())
        seen.add(a.meta.id).add(b.meta.id)
        await store.remove(b.meta.id)
        const c = await store.add(message())
        assert.ok(!seen.has(c.meta.id))
        seen.add(c.meta.id)
        await store.remove(c.meta.id)
        await reopen()
        const d = await store.add(message())
        assert.ok(!seen.has(d.meta.id), `id ${d.meta.id} was used before`)
      })
    })

    describe('list', () => {
      it('returns one folder in arrival order, oldest first', async () => {
        const added: string[] = []
        for (let i = 0; i < 25; i++) added.push((await store.add(message())).meta.id)
        await store.add(message({ folder: 'Sent' }))
        assert.deepEqual(await ids(store, 'Inbox'), added)
      })

      it('keeps arrival order across folders interleaved', async () => {
        const byFolder = Object.fromEntries(FOLDERS.map(f => [f, [] as string[]])) as Record<Folder, string[]>
        for (let i = 0; i < 30; i++) {
          const folder = FOLDERS[i % FOLDERS.length]!
          byFolder[folder].push((await store.add(message({ folder }))).meta.id)
        }
        for (const folder of FOLDERS) assert.deepEqual(await ids(store, folder), byFolder[folder])
      })

      it('returns an empty list for an empty folder', async () => {
        for (const folder of FOLDERS) assert.deepEqual(await store.list(folder), [])
      })

      it('carries metadata only, not bodies', async () => {
        await store.add(message())
        const [entry] = await store.list('Inbox')
        assert.ok(entry)
        assert.equal('raw' in entry, false)
      })
    })

    describe('duplicates', () => {
      it('returns the existing entry for a Message-ID already in the folder', async () => {
        const first = await store.add(message({ messageId: 'dup@x.onion', flags: ['\\Seen'] }))
        const second = await store.add(message({ messageId: 'dup@x.onion', raw: Buffer.from('different bytes') }))
        assert.equal(first.duplicate, false)
        assert.equal(second.duplicate, true)
        assert.deepEqual(second.meta, first.meta)
        assert.deepEqual(await ids(store, 'Inbox'), [first.meta.id])
        assert.ok((await store.get(first.meta.id))?.raw.equals((await store.get(second.meta.id))!.raw))
      })

      it('stores the same Message-ID once per folder, not once per store', async () => {
        const inbox = await store.add(message({ folder: 'Inbox', messageId: 'self@x.onion' }))
        const sent = await store.add(message({ folder: 'Sent', messageId: 'self@x.onion' }))
        assert.equal(sent.duplicate, false)
        assert.notEqual(sent.meta.id, inbox.meta.id)
        assert.deepEqual(await ids(store, 'Inbox'), [inbox.meta.id])
        assert.deepEqual(await ids(store, 'Sent'), [sent.meta.id])
      })

      it('never treats messages without a Message-ID as duplicates', async () => {
        const a = await store.add(message({ raw: Buffer.from('same') }))
        const b = await store.add(message({ raw: Buffer.from('same') }))
        assert.equal(b.duplicate, false)
        assert.deepEqual(await ids(store, 'Inbox'), [a.meta.id, b.meta.id])
      })

      it('stores one copy when the same Message-ID arrives concurrently', async () => {
        const results = await Promise.all(Array.from({ length: 20 }, () => store.add(message({ messageId: 'race@x.onion' }))))
        assert.equal(new Set(results.map((r) => r.meta.id)).size, 1)
        assert.equal(results.filter((r) => !r.duplicate).length, 1)
        assert.equal((await store.list('Inbox')).length, 1)
      })

      it('stores a new copy once the earlier one was removed', async () => {
        const first = await store.add(message({ messageId: 'again@x.onion' }))
        await store.remove(first.meta.id)
        const second = await store.add(message({ messageId: 'again@x.onion' }))
        assert.equal(second.duplicate, false)
        assert.notEqual(second.meta.id, first.meta.id)
        assert.deepEqual(await ids(store, 'Inbox'), [second.meta.id])
      })

      it('follows a message that moved: duplicate in its new folder, not in its old one', async () => {
        const first = await store.add(message({ messageId: 'moved@x.onion' }))
        await store.move(first.meta.id, 'Sent')
        const inSent = await store.add(message({ folder: 'Sent', messageId: 'moved@x.onion' }))
        assert.equal(inSent.duplicate, true)
        assert.equal(inSent.meta.id, first.meta.id)
        assert.equal(inSent.meta.folder, 'Sent')
        const inInbox = await store.add(message({ folder: 'Inbox', messageId: 'moved@x.onion' }))
        assert.equal(inInbox.duplicate, false)
      })

      it('still finds a duplicate after one of two copies moved into the same folder is removed', async () => {
        const inbox = await store.add(message({ folder: 'Inbox', messageId: 'two@x.onion' }))
        const sent = await store.add(message({ folder: 'Sent', messageId: 'two@x.onion' }))
        await store.move(sent.meta.id, 'Inbox')
        assert.deepEqual(await ids(store, 'Inbox'), [inbox.meta.id, sent.meta.id])
        await store.remove(inbox.meta.id)
        const again = await store.add(message({ folder: 'Inbox', messageId: 'two@x.onion' }))
        assert.equal(again.duplicate, true)
        assert.equal(again.meta.id, sent.meta.id)
      })

      it('remembers Message-IDs after reopening', async () => {
        const first = await store.add(message({ messageId: 'persist@x.onion' }))
        await reopen()
        const second = await store.add(message({ messageId: 'persist@x.onion' }))
        assert.equal(second.duplicate, true)
        assert.equal(second.meta.id, first.meta.id)
      })
    })

    describe('flags', () => {
      it('replaces the flags with setFlags', async () => {
        const { meta } = await store.add(message({ flags: ['\\Recent'] }))
        await store.setFlags(meta.id, ['\\Seen', '\\Flagged'])
        assert.deepEqual(new Set((await store.get(meta.id))?.flags), new Set(['\\Seen', '\\Flagged']))
        assert.deepEqual(new Set((await store.list('Inbox'))[0]?.flags), new Set(['\\Seen', '\\Flagged']))
        await store.setFlags(meta.id, [])
        assert.deepEqual((await store.get(meta.id))?.flags, [])
      })

      it('treats flags as a set', async () => {
        const { meta } = await store.add(message({ flags: ['\\Seen', '\\Seen'] }))
        assert.deepEqual(meta.flags, ['\\Seen'])
        await store.setFlags(meta.id, ['$Label', '\\Seen', '$Label'])
        const flags = (await store.get(meta.id))?.flags ?? []
        assert.equal(flags.length, 2)
        assert.deepEqual(new Set(flags), new Set(['$Label', '\\Seen']))
      })

      it('leaves the body and the other messages alone', async () => {
        const raw = binaryMessage()
        const a = await store.add(message({ raw }))
        const b = await store.add(message({ flags: ['\\Draft'] }))
        await store.setFlags(a.meta.id, ['\\Seen'])
        assert.ok((await store.get(a.meta.id))?.raw.equals(raw))
        assert.deepEqual((await store.get(b.meta.id))?.flags, ['\\Draft'])
        assert.deepEqual(await ids(store, 'Inbox'), [a.meta.id, b.meta.id])
      })

      it('applies concurrent changes to different messages and the last one to the same message', async () => {
        const a = await store.add(message())
        const b = await store.add(message())
        await Promise.all([
          store.setFlags(a.meta.id, ['\\Seen']),
          store.setFlags(b.meta.id, ['\\Answered']),
          store.move(b.meta.id, 'Sent'),
          store.setFlags(a.meta.id, ['\\Flagged'])
        ])
        assert.deepEqual((await store.get(a.meta.id))?.flags, ['\\Flagged'])
        const gotB = await store.get(b.meta.id)
        assert.equal(gotB?.folder, 'Sent')
        assert.deepEqual(gotB?.flags, ['\\Answered'])
      })
    })

    describe('move', () => {
      it('changes the folder and keeps the id, body and flags', async () => {
        const raw = binaryMessage()
        const { meta } = await store.add(message({ folder: 'Outbox', raw, flags: ['\\Seen'] }))
        await store.move(meta.id, 'Sent')
        const got = await store.get(meta.id)
        assert.equal(got?.id, meta.id)
        assert.equal(got?.folder, 'Sent')
        assert.deepEqual(got?.flags, ['\\Seen'])
        assert.ok(got?.raw.equals(raw))
        assert.deepEqual(await ids(store, 'Outbox'), [])
        assert.deepEqual(await ids(store, 'Sent'), [meta.id])
      })

      it('puts a moved message in arrival order within its new folder', async () => {
        const old = await store.add(message({ folder: 'Outbox' }))
        const newer = await store.add(message({ folder: 'Sent' }))
        await store.move(old.meta.id, 'Sent')
        assert.deepEqual(await ids(store, 'Sent'), [old.meta.id, newer.meta.id])
      })

      it('accepts a move to the folder the message is already in', async () => {
        const { meta } = await store.add(message())
        await store.move(meta.id, 'Inbox')
        assert.deepEqual(await ids(store, 'Inbox'), [meta.id])
      })
    })

    describe('remove', () => {
      it('removes the message from get and list and leaves the others', async () => {
        const a = await store.add(message())
        const b = await store.add(message())
        await store.remove(a.meta.id)
        assert.equal(await store.get(a.meta.id), undefined)
        assert.deepEqual(await ids(store, 'Inbox'), [b.meta.id])
        assert.ok(await store.get(b.meta.id))
      })

      it('fails on a second remove of the same id', async () => {
        const { meta } = await store.add(message())
        await store.remove(meta.id)
        await assert.rejects(store.remove(meta.id), isStoreError)
        await assert.rejects(store.setFlags(meta.id, ['\\Seen']), isStoreError)
        await assert.rejects(store.move(meta.id, 'Sent'), isStoreError)
      })
    })

    describe('unknown ids', () => {
      const unknown = ['no-such-id', '', '0', '9999999999999999', '../../etc/passwd', 'i!x', '\u0000']

      it('gives undefined from get', async () => {
        await store.add(message())
        for (const id of unknown) assert.equal(await store.get(id), undefined, `get(${JSON.stringify(id)})`)
      })

      it('gives a MailStoreError from setFlags, move and remove', async () => {
        await store.add(message())
        for (const id of unknown) {
          await assert.rejects(store.setFlags(id, ['\\Seen']), isStoreError, `setFlags(${JSON.stringify(id)})`)
          await assert.rejects(store.move(id, 'Sent'), isStoreError, `move(${JSON.stringify(id)})`)
          await assert.rejects(store.remove(id), isStoreError, `remove(${JSON.stringify(id)})`)
        }
        assert.equal((await store.list('Inbox')).length, 1)
      })
    })

    describe('reopen', () => {
      it('keeps bodies, metadata, flags, folders and order', async () => {
        const raw = binaryMessage()
        const a = await store.add(message({ raw, messageId: 'a@x.onion' }))
        const b = await store.add(message({ folder: 'Outbox' }))
        const c = await store.add(message())
        const d = await store.add(message())
        await store.setFlags(a.meta.id, ['\\Seen'])
        await store.move(b.meta.id, 'Inbox')
        await store.remove(c.meta.id)
        const before = Object.fromEntries(await Promise.all(FOLDERS.map(async (f) => [f, await store.list(f)] as const)))
        await reopen()
        const after = Object.fromEntries(await Promise.all(FOLDERS.map(async (f) => [f, await store.list(f)] as const)))
        assert.deepEqual(after, before)
        assert.deepEqual(after.Inbox?.map((m) => m.id), [a.meta.id, b.meta.id, d.meta.id])
        const gotA = await store.get(a.meta.id)
        assert.ok(gotA?.raw.equals(raw))
        assert.deepEqual(gotA?.flags, ['\\Seen'])
        assert.equal(await store.get(c.meta.id), undefined)
      })
    })

    describe('concurrency', () => {
      it('stores every one of many concurrent adds, each with its own id', async () => {
        const n = 300
        const raws = Array.from({ length: n }, (_, i) => Buffer.from(`Subject: c${i}\r\n\r\n${'x'.repeat(i)}\r\n`))
        const results = await Promise.all(raws.map((raw, i) => store.add(message({
          raw, folder: FOLDERS[i % FOLDERS.length]!, messageId: `c${i}@x.onion`
        }))))
        assert.equal(new Set(results.map((r) => r.meta.id)).size, n)
        assert.ok(results.every((r) => !r.duplicate))
        for (let i = 0; i < n; i++) {
          assert.ok((await store.get(results[i]!.meta.id))?.raw.equals(raws[i]!), `message ${i}`)
        }
        const listed = (await Promise.all(FOLDERS.map((f) => store.list(f)))).flat()
        assert.equal(listed.length, n)
        await reopen()
        const relisted = (await Promise.all(FOLDERS.map((f) => store.list(f)))).flat()
        assert.deepEqual(relisted, listed)
      })

      it('applies adds interleaved with flag changes and moves', async () => {
        const first = await store.add(message())
        const [, second, , third] = await Promise.all([
          store.setFlags(first.meta.id, ['\\Seen']),
          store.add(message()),
          store.move(first.meta.id, 'Sent'),
          store.add(message())
        ])
        // Two adds in flight together may arrive in either order; both must be listed once.
        assert.deepEqual(new Set(await ids(store, 'Inbox')), new Set([second.meta.id, third.meta.id]))
        assert.equal((await ids(store, 'Inbox')).length, 2)
        assert.deepEqual(await ids(store, 'Sent'), [first.meta.id])
        assert.deepEqual((await store.get(first.meta.id))?.flags, ['\\Seen'])
      })
    })
  })
}
