package vault

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/bucketvault/bucketvault/shared/s3x"
)

// RecoveryPoint follows AWS Backup's recovery point fields where they apply.
type RecoveryPoint struct {
	RecoveryPointID string    `json:"recoveryPointId"`
	ResourceName    string    `json:"resourceName"` // the protected bucket
	ResourceType    string    `json:"resourceType"` // "S3"
	BackupVaultName string    `json:"backupVaultName"`
	Type            string    `json:"type"`   // CONTINUOUS or SNAPSHOT
	Status          string    `json:"status"` // AVAILABLE, PARTIAL, ...
	StatusMessage   string    `json:"statusMessage,omitempty"`
	CreationDate    time.Time `json:"creationDate"`
	// EarliestRestorableTime and LatestRestorableTime bound the times a
	// continuous recovery point restores to.
	EarliestRestorableTime *time.Time `json:"earliestRestorableTime,omitempty"`
	LatestRestorableTime   *time.Time `json:"latestRestorableTime,omitempty"`
	// CompleteThrough is the journal's completeness watermark (see
	// Vault.CompleteThrough): LatestRestorableTime is no later, and
	// JournaledThrough, the newest second events were journaled for, may
	// be later; a restore as of a time after it is uncertain.
	CompleteThrough  *time.Time `json:"completeThrough,omitempty"`
	JournaledThrough *time.Time `json:"journaledThrough,omitempty"`
	Segments         int        `json:"segments,omitempty"`
	// IsEncrypted and EncryptionKeyArn: how what the point holds is
	// stored (a CONTINUOUS point: the vault's default encryption now; a
	// SNAPSHOT: as its seal found it).
	IsEncrypted      bool   `json:"isEncrypted"`
	EncryptionKeyArn string `json:"encryptionKeyArn,omitempty"`
	// Of a SNAPSHOT: when its scan ended (the state it holds), its size,
	// and its lifecycle.
	ScanCompletionDate  *time.Time           `json:"scanCompletionDate,omitempty"`
	BackupSizeInBytes   int64                `json:"backupSizeInBytes,omitempty"`
	ObjectCount         int64                `json:"objectCount,omitempty"`
	FailedObjects       int64                `json:"failedObjects,omitempty"`
	CalculatedLifecycle *CalculatedLifecycle `json:"calculatedLifecycle,omitempty"`
	CreatedBy           *CreatedBy           `json:"createdBy,omitempty"`
	// StorageClass is AWS Backup's: WARM, or COLD once a SNAPSHOT point
	// has moved to the cold tier (a CONTINUOUS point is always WARM).
	StorageClass string `json:"storageClass"`
}

// RecoveryPoints lists the vault's recovery points: one CONTINUOUS point
// per protected bucket, then every SNAPSHOT point, oldest first (bucket
// empty: of all buckets).
func (v *Vault) RecoveryPoints(ctx context.Context, bucket string, now time.Time) ([]RecoveryPoint, error) {
	out, err := v.continuousPoints(ctx, bucket, now)
	if err != nil {
		return nil, err
	}
	snapBuckets := []string{bucket}
	if bucket == "" {
		if snapBuckets, err = v.SnapshotBuckets(ctx); err != nil {
			return nil, err
		}
	}
	for _, b := range snapBuckets {
		points, err := v.Snapshots(ctx, b)
		if err != nil {
			return nil, err
		}
		for _, sp := range points {
			rp := RecoveryPoint{
				RecoveryPointID: sp.RecoveryPointID, ResourceName: sp.ResourceName, ResourceType: sp.ResourceType,
				BackupVaultName: sp.BackupVaultName, Type: "SNAPSHOT", Status: sp.Status, StatusMessage: sp.StatusMessage,
				CreationDate: sp.CreationDate, IsEncrypted: sp.IsEncrypted, EncryptionKeyArn: sp.EncryptionKeyArn, ScanCompletionDate: sp.ScanCompletionDate,
				BackupSizeInBytes: sp.BackupSizeInBytes, ObjectCount: sp.ObjectCount, FailedObjects: sp.FailedObjects,
				CalculatedLifecycle: sp.CalculatedLifecycle, CreatedBy: sp.CreatedBy, StorageClass: StorageWarm,
			}
			if sp.IsCold() {
				rp.StorageClass = StorageCold
			}
			out = append(out, rp)
		}
	}
	return out, nil
}

func (v *Vault) continuousPoints(ctx context.Context, bucket string, now time.Time) ([]RecoveryPoint, error) {
	buckets, err := v.Buckets(ctx)
	if err != nil {
		return nil, err
	}
	enc, err := v.Encryption(ctx)
	if err != nil {
		return nil, err
	}
	var out []RecoveryPoint
	for _, b := range buckets {
		if bucket != "" && b.Bucket != bucket {
			continue
		}
		js, err := v.Journal(ctx, b.Bucket)
		if err != nil {
			return nil, err
		}
		rp := RecoveryPoint{
			RecoveryPointID: "continuous:" + b.Bucket, ResourceName: b.Bucket, ResourceType: "S3",
			BackupVaultName: v.Bucket, Type: "CONTINUOUS", CreationDate: b.ProtectedAt, IsEncrypted: enc.Encrypted, EncryptionKeyArn: enc.KMSKeyARN, Segments: js.Compacted + js.Pending,
			StorageClass: StorageWarm,
		}
		wm, err := v.CompleteThrough(ctx, b.Bucket)
		if err != nil {
			return nil, err
		}
		rp.JournaledThrough = js.JournaledThrough()
		switch {
		case b.FirstFullBackupAt == nil:
			rp.Status, rp.StatusMessage = "CREATING", "the initial full backup has not finished"
		case wm == nil:
			rp.Status, rp.StatusMessage = "AVAILABLE", "no reconcile has finished since completeness was recorded: run `bucketvault reconcile` to vouch for a time"
		default:
			rp.Status = "AVAILABLE"
		}
		if b.FirstFullBackupAt != nil && wm != nil {
			earliest := *b.FirstFullBackupAt
			floor := now.UTC().AddDate(0, 0, -v.Window(b)).Truncate(time.Second)
			if js.Floor.After(floor) {
				floor = js.Floor
			}
			if earliest.Before(floor) {
				earliest = floor
			}
			latest := *wm
			if latest.Before(earliest) {
				earliest = latest
			}
			rp.EarliestRestorableTime, rp.LatestRestorableTime, rp.CompleteThrough = &earliest, &latest, &latest
			if rp.JournaledThrough != nil && rp.JournaledThrough.After(latest) {
				rp.StatusMessage = fmt.Sprintf("complete through %s (the last finished reconcile); events are journaled through %s, "+
					"which a restore can use with --allow-incomplete", latest.Format(time.RFC3339), rp.JournaledThrough.Format(time.RFC3339))
			}
		}
		out = append(out, rp)
	}
	return out, nil
}

func segmentTime(id string) (time.Time, bool) {
	ms, err := strconv.ParseInt(strings.SplitN(id, "-", 2)[0], 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.UnixMilli(ms).UTC().Truncate(time.Second), true
}

// CompleteThrough is the completeness watermark of bucket's journal: the
// last second before the last finished reconcile started listing it (the
// journal holds every version and delete marker the bucket held then); nil
// when no reconcile has finished. Events journal later changes, but S3
// does not guarantee their delivery, so only a listing vouches for a time.
func (v *Vault) CompleteThrough(ctx context.Context, bucket string) (*time.Time, error) {
	var p struct {
		CompleteThrough *time.Time `json:"completeThrough"`
	}
	if err := v.GetJSON(ctx, ReconcileKey(bucket), &p); err != nil {
		if s3x.IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	return p.CompleteThrough, nil
}
