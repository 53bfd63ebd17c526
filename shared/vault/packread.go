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
// is returned; a window that fails (a pack overwritten, deleted, archived,
// damaged) leaves its members to ReadData, which reads the good older
// version where there is one and says so.
type PackReader struct {
	v      *Vault
	window int64
	max    int // windows held
	mu     sync.Mutex
	held   map[windowKey]*packWindow
	lru    *list.List // of windowKey, most recent first
	// Fetches counts the windows fetched (tests, reports).
	fetches int64
}

// PackWindow is the size of the windows a PackReader reads, and
// PackReaderBytes what it holds at most.
var (
	PackWindow      int64 = 1 << 20
	PackReaderBytes int64 = 64 << 20
)

type windowKey struct {
	data, etag string
	n          int64 // offset / window
}

type packWindow struct {
	ready chan struct{}
	body  []byte
	sse   string
	err   error
	elem  *list.Element
}

// NewPackReader returns a reader of pack members for one restore.
func (v *Vault) NewPackReader() *PackReader {
	return &PackReader{v: v, window: PackWindow, max: int(max(2, PackReaderBytes/PackWindow)), held: map[windowKey]*packWindow{}, lru: list.New()}
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
	first, last := rec.DataOffset/p.window, (rec.DataOffset+rec.Size-1)/p.window
	var body []byte
	var sse string
	for n := first; n <= last; n++ {
		w := p.get(ctx, windowKey{rec.Data, rec.DataETag, n})
		if w.err != nil {
			return p.v.ReadData(ctx, rec)
		}
		from, to := max(rec.DataOffset, n*p.window)-n*p.window, min(rec.DataOffset+rec.Size, (n+1)*p.window)-n*p.window
		if to > int64(len(w.body)) {
			return p.v.ReadData(ctx, rec) // the pack ends before the member does: ReadData says why
		}
		body = append(body, w.body[from:to]...)
		sse = w.sse
	}
	if err := CheckData(rec, bytes.NewReader(body), sse); err != nil {
		return p.v.ReadData(ctx, rec)
	}
	return body, DataVersion{}, nil
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

// fetch reads window k of the current version of a pack, conditional on
// its recorded ETag.
func (p *PackReader) fetch(ctx context.Context, k windowKey) ([]byte, string, error) {
	start := k.n * p.window
	out, err := p.v.S3.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(p.v.Bucket), Key: aws.String(k.data), IfMatch: aws.String(`"` + k.etag + `"`),
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
