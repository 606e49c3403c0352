// Recovery shares: the vault's master key split t-of-n among custodians (friends), rebuilt from
// any t of them (spec/recovery.md). shares.ts splits and combines with checks; custody.ts is the
// protocol on both sides (holding, checking, requests approved by hand); kit.ts is what a new
// machine needs besides the key; release.ts seals a share to the new machine; recover.ts is
// `smtorp recover`.
export { splitMasterKey, combineShares, RecoveryError, NotEnoughSharesError, InconsistentSharesError, ForgedShareError, MASTER_KEY_BYTES } from './shares.ts'
export type { SplitOptions, CombineResult } from './shares.ts'
export { formatShare, parseShare, encodeShare, decodeShare, checkValue, ShareFormatError, type RecoveryShare } from '../../protocol/recovery-share.ts'
export { Custody, CustodyError, RECOVERY_PROTOCOL, type CustodianState, type RecoveryRequest, type HeldShare } from './custody.ts'
export { recover, RecoveryFailedError, type RecoverInit, type RecoverReport, type RecoveryEvent } from './recover.ts'
