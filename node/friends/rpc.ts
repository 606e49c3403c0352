// One request and one answer per libp2p stream, each a length-prefixed frame
// (protocol/friends-wire.ts). The serving side turns every failure of a handler into an
// answer with a code and a sentence; a malformed request gets "bad-request"; nothing a peer
// sends can throw out of a handler.
import type { PeerId, Stream, Connection } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import { lpStream } from '@libp2p/utils'
import { decodeFrame, encodeFrame, FrameError, FRIENDS_ERROR_CODES, MAX_FRAME_BYTES, type Frame, type FriendsErrorCode, type Header } from '../../protocol/friends-wire.ts'
import type { P2PHost } from './p2p.ts'

export const DEFAULT_REQUEST_TIMEOUT_MS = 120_000

/** The peer answered with `ok: false`. */
export class PeerRefusedError extends Error {
  override name = 'PeerRefusedError'
  constructor (readonly code: FriendsErrorCode, message: string) {
    super(message)
  }
}

/** The peer could not be reached, or did not answer in time, or answered nonsense. Try again later. */
export class PeerUnavailableError extends Error {
  override name = 'PeerUnavailableError'
}

/** Thrown by a handler to answer `ok: false` with this code and sentence. */
export class RefuseRequest extends Error {
  override name = 'RefuseRequest'
  constructor (readonly code: FriendsErrorCode, message: string) {
    super(message)
  }
}

export interface Answer {
  header?: Header
  body?: Uint8Array
}

export type RequestHandler = (request: Frame, remote: PeerId) => Promise<Answer>

/** Sends one request and returns the answer's frame (whose header has ok: true). */
export async function request (host: P2PHost, to: PeerId | Multiaddr, protocol: string, header: Header, body?: Uint8Array, options: { timeoutMs?: number } = {}): Promise<Frame> {
  const signal = AbortSignal.timeout(options.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS)
  let stream: Stream
  try {
    // The request goes out with the protocol proposal instead of after its acceptance: one
    // round trip less (a Tor round trip is hundreds of ms); a peer that does not speak the
    // protocol still refuses it, and the request fails.
    stream = await host.dialProtocol(to, protocol, { signal, negotiateFully: false })
  } catch (err) {
    throw new PeerUnavailableError(`could not reach ${describe(to)}: ${(err as Error).message}`, { cause: err })
  }
  let answer: Frame
  try {
    const lp = lpStream(stream, { maxDataLength: MAX_FRAME_BYTES, maxBufferSize: MAX_FRAME_BYTES + 16 })
    await lp.write(encodeFrame(header, body), { signal })
    const bytes = await lp.read({ signal })
    answer = decodeFrame(bytes.subarray())
    await stream.close({ signal }).catch(() => { stream.abort(new Error('closing')) })
  } catch (err) {
    stream.abort(err as Error)
    if (err instanceof FrameError) throw new PeerUnavailableError(`${describe(to)} answered with a malformed frame: ${err.message}`)
    throw new PeerUnavailableError(`${describe(to)} did not answer: ${(err as Error).message}`, { cause: err })
  }
  if (answer.header.ok === true) return answer
  const code = FRIENDS_ERROR_CODES.includes(answer.header.code as FriendsErrorCode) ? answer.header.code as FriendsErrorCode : 'internal'
  const message = typeof answer.header.message === 'string' ? answer.header.message.slice(0, 500) : 'refused without a reason'
  throw new PeerRefusedError(code, message)
}

/** Serves `protocol`: each stream carries one request frame and gets one answer frame. */
export async function serve (host: P2PHost, protocol: string, handler: RequestHandler, options: { timeoutMs?: number, onError?: (err: unknown) => void } = {}): Promise<void> {
  await host.handle(protocol, async (stream: Stream, connection: Connection) => {
    const signal = AbortSignal.timeout(options.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS)
    const lp = lpStream(stream, { maxDataLength: MAX_FRAME_BYTES, maxBufferSize: MAX_FRAME_BYTES + 16 })
    try {
      let answer: Buffer
      try {
        const frame = decodeFrame((await lp.read({ signal })).subarray())
        const { header, body } = await handler(frame, connection.remotePeer)
        answer = encodeFrame({ ...header, ok: true }, body)
      } catch (err) {
        if (err instanceof RefuseRequest) answer = encodeFrame({ ok: false, code: err.code, message: err.message })
        else if (err instanceof FrameError) answer = encodeFrame({ ok: false, code: 'bad-request', message: err.message })
        else {
          options.onError?.(err)
          answer = encodeFrame({ ok: false, code: 'internal', message: 'the request failed on this node' })
        }
      }
      await lp.write(answer, { signal })
      await stream.close({ signal })
    } catch (err) {
      stream.abort(err as Error)
    }
  }, { runOnLimitedConnection: false })
}

function describe (to: PeerId | Multiaddr): string {
  return to.toString()
}
