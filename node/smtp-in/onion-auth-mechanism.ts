// Teaches smtp-server the SASL mechanism X-SMTORP-ONION (spec/smtorp.md, "Sender node
// authentication"). smtp-server looks mechanisms up by name in its exported SASL table
// (lib/sasl.js, "SASL_<NAME>"), so the mechanism is added there, once, at this edge. It does
// only the wire part: send a fresh challenge, take one answer line, and hand both to the
// server's onAuth, where the node checks the signature with protocol/smtorp-auth.ts.
//
// Depends on smtp-server 3.21 internals (`send`, `_nextHandler`, `session.user`); the version
// is pinned exactly and test/smtp-in.test.ts drives the mechanism end to end.
import { randomBytes } from 'node:crypto'
import SASL from 'smtp-server/lib/sasl.js'
import { CHALLENGE_BYTES, ONION_AUTH_MECHANISM } from '../../protocol/smtorp-auth.ts'

/** What smtp-server's onAuth receives for this mechanism. */
export interface OnionAuthAttempt {
  method: typeof ONION_AUTH_MECHANISM
  challenge: Buffer
  response: string
}

interface SmtpConnectionInternals {
  send (code: number, text?: string): void
  _nextHandler: ((line: Buffer | string, callback: () => void) => void) | false
  session: { user?: unknown, transmissionType?: string }
  _transmissionType (): string
  _server: {
    onAuth (auth: unknown, session: unknown, callback: (err: (Error & { responseCode?: number }) | null | undefined, response?: { user?: unknown, message?: string, responseCode?: number }) => void): void
  }
}

let registered = false

export function registerOnionAuthMechanism (): void {
  if (registered) return
  registered = true
  const table = SASL as unknown as Record<string, unknown>
  table[`SASL_${ONION_AUTH_MECHANISM}`] = function (this: SmtpConnectionInternals, args: string[], callback: () => void): void {
    if (args.length > 0) {
      // RFC 4954 4: an initial response makes no sense here, the answer depends on our challenge.
      this.send(501, '5.5.4 Syntax: AUTH X-SMTORP-ONION without an initial response')
      return callback()
    }
    const challenge = randomBytes(CHALLENGE_BYTES)
    this._nextHandler = (line, next) => {
      const response = line.toString().trim()
      if (response === '*') {
        this.send(501, '5.0.0 Authentication aborted')
        return next()
      }
      const attempt: OnionAuthAttempt = { method: ONION_AUTH_MECHANISM, challenge, response }
      this._server.onAuth(attempt, this.session, (err, result) => {
        if (err !== null && err !== undefined) {
          this.send(err.responseCode ?? 535, err.message)
          return next()
        }
        if (result?.user === undefined) {
          this.send(result?.responseCode ?? 535, result?.message ?? '5.7.8 Authentication credentials invalid')
          return next()
        }
        this.session.user = result.user
        this.session.transmissionType = this._transmissionType()
        this.send(235, '2.7.0 Authentication successful')
        next()
      })
    }
    this.send(334, challenge.toString('base64'))
    callback()
  }
}
