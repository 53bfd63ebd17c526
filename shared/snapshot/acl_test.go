package snapshot_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/bucketvault/bucketvault/shared/inspect"
	"github.com/bucketvault/bucketvault/shared/restore"
	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/snapshot"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// aclServer gives the real server the object ACLs it lacks (MinIO answers
// NotImplemented): the source bucket's Object Ownership, a canned ACL per
// source object (aclFor), a denied ACL read for one key, and a record of
// the ACLs a restore puts (which it reads back). Every other call goes to
// the server.
type aclServer struct {
	s3x.Client
	source    string
	ownership types.ObjectOwnership // "": no ownership controls (ACLs enabled)
	denied    string                // a key whose ACL read is denied
	refuse    bool                  // PutObjectAcl answers as a bucket with ACLs disabled

	mu    sync.Mutex
	reads int
	put   map[string]*types.AccessControlPolicy // restored key -> its ACL
}

// aclFor is the ACL of a source object: the owner's, with a public read
// grant on some keys and an auditor's READ_ACP on others.
func aclFor(key string) *types.AccessControlPolicy {
	owner := "0wner0000000000000000000000000000000000000000000000000000000000"
	p := &types.AccessControlPolicy{Owner: &types.Owner{ID: aws.String(owner)}, Grants: []types.Grant{
		{Grantee: &types.Grantee{Type: types.TypeCanonicalUser, ID: aws.String(owner)}, Permission: types.PermissionFullControl},
	}}
	switch {
	case strings.HasPrefix(key, "logs/2026/11/0"):
		p.Grants = append(p.Grants, types.Grant{Grantee: &types.Grantee{Type: types.TypeGroup, URI: aws.String("http://acs.amazonaws.com/groups/global/AllUsers")}, Permission: types.PermissionRead})
	case strings.HasPrefix(key, "reports/") || strings.HasPrefix(key, "big/"):
		p.Grants = append(p.Grants, types.Grant{Grantee: &types.Grantee{Type: types.TypeCanonicalUser, ID: aws.String("aud1t0r")}, Permission: types.PermissionReadAcp})
	}
	return p
}

func (a *aclServer) GetBucketOwnershipControls(ctx context.Context, in *s3.GetBucketOwnershipControlsInput, o ...func(*s3.Options)) (*s3.GetBucketOwnershipControlsOutput, error) {
	if aws.ToString(in.Bucket) != a.source {
		return a.Client.GetBucketOwnershipControls(ctx, in, o...)
	}
	if a.ownership == "" {
		return nil, &smithy.GenericAPIError{Code: "OwnershipControlsNotFoundError", Message: "The bucket ownership controls were not found"}
	}
	return &s3.GetBucketOwnershipControlsOutput{OwnershipControls: &types.OwnershipControls{Rules: []types.OwnershipControlsRule{{ObjectOwnership: a.ownership}}}}, nil
}

func (a *aclServer) GetObjectAcl(ctx context.Context, in *s3.GetObjectAclInput, o ...func(*s3.Options)) (*s3.GetObjectAclOutput, error) {
	key := aws.ToString(in.Key)
	if aws.ToString(in.Bucket) != a.source {
		// A restore reading back the ACL it put.
		a.mu.Lock()
		p, ok := a.put[key]
		a.mu.Unlock()
		if ok {
			return &s3.GetObjectAclOutput{Owner: p.Owner, Grants: p.Grants}, nil
		}
	}
	if aws.ToString(in.Bucket) != a.source || aws.ToString(in.VersionId) == "" {
		return nil, fmt.Errorf("GetObjectAcl of s3://%s/%s@%s: want a version of the source", aws.ToString(in.Bucket), key, aws.ToString(in.VersionId))
	}
	a.mu.Lock()
	a.reads++
	a.mu.Unlock()
	if key == a.denied {
		return nil, &smithy.GenericAPIError{Code: "AccessDenied", Message: "injected: access denied"}
	}
	p := aclFor(key)
	return &s3.GetObjectAclOutput{Owner: p.Owner, Grants: p.Grants}, nil
}

func (a *aclServer) PutObjectAcl(_ context.Context, in *s3.PutObjectAclInput, _ ...func(*s3.Options)) (*s3.PutObjectAclOutput, error) {
	if a.refuse {
		return nil, &smithy.GenericAPIError{Code: "AccessControlListNotSupported", Message: "The bucket does not allow ACLs"}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.put == nil {
		a.put = map[string]*types.AccessControlPolicy{}
	}
	a.put[aws.ToString(in.Key)] = in.AccessControlPolicy
	return &s3.PutObjectAclOutput{}, nil
}

// TestSnapshotCapturesACLs: where the bucket's ownership leaves ACLs
// enabled, the copy step reads each new version's ACL, on both of its
// paths (packed small objects and server-side copies, multipart
// included), a version whose ACL cannot be read is a failure of the
// snapshot (not an object restored without its access), and a restore
// puts every ACL back. Where ACLs are disabled (BucketOwnerEnforced, and
// on MinIO itself) no ACL is read.
func TestSnapshotCapturesACLs(t *testing.T) {
	e := setup(t)
	e.workload(t)
	want := e.capture(t)
	denied := "keys/with space+plus%percent/ünïcödé.txt"
	a := &aclServer{Client: e.c, source: e.bucket, denied: denied}
	j := e.run(t, e.engine(a), snapshot.Job{})
	n := int64(len(want))
	if j.ACLs == nil || !*j.ACLs {
		t.Fatalf("job ACLs %v: want on for a bucket without ownership controls", j.ACLs)
	}
	if j.State != snapshot.StatePartial || j.Totals.Objects != n-1 || j.Totals.Failed != 1 || a.reads != int(n) {
		t.Fatalf("snapshot: %s %+v, %d ACL reads; want PARTIAL, %d objects and 1 failed, each ACL read once", j.State, j.Totals, a.reads, n-1)
	}
	for _, r := range e.manifest(t, j.RecoveryPointID) {
		switch {
		case r.Key == denied:
			if r.Op != vault.OpSkip || r.Reason != vault.SkipAccessDenied {
				t.Errorf("%s: %+v; want an access-denied skip", r.Key, r)
			}
		case r.ACL == nil || len(r.ACL.Grants) != len(aclFor(r.Key).Grants):
			t.Errorf("%s (packed %v): ACL %+v; want %d grants", r.Key, r.Packed, r.ACL, len(aclFor(r.Key).Grants))
		}
	}

	target := e.srv.BucketName(t)
	res := &restore.Restorer{S3: a, Copy: s3x.CopyOptions{Threshold: 5 << 20}}
	rep, err := res.Run(e.ctx, restore.Request{Vault: e.v.Bucket, Bucket: e.bucket, RecoveryPointID: j.RecoveryPointID, TargetBucket: target, CreateBucket: true})
	if err != nil {
		t.Fatal(err)
	}
	got, err := inspect.Capture(e.ctx, e.c, target, "")
	if err != nil {
		t.Fatal(err)
	}
	delete(want, denied)
	if d := inspect.Diff(want, got); len(d) > 0 || rep.Restored != n-1 || rep.Failed != 0 {
		t.Errorf("restore: %d restored, %d failed; differs:\n%s", rep.Restored, rep.Failed, strings.Join(d, "\n"))
	}
	if len(a.put) != len(want) {
		t.Errorf("restore put %d ACLs; want %d", len(a.put), len(want))
	}
	for k := range want {
		if p := a.put[k]; p == nil || !reflect.DeepEqual(p.Grants, aclFor(k).Grants) || aws.ToString(p.Owner.ID) != aws.ToString(aclFor(k).Owner.ID) {
			t.Errorf("%s: restored ACL %+v; want %+v", k, p, aclFor(k))
		}
	}

	// A target with ACLs disabled: every object is restored, and the
	// report says which lack their ACL and why.
	a.refuse = true
	target = e.srv.BucketName(t)
	rep, err = res.Run(e.ctx, restore.Request{Vault: e.v.Bucket, Bucket: e.bucket, RecoveryPointID: j.RecoveryPointID, TargetBucket: target, CreateBucket: true})
	if err != nil {
		t.Fatal(err)
	}
	if got, err = inspect.Capture(e.ctx, e.c, target, ""); err != nil {
		t.Fatal(err)
	}
	if d := inspect.Diff(want, got); len(d) > 0 || rep.State != restore.StateCompleted || rep.Restored != n-1 || rep.ACLsNotRestored != n-1 ||
		len(rep.Warnings) == 0 || !strings.Contains(strings.Join(rep.Warnings, " "), "ACLs disabled") {
		t.Errorf("restore into a bucket without ACLs: %s, %d restored, %d without ACLs, warnings %q; differs:\n%s",
			rep.State, rep.Restored, rep.ACLsNotRestored, rep.Warnings, strings.Join(d, "\n"))
	}
	for _, m := range rep.Mapping {
		if m.Action == restore.ActionRestored && m.ACL != restore.ACLNotRestored {
			t.Errorf("%s: mapping %+v; want its ACL marked not restored", m.Key, m)
		}
	}

	// ACLs disabled: nothing read, nothing put back.
	e.bucket = e.srv.NewBucket(t, true)
	e.put(t, "a.txt", "a")
	e.put(t, "b.txt", "b")
	off := &aclServer{Client: e.c, source: e.bucket, ownership: types.ObjectOwnershipBucketOwnerEnforced}
	j = e.run(t, e.engine(off), snapshot.Job{})
	if j.State != snapshot.StateCompleted || j.ACLs == nil || *j.ACLs || off.reads != 0 {
		t.Fatalf("enforced ownership: %s, ACLs %v, %d ACL reads; want COMPLETED without ACLs", j.State, j.ACLs, off.reads)
	}
	// MinIO has no object ACLs: start decides none.
	j = e.run(t, e.engine(e.c), snapshot.Job{})
	if j.State != snapshot.StateCompleted || j.ACLs == nil || *j.ACLs {
		t.Fatalf("on the local server: %s, ACLs %v; want COMPLETED without ACLs", j.State, j.ACLs)
	}
	// A job that asks for ACLs reads them whatever the ownership says.
	on := true
	off.reads = 0
	j = e.run(t, e.engine(off), snapshot.Job{ACLs: &on})
	if j.State != snapshot.StateCompleted || off.reads != 0 {
		// Both versions are in the vault already: a carried version is
		// not read again (its record keeps the ACL it was backed up with).
		t.Fatalf("asked for ACLs: %s, %d ACL reads; want COMPLETED, nothing new to read", j.State, off.reads)
	}
	e.put(t, "c.txt", "c")
	j = e.run(t, e.engine(off), snapshot.Job{ACLs: &on})
	if j.State != snapshot.StateCompleted || off.reads != 1 {
		t.Fatalf("asked for ACLs: %s, %d ACL reads; want the new version's ACL read", j.State, off.reads)
	}
}
