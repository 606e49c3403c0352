// kill -9 of a running node (`smtorp start`) in the middle of a burst of 1,000 incoming
// messages from 20 peers: after a restart, every message that got a 250 is in the vault,
// byte for byte, and a scrub finds nothing wrong. Run once with the vault unlocked (mail
// sealed and sharded directly) and once locked (mail sealed to the arrival key, filed at unlock).
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { createServer } from 'node:net'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { sharedTorNetwork, type PrivateTorNetwork, type TorClient } from './harness/tor-network.ts'
import { initNodeDir, testSettings } from './harness/nodes.ts'
import { openTestVault, testPassphraseFile } from './harness/vault.ts'
import { SmtpConnection } from '../node/smtp-client/index.ts'
import { generateOnionKey, type OnionKey } from '../protocol/onion.ts'
import type { Identity } from '../node/identity/index.ts'

const CLI = join(import.meta.dirname, '..', 'node', 'cli', 'main.ts')
const MESSAGES = 1000
const PEERS = 20
const KILL_AFTER = 300

let network: PrivateTorNetwork
let client: TorClient
const children: ChildProcess[] = []

async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  await new Promise(resolve => server.close(resolve))
  return port
}

async function startNode (dir: string, unlocked: boolean): Promise<{ child: ChildProcess, submissionPort: number }> {
  const args = ['--import', 'tsx', CLI, 'start', '--data', dir, ...(unlocked ? ['--passphrase-file', await testPassphraseFile()] : [])]
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  children.push(child)
  let output = ''
  const submissionPort = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`smtorp start did not come up: ${output}`)), 60_000)
    child.stderr!.on('data', (d: Buffer) => { output += d.toString() })
    child.stdout!.on('data', (d: Buffer) => {
      output += d.toString()
      const port = /smtorp is running[\s\S]*submission port 127\.0\.0\.1:(\d+)/.exec(output)?.[1]
      if (port !== undefined) { clearTimeout(timer); resolve(Number(port)) }
    })
    child.once('exit', code => { clearTimeout(timer); reject(new Error(`smtorp start exited with ${code}: ${output}`)) })
  })
  return { child, submissionPort }
}

/** 20 peers send until MESSAGES are sent or the node dies; returns the messages that got a 250. */
async function burst (port: number, node: Identity, kill: () => void): Promise<Map<string, Buffer>> {
  const acked = new Map<string, Buffer>()
  let next = 0
  const run = Date.now().toString(36)
  async function peer (key: OnionKey): Promise<void> {
    const connection = await SmtpConnection.open(await SmtpConnection.dial('127.0.0.1', port, 5000), { ehloName: `${key.address}.onion`, timeoutMs: 10_000 })
    await connection.authOnion(key, node.onionKey.address)
    const from = `peer@${key.address}.onion`
    while (next < MESSAGES) {
      const n = next++
      const messageId = `burst-${run}-${n}@${key.address}.onion`
      const raw = Buffer.from(`From: <${from}>\r\nTo: <${node.address}>\r\nSubject: burst ${n}\r\nMessage-ID: <${messageId}>\r\n\r\n${`line ${n} of the burst\r\n`.repeat(1 + n % 50)}`)
      let ok = false
      try {
        ok = (await connection.send({ from, to: [node.address], raw }))[0]?.ok === true
      } catch {
        return // the node died under us: this message got no 250
      }
      if (ok) acked.set(messageId, raw)
      if (acked.size === KILL_AFTER) kill()
    }
    await connection.quit().catch(() => {})
  }
  await Promise.all(Array.from({ length: PEERS }, () => peer(generateOnionKey())))
  return acked
}

describe('vault crash safety: kill -9 during a burst of incoming mail', { timeout: 300_000 }, () => {
  before(async () => {
    network = await sharedTorNetwork()
    client = await network.startClient('vault-crash')
  })
  after(async () => {
    for (const child of children) child.kill('SIGKILL')
    await client?.stop()
    await network?.stop()
  })

  for (const unlocked of [true, false]) {
    it(`every message that got a 250 is there after restart (vault ${unlocked ? 'unlocked' : 'locked'})`, async () => {
      const port = await freePort()
      const made = await initNodeDir(unlocked ? 'grace' : 'heidi', testSettings(undefined, {
        tor: { mode: 'attach', controlPort: client.controlPort, cookieFile: client.cookieFile, socksPort: client.socksPort },
        smtpIn: { port, maxMessagesPerPeerPerMinute: 1_000_000, maxConnections: 64 },
        log: { level: 'warn' }
      }))
      try {
        const { child: first, submissionPort } = await startNode(made.dir, unlocked)
        if (!unlocked) {
          // Never unlocked since it started: the mail client is told to come back later.
          const client = await SmtpConnection.open(await SmtpConnection.dial('127.0.0.1', submissionPort, 5000), { ehloName: 'localhost', timeoutMs: 10_000 })
          await client.authPlain(made.identity.address.split('@')[0]!, made.identity.submissionPassword)
          await assert.rejects(client.send({ from: made.identity.address, to: [made.identity.address], raw: Buffer.from('Subject: x\r\n\r\nx\r\n') }), /451.*locked/)
          await client.quit().catch(() => {})
        }
        const exited = new Promise(resolve => first.once('exit', resolve))
        const acked = await burst(port, made.identity, () => { first.kill('SIGKILL') })
        await exited
        assert.ok(acked.size >= KILL_AFTER && acked.size < MESSAGES, `the kill came mid-burst (${acked.size} acknowledged)`)

        // The node starts cleanly on what kill -9 left, and goes on taking mail.
        const { child: second } = await startNode(made.dir, unlocked)
        const stopped = new Promise(resolve => second.once('exit', resolve))
        second.kill('SIGTERM')
        await stopped

        const { vault } = await openTestVault(join(made.dir, 'vault'))
        try {
          const byMessageId = new Map<string, string>()
          for (const meta of await vault.list('Inbox')) if (meta.messageId !== undefined) byMessageId.set(meta.messageId, meta.id)
          const missing = [...acked.keys()].filter(id => !byMessageId.has(id))
          assert.deepEqual(missing, [], `${missing.length} of ${acked.size} acknowledged messages are missing`)
          for (const [messageId, raw] of acked) {
            const stored = await vault.get(byMessageId.get(messageId)!)
            assert.ok(stored?.raw.subarray(stored.raw.length - raw.length).equals(raw), `message ${messageId} differs`)
          }
          const report = await vault.scrub()
          assert.equal(report.damagedShards, 0, JSON.stringify(report))
          assert.deepEqual(report.lost, [])
        } finally {
          await vault.close()
        }
      } finally {
        await rm(made.dir, { recursive: true, force: true })
      }
    })
  }
})
