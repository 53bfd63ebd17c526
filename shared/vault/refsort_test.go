package vault

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestRefSorterSpills: the reference sorter yields every reference once,
// in order, whether it fits one chunk or spills many to temporary files,
// and the files it holds stay within fanIn-1 a level however many chunks
// it spills.
func TestRefSorterSpills(t *testing.T) {
	for _, c := range []struct{ chunk, fanIn int }{{1 << 20, 64}, {1000, 64}, {7, 64}, {7, 3}, {5, 2}} {
		t.Run(fmt.Sprintf("chunk%d-fanin%d", c.chunk, c.fanIn), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(c.chunk)))
			s := &refSorter{chunk: c.chunk, fanIn: c.fanIn}
			defer s.Close()
			want := map[string]bool{}
			most := 0
			for range 5000 {
				r := fmt.Sprintf("data/%08x", rng.IntN(3000)) // duplicates across chunks
				want[r] = true
				if err := s.Add(r); err != nil {
					t.Fatal(err)
				}
				most = max(most, len(s.files))
			}
			// 5000/chunk spills: the counter has log_fanIn of them levels.
			levels := 1
			for n := 5000 / c.chunk; n >= c.fanIn; n /= c.fanIn {
				levels++
			}
			if bound := (c.fanIn - 1) * levels; most > bound {
				t.Fatalf("the sorter held %d files at once; a counter of %d levels holds at most %d", most, levels, bound)
			}
			it, err := s.Sorted()
			if err != nil {
				t.Fatal(err)
			}
			defer it.Close()
			var got []string
			for r, ok := it.Next(); ok; r, ok = it.Next() {
				got = append(got, r)
			}
			if err := it.Err(); err != nil {
				t.Fatal(err)
			}
			var sorted []string
			for r := range want {
				sorted = append(sorted, r)
			}
			slices.Sort(sorted)
			if !slices.Equal(got, sorted) {
				t.Fatalf("%d references out, want the %d distinct ones in order", len(got), len(sorted))
			}
		})
	}
}
