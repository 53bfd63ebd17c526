package event

import "testing"

func TestCompareSequencer(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"", "0", -1},
		{"0", "", 1},
		{"0055AED6DCD90281E5", "0055AED6DCD90281E5", 0},
		{"0055AED6DCD90281E5", "0055AED6DCD90281E6", -1},
		{"0055AED6DCD90281E6", "0055AED6DCD90281E5", 1},
		{"617f08299329d189", "617F08299329D189", 0},       // case does not matter
		{"617f08299329d189", "617f0837b476e463", -1},      // EventBridge docs: create, then delete
		{"0055AED6DCD90281E5", "0055AED6DCD90281E500", 0}, // shorter is padded on the right
		{"0055AED6DCD90281E5", "0055AED6DCD90281E501", -1},
		{"0055AED6DCD90281E6", "0055AED6DCD90281E5FF", 1},
		{"0066618A09642A1C5E", "0066618AD8D6B0A1F3", -1},
		{"A", "0A", 1}, // not numeric: 'A0' > '0A'
	}
	for _, tt := range tests {
		if got := CompareSequencer(tt.a, tt.b); got != tt.want {
			t.Errorf("CompareSequencer(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := CompareSequencer(tt.b, tt.a); got != -tt.want {
			t.Errorf("CompareSequencer(%q, %q) = %d, want %d", tt.b, tt.a, got, -tt.want)
		}
	}
}
