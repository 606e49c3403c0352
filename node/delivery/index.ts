// Delivery: hands one envelope to its next hop and reports per recipient.
// - SMTorP: "<onion>.onion" destinations are reached through Tor's SOCKS port at the onion's
//   port 25; we prove our own onion with AUTH X-SMTORP-ONION before MAIL.
// - Legacy: every other domain goes to the configured relay (smarthost), with STARTTLS
//   required by default and optional AUTH PLAIN, directly or through Tor.
// Connections are kept per destination and reused, so a burst of mail to one peer rides one
// Tor circuit: envelopes that wait for the same destination go out as one pipelined batch
// (SmtpConnection.sendBatch). Idle connections are closed after `idleConnectionMs`.
// The relay settings can change at run time (setRelay, from the web UI); testRelay tries
// settings without sending anything.
import type { Logger } from '../log/index.ts'
import type { RelayConfig } from '../config/index.ts'
import type { OnionKey } from '../../protocol/onion.ts'
import { SmtpConnection, SmtpClientError, connectViaSocks, SocksError, type Envelope, type RecipientResult } from '../smtp-client/index.ts'
import { relayTlsOptions } from './relay-test.ts'

export { testRelay, type RelayTestOptions, type RelayTestResult } from './relay-test.ts'

export const RELAY_DESTINATION = 'relay'

export interface DeliveryInit {
  onionKey: OnionKey
  relay?: RelayConfig
  idleConnectionMs: number
  /** Through Tor, to a peer's onion (default 60 s; tor's own SocksTimeout is 2 min). */
  connectTimeoutMs?: number
  /** Per reply from a peer (default 60 s). The relay gets RFC 5321's 5 minutes. */
  commandTimeoutMs?: number
}

export interface DeliveryComponents {
  logger: Logger
  /** Tor's SOCKS port; asked at each new connection, since tor may have restarted on another port. */
  socksEndpoint: () => { host: string, port: number }
  /**
   * Called when tor could not reach an onion: ask tor to fetch its descriptor afresh, so a
   * peer that restarted (new introduction points) is reached at the next attempt rather than
   * after tor's cached descriptor fails on its own.
   */
  refreshOnion?: (onion: string) => void
}

/** A failure of the whole attempt (no connection, peer refused us); `permanent` as in SMTP. */
export class DeliveryError extends Error {
  override name = 'DeliveryError'
  constructor (message: string, readonly permanent: boolean) {
    super(message)
  }
}

export interface Delivery {
  /** Deliver to `destination`: an onion domain, or RELAY_DESTINATION. */
  deliver (destination: string, envelope: Envelope): Promise<RecipientResult[]>
  stop (): Promise<void>
  stats (): { connectionsOpened: number, open: number }
}

/** The node's Delivery, whose relay settings can change while it runs. */
export interface DeliveryService extends Delivery {
  /**
   * Use these relay settings (or none) from now on: new relay connections use them, an idle
   * one is closed at once, and one busy with a batch is replaced before the next batch.
   */
  setRelay (relay: RelayConfig | undefined): void
  hasRelay (): boolean
}

interface Lane {
  connection?: SmtpConnection
  /** For the relay lane: the relay settings' generation the connection was opened with. */
  generation?: number
  waiting: Array<{ envelope: Envelope, resolve: (results: RecipientResult[]) => void, reject: (err: Error) => void }>
  busy: boolean
  idleTimer?: NodeJS.Timeout
}

/** Envelopes sent back to back on one connection before the lane looks at new ones. */
const MAX_BATCH = 32

export function delivery (init: DeliveryInit, components: DeliveryComponents): DeliveryService {
  const log = components.logger.child({ component: 'delivery' })
  const lanes = new Map<string, Lane>()
  let relaySettings = init.relay
  let relayGeneration = 0
  const connectTimeoutMs = init.connectTimeoutMs ?? 60_000
  // Peers are smtorp nodes that answer at once; a silent one is gone (its tor died under a
  // reused connection), and waiting RFC 5321's minutes would only hide that from the sender.
  const commandTimeoutMs = init.commandTimeoutMs ?? 60_000
  const relayCommandTimeoutMs = 300_000 // RFC 5321 4.5.3.2
  let connectionsOpened = 0
  let stopped = false

  async function openConnection (destination: string): Promise<SmtpConnection> {
    connectionsOpened++
    if (destination === RELAY_DESTINATION) return await openRelay()
    const socks = components.socksEndpoint()
    let socket
    try {
      socket = await connectViaSocks({ proxyHost: socks.host, proxyPort: socks.port, host: destination, port: 25, isolation: destination, timeoutMs: connectTimeoutMs })
    } catch (err) {
      components.refreshOnion?.(destination)
      throw err
    }
    const connection = await SmtpConnection.open(socket, { ehloName: `${init.onionKey.address}.onion`, timeoutMs: commandTimeoutMs })
    await connection.authOnion(init.onionKey, destination)
    return connection
  }

  async function openRelay (): Promise<SmtpConnection> {
    const relay = relaySettings
    if (relay === undefined) throw new DeliveryError('no legacy relay is configured', true)
    let socket
    if (relay.viaTor) {
      const socks = components.socksEndpoint()
      socket = await connectViaSocks({ proxyHost: socks.host, proxyPort: socks.port, host: relay.host, port: relay.port, isolation: 'relay', timeoutMs: connectTimeoutMs })
    } else {
      socket = await SmtpConnection.dial(relay.host, relay.port, connectTimeoutMs)
    }
    // A neutral EHLO name: the relay learns nothing about the node's onion or the host.
    const connection = await SmtpConnection.open(socket, { ehloName: 'smtorp.invalid', timeoutMs: relayCommandTimeoutMs })
    if (connection.extensions.has('STARTTLS')) {
      // RFC 6066 3: no server name indication for an IP address.
      await connection.startTls(relayTlsOptions(relay))
    } else if (relay.requireTls) {
      connection.close()
      throw new DeliveryError(`the relay ${relay.host}:${relay.port} does not offer STARTTLS, and the relay settings require it (requireTls)`, false)
    }
    if (relay.username !== undefined) {
      try {
        await connection.authPlain(relay.username, relay.password ?? '')
      } catch (err) {
        // Wrong credentials are our configuration, not the message's fault: keep the mail
        // queued (the sender sees why) until the owner fixes relay.username/password.
        connection.close()
        throw new DeliveryError(`the relay refused our login (check the relay's user name and password): ${(err as Error).message}`, false)
      }
    }
    return connection
  }

  function asDeliveryError (err: unknown): DeliveryError {
    if (err instanceof DeliveryError) return err
    if (err instanceof SmtpClientError || err instanceof SocksError) {
      return new DeliveryError(err.message, err instanceof SmtpClientError ? err.permanent : !err.transient)
    }
    return new DeliveryError(`unexpected failure: ${(err as Error).message}`, false)
  }

  /** Send a batch on the lane's connection, opening one if needed. */
  async function sendOnLane (destination: string, lane: Lane, envelopes: Envelope[]): Promise<Array<RecipientResult[] | SmtpClientError>> {
    const current = destination !== RELAY_DESTINATION || lane.generation === relayGeneration
    const reused = lane.connection?.usable === true && current
    if (!reused) {
      // A relay connection made with settings since replaced says goodbye (in the background).
      if (lane.connection?.usable === true) void lane.connection.quit()
      lane.connection = undefined
      const generation = relayGeneration
      lane.connection = await openConnection(destination)
      lane.generation = generation
    }
    const outcomes = await lane.connection!.sendBatch(envelopes)
    // A reused connection may have been closed by the peer while idle: if it failed before
    // the server said anything, try once more on a fresh one.
    if (reused && outcomes.every(o => o instanceof SmtpClientError && o.reply === undefined)) {
      log.debug({ destination }, 'reused connection failed, opening a new one')
      lane.connection = undefined
      return await sendOnLane(destination, lane, envelopes)
    }
    return outcomes
  }

  /** Work through the lane's waiting envelopes, a batch at a time, on one connection. */
  async function pump (destination: string, lane: Lane): Promise<void> {
    if (lane.busy) return
    lane.busy = true
    clearTimeout(lane.idleTimer)
    while (lane.waiting.length > 0) {
      const batch = lane.waiting.splice(0, MAX_BATCH)
      try {
        const outcomes = await sendOnLane(destination, lane, batch.map(b => b.envelope))
        batch.forEach((b, i) => {
          const outcome = outcomes[i]!
          if (outcome instanceof SmtpClientError) b.reject(asDeliveryError(outcome))
          else b.resolve(outcome)
        })
      } catch (err) {
        lane.connection?.close()
        lane.connection = undefined
        const failure = asDeliveryError(err)
        for (const b of batch) b.reject(failure)
      }
    }
    lane.busy = false
    if (lane.connection?.usable === true) {
      lane.idleTimer = setTimeout(() => { void closeLane(destination) }, init.idleConnectionMs)
      lane.idleTimer.unref()
    }
  }

  async function closeLane (destination: string): Promise<void> {
    const lane = lanes.get(destination)
    if (lane === undefined) return
    clearTimeout(lane.idleTimer)
    if (!lane.busy && lane.waiting.length === 0) lanes.delete(destination)
    const connection = lane.connection
    lane.connection = undefined
    await connection?.quit()
  }

  return {
    async deliver (destination, envelope) {
      if (stopped) throw new DeliveryError('the node is stopping', false)
      let lane = lanes.get(destination)
      if (lane === undefined) {
        lane = { waiting: [], busy: false }
        lanes.set(destination, lane)
      }
      const current = lane
      return await new Promise<RecipientResult[]>((resolve, reject) => {
        current.waiting.push({ envelope, resolve, reject })
        void pump(destination, current)
      })
    },
    setRelay (relay) {
      relaySettings = relay
      relayGeneration++
      log.info({ relay: relay === undefined ? 'none' : `${relay.host}:${relay.port}`, viaTor: relay?.viaTor ?? false }, 'relay settings changed')
      const lane = lanes.get(RELAY_DESTINATION)
      if (lane !== undefined && !lane.busy) void closeLane(RELAY_DESTINATION)
    },
    hasRelay () {
      return relaySettings !== undefined
    },
    async stop () {
      stopped = true
      await Promise.all([...lanes.keys()].map(async destination => { await closeLane(destination) }))
    },
    stats () {
      return { connectionsOpened, open: [...lanes.values()].filter(l => l.connection?.usable === true).length }
    }
  }
}
