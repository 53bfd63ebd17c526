// Package event decodes the S3 change notifications bucketvault receives into
// one normalized type, [Change].
//
// Accepted input, nested in any sensible way:
//
//   - Amazon EventBridge events with source "aws.s3" (detail-type "Object
//     Created", "Object Deleted", "Object Tags Added", and so on);
//   - classic S3 event notifications ({"Records":[...]}, eventName such as
//     "ObjectCreated:Put"), as sent by Amazon S3 to SQS, SNS and Lambda, and
//     the same records as sent by S3-compatible servers: MinIO prefixes
//     eventName with "s3:" and wraps the records in its webhook body
//     ({"EventName":..., "Key":"bucket/key", "Records":[...]}), versitygw
//     sends PUT events without versionId and reports every delete, including
//     one that created a delete marker, as "s3:ObjectRemoved:Delete" without
//     versionId;
//   - the s3:TestEvent message S3 sends when a notification is configured;
//   - SNS notification envelopes ({"Type":"Notification","Message":"..."})
//     and Lambda SNS events carrying any of the above;
//   - Lambda SQS events ({"Records":[{"eventSource":"aws:sqs","body":"..."}]})
//     whose bodies carry any of the above.
//
// Object keys in classic records are URL-encoded the way HTML forms are
// ("red flower.jpg" arrives as "red+flower.jpg", '+' itself as "%2B"); see
// https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html.
// MinIO encodes them with Go's url.QueryEscape. The EventBridge documentation
// does not say how detail.object.key is encoded; AWS Lambda Powertools
// decodes it with Python's unquote_plus and LocalStack emulates it
// URL-encoded, so keys from both formats are decoded with [url.QueryUnescape]
// semantics. A key that is not valid URL encoding (a bare '%') is an error,
// not a guess.
//
// Decode never guesses silently: input it does not understand is reported as
// a [*DecodeError], while event types that are understood but not journaled
// (object reads, replication, restore initiation and expiry) decode to zero
// changes.
package event
