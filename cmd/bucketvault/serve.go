package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/notify"
	"github.com/bucketvault/bucketvault/shared/plan"
	"github.com/bucketvault/bucketvault/shared/runner"
	"github.com/bucketvault/bucketvault/shared/snapshot"
)

func (a *app) serveCommand() *cobra.Command {
	var vaultName, listen, planFile string
	var selectionFiles []string
	var every time.Duration
	var concurrency int
	cmd := &cobra.Command{
		Use:   "serve --vault V [--listen 127.0.0.1:9911]",
		Short: "The local runner: journal a local server's webhook events continuously, reconciling on an interval",
		Long: `serve listens for the bucket event notifications an S3-compatible server
POSTs to its webhook (MinIO: MINIO_NOTIFY_WEBHOOK_ENABLE_BUCKETVAULT=on and
MINIO_NOTIFY_WEBHOOK_ENDPOINT_BUCKETVAULT=http://<listen>/), journals them
into the vault in batches, and reconciles every protected bucket at start and
every --reconcile-interval. It runs until interrupted.

With --plan (AWS Backup plan JSON) and --selection files (or selections in
the plan file), it also runs the plan's snapshot rules on their schedules:
at each fire time it resolves the selections against the server's buckets
and snapshots each selected bucket into --vault.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			j, err := a.openJournal(cmd, vaultName, concurrency)
			if err != nil {
				return err
			}
			sched, err := a.scheduler(cmd, j.Vault.Bucket, planFile, selectionFiles, concurrency)
			if err != nil {
				return err
			}
			r := &runner.Runner{Journal: j, ReconcileEvery: every, Log: a.log}
			rcv, err := locals3.NewReceiverAt(listen, r.Handle)
			if err != nil {
				return err
			}
			defer rcv.Close()
			fmt.Fprintf(a.stdout, "serving webhook at %s for vault s3://%s (reconcile every %s); Ctrl-C stops\n", rcv.URL(), j.Vault.Bucket, every)
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if sched != nil {
				go func() {
					if err := sched.Run(ctx); err != nil {
						a.log.Error("plan scheduler stopped", "error", err)
					}
				}()
			}
			err = r.Run(ctx)
			st := r.Stats()
			fmt.Fprintf(a.stdout, "stopped: %d changes received, %d journaled, %d skipped, %d failed, %d reconciles\n",
				st.Received, st.Journaled, st.Skipped, st.Failed, st.Reconciles)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&vaultName, "vault", "", "vault bucket name")
	f.StringVar(&listen, "listen", "127.0.0.1:9911", "address of the webhook endpoint")
	f.DurationVar(&every, "reconcile-interval", 5*time.Minute, "how often to reconcile every protected bucket")
	f.IntVar(&concurrency, "concurrency", 16, "parallel copies")
	f.StringVar(&planFile, "plan", "", "AWS Backup plan JSON whose snapshot rules to run on schedule")
	f.StringArrayVar(&selectionFiles, "selection", nil, "AWS Backup selection JSON of --plan (repeatable)")
	return cmd
}

// scheduler builds the plan scheduler of serve, or nil without --plan.
func (a *app) scheduler(cmd *cobra.Command, vaultName, planFile string, selectionFiles []string, concurrency int) (*runner.Scheduler, error) {
	if planFile == "" {
		if len(selectionFiles) > 0 {
			return nil, usagef("--selection needs --plan")
		}
		return nil, nil
	}
	p, sels, err := plan.Load(planFile)
	if err != nil {
		return nil, usagef("%v", err)
	}
	if p == nil {
		return nil, usagef("%s holds no backup plan", planFile)
	}
	for _, f := range selectionFiles {
		_, more, err := plan.Load(f)
		if err != nil {
			return nil, usagef("%v", err)
		}
		sels = append(sels, more...)
	}
	if len(sels) == 0 {
		return nil, usagef("plan %s needs a selection: --selection FILE", p.BackupPlanName)
	}
	if err := p.Validate(nil); err != nil {
		return nil, usagef("%s: %v", planFile, err)
	}
	for _, s := range sels {
		if err := s.Validate(); err != nil {
			return nil, usagef("selection %s: %v", s.SelectionName, err)
		}
	}
	c, err := a.client(cmd.Context())
	if err != nil {
		return nil, err
	}
	e := &snapshot.Engine{S3: c, Concurrency: concurrency, Log: a.log, Events: notify.Log{Logger: a.log}}
	return &runner.Scheduler{Plan: p, Selections: sels, Engine: e, S3: c, Vault: vaultName, Log: a.log,
		Done: func(j snapshot.Job) { fmt.Fprint(a.stdout, jobText(&j)) }}, nil
}

func (a *app) localServerCommand() *cobra.Command {
	var dataDir, webhook string
	var kms bool
	cmd := &cobra.Command{
		Use:   "local-server [--data-dir DIR] [--webhook URL]",
		Short: "Install (once) and run the local S3 server (MinIO) on loopback for trying bucketvault",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(a.stderr, "starting the local S3 server (the first run builds it with go install: several minutes)...")
			s, err := locals3.Start(cmd.Context(), locals3.Options{DataDir: dataDir, WebhookURL: webhook, KMS: kms})
			if err != nil {
				return err
			}
			defer s.Stop()
			fmt.Fprintf(a.stdout, "local S3 server (%s) at %s; data in %s\n", s.Kind, s.Endpoint, s.DataDir)
			fmt.Fprintln(a.stdout, "use it with:")
			for _, e := range s.Env() {
				fmt.Fprintf(a.stdout, "  export %s\n", e)
			}
			if s.WebhookARN != "" {
				fmt.Fprintf(a.stdout, "webhook queue ARN for notifications: %s\n", s.WebhookARN)
			}
			fmt.Fprintln(a.stdout, "Ctrl-C stops it")
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			select {
			case <-ctx.Done():
			case <-s.Exited():
				return fmt.Errorf("the local server exited; log: %s", s.LogPath)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "keep data here (default: a temporary directory removed at exit)")
	cmd.Flags().StringVar(&webhook, "webhook", "", "URL the server POSTs bucket events to (bucketvault serve's --listen)")
	cmd.Flags().BoolVar(&kms, "kms", false, "enable SSE-KMS with a local key")
	return cmd
}
