package locals3

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// EventRecord is the part of one S3 event notification record that
// bucketvault uses. Both servers send AWS's record layout.
type EventRecord struct {
	EventName string `json:"eventName"` // MinIO: "s3:ObjectCreated:Put"; AWS: "ObjectCreated:Put"
	EventTime string `json:"eventTime"` // RFC 3339 with milliseconds
	S3        struct {
		Bucket struct {
			Name string `json:"name"`
		} `json:"bucket"`
		Object struct {
			// Key is URL-encoded (query encoding: a space is "+").
			Key       string `json:"key"`
			Size      int64  `json:"size"`
			ETag      string `json:"eTag"`
			VersionID string `json:"versionId"`
			Sequencer string `json:"sequencer"`
		} `json:"object"`
	} `json:"s3"`
}

// ParseEvents decodes a webhook body, {"Records":[...]} (MinIO adds
// "EventName" and "Key" beside "Records"), into its records. A body that is
// valid JSON without records, such as a test message, yields none.
func ParseEvents(body []byte) ([]EventRecord, error) {
	var n struct {
		Records []EventRecord `json:"Records"`
	}
	if err := json.Unmarshal(body, &n); err != nil {
		return nil, fmt.Errorf("parse event notification: %w", err)
	}
	return n.Records, nil
}

// EventKey returns the object key of a record sent by this server. MinIO,
// like AWS, URL-encodes the key (query encoding: "/" is "%2F" and a space
// is "+"); versitygw sends the key as it is, so a "+" there is a plus.
func (s *Server) EventKey(r EventRecord) (string, error) {
	if s.Kind == KindVersityGW {
		return r.S3.Object.Key, nil
	}
	k, err := url.QueryUnescape(r.S3.Object.Key)
	if err != nil {
		return "", fmt.Errorf("event key %q: %w", r.S3.Object.Key, err)
	}
	return k, nil
}

// router hands webhook bodies to subscribers by bucket name.
type router struct {
	mu     sync.Mutex
	subs   map[string]map[*subscriber]struct{}
	closed bool
}

func newRouter() *router { return &router{subs: map[string]map[*subscriber]struct{}{}} }

// deliver is the Receiver's handler. It never blocks on a subscriber.
func (r *router) deliver(_ context.Context, body []byte) error {
	recs, err := ParseEvents(body)
	if err != nil {
		return nil // not an event: acknowledge and drop
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	sent := map[*subscriber]bool{}
	for _, rec := range recs {
		for sub := range r.subs[rec.S3.Bucket.Name] {
			if !sent[sub] {
				sent[sub] = true
				sub.push(body)
			}
		}
	}
	return nil
}

func (r *router) subscribe(bucket string) (<-chan []byte, func()) {
	sub := newSubscriber()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		sub.close()
		return sub.out, func() {}
	}
	if r.subs[bucket] == nil {
		r.subs[bucket] = map[*subscriber]struct{}{}
	}
	r.subs[bucket][sub] = struct{}{}
	var once sync.Once
	return sub.out, func() {
		once.Do(func() {
			r.mu.Lock()
			delete(r.subs[bucket], sub)
			if len(r.subs[bucket]) == 0 {
				delete(r.subs, bucket)
			}
			r.mu.Unlock()
			sub.close()
		})
	}
}

func (r *router) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	for _, subs := range r.subs {
		for sub := range subs {
			sub.close()
		}
	}
	r.subs = nil
}

// subscriber buffers without bound so that a slow reader never blocks the
// receiver (which would stall the server's event queue).
type subscriber struct {
	mu      sync.Mutex
	queue   [][]byte
	wake    chan struct{}
	done    chan struct{}
	out     chan []byte
	closing sync.Once
}

func newSubscriber() *subscriber {
	s := &subscriber{wake: make(chan struct{}, 1), done: make(chan struct{}), out: make(chan []byte)}
	go s.pump()
	return s
}

func (s *subscriber) push(b []byte) {
	s.mu.Lock()
	s.queue = append(s.queue, b)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *subscriber) pump() {
	defer close(s.out)
	for {
		s.mu.Lock()
		var next []byte
		if len(s.queue) > 0 {
			next = s.queue[0]
			s.queue = s.queue[1:]
		}
		s.mu.Unlock()
		if next == nil {
			select {
			case <-s.wake:
				continue
			case <-s.done:
				return
			}
		}
		select {
		case s.out <- next:
		case <-s.done:
			return
		}
	}
}

func (s *subscriber) close() { s.closing.Do(func() { close(s.done) }) }

// Subscribe returns the raw webhook bodies whose records name bucket, in
// arrival order, for a server started with Options.Events (as ForTest's
// is). Subscribe before causing the events. cancel unsubscribes and closes
// the channel; the channel is also closed by Stop. For a server without
// Options.Events the channel is closed at once.
func (s *Server) Subscribe(bucket string) (<-chan []byte, func()) {
	if s.router == nil {
		ch := make(chan []byte)
		close(ch)
		return ch, func() {}
	}
	return s.router.subscribe(bucket)
}

// EventTypes are the notification event types EnableEvents subscribes a
// MinIO bucket to. MinIO reports tagging changes as
// s3:ObjectCreated:PutTagging and s3:ObjectCreated:DeleteTagging, which
// s3:ObjectCreated:* covers; it rejects AWS's s3:ObjectTagging:* names.
var EventTypes = []types.Event{"s3:ObjectCreated:*", "s3:ObjectRemoved:*"}

// EnableEvents makes the server send bucket's object events to its webhook.
//
// MinIO: adds a QueueConfiguration for WebhookARN with EventTypes to the
// bucket's notification configuration, keeping the configurations already
// there; nothing changes if one for WebhookARN exists.
//
// versitygw: its webhook gets every bucket's events with no per-bucket
// configuration (and it does not implement PutBucketNotificationConfiguration),
// so EnableEvents only checks that the server has a webhook.
func (s *Server) EnableEvents(ctx context.Context, bucket string) error {
	if s.Kind == KindVersityGW {
		if !s.hasWebhook() {
			return fmt.Errorf("enable events on %s: the %s server was started without a webhook", bucket, s.Kind)
		}
		return nil
	}
	if s.WebhookARN == "" {
		return fmt.Errorf("enable events on %s: the %s server was started without a webhook", bucket, s.Kind)
	}
	c := s.Client(ctx)
	cur, err := c.GetBucketNotificationConfiguration(ctx, &s3.GetBucketNotificationConfigurationInput{Bucket: aws.String(bucket)})
	if err != nil {
		return fmt.Errorf("enable events on %s: %w", bucket, err)
	}
	for _, q := range cur.QueueConfigurations {
		if aws.ToString(q.QueueArn) == s.WebhookARN {
			return nil
		}
	}
	cfg := &types.NotificationConfiguration{
		EventBridgeConfiguration:     cur.EventBridgeConfiguration,
		LambdaFunctionConfigurations: cur.LambdaFunctionConfigurations,
		QueueConfigurations: append(cur.QueueConfigurations, types.QueueConfiguration{
			Id:       aws.String(WebhookID),
			QueueArn: aws.String(s.WebhookARN),
			Events:   EventTypes,
		}),
		TopicConfigurations: cur.TopicConfigurations,
	}
	_, err = c.PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{
		Bucket:                    aws.String(bucket),
		NotificationConfiguration: cfg,
	})
	if err != nil {
		return fmt.Errorf("enable events on %s: %w", bucket, err)
	}
	return nil
}

func (s *Server) hasWebhook() bool { return s.webhook != "" }
