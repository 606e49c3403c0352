// The node's side of the web UI: implements UiNode (ui/node-api.ts) on top of the vault, the
// queue, tor, delivery and the submission credentials. The UI only ever sees this object.
//
// Settings the UI changes live in the vault as sealed records (kind "settings"): the relay
// (with its password) and the UI's own settings. They are read at each unlock.
import { statfs } from 'node:fs/promises'
import { readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from '../log/index.ts'
import type { RelayConfig } from '../config/index.ts'
import type { Identity } from '../identity/index.ts'
import type { Vault, ScrubReport } from '../vault/index.ts'
import type { OutboundQueue, QueueEntry } from '../queue/index.ts'
import type { TorService } from '../tor/index.ts'
import type { DeliveryService } from '../delivery/index.ts'
import { testRelay } from '../delivery/relay-test.ts'
import type { CredentialStore } from '../submission/credentials.ts'
import type { StoredMessageMeta } from '../store/mail-store.ts'
import { readableMessage, attachmentContent, attachmentContents, MAX_TEXT_CHARS } from '../mail-view/index.ts'
import { addressesAsTyped, buildMessage, ComposeError, replyDraft, DRAFT_HEADERS, type DraftInput } from '../compose/index.ts'
import { parseAddress, AddressError } from '../../protocol/address.ts'
import { decodeEncodedWords, headerValue, summarizeHeaders } from '../../protocol/message.ts'
import type {
  UiNode, Health, FolderName, FolderSummary, MessagePage, MessageSummary, ReadableMessage, Draft, Route,
  OutboxEntry, OutboxRecipient, RelaySettings, UiSettings, UnlockSecret, Credential
} from '../../ui/node-api.ts'
import { FOLDER_NAMES } from '../../ui/node-api.ts'

export interface UiBackendInit {
  dataDir: string
  /** The relay from config.yaml, used until the owner saves one in the UI. */
  configRelay?: RelayConfig
  maxMessageBytes: number
  submission: { host: string }
}

export interface UiBackendComponents {
  logger: Logger
  identity: Identity
  vault: Vault
  queue: OutboundQueue
  tor: TorService
  delivery: DeliveryService
  credentials: CredentialStore
  submissionPort: () => number
  socksEndpoint: () => { host: string, port: number }
  /** The node's scrub (one at a time), reporting progress. */
  scrub: (onProgress: (done: number, total: number) => void) => Promise<ScrubReport>
  lastScrub: () => ScrubReport | undefined
  /** Unlock the vault and start what waits for it (the node's unlock). */
  unlock: (secret: UnlockSecret) => Promise<void>
}

export interface UiBackend extends UiNode {
  /** Load what the vault holds for the UI and delivery (the relay); call after each unlock. */
  afterUnlock (): Promise<void>
}

const SETTINGS = 'settings'
const RELAY_RECORD = 'relay'
const UI_RECORD = 'ui'
const DEFAULT_UI_SETTINGS: UiSettings = { autoLockMinutes: 15 }
/** How long a finished message stays in the outbox view, so its last state can be seen. */
const FINISHED_VISIBLE_MS = 60 * 60_000
const DISK_USE_CACHE_MS = 30_000
const DRAFT_REPLY_HEADER = 'X-Smtorp-Draft-Reply-To'
const MAX_ROUTES_SHOWN = 50

export function uiBackend (init: UiBackendInit, components: UiBackendComponents): UiBackend {
  const { vault, queue, tor, identity } = components
  const log = components.logger.child({ component: 'ui-backend' })
  let scrubProgress: { done: number, total: number } | undefined
  let relay: RelayConfig | undefined = init.configRelay
  let diskUse: { at: number, bytes: number } | undefined
  async function readSettings<T> (name: string): Promise<T | undefined> {
    const value = await vault.getRecord(SETTINGS, name)
    return value === undefined ? undefined : JSON.parse(value.toString('utf8')) as T
  }

  async function writeSettings (name: string, value: unknown): Promise<void> {
    await vault.putRecord(SETTINGS, name, value === undefined ? undefined : Buffer.from(JSON.stringify(value), 'utf8'))
  }

  function summaryOf (meta: StoredMessageMeta): MessageSummary {
    const thread = meta.thread
    return {
      id: meta.id,
      folder: meta.folder as FolderName,
      from: meta.headerFrom !== undefined && meta.headerFrom !== '' ? meta.headerFrom : meta.from,
      to: meta.to,
      subject: meta.subject ?? '',
      date: meta.date ?? meta.receivedAt,
      size: meta.size,
      seen: meta.flags.includes('\\Seen'),
      flagged: meta.flags.includes('\\Flagged'),
      ...(thread !== undefined && thread !== '' ? { threadSize: vault.threadSize(thread) } : {})
    }
  }

  /**
   * A message stored before the vault kept header summaries (spec/storage.md: the fields are
   * optional) has its headers read for the list; nothing is written back.
   */
  async function withSummary (meta: StoredMessageMeta): Promise<StoredMessageMeta> {
    if (meta.subject !== undefined) return meta
    const message = await vault.get(meta.id).catch(() => undefined)
    if (message === undefined) return meta
    const h = summarizeHeaders(message.raw)
    return { ...meta, subject: h.subject, headerFrom: h.from, ...(h.date !== undefined ? { date: h.date } : {}) }
  }

  async function metaOf (id: string): Promise<StoredMessageMeta | undefined> {
    return await vault.meta(id)
  }

  function routeFor (address: string): Route {
    let parsed
    try {
      parsed = parseAddress(address)
    } catch (err) {
      return { address, kind: 'invalid', description: `not a usable address: ${err instanceof AddressError ? err.message : 'unreadable'}` }
    }
    if (parsed.route === 'onion') return { address, kind: 'onion', description: 'directly over Tor to the recipient\'s own node, end to end' }
    if (relay === undefined) return { address, kind: 'none', description: 'no route: this is an ordinary address and no legacy relay is set (Settings)' }
    return { address, kind: 'relay', description: `through the legacy relay ${relay.host}${relay.viaTor ? ' (reached over Tor)' : ''}; from there by ordinary mail` }
  }

  function recipientState (r: QueueEntry['recipients'][number]): OutboxRecipient['state'] {
    if (r.state !== 'pending') return r.state
    if (r.tryingSince !== undefined) return 'delivering'
    return r.attempts > 0 ? 'delayed' : 'queued'
  }

  async function subjectOf (entry: QueueEntry): Promise<string> {
    // The message is in Outbox, or in Sent once finished: the same id either way.
    const meta = await metaOf(entry.storeId).catch(() => undefined)
    return meta?.subject ?? ''
  }

  /** The draft as compose takes it, with the threading headers of the message it answers. */
  async function draftInput (draft: Draft): Promise<DraftInput> {
    // A draft is read back through mail-view, which shows at most MAX_TEXT_CHARS: longer
    // text would come back cut, and be sent cut. Such text belongs in an attachment.
    if (draft.body.length > MAX_TEXT_CHARS) throw new ComposeError(`The text is longer than ${MAX_TEXT_CHARS / 1024 / 1024} MiB; send it as an attachment.`)
    let inReplyTo: DraftInput['inReplyTo']
    if (draft.inReplyToId !== undefined) {
      const parent = await vault.get(draft.inReplyToId)
      if (parent !== undefined) {
        const parsed = await readableMessage(parent.raw)
        // RFC 5322 3.6.4: without References, the parent's In-Reply-To starts the chain.
        const references = parsed.references.length > 0 ? parsed.references : parsed.inReplyTo !== undefined ? [parsed.inReplyTo] : []
        inReplyTo = { ...(parsed.messageId !== undefined ? { messageId: parsed.messageId } : {}), references }
      }
    }
    return { to: draft.to, cc: draft.cc, bcc: draft.bcc, subject: draft.subject, body: draft.body, attachments: draft.attachments, ...(inReplyTo !== undefined ? { inReplyTo } : {}) }
  }

  async function dataDirBytes (): Promise<number> {
    if (diskUse !== undefined && Date.now() - diskUse.at < DISK_USE_CACHE_MS) return diskUse.bytes
    let total = 0
    let files = 0
    const walk = async (dir: string): Promise<void> => {
      for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
        if (++files > 100_000) return // bounded: a rough figure is enough here
        const path = join(dir, entry.name)
        if (entry.isDirectory()) await walk(path)
        else if (entry.isFile()) total += (await stat(path).catch(() => ({ size: 0 }))).size
      }
    }
    await walk(init.dataDir)
    diskUse = { at: Date.now(), bytes: total }
    return total
  }

  const backend: UiBackend = {
    async afterUnlock () {
      const saved = await readSettings<RelayConfig | { removed: true }>(RELAY_RECORD).catch((err: unknown) => {
        log.error({ err: (err as Error).message }, 'The relay settings in the vault cannot be read; the ones in config.yaml are used.')
        return undefined
      })
      if (saved !== undefined) {
        relay = 'removed' in saved ? undefined : saved
        components.delivery.setRelay(relay)
      }
      try {
        await components.credentials.load()
        await components.credentials.flush()
      } catch (err) {
        log.error({ err: (err as Error).message }, 'The mail client credentials cannot be read; device logins are refused until this is fixed.')
      }
    },

    async health (): Promise<Health> {
      const status = tor.status()
      const onion = identity.domain.replace(/\.onion$/, '')
      const entries = queue.list()
      const queueCounts = { queued: 0, delivering: 0, delayed: 0, failed: 0 }
      for (const e of entries) for (const r of e.recipients) { const s = recipientState(r); if (s !== 'delivered') queueCounts[s]++ }
      const stats = vault.stats()
      const last = components.lastScrub()
      const warnings: string[] = []
      if (vault.arrivalKeyRestored) warnings.push('The vault\'s arrival key had been replaced on disk by someone who could write to it, and was restored at unlock. Mail that arrived while the vault was locked may have been readable by them.')
      if (status.lastError !== undefined && status.bootstrapPercent < 100) warnings.push(`Tor: ${status.lastError}`)
      if (stats.damagedRecords.length > 0) warnings.push(`${stats.damagedRecords.length} messages could not be read from storage (their records failed authentication).`)
      let freeBytes: number | undefined
      try {
        const fs = await statfs(init.dataDir)
        freeBytes = Number(fs.bavail) * Number(fs.bsize)
      } catch {}
      return {
        address: identity.address,
        onion: identity.domain,
        tor: { bootstrapPercent: status.bootstrapPercent, summary: status.bootstrapSummary, ready: status.running && status.bootstrapPercent >= 100 },
        smtpPublished: status.onions.some(o => o.address.replace(/\.onion$/, '') === onion && o.descriptorUploaded),
        submission: { host: init.submission.host, port: components.submissionPort() },
        queue: queueCounts,
        storage: {
          vault: vault.state(),
          ...(last !== undefined ? { lastScrub: { finishedAt: last.finishedAt, objects: last.objects, repairedShards: last.repairedShards, lost: last.lost.length } } : {}),
          ...(scrubProgress !== undefined ? { scrub: { ...scrubProgress } } : {}),
          ...indexingProgress(),
          damagedRecords: stats.damagedRecords.length,
          shardBytes: stats.shardBytes
        },
        disk: { dataBytes: await dataDirBytes(), ...(freeBytes !== undefined ? { freeBytes } : {}) },
        warnings
      }
    },

    vaultState: () => vault.state(),
    unlock: async (secret) => { await components.unlock(secret) },
    checkSecret: async (secret) => { await vault.checkSecret(secret) },
    lock: async () => { await vault.lock() },
    async changePassphrase (current, next) {
      await vault.checkSecret({ passphrase: current })
      await vault.changePassphrase(next)
    },
    startScrub () {
      if (scrubProgress !== undefined) return
      scrubProgress = { done: 0, total: 0 }
      components.scrub((done, total) => { scrubProgress = { done, total } })
        .catch((err: unknown) => { log.error({ err: (err as Error).message }, 'The storage check from the UI failed.') })
        .finally(() => { scrubProgress = undefined })
    },

    async folders (): Promise<FolderSummary[]> {
      const counts = await vault.counts()
      return FOLDER_NAMES.map(name => ({ name, total: counts.get(name)?.total ?? 0, unread: counts.get(name)?.unread ?? 0 }))
    },

    async listMessages (folder, options): Promise<MessagePage> {
      const page = await vault.page(folder, options)
      const messages = await Promise.all(page.messages.map(withSummary))
      return { messages: messages.map(summaryOf), ...(page.nextBefore !== undefined ? { nextBefore: page.nextBefore } : {}) }
    },

    async search (query, options): Promise<MessagePage> {
      const found = await vault.search(query, { limit: options.limit + 1, ...(options.before !== undefined ? { before: options.before } : {}) })
      const messages = (await Promise.all(found.slice(0, options.limit).map(withSummary))).map(summaryOf)
      return { messages, ...(found.length > options.limit ? { nextBefore: messages[messages.length - 1]!.id } : {}) }
    },

    async readMessage (id): Promise<ReadableMessage | undefined> {
      const message = await vault.get(id)
      if (message === undefined) return undefined
      const content = await readableMessage(message.raw)
      return {
        summary: summaryOf(message),
        from: content.from, to: content.to, cc: content.cc, replyTo: content.replyTo,
        ...(content.messageId !== undefined ? { messageId: content.messageId } : {}),
        text: content.text, fromHtml: content.fromHtml, attachments: content.attachments, problems: content.problems
      }
    },

    async summary (id) {
      const meta = await metaOf(id)
      return meta === undefined ? undefined : summaryOf(meta)
    },

    async thread (id) {
      return (await vault.thread(id)).map(summaryOf)
    },

    async attachment (id, index) {
      const message = await vault.get(id)
      return message === undefined ? undefined : await attachmentContent(message.raw, index)
    },

    setSeen: async (id, seen) => { await vault.setFlag(id, '\\Seen', seen) },
    setFlagged: async (id, flagged) => { await vault.setFlag(id, '\\Flagged', flagged) },
    move: async (id, folder) => { await vault.move(id, folder) },
    async remove (id) {
      const meta = await metaOf(id)
      if (meta === undefined) return
      if (meta.folder !== 'Trash') throw new Error('Only messages in Trash can be deleted for good.')
      await vault.remove(id)
    },
    emptyTrash: async () => await vault.emptyFolder('Trash'),

    routesFor (fields) {
      const seen = new Set<string>()
      const routes: Route[] = []
      for (const address of fields.flatMap(addressesAsTyped)) {
        const key = address.toLowerCase()
        if (seen.has(key)) continue
        seen.add(key)
        routes.push(routeFor(address))
        if (routes.length >= MAX_ROUTES_SHOWN) break
      }
      return routes
    },

    async draftFrom (id, mode) {
      const message = await vault.get(id)
      if (message === undefined) throw Object.assign(new Error('There is no such message to answer.'), { statusCode: 404 })
      const content = await readableMessage(message.raw)
      const draft = replyDraft(content, mode, identity.address)
      const base = { to: draft.to, cc: draft.cc, bcc: draft.bcc, subject: draft.subject, body: draft.body }
      if (mode !== 'forward') return { ...base, attachments: [], inReplyToId: id }
      // A forward offers the original's attachments (the form posts back which to keep).
      return { ...base, attachments: await attachmentContents(message.raw), forwardOfId: id }
    },

    async saveDraft (draft, replaces) {
      const built = await buildMessage(await draftInput(draft), { address: identity.address }, { domain: identity.domain, maxBytes: init.maxMessageBytes, draft: true })
      const raw = draft.inReplyToId !== undefined ? Buffer.concat([Buffer.from(`${DRAFT_REPLY_HEADER}: ${draft.inReplyToId}\r\n`), built.raw]) : built.raw
      const stored = await vault.add({ folder: 'Drafts', raw, from: identity.address, to: [], flags: ['\\Seen', '\\Draft'] })
      if (replaces !== undefined && (await metaOf(replaces))?.folder === 'Drafts') await vault.remove(replaces)
      return stored.meta.id
    },

    async loadDraft (id) {
      const message = await vault.get(id)
      if (message === undefined || message.folder !== 'Drafts') return undefined
      const content = await readableMessage(message.raw)
      const attachments = await attachmentContents(message.raw)
      const replyTo = headerValue(message.raw, DRAFT_REPLY_HEADER)
      const field = (name: string): string => decodeEncodedWords(headerValue(message.raw, name) ?? '')
      return {
        to: field(DRAFT_HEADERS.to),
        cc: field(DRAFT_HEADERS.cc),
        bcc: field(DRAFT_HEADERS.bcc),
        subject: content.subject,
        body: content.text,
        attachments,
        ...(replyTo !== undefined && /^[0-9]{16}$/.test(replyTo) ? { inReplyToId: replyTo } : {})
      }
    },

    async send (draft, fromDraft) {
      const built = await buildMessage(await draftInput(draft), { address: identity.address }, { domain: identity.domain, maxBytes: init.maxMessageBytes })
      const stored = await vault.add({ folder: 'Outbox', raw: built.raw, from: identity.address, to: built.envelope.to, messageId: built.messageId, flags: ['\\Seen'] })
      const entry = await queue.enqueue({ storeId: stored.meta.id, from: identity.address, to: built.envelope.to, messageId: built.messageId, raw: built.raw })
      if (fromDraft !== undefined && (await metaOf(fromDraft))?.folder === 'Drafts') await vault.remove(fromDraft)
      log.info({ queue: entry.id, recipients: built.envelope.to.length }, 'A message written in the web UI was queued.')
      return entry.id
    },

    async outbox (): Promise<OutboxEntry[]> {
      const describe = async (entry: QueueEntry): Promise<OutboxEntry> => ({
        id: entry.id,
        storeId: entry.storeId,
        ...(entry.messageId !== undefined ? { messageId: entry.messageId } : {}),
        subject: await subjectOf(entry),
        createdAt: entry.createdAt,
        recipients: entry.recipients.map(r => ({
          address: r.address,
          state: recipientState(r),
          attempts: r.attempts,
          ...(r.lastResult !== undefined ? { lastResult: r.lastResult } : {}),
          ...(r.state === 'pending' && r.tryingSince === undefined ? { nextAttemptAt: r.nextAttemptAt } : {})
        }))
      })
      const recent = queue.recentlyFinished().filter(e => Date.now() - e.finishedAt < FINISHED_VISIBLE_MS)
      const out = await Promise.all([...queue.list(), ...recent].map(describe))
      return out.sort((a, b) => b.createdAt - a.createdAt)
    },

    retry: (queueId) => queue.retry(queueId),
    cancel: async (queueId) => await queue.cancel(queueId),

    async relaySettings () {
      if (relay === undefined) return undefined
      const { password: _secret, ...shown } = relay
      return shown
    },

    async saveRelaySettings (settings) {
      if (settings === undefined) {
        await writeSettings(RELAY_RECORD, { removed: true })
        relay = undefined
      } else {
        const next = withSavedPassword(settings)
        await writeSettings(RELAY_RECORD, next)
        relay = next
      }
      components.delivery.setRelay(relay)
      // Recipients that waited for a relay (or the old one) try the new one now. Not after a
      // removal: that would fail every queued legacy recipient at once (perhaps mid-switch).
      if (relay !== undefined) queue.retryNow()
      log.info({ relay: relay === undefined ? 'none' : `${relay.host}:${relay.port}` }, 'The relay settings were changed in the web UI.')
    },

    async testRelay (settings) {
      return await testRelay(withSavedPassword(settings), { socksEndpoint: components.socksEndpoint })
    },

    credentials: async (): Promise<Credential[]> => components.credentials.list(),
    addCredential: async (name) => await components.credentials.add(name),
    revokeCredential: async (id) => await components.credentials.revoke(id),
    enableCredential: async (id) => await components.credentials.enable(id),

    async uiSettings () {
      if (vault.state() !== 'unlocked') return DEFAULT_UI_SETTINGS
      return { ...DEFAULT_UI_SETTINGS, ...(await readSettings<UiSettings>(UI_RECORD)) }
    },
    async saveUiSettings (settings) {
      await writeSettings(UI_RECORD, settings)
    }
  }

  /** A password left empty in the form keeps the saved one, for the same user name. */
  function withSavedPassword (settings: RelaySettings): RelayConfig {
    // The saved password goes only to the server it was saved for: a changed host or port
    // (a typo, say) must not receive it.
    const sameServer = relay !== undefined && settings.host === relay.host && settings.port === relay.port && settings.username === relay.username
    const password = settings.password ?? (settings.username !== undefined && sameServer ? relay?.password : undefined)
    if (settings.username !== undefined && password === undefined) throw Object.assign(new Error('Enter the password for that user name.'), { statusCode: 400 })
    return { host: settings.host, port: settings.port, requireTls: settings.requireTls, verifyCertificate: settings.verifyCertificate, viaTor: settings.viaTor, ...(settings.username !== undefined ? { username: settings.username, password: password! } : {}) }
  }

  function indexingProgress (): { indexing?: { done: number, total: number } } {
    const progress = vault.indexingProgress()
    return progress !== undefined && progress.done < progress.total ? { indexing: progress } : {}
  }

  return backend
}
