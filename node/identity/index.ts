// The node's identity on disk: its onion service key (the Ed25519 seed, so the address is
// stable and the node can sign with it) and the owner's submission password.
// (OpenPGP keys join these in a later issue.)
//
//   <dataDir>/                  mode 0700
//     config.yaml               settings (node/config/config.example.yaml, with the user filled in)
//     identity/onion.seed       32 bytes, the Ed25519 private key (RFC 8032 seed), mode 0600
//     submission.secret         the submission password, one line, mode 0600
//     web-ui.key                the secret path of the web UI (/s/<key>/), one line, mode 0600
import { mkdir, readFile, writeFile, open, rename, stat, readdir } from 'node:fs/promises'
import { join, dirname } from 'node:path'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { parseDocument } from 'yaml'
import { generateOnionKey, onionKeyFromSeed, type OnionKey } from '../../protocol/onion.ts'
import { CONFIG_FILE } from '../config/index.ts'

export interface Identity {
  onionKey: OnionKey
  /** "<56 chars>.onion" */
  domain: string
  /** "<user>@<domain>" */
  address: string
  submissionPassword: string
}

export class IdentityError extends Error {
  override name = 'IdentityError'
}

const SEED_FILE = join('identity', 'onion.seed')
const PASSWORD_FILE = 'submission.secret'

/** Write a file so that after a crash it is either absent or complete (temp, fsync, rename, fsync dir). */
export async function writeFileDurably (path: string, data: string | Buffer, mode = 0o600): Promise<void> {
  const temp = `${path}.tmp-${randomBytes(4).toString('hex')}`
  const handle = await open(temp, 'wx', mode)
  try {
    await handle.writeFile(data)
    await handle.sync()
  } finally {
    await handle.close()
  }
  await rename(temp, path)
  const dir = await open(dirname(path), 'r')
  try {
    await dir.sync()
  } finally {
    await dir.close()
  }
}

export interface InitOptions {
  /** Settings to write into the new config.yaml, as [path, value], e.g. [['submission', 'host'], '0.0.0.0']. */
  settings?: Array<[string[], unknown]>
}

/** `smtorp init`: create a data directory with a new onion key. Refuses to overwrite one. */
export async function createIdentity (dataDir: string, user: string, options: InitOptions = {}): Promise<Identity> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 })
  const present = await readdir(dataDir)
  if (present.includes(CONFIG_FILE) || present.includes('identity')) {
    throw new IdentityError(`${dataDir} already holds a node; refusing to overwrite its key`)
  }
  await mkdir(join(dataDir, 'identity'), { mode: 0o700 })
  const key = generateOnionKey()
  await writeFileDurably(join(dataDir, SEED_FILE), key.seed)
  const password = randomBytes(18).toString('base64url')
  await writeFileDurably(join(dataDir, PASSWORD_FILE), `${password}\n`)
  // The commented example, with the user's settings filled in; comments are kept.
  const config = parseDocument(await readFile(join(dirname(fileURLToPath(import.meta.url)), '..', 'config', 'config.example.yaml'), 'utf8'))
  config.set('user', user)
  for (const [path, value] of options.settings ?? []) config.setIn(path, value)
  await writeFileDurably(join(dataDir, CONFIG_FILE), config.toString(), 0o600)
  return identityFrom(key, user, password)
}

const UI_KEY_FILE = 'web-ui.key'

/**
 * The secret path segment of the web UI (ui/server.ts): 16 random bytes, base64url, made on
 * first use and kept so that the owner's bookmark keeps working across restarts.
 */
export async function webUiPathKey (dataDir: string): Promise<string> {
  const path = join(dataDir, UI_KEY_FILE)
  try {
    const key = (await readFile(path, 'utf8')).trim()
    if (/^[A-Za-z0-9_-]{22,}$/.test(key)) return key
    throw new IdentityError(`${path} does not hold a web UI key (22 or more base64url characters); remove it and a new one is made`)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  const key = randomBytes(16).toString('base64url')
  await writeFileDurably(path, `${key}\n`)
  return key
}

function identityFrom (key: OnionKey, user: string, password: string): Identity {
  const domain = `${key.address}.onion`
  return { onionKey: key, domain, address: `${user}@${domain}`, submissionPassword: password }
}

export async function loadIdentity (dataDir: string, user: string): Promise<Identity> {
  let seed: Buffer
  try {
    seed = await readFile(join(dataDir, SEED_FILE))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new IdentityError(`no onion key in ${dataDir}: run "smtorp init" first`)
    throw err
  }
  if (seed.length !== 32) throw new IdentityError(`${join(dataDir, SEED_FILE)} is damaged: it must hold 32 bytes`)
  const info = await stat(join(dataDir, SEED_FILE))
  if ((info.mode & 0o077) !== 0) throw new IdentityError(`${join(dataDir, SEED_FILE)} is readable by others; run chmod 600 on it`)
  const password = (await readFile(join(dataDir, PASSWORD_FILE), 'utf8')).trim()
  return identityFrom(onionKeyFromSeed(seed), user, password)
}
