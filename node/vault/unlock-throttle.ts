// Slows down guessing: after three wrong secrets in a row, each further attempt must wait,
// doubling from 1 s up to 5 minutes. Argon2id already makes each guess cost about a quarter
// of a second; this stops a script from simply running them back to back. The counter lives
// in memory: restarting the node resets it, but restarting costs an attacker far more.
const FREE_ATTEMPTS = 3
const MAX_WAIT_MS = 5 * 60_000

export class UnlockThrottle {
  failures = 0
  private notBefore = 0

  constructor (private readonly now: () => number = Date.now) {}

  waitSeconds (): number {
    return Math.max(0, Math.ceil((this.notBefore - this.now()) / 1000))
  }

  failed (): void {
    this.failures++
    if (this.failures >= FREE_ATTEMPTS) {
      this.notBefore = this.now() + Math.min(MAX_WAIT_MS, 1000 * 2 ** (this.failures - FREE_ATTEMPTS))
    }
  }

  succeeded (): void {
    this.failures = 0
    this.notBefore = 0
  }
}
