package s3x

import (
	"context"
	"errors"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Code returns the AWS error code of err ("NoSuchKey", "AccessDenied", ...)
// or "" when err carries none.
func Code(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// Status returns the HTTP status code of the response that caused err, or 0.
func Status(err error) int {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.Response != nil {
		return re.Response.StatusCode
	}
	return 0
}

// Header returns a header of the error response that caused err, or "".
// HeadObject of a delete marker answers 405 with the marker's Last-Modified.
func Header(err error, name string) string {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.Response != nil {
		return re.Response.Header.Get(name)
	}
	return ""
}

// IsNotFound reports whether err says the bucket, key or version does not
// exist (HeadObject answers a bare 404 "NotFound", GetObject "NoSuchKey").
func IsNotFound(err error) bool {
	switch Code(err) {
	case "NoSuchKey", "NotFound", "NoSuchVersion", "NoSuchBucket", "NoSuchTagSet", "NoSuchTagSetError":
		return true
	}
	return Status(err) == http.StatusNotFound
}

// IsNoSuchBucket reports whether err says the bucket does not exist.
func IsNoSuchBucket(err error) bool { return Code(err) == "NoSuchBucket" }

// IsDeleteMarker reports whether err is S3's answer to a HEAD or GET of a
// version that is a delete marker (405 with x-amz-delete-marker: true).
func IsDeleteMarker(err error) bool {
	return Header(err, "x-amz-delete-marker") == "true" || Status(err) == http.StatusMethodNotAllowed
}

// IsAccessDenied reports whether err is a permission failure.
func IsAccessDenied(err error) bool {
	switch Code(err) {
	case "AccessDenied", "AllAccessDisabled", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch":
		return true
	}
	return Status(err) == http.StatusForbidden
}

// IsNotImplemented reports whether the server lacks the operation (MinIO and
// object ACLs, for example).
func IsNotImplemented(err error) bool {
	return Code(err) == "NotImplemented" || Status(err) == http.StatusNotImplemented
}

// IsACLNotSupported reports a write of an ACL to a bucket whose Object
// Ownership is BucketOwnerEnforced (ACLs disabled).
func IsACLNotSupported(err error) bool { return Code(err) == "AccessControlListNotSupported" }

// IsPreconditionFailed reports a failed conditional request (If-None-Match).
func IsPreconditionFailed(err error) bool {
	return Code(err) == "PreconditionFailed" || Status(err) == http.StatusPreconditionFailed
}

// IsConflict reports a concurrent conditional write (409).
func IsConflict(err error) bool {
	return Code(err) == "ConditionalRequestConflict" || Status(err) == http.StatusConflict
}

// IsArchived reports that the object is in an archive tier and cannot be read
// or copied until it is restored.
func IsArchived(err error) bool { return Code(err) == "InvalidObjectState" }

// IsSSEC reports that the object is encrypted with a customer-provided key
// (SSE-C), which the service never holds and so cannot copy. A bare 400
// (IsBareBadRequest) is taken for SSE-C, but is also what a HEAD with an
// invalid version id gets: where that matters, ask again with a call that
// has a body (see IsInvalidVersion).
func IsSSEC(err error) bool {
	// A HEAD without the customer key answers 400 Bad Request with no body.
	return Code(err) == "InvalidRequest" && Status(err) == http.StatusBadRequest ||
		Code(err) == "BadRequest" && Status(err) == http.StatusBadRequest
}

// IsBareBadRequest reports a 400 without an error code of its own: the
// answer of HeadObject (which has no body) to both an SSE-C object read
// without its key and an invalid version id.
func IsBareBadRequest(err error) bool {
	return Status(err) == http.StatusBadRequest && (Code(err) == "BadRequest" || Code(err) == "")
}

// IsInvalidVersion reports that a request named a version id that is not
// one at all (400 InvalidArgument, "Invalid version id specified", to a
// GetObject or GetObjectTagging of that version; a well-formed id of no
// version is NoSuchVersion, IsNotFound).
func IsInvalidVersion(err error) bool {
	return Code(err) == "InvalidArgument" && Status(err) == http.StatusBadRequest
}

// IsRetryable reports whether a failed call is worth trying again later: a
// throttle, a timeout, a 5xx or a dropped connection.
func IsRetryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	if retry.IsErrorRetryables(retry.DefaultRetryables).IsErrorRetryable(err).Bool() {
		return true
	}
	return Status(err) >= 500
}
