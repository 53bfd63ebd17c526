package vault

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
)

// spillBuffer is the buffer of a spill file's writer and of each reader:
// a journal read holds up to MaxOpenSegments spill readers at once.
const spillBuffer = 32 << 10

// spillRun merges a group of segments into one sorted run in a temporary
// file (deleted when the returned source closes), so a journal of any
// number of segments is read with at most MaxOpenSegments open at once and
// memory bounded by one key's history. On Lambda the file lives in /tmp.
func (v *Vault) spillRun(ctx context.Context, bucket string, refs []SegmentRef, prefixes []string) (RecordSource, error) {
	sources, err := v.openSegments(ctx, bucket, refs, prefixes)
	if err != nil {
		return nil, err
	}
	return spillSources(sources)
}

// mergeSpilled merges spilled runs in groups of MaxOpenSegments, level by
// level, until at most MaxOpenSegments remain, so that the final merge
// holds no more than that open however many segments were spilled (a
// journal of n segments takes log_16(n) levels). It closes runs on error.
func mergeSpilled(runs []RecordSource) ([]RecordSource, error) {
	for len(runs) > MaxOpenSegments {
		var next []RecordSource
		for start := 0; start < len(runs); start += MaxOpenSegments {
			group := runs[start:min(start+MaxOpenSegments, len(runs))]
			if len(group) == 1 {
				next = append(next, group[0])
				continue
			}
			merged, err := spillSources(group)
			if err != nil {
				closeSources(next)
				closeSources(runs[start+len(group):])
				return nil, err
			}
			next = append(next, merged)
		}
		runs = next
	}
	return runs, nil
}

// spillSources merges sorted sources into one sorted run in a temporary
// file and closes them.
func spillSources(sources []RecordSource) (RecordSource, error) {
	m, err := NewMerger(sources)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	f, err := os.CreateTemp("", "bucketvault-run-*.jsonl")
	if err != nil {
		return nil, fmt.Errorf("spill journal run: %w", err)
	}
	fail := func(err error) (RecordSource, error) {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("spill journal run: %w", err)
	}
	w := bufio.NewWriterSize(f, spillBuffer)
	enc := json.NewEncoder(w)
	for {
		_, recs, err := m.NextKey()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fail(err)
		}
		for i := range recs {
			if err := enc.Encode(&recs[i]); err != nil {
				return fail(err)
			}
		}
	}
	if err := w.Flush(); err != nil {
		return fail(err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fail(err)
	}
	return &fileSource{f: f, damage: m.Damage()}, nil
}

func closeSources(sources []RecordSource) {
	for _, s := range sources {
		s.Close()
	}
}

type fileSource struct {
	f      *os.File
	r      *bufio.Reader
	damage []Damage // what the spilled sources found
}

func (s *fileSource) Damage() []Damage { return s.damage }

func (s *fileSource) Next() (Observed, error) {
	if s.r == nil { // allocated on first read: a run waiting its turn holds no buffer
		s.r = bufio.NewReaderSize(s.f, spillBuffer)
	}
	line, err := s.r.ReadBytes('\n')
	if err == io.EOF && len(line) == 0 {
		return Observed{}, io.EOF
	}
	if err != nil && err != io.EOF {
		return Observed{}, err
	}
	var o Observed
	if err := json.Unmarshal(line, &o); err != nil {
		return Observed{}, fmt.Errorf("read spilled run: %w", err)
	}
	return o, nil
}

func (s *fileSource) Close() error {
	err := s.f.Close()
	os.Remove(s.f.Name())
	return err
}
