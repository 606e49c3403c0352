// The smtorp command line as a user runs it: init, a config mistake, start, send, status, queue.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, execFile, type ChildProcess } from 'node:child_process'
import { promisify } from 'node:util'
import { mkdtemp, readdir, rm, stat, readFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as openpgp from 'openpgp'
import { parse, stringify } from 'yaml'
import { sharedTorNetwork, type PrivateTorNetwork, type TorClient } from './harness/tor-network.ts'
import { waitFor } from './harness/nodes.ts'
import { publicKeyFromOnionAddress } from '../protocol/onion.ts'
import { openTestVault, testPassphraseFile, TEST_PASSPHRASE } from './harness/vault.ts'

const run = promisify(execFile)
const CLI = join(import.meta.dirname, '..', 'node', 'cli', 'main.ts')

async function smtorp (dir: string, ...args: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  // init and start read the passphrase from a file, as a script would.
  if (['init', 'start', 'unlock'].includes(args[0]!)) args.push('--passphrase-file', await testPassphraseFile())
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', CLI, ...args, '--data', dir], { timeout: 30_000 })
    return { code: 0, stdout, stderr }
  } catch (err) {
    const e = err as { code: number, stdout: string, stderr: string }
    return { code: e.code, stdout: e.stdout, stderr: e.stderr }
  }
}

let root: string
let network: PrivateTorNetwork
let client: TorClient
let child: ChildProcess | undefined

describe('smtorp command line', { timeout: 180_000 }, () => {
  before(async () => { root = await mkdtemp(join(tmpdir(), 'smtorp-cli-')) })
  after(async () => {
    child?.kill('SIGTERM')
    await client?.stop()
    await network?.stop()
    await rm(root, { recursive: true, force: true })
  })

  it('init creates a node with a stable onion address, private files and a vault, and refuses to overwrite it', async () => {
    const dir = join(root, 'erin')
    const made = await smtorp(dir, 'init', '--user', 'erin')
    assert.equal(made.code, 0, made.stderr)
    // The recovery code is printed once, in eight groups of four.
    assert.match(made.stdout, /shown this once:\n\n {4}([A-Z2-7]{4}-){7}[A-Z2-7]{4}\n/)
    assert.equal((await stat(join(dir, 'vault', 'key-slots.json'))).mode & 0o777, 0o600)
    for (const inside of [['shards', 'FORMAT'], ['shards', 'c00'], ['index', 'CURRENT']]) {
      assert.equal((await stat(join(dir, 'vault', ...inside))).mode & 0o077, 0, `${inside.join('/')} is private`)
    }
    assert.doesNotMatch(await readFile(join(dir, 'vault', 'key-slots.json'), 'utf8'), new RegExp(TEST_PASSPHRASE))
    const address = /your address: (erin@([a-z2-7]{56})\.onion)/.exec(made.stdout)
    assert.ok(address, made.stdout)
    assert.equal(publicKeyFromOnionAddress(address[2]!).length, 32)
    assert.equal((await stat(join(dir, 'identity', 'onion.seed'))).mode & 0o777, 0o600)
    assert.equal((await stat(join(dir, 'submission.secret'))).mode & 0o777, 0o600)
    assert.equal((await stat(dir)).mode & 0o077, 0)
    const config = await readFile(join(dir, 'config.yaml'), 'utf8')
    assert.match(config, /^user: erin$/m)
    assert.match(config, /# Mail to ordinary \(non-onion\) addresses/) // the comments survive
    const again = await smtorp(dir, 'init', '--user', 'erin')
    assert.equal(again.code, 1)
    assert.match(again.stderr, /already holds a node/)
  })

  it('a config mistake stops start with a message naming the key', async () => {
    const dir = join(root, 'erin')
    const config = parse(await readFile(join(dir, 'config.yaml'), 'utf8')) as Record<string, unknown>
    await writeFile(join(dir, 'config.yaml'), stringify({ ...config, queue: { concurency: 3 } }))
    const result = await smtorp(dir, 'start')
    assert.equal(result.code, 1)
    assert.match(result.stderr, /unknown setting queue\.concurency/)
  })

  it('a web UI configured beyond loopback without allowNonLoopback stops start, saying why', async () => {
    const dir = join(root, 'erin')
    const config = parse(await readFile(join(dir, 'config.yaml'), 'utf8')) as Record<string, unknown>
    await writeFile(join(dir, 'config.yaml'), stringify({ ...config, queue: undefined, ui: { host: '0.0.0.0', port: 0 } }))
    const refused = await smtorp(dir, 'start')
    assert.equal(refused.code, 1)
    assert.match(refused.stderr, /ui\.host is 0\.0\.0\.0, which is not a loopback address[\s\S]*allowNonLoopback: true/)
    assert.doesNotMatch(refused.stderr, /unexpected error|at .*\.ts:/)
  })

  it('init --ui-host writes a UI host and allows it beyond loopback explicitly', async () => {
    const dir = join(root, 'judy')
    assert.equal((await smtorp(dir, 'init', '--user', 'judy', '--submission-host', '0.0.0.0', '--ui-host', '0.0.0.0')).code, 0)
    const config = parse(await readFile(join(dir, 'config.yaml'), 'utf8')) as { ui: Record<string, unknown>, submission: Record<string, unknown> }
    assert.deepEqual([config.ui.host, config.ui.allowNonLoopback, config.submission.host], ['0.0.0.0', true, '0.0.0.0'])
  })

  it('init makes the OpenPGP key in the vault, for the onion address and the ordinary one given by --address', async () => {
    const dir = join(root, 'kate')
    const made = await smtorp(dir, 'init', '--user', 'kate', '--address', 'Kate@Example.org')
    assert.equal(made.code, 0, made.stderr)
    const fingerprint = /OpenPGP key: {2}((?:[0-9A-F]{4} ){9}[0-9A-F]{4})\n/.exec(made.stdout)
    assert.ok(fingerprint, made.stdout)
    assert.match(made.stdout, /sending as: {3}kate@example\.org/)
    const config = parse(await readFile(join(dir, 'config.yaml'), 'utf8')) as { openpgp: Record<string, unknown> }
    assert.equal(config.openpgp.address, 'kate@example.org')
    // The key is in the vault's sealed records.
    const v = await openTestVault(join(dir, 'vault'))
    try {
      const record = JSON.parse((await v.vault.getRecord('openpgp', 'own-key'))!.toString()) as { armoredPrivateKey: string }
      const key = await openpgp.readPrivateKey({ armoredKey: record.armoredPrivateKey })
      assert.equal(key.getFingerprint().toUpperCase(), fingerprint[1]!.replace(/ /g, ''))
      assert.deepEqual(key.users.map(u => u.userID?.email).sort(), ['kate@example.org', /your address: (kate@[a-z2-7]{56}\.onion)/.exec(made.stdout)![1]!].sort())
    } finally {
      await v.vault.close()
    }
  })

  it('a node whose tor cannot run stops with a message saying why', async () => {
    const dir = join(root, 'ivan')
    assert.equal((await smtorp(dir, 'init', '--user', 'ivan')).code, 0)
    const config = parse(await readFile(join(dir, 'config.yaml'), 'utf8')) as Record<string, unknown>
    await writeFile(join(dir, 'config.yaml'), stringify({ ...config, tor: { mode: 'own', torBinary: '/nonexistent/tor' }, submission: { port: 0 }, ui: { port: 0 } }))
    const result = await smtorp(dir, 'start')
    assert.equal(result.code, 1)
    assert.match(result.stderr, /^smtorp: cannot run tor: .*ENOENT/m)
    assert.doesNotMatch(result.stderr, /unexpected error|at .*\.ts:/)
  })

  it('recover --ui refuses a data directory that is not empty, and ends at once on Ctrl-C while its tor is still starting', async () => {
    const used = join(root, 'used')
    await writeFile(join(root, 'marker'), '')
    const refused = await smtorp(root, 'recover', '--ui', '--tor-socks', '127.0.0.1:9')
    assert.equal(refused.code, 1)
    assert.match(refused.stderr, /is not empty; recovery writes only into a new, empty data directory/)
    assert.match((await smtorp(used, 'recover', '--ui', '--json')).stderr, /leave out --json and --passphrase-file/)

    // A tor that never gets going (it never writes its control port), first on PATH; the
    // command's temporary files go to a directory of the test's own.
    const fake = await mkdtemp(join(tmpdir(), 'smtorp-fake-tor-'))
    const temp = await mkdtemp(join(tmpdir(), 'smtorp-recover-tmp-'))
    try {
      await writeFile(join(fake, 'tor'), `#!/bin/sh\necho $$ > '${join(fake, 'pid')}'\nexec sleep 300\n`, { mode: 0o755 })
      const waiting = spawn(process.execPath, ['--import', 'tsx', CLI, 'recover', '--ui', '--data', used],
        { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PATH: `${fake}:${process.env.PATH ?? ''}`, TMPDIR: temp } })
      let out = ''
      waiting.stdout.on('data', (d: Buffer) => { out += d.toString() })
      waiting.stderr.on('data', (d: Buffer) => { out += d.toString() })
      const exited = new Promise<number | null>(resolve => waiting.on('exit', resolve))
      const url = await waitFor('the page address', () => /http:\/\/127\.0\.0\.1:\d+\/\?key=\S+/.exec(out)?.[0], 30_000)
      const torPid = Number(await waitFor('the fake tor to start', async () => (await readFile(join(fake, 'pid'), 'utf8').catch(() => '')).trim(), 30_000))
      assert.equal((await fetch(url, { redirect: 'manual' })).status, 303, 'the page answers')
      const asked = Date.now()
      waiting.kill('SIGINT')
      assert.equal(await exited, 1, `nothing was recovered: ${out}`)
      assert.ok(Date.now() - asked < 5_000, 'it ends at once, without waiting for tor')
      await assert.rejects(fetch(url), 'the page is gone')
      // Gone, or a zombie that init has yet to reap (the command that spawned it has exited).
      const gone = async (): Promise<boolean> => await readFile(`/proc/${torPid}/stat`, 'utf8').then(stat => / Z /.test(stat.slice(stat.lastIndexOf(')'))), () => true)
      assert.ok(await waitFor('the fake tor to be stopped', async () => await gone(), 5_000).catch(() => false), 'its tor is stopped')
      assert.deepEqual((await readdir(temp)).filter(f => f.startsWith('smtorp')), [], 'its temporary files are removed (tsx keeps its cache there too)')
    } finally {
      await rm(fake, { recursive: true, force: true })
      await rm(temp, { recursive: true, force: true })
    }
  })

  it('status without a running node says so', async () => {
    const result = await smtorp(join(root, 'erin'), 'status')
    assert.equal(result.code, 1)
    assert.match(result.stderr, /the node is not running/)
  })

  it('start, send to an unreachable onion, and see it in status and queue', async () => {
    network = await sharedTorNetwork()
    client = await network.startClient('cli-test')
    const dir = join(root, 'frank')
    assert.equal((await smtorp(dir, 'init', '--user', 'frank')).code, 0)
    const config = parse(await readFile(join(dir, 'config.yaml'), 'utf8')) as Record<string, unknown>
    await writeFile(join(dir, 'config.yaml'), stringify({
      ...config,
      tor: { mode: 'attach', controlPort: client.controlPort, cookieFile: client.cookieFile, socksPort: client.socksPort },
      submission: { port: 0 },
      ui: { port: 0 },
      log: { level: 'warn' }
    }))
    child = spawn(process.execPath, ['--import', 'tsx', CLI, 'start', '--data', dir, '--passphrase-file', await testPassphraseFile()], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout!.on('data', (d: Buffer) => { out += d.toString() })
    const port = Number(await waitFor('the node to start', () => /submission port 127\.0\.0\.1:(\d+)/.exec(out)?.[1], 60_000))
    // `smtorp send` reads the port from config; point it at the one the node picked.
    await writeFile(join(dir, 'config.yaml'), stringify({ ...parse(await readFile(join(dir, 'config.yaml'), 'utf8')), submission: { port } }))
    const nowhere = `nobody@${'a'.repeat(52)}aaad.onion`
    const invalid = await smtorp(dir, 'send', '--to', nowhere, '--subject', 'x', '--body', 'x')
    assert.equal(invalid.code, 1)
    assert.match(invalid.stdout, /refused .*Bad recipient address/)
    const ghost = 'ghost@2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion' // valid, not on this network
    const sent = await smtorp(dir, 'send', '--to', ghost, '--subject', 'hello', '--body', 'are you there?')
    assert.equal(sent.code, 0, sent.stderr)
    assert.match(sent.stdout, /queued\s+ghost@/)
    const queue = await waitFor('the first attempt to fail', async () => { const q = await smtorp(dir, 'queue'); return /delayed\s+ghost@/.test(q.stdout) && q.stdout }, 60_000, 500)
    assert.match(queue, /\d+ attempts?, (next try|trying now since)/)
    assert.match(queue, /last: .*(onion|Tor)/i)
    const status = await smtorp(dir, 'status')
    assert.match(status.stdout, /tor\s+running \(attach\)/)
    // The web UI's address, with the secret path kept in the data directory, in the startup
    // output and in status.
    const uiKey = (await readFile(join(dir, 'web-ui.key'), 'utf8')).trim()
    assert.match(uiKey, /^[\w-]{22}$/)
    assert.equal(((await stat(join(dir, 'web-ui.key'))).mode & 0o777), 0o600)
    const uiAddress = new RegExp(`web UI\\s+(http://127\\.0\\.0\\.1:\\d+/s/${uiKey}/)\\n`)
    const printed = uiAddress.exec(out)?.[1]
    assert.ok(printed !== undefined, `the startup output names the web UI under its secret path: ${out}`)
    assert.equal(uiAddress.exec(status.stdout)?.[1], printed)
    assert.equal((await fetch(`${printed}unlock`)).status, 200)
    assert.equal((await fetch(`${new URL(printed).origin}/unlock`)).status, 404)
    assert.match(status.stdout, /queue\s+1 message\(s\) waiting/)

    // A whole message on standard input is sent as it is (signed; its Message-ID names the
    // sender's domain, so it is kept).
    const messageId = `stdin-${Date.now()}@x.onion`
    const piped = spawn(process.execPath, ['--import', 'tsx', CLI, 'send', '--to', ghost, '--data', dir], { stdio: ['pipe', 'pipe', 'pipe'] })
    let pipedOut = ''
    piped.stdout!.on('data', (d: Buffer) => { pipedOut += d.toString() })
    piped.stdin!.end(`From: <frank@x.onion>\r\nTo: <${ghost}>\r\nSubject: from stdin\r\nMessage-ID: <${messageId}>\r\n\r\nbody\r\n`)
    assert.equal(await new Promise(resolve => piped.once('exit', resolve)), 0)
    assert.match(pipedOut, /queued\s+ghost@/)
    const entries = JSON.parse((await smtorp(dir, 'queue', '--json')).stdout) as Array<{ messageId?: string }>
    assert.ok(entries.some(e => e.messageId === messageId), JSON.stringify(entries))

    // Locked after the first unlock, the node still takes mail from the mail client and keeps
    // sending; only reading needs the passphrase.
    assert.match((await smtorp(dir, 'status')).stdout, /vault\s+unlocked/)
    assert.equal((await smtorp(dir, 'lock')).code, 0)
    assert.match((await smtorp(dir, 'status')).stdout, /vault\s+locked/)
    const whileLocked = await smtorp(dir, 'send', '--to', ghost, '--subject', 'x', '--body', 'x')
    assert.equal(whileLocked.code, 0, whileLocked.stderr)
    assert.match(whileLocked.stdout, /queued\s+ghost@/)
    assert.match((await smtorp(dir, 'status')).stdout, /queue\s+3 message\(s\) waiting/)
    const unlocked = await smtorp(dir, 'unlock')
    assert.equal(unlocked.code, 0, unlocked.stderr)
    assert.match((await smtorp(dir, 'status')).stdout, /vault\s+unlocked/)
    const scrub = await smtorp(dir, 'scrub')
    assert.equal(scrub.code, 0, scrub.stderr)
    assert.match(scrub.stdout, /checked\s+\d+ objects/)
    assert.match(scrub.stdout, /lost\s+nothing/)

    // A new passphrase: the old one stops working, the new one unlocks; a wrong one says so.
    const newFile = join(root, 'new-passphrase')
    await writeFile(newFile, 'a brand new passphrase\n', { mode: 0o600 })
    const changed = await smtorp(dir, 'passwd', '--passphrase-file', newFile)
    assert.equal(changed.code, 0, changed.stderr)
    assert.equal((await smtorp(dir, 'lock')).code, 0)
    const old = await smtorp(dir, 'unlock')
    assert.equal(old.code, 1)
    assert.match(old.stderr, /^smtorp: Wrong passphrase\.$/m)
    const fresh = await run(process.execPath, ['--import', 'tsx', CLI, 'unlock', '--data', dir, '--passphrase-file', newFile], { timeout: 30_000 })
    assert.match(fresh.stdout, /The vault is unlocked/)
  })
})
