// The node's Tor integration: runs (or attaches to) a tor, publishes the node's onion
// services over the ControlPort and reports bootstrap and descriptor-upload status.
//
//   const tor = torService({ mode: 'own', dataDir }, { logger })
//   await tor.start()
//   await tor.waitForBootstrap(60_000)
//   const address = await tor.publishOnion({ expandedSecretKey: expandedSecretKey(seed), virtualPort: 25, target: { host: '127.0.0.1', port: 2525 } })
//   await tor.waitForDescriptorUpload(address, 30_000)
//   const { host, port } = tor.socksEndpoint() // SOCKS5 for outgoing connections to onions
//
// Modes:
// - 'own' (default for a node): a tor child with a generated torrc in <dataDir>/tor/torrc,
//   supervised: restarted with backoff if it dies (at most `maxRestarts` failures in a
//   row), onions republished. tor exits with the node (TAKEOWNERSHIP).
// - 'attach': an existing tor's ControlPort (cookie or password) and SocksPort; the
//   control connection is re-opened and onions republished whenever it drops.
//
// Onions live as long as our control connection (no Flags=Detach), so nothing is left
// published in a shared tor after the node is gone. Keys are never logged.
import { TorServiceImpl, type TorInit, type TorComponents, type TorService } from './tor-service.ts'

export type { TorInit, TorComponents, TorService, TorStatus, OnionServiceConfig } from './tor-service.ts'
export { TorServiceError, TorTimeoutError } from './tor-service.ts'
export { TorControlError, TorControlClosedError } from './control.ts'

/** Factory, as the node's other services: options in `init`, dependencies in `components`. */
export function torService (init: TorInit, components: TorComponents): TorService {
  return new TorServiceImpl(init, components)
}
