package http

import (
	"testing"

	"github.com/keyhold/keyhold"
)

// pinnedStatuses is every error code's HTTP status as the status table had
// it before the statuses were derived from the codes' classes (issue 9).
// It is written out code by code, not derived, so that a change of class
// that moves a status fails here.
var pinnedStatuses = map[string]int{
	keyhold.CodeBadRequest:            400,
	keyhold.CodeInvalidRequestContent: 400,
	keyhold.CodeInvalidLocation:       400,
	keyhold.CodeInvalidSKU:            400,
	keyhold.CodeInvalidName:           400,
	keyhold.CodeUnsupportedGrantType:  400,
	keyhold.CodeInvalidScope:          400,
	keyhold.CodeBadParameter:          400,
	keyhold.CodeNotSupported:          400,
	keyhold.CodeInvalidTemplate:       400,
	// A flow definition Keyhold can't run (issue 15).
	keyhold.CodeInvalidFlowDefinition: 400,
	"invalid_request":                 400,
	// invalid_grant had no status (so 500) outside the token endpoint,
	// which answers it 400: it has 400 everywhere now.
	keyhold.CodeInvalidGrant: 400,
	// invalid_tenant is new with the OpenID discovery (issue 11).
	keyhold.CodeInvalidTenant: 400,
	// The device code grant's answers (issue 11).
	"authorization_pending": 400,
	"slow_down":             400,
	"expired_token":         400,
	"access_denied":         400,

	keyhold.CodeUnauthorized:  401,
	keyhold.CodeInvalidToken:  401,
	keyhold.CodeExpiredToken:  401,
	keyhold.CodeInvalidClient: 401,

	keyhold.CodeForbidden:           403,
	keyhold.CodeAuthorizationFailed: 403,
	keyhold.CodeEnvironmentLocked:   403,

	keyhold.CodeNotFound:              404,
	keyhold.CodeEnvironmentNotFound:   404,
	keyhold.CodeRowNotFound:           404,
	keyhold.CodeFlowNotFound:          404,
	keyhold.CodeFlowRunNotFound:       404,
	keyhold.CodeConnectionNotFound:    404,
	keyhold.CodeFileNotFound:          404,
	keyhold.CodeResourceNotFound:      404,
	keyhold.CodeResourceGroupNotFound: 404,
	keyhold.CodeKeyNotFound:           404,
	keyhold.CodeVaultNotFound:         404,
	keyhold.CodeBackupNotFound:        404,

	"MethodNotAllowed": 405,

	keyhold.CodeConflict:                        409,
	keyhold.CodeEnvironmentDisabled:             409,
	keyhold.CodeMissingSubscriptionRegistration: 409,
	keyhold.CodeCMKFlowEnvironmentsLimit:        409,
	keyhold.CodeFlowsMigrating:                  409,
	keyhold.CodeConnectionUnauthenticated:       409,
	keyhold.CodePreMigrationRunsExpired:         404,

	"RequestTimeout":            408,
	"sign_in_locked":            429,
	keyhold.CodeRequestTooLarge: 413,
	"UnsupportedMediaType":      415,

	keyhold.CodeInternal:            500,
	keyhold.CodeServiceUnavailable:  503,
	keyhold.CodeKeyVaultUnavailable: 503,
	keyhold.CodeRecordIntegrity:     500,

	"NoSuchCode": 500,
	"":           500,
}

// TestStatusPinned: every code answers with the status it always had, and
// every code declared has a pinned status.
func TestStatusPinned(t *testing.T) {
	for _, code := range keyhold.Codes() {
		if _, ok := pinnedStatuses[code]; !ok {
			t.Errorf("keyhold code %q has no pinned status: add it to pinnedStatuses", code)
		}
	}
	for code, want := range pinnedStatuses {
		if got := StatusOf(code); got != want {
			t.Errorf("StatusOf(%q) = %d, want %d", code, got, want)
		}
	}
}
