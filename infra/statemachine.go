package main

import (
	"encoding/json"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsstepfunctions"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// newStateMachineRole is the role of a state machine: assumed by Step
// Functions on behalf of this account only.
func newStateMachineRole(scope constructs.Construct, account, description, logicalID string) awsiam.Role {
	r := awsiam.NewRole(scope, jsii.String("Role"), &awsiam.RoleProps{
		AssumedBy: awsiam.NewServicePrincipal(jsii.String("states.amazonaws.com"), &awsiam.ServicePrincipalOpts{
			Conditions: &map[string]any{"StringEquals": map[string]any{"aws:SourceAccount": account}},
		}),
		Description: jsii.String(description),
	})
	setLogicalID(r, logicalID)
	return r
}

// newStateMachine is a standard state machine of definition (JSON with
// substitutions subst), traced, logging every event with the states'
// input and output (AWS Solutions SF1) to logs.
func newStateMachine(scope constructs.Construct, logicalID, name string, definition any, subst map[string]*string, role awsiam.Role, logs awslogs.LogGroup) awsstepfunctions.StateMachine {
	def, err := json.Marshal(definition)
	if err != nil {
		panic(err)
	}
	m := awsstepfunctions.NewStateMachine(scope, jsii.String(logicalID), &awsstepfunctions.StateMachineProps{
		StateMachineName:        jsii.String(name),
		StateMachineType:        awsstepfunctions.StateMachineType_STANDARD,
		DefinitionBody:          awsstepfunctions.DefinitionBody_FromString(jsii.String(string(def))),
		DefinitionSubstitutions: &subst,
		Role:                    role,
		TracingEnabled:          jsii.Bool(true),
		Logs: &awsstepfunctions.LogOptions{
			Destination: logs, Level: awsstepfunctions.LogLevel_ALL, IncludeExecutionData: jsii.Bool(true),
		},
		RemovalPolicy: awscdk.RemovalPolicy_DESTROY,
	})
	setLogicalID(m, logicalID)
	return m
}
