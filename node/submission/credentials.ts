// Submission credentials, one per mail client (device): the owner names a device, gets a user
// name and a random password once, and can list and revoke them. A credential whose password
// is guessed wrong too often in a row is disabled until the owner re-enables or replaces it.
//
// The list is one record in the vault (sealed there); this module gets it as bytes through
// `load` and `save` and knows nothing of the vault. Passwords are kept only as SHA-256
// digests: they are random tokens of 100 bits, so a fast hash is enough (nobody can search
// 2^100 guesses; a slow KDF guards low-entropy, human-chosen passwords, which these are not).
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import type { Logger } from '../log/index.ts'
import { base32Encode } from '../../protocol/base32.ts'

/** Wrong passwords in a row for one user name before its credential is disabled. */
export const MAX_FAILED_LOGINS = 10
/** A login only moves lastUsedAt and the failure count: written this long after, in one go. */
const LAZY_SAVE_MS = 5_000
const RECORD_VERSION = 1
const PASSWORD_CHARS = 20 // base32: 5 bits each, 100 bits
const NAME_MAX = 64

export interface Credential {
  id: string
  /** The device it is for, as the owner named it. */
  name: string
  /** The user name the mail client logs in with. */
  username: string
  createdAt: number
  lastUsedAt?: number
  /** Failed logins in a row with this user name. */
  failures: number
  /** Disabled after too many failed logins; revoked ones are deleted. */
  disabled: boolean
}

/**
 * What a login attempt comes to. 'unavailable': the credentials are not loaded yet (the
 * vault has not been unlocked since the node started), so no answer can be given.
 */
export type LoginCheck = 'ok' | 'wrong' | 'disabled' | 'unavailable'

/** What the submission port needs from the credentials. */
export interface CredentialVerifier {
  verify (username: string, password: string): LoginCheck
}

export interface CredentialStoreInit {
  /** Default MAX_FAILED_LOGINS. */
  maxFailures?: number
  /** Default 5 s. */
  lazySaveMs?: number
}

export interface CredentialStoreComponents {
  logger: Logger
  /** The sealed record's bytes from the vault, or undefined when there is none yet. */
  load: () => Promise<Buffer | undefined>
  /** Replace the record in the vault, durably. */
  save: (record: Buffer) => Promise<void>
}

export class CredentialError extends Error {
  override name = 'CredentialError'
}

interface StoredCredential extends Credential {
  /** SHA-256 of the password, base64. */
  digest: string
}

interface CredentialRecord {
  version: number
  credentials: StoredCredential[]
}

function digestOf (password: string): Buffer {
  return createHash('sha256').update(password, 'utf8').digest()
}

/** "Gina's Phone" → "ginas-phone": lowercase ASCII letters, digits and dashes, at most 20. */
export function slugOf (name: string): string {
  const slug = name.normalize('NFKD').replace(/[\u0300-\u036f]/g, '').toLowerCase()
    .replace(/['’]/g, '').replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 20).replace(/-+$/, '')
  return slug === '' ? 'device' : slug
}

function publicView (c: StoredCredential): Credential {
  return { id: c.id, name: c.name, username: c.username, createdAt: c.createdAt, ...(c.lastUsedAt !== undefined ? { lastUsedAt: c.lastUsedAt } : {}), failures: c.failures, disabled: c.disabled }
}

export class CredentialStore implements CredentialVerifier {
  private readonly log: Logger
  private readonly maxFailures: number
  private readonly lazySaveMs: number
  private readonly byUsername = new Map<string, StoredCredential>()
  private loaded = false
  private loading: Promise<void> | undefined
  /** Saves run one after another, each writing the state as it is when it starts. */
  private saving: Promise<void> = Promise.resolve()
  private lazyTimer: NodeJS.Timeout | undefined
  /** A change not on disk yet (a lazy save pending, or one that failed). */
  private dirty = false

  constructor (init: CredentialStoreInit, private readonly components: CredentialStoreComponents) {
    this.log = components.logger.child({ component: 'credentials' })
    this.maxFailures = init.maxFailures ?? MAX_FAILED_LOGINS
    this.lazySaveMs = init.lazySaveMs ?? LAZY_SAVE_MS
  }

  /** Read the record from the vault (at the node's first unlock); later calls do nothing. */
  async load (): Promise<void> {
    if (this.loaded) return
    this.loading ??= (async () => {
      const bytes = await this.components.load()
      if (bytes !== undefined) {
        let record: CredentialRecord
        try {
          record = JSON.parse(bytes.toString('utf8')) as CredentialRecord
        } catch (err) {
          throw new CredentialError(`The mail client credentials cannot be read: ${(err as Error).message}`)
        }
        if (record.version !== RECORD_VERSION) throw new CredentialError(`The mail client credentials have format ${record.version}; this version reads format ${RECORD_VERSION}`)
        for (const c of record.credentials) this.byUsername.set(c.username, c)
      }
      this.loaded = true
      this.log.info({ credentials: this.byUsername.size }, 'mail client credentials loaded')
    })().finally(() => { this.loading = undefined })
    await this.loading
  }

  list (): Credential[] {
    this.mustBeLoaded()
    return [...this.byUsername.values()].sort((a, b) => a.createdAt - b.createdAt).map(publicView)
  }

  /** A new credential for the device `name`; the password is returned here and never again. */
  async add (name: string): Promise<{ credential: Credential, password: string }> {
    this.mustBeLoaded()
    const trimmed = name.trim()
    if (trimmed.length < 1 || trimmed.length > NAME_MAX) throw new CredentialError(`A device name has 1 to ${NAME_MAX} characters.`)
    const slug = slugOf(trimmed)
    let username: string
    do {
      username = `${slug}-${base32Encode(randomBytes(3)).slice(0, 4)}`
    } while (this.byUsername.has(username))
    const password = base32Encode(randomBytes(13)).slice(0, PASSWORD_CHARS)
    const stored: StoredCredential = {
      id: randomBytes(8).toString('hex'),
      name: trimmed,
      username,
      createdAt: Date.now(),
      failures: 0,
      disabled: false,
      digest: digestOf(password).toString('base64')
    }
    this.byUsername.set(username, stored)
    try {
      await this.saveNow()
    } catch (err) {
      this.byUsername.delete(username)
      throw err
    }
    this.log.info({ credential: stored.id, username }, 'a mail client credential was added')
    return { credential: publicView(stored), password }
  }

  /** Delete a credential; durable when it resolves. False if there is no such credential. */
  async revoke (id: string): Promise<boolean> {
    this.mustBeLoaded()
    const found = [...this.byUsername.values()].find(c => c.id === id)
    if (found === undefined) return false
    // Gone from memory first and for good: even if the save fails, it no longer logs in.
    this.byUsername.delete(found.username)
    await this.saveNow()
    this.log.info({ credential: id, username: found.username }, 'a mail client credential was revoked')
    return true
  }

  /** Let a disabled credential log in again, its failure count cleared. */
  async enable (id: string): Promise<boolean> {
    this.mustBeLoaded()
    const found = [...this.byUsername.values()].find(c => c.id === id)
    if (found === undefined) return false
    found.disabled = false
    found.failures = 0
    await this.saveNow()
    this.log.info({ credential: id, username: found.username }, 'a mail client credential was enabled again')
    return true
  }

  /**
   * Check a login. Synchronous, on the copy in memory: it counts failures and notes the last
   * use, saved lazily; disabling is saved at once (not awaited). An unknown user name is
   * just 'wrong'. A disabled credential is refused even with the right password.
   */
  verify (username: string, password: string): LoginCheck {
    if (!this.loaded) return 'unavailable'
    // User names are not secret (the owner copies them into mail clients), so looking one up
    // need not take constant time; the password comparison does.
    const found = this.byUsername.get(username.toLowerCase())
    if (found === undefined) return 'wrong'
    if (found.disabled) return 'disabled'
    if (timingSafeEqual(digestOf(password), Buffer.from(found.digest, 'base64'))) {
      found.failures = 0
      found.lastUsedAt = Date.now()
      this.saveLater()
      return 'ok'
    }
    found.failures++
    if (found.failures >= this.maxFailures) {
      found.disabled = true
      this.log.warn({ credential: found.id, username: found.username, failures: found.failures }, 'a mail client credential was disabled after too many failed logins')
      this.saveNow().catch(() => {}) // saveNow logs its own failure
      return 'disabled'
    }
    this.saveLater()
    return 'wrong'
  }

  /** Write any change not on disk yet (before the node stops, or after an unlock). */
  async flush (): Promise<void> {
    if (this.dirty) await this.saveNow().catch(() => {})
    else await this.saving
  }

  private mustBeLoaded (): void {
    if (!this.loaded) throw new CredentialError('The mail client credentials are not available until the vault is unlocked.')
  }

  private saveLater (): void {
    this.dirty = true
    if (this.lazyTimer !== undefined) return
    this.lazyTimer = setTimeout(() => {
      this.lazyTimer = undefined
      this.saveNow().catch(() => {})
    }, this.lazySaveMs)
    this.lazyTimer.unref()
  }

  private async saveNow (): Promise<void> {
    clearTimeout(this.lazyTimer)
    this.lazyTimer = undefined
    this.dirty = true
    const run = this.saving.then(async () => {
      // The state as it is now, so a later change is never overwritten by an older one.
      this.dirty = false
      const record: CredentialRecord = { version: RECORD_VERSION, credentials: [...this.byUsername.values()] }
      try {
        await this.components.save(Buffer.from(JSON.stringify(record), 'utf8'))
      } catch (err) {
        this.dirty = true
        // Kept in memory; a later save (the next login, flush at unlock) writes it.
        this.log.warn({ err: (err as Error).message }, 'could not save the mail client credentials; will try again')
        throw err
      }
    })
    this.saving = run.catch(() => {})
    await run
  }
}
