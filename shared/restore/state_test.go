package restore_test

import (
	"testing"
	"time"

	"github.com/bucketvault/bucketvault/shared/restore"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// TestStateAtTheListingIsTheTruth: the rules by which StateAt reads a
// journal that holds records a listing contradicts.
func TestStateAtTheListingIsTheTruth(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	sec := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }
	ver := func(id, etag string, at int) vault.Record {
		return vault.Record{Op: vault.OpVersion, Key: "k", VersionID: id, ETag: etag, Time: sec(at), Data: "d/" + id + etag}
	}
	rec := func(op vault.Op, id, etag string, at int) vault.Record {
		return vault.Record{Op: op, Key: "k", VersionID: id, ETag: etag, Time: sec(at)}
	}
	listed := func(id, etag string, created, at int) vault.Record {
		return vault.Record{Op: vault.OpListed, Key: "k", VersionID: id, ETag: etag, Created: sec(created), Time: sec(at)}
	}
	for _, c := range []struct {
		name string
		recs []vault.Record
		at   int
		want string // the current version's id+etag, "" for absent
	}{
		{"purged", []vault.Record{ver("v1", "e1", 1), rec(vault.OpPurge, "v1", "", 5)}, 9, ""},
		{"purged later", []vault.Record{ver("v1", "e1", 1), rec(vault.OpPurge, "v1", "", 5)}, 4, "v1e1"},
		{"purge voided by a later listing", []vault.Record{ver("v1", "e1", 1), rec(vault.OpPurge, "v1", "", 5), listed("v1", "e1", 1, 7)}, 9, "v1e1"},
		{"purge after the listing stands", []vault.Record{ver("v1", "e1", 1), listed("v1", "e1", 1, 3), rec(vault.OpPurge, "v1", "", 5)}, 9, ""},
		{"a marker record of a version's id", []vault.Record{rec(vault.OpDeleteMarker, "v1", "", 0), ver("v1", "e1", 1)}, 9, "v1e1"},
		{"a marker record after it", []vault.Record{ver("v1", "e1", 1), rec(vault.OpDeleteMarker, "v1", "", 2)}, 9, "v1e1"},
		{"a true marker", []vault.Record{ver("v1", "e1", 1), rec(vault.OpDeleteMarker, "m1", "", 2)}, 9, ""},
		{"null purged", []vault.Record{ver("null", "e1", 1), rec(vault.OpPurge, "null", "", 5)}, 9, ""},
		{"null purge voided", []vault.Record{ver("null", "e1", 1), rec(vault.OpPurge, "null", "", 5), listed("null", "e1", 1, 7)}, 9, "nulle1"},
		// The listing shows a later null version: the earlier one's purge
		// stands (it is not the version listed).
		{"listed null is a later one", []vault.Record{ver("null", "e1", 1), rec(vault.OpPurge, "null", "", 5), ver("null", "e2", 6), listed("null", "e2", 6, 7)}, 5, ""},
		{"null purge names another ETag", []vault.Record{ver("null", "e1", 1), rec(vault.OpPurge, "null", "e0", 5)}, 9, "nulle1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			obs := make([]vault.Observed, len(c.recs))
			for i, r := range c.recs {
				obs[i] = vault.Observed{Record: r, Segment: "s", Line: i}
			}
			obj, ok := restore.StateAt(obs, sec(c.at))
			got := ""
			if ok {
				got = obj.Version.VersionID + obj.Version.ETag
			}
			if got != c.want {
				t.Errorf("state at %d: %q, want %q", c.at, got, c.want)
			}
		})
	}
}
