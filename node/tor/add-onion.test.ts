// ADD_ONION formatting (control-spec 3.27) and the checks on an onion's ports: one command
// per onion, one Port= argument per virtual port, the main port first.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { addOnionCommand, checkOnionPorts, TorServiceError, type OnionServiceConfig } from './tor-service.ts'

const key = Buffer.alloc(64, 1)
const keyB64 = key.toString('base64')

describe('ADD_ONION command', () => {
  it('one port, as before extra ports existed', () => {
    assert.equal(addOnionCommand({ expandedSecretKey: key, virtualPort: 25, target: { host: '127.0.0.1', port: 2525 } }),
      `ADD_ONION ED25519-V3:${keyB64} Port=25,127.0.0.1:2525`)
  })

  it('several ports on the same onion: one Port= argument each', () => {
    const config: OnionServiceConfig = {
      expandedSecretKey: key,
      virtualPort: 25,
      target: { host: '127.0.0.1', port: 2525 },
      extraPorts: [{ virtualPort: 4001, target: { host: '127.0.0.1', port: 40001 } }, { virtualPort: 80, target: { host: '::1', port: 8080 } }],
    }
    assert.equal(addOnionCommand(config), `ADD_ONION ED25519-V3:${keyB64} Port=25,127.0.0.1:2525 Port=4001,127.0.0.1:40001 Port=80,::1:8080`)
  })

  it('an empty list of extra ports is the same as none', () => {
    assert.equal(addOnionCommand({ expandedSecretKey: key, virtualPort: 25, target: { host: '127.0.0.1', port: 2525 }, extraPorts: [] }),
      `ADD_ONION ED25519-V3:${keyB64} Port=25,127.0.0.1:2525`)
  })
})

describe('onion port checks', () => {
  const base = { expandedSecretKey: key, virtualPort: 25, target: { host: '127.0.0.1', port: 2525 } }
  const cases: Array<[string, OnionServiceConfig, RegExp | undefined]> = [
    ['main port only', base, undefined],
    ['a valid extra port', { ...base, extraPorts: [{ virtualPort: 4001, target: { host: '127.0.0.1', port: 1 } }] }, undefined],
    ['extra virtual port 0', { ...base, extraPorts: [{ virtualPort: 0, target: { host: '127.0.0.1', port: 1 } }] }, /virtual port out of range/],
    ['extra virtual port 65536', { ...base, extraPorts: [{ virtualPort: 65536, target: { host: '127.0.0.1', port: 1 } }] }, /virtual port out of range/],
    ['extra target port 0', { ...base, extraPorts: [{ virtualPort: 4001, target: { host: '127.0.0.1', port: 0 } }] }, /target port out of range/],
    ['extra target a host name', { ...base, extraPorts: [{ virtualPort: 4001, target: { host: 'localhost', port: 1 } }] }, /must be an IP address/],
    // A space or comma would smuggle another argument into ADD_ONION.
    ['extra target with a space', { ...base, extraPorts: [{ virtualPort: 4001, target: { host: '127.0.0.1 Flags=Detach', port: 1 } }] }, /must be an IP address/],
    ['the main virtual port again', { ...base, extraPorts: [{ virtualPort: 25, target: { host: '127.0.0.1', port: 1 } }] }, /virtual port 25 is given twice/],
  ]
  for (const [name, config, error] of cases) {
    it(name, () => {
      if (error === undefined) checkOnionPorts(config)
      else assert.throws(() => { checkOnionPorts(config) }, (err: Error) => err instanceof TorServiceError && error.test(err.message))
    })
  }
})
