// The IMAP backup as the owner uses it (issue 6, "IMAP backup"): a node configured with
// backup.imap against a real Dovecot, started by `smtorp start` on the private Tor network,
// sends two messages; `smtorp backup` puts them on the account; the node is stopped;
// `smtorp restore` brings it back into a new directory from the account and the passphrase
// alone; the restored node starts with the same onion address and holds the same messages.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, execFile, type ChildProcess } from 'node:child_process'
import { promisify } from 'node:util'
import { mkdtemp, rm, readFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parse, stringify } from 'yaml'
import { sharedTorNetwork, type PrivateTorNetwork, type TorClient } from './harness/tor-network.ts'
import { waitFor } from './harness/nodes.ts'
import { missingDovecotPrerequisites, startDovecot, type DovecotInstance } from './harness/dovecot.ts'
import { openTestVault, testPassphraseFile } from './harness/vault.ts'
import { FOLDERS } from '../node/store/mail-store.ts'
import { BackupScheduler, rememberInVault, type LastBackup } from '../node/backup/scheduler.ts'
import { configFromObject, ConfigError } from '../node/config/index.ts'
import { silentLogger } from '../node/log/index.ts'
import { TargetRefusedError, TargetUnavailableError, type BackupReport } from '../node/backup/index.ts'

const run = promisify(execFile)
const CLI = join(import.meta.dirname, '..', 'node', 'cli', 'main.ts')
const missing = missingDovecotPrerequisites()
const skip = missing.length > 0 ? missing.join('; ') : false
const IMAP_USER = 'owner'
const IMAP_PASS = 'owner imap password'

async function smtorp (...args: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', CLI, ...args], { timeout: 30_000 })
    return { code: 0, stdout, stderr }
  } catch (err) {
    const e = err as { code: number, stdout: string, stderr: string }
    return { code: e.code, stdout: e.stdout, stderr: e.stderr }
  }
}

/** `smtorp start` in the background; resolves with the child and its submission port once it runs. */
async function startNode (dir: string, address: string): Promise<{ child: ChildProcess, port: number }> {
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'start', '--data', dir, '--passphrase-file', await testPassphraseFile()], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout!.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr!.on('data', (d: Buffer) => { err += d.toString() })
  const port = Number(await waitFor(`the node in ${dir} to start`, () => {
    if (child.exitCode !== null) throw new Error(`the node exited: ${err}`)
    return new RegExp(`smtorp is running: ${address.replace(/\./g, '\\.')}\\n\\s+submission port 127\\.0\\.0\\.1:(\\d+)`).exec(out)?.[1]
  }, 30_000, 100))
  return { child, port }
}

async function stopNode (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return
  const exited = new Promise(resolve => child.once('exit', resolve))
  child.kill('SIGTERM')
  await Promise.race([exited, new Promise(resolve => setTimeout(resolve, 15_000).unref())])
  if (child.exitCode === null) { child.kill('SIGKILL'); await exited }
}

async function vaultMessageIds (vaultDir: string): Promise<string[]> {
  const { vault } = await openTestVault(vaultDir)
  try {
    const ids: string[] = []
    for (const folder of FOLDERS) for (const m of await vault.list(folder)) ids.push(`${folder} ${m.messageId ?? '?'}`)
    return ids.sort()
  } finally {
    await vault.close()
  }
}

let root: string
let dovecot: DovecotInstance | undefined
let network: PrivateTorNetwork | undefined
let client: TorClient | undefined
const children: ChildProcess[] = []

describe('smtorp backup and smtorp restore with an IMAP account', { skip, timeout: 120_000 }, () => {
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'smtorp-imap-backup-cli-'))
    dovecot = await startDovecot({ users: [{ user: IMAP_USER, pass: IMAP_PASS }] })
    network = await sharedTorNetwork()
    client = await network.startClient('imap-backup-cli-test')
  })
  after(async () => {
    for (const child of children) await stopNode(child)
    await client?.stop()
    await network?.stop()
    await dovecot?.stop()
    await rm(root, { recursive: true, force: true })
  })

  it('backs a running node up on demand, restores it into a new directory, and the restored node starts with the same address and mail', async () => {
    const dir = join(root, 'alice')
    const made = await smtorp('init', '--user', 'alice', '--data', dir, '--passphrase-file', await testPassphraseFile())
    assert.equal(made.code, 0, made.stderr)
    const address = /your address: (alice@[a-z2-7]{56}\.onion)/.exec(made.stdout)![1]!
    const config = parse(await readFile(join(dir, 'config.yaml'), 'utf8')) as Record<string, unknown>
    await writeFile(join(dir, 'config.yaml'), stringify({
      ...config,
      tor: { mode: 'attach', controlPort: client!.controlPort, cookieFile: client!.cookieFile, socksPort: client!.socksPort },
      submission: { port: 0 },
      ui: { port: 0 },
      backup: { imap: { host: dovecot!.host, port: dovecot!.port, security: 'plain', user: IMAP_USER, password: IMAP_PASS, everyMinutes: 0, afterNewMailSeconds: 0, viaTor: false } },
      log: { level: 'warn' }
    }))

    const started = await startNode(dir, address)
    children.push(started.child)
    // `smtorp send` reads the submission port from config; point it at the one the node picked.
    await writeFile(join(dir, 'config.yaml'), stringify({ ...parse(await readFile(join(dir, 'config.yaml'), 'utf8')), submission: { port: started.port } }))
    const ghost = 'ghost@2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion' // valid, not on this network
    for (const n of [1, 2]) {
      const sent = await smtorp('send', '--data', dir, '--to', ghost, '--subject', `backed up ${n}`, '--body', `message ${n}`)
      assert.equal(sent.code, 0, sent.stderr)
    }

    const backup = await smtorp('backup', '--data', dir, '--json')
    assert.equal(backup.code, 0, backup.stderr + backup.stdout)
    const result = JSON.parse(backup.stdout) as LastBackup
    assert.equal(result.ok, true, backup.stdout)
    assert.ok(result.report!.messages >= 2, backup.stdout)
    assert.equal(result.report!.uploaded + result.report!.kept, result.report!.messages)
    const again = await smtorp('backup', '--data', dir)
    assert.equal(again.code, 0, again.stderr)
    assert.match(again.stdout, new RegExp(`messages\\s+${result.report!.messages}\\nuploaded\\s+0 `))
    const status = await smtorp('status', '--data', dir)
    assert.match(status.stdout, new RegExp(`backup\\s+last \\S+: ${result.report!.messages} messages \\(0 uploaded\\) onto imap ${IMAP_USER}@`))
    assert.doesNotMatch(status.stdout + status.stderr, new RegExp(IMAP_PASS))
    await stopNode(started.child)
    const original = await vaultMessageIds(join(dir, 'vault'))
    assert.equal(original.length, result.report!.messages)

    // The restore, from the account and the passphrase alone.
    const passwordFile = join(root, 'imap-password')
    await writeFile(passwordFile, `${IMAP_PASS}\n`, { mode: 0o600 })
    const restoredDir = join(root, 'alice-restored')
    const restored = await smtorp('restore', '--imap-host', dovecot!.host, '--imap-port', String(dovecot!.port), '--imap-user', IMAP_USER,
      '--imap-password-file', passwordFile, '--imap-insecure', '--data', restoredDir, '--passphrase-file', await testPassphraseFile())
    assert.equal(restored.code, 0, restored.stderr + restored.stdout)
    assert.equal(/your address: (\S+)/.exec(restored.stdout)?.[1], address)
    assert.match(restored.stdout, new RegExp(`messages:\\s+${original.length} restored of ${original.length}`))
    assert.match(restored.stdout, /damaged:\s+none/)

    // A restore into a directory that is not empty writes nothing and says why.
    const refused = await smtorp('restore', '--imap-host', dovecot!.host, '--imap-port', String(dovecot!.port), '--imap-user', IMAP_USER,
      '--imap-password-file', passwordFile, '--imap-insecure', '--data', restoredDir, '--passphrase-file', await testPassphraseFile())
    assert.equal(refused.code, 1)
    assert.match(refused.stderr, /is not empty/)

    const back = await startNode(restoredDir, address)
    children.push(back.child)
    const backStatus = await smtorp('status', '--data', restoredDir)
    assert.match(backStatus.stdout, new RegExp(`address\\s+${address.replace(/\./g, '\\.')}`))
    assert.match(backStatus.stdout, /vault\s+unlocked/)
    await stopNode(back.child)
    assert.deepEqual(await vaultMessageIds(join(restoredDir, 'vault')), original)
  })
})

describe('backup.imap in config.yaml', () => {
  it('fills the defaults and refuses what is missing or wrong, naming the key', () => {
    assert.deepEqual(configFromObject('/d', {}).backup, {})
    assert.deepEqual(configFromObject('/d', { backup: { imap: { host: 'imap.example.net', user: 'u', password: 'p' } } }).backup.imap, {
      host: 'imap.example.net', port: 993, security: 'tls', user: 'u', password: 'p', folder: 'smtorp-backup', everyMinutes: 60, afterNewMailSeconds: 300, viaTor: true
    })
    const bad: Array<[unknown, RegExp]> = [
      [{ imap: { host: 'h', user: 'u' } }, /backup\.imap\.password is required/],
      [{ imap: { host: 'h', user: 'u', password: 'p', security: 'ssl' } }, /backup\.imap\.security must be one of tls, starttls, plain/],
      [{ imap: { host: 'h', user: 'u', password: 'p', port: 0 } }, /backup\.imap\.port must be a whole number/],
      [{ imap: { host: 'h', user: 'u', password: 'p', everyMinutes: -1 } }, /backup\.imap\.everyMinutes/],
      [{ imap: { host: 'h', user: 'u', password: 'p', viaTor: 'yes' } }, /backup\.imap\.viaTor/],
      [{ imap: { host: 'h', user: 'u', password: 'p', folder: 'a*' } }, /backup\.imap\.folder/],
      [{ s3: {} }, /unknown setting backup\.s3/]
    ]
    for (const [backup, message] of bad) {
      assert.throws(() => configFromObject('/d', { backup }), (err: Error) => err instanceof ConfigError && message.test(err.message) && !err.message.includes('"p"'))
    }
  })
})

describe('the backup scheduler', () => {
  const report: BackupReport = { messages: 3, uploaded: 1, uploadedBytes: 10, kept: 2, deleted: 0, deletedBytes: 0, metadataBytes: 5, records: 1 }

  it('runs one backup at a time, keeps the last result, and a failure neither throws nor stops later runs', async () => {
    let calls = 0
    let fail = false
    let release: () => void = () => {}
    const scheduler = new BackupScheduler({ everyMinutes: 0, afterNewMailMs: 0, description: 'test' }, {
      logger: silentLogger(),
      ready: () => true,
      run: async () => { calls++; await new Promise<void>(resolve => { release = resolve }); if (fail) throw new Error('The server is gone.'); return report }
    })
    scheduler.start()
    const first = scheduler.backupNow()
    const joined = scheduler.backupNow()
    await new Promise(resolve => setImmediate(resolve))
    assert.equal(scheduler.inProgress(), true)
    release()
    assert.equal(await first, await joined)
    assert.equal(calls, 1)
    assert.deepEqual(scheduler.last()?.report, report)
    fail = true
    const failed = scheduler.backupNow()
    await new Promise(resolve => setImmediate(resolve))
    release()
    assert.deepEqual([(await failed).ok, (await failed).error], [false, 'The server is gone.'])
    assert.equal(scheduler.last()?.ok, false)
    await scheduler.stop()
  })

  it('tries a backup that failed for a passing reason again by itself, sooner than the period and backing off; a refusal waits', async () => {
    const runs: number[] = []
    let outcome: 'unreachable' | 'refused' | 'ok' = 'unreachable'
    let ready = true
    const scheduler = new BackupScheduler({ everyMinutes: 60, afterNewMailMs: 0, description: 'test', retryFirstMs: 40 }, {
      logger: silentLogger(),
      ready: () => ready,
      run: async () => {
        runs.push(Date.now())
        if (outcome === 'unreachable') throw new TargetUnavailableError('the IMAP server at h:143 cannot be reached (GREETING_TIMEOUT); the backup will try again later')
        if (outcome === 'refused') throw new TargetRefusedError('the IMAP server at h:143 refused the login of u')
        return report
      }
    })
    scheduler.start()
    try {
      const first = await scheduler.backupNow()
      assert.equal(first.ok, false)
      assert.ok(first.retryAt !== undefined && Date.parse(first.retryAt) - Date.parse(first.finishedAt) < 1000, `retried soon: ${first.retryAt}`)
      await waitFor('two retries', () => runs.length >= 3 || undefined, 5_000, 5)
      // 40 ms, then 80 ms: each wait twice the one before.
      const waits = [runs[1]! - runs[0]!, runs[2]! - runs[1]!]
      assert.ok(waits[0]! >= 35 && waits[1]! >= 75 && waits[1]! > waits[0]!, `backing off: ${waits.join(', ')} ms`)
      outcome = 'ok'
      await waitFor('the retry that works', () => scheduler.last()?.ok === true || undefined, 5_000, 5)
      const afterSuccess = runs.length
      await new Promise(resolve => setTimeout(resolve, 400))
      assert.equal(runs.length, afterSuccess, 'no more retries once it worked')

      // A refusal is not retried: nothing changes until the owner corrects the settings. It
      // also ends the backing off, and the retry an earlier failure had asked for.
      outcome = 'unreachable'
      await scheduler.backupNow()
      outcome = 'refused'
      const refused = await scheduler.backupNow()
      assert.equal(refused.ok, false)
      assert.equal(refused.retryAt, undefined)
      await new Promise(resolve => setTimeout(resolve, 200))
      assert.equal(runs.length, afterSuccess + 2)
      outcome = 'unreachable'
      const again = await scheduler.backupNow()
      assert.ok(Date.parse(again.retryAt!) - Date.parse(again.finishedAt) < 60, `backing off from the start: ${again.retryAt}`)
      // A retry that falls due while the vault is locked waits for the unlock, and status no
      // longer promises it.
      ready = false
      await new Promise(resolve => setTimeout(resolve, 150))
      assert.equal(runs.length, afterSuccess + 3, 'no run while locked')
      assert.equal(scheduler.last()?.retryAt, undefined)
      ready = true
      // And a retry still pending when the node stops never runs, nor is it promised.
      await scheduler.backupNow()
      assert.ok(scheduler.last()?.retryAt !== undefined)
      const atStop = runs.length
      await scheduler.stop()
      assert.equal(scheduler.last()?.retryAt, undefined)
      await new Promise(resolve => setTimeout(resolve, 200))
      assert.equal(runs.length, atStop)
    } finally {
      await scheduler.stop()
    }
  })

  it('remembers the last successful backup across a restart, in a vault record, and not a failed one', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'smtorp-scheduler-'))
    const { vault } = await openTestVault(dir)
    try {
      let fail = false
      const make = (): BackupScheduler => new BackupScheduler({ everyMinutes: 0, afterNewMailMs: 0, description: 'test' }, {
        logger: silentLogger(), ready: () => false, remember: rememberInVault(vault, 'test'),
        run: async () => { if (fail) throw new Error('The server is gone.'); return report }
      })
      const first = make()
      const done = await first.backupNow()
      fail = true
      assert.equal((await first.backupNow()).ok, false)
      const afterRestart = make()
      assert.equal(afterRestart.lastSuccess(), undefined)
      afterRestart.afterUnlock()
      const deadline = Date.now() + 5_000
      while (afterRestart.lastSuccess() === undefined && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 10))
      assert.deepEqual(afterRestart.lastSuccess(), done)
    } finally {
      await vault.close()
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('backs up once after a burst of new mail, not while the vault is locked (but at the next unlock), and not after stop', async () => {
    let calls = 0
    let unlocked = false
    const scheduler = new BackupScheduler({ everyMinutes: 0, afterNewMailMs: 50, description: 'test' }, {
      logger: silentLogger(),
      ready: () => unlocked,
      run: async () => { calls++; return report }
    })
    scheduler.start()
    scheduler.newMail()
    await new Promise(resolve => setTimeout(resolve, 120))
    assert.equal(calls, 0, 'locked: skipped')
    unlocked = true
    scheduler.afterUnlock()
    await new Promise(resolve => setTimeout(resolve, 20))
    assert.equal(calls, 1, 'the backup missed while locked is made at the unlock')
    for (let i = 0; i < 5; i++) scheduler.newMail()
    await new Promise(resolve => setTimeout(resolve, 120))
    assert.equal(calls, 2, 'one backup for the burst')
    scheduler.afterUnlock()
    await new Promise(resolve => setTimeout(resolve, 20))
    assert.equal(calls, 2, 'a later unlock with nothing missed does not back up')
    await scheduler.stop()
    scheduler.newMail()
    await new Promise(resolve => setTimeout(resolve, 120))
    assert.equal(calls, 2)
  })
})
