package keyhold

import (
	"errors"
	"fmt"
)

// Error codes. They follow the codes the real services answer with, so that
// the official Azure SDKs and scripts written against Azure recognise them.
// The http package maps each to an HTTP status in one table.
const (
	// Request problems (400).
	CodeBadRequest            = "BadRequest"
	CodeInvalidRequestContent = "InvalidRequestContent"
	CodeInvalidLocation       = "LocationNotAvailableForResourceType"
	CodeInvalidSKU            = "InvalidEnvironmentSku"
	CodeInvalidName           = "InvalidResourceName"

	// Size (413).
	CodeRequestTooLarge = "RequestEntityTooLarge"

	// Authentication (401).
	CodeUnauthorized         = "Unauthorized"
	CodeInvalidToken         = "InvalidAuthenticationToken"
	CodeExpiredToken         = "ExpiredAuthenticationToken"
	CodeInvalidClient        = "invalid_client"
	CodeUnsupportedGrantType = "unsupported_grant_type"
	CodeInvalidScope         = "invalid_scope"

	// Authorization (403).
	CodeForbidden = "Forbidden"

	// Locked environments (403).
	// CodeEnvironmentLocked: the environment's customer-managed key is not
	// accessible (access revoked); an administrator re-enables it once access
	// is restored. 403, as the refusal comes from the key's owner.
	CodeEnvironmentLocked = "EnvironmentLocked"

	// Missing things (404).
	CodeNotFound            = "NotFound"
	CodeEnvironmentNotFound = "EnvironmentNotFound"
	CodeRowNotFound         = "RowNotFound"
	CodeFileNotFound        = "FileNotFound"

	// State conflicts (409).
	CodeConflict            = "Conflict"
	CodeEnvironmentDisabled = "EnvironmentDisabled"

	// Resource manager and Key Vault codes, as the real services answer.
	CodeResourceNotFound                = "ResourceNotFound"                // 404
	CodeResourceGroupNotFound           = "ResourceGroupNotFound"           // 404
	CodeMissingSubscriptionRegistration = "MissingSubscriptionRegistration" // 409
	CodeKeyNotFound                     = "KeyNotFound"                     // 404
	CodeVaultNotFound                   = "VaultNotFound"                   // 404
	CodeBadParameter                    = "BadParameter"                    // 400
	CodeNotSupported                    = "NotSupported"                    // 400
	CodeAuthorizationFailed             = "AuthorizationFailed"             // 403, ARM's refusal

	// Server side (500, 503).
	CodeInternal            = "InternalServerError"
	CodeServiceUnavailable  = "ServiceUnavailable"
	CodeKeyVaultUnavailable = "KeyVaultUnavailable"

	// CodeRecordIntegrity: a stored record that a custody decision rests on
	// (a key version, a key, a vault, an enterprise policy's binding) fails
	// its integrity seal under the master key: it was changed outside
	// Keyhold. Nothing acts on it. 500: the fault is the server's data, not
	// the request.
	CodeRecordIntegrity = "RecordIntegrityFailed"
)

// Inner error codes that travel with CodeForbidden, as Key Vault sends them
// in "innererror".
const (
	InnerForbiddenByRbac     = "ForbiddenByRbac"
	InnerAccessDenied        = "AccessDenied"
	InnerKeyDisabled         = "KeyDisabled"
	InnerForbiddenByFirewall = "ForbiddenByFirewall"
)

// Error is Keyhold's error. Code and Message go to the client; Err, the cause,
// stays on the server (it is logged, never sent). Message says what was wrong
// and how to fix it, and never holds a secret.
//
// Inner is an optional inner error code, as Key Vault answers
// {"error":{"code":"Forbidden","innererror":{"code":"ForbiddenByRbac"}}}.
type Error struct {
	Code    string
	Inner   string
	Message string
	Err     error
}

// Error returns a server-side description, cause included.
func (e *Error) Error() string {
	s := e.Code + ": " + e.Message
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// WithCause returns a copy of e that carries err as its server-side cause.
func (e *Error) WithCause(err error) *Error {
	c := *e
	c.Err = err
	return &c
}

// ErrorCode returns the code of the first *Error in err's chain,
// CodeInternal for any other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// ErrorMessage returns the client-facing message of the first *Error in err's
// chain, and a generic message for any other error, whose text may hold
// server details.
func ErrorMessage(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Message
	}
	return "An internal error occurred. The server log has the details; retry, and report it if it persists."
}
