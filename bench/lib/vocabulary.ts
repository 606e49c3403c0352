// A made-up vocabulary of 20,000 words and a Zipf (s = 1) picker over it, the same in every
// run for a given PRNG: the word mix of the benchmark mailboxes.

export interface Vocabulary {
  /** Words by rank, most common first. */
  words: string[]
  /** The word at the inverse CDF of u (0 ≤ u < 1). */
  pick: (u: number) => string
}

export function zipfVocabulary (random: () => number, size = 20_000): Vocabulary {
  const syllables = ['ka', 'lo', 'mi', 'ne', 'tu', 'ra', 'si', 'vo', 'pe', 'du', 'gi', 'ba', 'ze', 'fo', 'ly', 'qu']
  const words: string[] = []
  const seen = new Set<string>()
  while (words.length < size) {
    let w = ''
    for (let i = 0, n = 2 + Math.floor(random() * 3); i < n; i++) w += syllables[Math.floor(random() * syllables.length)]!
    if (!seen.has(w)) { seen.add(w); words.push(w) }
  }
  const cdf = new Float64Array(words.length)
  let sum = 0
  for (let r = 0; r < words.length; r++) { sum += 1 / (r + 1); cdf[r] = sum }
  const pick = (u: number): string => {
    let lo = 0
    let hi = words.length - 1
    const target = u * sum
    while (lo < hi) { const mid = (lo + hi) >>> 1; if (cdf[mid]! < target) lo = mid + 1; else hi = mid }
    return words[lo]!
  }
  return { words, pick }
}
