// Package locals3 installs, starts and stops a real S3-compatible server on
// loopback for bucketvault's tests and demo: MinIO (the default) or the
// Versity S3 gateway (versitygw) with its posix backend, chosen by
// $BUCKETVAULT_S3_SERVER ("minio" or "versitygw").
//
// # Use
//
// In tests, one server per test binary:
//
//	func TestMain(m *testing.M) { locals3.Main(m) } // stops the shared server
//
//	func TestX(t *testing.T) {
//		s := locals3.ForTest(t)           // started once, lazily; t.Fatal if it cannot start
//		bucket := s.NewBucket(t, true)    // unique name from t.Name(), versioning enabled
//		events, cancel := s.Subscribe(bucket)
//		defer cancel()
//		_ = s.EnableEvents(t.Context(), bucket)
//		c := s.Client(t.Context())        // *s3.Client, path-style
//		...
//	}
//
// Elsewhere (the CLI's serve, the demo): Start(ctx, Options{...}) and
// Server.Stop; Server.Env gives AWS_* variables for child processes;
// Receiver is the webhook endpoint for event notifications. The command
// ./shared/locals3/cmd/locals3 installs a server ("go run
// ./shared/locals3/cmd/locals3 install [minio|versitygw]", for CI set-up,
// so that no test waits for a compile past go test's 10-minute timeout) or
// runs one until interrupted ("run").
//
// # Installing
//
// Install runs "go install" of a pinned version into $BUCKETVAULT_CACHE/bin
// (default ~/.cache/bucketvault/bin, or $XDG_CACHE_HOME/bucketvault/bin):
//
//   - MinIO: github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c. A
//     cold install (module download and compile of a 150 MB binary) took
//     5 min 7 s on the 2-core development machine.
//   - versitygw: github.com/versity/versitygw/cmd/versitygw@v1.8.0, about
//     1 min 45 s cold, with a MinIO test run going on at the same time.
//
// A stamp file (binary + ".version") records the installed version, so a
// second Install runs no command at all; a binary without a stamp is
// accepted when its embedded Go build info names the pinned version. A
// flock on install-KIND.lock in the cache directory makes the parallel
// package processes of "go test ./..." install once. Failures name the go
// command and quote its output; without a Go toolchain the error says so.
//
// # Running
//
// Start picks free loopback ports (retrying if one was taken meanwhile),
// starts the server in its own process group with Pdeathsig SIGKILL (it
// dies with the process that started it), and polls until it serves
// ListBuckets (MinIO: after /minio/health/live answers 200). Measured
// start-up, exec to ready: MinIO 0.64 s alone (up to 1.5 s beside a
// parallel test run), versitygw 0.11 s. Root credentials are random per
// start; the region is us-east-1. Stop kills a
// server with a temporary data directory at once (a few ms to 50 ms) and
// removes the directory; a caller's DataDir gets SIGTERM first and is kept
// (a restart on it serves the old objects, SSE-KMS ones too, because the
// KMS key is kept in DataDir/kms.key). If the server exits at start, the
// error names the command (secret redacted) and quotes its log's last
// lines. MinIO writes its log to stderr, versitygw to stdout.
//
// # Server facts
//
// Checked by this package's tests unless marked "(source)", meaning read
// in the pinned server's source code. Both servers, with the AWS SDK for Go
// v2 (s3 v1.114.8, default checksum settings) and path-style addressing:
//   - versioning: two PUTs of one key give two distinct version ids, listed
//     newest first with IsLatest on the newest; an old version is readable
//     by id; a DELETE without version id makes a delete marker, returned in
//     ListObjectVersions' DeleteMarkers.
//   - CopyObject with CopySource "bucket/key?versionId=ID" copies that
//     version and echoes CopySourceVersionId. Encode the key with
//     CopySource: versitygw decodes a bare "+" in x-amz-copy-source as a
//     space (NoSuchKey), MinIO as a plus; both accept %2B, %20 and %2F.
//   - tagging: Tagging on PutObject, Put/Get/DeleteObjectTagging per
//     version id, GetObject's TagCount.
//   - Object Lock: CreateBucket with ObjectLockEnabledForBucket enables
//     versioning; GOVERNANCE retention on PutObject is returned by
//     GetObjectRetention; deleting the version is refused (MinIO: 400
//     InvalidRequest "Object is WORM protected and cannot be overwritten";
//     versitygw: 403 AccessDenied) unless BypassGovernanceRetention is set.
//   - HeadObject's and GetObject's Last-Modified is an HTTP date: whole
//     seconds.
//   - ListObjectsV2 pagination by continuation token, and delimiters.
//   - the AWS SDK configured from Server.Env by config.LoadDefaultConfig
//     (AWS_ENDPOINT_URL) works, with UsePathStyle.
//   - bucket names need at least 3 characters.
//
// MinIO:
//   - LastModified in ListObjectVersions and ListObjectsV2 has
//     milliseconds (2026-11-23T08:17:46.550Z); two PUTs a few ms apart
//     get distinct times.
//   - ListObjectVersions paged by MaxKeys 1, 2 or 3 with
//     NextKeyMarker/NextVersionIdMarker returns exactly the single-page
//     listing, versions and delete markers, no entry twice.
//   - the webhook target is configured by MINIO_NOTIFY_WEBHOOK_*_bucketvault
//     variables. MinIO takes the target id from the variable names, case
//     and all, so the queue ARN is arn:minio:sqs::bucketvault:webhook (with
//     upper-case names it is ...::BUCKETVAULT:webhook, and the lower-case ARN
//     is refused with InvalidArgument "A specified destination ARN does
//     not exist"). The region part is empty because MINIO_REGION is not
//     set. The startup banner's "SQS ARNs:" line omits the lower-case
//     target although it works.
//   - MinIO checks the webhook by a TCP dial only, no test POST (source).
//     With a queue dir events go to a disk queue that a sender polls every
//     3 s, so delivery takes from a few ms to about 3 s (seen: 5 ms to
//     2.9 s). Events are sent one at a time, oldest first; a non-2xx answer
//     is retried every 3 s and holds back the events behind it (source).
//   - webhook body: {"EventName":..., "Key":"bucket/key", "Records":[one
//     record]}; eventVersion "2.0", eventSource "minio:s3", awsRegion "",
//     eventTime with milliseconds, s3.configurationId "Config" (the
//     QueueConfiguration's Id is not echoed), s3.object.key encoded by
//     url.QueryEscape ("dir/a b+c.txt" arrives as "dir%2Fa+b%2Bc.txt";
//     Server.EventKey decodes), eTag without quotes, versionId always
//     present, sequencer 16 hex digits (a tagging event repeats the
//     sequencer of the object's PUT), plus contentType and userMetadata.
//   - event names: PutObject s3:ObjectCreated:Put; CopyObject
//     s3:ObjectCreated:Copy; PutObjectTagging s3:ObjectCreated:PutTagging;
//     DeleteObjectTagging s3:ObjectCreated:DeleteTagging (both under
//     s3:ObjectCreated:*, with the tagged version's versionId); DELETE
//     without version id s3:ObjectRemoved:DeleteMarkerCreated with the
//     marker's versionId. AWS's s3:ObjectTagging:* names are not accepted
//     in a configuration (source).
//   - EnableEvents twice leaves one QueueConfiguration.
//   - SSE-KMS with MINIO_KMS_SECRET_KEY=bucketvault-key:BASE64: PutObject
//     and GetObject with aws:kms and key id "bucketvault-key" work;
//     responses name the key "arn:aws:kms:bucketvault-key"; an unknown key
//     id is refused; SSE-S3 (AES256) works too.
//
// versitygw v1.8.0 (posix backend with --versioning-dir; metadata in user
// xattrs, or in a --sidecar directory that Start adds where the data
// directory's file system has no user xattrs):
//   - LastModified in every listing is whole seconds (its s3response
//     formats with time.RFC3339), so versions PUT in one second tie.
//   - ListObjectVersions treats a VersionIdMarker that names the latest
//     version of a key (kept in the bucket directory, not the versioning
//     directory) as inclusive: the next page starts with that version
//     again. With MaxKeys=1 the listing never progresses; with larger
//     pages the marker's entry comes twice. A lister must drop an entry
//     equal to the previous page's marker and stop on a page with nothing
//     new. Markers naming older versions are exclusive, as in AWS.
//   - no KMS: SSE-KMS is unavailable (Start refuses Options.KMS).
//   - flags: --access, --secret, --region, --port ADDR, and
//     --event-webhook-url URL (not --event-webhook); the posix subcommand
//     takes --versioning-dir DIR and the root directory.
//   - the webhook gets every bucket's events, with no per-bucket
//     configuration: Put/GetBucketNotificationConfiguration answer
//     NotImplemented (source), so WebhookARN is "" and EnableEvents only
//     checks that a webhook exists. An --event-filter file could limit the
//     event names (source).
//   - at start it POSTs {"Service":"S3","Event":"s3:TestEvent",...} to the
//     webhook and exits if the connection is refused (status 1, tested);
//     it ignores the answer's status (source).
//   - events are sent at once (seen: 3–5 ms), with no queue and no retry,
//     each from its own goroutine, so their order is not guaranteed, and
//     with a 3 s timeout; an event that fails is lost (source).
//   - webhook body: {"Records":[one record]}; eventVersion "2.2",
//     eventSource "aws:s3", awsRegion "us-east-1", eventTime in whole
//     seconds, s3.configurationId "webhook-global", s3.object.key NOT
//     encoded ("dir/a b+c.txt" as is), eTag with quotes, sequencer a small
//     hex counter, bucket arn "arn:aws:s3:::/bucket/key".
//   - versionId is null in PutObject, PutObjectTagging, DeleteObjectTagging
//     and DeleteObject events (its handlers do not hand the version id to
//     the event sender); CopyObject events carry it, but with size 0.
//     Tagging and delete events have size 0 and eTag null.
//   - event names: PutObject s3:ObjectCreated:Put; CopyObject
//     s3:ObjectCreated:Copy; PutObjectTagging s3:ObjectTagging:Put;
//     DeleteObjectTagging s3:ObjectTagging:Delete; every DELETE
//     s3:ObjectRemoved:Delete, delete marker or not; DeleteObjects one
//     s3:ObjectRemoved:DeleteObjects per key (source).
package locals3
