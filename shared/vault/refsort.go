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
// records reference) with memory bounded by one chunk and a fixed number
// of read buffers: chunks are sorted, de-duplicated and spilled to
// temporary files, and the files merge like a counter's digits: fanIn
// files of one level merge into one file of the next (each reference is
// rewritten once a level: twice for 10⁹ references in chunks of 100,000),
// so the final merge reads at most fanIn-1 files a level, never one file
// per chunk.
type refSorter struct {
	chunk int
	fanIn int
	buf   []string
	files []spillFile // levels descending, as a counter's digits
	n     int64       // strings added
}

type spillFile struct {
	f     *os.File
	level int
}

// refChunk is how many references a sorter holds in memory: about 9 MiB
// of data keys. refFanIn is how many files one merge reads (32 KiB of
// buffer each).
var (
	refChunk = 100_000
	refFanIn = 64
)

func newRefSorter() *refSorter { return &refSorter{chunk: refChunk, fanIn: refFanIn} }

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
	mem := &refIter{mem: s.buf}
	f, err := writeRefs(mem)
	if err != nil {
		return err
	}
	s.files = append(s.files, spillFile{f, 0})
	s.buf = s.buf[:0]
	// Merge a level that is full into one file of the next.
	for fanIn := max(s.fanIn, 2); ; {
		n := len(s.files)
		if n < fanIn || s.files[n-fanIn].level != s.files[n-1].level {
			return nil
		}
		level := s.files[n-1].level
		in := make([]*os.File, fanIn)
		for i, sf := range s.files[n-fanIn:] {
			in[i] = sf.f
		}
		s.files = s.files[:n-fanIn]
		it, err := mergeRefs(in)
		if err != nil {
			return err
		}
		f, err := writeRefs(it)
		it.Close()
		if err != nil {
			return err
		}
		s.files = append(s.files, spillFile{f, level + 1})
	}
}

// writeRefs writes what it yields to a new temporary file, one reference
// a line.
func writeRefs(it *refIter) (*os.File, error) {
	f, err := os.CreateTemp("", "bucketvault-refs-*")
	if err != nil {
		return nil, fmt.Errorf("spill references: %w", err)
	}
	_ = os.Remove(f.Name()) // gone when closed
	w := bufio.NewWriterSize(f, 64<<10)
	for r, ok := it.Next(); ok; r, ok = it.Next() {
		if _, err := w.WriteString(r + "\n"); err != nil {
			f.Close()
			return nil, fmt.Errorf("spill references: %w", err)
		}
	}
	err = it.Err()
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("spill references: %w", err)
	}
	return f, nil
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
	files := make([]*os.File, len(s.files))
	for i, sf := range s.files {
		files[i] = sf.f
	}
	s.files = nil // the iterator's now
	return mergeRefs(files)
}

// mergeRefs merges sorted files of references; the iterator owns them
// (and closes them all, also on an error).
func mergeRefs(files []*os.File) (*refIter, error) {
	it := &refIter{files: files}
	for _, f := range it.files {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			it.Close()
			return nil, fmt.Errorf("merge references: %w", err)
		}
		r := bufio.NewReaderSize(f, 32<<10)
		line, err := r.ReadString('\n')
		switch {
		case err == nil:
			it.h = append(it.h, refHead{strings.TrimSuffix(line, "\n"), r})
		case err != io.EOF || line != "":
			it.Close()
			return nil, fmt.Errorf("merge references: %w", err)
		}
	}
	heap.Init(&it.h)
	return it, nil
}

// Close drops the sorter's files.
func (s *refSorter) Close() {
	for _, sf := range s.files {
		sf.f.Close()
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
		case err == io.EOF && line == "":
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
