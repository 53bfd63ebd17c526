package vault

import (
	"bufio"
	"container/heap"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// refSorter sorts a stream of strings of any length (the data keys that
// records reference) with memory bounded by one chunk: chunks are sorted,
// de-duplicated and spilled to temporary files, then merged.
type refSorter struct {
	chunk int
	buf   []string
	files []*os.File
	n     int64 // strings added
}

// refChunk is how many references a sorter holds in memory: about 7 MiB
// of data keys.
var refChunk = 100_000

func newRefSorter() *refSorter { return &refSorter{chunk: refChunk} }

func (s *refSorter) Add(ref string) error {
	s.buf = append(s.buf, ref)
	s.n++
	if len(s.buf) >= s.chunk {
		return s.spill()
	}
	return nil
}

func (s *refSorter) spill() error {
	if len(s.buf) == 0 {
		return nil
	}
	slices.Sort(s.buf)
	s.buf = slices.Compact(s.buf)
	f, err := os.CreateTemp("", "bucketvault-refs-*")
	if err != nil {
		return fmt.Errorf("spill references: %w", err)
	}
	_ = os.Remove(f.Name()) // gone when closed
	w := bufio.NewWriterSize(f, 64<<10)
	for _, r := range s.buf {
		if _, err := w.WriteString(r + "\n"); err != nil {
			f.Close()
			return fmt.Errorf("spill references: %w", err)
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("spill references: %w", err)
	}
	s.files = append(s.files, f)
	s.buf = s.buf[:0]
	return nil
}

// Sorted returns the references in order, each once. The sorter is spent.
func (s *refSorter) Sorted() (*refIter, error) {
	if len(s.files) == 0 {
		slices.Sort(s.buf)
		return &refIter{mem: slices.Compact(s.buf)}, nil
	}
	if err := s.spill(); err != nil {
		return nil, err
	}
	it := &refIter{files: s.files}
	s.files = nil // the iterator's now
	for _, f := range it.files {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			it.Close()
			return nil, err
		}
		r := bufio.NewReaderSize(f, 32<<10)
		if line, err := r.ReadString('\n'); err == nil {
			it.h = append(it.h, refHead{strings.TrimSuffix(line, "\n"), r})
		}
	}
	heap.Init(&it.h)
	return it, nil
}

// Close drops the sorter's files.
func (s *refSorter) Close() {
	for _, f := range s.files {
		f.Close()
	}
	s.files = nil
}

type refHead struct {
	ref string
	r   *bufio.Reader
}

type refHeap []refHead

func (h refHeap) Len() int           { return len(h) }
func (h refHeap) Less(i, j int) bool { return h[i].ref < h[j].ref }
func (h refHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *refHeap) Push(x any)        { *h = append(*h, x.(refHead)) }
func (h *refHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// refIter yields sorted, distinct references.
type refIter struct {
	mem   []string
	files []*os.File
	h     refHeap
	last  string
	err   error
}

// Next returns the next reference, or false after the last.
func (it *refIter) Next() (string, bool) {
	if it.files == nil {
		if len(it.mem) == 0 {
			return "", false
		}
		r := it.mem[0]
		it.mem = it.mem[1:]
		return r, true
	}
	for len(it.h) > 0 {
		top := it.h[0].ref
		line, err := it.h[0].r.ReadString('\n')
		switch {
		case err == nil:
			it.h[0].ref = strings.TrimSuffix(line, "\n")
			heap.Fix(&it.h, 0)
		case err == io.EOF:
			heap.Pop(&it.h)
		default:
			it.err = err
			return "", false
		}
		if top != it.last {
			it.last = top
			return top, true
		}
	}
	return "", false
}

// Err is the read error that ended the iteration, if any.
func (it *refIter) Err() error { return it.err }

// Close drops the iterator's files.
func (it *refIter) Close() {
	for _, f := range it.files {
		f.Close()
	}
	it.files = nil
}
