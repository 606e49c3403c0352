// The frame every friends protocol carries (spec/friends.md, "Frames"): one frame per
// request and one per answer, each sent as a libp2p length-prefixed message (unsigned varint
// length, then the bytes) on a stream of its own.
//
//   frame  = version (1 byte, 0x01) | header length (4 bytes, big-endian) | header | body
//   header = a JSON object in UTF-8, at most MAX_HEADER_BYTES
//   body   = the rest of the frame: raw bytes (a shard, a share), possibly empty
//
// An answer's header has `ok: true`, or `ok: false` with a `code` (a word from
// FRIENDS_ERROR_CODES) and a `message` a person can read.

export const FRIENDS_WIRE_VERSION = 1
export const MAX_HEADER_BYTES = 64 * 1024
/** The largest body: a shard of a 16 MiB blob cut into one data shard, plus room. */
export const MAX_BODY_BYTES = 16 * 1024 * 1024 + 64 * 1024
export const MAX_FRAME_BYTES = 5 + MAX_HEADER_BYTES + MAX_BODY_BYTES

export const FRIENDS_ERROR_CODES = ['bad-request', 'not-a-friend', 'over-quota', 'not-found', 'forbidden', 'busy', 'internal'] as const
export type FriendsErrorCode = typeof FRIENDS_ERROR_CODES[number]

export type Header = Record<string, unknown>

export interface Frame {
  header: Header
  body: Buffer
}

export class FrameError extends Error {
  override name = 'FrameError'
}

export function encodeFrame (header: Header, body: Uint8Array = new Uint8Array(0)): Buffer {
  const json = Buffer.from(JSON.stringify(header), 'utf8')
  if (json.length > MAX_HEADER_BYTES) throw new FrameError(`a frame header is at most ${MAX_HEADER_BYTES} bytes, and this one is ${json.length}`)
  if (body.byteLength > MAX_BODY_BYTES) throw new FrameError(`a frame body is at most ${MAX_BODY_BYTES} bytes, and this one is ${body.byteLength}`)
  const prefix = Buffer.alloc(5)
  prefix[0] = FRIENDS_WIRE_VERSION
  prefix.writeUInt32BE(json.length, 1)
  return Buffer.concat([prefix, json, body])
}

/** Parses a frame; throws FrameError (never anything else) on any malformation. */
export function decodeFrame (bytes: Uint8Array): Frame {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (buf.length < 5) throw new FrameError('a frame is at least 5 bytes')
  if (buf[0] !== FRIENDS_WIRE_VERSION) throw new FrameError(`frame version ${buf[0]} is not ${FRIENDS_WIRE_VERSION}`)
  const length = buf.readUInt32BE(1)
  if (length > MAX_HEADER_BYTES || 5 + length > buf.length) throw new FrameError('the frame header length is out of range')
  if (buf.length - 5 - length > MAX_BODY_BYTES) throw new FrameError('the frame body is too large')
  let header: unknown
  try {
    header = JSON.parse(buf.subarray(5, 5 + length).toString('utf8'))
  } catch {
    throw new FrameError('the frame header is not JSON')
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw new FrameError('the frame header is not a JSON object')
  return { header: header as Header, body: Buffer.from(buf.subarray(5 + length)) }
}
