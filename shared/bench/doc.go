// Package bench holds bucketvault's benchmarks: Go Benchmark functions that
// measure, in one run against one local MinIO server (package locals3),
// bucketvault's journal, reconcile, restore and snapshots against their
// peers and the server's limit, and report the
// ratios with b.ReportMetric. docs/benchmarks.md gives the method and the
// last results.
//
// Run them with
//
//	go test -run='^$' -bench=. -benchtime=1x -timeout 120m ./shared/bench/
//
// (make bench). Without -bench, go test runs only a few unit tests of the
// helpers: every server, bucket and object is set up inside the Benchmark
// functions.
//
//   - BenchmarkJournalThroughput: versions/s of journal.Ingest against raw
//     parallel CopyObject of the same versions (ratio_journal/raw).
//   - BenchmarkRestoreAsOf: objects/s of restore.Restorer.Run as of a
//     second T against raw parallel CopyObject of the versions current at T
//     and against rclone copy with version_at (ratio_bv/limit,
//     ratio_bv/rclone), every object read back (the default), and the
//     same without the read-back (--verify bytes: ratio_bvbytes/*). It
//     needs rclone on PATH (apt-get install -y rclone) and skips without
//     it.
//   - BenchmarkRestorePeakHeap: the peak Go heap during a restore at two
//     journal sizes (ratio_large/small: flat is close to 1).
//   - BenchmarkRestorePlanPeakHeap: the same for the plan and report path
//     alone (a dry run), 10,000 and 1,000,000 keys.
//   - BenchmarkRestorePlan: keys/s of the restore state machine's plan
//     step against reading the journal alone (ratio_plan/read).
//   - BenchmarkReconcileInitialBackup: versions/s of journal.Reconcile (a
//     bucket's first full backup) against raw parallel CopyObject.
//   - BenchmarkSnapshotFull: objects/s of a full snapshot
//     (snapshot.Engine.Run) against raw parallel CopyObject of the current
//     versions, rclone copy and aws s3 sync between two buckets
//     (ratio_bv/limit, ratio_bv/peer); it needs rclone and Debian's awscli
//     (make bench installs both).
//   - BenchmarkSnapshotIncremental: an incremental snapshot after 1% of
//     the objects changed against a full one (ratio_incr/full).
//   - BenchmarkSnapshotPeakHeap: the peak Go heap of a full snapshot of
//     20,000 and of 200,000 objects (ratio_large/small).
//   - BenchmarkRestoreSnapshot: objects/s of a restore of a packed SNAPSHOT
//     recovery point of 20,000 small objects against raw parallel
//     CopyObject and rclone copy with version_at (ratio_bv/limit,
//     ratio_bv/rclone; ratio_bvbytes/* without the read-back).
//   - BenchmarkRestoreTest: a restore test (restoretest.Tester.Run: pick,
//     restore, validate, record) of 20,000 small objects against the
//     restore alone of the same second (ratio_test/restore, target <=
//     1.3), with the validation's parts.
//   - BenchmarkExpireCollect: objects/s of expiry collecting unreferenced
//     data against raw ListObjectVersions + DeleteObjects
//     (ratio_expire/raw).
//   - BenchmarkCompactAfterChurn: a compaction after 1% churn of a
//     1,000,000-record journal against a full rewrite (ratio_incr/full).
//   - BenchmarkCollectPeakHeap: the peak Go heap of a collection at
//     100,000 and 1,000,000 references (ratio_large/small).
//
// BUCKETVAULT_BENCH_SCALE (default 1) multiplies every object count.
package bench
