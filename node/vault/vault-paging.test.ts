// What the web UI reads from the vault: pages of a folder, counts, threads, the header summary
// in each metadata record, Drafts and Trash, emptying a folder, and checking a secret.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openTestVault, TEST_KDF, TEST_PASSPHRASE } from '../../test/harness/vault.ts'
import { vault as makeVault, UnlockThrottledError, VaultError, WrongSecretError, type Vault } from './index.ts'
import { MailboxIndex } from './mailbox-index.ts'
import type { Folder, NewMessage, StoredMessageMeta } from '../store/mail-store.ts'

async function tempVault (): Promise<{ dir: string, v: Vault, recoveryCode: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'smtorp-vault-paging-'))
  const { vault: v, recoveryCode } = await openTestVault(dir)
  return { dir, v, recoveryCode: recoveryCode! }
}

function letter (folder: Folder, n: number, headers: string[] = []): NewMessage {
  const messageId = `m${n}@x.onion`
  const raw = Buffer.from([`From: Sender ${n} <s${n}@x.onion>`, `Subject: letter ${n}`, `Message-ID: <${messageId}>`, ...headers, '', `body ${n}`, ''].join('\r\n'))
  return { folder, raw, from: `s${n}@x.onion`, to: ['me@y.onion'], messageId }
}

/** Counts readMeta calls: a page must open only the records it returns. */
function countOpens (v: Vault): { opened: () => number } {
  const target = v as unknown as { readMeta: (...args: unknown[]) => unknown }
  const original = target.readMeta.bind(v)
  let n = 0
  target.readMeta = (...args: unknown[]) => { n++; return original(...args) }
  return { opened: () => n }
}

const ids = (messages: StoredMessageMeta[]): string[] => messages.map(m => m.id)

describe('Vault.page', () => {
  let dir: string
  let v: Vault
  const inbox: string[] = []
  before(async () => {
    ({ dir, v } = await tempVault())
    // Inbox and Sent interleaved, so a page must skip the other folder's ids.
    for (let n = 1; n <= 10; n++) {
      inbox.push((await v.add(letter('Inbox', n))).meta.id)
      await v.add(letter('Sent', 100 + n))
    }
  })
  after(async () => { await v.close(); await rm(dir, { recursive: true, force: true }) })

  it('gives newest first, page after page, with nextBefore until the last page', async () => {
    const newestFirst = [...inbox].reverse()
    const first = await v.page('Inbox', { limit: 4 })
    assert.deepEqual(ids(first.messages), newestFirst.slice(0, 4))
    assert.equal(first.nextBefore, newestFirst[3])
    const second = await v.page('Inbox', { limit: 4, before: first.nextBefore! })
    assert.deepEqual(ids(second.messages), newestFirst.slice(4, 8))
    const third = await v.page('Inbox', { limit: 4, before: second.nextBefore! })
    assert.deepEqual(ids(third.messages), newestFirst.slice(8))
    assert.equal(third.nextBefore, undefined)
    assert.equal(third.messages[0]!.subject, 'letter 2')
  })

  it('has no nextBefore when the page ends exactly at the oldest message', async () => {
    const all = await v.page('Inbox', { limit: 10 })
    assert.equal(all.messages.length, 10)
    assert.equal(all.nextBefore, undefined)
    const nine = await v.page('Inbox', { limit: 9 })
    assert.equal(nine.nextBefore, inbox[1])
    assert.deepEqual(ids((await v.page('Inbox', { limit: 9, before: nine.nextBefore! })).messages), [inbox[0]])
  })

  it('takes only ids below before: the id itself is not included', async () => {
    assert.deepEqual(ids((await v.page('Inbox', { limit: 2, before: inbox[5]! })).messages), [inbox[4], inbox[3]])
    assert.deepEqual((await v.page('Inbox', { limit: 5, before: inbox[0]! })).messages, [])
    assert.deepEqual((await v.page('Inbox', { limit: 5, before: '0000000000000000' })).messages, [])
    assert.deepEqual(ids((await v.page('Inbox', { limit: 1, before: '9999999999999999' })).messages), [inbox[9]])
  })

  it('gives an empty page for an empty folder', async () => {
    assert.deepEqual(await v.page('Drafts', { limit: 50 }), { messages: [] })
    assert.deepEqual(await v.page('Trash', { limit: 50, before: inbox[3]! }), { messages: [] })
  })

  it('opens only the records it returns', async () => {
    const spy = countOpens(v)
    await v.page('Inbox', { limit: 3 })
    assert.equal(spy.opened(), 3)
  })

  it('refuses a bad limit, before or folder', async () => {
    await assert.rejects(v.page('Inbox', { limit: 0 }), /limit/)
    await assert.rejects(v.page('Inbox', { limit: 1.5 }), /limit/)
    await assert.rejects(v.page('Inbox', { limit: 5, before: 'abc' }), /before/)
    await assert.rejects(v.page('Spam' as Folder, { limit: 5 }), /Unknown folder/)
  })

  it('keeps the order after moves, flag changes and removals, and a reopen', async () => {
    await v.setFlags(inbox[9]!, ['\\Seen'])
    await v.move(inbox[8]!, 'Sent')
    await v.move(inbox[8]!, 'Inbox') // back: same id, same place
    await v.remove(inbox[7]!)
    const expected = [...inbox].reverse().filter(id => id !== inbox[7])
    assert.deepEqual(ids((await v.page('Inbox', { limit: 50 })).messages), expected)
    await v.lock()
    await v.unlock({ passphrase: TEST_PASSPHRASE })
    assert.deepEqual(ids((await v.page('Inbox', { limit: 50 })).messages), expected)
    inbox.splice(7, 1)
  })
})

describe('MailboxIndex order', () => {
  it('returns ids in order even when a smaller id comes in late (an arrival filed after newer mail)', () => {
    const index = new MailboxIndex()
    for (const id of ['0000000000000002', '0000000000000005', '0000000000000003', '0000000000000009', '0000000000000001']) index.set(id, 'Inbox', [], undefined)
    index.set('0000000000000005', 'Inbox', ['\\Seen'], undefined) // changing flags keeps the place
    assert.deepEqual(index.newest('Inbox', 3), ['0000000000000009', '0000000000000005', '0000000000000003'])
    assert.deepEqual(index.newest('Inbox', 10, '0000000000000005'), ['0000000000000003', '0000000000000002', '0000000000000001'])
    assert.deepEqual(index.ids('Inbox'), ['0000000000000001', '0000000000000002', '0000000000000003', '0000000000000005', '0000000000000009'])
    index.set('0000000000000004', 'Inbox', [], undefined)
    assert.deepEqual(index.newest('Inbox', 2, '0000000000000005'), ['0000000000000004', '0000000000000003'])
    assert.deepEqual(index.counts().get('Inbox'), { total: 6, unread: 5 })
  })
})

describe('Vault.counts', () => {
  it('counts messages and unread ones per folder after setFlags, move, remove and a reopen', async () => {
    const { dir, v } = await tempVault()
    try {
      const a = (await v.add(letter('Inbox', 1))).meta.id
      const b = (await v.add(letter('Inbox', 2))).meta.id
      const c = (await v.add({ ...letter('Sent', 3), flags: ['\\Seen'] })).meta.id
      await v.add(letter('Inbox', 4))
      const count = async (): Promise<Record<string, [number, number]>> =>
        Object.fromEntries([...(await v.counts())].map(([folder, { total, unread }]) => [folder, [total, unread]]))
      assert.deepEqual(await count(), { Inbox: [3, 3], Sent: [1, 0], Outbox: [0, 0], Drafts: [0, 0], Trash: [0, 0] })
      await v.setFlags(a, ['\\Seen', '\\Flagged'])
      await v.setFlags(a, ['\\Seen'])
      await v.move(b, 'Trash')
      await v.setFlags(c, [])
      assert.deepEqual(await count(), { Inbox: [2, 1], Sent: [1, 1], Outbox: [0, 0], Drafts: [0, 0], Trash: [1, 1] })
      await v.remove(b)
      await v.remove(c)
      const expected = { Inbox: [2, 1], Sent: [0, 0], Outbox: [0, 0], Drafts: [0, 0], Trash: [0, 0] }
      assert.deepEqual(await count(), expected)
      await v.close()
      const again = makeVault({ dir, passphraseKdf: TEST_KDF, recoveryKdf: TEST_KDF })
      await again.open()
      await again.unlock({ passphrase: TEST_PASSPHRASE })
      assert.deepEqual(Object.fromEntries([...(await again.counts())].map(([f, x]) => [f, [x.total, x.unread]])), expected)
      await again.close()
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})

describe('Vault.thread', () => {
  let dir: string
  let v: Vault
  const at: Record<string, string> = {}
  before(async () => {
    ({ dir, v } = await tempVault())
    at.root = (await v.add(letter('Sent', 1))).meta.id
    at.other = (await v.add(letter('Inbox', 2))).meta.id
    at.reply1 = (await v.add(letter('Inbox', 3, ['In-Reply-To: <m1@x.onion>']))).meta.id
    at.reply2 = (await v.add(letter('Sent', 4, ['In-Reply-To: <m3@x.onion>', 'References: <m1@x.onion>\r\n <m3@x.onion>']))).meta.id
    // Replies to a message this vault never had.
    at.orphan1 = (await v.add(letter('Inbox', 5, ['References: <gone@elsewhere>']))).meta.id
    at.orphan2 = (await v.add(letter('Inbox', 6, ['In-Reply-To: <gone@elsewhere>']))).meta.id
  })
  after(async () => { await v.close(); await rm(dir, { recursive: true, force: true }) })

  it('finds the root and its replies across Inbox and Sent, oldest first, from any member', async () => {
    const expected = [at.root, at.reply1, at.reply2]
    for (const member of expected) assert.deepEqual(ids(await v.thread(member!)), expected)
    const got = await v.thread(at.reply2!)
    assert.deepEqual(got.map(m => m.folder), ['Sent', 'Inbox', 'Sent'])
    assert.deepEqual(got.map(m => m.thread), ['m1@x.onion', 'm1@x.onion', 'm1@x.onion'])
    assert.equal(v.threadSize('m1@x.onion'), 3)
  })

  it('groups replies whose root is unknown, and leaves a lone message alone', async () => {
    assert.deepEqual(ids(await v.thread(at.orphan2!)), [at.orphan1, at.orphan2])
    assert.equal(v.threadSize('gone@elsewhere'), 2)
    assert.deepEqual(ids(await v.thread(at.other!)), [at.other])
    assert.equal(v.threadSize('m2@x.onion'), 1)
    assert.equal(v.threadSize(''), 0)
    assert.deepEqual(await v.thread('0000000000009999'), [])
  })

  it('follows moves (Trash included) and removals, and is rebuilt at unlock', async () => {
    await v.move(at.reply1!, 'Trash')
    assert.deepEqual(ids(await v.thread(at.root!)), [at.root, at.reply1, at.reply2])
    await v.remove(at.reply1!)
    assert.deepEqual(ids(await v.thread(at.root!)), [at.root, at.reply2])
    assert.equal(v.threadSize('m1@x.onion'), 2)
    await v.lock()
    assert.equal(v.threadSize('m1@x.onion'), 0)
    await v.unlock({ passphrase: TEST_PASSPHRASE })
    assert.deepEqual(ids(await v.thread(at.reply2!)), [at.root, at.reply2])
    assert.deepEqual(ids(await v.thread(at.orphan1!)), [at.orphan1, at.orphan2])
  })
})

describe('Vault: header summary in the metadata record', () => {
  it('keeps subject, From, Date and thread, through a lock and for mail filed from arrivals', async () => {
    const { dir, v } = await tempVault()
    try {
      const raw = Buffer.from('From: =?utf-8?Q?Ren=C3=A9?= <r@x.onion>\r\nSubject: =?ISO-8859-1?Q?caf=E9?=\r\nDate: Fri, 21 Nov 1997 09:55:06 -0600\r\nMessage-ID: <s1@x.onion>\r\nReferences: <root@x.onion>\r\n\r\nhello\r\n')
      const summary = { subject: 'caf\u00e9', headerFrom: 'Ren\u00e9 <r@x.onion>', date: Date.UTC(1997, 10, 21, 15, 55, 6), thread: 'root@x.onion' }
      const unlockedAdd = (await v.add({ folder: 'Inbox', raw, from: 'r@x.onion', to: ['me@y.onion'], messageId: 's1@x.onion' })).meta
      assert.deepEqual({ subject: unlockedAdd.subject, headerFrom: unlockedAdd.headerFrom, date: unlockedAdd.date, thread: unlockedAdd.thread }, summary)
      await v.lock()
      const raw2 = Buffer.from(raw.toString('latin1').replace('s1@x.onion', 's2@x.onion'), 'latin1')
      const lockedId = (await v.add({ folder: 'Inbox', raw: raw2, from: 'r@x.onion', to: ['me@y.onion'], messageId: 's2@x.onion' })).meta.id
      const noHeaders = (await v.add({ folder: 'Inbox', raw: Buffer.from('just text'), from: '', to: ['me@y.onion'] })).meta.id
      await v.unlock({ passphrase: TEST_PASSPHRASE })
      for (const id of [unlockedAdd.id, lockedId]) {
        const meta = await v.get(id)
        assert.deepEqual({ subject: meta?.subject, headerFrom: meta?.headerFrom, date: meta?.date, thread: meta?.thread }, summary)
      }
      const { raw: _raw, ...withoutBody } = (await v.get(lockedId))!
      assert.deepEqual(await v.meta(lockedId), withoutBody)
      assert.equal(await v.meta('0000000000009999'), undefined)
      const bare = await v.get(noHeaders)
      assert.deepEqual([bare?.subject, bare?.headerFrom, bare?.thread, 'date' in bare!], ['', '', '', false])
      assert.deepEqual(ids(await v.thread(lockedId)), [unlockedAdd.id, lockedId]) // filed arrivals join threads
      await v.close()
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})

describe('Vault: Drafts and Trash', () => {
  it('stores, moves and keeps them, also for mail filed from arrivals', async () => {
    const { dir, v } = await tempVault()
    try {
      const draft = (await v.add(letter('Drafts', 1))).meta.id
      const trashed = (await v.add(letter('Inbox', 2))).meta.id
      await v.move(trashed, 'Trash')
      await v.lock()
      const lockedDraft = (await v.add(letter('Drafts', 3))).meta
      assert.equal(lockedDraft.folder, 'Drafts')
      await v.close()
      const again = makeVault({ dir, passphraseKdf: TEST_KDF, recoveryKdf: TEST_KDF })
      await again.open()
      await again.unlock({ passphrase: TEST_PASSPHRASE })
      assert.deepEqual(ids(await again.list('Drafts')), [draft, lockedDraft.id])
      assert.deepEqual(ids(await again.list('Trash')), [trashed])
      assert.deepEqual(await again.list('Inbox'), [])
      assert.equal((await again.add(letter('Trash', 2))).duplicate, true)
      assert.equal((await again.get(draft))?.raw.toString().includes('body 1'), true)
      await again.close()
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})

describe('Vault.emptyFolder', () => {
  it('removes every message of the folder in batches of 500, and nothing else', async () => {
    const { dir, v } = await tempVault()
    try {
      const kept = (await v.add(letter('Inbox', 0))).meta.id
      await Promise.all(Array.from({ length: 510 }, async (_, i) => await v.add({ ...letter('Trash', i + 1), flags: i % 2 === 0 ? ['\\Seen'] : [] })))
      // A page is capped at 500 however many are asked for.
      const big = await v.page('Trash', { limit: 10_000 })
      assert.equal(big.messages.length, 500)
      assert.ok(big.nextBefore !== undefined)
      assert.equal((await v.page('Trash', { limit: 500, before: big.nextBefore })).messages.length, 10)
      const commit = (v as unknown as { commit: { batches: number } }).commit
      const batchesBefore = commit.batches
      assert.equal(await v.emptyFolder('Trash'), 510)
      assert.equal(commit.batches - batchesBefore, 2)
      assert.deepEqual(await v.list('Trash'), [])
      assert.deepEqual((await v.counts()).get('Trash'), { total: 0, unread: 0 })
      assert.deepEqual(ids(await v.list('Inbox')), [kept])
      assert.equal(await v.emptyFolder('Trash'), 0)
      // Their Message-IDs are forgotten too: the same message can be put there again.
      assert.equal((await v.add(letter('Trash', 1))).duplicate, false)
      await v.lock()
      await v.unlock({ passphrase: TEST_PASSPHRASE })
      assert.equal((await v.list('Trash')).length, 1)
      await v.close()
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})

describe('Vault.checkSecret', () => {
  it('accepts the right passphrase and recovery code, unlocked or locked, and never unlocks', async () => {
    const { dir, v, recoveryCode } = await tempVault()
    try {
      await v.checkSecret({ passphrase: TEST_PASSPHRASE })
      await v.checkSecret({ recoveryCode })
      assert.equal(v.state(), 'unlocked')
      await v.lock()
      await v.checkSecret({ passphrase: TEST_PASSPHRASE })
      assert.equal(v.state(), 'locked')
      await v.close()
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('refuses a wrong secret with WrongSecretError, throttles as unlock does, and a right one resets', async () => {
    const { dir, v } = await tempVault()
    try {
      for (let i = 0; i < 3; i++) {
        await assert.rejects(v.checkSecret({ passphrase: 'not the passphrase' }), (err: Error) =>
          err instanceof WrongSecretError && err instanceof VaultError && err.name === 'WrongSecretError' && err.message === 'Wrong passphrase.')
      }
      assert.equal(v.state(), 'unlocked')
      // The throttle is shared with unlock: neither may try now.
      await assert.rejects(v.checkSecret({ passphrase: TEST_PASSPHRASE }), (err: Error) =>
        err instanceof UnlockThrottledError && err.name === 'UnlockThrottledError' && (err as UnlockThrottledError).retryAfterSeconds === 1)
      await v.lock()
      await assert.rejects(v.unlock({ passphrase: TEST_PASSPHRASE }), UnlockThrottledError)
      await new Promise(resolve => setTimeout(resolve, 1100))
      await v.checkSecret({ passphrase: TEST_PASSPHRASE })
      assert.equal(v.unlockDelaySeconds(), 0)
      assert.equal(v.state(), 'locked')
      // Reset by the success: three more wrong ones before the throttle starts again.
      await assert.rejects(v.checkSecret({ recoveryCode: 'AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA' }), { name: 'WrongSecretError', message: 'Wrong recovery code.' })
      assert.equal(v.unlockDelaySeconds(), 0)
      await v.unlock({ passphrase: TEST_PASSPHRASE })
      await v.close()
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})

describe('Vault.setFlag', () => {
  it('adds and removes one flag; two changes at once both stay', async () => {
    const { dir, v } = await tempVault()
    try {
      const { meta } = await v.add(letter('Inbox', 1))
      await Promise.all([v.setFlag(meta.id, '\\Seen', true), v.setFlag(meta.id, '\\Flagged', true), v.setFlag(meta.id, '$Label', true)])
      assert.deepEqual((await v.meta(meta.id))!.flags.sort(), ['$Label', '\\Flagged', '\\Seen'])
      await Promise.all([v.setFlag(meta.id, '\\Seen', false), v.setFlag(meta.id, '\\Flagged', true)])
      assert.deepEqual((await v.meta(meta.id))!.flags.sort(), ['$Label', '\\Flagged'])
      await assert.rejects(v.setFlag('0000000000009999', '\\Seen', true), /No message/)
    } finally {
      await v.close()
      await rm(dir, { recursive: true, force: true })
    }
  })
})

describe('Vault.indexingProgress', () => {
  it('counts the messages waiting for the search index, and is back to nothing when it has caught up', async () => {
    const { dir, v } = await tempVault()
    try {
      await Promise.all(Array.from({ length: 40 }, async (_, n) => await v.add(letter('Inbox', n + 1))))
      // Counted since the indexer was last idle (it may have finished the first ones already).
      const during = v.indexingProgress()
      assert.ok(during.total > 30 && during.done < during.total, JSON.stringify(during))
      await v.searchReady()
      assert.deepEqual(v.indexingProgress(), { done: 0, total: 0 })
      assert.equal((await v.search('letter')).length, 40)
    } finally {
      await v.close()
      await rm(dir, { recursive: true, force: true })
    }
  })
})
