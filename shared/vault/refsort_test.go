package vault

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestRefSorterSpills: the reference sorter yields every reference once,
// in order, whether it fits one chunk or spills many to temporary files.
func TestRefSorterSpills(t *testing.T) {
	for _, chunk := range []int{1 << 20, 1000, 7} {
		t.Run(fmt.Sprint(chunk), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(chunk)))
			s := &refSorter{chunk: chunk}
			defer s.Close()
			want := map[string]bool{}
			for range 5000 {
				r := fmt.Sprintf("data/%08x", rng.IntN(3000)) // duplicates across chunks
				want[r] = true
				if err := s.Add(r); err != nil {
					t.Fatal(err)
				}
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
				t.Fatalf("chunk %d: %d references out, want the %d distinct ones in order", chunk, len(got), len(sorted))
			}
		})
	}
}
