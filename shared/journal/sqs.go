package journal

import (
	"context"
	"log/slog"

	"github.com/aws/aws-lambda-go/events"

	"github.com/bucketvault/bucketvault/shared/event"
	"github.com/bucketvault/bucketvault/shared/obs"
)

// HandleSQS is the journal function's handler: a batch of SQS messages,
// each carrying S3 events (EventBridge, classic notifications, or SNS
// envelopes of them). It reports the messages that must be delivered again
// (ReportBatchItemFailures): a poison message fails only itself, and a
// message fails when any of its changes could not be journaled. After the
// queue's maxReceiveCount a failing message moves to the dead-letter queue.
func (j *Journal) HandleSQS(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	msgs := event.DecodeSQS(ev)
	var changes []event.Change
	var owner []int // message index of each change
	var resp events.SQSEventResponse
	failed := make([]bool, len(msgs))
	for i, m := range msgs {
		if m.Err != nil {
			j.log().ErrorContext(ctx, "poison message", "messageId", m.MessageID, "error", m.Err)
			failed[i] = true
			continue
		}
		for _, c := range m.Changes {
			changes = append(changes, c)
			owner = append(owner, i)
		}
	}
	results, st, err := j.Ingest(ctx, changes)
	if err != nil {
		return resp, err // the whole batch is retried
	}
	for i, r := range results {
		if r.Err != nil {
			failed[owner[i]] = true
		}
	}
	poison := 0
	for i, f := range failed {
		if f {
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: msgs[i].MessageID})
			if msgs[i].Err != nil {
				poison++
			}
		}
	}
	lag := 0.0
	for _, c := range changes {
		if d := ingestTime().Sub(c.Time).Seconds(); d > lag {
			lag = d
		}
	}
	obs.Metrics{}.Put(ctx, map[string]string{"Function": "journal"}, map[string]obs.Value{
		"Changes": {V: float64(st.Changes), Unit: obs.Count}, "Records": {V: float64(st.Records), Unit: obs.Count},
		"Skipped": {V: float64(st.Skipped), Unit: obs.Count}, "Failed": {V: float64(st.Failed), Unit: obs.Count},
		"Refused":        {V: float64(st.Refused), Unit: obs.Count},
		"PoisonMessages": {V: float64(poison), Unit: obs.Count}, "LagSeconds": {V: lag, Unit: obs.Seconds},
	})
	j.log().InfoContext(ctx, "batch journaled", slog.Int("messages", len(msgs)), slog.Int("changes", st.Changes),
		slog.Int("records", st.Records), slog.Int("skipped", st.Skipped), slog.Int("refused", st.Refused), slog.Int("failedMessages", len(resp.BatchItemFailures)))
	return resp, nil
}
