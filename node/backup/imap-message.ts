// The IMAP message that carries one backup blob (spec/backup.md section 3.2): a minimal
// RFC 5322 message with the blob as an application/octet-stream base64 body (RFC 2045 6.8).
// Pure: no sockets, no disk. todo: move to protocol/ with the friends' wire formats; it sits
// here while the backup folder is the only user.
import { randomBytes } from 'node:crypto'
import { BlobDamagedError, checkBlob, isBlobName } from './target.ts'

/** Version of the message layout, in the X-Smtorp-Backup-Format header. */
export const IMAP_BLOB_FORMAT = 1

export const BLOB_HEADER = 'X-Smtorp-Blob'
export const BLOB_SIZE_HEADER = 'X-Smtorp-Blob-Size'
export const FORMAT_HEADER = 'X-Smtorp-Backup-Format'
/** The fixed From and To: `.invalid` (RFC 2606) so that nothing is ever delivered to it. */
export const BLOB_ADDRESS = 'smtorp backup <backup@smtorp.invalid>'

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat']
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec']

/** RFC 5322 3.3 date-time in UTC: "Thu, 01 Jan 1970 00:00:00 +0000". */
export function rfc5322Date (date: Date): string {
  const two = (n: number): string => String(n).padStart(2, '0')
  return `${DAYS[date.getUTCDay()]}, ${two(date.getUTCDate())} ${MONTHS[date.getUTCMonth()]} ${date.getUTCFullYear()} ` +
    `${two(date.getUTCHours())}:${two(date.getUTCMinutes())}:${two(date.getUTCSeconds())} +0000`
}

export interface BlobMessageOptions {
  /** The Date header; now when absent. */
  date?: Date
  /** Left part of the Message-ID; 32 random hex characters when absent (a fixed one only for test vectors). */
  messageIdToken?: string
}

/**
 * The message for a blob. A fresh random Message-ID on every put: some providers drop an
 * APPEND whose Message-ID they already hold, which would turn a replace into a no-op.
 */
export function blobMessage (name: string, bytes: Uint8Array, options: BlobMessageOptions = {}): Buffer {
  checkBlob(name, bytes)
  const token = options.messageIdToken ?? randomBytes(16).toString('hex')
  const head = [
    `From: ${BLOB_ADDRESS}`,
    `To: ${BLOB_ADDRESS}`,
    `Subject: smtorp-backup ${name}`,
    `Date: ${rfc5322Date(options.date ?? new Date())}`,
    `Message-ID: <${token}@smtorp.invalid>`,
    'MIME-Version: 1.0',
    `${FORMAT_HEADER}: ${IMAP_BLOB_FORMAT}`,
    `${BLOB_HEADER}: ${name}`,
    `${BLOB_SIZE_HEADER}: ${bytes.byteLength}`,
    'Content-Type: application/octet-stream',
    'Content-Transfer-Encoding: base64',
    '',
    '',
  ].join('\r\n')
  // RFC 2045 6.8: lines of at most 76 characters.
  const b64 = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64')
  const lines: string[] = []
  for (let i = 0; i < b64.length; i += 76) lines.push(b64.slice(i, i + 76) + '\r\n')
  return Buffer.concat([Buffer.from(head, 'latin1'), Buffer.from(lines.join(''), 'latin1')])
}

export interface BlobHeaders {
  name: string
  size: number
}

/**
 * Reads the blob headers out of a header block (the whole header, or just the fields FETCH
 * BODY.PEEK[HEADER.FIELDS (...)] returned). Undefined when the message is not a blob of a
 * format we know: other mail in the folder is left alone.
 */
export function readBlobHeaders (header: Buffer | string): BlobHeaders | undefined {
  const text = typeof header === 'string' ? header : header.toString('latin1')
  const end = text.indexOf('\r\n\r\n')
  // RFC 5322 2.2.3: unfold before reading.
  const block = (end === -1 ? text : text.slice(0, end)).replace(/\r?\n[ \t]+/g, ' ')
  const fields = new Map<string, string>()
  for (const line of block.split(/\r?\n/)) {
    const colon = line.indexOf(':')
    if (colon <= 0) continue
    const key = line.slice(0, colon).trim().toLowerCase()
    // The first occurrence counts; a second one is ignored.
    if (!fields.has(key)) fields.set(key, line.slice(colon + 1).trim())
  }
  const format = fields.get(FORMAT_HEADER.toLowerCase())
  const name = fields.get(BLOB_HEADER.toLowerCase())
  const size = fields.get(BLOB_SIZE_HEADER.toLowerCase())
  // Format absent: read as 1 if the other two are there, so HEADER.FIELDS of just those two suffices.
  if (format !== undefined && format !== String(IMAP_BLOB_FORMAT)) return undefined
  if (!isBlobName(name) || size === undefined || !/^\d{1,9}$/.test(size)) return undefined
  return { name, size: Number(size) }
}

/**
 * The blob carried by a whole message (as FETCH BODY[] returns it). Throws BlobDamagedError
 * when it is not the blob `name`, or its body does not decode to the size its header states.
 */
export function readBlobMessage (name: string, message: Buffer): Buffer {
  const end = message.indexOf('\r\n\r\n')
  if (end === -1) throw new BlobDamagedError(`the stored copy of backup blob ${name} has no message body`)
  const headers = readBlobHeaders(message.subarray(0, end + 4))
  if (headers === undefined || headers.name !== name) {
    throw new BlobDamagedError(`the stored copy of backup blob ${name} does not carry the ${BLOB_HEADER} and ${BLOB_SIZE_HEADER} headers of that blob`)
  }
  const body = message.subarray(end + 4).toString('latin1').replace(/[\r\n]/g, '')
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body) || body.length % 4 !== 0) {
    throw new BlobDamagedError(`the stored copy of backup blob ${name} is not valid base64`)
  }
  const bytes = Buffer.from(body, 'base64')
  if (bytes.byteLength !== headers.size) {
    throw new BlobDamagedError(`the stored copy of backup blob ${name} decodes to ${bytes.byteLength} bytes, not the ${headers.size} its header states`)
  }
  return bytes
}
