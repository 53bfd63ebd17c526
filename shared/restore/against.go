package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// SourceReport is what CompareSource found.
type SourceReport struct {
	Bucket string    `json:"bucket"`
	At     time.Time `json:"at"`
	Keys   int64     `json:"keys"` // keys compared (in the bucket, the journal or both)
	// Problems are the disagreements, the first maxSourceProblems; More
	// counts the rest.
	Problems []string `json:"problems,omitempty"`
	More     int      `json:"moreProblems,omitempty"`
	// Damage names damaged journal objects the read went around.
	Damage []vault.Damage `json:"damage,omitempty"`
}

const maxSourceProblems = 1000

func (r *SourceReport) problem(f string, a ...any) {
	if len(r.Problems) < maxSourceProblems {
		r.Problems = append(r.Problems, fmt.Sprintf(f, a...))
	} else {
		r.More++
	}
}

// CompareSource compares the journal's state of bucket as of at (now,
// normally) with the bucket's current versions, listed: the listing is the
// truth. It reports every key one has and the other lacks, and every key
// whose current version differs (version id, size, ETag). A change made
// while it runs, or whose event is still on its way, shows as a
// disagreement until it is journaled (a reconcile journals every one).
func CompareSource(ctx context.Context, v *vault.Vault, c s3x.Client, bucket string, at time.Time) (*SourceReport, error) {
	rep := &SourceReport{Bucket: bucket, At: at.UTC()}
	m, err := v.OpenJournal(ctx, bucket, nil)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	jk, jrecs, jerr := m.NextKey()
	nextJournal := func() error {
		jk, jrecs, jerr = m.NextKey()
		if jerr != nil && !errors.Is(jerr, io.EOF) {
			return jerr
		}
		return nil
	}
	if jerr != nil && !errors.Is(jerr, io.EOF) {
		return nil, jerr
	}
	// compare one key: cur is the bucket's current version (nil: absent).
	compare := func(key string, cur *s3x.Entry, recs []vault.Observed) {
		rep.Keys++
		obj, ok := vault.StateAt(recs, at)
		switch {
		case cur == nil && ok:
			rep.problem("s3://%s/%s: the journal has version %s, the bucket has no current version", bucket, key, obj.Version.VersionID)
		case cur != nil && !ok && recs == nil:
			rep.problem("s3://%s/%s: the bucket has version %s, the journal has never seen the key", bucket, key, cur.VersionID)
		case cur != nil && !ok:
			rep.problem("s3://%s/%s: the bucket has version %s, the journal says the key is absent", bucket, key, cur.VersionID)
		case cur != nil && ok && obj.Version.VersionID != cur.VersionID:
			rep.problem("s3://%s/%s: the bucket's current version is %s, the journal's %s", bucket, key, cur.VersionID, obj.Version.VersionID)
		case cur != nil && ok && (obj.Version.Size != cur.Size || obj.Version.ETag != cur.ETag):
			rep.problem("s3://%s/%s@%s: the bucket has %d bytes, ETag %s; the journal %d bytes, ETag %s", bucket, key, cur.VersionID, cur.Size, cur.ETag, obj.Version.Size, obj.Version.ETag)
		}
	}
	l := s3x.NewVersionLister(c, bucket, "", "", "", 1000)
	var key string
	var cur *s3x.Entry
	seen := false
	flush := func() error {
		if !seen {
			return nil
		}
		for jerr == nil && jk < key {
			compare(jk, nil, jrecs)
			if err := nextJournal(); err != nil {
				return err
			}
		}
		var recs []vault.Observed
		if jerr == nil && jk == key {
			recs = jrecs
			if err := nextJournal(); err != nil {
				return err
			}
		}
		compare(key, cur, recs)
		return nil
	}
	for l.HasMorePages() {
		page, err := l.Next(ctx)
		if err != nil {
			return nil, err
		}
		for _, e := range page {
			if e.Key != key || !seen {
				if err := flush(); err != nil {
					return nil, err
				}
				key, cur, seen = e.Key, nil, true
			}
			if e.IsLatest && !e.IsDeleteMarker {
				e := e
				cur = &e
			}
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	for jerr == nil {
		compare(jk, nil, jrecs)
		if err := nextJournal(); err != nil {
			return nil, err
		}
	}
	rep.Damage = m.Damage()
	return rep, nil
}
