// Package vaultfixture loads the recorded format-1 vault of
// testdata/vault-v1 into an S3 server, for tests of what the current code
// does with a vault an older bucketvault wrote: open it, upgrade it,
// restore from it exactly.
//
// The fixture was built by the format-1 engine itself (testdata/vault-v1/
// README.md says how, from which commit, with which program) and holds two
// buckets, each as every object version and delete marker, oldest first:
//
//   - the vault: its objects are the format, so Load recreates them byte for
//     byte, with the content type, user metadata and tags they had. Their
//     version ids and LastModified times are new: S3 assigns them.
//   - the source, the bucket the vault protects: Load recreates its
//     versions in order, so its current objects and delete markers are
//     what they were, but every version gets a new id. The vault's records
//     name the original ids (Version.VersionID, Object.VersionID);
//     Fixture.Source maps each to the reloaded one (LoadedVersionID).
//
// What a restore as of a recorded time T must yield is in State(T), worked
// out by the generator from the source bucket's own listing and its record
// of what it wrote, never from the engine: for every key the source ever
// held, the object current at T (bytes, ETag, size, type, user metadata,
// tags, and the original version id) or its absence. Diff compares a
// bucket's current objects with it. Because the reloaded source has other
// version ids, a check against the source's version ids is out of reach;
// compare with State(T) instead.
//
// Names: the vault's keys, its segment headers and its data keys' hashes
// name the source bucket as the generator called it (SourceName), so a
// restore request's Bucket is Fixture.SourceName and the source, when
// loaded, must have that name: one load of the source per server. The
// vault bucket may have any name (a vault copied to another bucket is a
// complete vault); its descriptor and its journal's probe object still
// name VaultName. A test that loads the vault only (sourceBucket "") can
// load it as often as it likes on one server.
//
// This package imports only shared/s3x, shared/locals3 and the AWS SDK,
// never shared/vault: it knows the fixture's files, not the format.
package vaultfixture

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// DirName is the fixture's directory, relative to the module's root.
const DirName = "testdata/vault-v1"

// manifestName is the fixture's index in DirName.
const manifestName = "manifest.json"

// Fixture is the recorded vault and its source, and where Load put them.
type Fixture struct {
	// Commit is the commit whose code wrote the vault.
	Commit string
	// VaultFormatVersion is the formatVersion of the vault's descriptor: 1.
	VaultFormatVersion int
	// Server is the S3 server the generator ran on (minio).
	Server string
	// VaultName and SourceName are the buckets as the generator named
	// them. The vault's records name SourceName.
	VaultName, SourceName string
	// VaultBucket and SourceBucket are where Load put them; SourceBucket
	// is "" when it did not load the source.
	VaultBucket, SourceBucket string
	// Vault and Source are every key's versions and delete markers,
	// oldest first. Load sets their LoadedVersionID.
	Vault, Source Bucket
	// Journal says what the vault's journal holds, from its keys.
	Journal Journal
	// Snapshots are the vault's SNAPSHOT recovery points.
	Snapshots []Snapshot
	// Times are the recorded times T, ascending, in UTC.
	Times []time.Time

	dir    string
	states []State
}

// Bucket is one bucket's recorded contents.
type Bucket struct {
	Name string `json:"name"`
	Keys []Key  `json:"keys"`
}

// Key is one key's versions and delete markers, oldest first (the last
// is current).
type Key struct {
	Key      string    `json:"key"`
	Versions []Version `json:"versions"`
}

// Version is one recorded object version or delete marker.
type Version struct {
	// N is its place among the key's versions, 1 for the oldest.
	N int `json:"n"`
	// VersionID and LastModified are the original's.
	VersionID    string    `json:"versionId"`
	LastModified time.Time `json:"lastModified"`
	DeleteMarker bool      `json:"deleteMarker,omitempty"`
	Size         int64     `json:"size"`
	// ETag is the MD5 of the bytes (every recorded version is single-part
	// and unencrypted, so a reload reproduces it).
	ETag               string            `json:"etag,omitempty"`
	ContentType        string            `json:"contentType,omitempty"`
	CacheControl       string            `json:"cacheControl,omitempty"`
	ContentDisposition string            `json:"contentDisposition,omitempty"`
	ContentEncoding    string            `json:"contentEncoding,omitempty"`
	ContentLanguage    string            `json:"contentLanguage,omitempty"`
	Metadata           map[string]string `json:"metadata,omitempty"`
	Tags               map[string]string `json:"tags,omitempty"`
	// ChecksumAlgorithm and Checksum are the full-object checksum the
	// server reported (base64), if any.
	ChecksumAlgorithm string `json:"checksumAlgorithm,omitempty"`
	Checksum          string `json:"checksum,omitempty"`
	// File holds the bytes: blobs/<hex SHA-256 of them>, relative to the
	// fixture's directory. Empty for a delete marker.
	File string `json:"file,omitempty"`
	// LoadedVersionID is the version id Load's upload got.
	LoadedVersionID string `json:"-"`
}

// Journal says what the vault's journal of SourceName holds: its segment
// ids, the cut of its one run (a compaction of the segments up to it) and
// how many segments came after the cut.
type Journal struct {
	SourceBucket     string   `json:"sourceBucket"`
	Segments         []string `json:"segments"`
	RunCut           string   `json:"runCut"`
	SegmentsAfterCut int      `json:"segmentsAfterCut"`
}

// Snapshot is a SNAPSHOT recovery point of the vault. At is one of Times:
// the snapshot holds State(At).
type Snapshot struct {
	RecoveryPointID string    `json:"recoveryPointId"`
	JobID           string    `json:"jobId"`
	State           string    `json:"state"`
	At              time.Time `json:"at"`
	Objects         int64     `json:"objects"`
}

// State is the source bucket's state at a recorded time: every object
// current at At, and every other key it ever held (absent at At). Keys
// are in ascending order.
type State struct {
	At      time.Time `json:"at"`
	Note    string    `json:"note"`
	Objects []Object  `json:"objects"`
	Absent  []string  `json:"absent"`
}

// Object is a key's object at a time: what a restore must write.
type Object struct {
	Key string `json:"key"`
	// VersionID is the source version's original id, the one the
	// vault's records name.
	VersionID          string            `json:"versionId"`
	LastModified       time.Time         `json:"lastModified"`
	ETag               string            `json:"etag"`
	MD5                string            `json:"md5"`
	Size               int64             `json:"size"`
	ContentType        string            `json:"contentType,omitempty"`
	CacheControl       string            `json:"cacheControl,omitempty"`
	ContentDisposition string            `json:"contentDisposition,omitempty"`
	ContentLanguage    string            `json:"contentLanguage,omitempty"`
	Metadata           map[string]string `json:"metadata"`
	Tags               map[string]string `json:"tags"`
	File               string            `json:"file"`
}

// manifest is manifest.json.
type manifest struct {
	Format             string            `json:"format"`
	Version            int               `json:"version"`
	VaultFormatVersion int               `json:"vaultFormatVersion"`
	Commit             string            `json:"commit"`
	Server             string            `json:"server"`
	Buckets            map[string]Bucket `json:"buckets"`
	Journal            Journal           `json:"journal"`
	Snapshots          []Snapshot        `json:"snapshots"`
	Times              []State           `json:"times"`
}

const (
	manifestFormat  = "bucketvault-fixture"
	manifestVersion = 1
)

// Dir returns the fixture's directory: DirName under the module's root,
// the first directory holding a go.mod at or above the working directory
// (a package's directory under go test).
func Dir() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("vault fixture: %w", err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(d, filepath.FromSlash(DirName)), nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("vault fixture: no go.mod at or above %s", wd)
		}
	}
}

// Read reads the fixture in dir without loading it anywhere.
func Read(dir string) (*Fixture, error) {
	body, err := os.ReadFile(filepath.Join(dir, manifestName))
	if err != nil {
		return nil, fmt.Errorf("vault fixture: %w", err)
	}
	var m manifest
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("vault fixture %s: %w", filepath.Join(dir, manifestName), err)
	}
	if m.Format != manifestFormat || m.Version != manifestVersion {
		return nil, fmt.Errorf("vault fixture %s: format %q version %d, want %q version %d",
			filepath.Join(dir, manifestName), m.Format, m.Version, manifestFormat, manifestVersion)
	}
	vb, ok := m.Buckets["vault"]
	if !ok {
		return nil, errors.New("vault fixture: the manifest has no vault bucket")
	}
	sb, ok := m.Buckets["source"]
	if !ok {
		return nil, errors.New("vault fixture: the manifest has no source bucket")
	}
	f := &Fixture{
		Commit: m.Commit, VaultFormatVersion: m.VaultFormatVersion, Server: m.Server,
		VaultName: vb.Name, SourceName: sb.Name, Vault: vb, Source: sb,
		Journal: m.Journal, Snapshots: m.Snapshots, dir: dir, states: m.Times,
	}
	slices.SortFunc(f.states, func(a, b State) int { return a.At.Compare(b.At) })
	for i := range f.states {
		f.states[i].At = f.states[i].At.UTC()
		f.Times = append(f.Times, f.states[i].At)
	}
	return f, nil
}

// State returns the recorded state at t, one of Times (compared to the
// second); false if t is not one of them.
func (f *Fixture) State(t time.Time) (State, bool) {
	t = t.UTC().Truncate(time.Second)
	for _, s := range f.states {
		if s.At.Equal(t) {
			return s, true
		}
	}
	return State{}, false
}

// States returns every recorded state, by time.
func (f *Fixture) States() []State { return slices.Clone(f.states) }

// Body returns the bytes of a recorded file (Version.File, Object.File).
func (f *Fixture) Body(file string) ([]byte, error) {
	if file == "" || !filepath.IsLocal(filepath.FromSlash(file)) {
		return nil, fmt.Errorf("vault fixture: bad file name %q", file)
	}
	body, err := os.ReadFile(filepath.Join(f.dir, filepath.FromSlash(file)))
	if err != nil {
		return nil, fmt.Errorf("vault fixture: %w", err)
	}
	return body, nil
}

// Dir is the directory the fixture was read from.
func (f *Fixture) Dir() string { return f.dir }
