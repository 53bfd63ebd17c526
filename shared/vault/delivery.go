package vault

import "strings"

// How a protected bucket's change events reach the journal: the values
// of ProtectedBucket.Events.
const (
	// EventsEventBridge: the bucket's EventBridge delivery (on AWS).
	EventsEventBridge = "eventbridge"
	// EventsNone: no events; reconcile alone keeps the journal.
	EventsNone = "none"
	// EventsServerWide: the server sends every bucket's events to its
	// webhook and keeps no per-bucket notification configuration
	// (versitygw).
	EventsServerWide = "server-wide"

	eventsQueue = "queue:"
)

// EventsQueue is the delivery to the notification queue arn (an SQS
// queue, or a local server's webhook target), through the bucket's
// notification configuration NotificationID.
func EventsQueue(arn string) string { return eventsQueue + arn }

// EventsQueueARN returns the queue ARN of a queue delivery, or "".
func EventsQueueARN(events string) string {
	arn, _ := strings.CutPrefix(events, eventsQueue)
	if arn == events {
		return ""
	}
	return arn
}
