package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// GoFunctionProps configure a GoFunction.
type GoFunctionProps struct {
	// Name is the function's directory under functions/ and its asset
	// directory under AssetDir (AssetDir/Name/bootstrap).
	Name        string
	Description string
	AssetDir    string
	MemoryMB    int
	Timeout     awscdk.Duration
	// EphemeralStorageMB sizes /tmp (0: Lambda's 512 MB).
	EphemeralStorageMB int
	Environment        map[string]string
	LogLevel           string
	LogRetentionDays   int
	// RoleName, when set, is the role's fixed name (CloudFormation's
	// RoleName), for a role another policy names by ARN: the vault's
	// bucket policy exempts the expire function's role by its name
	// (ExpireRoleName). Empty: CloudFormation names the role.
	RoleName string
	// Policy is the role's permissions besides logging and tracing, and
	// why the wildcards among them are needed.
	Policy policy
}

// GoFunction is one of bucketvault's Lambda functions: the Makefile-built
// bootstrap on provided.al2023/arm64, its own role (nothing shared), its
// own log group with a retention, JSON logs at the configured level, and
// X-Ray active tracing.
type GoFunction struct {
	constructs.Construct
	Name     string
	Function awslambda.Function
	Role     awsiam.Role
	LogGroup awslogs.LogGroup
}

// NewGoFunction creates the function. Its CloudFormation logical id is
// <Id>Function (JournalFunction, ...), stable for `sam local invoke`.
func NewGoFunction(scope constructs.Construct, id string, p *GoFunctionProps) *GoFunction {
	self := constructs.NewConstruct(scope, jsii.String(id))
	f := &GoFunction{Construct: self, Name: p.Name}
	asset := filepath.Join(p.AssetDir, p.Name)
	if err := checkBootstrap(asset); err != nil {
		panic(err)
	}

	f.LogGroup = newLogGroup(self, p.LogRetentionDays, id+"Logs")

	roleProps := &awsiam.RoleProps{
		AssumedBy:   awsiam.NewServicePrincipal(jsii.String("lambda.amazonaws.com"), nil),
		Description: jsii.String(fmt.Sprintf("bucketvault %s function", p.Name)),
	}
	if p.RoleName != "" {
		roleProps.RoleName = jsii.String(p.RoleName)
	}
	f.Role = awsiam.NewRole(self, jsii.String("Role"), roleProps)
	setLogicalID(f.Role, id+"Role")
	f.Role.AddToPolicy(allow("Logs", []string{"logs:CreateLogStream", "logs:PutLogEvents"}, f.LogGroup.LogGroupArn()))
	// Active tracing (below) adds X-Ray's statement to the role.
	p.Policy.because(whyStarOnly, jsii.String("*"))
	p.Policy.attach(f.Role)

	env := map[string]*string{}
	for k, v := range p.Environment {
		env[k] = jsii.String(v)
	}
	props := &awslambda.FunctionProps{
		Description:           jsii.String(p.Description),
		Runtime:               awslambda.Runtime_PROVIDED_AL2023(),
		Architecture:          awslambda.Architecture_ARM_64(),
		Handler:               jsii.String("bootstrap"),
		Code:                  awslambda.Code_FromAsset(jsii.String(asset), nil),
		MemorySize:            jsii.Number(float64(p.MemoryMB)),
		Timeout:               p.Timeout,
		Role:                  f.Role,
		Tracing:               awslambda.Tracing_ACTIVE,
		LoggingFormat:         awslambda.LoggingFormat_JSON,
		ApplicationLogLevelV2: awslambda.ApplicationLogLevel(p.LogLevel),
		SystemLogLevelV2:      awslambda.SystemLogLevel_INFO,
		LogGroup:              f.LogGroup,
		Environment:           &env,
	}
	if p.EphemeralStorageMB > 0 {
		props.EphemeralStorageSize = awscdk.Size_Mebibytes(jsii.Number(float64(p.EphemeralStorageMB)))
	}
	f.Function = awslambda.NewFunction(self, jsii.String("Function"), props)
	setLogicalID(f.Function, id+"Function")
	if dp := f.Role.Node().TryFindChild(jsii.String("DefaultPolicy")); dp != nil {
		setLogicalID(dp, id+"RolePolicy")
	}
	return f
}

// checkBootstrap fails synth early, and clearly, when `make build` has not
// built the function.
func checkBootstrap(dir string) error {
	st, err := os.Stat(filepath.Join(dir, "bootstrap"))
	switch {
	case err != nil:
		return fmt.Errorf("function asset %s/bootstrap is missing: run `make build` first (or `make synth`, which builds): %w", dir, err)
	case st.Mode()&0o111 == 0:
		return fmt.Errorf("function asset %s/bootstrap is not executable", dir)
	}
	return nil
}

// allow is an Allow statement.
func allow(sid string, actions []string, resources ...*string) awsiam.PolicyStatement {
	return grant(sid, actions, resources, nil)
}

// strs turns strings into the pointers jsii wants.
func strs(ss ...string) []*string {
	out := make([]*string, len(ss))
	for i, s := range ss {
		out[i] = jsii.String(s)
	}
	return out
}

var retentions = map[int]awslogs.RetentionDays{
	1: awslogs.RetentionDays_ONE_DAY, 3: awslogs.RetentionDays_THREE_DAYS, 5: awslogs.RetentionDays_FIVE_DAYS,
	7: awslogs.RetentionDays_ONE_WEEK, 14: awslogs.RetentionDays_TWO_WEEKS, 30: awslogs.RetentionDays_ONE_MONTH,
	60: awslogs.RetentionDays_TWO_MONTHS, 90: awslogs.RetentionDays_THREE_MONTHS, 120: awslogs.RetentionDays_FOUR_MONTHS,
	150: awslogs.RetentionDays_FIVE_MONTHS, 180: awslogs.RetentionDays_SIX_MONTHS, 365: awslogs.RetentionDays_ONE_YEAR,
	400: awslogs.RetentionDays_THIRTEEN_MONTHS, 545: awslogs.RetentionDays_EIGHTEEN_MONTHS, 731: awslogs.RetentionDays_TWO_YEARS,
	1096: awslogs.RetentionDays_THREE_YEARS, 1827: awslogs.RetentionDays_FIVE_YEARS, 2192: awslogs.RetentionDays_SIX_YEARS,
	2557: awslogs.RetentionDays_SEVEN_YEARS, 2922: awslogs.RetentionDays_EIGHT_YEARS, 3288: awslogs.RetentionDays_NINE_YEARS,
	3653: awslogs.RetentionDays_TEN_YEARS,
}

// newLogGroup is a log group "Logs" of scope, kept for days and retained
// when the stack goes, with the logical id logicalID.
func newLogGroup(scope constructs.Construct, days int, logicalID string) awslogs.LogGroup {
	g := awslogs.NewLogGroup(scope, jsii.String("Logs"), &awslogs.LogGroupProps{
		Retention:     retention(days),
		RemovalPolicy: awscdk.RemovalPolicy_RETAIN,
	})
	setLogicalID(g, logicalID)
	return g
}

func retention(days int) awslogs.RetentionDays {
	r, ok := retentions[days]
	if !ok {
		panic(fmt.Sprintf("log retention %d days is not one CloudWatch Logs accepts", days))
	}
	return r
}
