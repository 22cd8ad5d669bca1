package keyhold

import (
	"errors"
	"fmt"
	"strconv"
)

// Error codes. They follow the codes the real services answer with, so that
// the official Azure SDKs and scripts written against Azure recognise them.
// Every code Keyhold answers with is declared here, in this one file, and
// has a Class in classes below: the class says what kind of failure it is,
// and the http package derives the HTTP status from the class. A code
// without a class fails TestEveryCodeHasAClass.
const (
	// Request problems (ClassInvalid, 400).
	CodeBadRequest            = "BadRequest"
	CodeInvalidRequestContent = "InvalidRequestContent"
	CodeInvalidLocation       = "LocationNotAvailableForResourceType"
	CodeInvalidSKU            = "InvalidEnvironmentSku"
	CodeInvalidName           = "InvalidResourceName"
	CodeBadParameter          = "BadParameter" // Key Vault's
	CodeNotSupported          = "NotSupported"
	// CodeInvalidTemplate is ARM's code for a template or its parameters
	// that can't be deployed: a syntax error, an unsupported expression or
	// resource type, a missing parameter.
	CodeInvalidTemplate = "InvalidTemplate"
	// CodeInvalidFlowDefinition: a flow's definition (the Workflow
	// Definition Language JSON) uses a construct, function or expression
	// Keyhold doesn't run, or is malformed (a runAfter cycle, a reference to
	// a missing action); the message names the construct and its JSON path.
	CodeInvalidFlowDefinition = "InvalidFlowDefinition"

	// OAuth2's codes at the token endpoint (RFC 6749 section 5.2).
	CodeUnsupportedGrantType = "unsupported_grant_type" // 400
	CodeInvalidScope         = "invalid_scope"          // 400
	// CodeInvalidRequest: a malformed token request (400).
	CodeInvalidRequest = "invalid_request"
	// CodeInvalidGrant: wrong resource owner credentials; Entra ID answers
	// a wrong user name or password with it (400).
	CodeInvalidGrant = "invalid_grant"
	// CodeInvalidClient: wrong client credentials (401).
	CodeInvalidClient = "invalid_client"
	// CodeSignInLocked: an account or source is locked out after failed
	// sign-ins (429). Its Inner is the OAuth2 error to answer with.
	CodeSignInLocked = "sign_in_locked"
	// CodeInvalidTenant: the tenant named in an identity endpoint's path
	// does not exist (400), as Entra ID answers (AADSTS90002).
	CodeInvalidTenant = "invalid_tenant"
	// The device code grant's answers while a person has not finished
	// signing in (RFC 8628 section 3.5), all 400: the client keeps polling
	// on CodeAuthorizationPending, polls slower on CodeSlowDown, and stops
	// on CodeExpiredDeviceCode (the code expired: start again) and
	// CodeAccessDenied (the person declined).
	CodeAuthorizationPending = "authorization_pending"
	CodeSlowDown             = "slow_down"
	CodeExpiredDeviceCode    = "expired_token"
	CodeAccessDenied         = "access_denied"

	// Authentication (ClassUnauthorized, 401).
	CodeUnauthorized = "Unauthorized"
	CodeInvalidToken = "InvalidAuthenticationToken"
	CodeExpiredToken = "ExpiredAuthenticationToken"

	// Authorization (ClassForbidden, 403).
	CodeForbidden           = "Forbidden"
	CodeAuthorizationFailed = "AuthorizationFailed" // ARM's refusal

	// CodeEnvironmentLocked: the environment's customer-managed key is not
	// accessible (access revoked); an administrator re-enables it once access
	// is restored. ClassLocked, 403, as the refusal comes from the key's
	// owner (423 is WebDAV-only).
	CodeEnvironmentLocked = "EnvironmentLocked"

	// Missing things (ClassNotFound, 404).
	CodeNotFound              = "NotFound"
	CodeEnvironmentNotFound   = "EnvironmentNotFound"
	CodeRowNotFound           = "RowNotFound"
	CodeFileNotFound          = "FileNotFound"
	CodeResourceNotFound      = "ResourceNotFound"      // ARM's
	CodeResourceGroupNotFound = "ResourceGroupNotFound" // ARM's
	CodeKeyNotFound           = "KeyNotFound"           // Key Vault's
	CodeVaultNotFound         = "VaultNotFound"         // Key Vault's
	// CodeBackupNotFound: no backup with that id in that environment.
	CodeBackupNotFound = "BackupNotFound"
	// Flows (issue 15): no flow, run or connection of that name in that
	// environment.
	CodeFlowNotFound       = "FlowNotFound"
	CodeFlowRunNotFound    = "WorkflowRunNotFound" // Logic Apps'
	CodeConnectionNotFound = "ConnectionNotFound"
	// CodePreMigrationRunsExpired: the run history kept from before an
	// environment's link to a customer-managed key (issue 16) is past its
	// 30 days and is being, or has been, crypto-shredded.
	CodePreMigrationRunsExpired = "PreMigrationRunsExpired"

	// State conflicts (ClassConflict, 409).
	CodeConflict                        = "Conflict"
	CodeEnvironmentDisabled             = "EnvironmentDisabled"
	CodeMissingSubscriptionRegistration = "MissingSubscriptionRegistration" // ARM's
	// CodeCMKFlowEnvironmentsLimit: linking an environment that has flows
	// would put the tenant over its limit of customer-managed-key
	// environments with flows (spec 004: 25 by default; the platform
	// operator raises it, keyhold serve --cmk-flow-environments-limit).
	CodeCMKFlowEnvironmentsLimit = "CmkFlowEnvironmentsLimitReached"
	// CodeFlowsMigrating: a flow can't be created or updated while its
	// environment's flows move to (or back from) a customer-managed key
	// (spec 004: "creation and update of flows are blocked during
	// migration"); try again when the operation ends.
	CodeFlowsMigrating = "FlowsMigrationInProgress"
	// CodeConnectionUnauthenticated: an OAuth connection's grant no longer
	// redeems (its principal signed out everywhere, changed their
	// password or was removed; the grant was revoked or expired; or the
	// connection predates grants): its owner must re-authenticate it.
	CodeConnectionUnauthenticated = "ConnectionUnauthenticated"

	// The HTTP exchange itself, as Azure Resource Manager names them.
	// CodeMethodNotAllowed: the path exists but not with this method (405).
	CodeMethodNotAllowed = "MethodNotAllowed"
	// CodeRequestTimeout: the client sent its body, or read its answer,
	// too slowly (408).
	CodeRequestTimeout = "RequestTimeout"
	// CodeRequestTooLarge: the body is over the route's limit (413).
	CodeRequestTooLarge = "RequestEntityTooLarge"
	// CodeUnsupportedMediaType: the body's Content-Type is not accepted by
	// the route, e.g. a form body on a JSON API (415).
	CodeUnsupportedMediaType = "UnsupportedMediaType"

	// Server side (ClassInternal 500, ClassUnavailable 503).
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
// in "innererror". They are never an Error's Code, so they have no class.
const (
	InnerForbiddenByRbac     = "ForbiddenByRbac"
	InnerAccessDenied        = "AccessDenied"
	InnerKeyDisabled         = "KeyDisabled"
	InnerForbiddenByFirewall = "ForbiddenByFirewall"
)

// Class is the kind of failure an error code reports. Callers branch on the
// class (IsNotFound, IsConflict, …) rather than on lists of codes, and the
// http package derives a code's HTTP status from its class alone.
type Class int

// Classes. The zero value is ClassInternal, so that a code nobody
// classified is a server fault.
const (
	ClassInternal             Class = iota // 500: the server's fault
	ClassInvalid                           // 400: the request is wrong
	ClassUnauthorized                      // 401: no or bad credentials
	ClassForbidden                         // 403: the caller may not
	ClassLocked                            // 403: the key's owner revoked access
	ClassNotFound                          // 404
	ClassMethodNotAllowed                  // 405
	ClassTimeout                           // 408: the client was too slow
	ClassConflict                          // 409: the state does not allow it
	ClassTooLarge                          // 413
	ClassUnsupportedMediaType              // 415
	ClassTooManyRequests                   // 429: throttled or locked out
	ClassUnavailable                       // 503: try again later
)

var classNames = [...]string{
	ClassInternal:             "internal",
	ClassInvalid:              "invalid",
	ClassUnauthorized:         "unauthorized",
	ClassForbidden:            "forbidden",
	ClassLocked:               "locked",
	ClassNotFound:             "not found",
	ClassMethodNotAllowed:     "method not allowed",
	ClassTimeout:              "timeout",
	ClassConflict:             "conflict",
	ClassTooLarge:             "too large",
	ClassUnsupportedMediaType: "unsupported media type",
	ClassTooManyRequests:      "too many requests",
	ClassUnavailable:          "unavailable",
}

func (c Class) String() string {
	if c >= 0 && int(c) < len(classNames) {
		return classNames[c]
	}
	return "Class(" + strconv.Itoa(int(c)) + ")"
}

// classes is the registry of codes: every Code constant above, with its
// class.
var classes = map[string]Class{
	CodeBadRequest:            ClassInvalid,
	CodeInvalidRequestContent: ClassInvalid,
	CodeInvalidLocation:       ClassInvalid,
	CodeInvalidSKU:            ClassInvalid,
	CodeInvalidName:           ClassInvalid,
	CodeBadParameter:          ClassInvalid,
	CodeNotSupported:          ClassInvalid,
	CodeInvalidTemplate:       ClassInvalid,
	CodeInvalidFlowDefinition: ClassInvalid,
	CodeUnsupportedGrantType:  ClassInvalid,
	CodeInvalidScope:          ClassInvalid,
	CodeInvalidRequest:        ClassInvalid,
	CodeInvalidGrant:          ClassInvalid,
	CodeInvalidTenant:         ClassInvalid,
	CodeAuthorizationPending:  ClassInvalid,
	CodeSlowDown:              ClassInvalid,
	CodeExpiredDeviceCode:     ClassInvalid,
	CodeAccessDenied:          ClassInvalid,

	CodeInvalidClient: ClassUnauthorized,
	CodeUnauthorized:  ClassUnauthorized,
	CodeInvalidToken:  ClassUnauthorized,
	CodeExpiredToken:  ClassUnauthorized,

	CodeForbidden:           ClassForbidden,
	CodeAuthorizationFailed: ClassForbidden,
	CodeEnvironmentLocked:   ClassLocked,

	CodeNotFound:                ClassNotFound,
	CodeEnvironmentNotFound:     ClassNotFound,
	CodeRowNotFound:             ClassNotFound,
	CodeFileNotFound:            ClassNotFound,
	CodeResourceNotFound:        ClassNotFound,
	CodeResourceGroupNotFound:   ClassNotFound,
	CodeKeyNotFound:             ClassNotFound,
	CodeVaultNotFound:           ClassNotFound,
	CodeBackupNotFound:          ClassNotFound,
	CodeFlowNotFound:            ClassNotFound,
	CodeFlowRunNotFound:         ClassNotFound,
	CodeConnectionNotFound:      ClassNotFound,
	CodePreMigrationRunsExpired: ClassNotFound,

	CodeConflict:                        ClassConflict,
	CodeEnvironmentDisabled:             ClassConflict,
	CodeMissingSubscriptionRegistration: ClassConflict,
	CodeCMKFlowEnvironmentsLimit:        ClassConflict,
	CodeFlowsMigrating:                  ClassConflict,
	CodeConnectionUnauthenticated:       ClassConflict,

	CodeMethodNotAllowed:     ClassMethodNotAllowed,
	CodeRequestTimeout:       ClassTimeout,
	CodeRequestTooLarge:      ClassTooLarge,
	CodeUnsupportedMediaType: ClassUnsupportedMediaType,
	CodeSignInLocked:         ClassTooManyRequests,

	CodeInternal:            ClassInternal,
	CodeRecordIntegrity:     ClassInternal,
	CodeServiceUnavailable:  ClassUnavailable,
	CodeKeyVaultUnavailable: ClassUnavailable,
}

// ClassOf returns the class of code; ClassInternal for a code that is not
// one of Keyhold's.
func ClassOf(code string) Class { return classes[code] }

// Codes returns every error code Keyhold declares, in no order.
func Codes() []string {
	out := make([]string, 0, len(classes))
	for c := range classes {
		out = append(out, c)
	}
	return out
}

// ErrorClass returns the class of err's code (see ErrorCode): ClassInternal
// for an error that is not an *Error. Only meaningful for a non-nil err.
func ErrorClass(err error) Class { return ClassOf(ErrorCode(err)) }

// isClass reports whether err is non-nil and of class c.
func isClass(err error, c Class) bool { return err != nil && ErrorClass(err) == c }

// IsNotFound reports whether err says that something does not exist,
// whichever service's code it has (NotFound, ResourceNotFound,
// KeyNotFound, …).
func IsNotFound(err error) bool { return isClass(err, ClassNotFound) }

// IsConflict reports whether err refuses a request that the current state
// does not allow.
func IsConflict(err error) bool { return isClass(err, ClassConflict) }

// IsForbidden reports whether err refuses a caller that may not do what it
// asked (not a locked environment: see IsLocked).
func IsForbidden(err error) bool { return isClass(err, ClassForbidden) }

// IsLocked reports whether err refuses an environment whose key's owner
// revoked access.
func IsLocked(err error) bool { return isClass(err, ClassLocked) }

// IsInvalid reports whether err refuses a malformed or unacceptable
// request.
func IsInvalid(err error) bool { return isClass(err, ClassInvalid) }

// IsUnauthorized reports whether err refuses missing or bad credentials.
func IsUnauthorized(err error) bool { return isClass(err, ClassUnauthorized) }

// IsTooManyRequests reports whether err refuses a throttled caller.
func IsTooManyRequests(err error) bool { return isClass(err, ClassTooManyRequests) }

// IsUnavailable reports whether err is a passing failure worth retrying.
func IsUnavailable(err error) bool { return isClass(err, ClassUnavailable) }

// IsInternal reports whether err is a server fault, including any error
// that is not an *Error.
func IsInternal(err error) bool { return isClass(err, ClassInternal) }

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
