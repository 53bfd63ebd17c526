package vault

import (
	"context"

	"github.com/bucketvault/bucketvault/shared/s3x"
)

// VaultLock is the vault's lock (AWS Backup's vault lock): every recovery
// point's retention lies between MinRetentionDays and MaxRetentionDays,
// the engine never deletes before it ends, and S3 Object Lock on the vault
// enforces it for everyone else.
type VaultLock struct {
	// Mode is GOVERNANCE or COMPLIANCE.
	Mode             string `json:"mode"`
	MinRetentionDays int    `json:"minRetentionDays"`
	MaxRetentionDays int    `json:"maxRetentionDays,omitempty"`
	// ChangeableForDays is the cool-off of a compliance lock: it can be
	// changed or removed until LockedAt + this many days, never after.
	ChangeableForDays int `json:"changeableForDays,omitempty"`
}

// LockKey is the vault key of the vault lock record.
const LockKey = "lock.json"

// loadLock reads the vault lock record, if there is one.
func (v *Vault) loadLock(ctx context.Context) error {
	var l VaultLock
	err := v.GetJSON(ctx, LockKey, &l)
	switch {
	case err == nil:
		v.Lock = &l
	case s3x.IsNotFound(err):
		v.Lock = nil
	default:
		return err
	}
	return nil
}
