// Command infra is bucketvault's CDK app: `cdk synth` and `cdk deploy` run
// it from the repository root (cdk.json). It deploys every function in
// functions/ with least privilege, the vault bucket, the continuous backup
// path, the schedules and the alarms. docs/deploy.md explains the
// configuration (cdk.json's "bucketvault" context).
package main

import (
	"fmt"
	"os"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"
)

func main() {
	code := run()
	jsii.Close()
	os.Exit(code)
}

func run() int {
	app := awscdk.NewApp(nil)
	wd, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bucketvault infra:", err)
		return 1
	}
	c, err := LoadConfig(func(key string) any { return app.Node().TryGetContext(jsii.String(key)) }, os.Getenv, wd)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := synthApp(app, c); err != nil {
		fmt.Fprintln(os.Stderr, "bucketvault infra:", err)
		return 1
	}
	return 0
}

// synthApp builds the stack and writes the cloud assembly; construct errors
// (jsii panics) come back as errors.
func synthApp(app awscdk.App, c *Config) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	NewBucketVaultStack(app, c)
	CheckAwsSolutions(app)
	app.Synth(nil)
	return nil
}
