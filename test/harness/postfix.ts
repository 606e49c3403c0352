/**
 * An isolated Postfix instance on loopback, for tests and benchmarks.
 *
 * Each instance has its own configuration directory, queue_directory,
 * data_directory, Maildir and log file, all under one temporary directory,
 * and listens only on 127.0.0.1:<port>. The system Postfix (/etc/postfix) is
 * neither read nor changed, and nothing is started or stopped there.
 *
 * Why no change to the system main.cf is needed: `postfix -c DIR` only asks
 * for DIR to be listed in alternate_config_directories or
 * multi_instance_directories of the default main.cf when it is run by a user
 * other than root (the check guards the set-gid programs postdrop and
 * postqueue). Run as root, as here, it takes any directory. We also avoid
 * postmulti: it would have to register the instance in the system main.cf.
 *
 * The master daemon is run with `postfix -c DIR start-fg`, a child of this
 * process, so its exit is seen and reaped here: `postfix start` would detach
 * it, and on machines whose PID 1 does not reap (containers) every stopped
 * instance would leave zombies behind. start-fg refuses to run when the
 * default main.cf sets multi_instance_directories; we then say so.
 *
 * Mail never leaves the box: every domain is a virtual mailbox domain
 * (`virtual_mailbox_domains = static:all`) and every recipient maps to one
 * catch-all Maildir, so the virtual(8) agent delivers everything locally; the
 * smtp and relay transports are not even in master.cf, and default_transport
 * and relay_transport are `error:` as a second guard.
 *
 * Roles:
 * - `relay`: the node's legacy SMTP relay (smarthost). STARTTLS with a
 *   self-signed certificate made by the openssl CLI, optional AUTH PLAIN/LOGIN
 *   (Cyrus SASL with a sasldb file, which needs Debian's `sasl2-bin` for
 *   saslpasswd2 and `libsasl2-modules` for the PLAIN mechanism). With `auth`,
 *   recipients are accepted only from an authenticated client, even from
 *   127.0.0.1, so a test proves the node really authenticates.
 * - `sink`: the benchmark baseline, Postfix receiving from smtp-source with
 *   its default settings and delivering to a Maildir as it normally would.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { existsSync, readFileSync, rmSync } from 'node:fs'
import { chmod, chown, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { freeLoopbackPort, killOnExit, readGreeting, tail } from './processes.ts'

const execFileAsync = promisify(execFile)

export type PostfixRole = 'relay' | 'sink'

export interface PostfixInit {
  role: PostfixRole
  /** TCP port on 127.0.0.1; a free one is chosen when absent. */
  port?: number
  /** Directory to hold the instance; a fresh temporary one (removed on stop) when absent. */
  dir?: string
  /** Require SMTP AUTH (PLAIN or LOGIN, after STARTTLS) with these credentials. */
  auth?: { user: string, pass: string }
  /** How long to wait for the greeting after start. Default 15 s. */
  startTimeoutMs?: number
}

export interface DeliveredMessage {
  /** The file as Postfix wrote it, with Return-Path, X-Original-To and Delivered-To prepended. */
  raw: Buffer
  /** The envelope recipient, from the X-Original-To header the virtual agent adds. */
  envelopeTo?: string
  /** The envelope sender, from Return-Path. */
  envelopeFrom?: string
  /** Path of the file in the Maildir. */
  path: string
}

export interface PostfixInstance {
  host: '127.0.0.1'
  port: number
  role: PostfixRole
  /** The instance's directory (config in `etc/`, queue in `queue/`, log in `maillog`). */
  dir: string
  /** The catch-all Maildir everything is delivered into. */
  maildir: string
  /** Postfix's log, for diagnosing a failed test. */
  logFile: string
  /** Number of delivered messages (cheap: counts Maildir files). */
  count(): Promise<number>
  /** All delivered messages, oldest first. */
  messages(): Promise<DeliveredMessage[]>
  /** Waits until at least n messages are delivered and returns them; rejects after timeoutMs. */
  waitForMessages(n: number, timeoutMs: number): Promise<DeliveredMessage[]>
  /** Waits until at least n messages are delivered (counting only); rejects after timeoutMs. */
  waitForCount(n: number, timeoutMs: number): Promise<number>
  /** Stops Postfix (`postfix stop`, then SIGKILL if it lingers) and removes a temporary dir. Idempotent. */
  stop(): Promise<void>
}

export class PostfixHarnessError extends Error {
  override name = 'PostfixHarnessError'
}

const POSTFIX = '/usr/sbin/postfix'
const POSTCONF = '/usr/sbin/postconf'
const OPENSSL = '/usr/bin/openssl'
const SASLPASSWD2 = '/usr/sbin/saslpasswd2'
const SASL_PLAIN = '/usr/lib/x86_64-linux-gnu/sasl2/libplain.so'
const SMTP_SOURCE = '/usr/sbin/smtp-source'

/** Debian packages the harness needs; `sasl2-bin` and `libsasl2-modules` only for `auth`. */
export const requiredDebianPackages = ['postfix', 'openssl'] as const
export const authDebianPackages = ['sasl2-bin', 'libsasl2-modules'] as const

/**
 * Says what is missing to run the harness, as sentences, or an empty list.
 * Tests use it to skip with a clear reason.
 */
export function missingPostfixPrerequisites(opts: { auth?: boolean } = {}): string[] {
  const missing: string[] = []
  if (!existsSync(POSTFIX) || !existsSync('/usr/lib/postfix/sbin/master')) missing.push(`Postfix is not installed (apt-get install postfix): ${POSTFIX} not found`)
  if (!existsSync(SMTP_SOURCE)) missing.push(`smtp-source is not installed (it comes with the Debian postfix package): ${SMTP_SOURCE} not found`)
  if (!existsSync(OPENSSL)) missing.push(`openssl is not installed (apt-get install openssl): ${OPENSSL} not found`)
  if (opts.auth) {
    if (!existsSync(SASLPASSWD2)) missing.push(`saslpasswd2 is not installed (apt-get install sasl2-bin): ${SASLPASSWD2} not found`)
    if (!existsSync(SASL_PLAIN)) missing.push(`the Cyrus SASL PLAIN mechanism is not installed (apt-get install libsasl2-modules): ${SASL_PLAIN} not found`)
  }
  if (typeof process.getuid === 'function' && process.getuid() !== 0) missing.push('the Postfix harness must run as root (the master daemon starts as root and drops to the postfix user)')
  return missing
}


/** uid and gid of `nobody`, who owns the Maildir (virtual(8) refuses to deliver as root). */
function nobodyIds (): { uid: number, gid: number } {
  try {
    const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('nobody:'))
    const fields = line?.split(':')
    if (fields?.[2] !== undefined && fields[3] !== undefined) return { uid: Number(fields[2]), gid: Number(fields[3]) }
  } catch {
    // fall through to Debian's values
  }
  return { uid: 65534, gid: 65534 }
}

async function postfixUid (): Promise<number> {
  const passwd = await readFile('/etc/passwd', 'utf8')
  const fields = passwd.split('\n').find((l) => l.startsWith('postfix:'))?.split(':')
  if (fields?.[2] === undefined) throw new PostfixHarnessError('there is no postfix user in /etc/passwd; is the postfix package installed?')
  return Number(fields[2])
}

async function multiInstanceDirectories (): Promise<string> {
  const { stdout } = await execFileAsync(POSTCONF, ['-h', 'multi_instance_directories'])
  return stdout.trim()
}

// Only the services this setup uses, none chrooted (a chroot would need copies
// of /etc/services, resolv.conf and the TLS files inside the queue directory).
// Deliberately no `smtp`/`relay`/`lmtp`/`local` transports: nothing can leave.
function masterCf (port: number): string {
  return `# Written by test/harness/postfix.ts
# service type  private unpriv  chroot  wakeup  maxproc command
127.0.0.1:${port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`
}

const HOSTNAME = 'postfix.smtorp-test.localhost'
// Recognised in the greeting, so another server already on the port is not mistaken for ours.
const BANNER = 'smtorp test Postfix'

function mainCf (o: { dir: string, maildirBase: string, uid: number, gid: number, auth: boolean }): string {
  const lines = [
    '# Written by test/harness/postfix.ts: an isolated instance, see the comment at the top of that file.',
    'compatibility_level = 3.6',
    `queue_directory = ${o.dir}/queue`,
    `data_directory = ${o.dir}/data`,
    // Postfix 3.4+: log to a file through postlogd, since there may be no syslog.
    `maillog_file = ${o.dir}/maillog`,
    `maillog_file_prefixes = ${o.dir}`,
    'inet_interfaces = loopback-only',
    'inet_protocols = ipv4',
    'mynetworks = 127.0.0.0/8',
    `myhostname = ${HOSTNAME}`,
    'mydestination =',
    'alias_maps =',
    'alias_database =',
    'local_recipient_maps =',
    'biff = no',
    'append_dot_mydomain = no',
    `smtpd_banner = $myhostname ESMTP ${BANNER}`,
    // Any domain is ours, every address lands in one Maildir (trailing slash = Maildir format).
    'virtual_mailbox_domains = static:all',
    `virtual_mailbox_base = ${o.maildirBase}`,
    'virtual_mailbox_maps = static:catchall/',
    `virtual_uid_maps = static:${o.uid}`,
    `virtual_gid_maps = static:${o.gid}`,
    'virtual_transport = virtual',
    'default_transport = error:5.7.1 this test Postfix delivers nothing off the box',
    'relay_transport = error:5.7.1 this test Postfix delivers nothing off the box',
    'relayhost =',
    // STARTTLS with the self-signed certificate made at start.
    `smtpd_tls_cert_file = ${o.dir}/etc/cert.pem`,
    `smtpd_tls_key_file = ${o.dir}/etc/key.pem`,
    'smtpd_tls_security_level = may',
    'smtpd_tls_loglevel = 1',
    // A test runs once: no need to wait for a slow client or keep a bounce around.
    'maximal_queue_lifetime = 1h',
    'bounce_queue_lifetime = 1h',
  ]
  if (o.auth) {
    lines.push(
      'smtpd_sasl_auth_enable = yes',
      'smtpd_sasl_type = cyrus',
      'smtpd_sasl_path = smtpd',
      `cyrus_sasl_config_path = ${o.dir}/etc/sasl`,
      // saslpasswd2 stores user@realm; this realm is appended to a bare login name.
      `smtpd_sasl_local_domain = ${HOSTNAME}`,
      'smtpd_sasl_security_options = noanonymous',
      'smtpd_tls_auth_only = yes',
      // Even from 127.0.0.1: with auth, only an authenticated client may send.
      'smtpd_relay_restrictions = permit_sasl_authenticated, reject',
      'smtpd_recipient_restrictions = permit_sasl_authenticated, reject',
    )
  } else {
    lines.push(
      'smtpd_relay_restrictions = permit_mynetworks, reject',
      'smtpd_recipient_restrictions = permit_mynetworks, reject',
    )
  }
  return lines.join('\n') + '\n'
}

async function makeCertificate (etc: string): Promise<void> {
  // A P-256 key: generated in milliseconds, unlike RSA.
  await execFileAsync(OPENSSL, [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', join(etc, 'key.pem'), '-out', join(etc, 'cert.pem'), '-days', '7',
    '-subj', `/CN=${HOSTNAME}`, '-addext', `subjectAltName=DNS:${HOSTNAME},DNS:localhost,IP:127.0.0.1`,
  ])
  await chmod(join(etc, 'key.pem'), 0o600)
}

async function makeSaslDb (dir: string, user: string, pass: string, postfixGid: number): Promise<void> {
  const sasl = join(dir, 'etc', 'sasl')
  const db = join(dir, 'etc', 'sasldb2')
  await mkdir(sasl, { recursive: true })
  await writeFile(join(sasl, 'smtpd.conf'), [
    'pwcheck_method: auxprop',
    'auxprop_plugin: sasldb',
    'mech_list: PLAIN LOGIN',
    `sasldb_path: ${db}`,
    '',
  ].join('\n'))
  await new Promise<void>((resolve, reject) => {
    const child = spawn(SASLPASSWD2, ['-p', '-c', '-f', db, '-u', HOSTNAME, user], { stdio: ['pipe', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    child.on('error', reject)
    child.on('exit', (code) => {
      if (code === 0) resolve()
      else reject(new PostfixHarnessError(`saslpasswd2 failed (${code}): ${stderr.trim()}`))
    })
    child.stdin.end(pass)
  })
  // smtpd reads the database after dropping to the postfix user.
  await chown(db, 0, postfixGid)
  await chmod(db, 0o640)
}



function headerValue (raw: Buffer, name: string): string | undefined {
  // Postfix prepends these at the top; looking in the first 4 KiB is enough.
  const head = raw.subarray(0, 4096).toString('latin1')
  const end = head.search(/\r?\n\r?\n/)
  const block = end === -1 ? head : head.slice(0, end)
  const match = new RegExp(`^${name}:[ \\t]*(.*)$`, 'im').exec(block)
  return match?.[1]?.trim().replace(/^<(.*)>$/, '$1')
}

class RunningPostfix implements PostfixInstance {
  readonly host = '127.0.0.1' as const
  /** Stops killing this instance at process exit (processes.ts killOnExit). */
  forget: () => void = () => {}
  private stopped = false
  private readonly exited: Promise<void>

  constructor (
    readonly role: PostfixRole,
    readonly port: number,
    readonly dir: string,
    readonly maildir: string,
    readonly logFile: string,
    private readonly child: ChildProcess,
    private readonly removeDir: boolean,
  ) {
    this.exited = new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve()
      else child.once('exit', () => resolve())
    })
  }

  private masterPid (): number | undefined {
    try {
      const pid = Number(readFileSync(join(this.dir, 'queue', 'pid', 'master.pid'), 'utf8').trim())
      return Number.isInteger(pid) && pid > 1 ? pid : undefined
    } catch {
      return undefined
    }
  }

  /** Synchronous last resort, for process exit: SIGTERM to the master makes it stop its children. */
  killNow (): void {
    const pid = this.masterPid()
    try { if (pid !== undefined) process.kill(pid, 'SIGTERM') } catch { /* already gone */ }
    try { this.child.kill('SIGTERM') } catch { /* already gone */ }
    if (this.removeDir) {
      try { rmSync(this.dir, { recursive: true, force: true }) } catch { /* best effort at exit */ }
    }
  }

  async count (): Promise<number> {
    let n = 0
    for (const sub of ['new', 'cur']) {
      try {
        n += (await readdir(join(this.maildir, sub))).length
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
      }
    }
    return n
  }

  async messages (): Promise<DeliveredMessage[]> {
    const found: Array<{ path: string, mtime: number }> = []
    for (const sub of ['new', 'cur']) {
      let names: string[] = []
      try {
        names = await readdir(join(this.maildir, sub))
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
      }
      for (const name of names) {
        const path = join(this.maildir, sub, name)
        found.push({ path, mtime: (await stat(path)).mtimeMs })
      }
    }
    // Maildir names start with the delivery time in seconds; mtime orders within a second.
    found.sort((a, b) => a.mtime - b.mtime || a.path.localeCompare(b.path))
    const out: DeliveredMessage[] = []
    for (const { path } of found) {
      const raw = await readFile(path)
      const message: DeliveredMessage = { raw, path }
      const to = headerValue(raw, 'X-Original-To') ?? headerValue(raw, 'Delivered-To')
      if (to !== undefined) message.envelopeTo = to
      const from = headerValue(raw, 'Return-Path')
      if (from !== undefined) message.envelopeFrom = from
      out.push(message)
    }
    return out
  }

  async waitForCount (n: number, timeoutMs: number): Promise<number> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const have = await this.count()
      if (have >= n) return have
      if (Date.now() > deadline) {
        throw new PostfixHarnessError(`Postfix ${this.role} on port ${this.port}: ${have} of ${n} messages delivered after ${timeoutMs} ms; log tail:\n${await tail(this.logFile)}`)
      }
      await new Promise((resolve) => setTimeout(resolve, 25))
    }
  }

  async waitForMessages (n: number, timeoutMs: number): Promise<DeliveredMessage[]> {
    await this.waitForCount(n, timeoutMs)
    return await this.messages()
  }

  async stop (): Promise<void> {
    if (this.stopped) return await this.exited
    this.stopped = true
    try {
      await execFileAsync(POSTFIX, ['-c', join(this.dir, 'etc'), 'stop'], { timeout: 10_000 })
    } catch {
      // Not running any more, or the command hung: the kill below covers both.
    }
    let timer: NodeJS.Timeout | undefined
    const gone = await Promise.race([
      this.exited.then(() => true),
      new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), 5000) }),
    ])
    clearTimeout(timer)
    if (!gone) {
      const pid = this.masterPid()
      // The master runs in its own process group (it calls setsid), with its children.
      try { if (pid !== undefined) process.kill(-pid, 'SIGKILL') } catch { /* already gone */ }
      try { this.child.kill('SIGKILL') } catch { /* already gone */ }
      await this.exited
    }
    this.forget()
    if (this.removeDir) await rm(this.dir, { recursive: true, force: true })
  }
}

/**
 * Starts an isolated Postfix on 127.0.0.1 and resolves once it sends its
 * greeting. Call `stop()` when done; leftovers are also killed at process exit.
 */
export async function startPostfix (init: PostfixInit): Promise<PostfixInstance> {
  const missing = missingPostfixPrerequisites({ auth: init.auth !== undefined })
  if (missing.length > 0) throw new PostfixHarnessError(`cannot start Postfix: ${missing.join('; ')}`)
  if ((await multiInstanceDirectories()) !== '') {
    throw new PostfixHarnessError('the system main.cf sets multi_instance_directories, which makes `postfix start-fg` refuse to run; the harness needs it empty')
  }

  const removeDir = init.dir === undefined
  const dir = init.dir ?? await mkdtemp(join(tmpdir(), `smtorp-postfix-${init.role}-`))
  const port = init.port ?? await freeLoopbackPort()
  const etc = join(dir, 'etc')
  const maildirBase = join(dir, 'mail')
  const maildir = join(maildirBase, 'catchall')
  const logFile = join(dir, 'maillog')
  const nobody = nobodyIds()
  const postfixUser = await postfixUid()

  try {
    await mkdir(dir, { recursive: true })
    // The postfix user (daemons) and nobody (Maildir writer) must get through.
    await chmod(dir, 0o755)
    for (const sub of ['etc', 'queue', 'data', 'mail']) await mkdir(join(dir, sub), { recursive: true })
    await chown(join(dir, 'data'), postfixUser, 0)
    await chown(maildirBase, nobody.uid, nobody.gid)
    await writeFile(join(etc, 'main.cf'), mainCf({ dir, maildirBase, uid: nobody.uid, gid: nobody.gid, auth: init.auth !== undefined }))
    await writeFile(join(etc, 'master.cf'), masterCf(port))
    await makeCertificate(etc)
    if (init.auth !== undefined) {
      const group = readFileSync('/etc/group', 'utf8').split('\n').find((l) => l.startsWith('postfix:'))?.split(':')[2]
      await makeSaslDb(dir, init.auth.user, init.auth.pass, Number(group ?? 0))
    }
  } catch (err) {
    if (removeDir) await rm(dir, { recursive: true, force: true })
    throw err
  }

  const child = spawn(POSTFIX, ['-c', etc, 'start-fg'], { stdio: ['ignore', 'pipe', 'pipe'], cwd: dir })
  let output = ''
  child.stdout?.on('data', (d: Buffer) => { output += d.toString() })
  child.stderr?.on('data', (d: Buffer) => { output += d.toString() })
  // A forgotten stop() must not keep the test process alive; the exit hook then kills Postfix.
  child.unref()
  for (const stream of [child.stdout, child.stderr]) (stream as unknown as { unref?: () => void } | null)?.unref?.()
  const instance = new RunningPostfix(init.role, port, dir, maildir, logFile, child, removeDir)
  instance.forget = killOnExit(instance)

  const deadline = Date.now() + (init.startTimeoutMs ?? 15_000)
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      const log = await tail(logFile)
      await instance.stop()
      throw new PostfixHarnessError(`Postfix ${init.role} exited during start (${child.exitCode ?? child.signalCode}): ${output.trim()}\nlog tail:\n${log}`)
    }
    try {
      const greeting = await readGreeting(port, 'QUIT\r\n')
      if (greeting.startsWith('220') && greeting.includes(BANNER)) return instance
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      const log = await tail(logFile)
      await instance.stop()
      throw new PostfixHarnessError(`Postfix ${init.role} did not greet on 127.0.0.1:${port} within the start timeout: ${output.trim()}\nlog tail:\n${log}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}
