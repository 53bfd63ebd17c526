// Package bench holds bucketvault's benchmarks: Go Benchmark functions that
// measure, in one run against one local MinIO server (package locals3),
// bucketvault's journal and restore against their peers and report the
// ratios with b.ReportMetric. docs/benchmarks.md gives the method and the
// last results.
//
// Run them with
//
//	go test -run='^$' -bench=. -benchtime=1x -timeout 60m ./shared/bench/
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
//     ratio_bv/rclone). It needs rclone on PATH (apt-get install -y rclone)
//     and skips without it.
//   - BenchmarkRestorePeakHeap: the peak Go heap during a restore at two
//     journal sizes (ratio_large/small: flat is close to 1).
//
// BUCKETVAULT_BENCH_SCALE (default 1) multiplies every object count.
package bench
