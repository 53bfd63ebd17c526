package main

import (
	"fmt"
	"strconv"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// VaultProps configure a Vault.
type VaultProps struct {
	Config *Config
}

// Vault is the vault bucket and its customer managed key.
type Vault struct {
	constructs.Construct
	// Name is the bucket's name (known at synth, so IAM resources are
	// literal ARNs).
	Name string
	// Bucket is the vault bucket.
	Bucket awss3.Bucket
	// Key encrypts the vault (created, or imported by ARN).
	Key  awskms.IKey
	arns s3ARNs
}

// NewVault creates the vault bucket: SSE-KMS with a customer managed key
// (S3 Bucket Key on, so KMS sees one request per bucket key, not per
// object), versioning, Object Lock with a default retention, Block Public
// Access, TLS only, owner-enforced object ownership, and a bucket policy
// that denies deleting objects and versions to every principal: nothing
// deployed deletes from the vault (the lifecycle function, when it comes,
// brings its role and the policy's exception for it; a role exists only
// with the function that uses it). The bucket and a created key are
// retained when the stack is deleted.
func NewVault(scope constructs.Construct, id string, props *VaultProps) *Vault {
	c := props.Config
	// Children are made in self, the plain construct: jsii must not see
	// the Go struct that embeds it.
	self := constructs.NewConstruct(scope, jsii.String(id))
	v := &Vault{Construct: self, Name: c.Vault.BucketName}
	v.arns = s3ARNs{partition: *awscdk.Stack_Of(scope).Partition()}

	if c.Vault.KMSKeyARN != "" {
		v.Key = awskms.Key_FromKeyArn(self, jsii.String("ImportedKey"), jsii.String(c.Vault.KMSKeyARN))
	} else {
		key := awskms.NewKey(self, jsii.String("Key"), &awskms.KeyProps{
			Description:       jsii.String(fmt.Sprintf("bucketvault: encrypts the vault bucket %s", c.Vault.BucketName)),
			Alias:             jsii.String("alias/bucketvault/" + c.Vault.BucketName),
			EnableKeyRotation: jsii.Bool(true),
			PendingWindow:     awscdk.Duration_Days(jsii.Number(30)),
			RemovalPolicy:     awscdk.RemovalPolicy_RETAIN,
		})
		setLogicalID(key, "VaultKey")
		v.Key = key
	}

	lock := c.Vault.Lock
	days := awscdk.Duration_Days(jsii.Number(float64(lock.MinRetentionDays)))
	retention := awss3.ObjectLockRetention_Governance(days)
	if lock.Mode == "COMPLIANCE" {
		retention = awss3.ObjectLockRetention_Compliance(days)
	}
	v.Bucket = awss3.NewBucket(self, jsii.String("Bucket"), &awss3.BucketProps{
		BucketName:                 jsii.String(c.Vault.BucketName),
		Encryption:                 awss3.BucketEncryption_KMS,
		EncryptionKey:              v.Key,
		BucketKeyEnabled:           jsii.Bool(true),
		Versioned:                  jsii.Bool(true),
		ObjectLockEnabled:          jsii.Bool(true),
		ObjectLockDefaultRetention: retention,
		BlockPublicAccess:          awss3.BlockPublicAccess_BLOCK_ALL(),
		ObjectOwnership:            awss3.ObjectOwnership_BUCKET_OWNER_ENFORCED,
		EnforceSSL:                 jsii.Bool(true),
		RemovalPolicy:              awscdk.RemovalPolicy_RETAIN,
		AutoDeleteObjects:          jsii.Bool(false),
		LifecycleRules: &[]*awss3.LifecycleRule{{
			Id:                                  jsii.String("abort-incomplete-multipart-uploads"),
			AbortIncompleteMultipartUploadAfter: awscdk.Duration_Days(jsii.Number(7)),
		}},
	})
	setLogicalID(v.Bucket, "VaultBucket")
	suppress(v.Bucket, nagAccessLogs, "The vault's request audit is CloudTrail data events for this bucket (an account trail's; docs/deploy.md, Least privilege), which name the IAM principal of every call and are delivered reliably; "+
		"server access logs are best-effort and would need a second bucket, outside the vault's lock.")

	objects := v.arns.objects(v.Name, "*")
	v.Bucket.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("DenyDeletes"),
		Effect:     awsiam.Effect_DENY,
		Principals: &[]awsiam.IPrincipal{awsiam.NewAnyPrincipal()},
		Actions:    jsii.Strings("s3:DeleteObject", "s3:DeleteObjectVersion"),
		Resources:  jsii.Strings(objects),
	}))
	// Explicit retention outside [min, max] days is refused (the default
	// retention applies to every version anyway).
	v.Bucket.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("DenyRetentionBelowMinimum"),
		Effect:     awsiam.Effect_DENY,
		Principals: &[]awsiam.IPrincipal{awsiam.NewAnyPrincipal()},
		Actions:    jsii.Strings("s3:PutObjectRetention"),
		Resources:  jsii.Strings(objects),
		Conditions: &map[string]any{
			"NumericLessThan": map[string]any{"s3:object-lock-remaining-retention-days": strconv.Itoa(lock.MinRetentionDays)},
		},
	}))
	if lock.MaxRetentionDays > 0 {
		v.Bucket.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:        jsii.String("DenyRetentionAboveMaximum"),
			Effect:     awsiam.Effect_DENY,
			Principals: &[]awsiam.IPrincipal{awsiam.NewAnyPrincipal()},
			Actions:    jsii.Strings("s3:PutObjectRetention"),
			Resources:  jsii.Strings(objects),
			Conditions: &map[string]any{
				"NumericGreaterThan": map[string]any{"s3:object-lock-remaining-retention-days": strconv.Itoa(lock.MaxRetentionDays)},
			},
		}))
	}
	if t := lock.LockedAfter(); !t.IsZero() {
		// After the grace time nobody may change the lock configuration or
		// bypass governance retention: governance behaves as compliance.
		v.Bucket.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:        jsii.String("DenyLockChangesAfterGraceTime"),
			Effect:     awsiam.Effect_DENY,
			Principals: &[]awsiam.IPrincipal{awsiam.NewAnyPrincipal()},
			Actions:    jsii.Strings("s3:PutBucketObjectLockConfiguration", "s3:BypassGovernanceRetention"),
			Resources:  jsii.Strings(v.arns.bucket(v.Name), objects),
			Conditions: &map[string]any{
				"DateGreaterThan": map[string]any{"aws:CurrentTime": t.UTC().Format("2006-01-02T15:04:05Z")},
			},
		}))
	}
	if p := v.Bucket.Policy(); p != nil {
		setLogicalID(p, "VaultBucketPolicy")
	}
	return v
}

// KeyARN is the vault key's ARN (a token when the stack creates the key).
func (v *Vault) KeyARN() *string { return v.Key.KeyArn() }

// s3ARNs spells S3 ARNs in the stack's partition.
type s3ARNs struct{ partition string }

func (a s3ARNs) bucket(name string) string { return fmt.Sprintf("arn:%s:s3:::%s", a.partition, name) }

func (a s3ARNs) objects(bucket, pattern string) string {
	return fmt.Sprintf("arn:%s:s3:::%s/%s", a.partition, bucket, pattern)
}

// setLogicalID gives a construct's CloudFormation resource a fixed,
// readable logical id (stable across refactors of the construct tree).
func setLogicalID(c constructs.IConstruct, id string) {
	if r, ok := c.Node().DefaultChild().(awscdk.CfnResource); ok {
		r.OverrideLogicalId(jsii.String(id))
		return
	}
	panic(fmt.Sprintf("setLogicalID %s: %s has no CloudFormation resource", id, *c.Node().Path()))
}
