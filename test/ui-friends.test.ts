// Friends, backups and recovery in the web UI, over HTTP against real nodes (issue "Friends",
// point 8). Four nodes on the private Tor network whose friends also dial each other directly
// on 127.0.0.1 (config friends.direct): alice invites bob through her UI and bob accepts in
// his, both list each other; with carol and dave as friends too, "Back up now" backs alice up
// onto them and the Backup page says nothing would be lost, then that one message would;
// appointing custodians needs the passphrase; bob, a custodian, sees a recovery request with
// its code and approves it (with the CSRF token). No page and no log line ever holds a share
// or the recovery kit.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { pino } from 'pino'
import { multiaddr } from '@multiformats/multiaddr'
import { sharedTorNetwork, type PrivateTorNetwork } from './harness/tor-network.ts'
import { startTestNode, testSettings, waitFor, type TestNode } from './harness/nodes.ts'
import { TEST_PASSPHRASE } from './harness/vault.ts'
import { createP2PHost, type P2PHost } from '../node/friends/p2p.ts'
import { request } from '../node/friends/rpc.ts'
import { RECOVERY_PROTOCOL } from '../node/recovery/custody.ts'
import { newRequestKeyPair, releaseCode } from '../node/recovery/release.ts'
import { backupToTarget, memoryBackupTarget } from '../node/backup/index.ts'
import { backupFragment } from '../ui/views/backup.ts'
import { UiClient } from './harness/ui-client.ts'

const unescape = (text: string): string => text.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&#39;/g, '\'').replace(/&#96;/g, '`').replace(/&amp;/g, '&')

/** The part of the Friends page about the friend with this onion. */
function friendArticle (page: string, onion: string): string {
  const found = /<article class="friend"[^>]*>[\s\S]*?<\/article>/g
  for (const m of page.matchAll(found)) if (m[0].includes(`data-onion="${onion}"`)) return m[0]
  assert.fail(`no entry for ${onion} on the Friends page`)
}

function testId (page: string, id: string): string {
  const m = new RegExp(`data-testid="${id}"[^>]*>([^<]*)<`).exec(page)
  assert.ok(m !== null, `the page shows ${id}`)
  return unescape(m[1]!)
}

function message (n: number): Buffer {
  return Buffer.from([`From: Carol <carol@example.org>`, 'To: owner@example.org', `Subject: Note ${n}`, `Message-ID: <friends-note-${n}@example.org>`, `Date: ${new Date().toUTCString()}`, '', `Body of note ${n}.`, ''].join('\r\n'))
}

describe('friends, backups and recovery in the web UI', { timeout: 300_000 }, () => {
  let network: PrivateTorNetwork
  let alice: TestNode, bob: TestNode, carol: TestNode, dave: TestNode
  let aliceUi: UiClient, bobUi: UiClient, carolClient: UiClient
  const carolUi = (): UiClient => carolClient
  const logLines: string[] = []
  let asker: P2PHost | undefined

  const friendsOf = (n: TestNode) => n.node.friends!
  const direct = (n: TestNode): string => friendsOf(n).directAddress()!
  const onion = (n: TestNode): string => n.identity.onionKey.address

  /** Makes `a` and `b` friends (a invites, b accepts); `a` learns b's direct address as a LAN set-up would. */
  async function befriend (a: TestNode, b: TestNode): Promise<void> {
    const { code } = await friendsOf(a).invite({ quotaMiB: 64 })
    await friendsOf(b).accept(code, { quotaMiB: 64 })
    await friendsOf(a).book.update(onion(b), { dial: direct(b) })
  }

  before(async () => {
    network = await sharedTorNetwork()
    // Every log line of every node is kept: none may carry a share or the kit.
    const logger = pino({ level: 'debug', base: undefined }, { write (line: string) { logLines.push(line) } })
    // No backup by the clock or after new mail: only "Back up now" runs one here.
    const settings = testSettings(network, { friends: { direct: true, everyMinutes: 0, afterNewMailSeconds: 0, auditEveryMinutes: 0 } })
    ;[alice, bob, carol, dave] = await Promise.all(['alice', 'bob', 'carol', 'dave'].map(async name => await startTestNode(name, settings, logger))) as [TestNode, TestNode, TestNode, TestNode]
    for (let n = 0; n < 5; n++) await alice.node.store.add({ folder: 'Inbox', raw: message(n), from: 'carol@example.org', to: [alice.identity.address] })
    aliceUi = new UiClient(alice.node.ui!.url())
    bobUi = new UiClient(bob.node.ui!.url())
    carolClient = new UiClient(carol.node.ui!.url())
    for (const client of [aliceUi, bobUi, carolClient]) {
      assert.equal((await client.signIn()).status, 303)
      await client.get('/friends') // the session's CSRF token
    }
  })

  after(async () => {
    await Promise.resolve(asker?.stop()).catch(() => {})
    await Promise.allSettled([alice, bob, carol, dave].map(async n => await n?.stop()))
    await Promise.allSettled([alice, bob, carol, dave].map(async n => await n?.remove()))
    await network?.stop()
  })

  it('the nav names the three pages, and a node without friends says so', async () => {
    const page = (await aliceUi.get('/friends')).body
    for (const [href, label] of [['/friends', 'Friends'], ['/backup', 'Backup'], ['/recovery', 'Recovery']]) assert.match(page, new RegExp(`<a href="${href}"[^>]*>${label}</a>`))
    assert.match(page, /data-testid="no-friends"/)
  })

  let code = ''
  it('an invite shows its text and its QR code', async () => {
    const made = await aliceUi.post('/friends/invite', { quotaMiB: '64' }, { headers: { 'hx-request': 'true' } })
    assert.equal(made.status, 200)
    assert.doesNotMatch(made.body, /<html/, 'htmx gets the fragment only')
    code = unescape(/<pre class="invite-code" id="invite-code">([^<]+)<\/pre>/.exec(made.body)?.[1] ?? '')
    assert.ok(code.length > 40, 'the invite text is shown')
    assert.match(made.body, /<div class="qr"><svg role="img" aria-label="QR code of the invite" [^>]*>[\s\S]*<path[\s\S]*<\/svg><\/div>/)
    assert.doesNotMatch(made.body, /<script/i)
    // Without htmx: the whole page, with the invite in it.
    const page = await aliceUi.post('/friends/invite', { quotaMiB: '64' })
    assert.equal(page.status, 200)
    assert.match(page.body, /<html[\s\S]*id="invite-code"[\s\S]*<svg role="img"/)
    const wrong = await aliceUi.post('/friends/invite', { quotaMiB: 'lots' }, { headers: { 'hx-request': 'true' } })
    assert.match(wrong.body, /notice error[\s\S]*whole number of MiB/)
  })

  it('accepting the invite in another node\'s UI makes both list each other', async () => {
    const accepted = await bobUi.post('/friends/accept', { code, quotaMiB: '128' })
    assert.equal(accepted.status, 303, accepted.body)
    const bobsPage = (await bobUi.get('/friends')).body
    assert.match(bobsPage, /alice is now your friend\./)
    const atBob = friendArticle(bobsPage, onion(alice))
    assert.match(atBob, /<h3>alice<\/h3>/)
    assert.match(testId(atBob, 'holds-of-ours'), /of 64\.0 MiB they offered/)
    assert.match(testId(atBob, 'we-hold'), /of 128\.0 MiB you offer/)
    const atAlice = friendArticle((await aliceUi.get('/friends')).body, onion(bob))
    assert.match(atAlice, /<h3>bob<\/h3>/)
    assert.match(testId(atAlice, 'holds-of-ours'), /of 128\.0 MiB they offered/)
    assert.match(testId(atAlice, 'we-hold'), /^0 B, of 64\.0 MiB you offer/)
    assert.match(testId(atAlice, 'last-seen'), /^\d{4}-\d\d-\d\d \d\d:\d\d UTC$/)
    assert.equal(testId(atAlice, 'audits'), 'Not audited yet.')
    // The same invite works once.
    const again = await carolUi().post('/friends/accept', { code, quotaMiB: '64' })
    assert.equal(again.status, 400)
    assert.match(again.body, /notice error/)
    await friendsOf(alice).book.update(onion(bob), { dial: direct(bob) })
  })

  it('the storage offered to a friend can be changed', async () => {
    const changed = await aliceUi.post(`/friends/${onion(bob)}/quota`, { quotaMiB: '96' })
    assert.equal(changed.status, 303)
    assert.match(testId(friendArticle((await aliceUi.get('/friends')).body, onion(bob)), 'we-hold'), /of 96\.0 MiB you offer/)
    assert.equal((await aliceUi.post(`/friends/${onion(bob)}/quota`, { quotaMiB: '-3' })).status, 400)
  })

  it('with three friends, "Back up now" completes and nothing would be lost; a new message would be', async () => {
    const before = (await aliceUi.get('/backup')).body
    assert.match(testId(before, 'at-risk'), /No backup has completed since the node started: all 5 messages would be lost\./)
    assert.match(before, /A backup on friends needs 3 friends who offer storage; you have 1\./)
    await befriend(alice, carol)
    await befriend(alice, dave)
    const started = await aliceUi.post('/backup/run', {}, { headers: { 'hx-request': 'true' } })
    assert.equal(started.status, 200)
    assert.match(started.body, /^<div id="backup-live"/)
    const done = await waitFor('the backup to finish', async () => {
      const live = (await aliceUi.get('/live/backup')).body
      return /data-testid="friends-state">Idle/.test(live) ? live : undefined
    }, 120_000, 250)
    assert.doesNotMatch(done, /hx-trigger="every 2s"/, 'the page stops polling once the backup is done')
    assert.doesNotMatch(done, /data-testid="friends-failed"/)
    assert.match(testId(done, 'friends-last'), /: 5 messages backed up; 5 new messages uploaded \([\d.]+ (B|KiB)\)\./)
    assert.match(testId(done, 'at-risk'), /^Nothing would be lost: every message is in the last backup/)
    // The friends now hold shards of alice's backup.
    const friendsPage = (await aliceUi.get('/friends')).body
    for (const f of [bob, carol, dave]) assert.match(testId(friendArticle(friendsPage, onion(f)), 'holds-of-ours'), /^[\d.]+ (B|KiB) in [1-9]\d* shards/)
    assert.match(testId(friendArticle((await bobUi.get('/friends')).body, onion(alice)), 'we-hold'), /^[\d.]+ (B|KiB), of/)
    await alice.node.store.add({ folder: 'Inbox', raw: message(99), from: 'carol@example.org', to: [alice.identity.address] })
    assert.match(testId((await aliceUi.get('/backup')).body, 'at-risk'), /^1 message would be lost: it arrived after the last backup started/)
  })

  it('a backup reports its progress, and the Backup page shows it as a bar that polls', async () => {
    const seen: Array<[number, number]> = []
    await backupToTarget({ vault: alice.node.vault, dataDir: alice.dir, target: memoryBackupTarget(), onProgress: (done, total) => seen.push([done, total]) })
    assert.deepEqual(seen.at(-1), [6, 6])
    assert.ok(seen.every(([done, total], i) => total === 6 && done <= total && (i === 0 || done >= seen[i - 1]![0])), 'progress only grows, towards the total')
    const running = backupFragment({ friends: { description: 'your friends', running: true, progress: { done: 2, total: 6 }, friends: 3, needed: 3, auditing: false } }, 'token').value
    assert.match(running, /hx-trigger="every 2s"/)
    assert.match(running, /<progress max="100" value="33" aria-label="Backing up to your friends">33%<\/progress> <span>2 of 6<\/span>/)
    assert.match(running, /id="backup-now" disabled/)
    const retrying = backupFragment({ friends: { description: 'your friends', running: false, friends: 3, needed: 3, auditing: false, last: { startedAt: Date.UTC(2026, 10, 23, 4, 0), finishedAt: Date.UTC(2026, 10, 23, 4, 1), ok: false, error: 'none of the friends could be reached', retryAt: Date.UTC(2026, 10, 23, 4, 3) } } }, 'token').value
    assert.match(testId(retrying, 'friends-failed'), /^Failed 2026-11-23 04:01 UTC: none of the friends could be reached\. Next try, by itself: 2026-11-23 04:03 UTC\.$/)
  })

  it('"Audit friends now" audits them and the Friends page says how it went', async () => {
    const started = await aliceUi.post('/backup/audit', {})
    assert.equal(started.status, 303)
    const done = await waitFor('the audit to finish', async () => {
      const page = (await aliceUi.get('/backup')).body
      return /data-testid="last-audit">\d{4}/.test(page) ? page : undefined
    }, 60_000, 250)
    assert.match(testId(done, 'last-audit'), / were intact, 0 failed, 0 replaced\.$/)
    const audits = testId(friendArticle((await aliceUi.get('/friends')).body, onion(bob)), 'audits')
    assert.match(audits, /^All \d+ shard checks passed\./)
  })

  it('appointing custodians asks for the passphrase again', async () => {
    const chosen = [onion(bob), onion(carol), onion(dave)]
    const page = (await aliceUi.get('/recovery')).body
    assert.match(page, /data-testid="no-custodians"/)
    for (const f of chosen) assert.match(page, new RegExp(`name="custodian" value="${f}"`))
    const none = await aliceUi.post('/recovery/appoint', { custodian: chosen, threshold: '2' })
    assert.equal(none.status, 400)
    assert.match(none.body, /Enter your passphrase to appoint custodians\./)
    const wrong = await aliceUi.post('/recovery/appoint', { custodian: chosen, threshold: '2', passphrase: 'not the passphrase' })
    assert.equal(wrong.status, 400)
    assert.match(wrong.body, /The passphrase is wrong; nothing was changed\./)
    assert.equal(await friendsOf(alice).custody.custodians(), undefined)
    const tooMany = await aliceUi.post('/recovery/appoint', { custodian: chosen, threshold: '4', passphrase: TEST_PASSPHRASE })
    assert.equal(tooMany.status, 400)
    assert.match(tooMany.body, /between 2 and 3/)
    const appointed = await aliceUi.post('/recovery/appoint', { custodian: chosen, threshold: '2', passphrase: TEST_PASSPHRASE })
    assert.equal(appointed.status, 303, appointed.body)
    const shown = (await aliceUi.get('/recovery')).body
    assert.match(shown, /Any 2 of these 3 friends can together give you back your key/)
    for (const name of ['bob', 'carol', 'dave']) assert.match(shown, new RegExp(`<td>${name}</td><td>\\d of 3</td>`))
    // Checking them: each proves it holds its share.
    assert.equal((await aliceUi.post('/recovery/check', {})).status, 303)
    const checked = await waitFor('the custodians to be checked', async () => {
      const p = (await aliceUi.get('/recovery')).body
      return (p.match(/OK, holds its share/g) ?? []).length === 3 ? p : undefined
    }, 60_000, 250)
    assert.doesNotMatch(checked, /Checking the custodians…/)
    // Bob's node shows the share it holds for alice: who and since when.
    const atBob = (await bobUi.get('/recovery')).body
    assert.match(atBob, /Shares you hold for friends[\s\S]*<td>alice <span class="muted onion">/)
  })

  it('a custodian sees a recovery request with its code and approves it in the UI, with the CSRF token', async () => {
    const keys = await newRequestKeyPair()
    asker = await createP2PHost({ onionSeed: randomBytes(32), listen: { host: '127.0.0.1', port: 0 }, direct: true })
    const answer = await request(asker, multiaddr(direct(bob)), RECOVERY_PROTOCOL, { op: 'request', owner: onion(alice), publicKey: keys.publicKey.toString('base64') })
    const id = answer.header.id as string
    const page = await waitFor('the request on bob\'s page', async () => {
      const p = (await bobUi.get('/recovery')).body
      return p.includes('data-testid="release-code"') ? p : undefined
    }, 10_000)
    assert.equal(testId(page, 'release-code'), releaseCode(keys.publicKey))
    assert.match(page, /Someone asks for alice's recovery share/)
    assert.match(page, /Approve only after the person asking has read you this same code/)
    // The polled fragment shows it too.
    assert.match((await bobUi.get('/live/recovery/requests')).body, new RegExp(releaseCode(keys.publicKey)))
    const forged = await bobUi.post(`/recovery/requests/${id}/approve`, {}, { csrf: false })
    assert.equal(forged.status, 403)
    assert.equal(friendsOf(bob).custody.recoveryRequests()[0]!.state, 'pending')
    const approved = await bobUi.post(`/recovery/requests/${id}/approve`, {})
    assert.equal(approved.status, 303)
    assert.equal(friendsOf(bob).custody.recoveryRequests()[0]!.state, 'approved')
    const after = (await bobUi.get('/recovery')).body
    assert.match(after, /Approved: the share was sealed/)
    assert.match(after, /data-testid="no-requests"/)
    // The requester gets it sealed to its key.
    const polled = await request(asker, multiaddr(direct(bob)), RECOVERY_PROTOCOL, { op: 'poll', id })
    assert.equal(polled.header.state, 'approved')
  })

  it('removing a friend needs the confirmation, which says what happens to the shards', async () => {
    const page = (await aliceUi.get('/friends')).body
    assert.match(friendArticle(page, onion(dave)), /the shards of your backup on their node are placed on your other friends, and the shards of their backup on this node are deleted/)
    const unconfirmed = await aliceUi.post(`/friends/${onion(dave)}/remove`, {})
    assert.equal(unconfirmed.status, 400)
    assert.ok(friendsOf(alice).book.isFriend(onion(dave)))
    const removed = await aliceUi.post(`/friends/${onion(dave)}/remove`, { confirm: '1' })
    assert.equal(removed.status, 303)
    assert.equal(friendsOf(alice).book.isFriend(onion(dave)), false)
    assert.doesNotMatch((await aliceUi.get('/friends')).body, new RegExp(`data-onion="${onion(dave)}"`))
  })

  it('no page and no log line holds a share or the recovery kit', async () => {
    const held = (await friendsOf(bob).custody.held())[0]!
    assert.match(held.share, /^smtorp-share-1:/)
    const kitPiece = held.kit.slice(0, 40)
    const everything = [...aliceUi.pages, ...bobUi.pages, ...carolUi().pages, ...logLines]
    assert.ok(aliceUi.pages.length > 10 && logLines.length > 10)
    for (const text of everything) {
      assert.doesNotMatch(text, /smtorp-share-1:/)
      assert.equal(text.includes(kitPiece), false, 'the kit is never shown or logged')
      assert.equal(text.includes(held.share.slice(16, 60)), false)
    }
    // Nor the invite text in a log line.
    for (const line of logLines) assert.equal(line.includes(code), false)
  })
})
