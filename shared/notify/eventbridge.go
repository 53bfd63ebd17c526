package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
)

// EventBridgeAPI is the EventBridge operation the publisher calls.
type EventBridgeAPI interface {
	PutEvents(ctx context.Context, in *eventbridge.PutEventsInput, optFns ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error)
}

var _ EventBridgeAPI = (*eventbridge.Client)(nil)

// EventBridge puts events on a bus: source Source, detail-type
// DetailType(e.JobType), detail the Event's JSON.
type EventBridge struct {
	Client EventBridgeAPI
	// Bus is the event bus's name or ARN ("default" or its ARN: the
	// default bus).
	Bus string
	Now func() time.Time
}

// PutEventsError reports entries EventBridge did not accept: PutEvents
// answers 200 and says so per entry, with FailedEntryCount.
type PutEventsError struct {
	Bus         string
	FailedCount int
	// Code and Message are the first failed entry's.
	Code, Message string
}

func (e *PutEventsError) Error() string {
	return fmt.Sprintf("put job event on bus %s: %d entries failed: %s: %s", e.Bus, e.FailedCount, e.Code, e.Message)
}

// Publish implements Publisher.
func (p *EventBridge) Publish(ctx context.Context, e Event) error {
	e, err := normalize(e, nowOr(p.Now))
	if err != nil {
		return err
	}
	detail, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode job event %s: %w", e.Type, err)
	}
	out, err := p.Client.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []types.PutEventsRequestEntry{{
		EventBusName: aws.String(p.Bus),
		Source:       aws.String(Source),
		DetailType:   aws.String(DetailType(e.JobType)),
		Detail:       aws.String(string(detail)),
		Time:         aws.Time(e.Time),
		Resources:    resources(p.Bus, e),
	}}})
	if err != nil {
		return fmt.Errorf("put job event %s on bus %s: %w", e.Type, p.Bus, err)
	}
	if out.FailedEntryCount > 0 {
		pe := &PutEventsError{Bus: p.Bus, FailedCount: int(out.FailedEntryCount)}
		for _, en := range out.Entries {
			if en.ErrorCode != nil {
				pe.Code, pe.Message = aws.ToString(en.ErrorCode), aws.ToString(en.ErrorMessage)
				break
			}
		}
		return pe
	}
	return nil
}

// resources names the buckets an event is about as S3 ARNs, in the bus's
// partition (known only from a bus ARN: none for a bus name).
func resources(bus string, e Event) []string {
	parts := strings.SplitN(bus, ":", 3)
	if len(parts) < 3 || parts[0] != "arn" {
		return nil
	}
	var out []string
	for _, b := range []string{e.Bucket, e.Vault} {
		if b != "" {
			out = append(out, fmt.Sprintf("arn:%s:s3:::%s", parts[1], b))
		}
	}
	return out
}
