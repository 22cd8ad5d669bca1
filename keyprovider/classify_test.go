//go:build keyhold_azure

package keyprovider

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	nethttp "net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/keyhold/keyhold"
)

// vaultAnswer is the SDK's error for an answer of the vault, as azkeys
// returns it: an *azcore.ResponseError over the real response.
func vaultAnswer(t *testing.T, status int, body string) error {
	t.Helper()
	req, err := nethttp.NewRequest("POST", "https://kv.example/keys/k/0123456789abcdef0123456789abcdef/unwrapkey?api-version=7.5", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp := &nethttp.Response{StatusCode: status, Status: fmt.Sprintf("%d %s", status, nethttp.StatusText(status)),
		Header: nethttp.Header{"Content-Type": {"application/json; charset=utf-8"}}, Body: io.NopCloser(strings.NewReader(body)), Request: req}
	return runtime.NewResponseError(resp)
}

// noAnswerError is the error of a request that got no answer, as net/http
// returns it.
func noAnswerError(err error) error {
	return &url.Error{Op: "Post", URL: "https://kv.example/keys/k/unwrapkey", Err: err}
}

// TestAzureFaultClassification: what a vault (or the network in front of it) answers is a
// revocation only when the vault itself refuses with 403 or 404; any
// "not now" status and any missing answer is KeyVaultUnavailable, whatever
// a body says, so that a transient fault never locks an environment.
func TestAzureFaultClassification(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	timeout := &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
	tests := []struct {
		name        string
		err         error
		code, inner string
		says        string // in the message
	}{
		{name: "503 with a Key Vault body", err: vaultAnswer(t, 503, `{"error":{"code":"ServiceUnavailable","message":"try later"}}`),
			code: keyhold.CodeKeyVaultUnavailable, says: "failed (503 ServiceUnavailable): try later"},
		{name: "503 whose body says Forbidden", err: vaultAnswer(t, 503, `{"error":{"code":"Forbidden","message":"x","innererror":{"code":"ForbiddenByRbac"}}}`),
			code: keyhold.CodeKeyVaultUnavailable, says: "503 Forbidden/ForbiddenByRbac"},
		{name: "500 without a body", err: vaultAnswer(t, 500, ``), code: keyhold.CodeKeyVaultUnavailable, says: "500"},
		{name: "502 from a gateway", err: vaultAnswer(t, 502, `<html>bad gateway</html>`), code: keyhold.CodeKeyVaultUnavailable, says: "502"},
		{name: "504 from a gateway", err: vaultAnswer(t, 504, ``), code: keyhold.CodeKeyVaultUnavailable, says: "504"},
		{name: "429 throttled", err: vaultAnswer(t, 429, `{"error":{"code":"Throttled","message":"slow down"}}`), code: keyhold.CodeKeyVaultUnavailable, says: "429 Throttled"},
		{name: "408 request timeout", err: vaultAnswer(t, 408, ``), code: keyhold.CodeKeyVaultUnavailable, says: "408"},
		{name: "timeout of a try", err: noAnswerError(context.DeadlineExceeded), code: keyhold.CodeKeyVaultUnavailable, says: "did not answer in time"},
		{name: "network timeout", err: noAnswerError(timeout), code: keyhold.CodeKeyVaultUnavailable, says: "did not answer in time"},
		{name: "connection refused", err: noAnswerError(refused), code: keyhold.CodeKeyVaultUnavailable, says: "refused the connection"},
		{name: "connection reset", err: noAnswerError(&net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}),
			code: keyhold.CodeKeyVaultUnavailable, says: "closed the connection before it answered"},
		{name: "connection closed", err: noAnswerError(io.ErrUnexpectedEOF), code: keyhold.CodeKeyVaultUnavailable, says: "closed the connection before it answered"},
		{name: "no route", err: noAnswerError(&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.EHOSTUNREACH)}),
			code: keyhold.CodeKeyVaultUnavailable, says: "could not be reached"},
		{name: "cancelled", err: noAnswerError(context.Canceled), code: keyhold.CodeKeyVaultUnavailable, says: "cancelled"},
		{name: "token endpoint down", err: keyhold.Errorf(keyhold.CodeServiceUnavailable, "no answer from the token endpoint"),
			code: keyhold.CodeKeyVaultUnavailable, says: "no answer from the token endpoint"},

		{name: "403 by RBAC", err: vaultAnswer(t, 403, `{"error":{"code":"Forbidden","message":"no role","innererror":{"code":"ForbiddenByRbac"}}}`),
			code: keyhold.CodeForbidden, inner: keyhold.InnerForbiddenByRbac, says: "no role"},
		{name: "403 by the firewall", err: vaultAnswer(t, 403, `{"error":{"code":"Forbidden","message":"client address not allowed","innererror":{"code":"ForbiddenByFirewall"}}}`),
			code: keyhold.CodeForbidden, inner: keyhold.InnerForbiddenByFirewall},
		{name: "403 key disabled", err: vaultAnswer(t, 403, `{"error":{"code":"Forbidden","message":"disabled","innererror":{"code":"KeyDisabled"}}}`),
			code: keyhold.CodeForbidden, inner: keyhold.InnerKeyDisabled},
		{name: "403 without a body", err: vaultAnswer(t, 403, ``), code: keyhold.CodeForbidden},
		{name: "404 key gone", err: vaultAnswer(t, 404, `{"error":{"code":"KeyNotFound","message":"no key k"}}`), code: keyhold.CodeKeyNotFound},
		{name: "404 vault gone", err: vaultAnswer(t, 404, `{"error":{"code":"VaultNotFound","message":"no vault"}}`), code: keyhold.CodeVaultNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := mapError(tt.err)
			var e *keyhold.Error
			if !errors.As(err, &e) {
				t.Fatalf("mapError = %v (%T), want a *keyhold.Error", err, err)
			}
			if e.Code != tt.code || e.Inner != tt.inner {
				t.Fatalf("mapError = %s/%s (%s), want %s/%s", e.Code, e.Inner, e.Message, tt.code, tt.inner)
			}
			if e.Message == "" || !strings.Contains(e.Message, tt.says) {
				t.Fatalf("message %q does not say %q", e.Message, tt.says)
			}
			if !errors.Is(err, tt.err) {
				t.Fatalf("mapError dropped the cause %v", tt.err)
			}
		})
	}
}

// TestAzureFaultTryTimeout: a provider never waits without end for a vault
// that holds the connection open and does not answer.
func TestAzureFaultTryTimeout(t *testing.T) {
	if got := NewAzure(nil, nil).opts.Retry.TryTimeout; got != DefaultTryTimeout {
		t.Errorf("TryTimeout without options = %s, want %s", got, DefaultTryTimeout)
	}
	opts := &azkeys.ClientOptions{}
	if got := NewAzure(nil, opts).opts.Retry.TryTimeout; got != DefaultTryTimeout {
		t.Errorf("TryTimeout with zero options = %s, want %s", got, DefaultTryTimeout)
	}
	opts.Retry.TryTimeout = 2 * time.Second
	if got := NewAzure(nil, opts).opts.Retry.TryTimeout; got != 2*time.Second {
		t.Errorf("TryTimeout = %s, want the 2s given", got)
	}
	if opts.Retry.TryTimeout != 2*time.Second {
		t.Errorf("NewAzure changed the caller's options")
	}
}
