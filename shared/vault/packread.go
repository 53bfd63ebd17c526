package vault

import (
	"bytes"
	"container/list"
	"context"
	"fmt"
	"io"
	"strconv"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// PackReader reads the members of packs a window at a time: a restore of
// many small objects a snapshot packed reads each window of a pack once
// (one ranged GET, conditional on the pack's recorded ETag) for every
// member in it, instead of one GET per member. Windows are aligned to
// PackWindow, shared by concurrent readers (a window being fetched is
// waited for, never fetched twice), and kept in a small LRU bounded in
// bytes. Every member is checked against its record (CheckData) before it
// is returned. A pack whose current version is not the recorded one (a
// pack overwritten, deleted, rebuilt by repair) is looked up once
// (FindData) and its windows are read from the version found, on that
// version's ETag; a member a repair record does not name, and any member
// a window cannot give (archived, damaged), is left to ReadData, which
// says why.
type PackReader struct {
	v      *Vault
	window int64
	max    int // windows held
	mu     sync.Mutex
	held   map[windowKey]*packWindow
	lru    *list.List // of windowKey, most recent first
	// finder holds the version FindData found of each pack whose current
	// version failed.
	finder packFinder
	// Fetches counts the windows fetched (tests, reports).
	fetches int64
}

// PackWindow is the size of the windows a PackReader reads, and
// PackReaderBytes what it holds at most.
var (
	PackWindow      int64 = 1 << 20
	PackReaderBytes int64 = 64 << 20
)

// maxFound bounds the packs a packFinder remembers the found versions of.
const maxFound = 4096

type windowKey struct {
	data, version, etag string
	n                   int64 // offset / window
}

type packWindow struct {
	ready chan struct{}
	body  []byte
	sse   string
	err   error
	elem  *list.Element
}

// packRef names a pack as its records do.
type packRef struct{ data, etag string }

// foundPack is what FindData found for a pack, once.
type foundPack struct {
	ready chan struct{}
	dv    DataVersion
	rr    *RepairRecord
	err   error
}

// NewPackReader returns a reader of pack members for one restore.
func (v *Vault) NewPackReader() *PackReader {
	return &PackReader{v: v, window: PackWindow, max: int(max(2, PackReaderBytes/PackWindow)), held: map[windowKey]*packWindow{}, lru: list.New(),
		finder: packFinder{v: v}}
}

// Fetches is how many windows the reader has fetched.
func (p *PackReader) Fetches() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fetches
}

// Read returns a version record's bytes, checked, as ReadData does: a
// packed member from its pack's windows, anything else (and any member a
// window cannot give) by ReadData.
func (p *PackReader) Read(ctx context.Context, rec Record) ([]byte, DataVersion, error) {
	if !rec.Packed || rec.Size == 0 || rec.DataETag == "" || rec.Size > p.window/2 {
		return p.v.ReadData(ctx, rec)
	}
	f := p.finder.known(ctx, rec)
	var dv DataVersion
	if f != nil {
		if f.err != nil || f.rr != nil && f.rr.vouches(rec) != "" {
			return p.v.ReadData(ctx, rec) // it says why
		}
		dv = f.dv
	}
	body, sse, err := p.read(ctx, rec, dv)
	if err != nil && f == nil && IsDataMismatch(err) {
		// The current version is not the recorded one: the version that
		// holds the pack, found once for all its members.
		if f = p.finder.find(ctx, rec); f.err != nil || f.rr != nil && f.rr.vouches(rec) != "" {
			return p.v.ReadData(ctx, rec)
		}
		dv = f.dv
		body, sse, err = p.read(ctx, rec, dv)
	}
	if err != nil {
		return p.v.ReadData(ctx, rec) // the pack ends before the member does, or a window failed: ReadData says why
	}
	if err := CheckData(rec, bytes.NewReader(body), sse); err != nil {
		return p.v.ReadData(ctx, rec)
	}
	return body, dv, nil
}

// read reads rec's bytes from the windows of version dv of its pack.
func (p *PackReader) read(ctx context.Context, rec Record, dv DataVersion) ([]byte, string, error) {
	etag := rec.DataETag
	if dv.ETag != "" {
		etag = dv.ETag
	}
	first, last := rec.DataOffset/p.window, (rec.DataOffset+rec.Size-1)/p.window
	var body []byte
	var sse string
	for n := first; n <= last; n++ {
		w := p.get(ctx, windowKey{rec.Data, dv.VersionID, etag, n})
		if w.err != nil {
			return nil, "", w.err
		}
		from, to := max(rec.DataOffset, n*p.window)-n*p.window, min(rec.DataOffset+rec.Size, (n+1)*p.window)-n*p.window
		if to > int64(len(w.body)) {
			return nil, "", fmt.Errorf("read %s: the pack ends at byte %d", dataRef(rec), n*p.window+int64(len(w.body)))
		}
		body = append(body, w.body[from:to]...)
		sse = w.sse
	}
	return body, sse, nil
}

// packFinder looks up, once per pack, the version of a pack that holds
// its members when its current version is not the recorded one
// (findData), for every reader of its members: a concurrent caller waits
// for the first. It remembers at most maxFound packs.
type packFinder struct {
	v     *Vault
	mu    sync.Mutex
	found map[packRef]*foundPack
}

// known is what was found for rec's pack, nil when it was never looked up.
func (pf *packFinder) known(ctx context.Context, rec Record) *foundPack {
	pf.mu.Lock()
	f := pf.found[packRef{rec.Data, rec.DataETag}]
	pf.mu.Unlock()
	if f == nil {
		return nil
	}
	return f.wait(ctx)
}

// find looks rec's pack up, or waits for the look-up under way.
func (pf *packFinder) find(ctx context.Context, rec Record) *foundPack {
	ref := packRef{rec.Data, rec.DataETag}
	pf.mu.Lock()
	if f, ok := pf.found[ref]; ok {
		pf.mu.Unlock()
		return f.wait(ctx)
	}
	if pf.found == nil || len(pf.found) >= maxFound {
		pf.found = map[packRef]*foundPack{}
	}
	f := &foundPack{ready: make(chan struct{})}
	pf.found[ref] = f
	pf.mu.Unlock()
	f.dv, f.rr, f.err = pf.v.findData(ctx, rec)
	close(f.ready)
	return f
}

// wait waits for f to be found.
func (f *foundPack) wait(ctx context.Context) *foundPack {
	select {
	case <-f.ready:
		return f
	case <-ctx.Done():
		return &foundPack{err: ctx.Err()}
	}
}

// get returns window k, fetched by this call or by another one.
func (p *PackReader) get(ctx context.Context, k windowKey) *packWindow {
	p.mu.Lock()
	if w, ok := p.held[k]; ok {
		p.lru.MoveToFront(w.elem)
		p.mu.Unlock()
		select {
		case <-w.ready:
			return w
		case <-ctx.Done():
			return &packWindow{err: ctx.Err()}
		}
	}
	w := &packWindow{ready: make(chan struct{})}
	w.elem = p.lru.PushFront(k)
	p.held[k] = w
	p.fetches++
	for p.lru.Len() > p.max {
		old := p.lru.Back()
		p.lru.Remove(old)
		delete(p.held, old.Value.(windowKey))
	}
	p.mu.Unlock()
	w.body, w.sse, w.err = p.fetch(ctx, k)
	close(w.ready)
	return w
}

// fetch reads window k of a version of a pack (k.version, "" the
// current one), conditional on its ETag.
func (p *PackReader) fetch(ctx context.Context, k windowKey) ([]byte, string, error) {
	start := k.n * p.window
	out, err := p.v.S3.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(p.v.Bucket), Key: aws.String(k.data), VersionId: nonEmpty(k.version), IfMatch: aws.String(`"` + k.etag + `"`),
		Range: aws.String("bytes=" + strconv.FormatInt(start, 10) + "-" + strconv.FormatInt(start+p.window-1, 10)),
	})
	if err != nil {
		return nil, "", fmt.Errorf("read %s[%d:+%d]: %w", k.data, start, p.window, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(io.LimitReader(out.Body, p.window+1))
	if err != nil {
		return nil, "", fmt.Errorf("read %s[%d:+%d]: %w", k.data, start, p.window, err)
	}
	if int64(len(b)) > p.window {
		return nil, "", fmt.Errorf("read %s[%d:+%d]: more bytes than asked for", k.data, start, p.window)
	}
	return b, string(out.ServerSideEncryption), nil
}
