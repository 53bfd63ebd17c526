package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sns/types"
)

// SNSAPI is the SNS operation the publisher calls.
type SNSAPI interface {
	Publish(ctx context.Context, in *sns.PublishInput, optFns ...func(*sns.Options)) (*sns.PublishOutput, error)
}

var _ SNSAPI = (*sns.Client)(nil)

// Message attributes of an SNS job event, for subscription filter
// policies ({"EventType": ["RESTORE_JOB_FAILED"]}).
const (
	AttrEventType = "EventType"
	AttrJobType   = "JobType"
	AttrState     = "State"
	AttrVault     = "Vault"
	AttrBucket    = "Bucket"
)

// SNS publishes events to a topic: the message is the Event's JSON, the
// subject a one-line summary for e-mail subscriptions, and the message
// attributes carry the event type, job type, state, vault and bucket.
type SNS struct {
	Client   SNSAPI
	TopicARN string
	Now      func() time.Time
}

// Publish implements Publisher.
func (p *SNS) Publish(ctx context.Context, e Event) error {
	e, err := normalize(e, nowOr(p.Now))
	if err != nil {
		return err
	}
	msg, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode job event %s: %w", e.Type, err)
	}
	attrs := map[string]types.MessageAttributeValue{}
	for name, v := range map[string]string{
		AttrEventType: e.Type, AttrJobType: e.JobType, AttrState: e.State, AttrVault: e.Vault, AttrBucket: e.Bucket,
	} {
		if v != "" { // SNS refuses empty attribute values
			attrs[name] = types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
		}
	}
	if _, err := p.Client.Publish(ctx, &sns.PublishInput{
		TopicArn:          aws.String(p.TopicARN),
		Message:           aws.String(string(msg)),
		Subject:           aws.String(subject(e)),
		MessageAttributes: attrs,
	}); err != nil {
		return fmt.Errorf("publish job event %s to %s: %w", e.Type, p.TopicARN, err)
	}
	return nil
}

// subject is an SNS subject: printable ASCII, at most 100 characters.
func subject(e Event) string {
	s := "bucketvault " + e.Type
	if e.Bucket != "" {
		s += " s3://" + e.Bucket
	}
	if e.State != "" {
		s += " " + e.State
	}
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, s)
	if len(s) > 100 {
		s = s[:97] + "..."
	}
	return s
}
