package event

import "github.com/aws/aws-lambda-go/events"

// Message is one SQS message decoded.
type Message struct {
	MessageID string
	Changes   []Change
	Err       error // non-nil: this message is poison; the rest of the batch is unaffected
}

// DecodeSQS decodes each record of a Lambda SQS event on its own, so one
// poison message fails only itself. Messages are returned in the order of
// ev.Records; an Err is always a *DecodeError whose Path is relative to the
// message body.
func DecodeSQS(ev events.SQSEvent) []Message {
	msgs := make([]Message, 0, len(ev.Records))
	for _, r := range ev.Records {
		changes, err := Decode([]byte(r.Body))
		msgs = append(msgs, Message{MessageID: r.MessageId, Changes: changes, Err: err})
	}
	return msgs
}
