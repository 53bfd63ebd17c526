package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bucketvault/bucketvault/shared/notify"
	"github.com/bucketvault/bucketvault/shared/plan"
	"github.com/bucketvault/bucketvault/shared/snapshot"
)

func (a *app) backupCommand() *cobra.Command {
	var vaultName, bucket, planFile, ruleName string
	var concurrency int
	var acls bool
	cmd := &cobra.Command{
		Use:   "backup --vault V --bucket B [--plan FILE --rule NAME] [--acls]",
		Short: "Take an on-demand snapshot of a bucket and print its recovery point",
		Long: `backup runs a snapshot job in-process, with the same steps the snapshot state
machine runs on AWS: it lists the bucket, copies every current object the
vault does not hold yet (a second snapshot of an unchanged bucket copies
nothing), and seals a SNAPSHOT recovery point: AVAILABLE, or PARTIAL listing
every object it could not back up and why.

With --plan and --rule the job takes the rule's windows, lifecycle and
recovery point tags (the plan is AWS Backup's JSON, validated first).

Object ACLs are backed up where the bucket uses them: its Object Ownership
is not BucketOwnerEnforced, or the vault protects it with --acls. --acls
reads them whatever the bucket says; --acls=false never does.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlag("bucket", bucket); err != nil {
				return err
			}
			if (planFile == "") != (ruleName == "") {
				return usagef("--plan and --rule go together")
			}
			job := snapshot.Job{Vault: vaultName, Bucket: bucket}
			if planFile != "" {
				p, _, err := plan.Load(planFile)
				if err != nil {
					return usagef("%v", err)
				}
				if err := p.Validate(nil); err != nil {
					return usagef("%s: %v", planFile, err)
				}
				r := ruleNamed(p, ruleName)
				if r == nil {
					return usagef("plan %s has no rule %q", p.BackupPlanName, ruleName)
				}
				job = snapshot.JobForRule(p, r, vaultName, bucket, time.Now())
			}
			if cmd.Flags().Changed("acls") {
				job.ACLs = &acls
			}
			if err := requireFlag("vault", job.Vault); err != nil {
				return err
			}
			c, err := a.client(cmd.Context())
			if err != nil {
				return err
			}
			p := a.newProgress("backup")
			e := &snapshot.Engine{S3: c, Concurrency: concurrency, Log: a.log, Events: notify.Log{Logger: a.log},
				Progress: func(pr snapshot.Progress) {
					if pr.Listed > 0 {
						p.set(pr.Listed, "listing")
						return
					}
					p.set(pr.Copied+pr.Carried+pr.Failed, fmt.Sprintf("copied %d, failed %d", pr.Copied, pr.Failed))
				}}
			j, err := e.Run(cmd.Context(), job)
			p.done()
			if err != nil {
				return err
			}
			if perr := a.print(j, jobText(j)); perr != nil {
				return perr
			}
			switch j.State {
			case snapshot.StateCompleted:
				return nil
			default:
				return &partialError{msg: fmt.Sprintf("backup %s ended %s: %s", j.JobID, j.State, j.StatusMessage)}
			}
		},
	}
	f := cmd.Flags()
	f.StringVar(&vaultName, "vault", "", "vault bucket name (default: the rule's TargetBackupVaultName)")
	f.StringVar(&bucket, "bucket", "", "the bucket to back up")
	f.StringVar(&planFile, "plan", "", "AWS Backup plan JSON whose rule shapes the job")
	f.StringVar(&ruleName, "rule", "", "the rule of --plan")
	f.IntVar(&concurrency, "concurrency", 32, "parallel copies")
	f.BoolVar(&acls, "acls", false, "read every new object's ACL (default: when the bucket's ownership leaves ACLs enabled)")
	return cmd
}

func ruleNamed(p *plan.Plan, name string) *plan.Rule {
	for i := range p.Rules {
		if p.Rules[i].RuleName == name {
			return &p.Rules[i]
		}
	}
	return nil
}

func jobText(j *snapshot.Job) string {
	var b strings.Builder
	fmt.Fprintf(&b, "backup job %s: %s\n", j.JobID, j.State)
	if j.RecoveryPointID != "" {
		fmt.Fprintf(&b, "  recovery point %s of s3://%s in vault %s\n", j.RecoveryPointID, j.Bucket, j.Vault)
	}
	if t := j.Totals; t != nil {
		fmt.Fprintf(&b, "  %d objects, %d bytes; copied %d (%d bytes), the vault had the rest; failed %d\n",
			t.Objects, t.Bytes, t.Copied, t.CopiedBytes, t.Failed)
	}
	if j.ACLs != nil {
		what := "not read (the bucket does not use them)"
		if *j.ACLs {
			what = "read with each new object"
		}
		fmt.Fprintf(&b, "  object ACLs: %s\n", what)
	}
	if j.StatusMessage != "" {
		fmt.Fprintf(&b, "  %s\n", j.StatusMessage)
	}
	return b.String()
}
