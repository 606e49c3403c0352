// The node's backup into an IMAP account and the restore from that account alone (issue 6,
// must-hold "the same recovery from the IMAP account alone, against a real Dovecot started by
// the test set-up"; spec/backup.md part 2). A node directory as `smtorp init` makes it, with an
// OpenPGP key, a peer, settings and 60 messages (some 8-bit and binary), is backed up to a real
// Dovecot, 5 more messages go up incrementally, the directory is wiped, and the node comes
// back from the account and the passphrase: the same onion address, the same OpenPGP key,
// every message byte-identical in its folder with its flags. Then what must fail: a wrong
// passphrase restores nothing, a damaged blob is named and the rest restored. Last, the test
// vectors of spec/backup.md section 12, read from the spec itself.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createCipheriv, createHash, createHmac, hkdfSync } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ImapFlow } from 'imapflow'
import * as openpgp from 'openpgp'
import {
  backupKey, backupToTarget, blobAssociatedData, identityBlobName, imapBackupTarget, manifestBlobName, messageBlobName, openBlob,
  restoreFromTarget, KEY_SLOTS_BLOB, WrongBackupPassphraseError, type BackupTarget, type ImapTargetInit
} from '../node/backup/index.ts'
import { loadIdentity } from '../node/identity/index.ts'
import { silentLogger } from '../node/log/index.ts'
import { createOwnKey } from '../node/openpgp/index.ts'
import type { Folder } from '../node/store/mail-store.ts'
import type { Vault } from '../node/vault/index.ts'
import { missingDovecotPrerequisites, startDovecot, type DovecotInstance } from './harness/dovecot.ts'
import { initNodeDir } from './harness/nodes.ts'
import { openTestVault, TEST_KDF, TEST_PASSPHRASE } from './harness/vault.ts'

const missing = missingDovecotPrerequisites()
const skip = missing.length > 0 ? missing.join('; ') : false
const USER = 'alice'
const IMAP_PASS = 'alice imap password'
const FOLDER = 'smtorp-backup'
const VAULT_OPTIONS = { passphraseKdf: TEST_KDF, recoveryKdf: TEST_KDF }

interface Sample {
  folder: Folder
  raw: Buffer
  flags: string[]
  from: string
  to: string[]
  messageId: string
  /** Strings that must never appear on the IMAP server. */
  secrets: string[]
}

/** Message n: text, 8-bit (Latin-1 and UTF-8 bytes) or with every byte value in its body. */
function sample (n: number): Sample {
  const folders: Folder[] = ['Inbox', 'Sent', 'Trash']
  const folder = folders[n % 3]!
  const id = String(n).padStart(4, '0')
  const subject = `zqsubjectmarker${id}`
  const body = `zqbodymarker${id}`
  const from = `zqsender${id}@example.org`
  const messageId = `zqmessage${id}@example.org`
  const head = Buffer.from([
    `From: <${from}>`, `To: <zqrecipient${id}@example.net>`, `Subject: ${subject}`,
    'Date: Sun, 22 Nov 2026 10:00:00 +0000', `Message-ID: <${messageId}>`, '', ''
  ].join('\r\n'))
  let tail: Buffer
  if (n % 4 === 1) tail = Buffer.concat([Buffer.from(`${body} caf`), Buffer.from([0xe9, 0x20, 0xc3, 0xa9, 0xff, 0x00]), Buffer.from('\r\n')])
  else if (n % 4 === 2) tail = Buffer.concat([Buffer.from(`${body}\r\n`), Buffer.from(Array.from({ length: 256 }, (_, i) => i)), Buffer.from('\r\n')])
  else tail = Buffer.from(`${body}\r\nline two\r\n`)
  const flags = n % 5 === 0 ? [] : n % 5 === 1 ? ['\\Seen'] : n % 5 === 2 ? ['\\Seen', '\\Flagged'] : n % 5 === 3 ? ['\\Answered', '\\Seen', '$Label1'] : ['\\Draft']
  return { folder, raw: Buffer.concat([head, tail]), flags, from, to: [`zqrecipient${id}@example.net`], messageId, secrets: [subject, body, from, messageId] }
}

async function addSamples (vault: Vault, from: number, count: number): Promise<Sample[]> {
  const out: Sample[] = []
  for (let n = from; n < from + count; n++) {
    const s = sample(n)
    await vault.add({ folder: s.folder, raw: s.raw, flags: s.flags, from: s.from, to: s.to, messageId: s.messageId })
    out.push(s)
  }
  return out
}

/** Every message of the folder on the server, as the server holds it. */
async function serverSources (d: DovecotInstance): Promise<Buffer[]> {
  const client = new ImapFlow(d.clientOptions(USER, IMAP_PASS))
  await client.connect()
  const out: Buffer[] = []
  try {
    const lock = await client.getMailboxLock(FOLDER)
    try {
      for await (const m of client.fetch('1:*', { source: true })) if (m.source !== undefined) out.push(m.source)
    } finally {
      lock.release()
    }
  } finally {
    await client.logout()
  }
  return out
}

async function fingerprintOfRecord (vault: Vault): Promise<string> {
  const record = await vault.getRecord('openpgp', 'own-key')
  assert.ok(record !== undefined, 'the own-key record is there')
  const { armoredPrivateKey } = JSON.parse(record.toString('utf8')) as { armoredPrivateKey: string }
  return (await openpgp.readPrivateKey({ armoredKey: armoredPrivateKey })).getFingerprint()
}

describe('backup of a node into an IMAP account, and restore from that account alone', { skip }, () => {
  let dovecot: DovecotInstance
  let init: ImapTargetInit
  const targets: BackupTarget[] = []
  const dirs: string[] = []
  let source: { dir: string, onion: string, fingerprint: string, samples: Sample[], key: Buffer, records: Map<string, Buffer>, receivedAt: Map<string | undefined, number> }

  function target (): BackupTarget {
    const t = imapBackupTarget(init, { logger: silentLogger() })
    targets.push(t)
    return t
  }
  async function freshDir (): Promise<string> {
    const parent = await mkdtemp(join(tmpdir(), 'smtorp-restore-'))
    dirs.push(parent)
    return join(parent, 'node')
  }

  before(async () => {
    dovecot = await startDovecot({ users: [{ user: USER, pass: IMAP_PASS }] })
    init = { host: dovecot.host, port: dovecot.port, secure: false, doSTARTTLS: false, user: USER, pass: IMAP_PASS, folder: FOLDER }
  })

  after(async () => {
    for (const t of targets) await t.close().catch(() => {})
    await dovecot?.stop()
    for (const d of [...dirs, source?.dir]) if (d !== undefined) await rm(d, { recursive: true, force: true })
  })

  it('backs up a node with 60 messages, its OpenPGP key, a peer and settings', async () => {
    const { dir, identity } = await initNodeDir(USER, { user: USER })
    const { vault } = await openTestVault(join(dir, 'vault'))
    try {
      const own = await createOwnKey(vault, { addresses: [identity.address] })
      const peer = 'zqpeer@example.org'
      const records = new Map<string, Buffer>([
        ['openpgp\0peers', Buffer.from(JSON.stringify([peer]))],
        [`openpgp-peer\0${peer}`, Buffer.from(JSON.stringify({ address: peer, autocrypt: { lastSeen: 1 } }))],
        ['settings\0ui', Buffer.from(JSON.stringify({ autoLockMinutes: 5 }))]
      ])
      for (const [k, v] of records) await vault.putRecord(k.split('\0')[0]!, k.split('\0')[1]!, v)
      records.set('openpgp\0own-key', (await vault.getRecord('openpgp', 'own-key'))!)
      const samples = await addSamples(vault, 0, 60)
      const slots = JSON.parse(await readFile(join(dir, 'vault', 'key-slots.json'), 'utf8')) as { vaultId: string }
      const master = vault.exportMasterKeyForRecovery()
      const key = backupKey(master, Buffer.from(slots.vaultId, 'base64'))
      master.fill(0)
      source = { dir, onion: identity.domain, fingerprint: own.fingerprint, samples, key, records, receivedAt: new Map() }

      const report = await backupToTarget({ vault, dataDir: dir, target: target() })
      assert.equal(report.messages, 60)
      assert.equal(report.uploaded, 60)
      assert.equal(report.kept, 0)
      assert.equal(report.deleted, 0)
      assert.equal(report.records, 4)
      assert.equal((await target().list()).length, 63, '60 messages, the key slots, the identity and the manifest')
    } finally {
      await vault.close()
    }
  })

  it('a second backup uploads only the 5 new messages', async () => {
    const { vault } = await openTestVault(join(source.dir, 'vault'))
    try {
      source.samples.push(...await addSamples(vault, 60, 5))
      const report = await backupToTarget({ vault, dataDir: source.dir, target: target() })
      assert.equal(report.messages, 65)
      assert.equal(report.uploaded, 5)
      assert.equal(report.kept, 60)
      assert.equal(report.deleted, 0)
      for (const folder of ['Inbox', 'Sent', 'Trash'] as Folder[]) for (const m of await vault.list(folder)) source.receivedAt.set(m.messageId, m.receivedAt)
      // And a third, with nothing new, uploads no message.
      assert.equal((await backupToTarget({ vault, dataDir: source.dir, target: target() })).uploaded, 0)
    } finally {
      await vault.close()
    }
  })

  it('the IMAP server holds no plaintext: no subject, body, address, Message-ID, onion address or key', async () => {
    const sources = await serverSources(dovecot)
    assert.equal(sources.length, 68)
    const fingerprint = source.fingerprint.toLowerCase()
    const forbidden = [...source.samples.flatMap((s) => s.secrets), source.onion, source.onion.slice(0, 56), fingerprint, 'BEGIN PGP', 'zqpeer', 'autoLockMinutes']
    for (const raw of sources) {
      const text = raw.toString('latin1')
      // The blob itself, decoded, as well as the message the server stores.
      const decoded = Buffer.from(text.split('\r\n\r\n').slice(1).join('').replace(/\r\n/g, ''), 'base64').toString('latin1').toLowerCase()
      for (const secret of forbidden) {
        assert.ok(!text.toLowerCase().includes(secret.toLowerCase()), `the server's message holds "${secret}"`)
        assert.ok(!decoded.includes(secret.toLowerCase()), `a blob holds "${secret}"`)
      }
    }
  })

  it('restores from the IMAP account alone: the same onion address, OpenPGP key, records, and every message byte-identical with its flags', async () => {
    await rm(source.dir, { recursive: true, force: true })
    const dir = await freshDir()
    const progress: Array<[number, number]> = []
    const report = await restoreFromTarget({ target: target(), passphrase: TEST_PASSPHRASE, dataDir: dir, vault: VAULT_OPTIONS, logger: silentLogger(), onProgress: (done, total) => progress.push([done, total]) })
    assert.deepEqual(report.damaged, [])
    assert.equal(report.restored, 65)
    assert.equal(report.records, 4)
    assert.deepEqual(progress, Array.from({ length: 66 }, (_, n) => [n, 65]), 'progress counts every message once, in order')

    const identity = await loadIdentity(dir, USER)
    assert.equal(identity.domain, source.onion)
    assert.equal((await stat(dir)).mode & 0o777, 0o700)
    assert.equal((await stat(join(dir, 'identity'))).mode & 0o777, 0o700)
    for (const file of ['identity/onion.seed', 'submission.secret', 'config.yaml']) assert.equal((await stat(join(dir, file))).mode & 0o777, 0o600, file)

    const { vault } = await openTestVault(join(dir, 'vault'))
    try {
      assert.equal((await fingerprintOfRecord(vault)).toLowerCase(), source.fingerprint.toLowerCase())
      for (const [k, v] of source.records) assert.ok((await vault.getRecord(k.split('\0')[0]!, k.split('\0')[1]!))?.equals(v), `record ${k.replace('\0', '/')}`)
      for (const folder of ['Inbox', 'Sent', 'Trash'] as Folder[]) {
        const expected = source.samples.filter((s) => s.folder === folder)
        const stored = await vault.list(folder)
        assert.equal(stored.length, expected.length, folder)
        for (const s of expected) {
          const meta = stored.find((m) => m.messageId === s.messageId)
          assert.ok(meta !== undefined, `${s.messageId} in ${folder}`)
          assert.deepEqual([...meta.flags].sort(), [...s.flags].sort(), `flags of ${s.messageId}`)
          assert.equal(meta.from, s.from)
          assert.deepEqual(meta.to, s.to)
          assert.equal(meta.receivedAt, source.receivedAt.get(s.messageId), `receivedAt of ${s.messageId}`)
          assert.ok((await vault.get(meta.id))!.raw.equals(s.raw), `${s.messageId} is byte-identical`)
        }
      }
      // Messages are added many at a time, yet ids keep the order in which mail was received.
      const all = (await Promise.all((['Inbox', 'Sent', 'Trash'] as Folder[]).map(async f => await vault.list(f)))).flat().sort((a, b) => a.id.localeCompare(b.id))
      assert.equal(all.length, 65)
      assert.deepEqual(all.map(m => m.receivedAt), all.map(m => m.receivedAt).sort((a, b) => a - b), 'ids follow the received order')
      // The restored node names its messages as before: its first backup uploads none again.
      const again = await backupToTarget({ vault, dataDir: dir, target: target() })
      assert.equal(again.uploaded, 0)
      assert.equal(again.kept, 65)
    } finally {
      await vault.close()
    }
  })

  it('a wrong passphrase restores nothing and says so', async () => {
    const dir = await freshDir()
    await assert.rejects(restoreFromTarget({ target: target(), passphrase: 'not the passphrase', dataDir: dir, vault: VAULT_OPTIONS }), (err: Error) => {
      assert.ok(err instanceof WrongBackupPassphraseError)
      assert.match(err.message, /passphrase does not open this backup; nothing was restored/)
      return true
    })
    await assert.rejects(readdir(dir), { code: 'ENOENT' })
  })

  it('a message blob damaged on the server is reported by blob, folder and Message-ID, and the rest is restored', async () => {
    const victim = source.samples[7]!
    const name = messageBlobName(source.key, victim.raw)
    const t = target()
    const stored = await t.get(name)
    assert.ok(stored !== undefined)
    stored[stored.length - 20] = stored[stored.length - 20]! ^ 0x01
    await t.put(name, stored)

    const dir = await freshDir()
    const report = await restoreFromTarget({ target: target(), passphrase: TEST_PASSPHRASE, dataDir: dir, vault: VAULT_OPTIONS })
    assert.equal(report.restored, 64)
    assert.equal(report.damaged.length, 1)
    assert.equal(report.damaged[0]!.blob, name)
    assert.equal(report.damaged[0]!.folder, victim.folder)
    assert.equal(report.damaged[0]!.messageId, victim.messageId)
    assert.match(report.damaged[0]!.reason, /does not authenticate/)
    assert.equal((await loadIdentity(dir, USER)).domain, source.onion)
  })
})

// ---- spec/backup.md section 12 ----

function readBackupVectors (): Map<string, Map<string, string>> {
  const text = readFileSync(new URL('../spec/backup.md', import.meta.url), 'utf8')
  const block = /^```backup-vectors\n([\s\S]*?)^```$/m.exec(text)
  assert.ok(block !== null, 'spec/backup.md has a ```backup-vectors block')
  const sections = new Map<string, Map<string, string>>()
  let current: Map<string, string> | undefined
  for (const line of block[1]!.split('\n')) {
    if (line.trim() === '') continue
    const header = /^\[(.+)\]$/.exec(line)
    if (header !== null) sections.set(header[1]!, current = new Map())
    else {
      const field = /^(.+?): (.+)$/.exec(line)
      assert.ok(field !== null && current !== undefined, `a vector line: ${line}`)
      current.set(field[1]!, field[2]!)
    }
  }
  return sections
}

describe('spec/backup.md part 2 test vectors', () => {
  const vectors = readBackupVectors()
  const v = (section: string, name: string): string => {
    const value = vectors.get(section)?.get(name)
    assert.ok(value !== undefined, `[${section}] ${name} is in the spec`)
    return value
  }
  const hex = (section: string, name: string): Buffer => Buffer.from(v(section, name), 'hex')

  it('the backup key and the fixed names, from the code and from node:crypto directly', () => {
    const key = backupKey(hex('backup-key', 'master-key'), hex('backup-key', 'vault-id'))
    assert.equal(key.toString('hex'), v('backup-key', 'backup-key'))
    const direct = Buffer.from(hkdfSync('sha256', hex('backup-key', 'master-key'), hex('backup-key', 'vault-id'), Buffer.from('smtorp backup v1'), 32))
    assert.ok(direct.equals(key))
    assert.equal(manifestBlobName(key), v('backup-key', 'manifest-name'))
    assert.equal(identityBlobName(key), v('backup-key', 'identity-name'))
    const h = (x: string): string => createHmac('sha256', key).update(x).digest().subarray(0, 16).toString('hex')
    assert.equal(h('smtorp backup v1 manifest'), v('backup-key', 'manifest-name'))
    assert.equal(h('smtorp backup v1 identity'), v('backup-key', 'identity-name'))
    assert.equal(KEY_SLOTS_BLOB, '00')
  })

  it('a message: its name, associated data, and the sealed value opens to the raw bytes', () => {
    const key = hex('backup-key', 'backup-key')
    const raw = hex('message', 'raw')
    assert.equal(raw.toString('latin1'), 'Subject: hello\r\n\r\nhello, world\r\n')
    assert.equal(createHash('sha256').update(raw).digest('hex'), v('message', 'sha256'))
    const name = messageBlobName(key, raw)
    assert.equal(name, v('message', 'name'))
    assert.equal(blobAssociatedData('message', name).toString('hex'), v('message', 'aad'))
    const sealed = hex('message', 'sealed')
    assert.ok(openBlob(key, 'message', name, sealed).equals(raw))
    // The same value made with node:crypto and the nonce of the spec.
    const cipher = createCipheriv('aes-256-gcm', key, hex('message', 'nonce'))
    cipher.setAAD(hex('message', 'aad'))
    const body = Buffer.concat([cipher.update(raw), cipher.final()])
    assert.ok(Buffer.concat([Buffer.of(1), hex('message', 'nonce'), body, cipher.getAuthTag()]).equals(sealed))
    // Moved to another name or kind, it does not open.
    assert.throws(() => openBlob(key, 'message', v('backup-key', 'manifest-name'), sealed), { name: 'TamperError' })
    assert.throws(() => openBlob(key, 'manifest', name, sealed), { name: 'TamperError' })
  })
})
