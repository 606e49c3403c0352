// The node's side of the web UI: implements UiNode (ui/node-api.ts) on top of the vault, the
// queue, tor, delivery and the submission credentials. The UI only ever sees this object.
//
// Settings the UI changes live in the vault as sealed records (kind "settings"): the relay
// (with its password) and the UI's own settings. They are read at each unlock.
//
// OpenPGP (node/openpgp/): mail written here is signed, and encrypted as the owner chose, before
// it is stored in the Outbox; a message is shown (and its attachments given) from its decrypted
// or verified content; the owner's key and the correspondents' keys are managed here.
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
import type { StoredMessage, StoredMessageMeta, MessageSecurity as StoredSecurity } from '../store/mail-store.ts'
import { flagsForChoice, type OpenPgp, type OwnKeyInfo, type PeerSummary, type EncryptionChoice } from '../openpgp/index.ts'
import { readableMessage, attachmentContent, attachmentContents, MAX_TEXT_CHARS } from '../mail-view/index.ts'
import { addressesAsTyped, buildMessage, ComposeError, replyDraft, DRAFT_HEADERS, type DraftInput } from '../compose/index.ts'
import { parseAddress, AddressError } from '../../protocol/address.ts'
import { decodeEncodedWords, headerValue, summarizeHeaders } from '../../protocol/message.ts'
import type {
  UiNode, Health, FolderName, FolderSummary, MessagePage, MessageSummary, ReadableMessage, Draft, Route,
  OutboxEntry, OutboxRecipient, RelaySettings, UiSettings, UnlockSecret, Credential, MessageSecurity, OwnKey, Contact
} from '../../ui/node-api.ts'
import { FOLDER_NAMES } from '../../ui/node-api.ts'
import type { BackupOverview, BackupRun, BackupTargetState, FriendInfo, RecoveryOverview } from '../../ui/node-api.ts'
import type { FriendsService } from '../friends/index.ts'
import type { BackupScheduler, LastBackup } from '../backup/scheduler.ts'
import { FOLDERS } from '../store/mail-store.ts'

export interface UiBackendInit {
  dataDir: string
  /** The relay from config.yaml, used until the owner saves one in the UI. */
  configRelay?: RelayConfig
  maxMessageBytes: number
  submission: { host: string }
  /** The address mail written here is sent from (From): config.openpgp.address; the onion one when not given. */
  sendAs?: string
}

export interface UiBackendComponents {
  logger: Logger
  identity: Identity
  vault: Vault
  queue: OutboundQueue
  tor: TorService
  delivery: DeliveryService
  credentials: CredentialStore
  /** Signs and encrypts what is sent here, decrypts and verifies what is shown. */
  openpgp: OpenPgp
  submissionPort: () => number
  socksEndpoint: () => { host: string, port: number }
  /** The node's scrub (one at a time), reporting progress. */
  scrub: (onProgress: (done: number, total: number) => void) => Promise<ScrubReport>
  lastScrub: () => ScrubReport | undefined
  /** Unlock the vault and start what waits for it (the node's unlock). */
  unlock: (secret: UnlockSecret) => Promise<void>
  /** The friends service (undefined when friends are turned off); asked for once the node runs. */
  friends?: () => FriendsService | undefined
  /** The IMAP backup scheduler, when backup.imap is configured. */
  imapBackup?: () => BackupScheduler | undefined
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
/** The owner's encryption choice on a saved draft ("yes" or "no"; absent: automatic). */
const DRAFT_ENCRYPT_HEADER = 'X-Smtorp-Draft-Encrypt'
const MAX_ROUTES_SHOWN = 50
/** Changed keys the owner chose not to accept (address → fingerprint and when): a settings record. */

function securityView (security: StoredSecurity | undefined): MessageSecurity | undefined {
  if (security === undefined) return undefined
  if (!security.encrypted && security.signature === 'none' && security.problem === undefined) return undefined
  return {
    encrypted: security.encrypted,
    signature: security.signature,
    ...(security.decrypted !== undefined ? { decrypted: security.decrypted } : {}),
    ...(security.signer !== undefined ? { signer: security.signer } : {}),
    ...(security.keyState !== undefined ? { keyState: security.keyState } : {}),
    ...(security.problem !== undefined ? { problem: security.problem } : {})
  }
}

function ownKeyView (info: OwnKeyInfo): OwnKey {
  return { fingerprint: info.fingerprint, created: info.created.getTime(), addresses: info.addresses, armoredPublicKey: info.armoredPublicKey }
}

function ms (iso: string | undefined): number | undefined {
  if (iso === undefined) return undefined
  const t = Date.parse(iso)
  return Number.isFinite(t) ? t : undefined
}

function runView (run: LastBackup): BackupRun {
  return {
    startedAt: ms(run.startedAt) ?? 0,
    finishedAt: ms(run.finishedAt) ?? 0,
    ok: run.ok,
    ...(run.report !== undefined ? { messages: run.report.messages, uploaded: run.report.uploaded, uploadedBytes: run.report.uploadedBytes } : {}),
    ...(run.error !== undefined ? { error: run.error } : {}),
    ...(ms(run.retryAt) !== undefined ? { retryAt: ms(run.retryAt) } : {})
  }
}

/** A mistake of the owner's (a wrong code, a friend that is not one): shown on the page as a 400. */
function ownersMistake (err: unknown): Error {
  const e = err as Error
  if (['FriendshipError', 'CustodyError', 'InviteError', 'PeerRefusedError', 'PeerUnavailableError', 'FriendBookError'].includes(e.name)) return Object.assign(e, { statusCode: 400 })
  return e
}

function badRequest (err: unknown): Error {
  const e = err as Error
  // Key errors are sentences for the owner; they are shown on the page they came from.
  if (e.name === 'OpenPgpKeyError' || e.name === 'KeyLookupError' || e.name === 'EncryptionRefusedError') return Object.assign(e, { statusCode: 400 })
  return e
}

export function uiBackend (init: UiBackendInit, components: UiBackendComponents): UiBackend {
  const { vault, queue, tor, identity } = components
  const openpgp = components.openpgp
  const sendAs = init.sendAs ?? identity.address
  const sendAsDomain = sendAs.slice(sendAs.lastIndexOf('@') + 1)
  const ownAddresses = new Set([identity.address.toLowerCase(), sendAs.toLowerCase()])
  const log = components.logger.child({ component: 'ui-backend' })
  let scrubProgress: { done: number, total: number } | undefined
  let auditing = false
  let auditError: string | undefined
  let checkingCustodians = false
  function friendsOrFail (): FriendsService {
    const friends = components.friends?.()
    if (friends === undefined) throw Object.assign(new Error('Friends are turned off in config.yaml (friends.enabled: false).'), { statusCode: 400 })
    return friends
  }
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
      ...(thread !== undefined && thread !== '' ? { threadSize: vault.threadSize(thread) } : {}),
      ...withSecurity(meta.security)
    }
  }

  function withSecurity (security: StoredSecurity | undefined): { security?: MessageSecurity } {
    const view = securityView(security)
    return view !== undefined ? { security: view } : {}
  }

  /**
   * The message as the owner reads it: decrypted or verified by OpenPGP when it is protected
   * (the stored bytes are never changed). The security is the one recorded when it arrived
   * (it knows whether the key was the sender's), else what this reading found.
   */
  async function shown (message: StoredMessage): Promise<{ raw: Buffer, security?: MessageSecurity, problems: string[] }> {
    try {
      const read = await openpgp.readMessage(message.raw)
      const fresh = securityView(read.security)
      const security = securityView(message.security) ?? fresh
      // A problem met now (a key since removed, say) is said even when arrival went well.
      const problems = fresh?.problem !== undefined && fresh.problem !== security?.problem ? [fresh.problem] : []
      return { raw: read.display ?? message.raw, ...(security !== undefined ? { security } : {}), problems }
    } catch (err) {
      if ((err as Error).name !== 'OpenPgpNotReadyError') log.warn({ message: message.id, err: (err as Error).name }, 'A message could not be read for OpenPGP; it is shown as stored.')
      const security = securityView(message.security)
      return { raw: message.raw, ...(security !== undefined ? { security } : {}), problems: security !== undefined ? ['The OpenPGP key is not available right now, so this message is shown as it is stored (encrypted or with its signature unchecked).'] : [] }
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
    // spec/smtorp.md 9: their signed mail named an onion mailbox; the queue delivers there.
    const learned = openpgp.routeOf(address)
    if (learned !== undefined) return { address, kind: 'onion', learnedRoute: learned, description: `directly over Tor (learned route: their signed mail named ${learned})` }
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

  /** The addresses of these fields that can be written to, each once, as sending splits them. */
  function usableAddresses (fields: string[]): string[] {
    const out = new Map<string, string>()
    for (const address of fields.flatMap(addressesAsTyped)) {
      try {
        const parsed = parseAddress(address)
        out.set(`${parsed.local}@${parsed.domain}`.toLowerCase(), address)
      } catch {}
    }
    return [...out.values()]
  }

  async function repliesToEncrypted (draft: Draft): Promise<boolean> {
    return draft.inReplyToId !== undefined && (await metaOf(draft.inReplyToId).catch(() => undefined))?.security?.encrypted === true
  }

  function contactOf (peer: PeerSummary): Contact {
    return {
      address: peer.address,
      ...(peer.lastSeen !== undefined ? { lastSeen: peer.lastSeen } : {}),
      ...(peer.preferEncrypt !== undefined ? { preferEncrypt: peer.preferEncrypt } : {}),
      ...(peer.pinned !== undefined ? { pinned: { ...peer.pinned } } : {}),
      ...(peer.changed !== undefined ? { changed: { ...peer.changed } } : {}),
      gossipOnly: peer.gossipOnly,
      ...(peer.route !== undefined ? { route: peer.route } : {})
    }
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
      const view = await shown(message)
      const content = await readableMessage(view.raw)
      return {
        summary: summaryOf(message),
        from: content.from, to: content.to, cc: content.cc, replyTo: content.replyTo,
        ...(content.messageId !== undefined ? { messageId: content.messageId } : {}),
        text: content.text, fromHtml: content.fromHtml, attachments: content.attachments, problems: [...view.problems, ...content.problems],
        ...(view.security !== undefined ? { security: view.security } : {})
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
      // The attachments listed are those of the decrypted content: the same content gives them.
      return message === undefined ? undefined : await attachmentContent((await shown(message)).raw, index)
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

    routesFor (fields, options = {}) {
      const seen = new Set<string>()
      const routes: Route[] = []
      for (const address of fields.flatMap(addressesAsTyped)) {
        const key = address.toLowerCase()
        if (seen.has(key)) continue
        seen.add(key)
        routes.push(routeFor(address))
        if (routes.length >= MAX_ROUTES_SHOWN) break
      }
      const usable = routes.filter(r => r.kind !== 'invalid')
      const security = openpgp.recipientSecurity(usable.map(r => r.address), options)
      usable.forEach((route, i) => {
        const s = security[i]
        if (s === undefined) return
        // Mail to oneself is encrypted to one's own key (openpgp prepareOutgoing).
        if (ownAddresses.has(s.address.toLowerCase())) {
          route.key = { state: 'verified', recommendation: 'encrypt' }
          return
        }
        route.key = {
          state: s.key,
          recommendation: s.recommendation,
          ...(s.fingerprint !== undefined ? { fingerprint: s.fingerprint } : {}),
          ...(s.changedKey !== undefined ? { changedKey: s.changedKey } : {})
        }
      })
      return routes
    },

    wouldEncrypt (fields, options = {}) {
      const addresses = usableAddresses(fields)
      return addresses.length > 0 && openpgp.wouldEncrypt(addresses, options)
    },

    async draftFrom (id, mode) {
      const message = await vault.get(id)
      if (message === undefined) throw Object.assign(new Error('There is no such message to answer.'), { statusCode: 404 })
      // An encrypted message is quoted and forwarded from its decrypted content.
      const view = await shown(message)
      const content = await readableMessage(view.raw)
      // Neither of the owner's addresses (the onion one, the ordinary one mail is sent as) is answered.
      const notOwn = (m: { address: string }): boolean => !ownAddresses.has(m.address.toLowerCase())
      const draft = replyDraft({ ...content, to: content.to.filter(notOwn), cc: content.cc.filter(notOwn) }, mode, sendAs)
      const base = { to: draft.to, cc: draft.cc, bcc: draft.bcc, subject: draft.subject, body: draft.body }
      // Autocrypt Level 1 2.4: a reply to an encrypted message is encrypted when it can be.
      const encrypt = view.security?.encrypted === true ? { encrypt: true } : {}
      if (mode !== 'forward') return { ...base, attachments: [], inReplyToId: id, ...encrypt }
      // A forward offers the original's attachments (the form posts back which to keep).
      return { ...base, attachments: await attachmentContents(view.raw), forwardOfId: id, ...encrypt }
    },

    async saveDraft (draft, replaces) {
      const built = await buildMessage(await draftInput(draft), { address: sendAs }, { domain: sendAsDomain, maxBytes: init.maxMessageBytes, draft: true })
      const local = [
        ...(draft.inReplyToId !== undefined ? [`${DRAFT_REPLY_HEADER}: ${draft.inReplyToId}\r\n`] : []),
        ...(draft.encrypt !== undefined ? [`${DRAFT_ENCRYPT_HEADER}: ${draft.encrypt ? 'yes' : 'no'}\r\n`] : [])
      ]
      const raw = local.length > 0 ? Buffer.concat([Buffer.from(local.join('')), built.raw]) : built.raw
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
      const encrypt = headerValue(message.raw, DRAFT_ENCRYPT_HEADER)
      const field = (name: string): string => decodeEncodedWords(headerValue(message.raw, name) ?? '')
      return {
        to: field(DRAFT_HEADERS.to),
        cc: field(DRAFT_HEADERS.cc),
        bcc: field(DRAFT_HEADERS.bcc),
        subject: content.subject,
        body: content.text,
        attachments,
        ...(replyTo !== undefined && /^[0-9]{16}$/.test(replyTo) ? { inReplyToId: replyTo } : {}),
        ...(encrypt === 'yes' || encrypt === 'no' ? { encrypt: encrypt === 'yes' } : {})
      }
    },

    async send (draft, fromDraft) {
      const built = await buildMessage(await draftInput(draft), { address: sendAs }, { domain: sendAsDomain, maxBytes: init.maxMessageBytes })
      const choice: EncryptionChoice = draft.encrypt === true ? 'encrypt' : draft.encrypt === false ? 'sign' : 'auto'
      // Refused (EncryptionRefusedError) before anything is stored: the caller keeps the draft.
      const prepared = await openpgp.prepareOutgoing(built.raw, built.envelope.to, choice, { replyToEncrypted: await repliesToEncrypted(draft) })
      // The envelope sender to peers is always the onion address (spec/smtorp.md 3.4); the
      // Outbox keeps the readable message, each recipient is sent its signed or encrypted copy.
      const flags = ['\\Seen', ...flagsForChoice(choice)]
      const stored = await vault.add({ folder: 'Outbox', raw: prepared.stored, from: identity.address, to: built.envelope.to, messageId: prepared.messageId, flags })
      const entry = await queue.enqueue({ storeId: stored.meta.id, from: identity.address, to: built.envelope.to, messageId: prepared.messageId, raw: prepared.stored, ...(prepared.copies !== undefined ? { copies: prepared.copies } : {}) })
      if (fromDraft !== undefined && (await metaOf(fromDraft))?.folder === 'Drafts') await vault.remove(fromDraft)
      log.info({ queue: entry.id, recipients: built.envelope.to.length, encrypted: prepared.encrypted, signed: prepared.signed }, 'A message written in the web UI was queued.')
      return entry.id
    },

    ownKey: async () => ownKeyView(await openpgp.ownKey()),
    async exportSecretKey (passphrase) {
      try {
        const armored = await openpgp.exportSecretKey(passphrase)
        log.info('The owner exported a backup of their OpenPGP secret key.')
        return armored
      } catch (err) { throw badRequest(err) }
    },
    async importSecretKey (armored, passphrase) {
      try {
        return ownKeyView(await openpgp.importSecretKey(armored, passphrase))
      } catch (err) { throw badRequest(err) }
    },
    regenerateKey: async () => ownKeyView(await openpgp.regenerateKey()),
    async revokeKey () {
      const { revokedPublicKey, newKey } = await openpgp.revokeKey()
      return { revokedPublicKey, newKey: ownKeyView(newKey) }
    },

    async contacts () {
      return openpgp.peers().map(contactOf)
    },
    async verifyContact (address, fingerprint) {
      try { await openpgp.verifyPeer(address, fingerprint) } catch (err) { throw badRequest(err) }
      log.info('The owner marked a correspondent\'s key verified.')
    },
    async acceptChangedKey (address, fingerprint) {
      try { await openpgp.acceptChangedKey(address, fingerprint) } catch (err) { throw badRequest(err) }
    },
    async keepOldKey (address, fingerprint) {
      try { await openpgp.keepPinnedKey(address, fingerprint) } catch (err) { throw badRequest(err) }
    },
    async importContactKey (armored, address) {
      try {
        return (await openpgp.importPeerKey(armored, address)).map(contactOf)
      } catch (err) { throw badRequest(err) }
    },
    async lookupKey (address) {
      try {
        const result = await openpgp.lookupKey(address)
        return { found: result.found.map(k => ({ source: k.source, fingerprint: k.fingerprint, userIds: k.userIds, created: k.created.getTime(), armoredPublicKey: k.armoredPublicKey })), problems: result.problems }
      } catch (err) { throw badRequest(err) }
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
    },

    // ---- friends ----

    friendsEnabled: () => components.friends?.() !== undefined,

    async friends (): Promise<FriendInfo[]> {
      const friends = await friendsOrFail().friends()
      return friends.map(f => ({
        onion: f.onion,
        name: f.name,
        addedAt: ms(f.addedAt) ?? 0,
        ...(ms(f.lastSeen) !== undefined ? { lastSeen: ms(f.lastSeen)! } : {}),
        quotaForThem: f.quotaForThem,
        weHoldOfTheirs: f.weHoldOfTheirs,
        quotaFromThem: f.quotaFromThem,
        holdsOfOurs: f.holdsOfOurs,
        shardsOfOurs: f.shardsOfOurs,
        ...(f.audits !== undefined
          ? { audits: { passed: f.audits.passed, failed: f.audits.failed, ...(ms(f.audits.lastAt) !== undefined ? { lastAt: ms(f.audits.lastAt)! } : {}), ...(f.audits.lastResult !== undefined ? { lastResult: f.audits.lastResult } : {}) } }
          : {})
      }))
    },

    async inviteFriend (quotaMiB) {
      const invite = await friendsOrFail().invite({ quotaMiB })
      log.info('An invite for a friend was made from the web UI.')
      return { code: invite.code, expiresAt: ms(invite.expiresAt) ?? 0, qrSvg: invite.qrSvg }
    },

    async acceptInvite (code, quotaMiB) {
      try {
        const friend = await friendsOrFail().accept(code, { quotaMiB })
        return { onion: friend.onion, name: friend.name }
      } catch (err) {
        throw ownersMistake(err)
      }
    },

    async setFriendQuota (onion, quotaMiB) {
      return await friendsOrFail().setQuota(onion, quotaMiB)
    },

    async removeFriend (onion) {
      const friends = friendsOrFail()
      if (!friends.book.isFriend(onion)) throw Object.assign(new Error('There is no such friend (removed already?).'), { statusCode: 400 })
      return await friends.remove(onion)
    },

    // ---- backups ----

    async backupOverview (): Promise<BackupOverview> {
      const friends = components.friends?.()
      const imap = components.imapBackup?.()
      const overview: BackupOverview = {}
      if (friends !== undefined) {
        const state = friends.backupState()
        overview.friends = {
          description: 'your friends',
          running: state.running,
          ...(state.progress !== undefined ? { progress: state.progress } : {}),
          ...(state.last !== undefined ? { last: runView(state.last) } : {}),
          ...(state.lastSuccess !== undefined ? { lastSuccess: runView(state.lastSuccess) } : {}),
          friends: state.friends,
          needed: state.needed,
          auditing,
          ...(state.lastAudit !== undefined ? { lastAudit: { at: ms(state.lastAudit.at) ?? 0, ...state.lastAudit.report } } : {}),
          ...(state.lastRepair !== undefined ? { lastRepair: { at: ms(state.lastRepair.at) ?? 0, replaced: state.lastRepair.report.replaced, unplaced: state.lastRepair.report.unplaced } } : {}),
          ...(auditError !== undefined ? { auditError } : {})
        }
      }
      if (imap !== undefined) {
        const last = imap.last()
        const lastSuccess = imap.lastSuccess()
        const progress = imap.progress()
        const state: BackupTargetState = {
          description: imap.description,
          running: imap.inProgress(),
          ...(progress !== undefined ? { progress } : {}),
          ...(last !== undefined ? { last: runView(last) } : {}),
          ...(lastSuccess !== undefined ? { lastSuccess: runView(lastSuccess) } : {})
        }
        overview.imap = state
      }
      if (vault.state() === 'unlocked') {
        // A message stored after the newest good backup started may not be in it.
        const starts = [overview.friends?.lastSuccess?.startedAt, overview.imap?.lastSuccess?.startedAt].filter((t): t is number => t !== undefined)
        const since = starts.length > 0 ? Math.max(...starts) : undefined
        let messages = 0
        let total = 0
        for (const folder of FOLDERS) {
          for (const meta of await vault.list(folder)) {
            total++
            if (since === undefined || meta.receivedAt >= since) messages++
          }
        }
        overview.atRisk = { messages, total, ...(since !== undefined ? { since } : {}) }
      }
      return overview
    },

    startBackup () {
      const friends = components.friends?.()
      const imap = components.imapBackup?.()
      if (friends === undefined && imap === undefined) throw Object.assign(new Error('No backup is set up: turn friends on, or add a backup.imap section to config.yaml.'), { statusCode: 400 })
      // The schedulers never throw: a failed run is kept as their last run, and shown.
      if (friends !== undefined && !friends.backupState().running) friends.backupNow().catch(() => {})
      if (imap !== undefined && !imap.inProgress()) imap.backupNow().catch(() => {})
    },

    startAudit () {
      const friends = friendsOrFail()
      if (auditing) return
      auditing = true
      auditError = undefined
      friends.auditAndRepair()
        .catch((err: unknown) => {
          auditError = (err as Error).message
          log.warn({ err: auditError }, 'The audit of friends started from the UI failed.')
        })
        .finally(() => { auditing = false })
    },

    // ---- recovery ----

    async recoveryOverview (): Promise<RecoveryOverview> {
      const friends = friendsOrFail()
      const custody = friends.custody
      const split = await custody.custodians()
      const held = await custody.held()
      return {
        ...(split !== undefined
          ? {
              custodians: {
                threshold: split.threshold,
                count: split.count,
                createdAt: ms(split.createdAt) ?? 0,
                custodians: split.custodians.map(c => ({
                  onion: c.onion,
                  name: c.name,
                  index: c.index,
                  ...(ms(c.deliveredAt) !== undefined ? { deliveredAt: ms(c.deliveredAt)! } : {}),
                  ...(c.check !== undefined ? { check: { at: ms(c.check.at) ?? 0, ok: c.check.ok, message: c.check.message } } : {})
                }))
              }
            }
          : {}),
        checking: checkingCustodians,
        // Only who and since when: the share and the kit stay in the vault.
        held: held.map(h => ({ owner: h.owner, ownerName: h.ownerName, receivedAt: ms(h.receivedAt) ?? 0 })),
        requests: custody.recoveryRequests().map(r => ({
          id: r.id,
          owner: r.owner,
          ...(r.ownerName !== undefined ? { ownerName: r.ownerName } : {}),
          requester: r.requester,
          code: r.code,
          createdAt: ms(r.createdAt) ?? 0,
          state: r.state,
          ...(r.reason !== undefined ? { reason: r.reason } : {})
        })),
        friends: friends.book.friends().map(f => ({ onion: f.onion, name: f.name }))
      }
    },

    startCustodianCheck () {
      const custody = friendsOrFail().custody
      if (checkingCustodians) return
      checkingCustodians = true
      custody.check()
        .catch((err: unknown) => { log.warn({ err: (err as Error).message }, 'Checking the custodians from the UI failed.') })
        .finally(() => { checkingCustodians = false })
    },

    async appointCustodians (onions, threshold, passphrase) {
      const custody = friendsOrFail().custody
      // Handing out the master key in shares: the owner proves again that it is them.
      await vault.checkSecret({ passphrase })
      try {
        await custody.appoint(onions, threshold)
      } catch (err) {
        throw ownersMistake(err)
      }
      log.info({ custodians: onions.length, threshold }, 'Custodians were appointed from the web UI.')
    },

    async approveRecovery (id) {
      try {
        await friendsOrFail().custody.approve(id)
      } catch (err) {
        throw ownersMistake(err)
      }
    },

    async refuseRecovery (id) {
      try {
        friendsOrFail().custody.refuse(id, 'the custodian refused')
      } catch (err) {
        throw ownersMistake(err)
      }
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
