// A Delivery for tests of the queue alone: it records every envelope and answers as the
// script says (results per recipient, or an Error that fails the whole attempt).
import type { Delivery } from '../../node/delivery/index.ts'
import type { Envelope, RecipientResult } from '../../node/smtp-client/index.ts'

export type Script = (destination: string, envelope: Envelope) => RecipientResult[] | Error

/** Every recipient accepted. */
export const acceptAll: Script = (_destination, envelope) => envelope.to.map(address => ({ address, ok: true, permanent: false, reply: '250 2.0.0 ok' }))

export class ScriptedDelivery implements Delivery {
  calls: Array<{ destination: string, envelope: Envelope }> = []
  constructor (public script: Script = acceptAll) {}
  async deliver (destination: string, envelope: Envelope): Promise<RecipientResult[]> {
    this.calls.push({ destination, envelope })
    const result = this.script(destination, envelope)
    if (result instanceof Error) throw result
    return result
  }
  async stop (): Promise<void> {}
  stats (): { connectionsOpened: number, open: number } { return { connectionsOpened: 0, open: 0 } }
}
