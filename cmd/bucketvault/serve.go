package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/bucketvault/bucketvault/shared/locals3"
	"github.com/bucketvault/bucketvault/shared/runner"
)

func (a *app) serveCommand() *cobra.Command {
	var vaultName, listen string
	var every time.Duration
	var concurrency int
	cmd := &cobra.Command{
		Use:   "serve --vault V [--listen 127.0.0.1:9911]",
		Short: "The local runner: journal a local server's webhook events continuously, reconciling on an interval",
		Long: `serve listens for the bucket event notifications an S3-compatible server
POSTs to its webhook (MinIO: MINIO_NOTIFY_WEBHOOK_ENABLE_BUCKETVAULT=on and
MINIO_NOTIFY_WEBHOOK_ENDPOINT_BUCKETVAULT=http://<listen>/), journals them
into the vault in batches, and reconciles every protected bucket at start and
every --reconcile-interval. It runs until interrupted.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			j, err := a.openJournal(cmd, vaultName, concurrency)
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
	return cmd
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
