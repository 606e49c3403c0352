// When the node backs itself up onto its IMAP account or its friends (spec/backup.md): after
// the first unlock, then every `everyMinutes`, a little after new mail (debounced, so a burst
// of mail makes one backup), and when the owner asks ("smtorp backup"). One run at a time: a
// request during a run waits for that run and gets its result, and a new-mail request during
// a run schedules another one after it. A failed run is logged and kept for status; it never
// reaches mail handling. A run that failed for a reason that may pass (the target could not
// be reached: TargetUnavailableError) is tried again after 1 minute, then 2, 4, … up to the
// period (or an hour when there is none), so that mail is not left without a backup for a
// whole period because of one dropped connection. A refusal (a wrong password) waits for the
// next period: trying again changes nothing until the owner does.
import type { Logger } from '../log/index.ts'
import type { BackupReport } from './mailbox-backup.ts'

export interface BackupSchedulerInit {
  /** A backup starts this often (0: only after new mail and on demand). */
  everyMinutes: number
  /** A backup starts this long after new mail (a burst of mail makes one backup). 0: never. */
  afterNewMailMs: number
  /** What the node's backup target is, for the log and status (no secrets). */
  description: string
  /** The first retry after a failure that may pass, ms (default 60 s; doubles each time). */
  retryFirstMs?: number
}

export interface BackupSchedulerComponents {
  logger: Logger
  /** One backup run, reporting progress if it can; throws to say why it could not be done. */
  run: (onProgress?: (done: number, total: number) => void) => Promise<BackupReport>
  /** Whether a run can be done now (the vault is unlocked); scheduled runs are skipped otherwise. */
  ready: () => boolean
  /**
   * Where the last successful backup is kept across restarts (a vault record), so that "what
   * would be lost if this disk died now" is known after a restart. Read at unlock.
   */
  remember?: { load: () => Promise<LastBackup | undefined>, save: (last: LastBackup) => Promise<void> }
}

/** The last backup run, for status. Counts only, never content. */
export interface LastBackup {
  target: string
  startedAt: string
  finishedAt: string
  ok: boolean
  report?: BackupReport
  /** Why the run failed, as a sentence. */
  error?: string
  /** When a failed run is tried again by itself (ISO 8601); absent: at the next period or new mail. */
  retryAt?: string
}

export class BackupScheduler {
  private readonly log: Logger
  private running: Promise<LastBackup> | undefined
  private again = false
  private lastRun: LastBackup | undefined
  private lastOk: LastBackup | undefined
  private progressNow: { done: number, total: number } | undefined
  private interval: NodeJS.Timeout | undefined
  private debounce: NodeJS.Timeout | undefined
  private retry: NodeJS.Timeout | undefined
  /** Runs in a row that failed for a reason that may pass. */
  private failuresInARow = 0
  private stopped = true
  /** A backup was due while the vault was locked; the next unlock makes it. */
  private missed = false

  constructor (private readonly init: BackupSchedulerInit, private readonly components: BackupSchedulerComponents) {
    this.log = components.logger.child({ component: 'backup', target: init.description })
  }

  /** Start the periodic runs; the first one is asked for by afterUnlock(). */
  start (): void {
    this.stopped = false
    if (this.init.everyMinutes > 0) {
      this.interval = setInterval(() => { this.scheduled('periodic') }, this.init.everyMinutes * 60_000)
      this.interval.unref()
    }
  }

  /** The vault was unlocked: back up at once after the first unlock, or when one was missed while locked. */
  afterUnlock (): void {
    if (this.lastOk === undefined && this.components.remember !== undefined) {
      this.components.remember.load().then((last) => { this.lastOk ??= last }, (err: unknown) => { this.log.warn({ err: (err as Error).message }, 'The last backup could not be read back.') })
    }
    if (this.lastRun === undefined || this.missed) this.scheduled(this.lastRun === undefined ? 'first unlock' : 'missed while locked')
  }

  /** New mail was stored: back up a little later. */
  newMail (): void {
    if (this.stopped || this.init.afterNewMailMs <= 0 || this.debounce !== undefined) return
    this.debounce = setTimeout(() => { this.debounce = undefined; this.scheduled('new mail') }, this.init.afterNewMailMs)
    this.debounce.unref()
  }

  /** Back up now (or join the run under way) and say how it went; never throws. */
  async backupNow (): Promise<LastBackup> {
    if (this.running !== undefined) return await this.running
    this.running = this.runOnce().finally(() => {
      this.running = undefined
      if (this.again && !this.stopped) { this.again = false; this.scheduled('new mail during the last run') }
    })
    return await this.running
  }

  get description (): string { return this.init.description }
  last (): LastBackup | undefined { return this.lastRun }
  /** The last run that completed: what the target holds now. */
  lastSuccess (): LastBackup | undefined { return this.lastOk }
  /** Messages processed by the run under way, of how many. */
  progress (): { done: number, total: number } | undefined { return this.progressNow }
  inProgress (): boolean { return this.running !== undefined }

  async stop (): Promise<void> {
    this.stopped = true
    clearInterval(this.interval)
    clearTimeout(this.debounce)
    this.cancelRetry()
    this.debounce = undefined
    await this.running?.catch(() => {})
  }

  /** No retry is pending any more (a run started, the node stopped, or the vault is locked): status stops promising one. */
  private cancelRetry (): void {
    clearTimeout(this.retry)
    this.retry = undefined
    if (this.lastRun?.retryAt !== undefined) delete this.lastRun.retryAt
  }

  /** Schedules the next try after a failure that may pass; returns when it will be (ISO 8601). */
  private retryLater (): string | undefined {
    if (this.stopped) return undefined
    this.failuresInARow++
    const first = this.init.retryFirstMs ?? 60_000
    const longest = Math.max(first, this.init.everyMinutes > 0 ? this.init.everyMinutes * 60_000 : 60 * 60_000)
    const delay = Math.min(longest, first * 2 ** Math.min(this.failuresInARow - 1, 30))
    this.retry = setTimeout(() => { this.retry = undefined; this.scheduled('retry after a failure') }, delay)
    this.retry.unref()
    return new Date(Date.now() + delay).toISOString()
  }

  private scheduled (why: string): void {
    if (this.stopped) return
    if (!this.components.ready()) {
      this.missed = true
      this.cancelRetry()
      this.log.debug({ why }, 'A backup was due but the vault is locked; it waits for the next unlock.')
      return
    }
    if (this.running !== undefined) { if (why === 'new mail') this.again = true; return }
    this.missed = false
    this.log.debug({ why }, 'A backup starts.')
    this.backupNow().catch(() => {})
  }

  private async runOnce (): Promise<LastBackup> {
    this.cancelRetry()
    const startedAt = new Date().toISOString()
    let result: LastBackup
    this.progressNow = { done: 0, total: 0 }
    try {
      const report = await this.components.run((done, total) => { this.progressNow = { done, total } })
      result = { target: this.init.description, startedAt, finishedAt: new Date().toISOString(), ok: true, report }
      this.log.info({ ...report }, `Backed up ${report.messages} messages: ${report.uploaded} uploaded, ${report.kept} already there, ${report.deleted} deleted.`)
      this.failuresInARow = 0
    } catch (err) {
      const error = (err as Error).message
      result = { target: this.init.description, startedAt, finishedAt: new Date().toISOString(), ok: false, error }
      const transient = (err as { transient?: unknown }).transient === true
      if (!transient) this.failuresInARow = 0
      const retryAt = transient ? this.retryLater() : undefined
      if (retryAt !== undefined) result.retryAt = retryAt
      this.log.error({ err: error, ...(retryAt !== undefined ? { retryAt } : {}) }, 'The backup failed; the previous backup on the target stays as it was.')
    }
    this.progressNow = undefined
    this.lastRun = result
    if (result.ok) {
      this.lastOk = result
      await this.components.remember?.save(result).catch((err: unknown) => { this.log.warn({ err: (err as Error).message }, 'The last backup could not be written down; it is forgotten at the next restart.') })
    }
    return result
  }
}

/** Keeps the last successful backup in a vault record (kind `backup`, name `last-<target>`). */
export function rememberInVault (vault: { getRecord: (kind: string, name: string) => Promise<Buffer | undefined>, putRecord: (kind: string, name: string, value: Buffer | undefined) => Promise<void> }, target: string): NonNullable<BackupSchedulerComponents['remember']> {
  const name = `last-${target}`
  return {
    load: async () => {
      const value = await vault.getRecord('backup', name)
      return value === undefined ? undefined : JSON.parse(value.toString('utf8')) as LastBackup
    },
    save: async (last) => { await vault.putRecord('backup', name, Buffer.from(JSON.stringify(last), 'utf8')) }
  }
}
