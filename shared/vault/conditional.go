package vault

import "context"

// Records that change state (a restore test run, the pointer to a
// request's latest restore job, a protected bucket's record) are read
// with their ETag and written back over that version only: GetJSONETag
// and PutJSONIf are the two halves, for records whose key a function of
// this package names (RestoreTestKey, ActiveJobKey, BucketKey...). A
// writer that lost a race gets a ConflictError and reads the record
// again; nothing it wrote went over what the other wrote.
//
// An ETag is the digest of what was written: a record written again with
// the very same bytes keeps its ETag, so a writer's change must change
// the record (a time, a status) to be told apart from no change at all.

// GetJSONETag reads the JSON record at key into dst and returns its ETag,
// for PutJSONIf. A record that is not there is an error s3x.IsNotFound
// says so of.
func (v *Vault) GetJSONETag(ctx context.Context, key string, dst any) (string, error) {
	return v.getJSONETag(ctx, key, dst)
}

// PutJSONIf writes src at key over the version whose ETag is etag
// (If-Match), or, with etag "", only where there is no record
// (If-None-Match: *). It returns the ETag of what it wrote. A record
// changed, created or deleted since (the condition failed) is a
// ConflictError, and nothing is written.
func (v *Vault) PutJSONIf(ctx context.Context, key string, src any, etag string) (string, error) {
	return v.putJSONIf(ctx, key, src, etag)
}
