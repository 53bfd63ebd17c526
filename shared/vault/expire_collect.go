package vault

import (
	"context"
	"time"
)

// collectionKey records when the last collection finished (ExpireOptions.
// CollectEvery). It is scratch: the lifecycle removes it a week after it
// was written, and a run that finds none collects.
func collectionKey() string { return scratchPrefix + "expire/collected.json" }

type collectionMark struct {
	FinishedAt time.Time `json:"finishedAt"`
}

// lastCollection is when the last collection finished, false when that
// is not known (never, or the mark is gone or unreadable: collect).
func (v *Vault) lastCollection(ctx context.Context) (time.Time, bool) {
	var m collectionMark
	if err := v.GetJSON(ctx, collectionKey(), &m); err != nil || m.FinishedAt.IsZero() {
		return time.Time{}, false
	}
	return m.FinishedAt, true
}

// noteCollection records that a collection finished now. A mark that
// cannot be written costs only an early collection next time.
func (v *Vault) noteCollection(ctx context.Context) {
	_ = v.PutJSON(ctx, collectionKey(), collectionMark{FinishedAt: time.Now().UTC()})
}
