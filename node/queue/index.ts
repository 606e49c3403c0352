// The durable outbound queue. A submitted message lives in the MailStore's Outbox; the
// queue keeps, per message, the state of each recipient in its own LevelDB, written with
// synced (group-committed) batches before anything is acknowledged.
//
// Delivery is per recipient, grouped into one envelope per destination (one onion, or the
// relay), so SMTorP and legacy recipients never share an envelope. Transient failures retry
// on the schedule of protocol/retry-schedule.ts; the sender gets a "delayed" notice once, and
// a "failed" notice (RFC 3464) when a recipient is refused or the schedule runs out. When
// every recipient is done the message moves from Outbox to Sent. The owner may retry an entry
// now or cancel it (its pending recipients fail, without a notice). Delivery is at least once:
// a crash after the peer's 250 and before our write repeats it, and the peer drops the
// duplicate by Message-ID.
//
// A message may go out as several copies (an encrypted message: the To and Cc recipients
// share one ciphertext, each Bcc recipient has their own, so no key id gives a Bcc recipient
// away). Each recipient is sent the bytes of its copy, and recipients of different copies
// never share an envelope. A recipient at an ordinary address for whom an onion mailbox was
// learned (a route) is delivered over Tor to that mailbox instead of through the relay.
import { ClassicLevel } from 'classic-level'
import { randomBytes } from 'node:crypto'
import type { Logger } from '../log/index.ts'
import type { MailStore } from '../store/mail-store.ts'
import { RELAY_DESTINATION, DeliveryError, type Delivery } from '../delivery/index.ts'
import type { RecipientResult } from '../smtp-client/index.ts'
import { parseAddress } from '../../protocol/address.ts'
import { nextAttempt, type RetryPolicy } from '../../protocol/retry-schedule.ts'
import { buildDsn, type DsnRecipient } from '../../protocol/dsn.ts'
import { headerValue, messageIdOf, withoutBcc } from '../../protocol/message.ts'
import { GroupCommit } from '../store/group-commit.ts'
import { DueHeap } from './due-heap.ts'

export type RecipientState = 'pending' | 'delivered' | 'failed'

export interface QueueRecipient {
  /** As the sender wrote it; notices and views show this. */
  address: string
  /** An onion domain, or "relay". */
  destination: string
  /**
   * The onion mailbox to name in RCPT TO instead of `address`: an ordinary address with a
   * route learned at enqueueing (SMTorP peers accept only their own onion addresses).
   */
  via?: string
  /** Which of the message's copies this recipient is sent; absent: the message as stored. */
  copy?: number
  state: RecipientState
  attempts: number
  nextAttemptAt: number
  lastAttemptAt?: number
  /** The last answer, in words: the peer's reply or why we could not reach it. */
  lastResult?: string
  delayedNoticeSent: boolean
  /** Set while an attempt is under way (in memory only; never written). */
  tryingSince?: number
}

export interface QueueEntry {
  id: string
  /** The message in the MailStore (Outbox until done, then Sent). */
  storeId: string
  /** Every recipient is done, but the vault was locked, so the message is not in Sent yet. */
  awaitingFiling?: true
  from: string
  messageId?: string
  createdAt: number
  recipients: QueueRecipient[]
}

export interface QueueInit {
  path: string
  /** The node's own domain, for notices. */
  domain: string
  retry: RetryPolicy
  concurrency: number
  /**
   * Whether a legacy relay is configured; without one, legacy recipients fail at once. A
   * function is asked at each attempt, so a relay set at run time (delivery.setRelay) counts
   * at once; a boolean is fixed for the queue's life.
   */
  hasRelay: boolean | (() => boolean)
  /**
   * For an ordinary (non-onion) recipient address, the onion mailbox (local@<56>.onion) that
   * person's signed mail said to use instead, if one was learned. Asked once per recipient,
   * when the message is queued.
   */
  routeOf?: (address: string) => string | undefined
}

/** One of a message's copies: the bytes its recipients are sent instead of the stored message. */
export interface MessageCopy {
  to: string[]
  raw: Buffer
}

export interface EnqueueMessage {
  storeId: string
  from: string
  to: string[]
  messageId?: string
  /** The message as stored in the Outbox; what recipients are sent when there are no copies. */
  raw: Buffer
  /**
   * Per-recipient bytes: every address of `to` is in exactly one copy (else QueueError), and
   * is sent that copy's bytes. Notices quote `raw`, never a copy.
   */
  copies?: MessageCopy[]
}

export interface QueueComponents {
  logger: Logger
  store: MailStore
  delivery: Delivery
  /** Seals entries at rest (they name recipients); the vault's queue key. */
  cipher: QueueCipher
  /**
   * Makes the recipients' copies of an Outbox message found without a queue entry (a crash
   * came between storing it and queueing it): node/openpgp signs and encrypts it again. A
   * throw leaves the message in the Outbox, unsent, with an error logged.
   */
  copiesFor?: (message: { raw: Buffer, to: string[], flags: string[] }) => Promise<MessageCopy[] | undefined>
}

export interface QueueCipher {
  seal (entryId: string, plain: Buffer): Buffer
  open (entryId: string, sealed: Buffer): Buffer
}

export interface FinishedEntry extends QueueEntry {
  finishedAt: number
}

export class QueueError extends Error {
  override name = 'QueueError'
}

export interface OutboundQueue {
  start (): Promise<void>
  stop (): Promise<void>
  /**
   * Queue a message already in the store's Outbox. Durable when it resolves. The queue keeps
   * its own sealed copy of the bytes, so it can deliver while the vault is locked.
   */
  enqueue (message: EnqueueMessage): Promise<QueueEntry>
  /** Move finished messages that waited for an unlock into Sent (call after each unlock). */
  fileFinished (): Promise<void>
  list (): QueueEntry[]
  /**
   * Entries that left the queue lately, in their final state, newest first (the last
   * FINISHED_KEPT of them, in memory only), so a view can show how each ended.
   */
  recentlyFinished (): FinishedEntry[]
  /** Try every pending recipient now instead of waiting for its next attempt. */
  retryNow (): void
  /** Try every pending recipient of one entry now; false if there is no such entry in the queue. */
  retry (entryId: string): boolean
  /**
   * The owner stops a message: every recipient still pending fails with "cancelled by you",
   * without a failure notice, and the entry finishes like any other (Outbox to Sent, or filed
   * at the next unlock). Durable when it resolves. False if there is no such entry.
   */
  cancel (entryId: string): Promise<boolean>
  /** Called after every change of state (a message queued, an attempt finished). */
  onChange (listener: () => void): () => void
}

// On-disk format (spec/node-data.md, "Queue"): "s!format" = "2", "e!<entry id>" = the
// QueueEntry JSON, "b!<entry id>" = the message and "b!<entry id>/<n>" = its copy n, all
// sealed by the vault's queue cipher (format 1 kept the entry in the clear and no copy of the
// message). Copies and routes added fields and keys that entries without them need not have,
// so the format stayed 2.
export const QUEUE_FORMAT = 2
const FORMAT_KEY = 's!format'
const ENTRY_PREFIX = 'e!'
const BODY_PREFIX = 'b!'
const bodyId = (entryId: string): string => `${entryId}/body`
const copyKey = (entryId: string, copy: number): string => `${BODY_PREFIX}${entryId}/${copy}`
const copyId = (entryId: string, copy: number): string => `${entryId}/body/${copy}`
/** How many copies an entry has: every copy names at least one recipient (enqueue checks). */
const copyCount = (entry: QueueEntry): number => Math.max(-1, ...entry.recipients.map(r => r.copy ?? -1)) + 1
const LOCAL_FAILURE_RETRY_MS = 60_000
/** The address named in RCPT TO for a recipient. */
const rcptOf = (r: QueueRecipient): string => r.via ?? r.address
export const CANCELLED_RESULT = 'cancelled by you'
export const FINISHED_KEPT = 200

export function outboundQueue (init: QueueInit, components: QueueComponents): OutboundQueue {
  const log = components.logger.child({ component: 'queue' })
  const hasRelay = typeof init.hasRelay === 'function' ? init.hasRelay : () => init.hasRelay as boolean
  const db = new ClassicLevel<string, Buffer>(init.path, { valueEncoding: 'buffer' })
  const commit = new GroupCommit(db as unknown as ClassicLevel<string, string | Buffer>)
  const entries = new Map<string, QueueEntry>()
  const byStoreId = new Map<string, QueueEntry>()
  const heap = new DueHeap()
  const inFlight = new Set<string>() // `${entryId} ${destination}`
  const listeners = new Set<() => void>()
  let timer: NodeJS.Timeout | undefined
  let running = false
  let runPending = false
  let active = 0
  const attempts = new Set<Promise<void>>()

  function changed (): void {
    for (const listener of listeners) listener()
  }

  /** Entries finished while the vault was locked, to file into Sent at the next unlock. */
  const unfiled = new Map<string, QueueEntry>()
  let filing: Promise<void> | undefined

  /**
   * Write the entry, or delete it once nothing is pending and it is filed. `keep` writes it
   * even when nothing is pending: a state that must survive a crash before the entry is
   * finished (start() finishes such an entry).
   */
  async function persist (entry: QueueEntry, options: { raw?: Buffer, copies?: Buffer[], keep?: boolean } = {}): Promise<void> {
    const { raw, copies = [], keep = false } = options
    const gone = !keep && entry.recipients.every(r => r.state !== 'pending') && entry.awaitingFiling !== true
    const copyNumbers = Array.from({ length: copyCount(entry) }, (_, n) => n)
    await commit.write(gone
      ? [
          { type: 'del', key: ENTRY_PREFIX + entry.id },
          { type: 'del', key: BODY_PREFIX + entry.id },
          ...copyNumbers.map(n => ({ type: 'del' as const, key: copyKey(entry.id, n) }))
        ]
      : [
          { type: 'put', key: ENTRY_PREFIX + entry.id, value: components.cipher.seal(entry.id, Buffer.from(JSON.stringify(entry), 'utf8')) },
          ...(raw !== undefined ? [{ type: 'put' as const, key: BODY_PREFIX + entry.id, value: components.cipher.seal(bodyId(entry.id), raw) }] : []),
          ...copies.map((bytes, n) => ({ type: 'put' as const, key: copyKey(entry.id, n), value: components.cipher.seal(copyId(entry.id, n), bytes) }))
        ])
  }

  /** The queue's own copy of the message; the store's, for an entry written without one. */
  async function messageBytes (entry: QueueEntry): Promise<Buffer | undefined> {
    const sealed = await db.get(BODY_PREFIX + entry.id)
    if (sealed !== undefined) return components.cipher.open(bodyId(entry.id), sealed)
    return (await components.store.get(entry.storeId))?.raw
  }

  /** The bytes of one of the message's copies (written with the entry, so only a damaged database lacks them). */
  async function copyBytes (entry: QueueEntry, copy: number): Promise<Buffer | undefined> {
    const sealed = await db.get(copyKey(entry.id, copy))
    return sealed === undefined ? undefined : components.cipher.open(copyId(entry.id, copy), sealed)
  }

  /**
   * Where a recipient goes: its onion domain; for an ordinary address with a learned route,
   * the route's onion domain and mailbox (`via`); otherwise the relay. The route is asked
   * here, once: a route learned after a message was queued does not change its entry, so an
   * entry goes where it was meant to go when it was queued.
   */
  function routeTo (address: string, storeId: string): { destination: string, via?: string } {
    const parsed = parseAddress(address)
    if (parsed.route === 'onion') return { destination: parsed.domain }
    const mailbox = init.routeOf?.(address)
    if (mailbox !== undefined) {
      try {
        const route = parseAddress(mailbox)
        if (route.route === 'onion') return { destination: route.domain, via: `${route.local}@${route.domain}` }
        log.warn({ store: storeId }, 'a learned route is not an onion mailbox; the recipient goes through the relay')
      } catch (err) {
        log.warn({ store: storeId, err: (err as Error).message }, 'a learned route is not a valid address; the recipient goes through the relay')
      }
    }
    return { destination: RELAY_DESTINATION }
  }

  /** Remember when the group (entry, destination) is next due. */
  function due (entry: QueueEntry, destination: string): void {
    let at = Infinity
    for (const r of entry.recipients) if (r.destination === destination && r.state === 'pending') at = Math.min(at, r.nextAttemptAt)
    if (at !== Infinity) heap.push({ at, entryId: entry.id, destination })
  }

  function dueAll (entry: QueueEntry): void {
    for (const destination of new Set(entry.recipients.map(r => r.destination))) due(entry, destination)
  }

  function schedule (): void {
    clearTimeout(timer)
    timer = undefined
    const next = heap.peek()
    if (!running || next === undefined) return
    const wait = Math.min(Math.max(0, next.at - Date.now()), 2_147_000_000)
    timer = setTimeout(runDue, wait)
  }

  /** Run soon, once, however many messages arrive in this tick. */
  function runSoon (): void {
    if (runPending || !running) return
    runPending = true
    setImmediate(() => { runPending = false; runDue() })
  }

  function runDue (): void {
    const now = Date.now()
    while (active < init.concurrency) {
      const item = heap.peek()
      if (item === undefined || item.at > now) break
      heap.pop()
      const entry = entries.get(item.entryId)
      const key = `${item.entryId} ${item.destination}`
      // Stale items (done, or already being tried) are dropped: an attempt that ends with
      // recipients still pending pushes their next time itself.
      if (entry === undefined || inFlight.has(key)) continue
      const recipients = entry.recipients.filter(r => r.destination === item.destination && r.state === 'pending' && r.nextAttemptAt <= now)
      if (recipients.length === 0) continue
      inFlight.add(key)
      active++
      for (const r of recipients) r.tryingSince = now
      const attempt: Promise<void> = attemptDelivery(entry, item.destination, recipients)
        .catch(err => {
          if ((err as Error).name === 'VaultLockedError') {
            // Nothing can read the message while the vault is locked; unlocking retries at once.
            log.info({ entry: entry.id }, 'delivery waits for the vault to be unlocked')
            for (const r of recipients) {
              if (r.state !== 'pending') continue
              r.nextAttemptAt = Date.now() + LOCAL_FAILURE_RETRY_MS
              r.lastResult = 'waiting for the vault to be unlocked'
            }
            return
          }
          // Our own fault (the store failed, say): try again later, not in a tight loop.
          log.error({ entry: entry.id, err: (err as Error).message }, 'delivery attempt failed locally; will retry in a minute')
          for (const r of recipients) if (r.state === 'pending') r.nextAttemptAt = Date.now() + LOCAL_FAILURE_RETRY_MS
        })
        .finally(() => {
          for (const r of recipients) delete r.tryingSince
          inFlight.delete(key)
          attempts.delete(attempt)
          active--
          if (entries.get(entry.id) === entry) {
            // Cancelled during an attempt that then failed locally: nothing is pending, and
            // attemptDelivery did not get as far as finishing the entry, so finish it here.
            if (entry.recipients.some(r => r.state === 'pending')) due(entry, item.destination)
            else settle(entry)
          }
          runSoon()
          changed()
        })
      attempts.add(attempt)
    }
    schedule()
  }

  /**
   * One envelope to `destination` for recipients of one copy (`copy` undefined: the message as
   * stored), with the answer for each RCPT TO address.
   */
  async function deliverCopy (entry: QueueEntry, destination: string, copy: number | undefined, recipients: QueueRecipient[], main: Buffer | undefined): Promise<RecipientResult[]> {
    // Two recipients may name the same mailbox (an address and the onion mailbox it routes to).
    const to = [...new Set(recipients.map(rcptOf))]
    const raw = copy === undefined ? main : await copyBytes(entry, copy)
    if (raw === undefined) {
      if (copy === undefined) log.error({ entry: entry.id, store: entry.storeId }, 'queued message is missing from the store; failing its recipients')
      else log.error({ entry: entry.id, copy }, 'a copy of a queued message is missing from the queue database; failing its recipients')
      return to.map(address => ({ address, ok: false, permanent: true, reply: 'the message was lost from local storage' }))
    }
    if (destination === RELAY_DESTINATION && !hasRelay()) {
      return to.map(address => ({ address, ok: false, permanent: true, reply: 'no legacy relay is configured, so mail to ordinary (non-onion) addresses cannot be sent; set one in the relay settings (web UI or "relay" in config.yaml)' }))
    }
    try {
      return await components.delivery.deliver(destination, { from: entry.from, to, raw: withoutBcc(raw) })
    } catch (err) {
      const failure = err instanceof DeliveryError ? err : new DeliveryError((err as Error).message, false)
      return to.map(address => ({ address, ok: false, permanent: failure.permanent, reply: failure.message }))
    }
  }

  async function attemptDelivery (entry: QueueEntry, destination: string, recipients: QueueRecipient[]): Promise<void> {
    // The message as stored: sent to recipients without a copy, and quoted by notices.
    const raw = await messageBytes(entry)
    // Recipients of different copies get different bytes, so each copy is its own envelope.
    // One after another: they go to the same peer, over the same connection when it stays open.
    const byCopy = new Map<number | undefined, QueueRecipient[]>()
    for (const r of recipients) byCopy.set(r.copy, [...(byCopy.get(r.copy) ?? []), r])
    const results = new Map<QueueRecipient, RecipientResult>()
    for (const [copy, group] of byCopy) {
      const answers = await deliverCopy(entry, destination, copy, group, raw)
      for (const r of group) {
        const answer = answers.find(x => x.address === rcptOf(r))
        if (answer !== undefined) results.set(r, answer)
      }
    }
    const now = Date.now()
    for (const r of recipients) delete r.tryingSince
    const failed: DsnRecipient[] = []
    const delayed: DsnRecipient[] = []
    for (const r of recipients) {
      const result = results.get(r) ?? { ok: false, permanent: false, reply: 'no answer for this recipient' }
      r.attempts++
      r.lastAttemptAt = now
      if (r.state !== 'pending') {
        // Cancelled while this attempt was under way. A failure leaves it cancelled (no
        // retry, no notice: the owner stopped it). A success is recorded as 'delivered',
        // because it is true: the peer has the message, and the owner should see so.
        if (result.ok) {
          r.state = 'delivered'
          r.lastResult = result.reply
          log.info({ entry: entry.id, destination, attempts: r.attempts }, 'delivered, though cancelled during the attempt')
        }
        continue
      }
      r.lastResult = result.reply
      if (result.ok) {
        r.state = 'delivered'
        log.info({ entry: entry.id, destination, attempts: r.attempts }, 'delivered')
        continue
      }
      const next = result.permanent ? { giveUp: true as const } : nextAttempt(init.retry, r.attempts, now)
      if ('giveUp' in next) {
        r.state = 'failed'
        failed.push({ address: r.address, action: 'failed', status: result.permanent ? '5.0.0' : '4.4.7', diagnostic: result.reply, lastAttemptAt: new Date(now) })
        log.warn({ entry: entry.id, destination, attempts: r.attempts, reason: result.reply }, 'delivery failed for good')
      } else {
        r.nextAttemptAt = next.retryAt
        log.info({ entry: entry.id, destination, attempts: r.attempts, retryAt: new Date(next.retryAt).toISOString(), reason: result.reply }, 'delivery delayed, will retry')
        if (r.attempts >= init.retry.delayedNoticeAfterAttempts && !r.delayedNoticeSent) {
          r.delayedNoticeSent = true
          const remaining = init.retry.delaysMs.slice(r.attempts - 1).reduce((a, b) => a + b, 0)
          delayed.push({ address: r.address, action: 'delayed', status: '4.4.1', diagnostic: result.reply, lastAttemptAt: new Date(now), willRetryUntil: new Date(now + remaining) })
        }
      }
    }
    // The notices are stored before the state that says they were sent.
    if ((failed.length > 0 || delayed.length > 0) && raw !== undefined) await notifySender(entry, raw, [...failed, ...delayed])
    // Move to Sent before the entry goes: a crash in between leaves an entry that start()
    // finishes, never an Outbox message without an entry (which would be sent again).
    if (entry.recipients.every(r => r.state !== 'pending')) {
      // Cancelled with attempts to two destinations under way: the first to end files it.
      if (entries.get(entry.id) !== entry) return
      await finish(entry)
    }
    await persist(entry)
  }

  async function notifySender (entry: QueueEntry, original: Buffer, recipients: DsnRecipient[]): Promise<void> {
    if (entry.from === '') return // never notify about a notice (RFC 3461 6.2)
    const subject = headerValue(original, 'Subject')
    const dsn = buildDsn({
      reportingDomain: init.domain,
      to: entry.from,
      ...(entry.messageId !== undefined ? { originalMessageId: entry.messageId } : {}),
      ...(subject !== undefined ? { originalSubject: subject } : {}),
      arrivalDate: new Date(entry.createdAt),
      recipients,
      original,
      now: new Date()
    })
    await components.store.add({ folder: 'Inbox', raw: dsn.raw, from: '', to: [entry.from], messageId: dsn.messageId })
  }

  /** The last FINISHED_KEPT finished entries, oldest first (a Map keeps insertion order). */
  const finished = new Map<string, FinishedEntry>()

  async function finish (entry: QueueEntry): Promise<void> {
    entries.delete(entry.id)
    byStoreId.delete(entry.storeId)
    finished.delete(entry.id)
    finished.set(entry.id, { ...structuredClone(entry), finishedAt: Date.now() })
    if (finished.size > FINISHED_KEPT) finished.delete(finished.keys().next().value!)
    try {
      const message = await components.store.get(entry.storeId)
      if (message !== undefined && message.folder === 'Outbox') {
        // Flag first, so the message never shows in Sent without its mark.
        if (entry.recipients.some(r => r.state === 'failed')) await components.store.setFlags(entry.storeId, [...new Set([...message.flags, '$Undelivered'])])
        await components.store.move(entry.storeId, 'Sent')
      }
    } catch (err) {
      if ((err as Error).name !== 'VaultLockedError') throw err
      // Delivered (or failed) while the vault is locked: kept, and filed at the next unlock.
      entry.awaitingFiling = true
      unfiled.set(entry.id, entry)
      return
    }
    delete entry.awaitingFiling
    unfiled.delete(entry.id)
  }

  /** Finish an entry with nothing pending outside an attempt; stop() waits for it. */
  function settle (entry: QueueEntry): void {
    const work: Promise<void> = (async () => {
      await finish(entry)
      await persist(entry)
    })().catch(err => {
      // The entry stays on disk with nothing pending; start() finishes it next time.
      log.error({ entry: entry.id, err: (err as Error).message }, 'could not finish a queue entry; it is finished at the next start')
    }).finally(() => { attempts.delete(work); changed() })
    attempts.add(work)
  }

  function attemptUnderWay (entryId: string): boolean {
    for (const key of inFlight) if (key.startsWith(`${entryId} `)) return true
    return false
  }

  function track (entry: QueueEntry): void {
    entries.set(entry.id, entry)
    byStoreId.set(entry.storeId, entry)
    dueAll(entry)
  }

  /**
   * Which copy each recipient is sent, checked: every recipient in exactly one copy, every
   * copy naming only recipients, and at least one. The error names positions, not addresses.
   */
  function copyOfEach (recipients: string[], copies: MessageCopy[]): Map<string, number> {
    const copyOf = new Map<string, number>()
    const wanted = new Set(recipients)
    copies.forEach((copy, n) => {
      if (copy.to.length === 0) throw new QueueError(`copy ${n} of the message names no recipient`)
      for (const address of copy.to.map(a => a.toLowerCase())) {
        if (!wanted.has(address)) throw new QueueError(`copy ${n} of the message names an address that is not one of its recipients`)
        if (copyOf.has(address)) throw new QueueError(`a recipient is in copies ${copyOf.get(address)!} and ${n} of the message; each must be in exactly one`)
        copyOf.set(address, n)
      }
    })
    const missing = recipients.filter(a => !copyOf.has(a)).length
    if (missing > 0) throw new QueueError(`${missing} of the message's recipients are in none of its copies; each must be in exactly one`)
    return copyOf
  }

  async function enqueue (message: EnqueueMessage): Promise<QueueEntry> {
    const unique = [...new Set(message.to.map(a => a.toLowerCase()))]
    const copyOf = message.copies !== undefined ? copyOfEach(unique, message.copies) : undefined
    const existing = byStoreId.get(message.storeId)
    if (existing !== undefined) return existing
    const now = Date.now()
    const entry: QueueEntry = {
      id: `${now.toString(36).padStart(9, '0')}-${randomBytes(4).toString('hex')}`,
      storeId: message.storeId,
      from: message.from,
      ...(message.messageId !== undefined ? { messageId: message.messageId } : {}),
      createdAt: now,
      recipients: unique.map(address => {
        const copy = copyOf?.get(address)
        return { address, ...routeTo(address, message.storeId), ...(copy !== undefined ? { copy } : {}), state: 'pending', attempts: 0, nextAttemptAt: now, delayedNoticeSent: false }
      })
    }
    // The entry, the message and its copies in one synced batch: all of them, or none.
    await persist(entry, { raw: message.raw, ...(message.copies !== undefined ? { copies: message.copies.map(c => c.raw) } : {}) })
    track(entry)
    runSoon()
    changed()
    return entry
  }

  return {
    async start () {
      await db.open()
      const format = (await db.get(FORMAT_KEY))?.toString('utf8')
      const refusal = format === undefined
        ? ((await db.keys({ limit: 1 }).all()).length > 0 ? `the database at ${init.path} has no format version; it is not an smtorp queue` : undefined)
        : format !== String(QUEUE_FORMAT) ? `the queue at ${init.path} has format ${format}; this version reads format ${QUEUE_FORMAT}` : undefined
      if (refusal !== undefined) {
        await db.close()
        throw new QueueError(refusal)
      }
      if (format === undefined) await db.put(FORMAT_KEY, Buffer.from(String(QUEUE_FORMAT)), { sync: true })
      for await (const [key, value] of db.iterator({ gte: ENTRY_PREFIX, lt: `${ENTRY_PREFIX}\xff` })) {
        let entry: QueueEntry
        try {
          entry = JSON.parse(components.cipher.open(key.slice(ENTRY_PREFIX.length), value).toString('utf8')) as QueueEntry
        } catch (err) {
          // Left on disk for inspection; the Outbox scan below queues its message again.
          log.error({ key, err: (err as Error).message }, 'a queue entry cannot be opened; its message is queued again from the Outbox')
          continue
        }
        if (entry.recipients.some(r => r.state === 'pending')) {
          track(entry)
        } else {
          await finish(entry) // a crash came between finishing and forgetting it
          await persist(entry)
        }
      }
      // A message that reached the Outbox without its queue entry (a crash between the two
      // writes, before the client got its 250) is queued now rather than left behind.
      // Its signed or encrypted copies are made again (copiesFor); the Outbox bytes are what
      // the sender keeps and are never sent when copies can be made.
      const queued = new Set([...entries.values()].map(e => e.storeId))
      for (const meta of await components.store.list('Outbox')) {
        if (queued.has(meta.id)) continue
        log.warn({ store: meta.id }, 'found an Outbox message without a queue entry; queueing it')
        const message = await components.store.get(meta.id)
        if (message === undefined) continue
        const messageId = meta.messageId ?? messageIdOf(message.raw)
        let copies: MessageCopy[] | undefined
        try {
          copies = await components.copiesFor?.({ raw: message.raw, to: meta.to, flags: meta.flags })
        } catch (err) {
          log.error({ store: meta.id, err: (err as Error).message }, 'could not sign or encrypt an Outbox message found without a queue entry; it stays in the Outbox, unsent')
          continue
        }
        await enqueue({ storeId: meta.id, from: meta.from, to: meta.to, raw: message.raw, ...(messageId !== undefined ? { messageId } : {}), ...(copies !== undefined ? { copies } : {}) })
      }
      running = true
      log.info({ pending: entries.size }, 'outbound queue started')
      runDue()
    },
    async stop () {
      running = false
      clearTimeout(timer)
      await Promise.all(attempts)
      await db.close()
    },
    enqueue,
    async fileFinished () {
      // One pass at a time: an unlock may ask twice (its listener and its caller).
      filing ??= (async () => {
        for (const entry of [...unfiled.values()]) {
          await finish(entry)
          if (entry.awaitingFiling === undefined) await persist(entry)
        }
      })().finally(() => { filing = undefined })
      await filing
    },
    list () {
      return [...entries.values()].map(e => structuredClone(e))
    },
    recentlyFinished () {
      return [...finished.values()].reverse().map(e => structuredClone(e))
    },
    retry (entryId) {
      const entry = entries.get(entryId)
      if (entry === undefined) return false
      const now = Date.now()
      for (const r of entry.recipients) if (r.state === 'pending') r.nextAttemptAt = Math.min(r.nextAttemptAt, now)
      dueAll(entry)
      runDue()
      return true
    },
    async cancel (entryId) {
      const entry = entries.get(entryId)
      if (entry === undefined) return unfiled.has(entryId) // done already: nothing left to cancel
      const cancelled = entry.recipients.filter(r => r.state === 'pending')
      if (cancelled.length === 0) return true // being finished by the attempt that ended it
      // Synchronously, so no attempt can start for these recipients from here on.
      for (const r of cancelled) {
        r.state = 'failed'
        r.lastResult = CANCELLED_RESULT
      }
      const underWay = attemptUnderWay(entry.id)
      log.info({ entry: entry.id, recipients: cancelled.length, underWay }, 'the owner cancelled delivery')
      // The cancellation is on disk before the message leaves the Outbox: a crash in between
      // leaves an entry with nothing pending, which start() files, instead of an Outbox
      // message without an entry, which start() would queue (and send) again.
      await persist(entry, { keep: true })
      // An attempt under way finishes the entry itself when it ends (attemptDelivery, or the
      // settle in runDue's finally when it failed locally).
      if (!underWay && entries.get(entry.id) === entry) {
        await finish(entry)
        await persist(entry)
      }
      changed()
      return true
    },
    retryNow () {
      const now = Date.now()
      for (const entry of entries.values()) {
        for (const r of entry.recipients) if (r.state === 'pending') r.nextAttemptAt = Math.min(r.nextAttemptAt, now)
        dueAll(entry)
      }
      runDue()
    },
    onChange (listener) {
      listeners.add(listener)
      return () => listeners.delete(listener)
    }
  }
}
