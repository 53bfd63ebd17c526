package vault_test

import (
	"fmt"
	"testing"
	"time"

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
			obj, ok := vault.StateAt(obs, sec(c.at))
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

// TestUncertainAtNamesTheDeletionInterval: a purge a reconcile learnt
// (Since set) leaves the state between Since and its time uncertain, for
// the version (or marker) current then, and for no other time or entry.
func TestUncertainAtNamesTheDeletionInterval(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	sec := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }
	obs := func(recs ...vault.Record) []vault.Observed {
		out := make([]vault.Observed, len(recs))
		for i, r := range recs {
			out[i] = vault.Observed{Record: r, Segment: "s", Line: i}
		}
		return out
	}
	v1 := vault.Record{Op: vault.OpVersion, Key: "k", VersionID: "v1", ETag: "e1", Time: sec(1), Data: "d1"}
	v2 := vault.Record{Op: vault.OpVersion, Key: "k", VersionID: "v2", ETag: "e2", Time: sec(2), Data: "d2"}
	learnt := vault.Record{Op: vault.OpPurge, Key: "k", VersionID: "v2", Time: sec(10), Since: sec(5)}
	told := vault.Record{Op: vault.OpPurge, Key: "k", VersionID: "v2", Time: sec(10)}
	lateTags := func(r vault.Record, at int) vault.Record { r.TagsAt = sec(at); return r }
	changed := func(at, read int) vault.Record {
		return vault.Record{Op: vault.OpTags, Key: "k", VersionID: "v2", Time: sec(at), TagsAt: sec(read), Tags: map[string]string{"t": fmt.Sprint(at)}}
	}
	for _, c := range []struct {
		name string
		recs []vault.Observed
		at   int
		want bool
	}{
		{"before the interval", obs(v1, v2, learnt), 5, false},
		{"inside it", obs(v1, v2, learnt), 7, true},
		{"at the purge", obs(v1, v2, learnt), 10, false},
		{"after it", obs(v1, v2, learnt), 12, false},
		{"an event dated it", obs(v1, v2, told), 7, false},
		// The event's exact purge and a listing's later one of the same
		// version (a key resolved beside the deletion): the event says when.
		{"an event dated it before a listing learnt it", obs(v1, v2, vault.Record{Op: vault.OpPurge, Key: "k", VersionID: "v2", Time: sec(8)}, learnt), 7, false},
		{"a noncurrent version's purge", obs(v1, v2, vault.Record{Op: vault.OpPurge, Key: "k", VersionID: "v1", Time: sec(10), Since: sec(5)}), 7, false},
		{"voided by a listing", obs(v1, v2, learnt, vault.Record{Op: vault.OpListed, Key: "k", VersionID: "v2", Time: sec(11)}), 7, false},
		{"a delete marker's", obs(v1, vault.Record{Op: vault.OpDeleteMarker, Key: "k", VersionID: "m", Time: sec(2)},
			vault.Record{Op: vault.OpPurge, Key: "k", VersionID: "m", Time: sec(10), Since: sec(5)}), 7, true},
		{"tags a reconcile read", obs(v1, v2, vault.Record{Op: vault.OpTags, Key: "k", VersionID: "v2", Time: sec(10), Since: sec(5), Tags: map[string]string{"a": "1"}}), 7, true},
		{"tags an event told of", obs(v1, v2, vault.Record{Op: vault.OpTags, Key: "k", VersionID: "v2", Time: sec(6), Tags: map[string]string{"a": "1"}}), 7, false},
		{"tags read after the time", obs(v1, v2, vault.Record{Op: vault.OpTags, Key: "k", VersionID: "v2", Time: sec(10), Since: sec(5), Tags: map[string]string{"a": "1"}}), 4, false},
		// A version whose tags were read at 20, after a tag change at 12
		// the journal knows of (its event was late, or lost and a reconcile
		// found the version): the tags it had from 2 to 12 were never read.
		{"tags read after a known change", obs(v1, lateTags(v2, 20), changed(12, 13)), 7, true},
		{"at the change", obs(v1, lateTags(v2, 20), changed(12, 13)), 12, false},
		{"tags read before the change", obs(v1, lateTags(v2, 11), changed(12, 13)), 7, false},
		{"no change known", obs(v1, lateTags(v2, 20)), 7, false},
		{"a tags record read after the next change", obs(v1, lateTags(v2, 3), changed(5, 20), changed(12, 21)), 7, true},
		{"tags read when written (no TagsAt)", obs(v1, v2, changed(12, 13)), 7, false},
		{"a noncurrent version's tags", obs(lateTags(v1, 20), v2, vault.Record{Op: vault.OpTags, Key: "k", VersionID: "v1", Time: sec(12), TagsAt: sec(13)}), 7, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := vault.UncertainAt(c.recs, sec(c.at))
			if (got != "") != c.want {
				t.Errorf("UncertainAt(%d) = %q, want uncertain %v", c.at, got, c.want)
			}
		})
	}
}
