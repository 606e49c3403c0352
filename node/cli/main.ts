// smtorp command line: init | start | run | send | status | queue | retry
import { parseArgs } from 'node:util'
import { homedir, userInfo } from 'node:os'
import { join, resolve } from 'node:path'
import { existsSync } from 'node:fs'
import { loadConfig, CONFIG_FILE, ConfigError } from '../config/index.ts'
import { createIdentity, loadIdentity, IdentityError } from '../identity/index.ts'
import { createLogger } from '../log/index.ts'
import { createNode, type NodeStatus, type QueueStatusEntry } from '../node.ts'
import { askNode, ControlError } from '../control/index.ts'
import { TorServiceError } from '../tor/index.ts'
import { QueueError } from '../queue/index.ts'
import { SmtpConnection, SmtpClientError } from '../smtp-client/index.ts'
import { newMessageId, rfc5322Date } from '../../protocol/message.ts'

const USAGE = `smtorp: a peer-to-peer mail node (SMTP over Tor onion services)

usage: smtorp <command> [--data DIR] [options]

  init   [--user NAME] [--submission-host ADDR]
                              create a node: onion key, config, submission password
  start                       run the node in the foreground (Ctrl-C stops it)
  run    [--user NAME]        init if needed, then start
  send   --to ADDR [--to ADDR...] [--subject S] [--body TEXT | < message.eml]
                              send mail through the running node's submission port
  status                      what the node is doing: tor, onion, queue
  queue                       messages waiting for delivery, per recipient
  retry                       try every waiting recipient now

--data DIR defaults to $SMTORP_DATA or ~/.smtorp
`

function fail (message: string): never {
  process.stderr.write(`smtorp: ${message}\n`)
  process.exit(1)
}

async function main (): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      data: { type: 'string' },
      user: { type: 'string' },
      'submission-host': { type: 'string' },
      to: { type: 'string', multiple: true },
      subject: { type: 'string' },
      body: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' }
    }
  })
  const command = positionals[0]
  if (values.help === true || command === undefined) {
    process.stdout.write(USAGE)
    return
  }
  const dataDir = resolve(values.data ?? process.env.SMTORP_DATA ?? join(homedir(), '.smtorp'))
  const user = values.user ?? (userInfo().username.toLowerCase().replace(/[^a-z0-9._-]/g, '') || 'me')

  switch (command) {
    case 'init': return await init(dataDir, user, values['submission-host'])
    case 'start': return await start(dataDir)
    case 'run':
      if (!existsSync(join(dataDir, CONFIG_FILE))) await init(dataDir, user, values['submission-host'])
      return await start(dataDir)
    case 'send': return await send(dataDir, values.to ?? [], values.subject, values.body)
    case 'status': return print(await askNode(join(dataDir, 'control.sock'), { command: 'status' }) as NodeStatus, values.json === true, formatStatus)
    case 'queue': return print(await askNode(join(dataDir, 'control.sock'), { command: 'queue' }) as QueueStatusEntry[], values.json === true, formatQueue)
    case 'retry':
      await askNode(join(dataDir, 'control.sock'), { command: 'retry' })
      process.stdout.write('every waiting recipient will be tried now\n')
      return
    default: fail(`unknown command "${command}"\n\n${USAGE}`)
  }
}

async function init (dataDir: string, user: string, submissionHost: string | undefined): Promise<void> {
  const identity = await createIdentity(dataDir, user, submissionHost !== undefined ? { settings: [[['submission', 'host'], submissionHost]] } : {})
  process.stdout.write(`Created a node in ${dataDir}\n  your address: ${identity.address}\n  submission:   port 2525, user "${user}", password in ${join(dataDir, 'submission.secret')}\n  settings:     ${join(dataDir, CONFIG_FILE)}\n`)
}

async function start (dataDir: string): Promise<void> {
  const config = await loadConfig(dataDir)
  const logger = createLogger({ level: config.log.level })
  const node = await createNode(config, logger)
  let stopping = false
  const stop = (signal: string): void => {
    if (stopping) return
    stopping = true
    logger.info({ signal }, 'stopping')
    node.stop().then(() => process.exit(0), err => { logger.error({ err: (err as Error).message }, 'stop failed'); process.exit(1) })
  }
  process.on('SIGINT', () => stop('SIGINT'))
  process.on('SIGTERM', () => stop('SIGTERM'))
  await node.start()
  process.stdout.write(`smtorp is running: ${node.identity.address}\n  submission port 127.0.0.1:${node.submissionPort()}\n`)
}

async function send (dataDir: string, to: string[], subject: string | undefined, body: string | undefined): Promise<void> {
  if (to.length === 0) fail('send needs at least one --to ADDRESS')
  const config = await loadConfig(dataDir)
  const identity = await loadIdentity(dataDir, config.user)
  let raw: Buffer
  if (body === undefined && !process.stdin.isTTY && subject === undefined) {
    raw = await readStdin()
  } else {
    const text = body ?? (process.stdin.isTTY ? '' : (await readStdin()).toString('utf8'))
    raw = Buffer.from([
      `From: <${identity.address}>`,
      `To: ${to.map(a => `<${a}>`).join(', ')}`,
      `Subject: ${subject ?? ''}`,
      `Date: ${rfc5322Date(new Date())}`,
      `Message-ID: <${newMessageId(identity.domain)}>`,
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: 8bit',
      '',
      text
    ].join('\r\n'), 'utf8')
  }
  const socket = await SmtpConnection.dial('127.0.0.1', config.submission.port, 10_000).catch(() => fail(`cannot reach the submission port 127.0.0.1:${config.submission.port}: is the node running?`))
  const connection = await SmtpConnection.open(socket, { ehloName: 'localhost', timeoutMs: 60_000 })
  await connection.authPlain(config.user, identity.submissionPassword)
  const results = await connection.send({ from: identity.address, to, raw })
  await connection.quit()
  let failed = false
  for (const r of results) {
    process.stdout.write(`${r.ok ? 'queued  ' : 'refused '} ${r.address}: ${r.reply}\n`)
    failed ||= !r.ok
  }
  if (failed) process.exitCode = 1
}

async function readStdin (): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

function print<T> (value: T, json: boolean, format: (v: T) => string): void {
  process.stdout.write(json ? `${JSON.stringify(value, null, 2)}\n` : format(value))
}

function formatStatus (s: NodeStatus): string {
  const onion = s.tor.onions.find(o => `${o.address}.onion` === s.onion)
  const lines = [
    `address     ${s.address}`,
    `tor         ${s.tor.running ? 'running' : 'NOT RUNNING'} (${s.tor.mode}), bootstrapped ${s.tor.bootstrapPercent}%: ${s.tor.bootstrapSummary}${s.tor.restarts > 0 ? `, restarted ${s.tor.restarts} times` : ''}`,
    `onion       ${onion === undefined ? 'not published' : onion.descriptorUploaded ? 'published' : 'publishing (descriptor not uploaded yet)'}`,
    ...(s.tor.lastError !== undefined ? [`tor error   ${s.tor.lastError}`] : []),
    `submission  127.0.0.1:${s.submissionPort}`,
    `connections ${s.connections.open} open, ${s.connections.opened} opened since start`,
    `queue       ${s.queue.length === 0 ? 'empty' : `${s.queue.length} message(s) waiting`}`
  ]
  return `${lines.join('\n')}\n${s.queue.length > 0 ? formatQueue(s.queue) : ''}`
}

function formatQueue (entries: QueueStatusEntry[]): string {
  if (entries.length === 0) return 'the queue is empty\n'
  const lines: string[] = []
  for (const e of entries) {
    lines.push(`${e.id}  queued ${e.createdAt}${e.messageId !== undefined ? `  <${e.messageId}>` : ''}`)
    for (const r of e.recipients) {
      const next = r.tryingSince !== undefined ? `, trying now since ${r.tryingSince}` : r.nextAttemptAt !== undefined ? `, next try ${r.nextAttemptAt}` : ''
      lines.push(`  ${r.state.padEnd(9)} ${r.address} (${r.attempts} attempt${r.attempts === 1 ? '' : 's'}${next})${r.lastResult !== undefined ? `\n            last: ${r.lastResult}` : ''}`)
    }
  }
  return `${lines.join('\n')}\n`
}

main().catch((err: Error) => {
  if (err instanceof ConfigError || err instanceof IdentityError || err instanceof ControlError || err instanceof SmtpClientError || err instanceof TorServiceError || err instanceof QueueError) fail(err.message)
  fail(`unexpected error: ${err.stack ?? err.message}`)
})

