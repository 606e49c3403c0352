// A worker thread that signs and encrypts outgoing mail (outgoing.ts), so that the ~1 ms of
// openpgp.js work per message runs beside the event loop instead of on it (outgoing-pool.ts).
// Messages in: { id, op: 'key', armoredPrivateKey } | { id, op: 'sign', raw, protectedExtra }
// | { id, op: 'encrypt', raw, protectedExtra, ownKey, visible, blind, gossip } with keys armored.
// Messages out: { id, raw } | { id, copies } | { id, ok } | { id, error }.
import { parentPort } from 'node:worker_threads'
import { createHash } from 'node:crypto'
import * as openpgp from 'openpgp'
import { encryptMessage, signMessage } from './outgoing.ts'

interface Recipient { address: string, armoredKey: string }

/** Set by 'key'; a promise, so an operation that comes right behind the key waits for it. */
let signingKey: Promise<openpgp.PrivateKey> | undefined
/** Recipients' keys, parsed once: the same few correspondents come again and again. */
const publicKeys = new Map<string, openpgp.PublicKey>()
const KEYS_KEPT = 256

async function publicKey (armoredKey: string): Promise<openpgp.PublicKey> {
  const id = createHash('sha256').update(armoredKey).digest('base64')
  let key = publicKeys.get(id)
  if (key === undefined) {
    key = await openpgp.readKey({ armoredKey })
    if (publicKeys.size >= KEYS_KEPT) publicKeys.delete(publicKeys.keys().next().value as string)
    publicKeys.set(id, key)
  }
  return key
}

async function withKeys (recipients: Recipient[]): Promise<Array<{ address: string, key: openpgp.PublicKey }>> {
  return await Promise.all(recipients.map(async r => ({ address: r.address, key: await publicKey(r.armoredKey) })))
}

async function mustSign (): Promise<openpgp.PrivateKey> {
  if (signingKey === undefined) throw new Error('the signing key was not given to the worker')
  return await signingKey
}

parentPort?.on('message', (message: { id: number, op: string, [k: string]: unknown }) => {
  void (async () => {
    try {
      if (message.op === 'key') {
        signingKey = openpgp.readPrivateKey({ armoredKey: message.armoredPrivateKey as string })
        await signingKey
        parentPort?.postMessage({ id: message.id, ok: true })
      } else if (message.op === 'sign') {
        const raw = await signMessage(Buffer.from(message.raw as Uint8Array), { signingKey: await mustSign(), protectedExtra: message.protectedExtra as string[] })
        parentPort?.postMessage({ id: message.id, raw })
      } else if (message.op === 'encrypt') {
        const copies = await encryptMessage(Buffer.from(message.raw as Uint8Array), {
          signingKey: await mustSign(),
          protectedExtra: message.protectedExtra as string[],
          ownKey: await publicKey(message.ownKey as string),
          visible: await withKeys(message.visible as Recipient[]),
          blind: await withKeys(message.blind as Recipient[]),
          gossip: message.gossip as string[]
        })
        parentPort?.postMessage({ id: message.id, copies })
      } else {
        throw new Error(`unknown operation ${message.op}`)
      }
    } catch (err) {
      parentPort?.postMessage({ id: message.id, error: (err as Error).message })
    }
  })()
})
