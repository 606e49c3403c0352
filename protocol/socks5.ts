// SOCKS5 CONNECT by domain name (RFC 1928), as Tor's SocksPort speaks it, including Tor's
// extended error codes for onion services (tor's socks-extensions.txt, "ExtendedErrors").

export const SOCKS_VERSION = 5

/** Tor's and RFC 1928's reply codes, with whether trying again later can help. */
export const SOCKS_REPLIES: Record<number, { text: string, transient: boolean }> = {
  0x01: { text: 'general SOCKS server failure', transient: true },
  0x02: { text: 'connection not allowed by ruleset', transient: false },
  0x03: { text: 'network unreachable', transient: true },
  0x04: { text: 'host unreachable', transient: true },
  0x05: { text: 'connection refused', transient: true },
  0x06: { text: 'TTL expired (circuit timed out)', transient: true },
  0x07: { text: 'command not supported', transient: false },
  0x08: { text: 'address type not supported', transient: false },
  0xf0: { text: 'onion service descriptor not found (the node is offline or not yet published)', transient: true },
  0xf1: { text: 'onion service descriptor is invalid', transient: true },
  0xf2: { text: 'onion service introduction failed', transient: true },
  0xf3: { text: 'onion service rendezvous failed', transient: true },
  0xf4: { text: 'onion service needs client authorization', transient: false },
  0xf5: { text: 'onion service client authorization was refused', transient: false },
  0xf6: { text: 'onion address is invalid', transient: false },
  0xf7: { text: 'onion service introduction timed out', transient: true }
}

/** Client greeting: version 5, one method, "no authentication" or "username/password". */
export function socksGreeting (withAuth: boolean): Buffer {
  return Buffer.from([SOCKS_VERSION, 1, withAuth ? 0x02 : 0x00])
}

/** RFC 1929 username/password request; Tor uses it only for stream isolation. */
export function socksAuthRequest (username: string, password: string): Buffer {
  const user = Buffer.from(username, 'utf8')
  const pass = Buffer.from(password, 'utf8')
  if (user.length > 255 || pass.length > 255 || user.length === 0 || pass.length === 0) throw new Error('SOCKS credentials must be 1 to 255 bytes')
  return Buffer.concat([Buffer.from([1, user.length]), user, Buffer.from([pass.length]), pass])
}

export function socksConnectRequest (host: string, port: number): Buffer {
  const name = Buffer.from(host, 'ascii')
  if (name.length === 0 || name.length > 255) throw new Error('SOCKS host name must be 1 to 255 bytes')
  const request = Buffer.alloc(7 + name.length)
  request.set([SOCKS_VERSION, 0x01, 0x00, 0x03, name.length], 0)
  name.copy(request, 5)
  request.writeUInt16BE(port, 5 + name.length)
  return request
}

/**
 * Length of the CONNECT reply if `data` holds all of it, 0 if more bytes are needed.
 * Reply: VER REP RSV ATYP BND.ADDR BND.PORT.
 */
export function socksConnectReplyLength (data: Buffer): number {
  if (data.length < 5) return 0
  const atyp = data[3]
  const length = atyp === 0x01 ? 10 : atyp === 0x04 ? 22 : atyp === 0x03 ? 7 + data[4]! : -1
  if (length < 0) return 4 // malformed; the caller reads the code and fails
  return data.length >= length ? length : 0
}
