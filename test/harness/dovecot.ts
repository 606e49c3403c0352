/**
 * An isolated Dovecot (IMAP only) on loopback, for tests and benchmarks.
 *
 * Each instance has its own configuration file, base_dir (sockets, pid), state_dir, log
 * file, passwd-file and Maildirs, all under one temporary directory, and listens only on
 * 127.0.0.1:<port>. The system Dovecot (/etc/dovecot, /run/dovecot, /var/lib/dovecot) is
 * neither read nor changed: `dovecot -c FILE` reads only FILE (we include nothing), and
 * state_dir and instance_name keep it out of /var/lib/dovecot/instances.
 *
 * The master runs with `-F` (foreground), a child of this process, so its exit is seen and
 * reaped here, as for the Postfix harness (test/harness/postfix.ts). Services do not
 * auto-start on these machines; nothing here relies on systemd.
 *
 * Layout (see ../shared/notes/library-facts.md, "IMAP"): `ssl = no` and
 * `disable_plaintext_auth = no`, so imapflow connects with `secure: false, doSTARTTLS: false`;
 * a passwd-file passdb with the users the test gives; a static userdb mapping every user to
 * the uid/gid of `nobody` (Dovecot refuses to access mail as root, and first_valid_uid is
 * lowered for it) with a Maildir at `<dir>/mail/<user>`.
 *
 * `pause()`/`resume()` stop and start the server on the same port and the same mail, for
 * tests of a server that goes away; `kick(user)` drops a user's connections (doveadm kick),
 * for tests of a client that must reconnect.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { chmod, chown, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { freeLoopbackPort, killOnExit, readGreeting, tail } from './processes.ts'

const execFileAsync = promisify(execFile)

const DOVECOT = '/usr/sbin/dovecot'
const DOVEADM = '/usr/bin/doveadm'
const IMAP_BINARY = '/usr/lib/dovecot/imap'

/** Debian packages the harness needs. */
export const requiredDebianPackages = ['dovecot-imapd'] as const

export interface DovecotUser {
  user: string
  pass: string
}

export interface DovecotInit {
  /** Users allowed to log in (plain passwords). At least one. */
  users: DovecotUser[]
  /** TCP port on 127.0.0.1; a free one is chosen when absent. */
  port?: number
  /** How long to wait for the greeting after start. Default 15 s. */
  startTimeoutMs?: number
}

export interface DovecotInstance {
  host: '127.0.0.1'
  port: number
  /** The instance's directory: `dovecot.conf`, `users`, `run/`, `mail/<user>/`, `dovecot.log`. */
  dir: string
  logFile: string
  /** imapflow options for a user (plain text on loopback, no STARTTLS, no logging). */
  clientOptions (user: string, pass?: string): { host: string, port: number, secure: false, doSTARTTLS: false, auth: { user: string, pass: string }, logger: false }
  /** Drops every IMAP connection of a user (`doveadm kick`); the server stays up. False when there was none. */
  kick (user: string): Promise<boolean>
  /** Stops the server, keeping its directory and mail; connections are then refused. */
  pause (): Promise<void>
  /** Starts it again on the same port with the same mail. */
  resume (): Promise<void>
  /** Stops Dovecot (SIGTERM, then SIGKILL if it lingers) and removes the directory. Idempotent. */
  stop (): Promise<void>
}

export class DovecotHarnessError extends Error {
  override name = 'DovecotHarnessError'
}

/** Says what is missing to run the harness, as sentences, or an empty list; tests skip with it. */
export function missingDovecotPrerequisites (): string[] {
  const missing: string[] = []
  if (!existsSync(DOVECOT)) missing.push(`Dovecot is not installed (apt-get install dovecot-imapd): ${DOVECOT} not found`)
  else if (!existsSync(IMAP_BINARY)) missing.push(`Dovecot's IMAP server is not installed (apt-get install dovecot-imapd): ${IMAP_BINARY} not found`)
  if (!existsSync(DOVEADM)) missing.push(`doveadm is not installed (it comes with dovecot-core): ${DOVEADM} not found`)
  if (typeof process.getuid === 'function' && process.getuid() !== 0) missing.push('the Dovecot harness must run as root (the master starts as root and drops to its own users)')
  return missing
}


/** uid and gid of a system user from /etc/passwd (`nobody` owns the Maildirs), or the fallback. */
function systemUserIds (name: string, fallback: number): { uid: number, gid: number } {
  try {
    const fields = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith(`${name}:`))?.split(':')
    if (fields?.[2] !== undefined && fields[3] !== undefined) return { uid: Number(fields[2]), gid: Number(fields[3]) }
  } catch {
    // fall through to the fallback
  }
  return { uid: fallback, gid: fallback }
}

/** Dovecot names its processes "dovecot-<instance_name>/<service>"; the port makes it unique. */
function instanceName (port: number): string {
  return `smtorp-test-${port}`
}

// Recognised in the greeting, so another server already on the port is not mistaken for ours.
const GREETING = 'smtorp test Dovecot ready.'

function dovecotConf (o: { dir: string, port: number, uid: number, gid: number }): string {
  return `# Written by test/harness/dovecot.ts: an isolated instance, see the comment at the top of that file.
protocols = imap
listen = 127.0.0.1
base_dir = ${o.dir}/run
state_dir = ${o.dir}/state
instance_name = ${instanceName(o.port)}
log_path = ${o.dir}/dovecot.log
info_log_path = ${o.dir}/dovecot.log
login_greeting = ${GREETING}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
# Dovecot waits 2 s before answering a failed login (auth_failure_delay); tests need not.
auth_failure_delay = 0
# nobody (65534) must be a valid mail uid.
first_valid_uid = 1
first_valid_gid = 1
mail_location = maildir:${o.dir}/mail/%u
mail_fsync = always
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u ${o.dir}/users
}
userdb {
  driver = static
  args = uid=${o.uid} gid=${o.gid} home=${o.dir}/mail/%u
}
# anvil's auth penalty delays every further login from an address that failed one, doubling up
# to 15 s (measured: 0.5 s, then 4.5 s); tests fail logins on purpose. Mode 0 turns it off.
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
service imap-login {
  chroot =
  inet_listener imap {
    address = 127.0.0.1
    port = ${o.port}
  }
  inet_listener imaps {
    port = 0
  }
}
`
}



class RunningDovecot implements DovecotInstance {
  readonly host = '127.0.0.1' as const
  /** Stops killing this instance at process exit (processes.ts killOnExit). */
  forget: () => void = () => {}
  private stopped = false
  private child: ChildProcess | undefined
  private exited: Promise<void> = Promise.resolve()

  constructor (
    readonly port: number,
    readonly dir: string,
    private readonly users: Map<string, string>,
    private readonly startTimeoutMs: number,
  ) {}

  get logFile (): string { return join(this.dir, 'dovecot.log') }
  private get conf (): string { return join(this.dir, 'dovecot.conf') }

  clientOptions (user: string, pass?: string): ReturnType<DovecotInstance['clientOptions']> {
    return { host: this.host, port: this.port, secure: false, doSTARTTLS: false, auth: { user, pass: pass ?? this.users.get(user) ?? '' }, logger: false }
  }

  /** Starts the master and waits for our greeting, bounded by startTimeoutMs. */
  async launch (): Promise<void> {
    const child = spawn(DOVECOT, ['-F', '-c', this.conf], { stdio: ['ignore', 'pipe', 'pipe'], cwd: this.dir })
    let output = ''
    child.stdout?.on('data', (d: Buffer) => { output += d.toString() })
    child.stderr?.on('data', (d: Buffer) => { output += d.toString() })
    // A forgotten stop() must not keep the test process alive; the exit hook then kills Dovecot.
    child.unref()
    for (const stream of [child.stdout, child.stderr]) (stream as unknown as { unref?: () => void } | null)?.unref?.()
    this.child = child
    this.exited = new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve()
      else child.once('exit', () => resolve())
    })
    const deadline = Date.now() + this.startTimeoutMs
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new DovecotHarnessError(`Dovecot exited during start (${child.exitCode ?? child.signalCode}): ${output.trim()}\nlog tail:\n${await tail(this.logFile)}`)
      }
      try {
        const greeting = await readGreeting(this.port, 'a LOGOUT\r\n')
        if (greeting.startsWith('* OK') && greeting.includes(GREETING)) return
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) {
        await this.halt()
        throw new DovecotHarnessError(`Dovecot did not greet on 127.0.0.1:${this.port} within ${this.startTimeoutMs} ms: ${output.trim()}\nlog tail:\n${await tail(this.logFile)}`)
      }
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }

  /** Stops the master (SIGTERM makes it stop its children), SIGKILL after 5 s. */
  private async halt (): Promise<void> {
    const child = this.child
    if (child === undefined) return
    this.child = undefined
    try { child.kill('SIGTERM') } catch { /* already gone */ }
    let timer: NodeJS.Timeout | undefined
    const gone = await Promise.race([
      this.exited.then(() => true),
      new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), 5000) }),
    ])
    clearTimeout(timer)
    if (!gone) {
      try { child.kill('SIGKILL') } catch { /* already gone */ }
      await this.exited
    }
    // Measured: when the master stops, running imap processes (with their client connections),
    // log and stats stay alive, re-parented to PID 1, so a "stopped" server would still answer
    // its connected clients. Kill what is left of this instance, found by the process title
    // Dovecot gives its children ("<instance_name>/imap").
    this.killLeftovers()
    // Wait until the port is free so that resume() can bind it again, bounded.
    const deadline = Date.now() + 5000
    while (Date.now() < deadline) {
      try {
        await readGreeting(this.port, 'a LOGOUT\r\n')
      } catch {
        return
      }
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }

  /** SIGKILL to every process whose title starts with this instance's name. */
  killLeftovers (): void {
    const prefix = `dovecot-${instanceName(this.port)}/`
    let pids: string[] = []
    try {
      pids = readdirSync('/proc').filter((p) => /^\d+$/.test(p))
    } catch {
      return
    }
    for (const pid of pids) {
      try {
        if (readFileSync(`/proc/${pid}/cmdline`, 'latin1').startsWith(prefix)) process.kill(Number(pid), 'SIGKILL')
      } catch {
        // gone meanwhile, or not ours to read
      }
    }
  }

  killNow (): void {
    try { this.child?.kill('SIGKILL') } catch { /* already gone */ }
    this.killLeftovers()
    try { rmSync(this.dir, { recursive: true, force: true }) } catch { /* best effort at exit */ }
  }

  async kick (user: string): Promise<boolean> {
    // doveadm reads the same config to find the instance's sockets in base_dir. It exits
    // non-zero, saying nothing on stderr, when the user has no connection to kick.
    try {
      await execFileAsync(DOVEADM, ['-c', this.conf, 'kick', user], { timeout: 10_000 })
      return true
    } catch (err) {
      const e = err as { code?: unknown, stderr?: string }
      if (typeof e.code === 'number' && (e.stderr ?? '').trim() === '') return false
      throw new DovecotHarnessError(`doveadm kick ${user} failed: ${(e.stderr ?? String(err)).trim()}`)
    }
  }

  async pause (): Promise<void> {
    if (this.stopped) throw new DovecotHarnessError('this Dovecot was stopped')
    await this.halt()
  }

  async resume (): Promise<void> {
    if (this.stopped) throw new DovecotHarnessError('this Dovecot was stopped')
    if (this.child !== undefined) return
    await this.launch()
  }

  async stop (): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    await this.halt()
    this.forget()
    await rm(this.dir, { recursive: true, force: true })
  }
}

/**
 * Starts an isolated Dovecot on 127.0.0.1 and resolves once it greets. Call `stop()` when
 * done; leftovers are also killed at process exit.
 */
export async function startDovecot (init: DovecotInit): Promise<DovecotInstance> {
  const missing = missingDovecotPrerequisites()
  if (missing.length > 0) throw new DovecotHarnessError(`cannot start Dovecot: ${missing.join('; ')}`)
  if (init.users.length === 0) throw new DovecotHarnessError('give Dovecot at least one user')
  for (const { user, pass } of init.users) {
    // passwd-file fields are separated by ':' and lines by '\n'.
    if (!/^[A-Za-z0-9._@-]+$/.test(user)) throw new DovecotHarnessError(`user name ${JSON.stringify(user)} is not allowed here: use letters, digits, '.', '_', '@' and '-'`)
    if (/[:\r\n]/.test(pass)) throw new DovecotHarnessError(`the password of ${user} contains ':' or a line break, which a passwd-file cannot hold`)
  }

  const dir = await mkdtemp(join(tmpdir(), 'smtorp-dovecot-'))
  const port = init.port ?? await freeLoopbackPort()
  const nobody = systemUserIds('nobody', 65534)
  const users = new Map(init.users.map((u) => [u.user, u.pass]))
  try {
    // dovenull (login), dovecot (auth) and nobody (mail) must get through.
    await chmod(dir, 0o755)
    for (const sub of ['run', 'state', 'mail']) await mkdir(join(dir, sub), { recursive: true })
    await chown(join(dir, 'mail'), nobody.uid, nobody.gid)
    await writeFile(join(dir, 'dovecot.conf'), dovecotConf({ dir, port, uid: nobody.uid, gid: nobody.gid }))
    await writeFile(join(dir, 'users'), init.users.map(({ user, pass }) => `${user}:{PLAIN}${pass}::::::\n`).join(''))
    // The auth process runs as default_internal_user (dovecot) and reads the passwd-file itself.
    await chown(join(dir, 'users'), 0, systemUserIds('dovecot', 109).gid)
    await chmod(join(dir, 'users'), 0o640)
  } catch (err) {
    await rm(dir, { recursive: true, force: true })
    throw err
  }

  const instance = new RunningDovecot(port, dir, users, init.startTimeoutMs ?? 15_000)
  instance.forget = killOnExit(instance)
  try {
    await instance.launch()
  } catch (err) {
    await instance.stop()
    throw err
  }
  return instance
}
