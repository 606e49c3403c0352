// A reference for the vault's erasure code, written from Backblaze's description and kept
// out of the code under test: the erasure tests and scripts/storage-vectors.ts compare the
// WebAssembly codec's parity with it.
// Backblaze's construction, written from its description (JavaReedSolomon ReedSolomon.java
// buildMatrix, Galois.java): GF(2^8) with the polynomial 0x11D and generator 2; the Vandermonde
// matrix V[r][c] = r^c (0^0 = 1) for r < k + m, c < k; the code is V times the inverse of V's
// top k x k square, so the top is the identity and the bottom m rows make the parity.
export function backblazeParityRows (k: number, m: number): number[][] {
  const exp: number[] = []
  const log: number[] = new Array(256).fill(0)
  for (let i = 0, x = 1; i < 255; i++) {
    exp[i] = x
    log[x] = i
    x <<= 1
    if (x & 0x100) x ^= 0x11d
  }
  const mul = (a: number, b: number): number => a === 0 || b === 0 ? 0 : exp[(log[a]! + log[b]!) % 255]!
  const inv = (a: number): number => exp[(255 - log[a]!) % 255]!
  const pow = (a: number, n: number): number => n === 0 ? 1 : a === 0 ? 0 : exp[(log[a]! * n) % 255]!
  const vandermonde = Array.from({ length: k + m }, (_, r) => Array.from({ length: k }, (_, c) => pow(r, c)))
  // Gauss-Jordan on [top | I] gives the inverse of the top square.
  const work = vandermonde.slice(0, k).map((row, r) => [...row, ...Array.from({ length: k }, (_, c) => r === c ? 1 : 0)])
  for (let c = 0; c < k; c++) {
    const pivot = work.findIndex((row, r) => r >= c && row[c] !== 0)
    ;[work[c], work[pivot]] = [work[pivot]!, work[c]!]
    const scale = inv(work[c]![c]!)
    work[c] = work[c]!.map((v) => mul(v, scale))
    for (let r = 0; r < k; r++) {
      const factor = work[r]![c]!
      if (r !== c && factor !== 0) work[r] = work[r]!.map((v, j) => v ^ mul(factor, work[c]![j]!))
    }
  }
  const topInverse = work.map((row) => row.slice(k))
  return vandermonde.slice(k).map((row) =>
    Array.from({ length: k }, (_, c) => row.reduce((sum, v, j) => sum ^ mul(v, topInverse[j]![c]!), 0)))
}
