// Placeholder: the libp2p transport that dials /onion3 addresses through tor's SOCKS port.
import type { Transport } from '@libp2p/interface'
export function torTransport (_init: { socks: () => { host: string, port: number } | undefined }): any { return () => ({ [Symbol.toStringTag]: "tor", dialFilter: () => [], listenFilter: () => [], dial: async () => { throw new Error("x") }, createListener: () => { throw new Error("x") } }) }
