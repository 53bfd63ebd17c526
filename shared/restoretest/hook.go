package restoretest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	ltypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/bucketvault/bucketvault/shared/notify"
	"github.com/bucketvault/bucketvault/shared/s3x"
	"github.com/bucketvault/bucketvault/shared/vault"
)

// A user's validation: after bucketvault's own validation, a restore test
// may invoke the user's validation function (a Lambda function) with the
// restored bucket, and waits for its verdict until the selection's
// validation window ends, as AWS Backup's restore testing waits for
// PutRestoreValidationResult.
//
// The function gets an EventBridge event shaped as AWS Backup's "Restore
// Job State Change" for a COMPLETED restore (detail.restoreJobId,
// detail.createdResourceArn, detail.resourceType, ...), so a validation
// function written for AWS Backup reads it unchanged, with bucketvault's
// own fields beside them. It gives its verdict either as its return value,
// {"ValidationStatus": "SUCCESSFUL"|"FAILED", "ValidationStatusMessage":
// "..."}, or later, when it needs longer than one invocation: it returns
// VALIDATING (or nothing) and reports with PutValidationResult
// (`bucketvault restore-test put-validation-result`). No verdict by the
// window's end is TIMED_OUT. A function that fails (an error, a function
// error, an answer that is not a verdict) is FAILED with why.

// Validation statuses, AWS Backup's PutRestoreValidationResult's.
const (
	ValidationSuccessful = "SUCCESSFUL"
	ValidationFailed     = "FAILED"
	ValidationTimedOut   = "TIMED_OUT"
	ValidationValidating = "VALIDATING"
)

// Verdict is a user's validation result.
type Verdict struct {
	ValidationStatus        string `json:"ValidationStatus"`
	ValidationStatusMessage string `json:"ValidationStatusMessage,omitempty"`
}

// Final says whether the verdict ends the validation.
func (v Verdict) Final() bool {
	return v.ValidationStatus == ValidationSuccessful || v.ValidationStatus == ValidationFailed || v.ValidationStatus == ValidationTimedOut
}

// UserValidation is what a run records of its user's validation.
type UserValidation struct {
	// Function is the validation function's name or ARN.
	Function string `json:"function"`
	// Status is VALIDATING while its verdict is awaited, then SUCCESSFUL,
	// FAILED or TIMED_OUT; Message says why.
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
	// InvokedAt is when the function was invoked, ReportedAt when its
	// verdict came, and Deadline the end of the validation window.
	InvokedAt  time.Time  `json:"invokedAt"`
	ReportedAt *time.Time `json:"reportedAt,omitempty"`
	Deadline   time.Time  `json:"deadline"`
}

// HookEvent is what a validation function receives: an EventBridge event.
type HookEvent struct {
	Version    string     `json:"version"`
	ID         string     `json:"id"`
	DetailType string     `json:"detail-type"`
	Source     string     `json:"source"`
	Time       time.Time  `json:"time"`
	Resources  []string   `json:"resources"`
	Detail     HookDetail `json:"detail"`
}

// HookDetail is the event's detail: AWS Backup's restore job fields and
// bucketvault's.
type HookDetail struct {
	RestoreJobID           string    `json:"restoreJobId"`
	Status                 string    `json:"status"`
	ResourceType           string    `json:"resourceType"`
	CreatedResourceArn     string    `json:"createdResourceArn"`
	SourceResourceArn      string    `json:"sourceResourceArn"`
	RestoreTestingPlanName string    `json:"restoreTestingPlanName,omitempty"`
	BackupSizeInBytes      int64     `json:"backupSizeInBytes"`
	CreationDate           time.Time `json:"creationDate"`
	CompletionDate         time.Time `json:"completionDate"`
	// bucketvault's: the vault, the run (its id names it for
	// PutValidationResult), what was restored and until when the restored
	// bucket is kept, and bucketvault's own validation verdict.
	Vault               string            `json:"vault"`
	Bucket              string            `json:"bucket"`
	TargetBucket        string            `json:"targetBucket"`
	RunID               string            `json:"runId"`
	RecoveryPointType   RecoveryPointType `json:"recoveryPointType"`
	RecoveryPointID     string            `json:"recoveryPointId,omitempty"`
	RestoredAsOf        time.Time         `json:"restoredAsOf"`
	Objects             int64             `json:"objects"`
	ValidationWindowEnd time.Time         `json:"validationWindowEnd"`
	BucketvaultVerdict  string            `json:"bucketvaultVerdict,omitempty"`
}

// Hook invokes a user's validation function.
type Hook interface {
	// Invoke invokes function with e and returns the verdict it gave
	// (VALIDATING when it gave none yet); an error is an invocation that
	// failed, which makes the validation FAILED.
	Invoke(ctx context.Context, function string, e HookEvent) (Verdict, error)
}

// LambdaInvoker is the Lambda API a LambdaHook calls.
type LambdaInvoker interface {
	Invoke(ctx context.Context, in *lambda.InvokeInput, opts ...func(*lambda.Options)) (*lambda.InvokeOutput, error)
}

// LambdaHook invokes validation functions with Lambda's Invoke
// (RequestResponse): the function's answer is its verdict.
type LambdaHook struct{ Lambda LambdaInvoker }

// Invoke implements Hook.
func (h LambdaHook) Invoke(ctx context.Context, function string, e HookEvent) (Verdict, error) {
	if h.Lambda == nil {
		return Verdict{}, errors.New("no Lambda client to invoke the validation function with")
	}
	payload, err := json.Marshal(e)
	if err != nil {
		return Verdict{}, err
	}
	out, err := h.Lambda.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String(function), InvocationType: ltypes.InvocationTypeRequestResponse, Payload: payload})
	if err != nil {
		return Verdict{}, fmt.Errorf("invoke the validation function %s: %w", function, err)
	}
	if out.FunctionError != nil {
		return Verdict{}, fmt.Errorf("the validation function %s failed (%s): %s", function, aws.ToString(out.FunctionError), clip(string(out.Payload), 400))
	}
	return ParseVerdict(out.Payload)
}

// ParseVerdict reads a validation function's answer: a Verdict (its
// field names in any case), or nothing (null, {}, empty): VALIDATING,
// the verdict to come through PutValidationResult.
func ParseVerdict(payload []byte) (Verdict, error) {
	s := strings.TrimSpace(string(payload))
	if s == "" || s == "null" || s == "{}" {
		return Verdict{ValidationStatus: ValidationValidating}, nil
	}
	var v Verdict // encoding/json matches field names case-insensitively
	if err := json.Unmarshal(payload, &v); err != nil {
		return Verdict{}, fmt.Errorf("the validation function's answer %s is not a verdict ({\"ValidationStatus\": \"SUCCESSFUL\"|\"FAILED\", \"ValidationStatusMessage\": \"...\"}): %v", clip(s, 200), err)
	}
	return normalizeVerdict(v)
}

// normalizeVerdict checks a validation function's verdict: its status in
// any case, none meaning VALIDATING.
func normalizeVerdict(v Verdict) (Verdict, error) {
	v.ValidationStatus = strings.ToUpper(strings.TrimSpace(v.ValidationStatus))
	switch v.ValidationStatus {
	case "":
		v.ValidationStatus = ValidationValidating
	case ValidationSuccessful, ValidationFailed, ValidationTimedOut, ValidationValidating:
	default:
		return Verdict{}, fmt.Errorf("the validation function's ValidationStatus %q: want SUCCESSFUL, FAILED, TIMED_OUT or VALIDATING", v.ValidationStatus)
	}
	return v, nil
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// PutValidationResult records a user's verdict on a restore test run, as
// AWS Backup's PutRestoreValidationResult: the run's workflow takes it
// while it awaits one (until the validation window ends), and so does the
// sweeper when the workflow stopped. A run that is not awaiting a verdict
// refuses it, and so does a run with a final verdict reported already (it
// is written once). The verdict is written, then the run's record marks
// it reported over the version read (If-Match), so whoever ends the run
// afterwards reads the verdict; a run that ended in between without it
// refuses it (InvalidRunError), and the verdict written does not count.
func PutValidationResult(ctx context.Context, v *vault.Vault, bucket, runID string, verdict Verdict) error {
	verdict.ValidationStatus = strings.ToUpper(verdict.ValidationStatus)
	if verdict.ValidationStatus != ValidationSuccessful && verdict.ValidationStatus != ValidationFailed && verdict.ValidationStatus != ValidationValidating {
		return &InvalidRunError{Reason: fmt.Sprintf("ValidationStatus %q: want SUCCESSFUL, FAILED or VALIDATING", verdict.ValidationStatus)}
	}
	run, err := loadRun(ctx, v, bucket, runID)
	if err != nil {
		if s3x.IsNotFound(err) {
			return &InvalidRunError{Reason: fmt.Sprintf("vault %s has no restore test %s of s3://%s", v.Bucket, runID, bucket)}
		}
		return err
	}
	if !awaiting(run) {
		return notAwaiting(run)
	}
	if err := putVerdict(ctx, v, run, verdict); err != nil {
		return err
	}
	at := time.Now().UTC()
	_, err = update(ctx, v, run, func() (bool, error) {
		if !awaiting(run) {
			return false, nil
		}
		if verdict.Final() {
			run.UserValidation.ReportedAt = &at
		} else {
			run.UserValidation.Message = verdict.ValidationStatusMessage
		}
		return true, nil
	})
	switch {
	case err != nil:
		return err
	case awaiting(run) || verdict.Final() && run.UserValidation.Status == verdict.ValidationStatus:
		return nil // recorded; or the run ended with this verdict
	}
	return &InvalidRunError{Reason: fmt.Sprintf("restore test %s ended %s before it could take the verdict (%s): the verdict does not count", runID, run.Status, run.StatusMessage)}
}

// awaiting says whether a run awaits its validation function's verdict.
func awaiting(run *Run) bool {
	return run.Status == StatusValidating && run.UserValidation != nil && run.UserValidation.Status == ValidationValidating
}

func notAwaiting(run *Run) error {
	state := "has no validation function"
	switch {
	case run.UserValidation != nil && run.UserValidation.Status != ValidationValidating:
		state = "is no longer awaiting a verdict (" + run.UserValidation.Status + ")"
	case run.UserValidation != nil:
		state = "is no longer awaiting a verdict (it ended " + run.Status + ")"
	}
	return &InvalidRunError{Reason: fmt.Sprintf("restore test %s %s", run.ID, state)}
}

// putVerdict writes a run's reported verdict: created once
// (If-None-Match), or over a VALIDATING one (If-Match); a final verdict
// there already refuses another.
func putVerdict(ctx context.Context, v *vault.Vault, run *Run, verdict Verdict) error {
	key := vault.RestoreTestVerdictKey(run.Bucket, run.ID)
	for attempt := 1; ; attempt++ {
		var cur Verdict
		etag, err := v.GetJSONETag(ctx, key, &cur)
		switch {
		case s3x.IsNotFound(err):
			etag = ""
		case err != nil:
			return fmt.Errorf("read the verdict of restore test %s: %w", run.ID, err)
		case cur.Final():
			return &InvalidRunError{Reason: fmt.Sprintf("restore test %s has a verdict reported already (%s): a verdict is given once", run.ID, cur.ValidationStatus)}
		}
		_, err = v.PutJSONIf(ctx, key, verdict, etag)
		if err == nil || !vault.IsConflict(err) || attempt == updateAttempts {
			return err
		}
	}
}

// InvalidRunError refuses a request about a restore test run.
type InvalidRunError struct{ Reason string }

func (e *InvalidRunError) Error() string { return e.Reason }

// reportedVerdict reads the verdict PutValidationResult recorded for a
// run (ok false: none yet).
func reportedVerdict(ctx context.Context, v *vault.Vault, run *Run) (Verdict, bool, error) {
	var verdict Verdict
	err := v.GetJSON(ctx, vault.RestoreTestVerdictKey(run.Bucket, run.ID), &verdict)
	if s3x.IsNotFound(err) {
		return verdict, false, nil
	}
	if err != nil {
		return verdict, false, err
	}
	return verdict, verdict.Final(), nil
}

// hookEvent is the event a run's validation function receives.
func hookEvent(run *Run) HookEvent {
	completed := run.StartedAt.Add(time.Duration(run.RestoreSeconds * float64(time.Second)))
	return HookEvent{
		Version: "0", ID: run.ID, DetailType: notify.DetailTypeRestore, Source: notify.Source, Time: time.Now().UTC(),
		Resources: []string{"arn:aws:s3:::" + run.TargetBucket},
		Detail: HookDetail{
			RestoreJobID: run.RestoreJobID, Status: "COMPLETED", ResourceType: "S3",
			CreatedResourceArn: "arn:aws:s3:::" + run.TargetBucket, SourceResourceArn: "arn:aws:s3:::" + run.Bucket,
			RestoreTestingPlanName: run.PlanName, BackupSizeInBytes: run.Bytes, CreationDate: run.StartedAt, CompletionDate: completed,
			Vault: run.Vault, Bucket: run.Bucket, TargetBucket: run.TargetBucket, RunID: run.ID,
			RecoveryPointType: run.Type, RecoveryPointID: run.RecoveryPointID, RestoredAsOf: run.At, Objects: run.Objects,
			ValidationWindowEnd: run.DeleteAfter, BucketvaultVerdict: verdictOf(run),
		},
	}
}

func verdictOf(run *Run) string {
	if run.Validation == nil {
		return ""
	}
	return run.Validation.Verdict
}
