// Command locals3 installs and runs the local S3 servers of package
// locals3, for CI set-up and by-hand experiments.
//
//	locals3 install [minio|versitygw]   install the pinned binary (default: $BUCKETVAULT_S3_SERVER or minio) and print its path
//	locals3 run [-kms] [-webhook URL] [-data DIR] [minio|versitygw]
//	                                    start a server, print export lines for its
//	                                    AWS_* environment, and run until interrupted
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/bucketvault/bucketvault/shared/locals3"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "locals3:", err)
		os.Exit(1)
	}
}

const usage = "usage: locals3 install [minio|versitygw] | locals3 run [-kms] [-webhook URL] [-data DIR] [minio|versitygw]"

func run(args []string) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch args[0] {
	case "install":
		kind, err := kindArg(args[1:])
		if err != nil {
			return err
		}
		bin, err := locals3.Install(ctx, kind)
		if err != nil {
			return err
		}
		fmt.Println(bin)
		return nil
	case "run":
		fs := flag.NewFlagSet("run", flag.ContinueOnError)
		kms := fs.Bool("kms", false, "MinIO: configure the static SSE-KMS key "+locals3.KMSKeyName)
		webhook := fs.String("webhook", "", "URL the server POSTs bucket events to")
		data := fs.String("data", "", "data directory to use and keep (default: a temporary one, removed at exit)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		kind, err := kindArg(fs.Args())
		if err != nil {
			return err
		}
		s, err := locals3.Start(ctx, locals3.Options{Kind: kind, KMS: *kms, WebhookURL: *webhook, DataDir: *data, Stderr: os.Stderr})
		if err != nil {
			return err
		}
		for _, kv := range s.Env() {
			fmt.Printf("export %s\n", kv)
		}
		if s.WebhookARN != "" {
			fmt.Printf("# webhook queue ARN: %s\n", s.WebhookARN)
		}
		if s.KMSKeyID != "" {
			fmt.Printf("# SSE-KMS key id: %s\n", s.KMSKeyID)
		}
		fmt.Printf("# %s on %s, data in %s; interrupt to stop\n", s.Kind, s.Endpoint, s.DataDir)
		select {
		case <-ctx.Done():
		case <-s.Exited():
		}
		return s.Stop()
	default:
		return errors.New(usage)
	}
}

func kindArg(args []string) (locals3.Kind, error) {
	switch len(args) {
	case 0:
		return locals3.KindFromEnv()
	case 1:
		return locals3.ParseKind(args[0])
	default:
		return "", errors.New(usage)
	}
}
