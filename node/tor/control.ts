// A small client for Tor's control protocol (torspec control-spec.txt, "TC: A Tor control
// protocol (Version 1)").
//
// Wire format (control-spec 2.3, 2.4):
//   Reply line    = StatusCode ("-" / "+" / " ") text CRLF
//   "-" MidReplyLine, "+" DataReplyLine (followed by dot-encoded data ending in "." CRLF),
//   " " EndReplyLine.
// Replies come back in the order commands were sent. Asynchronous events (status 650,
// control-spec 4.1) can arrive between replies, never inside one; they use the same
// line syntax, so a multi-line event ("650-" ... "650 ") is collected the same way.
//
// Authentication (control-spec 3.5, 3.24): PROTOCOLINFO tells which methods the server
// accepts and where the cookie lives; we prefer SAFECOOKIE (HMAC challenge, so a fake
// ControlPort cannot steal the cookie), then COOKIE, then HASHEDPASSWORD, then NULL.
import { connect, type Socket } from 'node:net'
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { EventEmitter } from 'node:events'

export class TorControlError extends Error {
  override name = 'TorControlError'
  /** Status code of the reply, when the error is a negative reply from tor. */
  readonly code: number | undefined
  constructor (message: string, code?: number) {
    super(message)
    this.code = code
  }
}

/** The control connection closed (or never opened) while a command was pending. */
export class TorControlClosedError extends TorControlError {
  override name = 'TorControlClosedError'
}

export interface ReplyLine {
  code: number
  /** '-' mid line, '+' data line, ' ' end line. */
  kind: '-' | '+' | ' '
  text: string
  /** Data block following a '+' line, dot-decoding undone, lines joined by "\n". */
  data?: string
}

export interface Reply {
  code: number
  lines: ReplyLine[]
}

const SAFECOOKIE_SERVER_KEY = 'Tor safe cookie authentication server-to-controller hash'
const SAFECOOKIE_CLIENT_KEY = 'Tor safe cookie authentication controller-to-server hash'

/**
 * Incremental parser of reply lines into whole replies. Kept apart from the socket so
 * it can be tested with tables of raw lines.
 */
export class ReplyParser {
  #buffer = ''
  #lines: ReplyLine[] = []
  #data: string[] | undefined

  /** Feed received text; returns the replies completed by it. */
  push (chunk: string): Reply[] {
    this.#buffer += chunk
    const replies: Reply[] = []
    let nl: number
    while ((nl = this.#buffer.indexOf('\n')) >= 0) {
      let line = this.#buffer.slice(0, nl)
      this.#buffer = this.#buffer.slice(nl + 1)
      if (line.endsWith('\r')) line = line.slice(0, -1)
      if (this.#data !== undefined) {
        if (line === '.') {
          const last = this.#lines[this.#lines.length - 1]
          if (last !== undefined) last.data = this.#data.join('\n')
          this.#data = undefined
        } else {
          // control-spec 2.4: a leading "." in a data line is doubled.
          this.#data.push(line.startsWith('.') ? line.slice(1) : line)
        }
        continue
      }
      const m = /^(\d{3})([-+ ])(.*)$/.exec(line)
      if (m === null) throw new TorControlError(`malformed control reply line: ${JSON.stringify(line.slice(0, 80))}`)
      const code = Number(m[1])
      const kind = m[2] as ReplyLine['kind']
      this.#lines.push({ code, kind, text: m[3]! })
      if (kind === '+') this.#data = []
      else if (kind === ' ') {
        replies.push({ code, lines: this.#lines })
        this.#lines = []
      }
    }
    return replies
  }
}

/**
 * Parses `KEY=VALUE KEY2="quoted value"` into a map (control-spec 2.1 QuotedString with
 * backslash escapes). Positional words are returned under their index ("0", "1", ...).
 */
export function parseKeywords (text: string): Map<string, string> {
  const out = new Map<string, string>()
  const re = /\s*(?:([A-Za-z0-9_/.-]+)=)?("(?:[^"\\]|\\.)*"|\S+)/g
  let position = 0
  let m: RegExpExecArray | null
  while ((m = re.exec(text)) !== null) {
    let value = m[2]!
    if (value.startsWith('"') && value.endsWith('"') && value.length >= 2) {
      value = value.slice(1, -1).replace(/\\(.)/g, '$1')
    }
    if (m[1] !== undefined) out.set(m[1], value)
    else out.set(String(position++), value)
  }
  return out
}

/** Quote a string for a control command argument (control-spec 2.1 QuotedString). */
export function quoteString (s: string): string {
  return '"' + s.replace(/[\\"]/g, (c) => '\\' + c) + '"'
}

export interface TorControlEvents {
  /** An asynchronous event (status 6xx); `lines[0].text` starts with the event name. */
  event: [Reply]
  /** The connection closed; pending commands were rejected. */
  close: [Error | undefined]
}

export interface AuthOptions {
  /** Cookie file to use; when omitted, the one named by PROTOCOLINFO is read. */
  cookieFile?: string
  password?: string
}

/**
 * One control connection. Commands are queued and answered in order; events are
 * emitted as 'event'. When the socket closes every pending command is rejected with
 * TorControlClosedError and 'close' is emitted once.
 */
export class TorControl extends EventEmitter<TorControlEvents> {
  #socket: Socket
  #parser = new ReplyParser()
  #pending: { resolve: (r: Reply) => void, reject: (e: Error) => void }[] = []
  #closed = false
  #closeError: Error | undefined

  private constructor (socket: Socket) {
    super()
    this.#socket = socket
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => {
      let replies: Reply[]
      try {
        replies = this.#parser.push(chunk)
      } catch (err) {
        socket.destroy(err as Error)
        return
      }
      for (const reply of replies) {
        if (reply.code >= 600 && reply.code < 700) {
          this.emit('event', reply)
        } else {
          const waiter = this.#pending.shift()
          // A reply nobody asked for is a protocol violation; drop the connection.
          if (waiter === undefined) socket.destroy(new TorControlError('unexpected reply from tor'))
          else waiter.resolve(reply)
        }
      }
    })
    socket.on('error', (err) => { this.#closeError ??= err })
    socket.on('close', () => {
      this.#closed = true
      const err = new TorControlClosedError(
        'tor control connection closed' + (this.#closeError !== undefined ? `: ${this.#closeError.message}` : ''))
      for (const waiter of this.#pending.splice(0)) waiter.reject(err)
      this.emit('close', this.#closeError)
    })
  }

  /** Open a TCP connection to a ControlPort (not yet authenticated). */
  static async connect (host: string, port: number, timeoutMs = 10_000): Promise<TorControl> {
    const socket = connect({ host, port })
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.destroy()
        reject(new TorControlError(`timed out connecting to tor control port ${host}:${port}`))
      }, timeoutMs)
      socket.once('connect', () => { clearTimeout(timer); resolve() })
      socket.once('error', (err) => {
        clearTimeout(timer)
        reject(new TorControlClosedError(`cannot connect to tor control port ${host}:${port}: ${err.message}`))
      })
    })
    return new TorControl(socket)
  }

  get closed (): boolean { return this.#closed }

  /** Send one command line (without CRLF) and wait for its whole reply, whatever its code. */
  async request (line: string): Promise<Reply> {
    if (this.#closed) throw new TorControlClosedError('tor control connection is closed')
    if (/[\r\n]/.test(line)) throw new TorControlError('control command must be a single line')
    return await new Promise<Reply>((resolve, reject) => {
      this.#pending.push({ resolve, reject })
      this.#socket.write(line + '\r\n')
    })
  }

  /**
   * Send a command and require a 250 reply. The error message includes the command
   * verb only (arguments may be secret, e.g. ADD_ONION keys or passwords).
   */
  async command (line: string): Promise<Reply> {
    const reply = await this.request(line)
    if (reply.code !== 250) {
      const verb = line.split(' ', 1)[0]
      throw new TorControlError(`tor refused ${verb}: ${reply.code} ${reply.lines.map((l) => l.text).join(' ')}`, reply.code)
    }
    return reply
  }

  /** GETINFO keys; returns key → value (data blocks for multi-line values). */
  async getInfo (...keys: string[]): Promise<Map<string, string>> {
    const reply = await this.command(`GETINFO ${keys.join(' ')}`)
    const out = new Map<string, string>()
    for (const line of reply.lines) {
      const eq = line.text.indexOf('=')
      if (eq < 0) continue
      out.set(line.text.slice(0, eq), line.data ?? line.text.slice(eq + 1))
    }
    return out
  }

  async authenticate (opts: AuthOptions = {}): Promise<void> {
    const info = await this.command('PROTOCOLINFO 1')
    const authLine = info.lines.find((l) => l.text.startsWith('AUTH '))
    const kw = parseKeywords(authLine?.text.slice(5) ?? '')
    const methods = new Set((kw.get('METHODS') ?? '').split(','))
    const cookieFile = opts.cookieFile ?? kw.get('COOKIEFILE')

    if (opts.password !== undefined && methods.has('HASHEDPASSWORD')) {
      await this.command(`AUTHENTICATE ${quoteString(opts.password)}`)
      return
    }
    if ((methods.has('SAFECOOKIE') || methods.has('COOKIE')) && cookieFile !== undefined) {
      const cookie = await readFile(cookieFile)
      if (cookie.length !== 32) throw new TorControlError(`tor cookie file ${cookieFile} does not hold 32 bytes`)
      if (methods.has('SAFECOOKIE')) {
        const clientNonce = randomBytes(32)
        const reply = await this.command(`AUTHCHALLENGE SAFECOOKIE ${clientNonce.toString('hex')}`)
        const ch = parseKeywords(reply.lines[0]?.text ?? '')
        const serverHash = Buffer.from(ch.get('SERVERHASH') ?? '', 'hex')
        const serverNonce = Buffer.from(ch.get('SERVERNONCE') ?? '', 'hex')
        const message = Buffer.concat([cookie, clientNonce, serverNonce])
        const expected = createHmac('sha256', SAFECOOKIE_SERVER_KEY).update(message).digest()
        if (serverHash.length !== expected.length || !timingSafeEqual(serverHash, expected)) {
          throw new TorControlError('tor control port failed the SAFECOOKIE challenge (wrong cookie file or not tor)')
        }
        const clientHash = createHmac('sha256', SAFECOOKIE_CLIENT_KEY).update(message).digest()
        await this.command(`AUTHENTICATE ${clientHash.toString('hex')}`)
      } else {
        await this.command(`AUTHENTICATE ${cookie.toString('hex')}`)
      }
      return
    }
    if (methods.has('NULL')) {
      await this.command('AUTHENTICATE')
      return
    }
    throw new TorControlError(`no usable tor control authentication method (tor offers ${[...methods].join(',') || 'none'})`)
  }

  /** Close the connection; pending commands are rejected. */
  close (): void {
    if (!this.#closed) this.#socket.end()
    // If tor does not close its side promptly, drop it.
    setTimeout(() => this.#socket.destroy(), 1000).unref()
  }
}

/** Parses `STATUS_CLIENT ... BOOTSTRAP PROGRESS=n ... SUMMARY="..."` (or the GETINFO value). */
export function parseBootstrap (text: string): { percent: number, summary: string, tag: string } | undefined {
  const i = text.indexOf('BOOTSTRAP ')
  if (i < 0) return undefined
  const kw = parseKeywords(text.slice(i + 'BOOTSTRAP '.length))
  const progress = Number(kw.get('PROGRESS'))
  if (!Number.isFinite(progress)) return undefined
  return { percent: progress, summary: kw.get('SUMMARY') ?? '', tag: kw.get('TAG') ?? '' }
}
