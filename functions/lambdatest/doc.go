// Package lambdatest runs every Lambda function as Lambda runs it: its
// bootstrap, built as the stack builds it (for this machine), under the
// AWS Lambda Runtime Interface Emulator (shared/rie), with the environment
// the stack gives that function (shared/handler.LocalEnv), against the
// local S3 server, on its sample in events/. It has tests only.
package lambdatest
