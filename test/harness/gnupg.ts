/**
 * GnuPG (Debian's 2.2) in a throw-away home directory, for interoperability tests: keys made
 * by each side read by the other, and mail made by each side read by the other.
 *
 * Every call runs `gpg --homedir <temp> --batch --no-tty` with loopback pinentry, so the
 * user's ~/.gnupg is never read or written and no pinentry window or terminal prompt can
 * appear; `--disable-dirmngr` and `--no-auto-key-locate` keep it off the network (gpg would
 * otherwise try a WKD lookup for an unknown recipient). Results are asserted on gpg's
 * machine-readable status lines (`--status-fd`, doc/DETAILS in the GnuPG sources), never on
 * its human messages, which are translated and change between versions.
 *
 * gpg starts a gpg-agent for the home directory on first use of a secret key; `stop()` kills
 * it with `gpgconf --kill all` before removing the directory.
 *
 * The PGP/MIME builders at the end make messages the way mutt's gpg.rc does (RFC 3156): the
 * MIME entity is signed in text mode (`--textmode`, signature type 0x01, so gpg itself
 * canonicalises line endings to CRLF) and the signature's hash gives `micalg`.
 */
import { spawn } from 'node:child_process'
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'

export class GpgError extends Error {
  override name = 'GpgError'
}

export interface GpgResult {
  /** gpg's exit code: 0 success, 1 a bad signature (for verify), 2 any other error. */
  code: number
  stdout: Buffer
  /** The `[GNUPG:] ...` lines, without the prefix (e.g. "GOODSIG <keyid> <uid>"). */
  status: string[]
  /** Human messages, only for error reports. */
  stderr: string
}

export interface RunOptions {
  input?: Buffer | string
  /** Passphrase for loopback pinentry (given on a pipe, not on the command line). */
  passphrase?: string
  timeoutMs?: number
}

/** RFC 4880 9.4 hash algorithm ids as gpg reports them in SIG_CREATED, to micalg names (RFC 3156 5). */
const HASH_NAMES: Record<string, string> = { 1: 'md5', 2: 'sha1', 3: 'ripemd160', 8: 'sha256', 9: 'sha384', 10: 'sha512', 11: 'sha224' }

/** The micalg hash name (without "pgp-") for a hash id from a status line, or undefined. */
export function micalgName (hashId: string): string | undefined {
  return HASH_NAMES[hashId]
}

const DEFAULT_TIMEOUT_MS = 15_000

export class Gpg {
  /** The temporary home directory (mode 0700). */
  readonly homedir: string
  private stopped = false

  private constructor (homedir: string) {
    this.homedir = homedir
  }

  static async start (): Promise<Gpg> {
    const homedir = await mkdtemp(join(tmpdir(), 'smtorp-gnupg-'))
    // gpg warns about and gpg-agent refuses a home directory others can read.
    await chmod(homedir, 0o700)
    const gpg = new Gpg(homedir)
    const version = await gpg.run(['--version'])
    if (version.code !== 0) throw new GpgError(`gpg --version failed: ${version.stderr}`)
    return gpg
  }

  /** The first line of `gpg --version`, e.g. "gpg (GnuPG) 2.2.40". */
  async version (): Promise<string> {
    return (await this.run(['--version'])).stdout.toString().split('\n')[0] ?? ''
  }

  /**
   * Run gpg with the harness's fixed options and `args`. Never throws for gpg's own failures
   * (callers decide from the code and status lines); throws on a timeout or when gpg cannot start.
   */
  async run (args: string[], options: RunOptions = {}): Promise<GpgResult> {
    if (this.stopped) throw new GpgError('This GnuPG home directory has been stopped.')
    const fixed = [
      '--homedir', this.homedir, '--batch', '--no-tty', '--no-greeting', '--no-auto-key-locate',
      '--disable-dirmngr', '--pinentry-mode', 'loopback', '--status-fd', '3'
    ]
    if (options.passphrase !== undefined) fixed.push('--passphrase-fd', '4')
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS
    return await new Promise<GpgResult>((resolve, reject) => {
      const child = spawn('gpg', [...fixed, ...args], {
        stdio: ['pipe', 'pipe', 'pipe', 'pipe', options.passphrase !== undefined ? 'pipe' : 'ignore'],
        env: { ...process.env, LC_ALL: 'C', GNUPGHOME: this.homedir }
      })
      const out: Buffer[] = []
      const err: Buffer[] = []
      const status: Buffer[] = []
      child.stdout?.on('data', (b: Buffer) => out.push(b))
      child.stderr?.on('data', (b: Buffer) => err.push(b))
      const statusStream = child.stdio[3] as NodeJS.ReadableStream | null
      statusStream?.on('data', (b: Buffer) => status.push(b))
      const timer = setTimeout(() => {
        child.kill('SIGKILL')
        reject(new GpgError(`gpg ${args.join(' ')} took longer than ${timeoutMs} ms: ${Buffer.concat(err).toString()}`))
      }, timeoutMs)
      child.on('error', e => {
        clearTimeout(timer)
        reject(new GpgError(`gpg could not be started: ${e.message}`))
      })
      child.on('close', code => {
        clearTimeout(timer)
        resolve({
          code: code ?? -1,
          stdout: Buffer.concat(out),
          stderr: Buffer.concat(err).toString(),
          status: Buffer.concat(status).toString().split('\n').filter(l => l.startsWith('[GNUPG:] ')).map(l => l.slice(9))
        })
      })
      // A closed pipe (gpg exiting early, e.g. on a missing key) is reported through the exit code.
      child.stdin?.on('error', () => {})
      const pass = child.stdio[4] as NodeJS.WritableStream | null
      if (pass !== null && options.passphrase !== undefined) {
        pass.on('error', () => {})
        pass.end(`${options.passphrase}\n`)
      }
      child.stdin?.end(options.input ?? '')
    })
  }

  /** Like run, but a non-zero exit is an error carrying gpg's messages. */
  private async must (args: string[], options: RunOptions = {}): Promise<GpgResult> {
    const result = await this.run(args, options)
    if (result.code !== 0) throw new GpgError(`gpg ${args.join(' ')} failed (exit ${result.code}): ${result.stderr.trim()}`)
    return result
  }

  /**
   * A new key for `address`, as GnuPG 2.2 makes it with "future-default": a v4 ed25519 primary
   * key (certify, sign) and a cv25519 encryption subkey, never expiring. Returns its fingerprint.
   * With a passphrase, the secret key is stored protected by it (`--passwd` after generation,
   * since --quick-gen-key takes the passphrase only for the primary key prompt).
   */
  async generateKey (address: string, options: { passphrase?: string } = {}): Promise<string> {
    const made = await this.must(['--quick-gen-key', address, 'future-default', 'default', 'never'], { passphrase: '' })
    const created = statusArgs(made.status, 'KEY_CREATED')
    const fingerprint = created?.[1]
    if (fingerprint === undefined) throw new GpgError(`gpg made no key: ${made.status.join('; ')}`)
    if (options.passphrase !== undefined && options.passphrase !== '') {
      await this.must(['--passwd', fingerprint], { passphrase: options.passphrase })
    }
    return fingerprint
  }

  /** Import armored keys (public, or secret with its passphrase). Returns the fingerprints imported. */
  async importKey (armored: string, options: { passphrase?: string } = {}): Promise<string[]> {
    const result = await this.must(['--import'], { input: armored, ...(options.passphrase !== undefined ? { passphrase: options.passphrase } : {}) })
    const fingerprints = result.status.filter(l => l.startsWith('IMPORT_OK ')).map(l => l.split(' ')[2] ?? '')
    if (fingerprints.length === 0) throw new GpgError(`gpg imported nothing: ${result.status.join('; ')}`)
    return [...new Set(fingerprints)]
  }

  /** One key's listing (`--with-colons`, doc/DETAILS), public or secret. */
  async listColons (id: string, secret = false): Promise<string[][]> {
    const result = await this.must(['--with-colons', '--fixed-list-mode', secret ? '--list-secret-keys' : '--list-keys', id])
    return result.stdout.toString().split('\n').filter(l => l !== '').map(l => l.split(':'))
  }

  async exportPublic (address: string): Promise<string> {
    const result = await this.must(['--armor', '--export', address])
    if (result.stdout.length === 0) throw new GpgError(`gpg has no public key for ${address}.`)
    return result.stdout.toString()
  }

  /**
   * The secret key, armored, protected by `passphrase` (the passphrase it is stored under:
   * gpg-agent hands the key over under the same protection).
   */
  async exportSecret (address: string, passphrase: string): Promise<string> {
    const result = await this.must(['--armor', '--export-secret-keys', address], { passphrase })
    if (result.stdout.length === 0) throw new GpgError(`gpg exported no secret key for ${address}.`)
    return result.stdout.toString()
  }

  /**
   * Encrypt (and sign, when a signer is given) to the recipients, armored. `--trust-model always`:
   * imported keys are not certified in this throw-away keyring. `textmode` marks the literal data
   * as text (mutt does so), which makes gpg convert its line endings to CRLF.
   */
  async encryptSign (data: Buffer | string, recipients: string[], signer?: string, options: { passphrase?: string, textmode?: boolean } = {}): Promise<string> {
    const args = ['--armor', '--trust-model', 'always', '--encrypt']
    if (signer !== undefined) args.push('--sign', '--local-user', signer, '--digest-algo', 'SHA256')
    if (options.textmode === true) args.push('--textmode')
    for (const r of recipients) args.push('--recipient', r)
    const result = await this.must(args, { input: data, passphrase: options.passphrase ?? '' })
    return result.stdout.toString()
  }

  /** Detached armored signature (SHA-256). The status lines carry SIG_CREATED with the hash used. */
  async detachSign (data: Buffer | string, signer: string, options: { passphrase?: string, textmode?: boolean } = {}): Promise<{ armored: string, status: string[] }> {
    const args = ['--armor', '--detach-sign', '--local-user', signer, '--digest-algo', 'SHA256']
    if (options.textmode === true) args.push('--textmode')
    const result = await this.must(args, { input: data, passphrase: options.passphrase ?? '' })
    return { armored: result.stdout.toString(), status: result.status }
  }

  /** RFC 4880 7 cleartext signature of a text (SHA-256). */
  async clearSign (text: string, signer: string, options: { passphrase?: string } = {}): Promise<string> {
    const result = await this.must(['--clearsign', '--local-user', signer, '--digest-algo', 'SHA256'], { input: text, passphrase: options.passphrase ?? '' })
    return result.stdout.toString()
  }

  /** Decrypt (and verify any signature inside). Never throws for gpg's failures: see code and status. */
  async decrypt (armored: string | Buffer): Promise<{ data: Buffer, status: string[], code: number }> {
    const result = await this.run(['--decrypt'], { input: armored, passphrase: '' })
    return { data: result.stdout, status: result.status, code: result.code }
  }

  /** Verify a detached signature over `data`; the status lines say what gpg found. */
  async verifyDetached (data: Buffer | string, signature: string): Promise<string[]> {
    const file = join(this.homedir, `sig-${randomBytes(6).toString('hex')}.asc`)
    await writeFile(file, signature)
    try {
      // `--verify SIGFILE -`: the signed data comes on stdin, byte for byte.
      return (await this.run(['--verify', file, '-'], { input: data })).status
    } finally {
      await rm(file, { force: true })
    }
  }

  async stop (): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    await new Promise<void>(resolve => {
      const child = spawn('gpgconf', ['--homedir', this.homedir, '--kill', 'all'], { stdio: 'ignore' })
      const timer = setTimeout(() => { child.kill('SIGKILL'); resolve() }, 5_000)
      child.on('error', () => { clearTimeout(timer); resolve() })
      child.on('close', () => { clearTimeout(timer); resolve() })
    })
    await rm(this.homedir, { recursive: true, force: true })
  }
}

/** The arguments of the first status line with this keyword, or undefined. */
export function statusArgs (status: string[], keyword: string): string[] | undefined {
  const line = status.find(l => l === keyword || l.startsWith(`${keyword} `))
  return line === undefined ? undefined : line.split(' ').slice(1)
}

/**
 * The primary-key fingerprint of a good signature: VALIDSIG's tenth argument (doc/DETAILS:
 * "VALIDSIG <fpr> <sig_creation_date> <sig-timestamp> <expire-timestamp> <sig-version>
 * <reserved> <pubkey-algo> <hash-algo> <sig-class> [<primary-key-fpr>]"). Undefined unless
 * there is also a GOODSIG and no BADSIG.
 */
export function goodSigner (status: string[]): string | undefined {
  if (statusArgs(status, 'GOODSIG') === undefined || statusArgs(status, 'BADSIG') !== undefined) return undefined
  const valid = statusArgs(status, 'VALIDSIG')
  return valid?.[9] ?? valid?.[0]
}

// PGP/MIME and inline PGP messages as a mail client (mutt) makes them from gpg's output.

export interface GpgMailInit {
  /** RFC 5322 header fields of the message (From, To, Subject, Date, Message-ID...), without Content-*. */
  headers: string[]
  /** The MIME entity to protect: its Content-* fields, a blank line and its body. */
  entity: Buffer | string
  signer: string
  passphrase?: string
}

/** Every line ending as CRLF. */
function crlf (data: Buffer | string): Buffer {
  return Buffer.from(Buffer.from(data).toString('latin1').replace(/\r?\n/g, '\r\n'), 'latin1')
}

function boundary (): string {
  return `----gpg-${randomBytes(9).toString('hex')}`
}

function message (headers: string[], contentType: string, body: string | Buffer): Buffer {
  return Buffer.concat([
    Buffer.from([...headers, 'MIME-Version: 1.0', `Content-Type: ${contentType}`].map(h => `${h}\r\n`).join('') + '\r\n', 'latin1'),
    crlf(body)
  ])
}

/**
 * RFC 3156 5 multipart/signed: the entity in canonical form (CRLF), signed detached by gpg in
 * text mode, micalg from the hash gpg reports (SIG_CREATED). Returns the message and the exact
 * signed bytes.
 */
export async function gpgSignedMessage (gpg: Gpg, init: GpgMailInit): Promise<{ raw: Buffer, signed: Buffer, signature: string }> {
  const signed = crlf(init.entity)
  const { armored, status } = await gpg.detachSign(signed, init.signer, { textmode: true, ...(init.passphrase !== undefined ? { passphrase: init.passphrase } : {}) })
  const hash = statusArgs(status, 'SIG_CREATED')?.[2] ?? ''
  const micalg = micalgName(hash)
  if (micalg === undefined) throw new GpgError(`gpg signed with a hash micalg cannot name (id ${hash}).`)
  const b = boundary()
  const body = Buffer.concat([
    Buffer.from(`This is an OpenPGP/MIME signed message (RFC 4880 and 3156)\r\n--${b}\r\n`, 'latin1'),
    signed,
    Buffer.from(`\r\n--${b}\r\nContent-Type: application/pgp-signature; name="signature.asc"\r\n` +
      'Content-Description: OpenPGP digital signature\r\n\r\n' +
      `${armored.replace(/\r?\n$/, '')}\r\n--${b}--\r\n`, 'latin1')
  ])
  return {
    raw: message(init.headers, `multipart/signed; micalg=pgp-${micalg};\r\n protocol="application/pgp-signature"; boundary="${b}"`, body),
    signed,
    signature: armored
  }
}

/**
 * RFC 3156 6.2 multipart/encrypted: the entity signed and encrypted in one OpenPGP message
 * (`--encrypt --sign --textmode --armor`, as mutt's pgp_encrypt_sign_command), after the
 * "Version: 1" part.
 */
export async function gpgEncryptedMessage (gpg: Gpg, init: GpgMailInit & { recipients: string[] }): Promise<Buffer> {
  const armored = await gpg.encryptSign(crlf(init.entity), init.recipients, init.signer, { textmode: true, ...(init.passphrase !== undefined ? { passphrase: init.passphrase } : {}) })
  const b = boundary()
  const body = `This is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)\r\n--${b}\r\n` +
    'Content-Type: application/pgp-encrypted\r\nContent-Description: PGP/MIME version identification\r\n\r\n' +
    `Version: 1\r\n\r\n--${b}\r\n` +
    'Content-Type: application/octet-stream; name="encrypted.asc"\r\n' +
    'Content-Description: OpenPGP encrypted message\r\nContent-Disposition: inline; filename="encrypted.asc"\r\n\r\n' +
    `${armored.replace(/\r?\n$/, '')}\r\n--${b}--\r\n`
  return message(init.headers, `multipart/encrypted; protocol="application/pgp-encrypted";\r\n boundary="${b}"`, body)
}

/** Inline PGP: a text/plain body that is one armored PGP MESSAGE (encrypted, signed when a signer is given). */
export async function gpgInlineEncryptedMessage (gpg: Gpg, init: { headers: string[], text: string, recipients: string[], signer?: string, passphrase?: string }): Promise<Buffer> {
  const armored = await gpg.encryptSign(init.text, init.recipients, init.signer, { textmode: true, ...(init.passphrase !== undefined ? { passphrase: init.passphrase } : {}) })
  return message(init.headers, 'text/plain; charset=utf-8', armored)
}

/** Inline PGP: a text/plain body that is an RFC 4880 7 cleartext-signed text. */
export async function gpgClearSignedMessage (gpg: Gpg, init: { headers: string[], text: string, signer: string, passphrase?: string }): Promise<Buffer> {
  const armored = await gpg.clearSign(init.text, init.signer, init.passphrase !== undefined ? { passphrase: init.passphrase } : {})
  return message(init.headers, 'text/plain; charset=utf-8', armored)
}
