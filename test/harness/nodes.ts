// Real smtorp nodes for tests, benchmarks and the demo: each with its own data directory and
// its own tor joining the private Tor network (or attached to a tor given in overrides).
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { stringify } from 'yaml'
import { configFromObject, CONFIG_FILE, type NodeConfig } from '../../node/config/index.ts'
import { createIdentity, type Identity } from '../../node/identity/index.ts'
import { createNode, type SmtorpNode } from '../../node/node.ts'
import { createLogger, silentLogger, type Logger } from '../../node/log/index.ts'
import { SmtpConnection, type RecipientResult } from '../../node/smtp-client/index.ts'
import { newMessageId, rfc5322Date } from '../../protocol/message.ts'
import type { PrivateTorNetwork } from './tor-network.ts'
import { openTestVault, TEST_PASSPHRASE, TEST_VAULT_SETTINGS } from './vault.ts'

export interface TestNode {
  name: string
  dir: string
  identity: Identity
  config: NodeConfig
  node: SmtorpNode
  /** Hand a message to the node's submission port, as a mail client would. */
  submit (to: string[], subject: string, body: string, headers?: string[]): Promise<{ results: RecipientResult[], raw: Buffer }>
  /** Start again on the same data directory (after stop()). */
  restart (): Promise<void>
  stop (): Promise<void>
  remove (): Promise<void>
}

/** Settings a test node uses unless overridden: fast retries, free ports, the private network. */
export function testSettings (network: PrivateTorNetwork | undefined, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    tor: network !== undefined ? { mode: 'own', extraTorrc: network.clientTorrc } : undefined,
    submission: { port: 0 },
    ui: { port: 0 },
    // Fast retries that still keep trying for about 5 minutes, longer than any test waits.
    queue: { retryDelaysMs: [2000, 3000, 5000, 5000, 10000, 10000, 15000, 20000, 30000, 30000, 60000, 60000, 60000], delayedNoticeAfterAttempts: 5 },
    log: { level: process.env.SMTORP_TEST_LOG ?? 'silent' },
    vault: TEST_VAULT_SETTINGS,
    ...overrides
  }
}

/**
 * Create a node directory as `smtorp init` does (identity, vault with TEST_PASSPHRASE) and
 * write its config.yaml from `settings`.
 */
export async function initNodeDir (name: string, settings: Record<string, unknown>): Promise<{ dir: string, identity: Identity }> {
  const dir = await mkdtemp(join(tmpdir(), `smtorp-${name}-`))
  const identity = await createIdentity(dir, name)
  await writeFile(join(dir, CONFIG_FILE), stringify({ user: name, ...settings }), { mode: 0o600 })
  const { vault } = await openTestVault(join(dir, 'vault'))
  await vault.close()
  return { dir, identity }
}

export async function startTestNode (name: string, settings: Record<string, unknown>, logger?: Logger): Promise<TestNode> {
  const { dir, identity } = await initNodeDir(name, settings)
  const config = configFromObject(dir, JSON.parse(JSON.stringify({ user: name, ...settings })))
  const log = logger ?? (config.log.level === 'silent' ? silentLogger() : createLogger({ level: config.log.level, destination: 2 }))
  let node = await createNode(config, log)
  await node.start({ unlock: { passphrase: TEST_PASSPHRASE } })
  const handle: TestNode = {
    name,
    dir,
    identity,
    config,
    get node () { return node },
    async submit (to, subject, body, headers = []) {
      const raw = Buffer.from([
        `From: ${name} <${identity.address}>`,
        `To: ${to.map(a => `<${a}>`).join(', ')}`,
        `Subject: ${subject}`,
        `Date: ${rfc5322Date(new Date())}`,
        `Message-ID: <${newMessageId(identity.domain)}>`,
        ...headers,
        '',
        body
      ].join('\r\n'))
      const socket = await SmtpConnection.dial('127.0.0.1', node.submissionPort(), 5000)
      const connection = await SmtpConnection.open(socket, { ehloName: 'localhost', timeoutMs: 30_000 })
      await connection.authPlain(name, identity.submissionPassword)
      const results = await connection.send({ from: identity.address, to, raw })
      await connection.quit()
      return { results, raw }
    },
    async restart () {
      node = await createNode(config, log)
      await node.start({ unlock: { passphrase: TEST_PASSPHRASE } })
    },
    async stop () { await node.stop() },
    async remove () { await rm(dir, { recursive: true, force: true }) }
  }
  return handle
}

/** Poll until `check` gives a value (not undefined/false), or fail after `timeoutMs`. */
export async function waitFor<T> (what: string, check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs: number, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await check()
    if (value !== undefined && value !== false) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, intervalMs))
  }
}
