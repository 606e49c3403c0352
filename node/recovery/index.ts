// Recovery shares: the vault's master key split t-of-n among trusted contacts, and rebuilt from
// any t of them (spec/recovery.md). This slice is the core: splitting, the share format
// (protocol/recovery-share.ts) and checked combining. Custodians' nodes, the transport over
// Tor and the approval by hand come later (spec/recovery.md, "Not in this version").
export { splitMasterKey, combineShares, RecoveryError, NotEnoughSharesError, InconsistentSharesError, ForgedShareError, MASTER_KEY_BYTES } from './shares.ts'
export type { SplitOptions, CombineResult } from './shares.ts'
export { formatShare, parseShare, encodeShare, decodeShare, checkValue, ShareFormatError, type RecoveryShare } from '../../protocol/recovery-share.ts'
