package vault

import (
	"crypto/sha256"
	"encoding/hex"
)

// Packs. A snapshot stores small versions in packs: one vault object
// holding the bytes of many versions end to end, each version's record
// naming the pack (Data), its offset and its size. Reading a small object
// costs S3 a fraction of what copying it does, and one PUT per pack
// replaces one copy per object, so a snapshot of small objects makes
// about one request per object instead of one copy per object (see
// docs/design.md, "Packs").
//
// Packs are immutable, live under data/ like every other data object, and
// are named by a hash of their members, so a copy step retried after a
// crash that packs the same versions writes the same key (and finds it
// there) instead of a second pack.

// PackKey is the vault key of a pack of a source bucket's versions:
// members lists each member's identity (its DataKey) in pack order.
func PackKey(bucket string, members []string) string {
	h := sha256.New()
	h.Write([]byte("pack\x00"))
	h.Write([]byte(bucket))
	for _, m := range members {
		h.Write([]byte{0})
		h.Write([]byte(m))
	}
	return dataPrefix + hex.EncodeToString(h.Sum(nil)) + packSuffix
}

const packSuffix = ".pack"
