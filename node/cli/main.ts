// smtorp command line: init | start | run | send | status | queue | retry | unlock | lock |
// passwd | scrub | backup | restore, and the friends and recovery commands of friends.ts
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
import { vault as openVault, VaultError, type ScrubReport, type UnlockSecret } from '../vault/index.ts'
import { askSecret, secretFromFile } from './secret.ts'
import { UiConfigError } from '../../ui/server.ts'
import { createOwnKey, formatFingerprint, type OwnKeyInfo } from '../openpgp/index.ts'
import { imapBackupTarget, restoreFromTarget, BackupError, BackupTargetError, DEFAULT_BACKUP_FOLDER, type RestoreReport } from '../backup/index.ts'
import type { LastBackup } from '../backup/scheduler.ts'
import { CliUsageError, friendsCommand, FRIENDS_USAGE } from './friends.ts'
import { recoverCommand, recoverUiCommand } from './recover.ts'
import { RecoveryError } from '../recovery/shares.ts'
import { KitError } from '../recovery/kit.ts'
import { ReleaseError } from '../recovery/release.ts'
import { FriendBookError } from '../friends/friend-book.ts'

const USAGE = `smtorp: a peer-to-peer mail node (SMTP over Tor onion services)

usage: smtorp <command> [--data DIR] [options]

  init   [--user NAME] [--submission-host ADDR] [--ui-host ADDR] [--address ORDINARY]
                              create a node: onion key, config, submission password, and
                              the vault; asks for a passphrase and prints the recovery code.
                              --ui-host other than 127.0.0.1 also allows a non-loopback
                              web UI (only for a container published on loopback)
                              --address: your ordinary mail address, if you have one: mail
                              is sent from it, and signed mail announces your onion route
                              Also makes your OpenPGP key (kept in the vault).
  start                       run the node in the foreground (Ctrl-C stops it); asks for
                              the passphrase on a terminal (empty: start locked)
  run    [--user NAME]        init if needed, then start
  unlock [--recovery]         unlock the running node's vault (passphrase or recovery code)
  lock                        lock the vault: mail still arrives, nothing can be read
  passwd                      change the passphrase (the vault must be unlocked)
  scrub                       check every shard of the vault, repair damaged ones, and
                              give back the space of deleted mail
  send   --to ADDR [--to ADDR...] [--subject S] [--body TEXT | < message.eml]
                              send mail through the running node's submission port
  backup                      back the running node up now onto the IMAP account of its
                              config (backup.imap) and say what was sent
  restore --imap-host H [--imap-port 993] --imap-user U --imap-password-file F
          [--imap-starttls | --imap-insecure] [--imap-proxy socks5://127.0.0.1:9050]
          [--folder smtorp-backup] --data NEWDIR
                              bring a node back from its backup in an IMAP account into a
                              new, empty data directory; asks for the passphrase. Then
                              "smtorp start --data NEWDIR". --imap-insecure: no TLS at all
                              (only for a server on this machine)
  status                      what the node is doing: tor, onion, web UI address, queue, last backup
  queue                       messages waiting for delivery, per recipient
  retry                       try every waiting recipient now

${FRIENDS_USAGE.trim()}

--data DIR defaults to $SMTORP_DATA or ~/.smtorp
--passphrase-file FILE reads the passphrase (or, with --recovery, the code) from FILE's
first line instead of asking; piped standard input works too
`

function fail (message: string): never {
  process.stderr.write(`smtorp: ${message}\n`)
  process.exit(1)
}

async function main (): Promise<void> {
  // Everything the node writes (vault, queue, tor's state) is for its owner alone.
  process.umask(0o077)
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      data: { type: 'string' },
      user: { type: 'string' },
      'submission-host': { type: 'string' },
      'ui-host': { type: 'string' },
      address: { type: 'string' },
      to: { type: 'string', multiple: true },
      subject: { type: 'string' },
      body: { type: 'string' },
      json: { type: 'boolean' },
      recovery: { type: 'boolean' },
      'passphrase-file': { type: 'string' },
      'imap-host': { type: 'string' },
      'imap-port': { type: 'string' },
      'imap-user': { type: 'string' },
      'imap-password-file': { type: 'string' },
      'imap-insecure': { type: 'boolean' },
      'imap-starttls': { type: 'boolean' },
      'imap-proxy': { type: 'string' },
      folder: { type: 'string' },
      friends: { type: 'boolean' },
      'quota-mib': { type: 'string' },
      appoint: { type: 'string' },
      threshold: { type: 'string' },
      check: { type: 'boolean' },
      owner: { type: 'string' },
      custodian: { type: 'string', multiple: true },
      from: { type: 'string' },
      'wait-minutes': { type: 'string' },
      'tor-socks': { type: 'string' },
      direct: { type: 'string', multiple: true },
      ui: { type: 'boolean' },
      'ui-port': { type: 'string' },
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

  const passphraseFile = values['passphrase-file']
  const control = join(dataDir, 'control.sock')
  switch (command) {
    case 'init': await init(dataDir, user, { submissionHost: values['submission-host'], uiHost: values['ui-host'], address: values.address }, passphraseFile); return
    case 'start': return await start(dataDir, passphraseFile !== undefined ? { passphrase: await secretFromFile(passphraseFile) } : undefined)
    case 'run': {
      const passphrase = existsSync(join(dataDir, CONFIG_FILE)) ? undefined : await init(dataDir, user, { submissionHost: values['submission-host'], uiHost: values['ui-host'], address: values.address }, passphraseFile)
      return await start(dataDir, passphrase !== undefined ? { passphrase } : passphraseFile !== undefined ? { passphrase: await secretFromFile(passphraseFile) } : undefined)
    }
    case 'unlock': {
      const secret = passphraseFile !== undefined ? await secretFromFile(passphraseFile) : await askSecret(values.recovery === true ? 'Recovery code: ' : 'Passphrase: ')
      await askNode(control, { command: 'unlock', secret: values.recovery === true ? { recoveryCode: secret } : { passphrase: secret } }, 120_000)
      process.stdout.write('The vault is unlocked.\n')
      return
    }
    case 'lock':
      await askNode(control, { command: 'lock' })
      process.stdout.write('The vault is locked. Mail keeps arriving; unlock to read or send.\n')
      return
    case 'passwd': {
      const passphrase = passphraseFile !== undefined ? await secretFromFile(passphraseFile) : await newPassphrase()
      await askNode(control, { command: 'passphrase', passphrase }, 120_000)
      process.stdout.write('The passphrase is changed. The recovery code stays the same.\n')
      return
    }
    case 'scrub': {
      const report = existsSync(control)
        ? await askNode(control, { command: 'scrub' }, 24 * 3_600_000) as ScrubReport
        : await scrubOffline(dataDir)
      print(report, values.json === true, formatScrub)
      if (report.lost.length > 0) process.exitCode = 2
      return
    }
    case 'backup': {
      const result = await askNode(control, { command: values.friends === true ? 'backup-friends' : 'backup' }, 24 * 3_600_000) as LastBackup
      print(result, values.json === true, formatBackup)
      if (!result.ok) process.exitCode = 1
      return
    }
    case 'restore': {
      const host = values['imap-host']
      const imapUser = values['imap-user']
      const passwordFile = values['imap-password-file']
      if (host === undefined || imapUser === undefined || passwordFile === undefined) fail('restore needs --imap-host, --imap-user and --imap-password-file (and --data NEWDIR)')
      if (values.data === undefined) fail('restore needs --data NEWDIR: the new, empty data directory to restore into')
      const port = values['imap-port'] === undefined ? 993 : Number(values['imap-port'])
      if (!Number.isInteger(port) || port < 1 || port > 65535) fail('--imap-port must be a port number')
      if (values['imap-insecure'] === true && values['imap-starttls'] === true) fail('--imap-insecure and --imap-starttls exclude each other')
      const security = values['imap-insecure'] === true ? 'plain' : values['imap-starttls'] === true ? 'starttls' : 'tls'
      const pass = await secretFromFile(passwordFile)
      const passphrase = passphraseFile !== undefined ? await secretFromFile(passphraseFile) : await askSecret('Passphrase of the backed-up node: ')
      const proxy = values['imap-proxy']
      if (proxy !== undefined && !/^socks5?:\/\/[^/?#]+$/.test(proxy)) fail('--imap-proxy must be a SOCKS URL such as socks5://127.0.0.1:9050 (a tor on this machine)')
      return await restore(dataDir, { host, port, security, user: imapUser, pass, folder: values.folder ?? DEFAULT_BACKUP_FOLDER, ...(proxy !== undefined ? { proxy } : {}) }, passphrase, values.json === true)
    }
    case 'send': return await send(dataDir, values.to ?? [], values.subject, values.body)
    case 'status': return print(await askNode(join(dataDir, 'control.sock'), { command: 'status' }) as NodeStatus, values.json === true, formatStatus)
    case 'queue': return print(await askNode(join(dataDir, 'control.sock'), { command: 'queue' }) as QueueStatusEntry[], values.json === true, formatQueue)
    case 'retry':
      await askNode(join(dataDir, 'control.sock'), { command: 'retry' })
      process.stdout.write('every waiting recipient will be tried now\n')
      return
    case 'recover': {
      if (values.data === undefined) fail('recover needs --data NEWDIR: the new, empty data directory to bring the node back into')
      const from = values.from ?? 'friends'
      if (from !== 'friends' && from !== 'imap') fail('--from is friends or imap')
      const waitMinutes = Number(values['wait-minutes'] ?? 60)
      if (!Number.isFinite(waitMinutes) || waitMinutes <= 0) fail('--wait-minutes must be a positive number')
      const common = {
        dataDir, custodians: values.custodian ?? [], from: from as 'friends' | 'imap', waitMinutes,
        ...(values['tor-socks'] !== undefined ? { torSocks: values['tor-socks'] } : {}),
        ...(values.direct !== undefined ? { direct: values.direct } : {})
      }
      if (values.ui === true) {
        if (values.json === true || passphraseFile !== undefined) fail('recover --ui asks for the new passphrase on its page and shows the outcome there: leave out --json and --passphrase-file')
        const port = Number(values['ui-port'] ?? 0)
        if (!Number.isInteger(port) || port < 0 || port > 65_535) fail('--ui-port must be a port number')
        return await recoverUiCommand({ ...common, port, ...(values.owner !== undefined ? { owner: values.owner } : {}) })
      }
      if (values.owner === undefined) fail('recover needs --owner: your old onion address (it is on your recovery sheet)')
      const chosen = passphraseFile !== undefined ? await secretFromFile(passphraseFile) : await newPassphrase()
      if (chosen.length < 8) fail('the passphrase must be at least 8 characters long')
      return await recoverCommand({ ...common, owner: values.owner, newPassphrase: chosen, json: values.json === true })
    }
    default: {
      const quota = values['quota-mib'] !== undefined ? Number(values['quota-mib']) : undefined
      if (quota !== undefined && !(Number.isFinite(quota) && quota >= 0)) fail('--quota-mib must be a number of MiB')
      const threshold = values.threshold !== undefined ? Number(values.threshold) : undefined
      const known = await friendsCommand(command, {
        control, json: values.json === true, positionals,
        ...(quota !== undefined ? { quotaMiB: quota } : {}),
        ...(values.appoint !== undefined ? { appoint: values.appoint } : {}),
        ...(threshold !== undefined ? { threshold } : {}),
        ...(values.check === true ? { check: true } : {})
      })
      if (!known) fail(`unknown command "${command}"\n\n${USAGE}`)
    }
  }
}

/** Create the node and its vault; returns the passphrase chosen, to unlock with at once. */
async function init (dataDir: string, user: string, hosts: { submissionHost?: string | undefined, uiHost?: string | undefined, address?: string | undefined }, passphraseFile: string | undefined): Promise<string> {
  const passphrase = passphraseFile !== undefined ? await secretFromFile(passphraseFile) : await newPassphrase()
  if (passphrase.length < 8) fail('the passphrase must be at least 8 characters long')
  const settings: Array<[string[], string | boolean]> = []
  if (hosts.submissionHost !== undefined) settings.push([['submission', 'host'], hosts.submissionHost])
  if (hosts.address !== undefined) settings.push([['openpgp', 'address'], hosts.address.toLowerCase()])
  if (hosts.uiHost !== undefined) settings.push([['ui', 'host'], hosts.uiHost], [['ui', 'allowNonLoopback'], hosts.uiHost !== '127.0.0.1'])
  const identity = await createIdentity(dataDir, user, { settings })
  const config = await loadConfig(dataDir)
  const v = openVault({
    dir: join(dataDir, 'vault'),
    k: config.vault.dataShards,
    m: config.vault.parityShards,
    passphraseKdf: { memoryKiB: config.vault.passphraseMemoryKiB, iterations: config.vault.passphraseIterations, parallelism: 1 }
  })
  await v.open()
  let recoveryCode: string
  let key: OwnKeyInfo
  try {
    ({ recoveryCode } = await v.create(passphrase))
    const sendAs = config.openpgp.address ?? identity.address
    key = await createOwnKey(v, { addresses: [...new Set([sendAs, identity.address])], ...(config.openpgp.name !== undefined ? { name: config.openpgp.name } : {}) })
  } finally {
    await v.close()
  }
  process.stdout.write(`Created a node in ${dataDir}\n  your address: ${identity.address}\n` +
    (config.openpgp.address !== undefined ? `  sending as:   ${config.openpgp.address}\n` : '') +
    `  OpenPGP key:  ${formatFingerprint(key.fingerprint)}\n  submission:   port 2525, user "${user}", password in ${join(dataDir, 'submission.secret')}\n  settings:     ${join(dataDir, CONFIG_FILE)}\n\n` +
    'Your recovery code unlocks the vault if you forget the passphrase. It is shown this once:\n\n' +
    `    ${recoveryCode}\n\n` +
    'Write it down and keep it somewhere safe, away from this computer.\n')
  return passphrase
}

async function newPassphrase (): Promise<string> {
  const first = await askSecret('New passphrase (at least 8 characters): ')
  if (!process.stdin.isTTY) return first
  const again = await askSecret('The same passphrase again: ')
  if (first !== again) fail('the two passphrases differ; nothing was changed')
  return first
}

async function scrubOffline (dataDir: string): Promise<ScrubReport> {
  const config = await loadConfig(dataDir)
  const v = openVault({ dir: join(dataDir, 'vault'), k: config.vault.dataShards, m: config.vault.parityShards })
  await v.open()
  try {
    return await v.scrub({ onProgress: (done, total) => { if (process.stderr.isTTY && (done % 100 === 0 || done === total)) process.stderr.write(`\rchecked ${done} of ${total} objects`) } })
  } finally {
    if (process.stderr.isTTY) process.stderr.write('\n')
    await v.close()
  }
}

function formatScrub (r: ScrubReport): string {
  const lines = [
    `checked   ${r.objects} objects, ${r.shardsChecked} shards in ${((r.finishedAt - r.startedAt) / 1000).toFixed(1)} s`,
    `damaged   ${r.damagedShards} shards`,
    `repaired  ${r.repairedShards} shards`,
    `lost      ${r.lost.length === 0 ? 'nothing' : `${r.lost.length} objects`}`,
    ...(r.compaction !== undefined ? [`reclaimed ${(r.compaction.bytesFreed / 1048576).toFixed(1)} MiB of deleted mail (${r.compaction.segmentsRemoved} segment files)`] : []),
    ...r.lost.map(l => `  ${l.messageId !== undefined ? `message ${l.messageId}` : `object ${l.objectId}`}: ${l.reason}`)
  ]
  return `${lines.join('\n')}\n`
}

async function start (dataDir: string, unlock: UnlockSecret | undefined): Promise<void> {
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
  if (unlock === undefined && process.stdin.isTTY) {
    const passphrase = await askSecret('Passphrase to unlock the vault (empty: start locked): ')
    if (passphrase !== '') unlock = { passphrase }
  }
  await node.start(unlock !== undefined ? { unlock } : {})
  process.stdout.write(`smtorp is running: ${node.identity.address}\n  submission port 127.0.0.1:${node.submissionPort()}\n${node.ui !== undefined ? `  web UI ${node.ui.url()}/\n` : ''}  vault ${node.vault.state()}${node.vault.state() === 'locked' ? ': mail arrives; run "smtorp unlock" to read and send' : ''}\n`)
}

async function restore (dataDir: string, imap: { host: string, port: number, security: 'tls' | 'starttls' | 'plain', user: string, pass: string, folder: string, proxy?: string }, passphrase: string, json: boolean): Promise<void> {
  const logger = createLogger({ level: 'warn' })
  const target = imapBackupTarget({
    host: imap.host, port: imap.port, secure: imap.security === 'tls', doSTARTTLS: imap.security === 'starttls', user: imap.user, pass: imap.pass, folder: imap.folder,
    ...(imap.proxy !== undefined ? { proxy: imap.proxy } : {})
  }, { logger })
  let report: RestoreReport
  try {
    report = await restoreFromTarget({ target, passphrase, dataDir, logger })
  } finally {
    await target.close().catch(() => {})
  }
  const config = await loadConfig(dataDir)
  const identity = await loadIdentity(dataDir, config.user)
  print({ address: identity.address, ...report }, json, r => [
    `Restored a node into ${dataDir} from ${target.description}`,
    `  your address: ${r.address}`,
    `  backup of:    ${r.created}`,
    `  messages:     ${r.restored} restored of ${r.messages}${r.duplicates > 0 ? ` (${r.duplicates} duplicates)` : ''}`,
    `  damaged:      ${r.damaged.length === 0 ? 'none' : `${r.damaged.length}`}`,
    ...r.damaged.map(d => `    ${d.folder} ${d.messageId !== undefined ? `<${d.messageId}>` : d.blob}: ${d.reason}`),
    '',
    `Start it with "smtorp start --data ${dataDir}" (stop the old node first: both would publish the same onion address).`,
    ''
  ].join('\n'))
  if (report.damaged.length > 0) process.exitCode = 2
}

function formatBackup (b: LastBackup): string {
  const when = `${b.finishedAt} (${((Date.parse(b.finishedAt) - Date.parse(b.startedAt)) / 1000).toFixed(1)} s)`
  if (!b.ok || b.report === undefined) return `backup FAILED at ${when} onto ${b.target}: ${b.error ?? 'no reason given'}\n`
  const r = b.report
  return [
    `backup done at ${when} onto ${b.target}`,
    `messages  ${r.messages}`,
    `uploaded  ${r.uploaded} (${(r.uploadedBytes / 1024).toFixed(1)} KiB)`,
    `kept      ${r.kept}`,
    `deleted   ${r.deleted}`,
    ''
  ].join('\n')
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
    ...(s.webUi !== undefined ? [`web UI      ${s.webUi}`] : []),
    `connections ${s.connections.open} open, ${s.connections.opened} opened since start`,
    `queue       ${s.queue.length === 0 ? 'empty' : `${s.queue.length} message(s) waiting`}`,
    ...(s.backup !== undefined
      ? [`backup      ${s.backup.running ? 'running now; ' : ''}${s.backup.last === undefined ? 'none yet' : s.backup.last.ok ? `last ${s.backup.last.finishedAt}: ${s.backup.last.report!.messages} messages (${s.backup.last.report!.uploaded} uploaded)` : `last FAILED ${s.backup.last.finishedAt}: ${s.backup.last.error ?? ''}${s.backup.last.retryAt !== undefined ? `; trying again at ${s.backup.last.retryAt}` : ''}`} onto ${s.backup.target}`]
      : ['backup      not configured']),
    `vault       ${s.vault.state}${s.vault.scrubbing ? ', scrubbing' : ''}${s.vault.lastScrub !== undefined ? `, last scrub ${new Date(s.vault.lastScrub.finishedAt).toISOString()}: ${s.vault.lastScrub.repairedShards} shards repaired, ${s.vault.lastScrub.lost.length} objects lost` : ''}`
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
  if (err instanceof ConfigError || err instanceof IdentityError || err instanceof ControlError || err instanceof SmtpClientError || err instanceof TorServiceError || err instanceof QueueError || err instanceof VaultError || err instanceof UiConfigError || err instanceof BackupError || err instanceof BackupTargetError ||
      err instanceof CliUsageError || err instanceof RecoveryError || err instanceof KitError || err instanceof ReleaseError || err instanceof FriendBookError) fail(err.message)
  fail(`unexpected error: ${err.stack ?? err.message}`)
})

