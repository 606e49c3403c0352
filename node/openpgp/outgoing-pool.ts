// Signing and encrypting outgoing mail on worker threads (outgoing-worker.ts): openpgp.js takes
// about a millisecond of CPU per message, which on the event loop would be taken from every
// SMTP session, the web UI and the queue (bench/RESULTS.md, "Submission ingest"). One worker
// per spare core (at least one). A worker that dies fails only the operations it had, with an
// error, and the next operation starts a new one.
import { Worker } from 'node:worker_threads'
import { availableParallelism } from 'node:os'
import type { OutgoingCopy } from './outgoing.ts'

export interface PooledRecipient {
  address: string
  /** The key to encrypt to, armored (the pinned key's text as kept in the peer record). */
  armoredKey: string
}

export interface OutgoingPool {
  /** The owner's key (armored, unlocked); given again to every worker, also ones started later. */
  setKey (armoredPrivateKey: string): Promise<void>
  sign (raw: Buffer, protectedExtra: string[]): Promise<Buffer>
  encrypt (raw: Buffer, options: { protectedExtra: string[], ownKey: string, visible: PooledRecipient[], blind: PooledRecipient[], gossip: string[] }): Promise<OutgoingCopy[]>
  stop (): Promise<void>
}

interface Pending { resolve: (value: Reply) => void, reject: (err: Error) => void }
interface Reply { raw?: Uint8Array, copies?: Array<{ to: string[], raw: Uint8Array }>, ok?: true, error?: string }
interface Slot { worker: Worker, pending: Map<number, Pending> }

export interface OutgoingPoolInit {
  /** Workers at most (default: one per spare core, at least one, at most four). */
  size?: number
  /** The worker script; tests give one that dies on purpose. */
  workerUrl?: URL
}

export function outgoingPool (init: OutgoingPoolInit = {}): OutgoingPool {
  const size = init.size ?? Math.max(1, Math.min(4, availableParallelism() - 1))
  const workerUrl = init.workerUrl ?? new URL('./outgoing-worker.ts', import.meta.url)
  const slots: Slot[] = []
  let armoredKey: string | undefined
  let nextId = 1
  let stopped = false

  function startSlot (): Slot {
    const worker = new Worker(workerUrl)
    worker.unref() // an idle pool never keeps the process alive
    const slot: Slot = { worker, pending: new Map() }
    const fail = (err: Error): void => {
      const i = slots.indexOf(slot)
      if (i >= 0) slots.splice(i, 1)
      for (const p of slot.pending.values()) p.reject(err)
      slot.pending.clear()
    }
    worker.on('message', (reply: Reply & { id: number }) => {
      const p = slot.pending.get(reply.id)
      if (p === undefined) return
      slot.pending.delete(reply.id)
      if (reply.error !== undefined) p.reject(new Error(reply.error)); else p.resolve(reply)
    })
    worker.on('error', (err: Error) => { fail(new Error(`the OpenPGP worker failed: ${err.message}`)) })
    worker.on('exit', code => { fail(new Error(`the OpenPGP worker stopped (exit code ${code})`)) })
    slots.push(slot)
    if (armoredKey !== undefined) void call(slot, { op: 'key', armoredPrivateKey: armoredKey }).catch(() => {})
    return slot
  }

  async function call (slot: Slot, message: Record<string, unknown>): Promise<Reply> {
    const id = nextId++
    return await new Promise<Reply>((resolve, reject) => {
      slot.pending.set(id, { resolve, reject })
      slot.worker.postMessage({ id, ...message })
    })
  }

  /** The least busy worker, starting one while there are fewer than `size`. */
  function pick (): Slot {
    if (stopped) throw new Error('the OpenPGP worker pool is stopped')
    const idle = slots.find(s => s.pending.size === 0)
    if (idle !== undefined) return idle
    if (slots.length < size) return startSlot()
    return slots.reduce((a, b) => (b.pending.size < a.pending.size ? b : a))
  }

  const bytes = (data: Uint8Array): Buffer => Buffer.from(data.buffer, data.byteOffset, data.byteLength)

  return {
    async setKey (armoredPrivateKey) {
      armoredKey = armoredPrivateKey
      await Promise.all(slots.map(async slot => await call(slot, { op: 'key', armoredPrivateKey })))
    },
    async sign (raw, protectedExtra) {
      const reply = await call(pick(), { op: 'sign', raw, protectedExtra })
      return bytes(reply.raw as Uint8Array)
    },
    async encrypt (raw, options) {
      const reply = await call(pick(), { op: 'encrypt', raw, ...options })
      return (reply.copies ?? []).map(c => ({ to: c.to, raw: bytes(c.raw) }))
    },
    async stop () {
      stopped = true
      await Promise.all(slots.splice(0).map(async slot => await slot.worker.terminate()))
    }
  }
}
