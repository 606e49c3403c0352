// SMTP errors that carry what the peer should see (code, enhanced code, public text) and
// whether the fault is the peer's (logged quietly) or ours (logged loudly), after maddy.
export class SmtpReplyError extends Error {
  override name = 'SmtpReplyError'
  readonly responseCode: number

  constructor (code: number, enhanced: string, publicText: string, readonly peerFault = true) {
    super(`${enhanced} ${publicText}`)
    this.responseCode = code
  }
}
