// Package keyprovider is how the platform reaches a root key held in a key
// vault: wrap and unwrap an environment key under a customer's key
// (RSA-OAEP-256), and probe whether the platform may still use that key.
//
// A Provider is a keyhold.KeyWrapper and a keyhold.KeyProber. Two
// implementations:
//
//   - Builtin calls Keyhold's own vault in process, as one identity (an
//     enterprise policy's managed identity), as a trusted platform
//     service (keyhold.Origin.Internal) for the vault's firewall.
//   - Azure speaks the Azure Key Vault REST API through the official azkeys
//     SDK, so the key may live in a vault on another Keyhold server or in a
//     real Azure Key Vault. NewFederated makes one that signs in to the
//     customer's directory as the app whose federated credential trusts
//     the platform's assertion for the policy's identity (federated.go):
//     the key leaves the operator's hands, and no secret is stored. They
//     are in every build, for the policies that name an external vault
//     (issue 13); their tests carry the keyhold_azure tag, which
//     scripts/test.sh passes.
//
// # Errors
//
// Both answer *keyhold.Error values with the codes Key Vault answers, so
// that a caller can tell a revocation from a transient fault:
//
//   - keyhold.CodeForbidden with an inner code: the identity lost its role
//     or access policy (keyhold.InnerForbiddenByRbac, InnerAccessDenied),
//     the key version is disabled or expired (InnerKeyDisabled), the
//     vault's firewall refuses the platform (InnerForbiddenByFirewall);
//   - keyhold.CodeKeyNotFound, keyhold.CodeVaultNotFound: the key or vault
//     is gone (deleted);
//   - keyhold.CodeBadParameter: a malformed key id, or a ciphertext that
//     does not decrypt under the key version named;
//   - keyhold.CodeKeyVaultUnavailable: the vault could not answer (5xx,
//     429, 408, no answer in time, connection refused or dropped,
//     unreachable): retry later, nothing was revoked. The message says
//     which.
package keyprovider

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/keyhold/keyhold"
)

// Provider wraps and unwraps under root keys in a key vault, and probes
// access to them. Implementations are safe for concurrent use.
type Provider interface {
	keyhold.KeyWrapper
	keyhold.KeyProber
}

// Algorithm is the key-wrapping algorithm every provider uses.
const Algorithm = "RSA-OAEP-256"

// probeSize is the size of the random value Probe wraps and unwraps: that
// of an environment key.
const probeSize = 32

// probeRoundTrip wraps a random value under keyID with p and unwraps it
// again, checking that the key still serves both operations.
func probeRoundTrip(ctx context.Context, p keyhold.KeyWrapper, keyID string) error {
	value := make([]byte, probeSize)
	rand.Read(value)
	kid, ct, err := p.Wrap(ctx, keyID, value)
	if err != nil {
		return err
	}
	got, err := p.Unwrap(ctx, kid, ct)
	if err != nil {
		return err
	}
	defer clear(got)
	if subtle.ConstantTimeCompare(got, value) != 1 {
		return keyhold.Errorf(keyhold.CodeKeyVaultUnavailable, "the key vault unwrapped a probe value of key %s to something else: it is not working correctly", kid)
	}
	return nil
}

// disabled is the error for a key version that is not enabled, as Key
// Vault refuses it.
func disabled(kid string) error {
	return &keyhold.Error{Code: keyhold.CodeForbidden, Inner: keyhold.InnerKeyDisabled,
		Message: "key " + kid + " is disabled: enable it in its vault (or restore the version the policy names)"}
}

// needVersion refuses an unversioned kid for Unwrap: the platform stores
// the versioned kid that Wrap returned and unwraps with exactly it.
func needVersion(kid string) error {
	return keyhold.Errorf(keyhold.CodeBadParameter, "key id %q has no version: unwrap with the versioned kid that Wrap returned", kid)
}

// unavailable turns a server-side failure of the vault into
// CodeKeyVaultUnavailable, keeping the cause.
func unavailable(err error) error {
	if err == nil {
		return nil
	}
	var ke *keyhold.Error
	if errors.As(err, &ke) {
		switch ke.Code {
		case keyhold.CodeInternal, keyhold.CodeServiceUnavailable, keyhold.CodeKeyVaultUnavailable:
		default:
			return err
		}
		msg := ke.Message
		if ke.Code == keyhold.CodeInternal {
			msg = "the key vault failed to answer: " + msg
		}
		return &keyhold.Error{Code: keyhold.CodeKeyVaultUnavailable, Inner: ke.Inner, Message: msg, Err: err}
	}
	return &keyhold.Error{Code: keyhold.CodeKeyVaultUnavailable, Message: noAnswer(err), Err: err}
}

// noAnswer says why a request got no answer from the vault, for an audit
// entry or an operator: it did not answer in time, it refused the
// connection, it closed the connection (a vault going down under an open
// one), or it could not be reached otherwise (DNS, TLS). Each is a
// transient fault.
func noAnswer(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		return "the key vault did not answer in time: retry later"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "the key vault refused the connection: retry later"
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET):
		return "the key vault closed the connection before it answered: retry later"
	case errors.Is(err, context.Canceled):
		return "the request to the key vault was cancelled before it answered: retry"
	}
	return "the key vault could not be reached: retry later"
}
