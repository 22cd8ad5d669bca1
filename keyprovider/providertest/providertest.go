// Package providertest is the conformance suite of keyprovider.Provider
// implementations: every provider must pass Run, whatever vault it
// reaches.
package providertest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/keyprovider"
)

// Env is one provider acting as one identity, with the means to change,
// from outside, the keys and the access it has.
type Env struct {
	// Provider is the provider under test.
	Provider keyprovider.Provider
	// NewKey creates an RSA key that the provider's identity may get,
	// wrap and unwrap with, and returns its id without a version.
	NewKey func(t *testing.T) string
	// Rotate gives the key a new current version.
	Rotate func(t *testing.T, keyID string)
	// Disable disables the key's current version.
	Disable func(t *testing.T, keyID string)
	// Revoke takes away the identity's access to every key of NewKey
	// (its role assignment, or its access policy).
	Revoke func(t *testing.T)
}

// Run runs the suite. newEnv returns a fresh Env for each test, whose
// identity has access to the keys NewKey makes and to nothing else.
func Run(t *testing.T, newEnv func(t *testing.T) *Env) {
	tests := []struct {
		name string
		fn   func(t *testing.T, e *Env)
	}{
		{"RoundTrip", testRoundTrip},
		{"UnwrapAfterRotation", testUnwrapAfterRotation},
		{"Revoked", testRevoked},
		{"Disabled", testDisabled},
		{"Transplanted", testTransplanted},
		{"BadKeyIDs", testBadKeyIDs},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, newEnv(t)) })
	}
}

func secret(t *testing.T) []byte {
	t.Helper()
	b := make([]byte, 32)
	rand.Read(b)
	return b
}

// wantCode fails t unless err carries code (and inner, if not "").
func wantCode(t *testing.T, what string, err error, code, inner string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s succeeded, want %s %s", what, code, inner)
	}
	var e *keyhold.Error
	if !errors.As(err, &e) {
		t.Fatalf("%s: error %v (%T) is not a *keyhold.Error", what, err, err)
	}
	if e.Code != code || (inner != "" && e.Inner != inner) {
		t.Fatalf("%s: error = %s/%s (%s), want %s/%s", what, e.Code, e.Inner, e.Message, code, inner)
	}
	if e.Message == "" {
		t.Fatalf("%s: error %s has no message", what, e.Code)
	}
}

// versionOf checks that kid is a versioned id of keyID and returns the
// version.
func versionOf(t *testing.T, keyID, kid string) string {
	t.Helper()
	v, ok := strings.CutPrefix(kid, keyID+"/")
	if !ok || v == "" || strings.Contains(v, "/") {
		t.Fatalf("kid %q is not a versioned id of key %q", kid, keyID)
	}
	return v
}

func wrap(t *testing.T, e *Env, keyID string, pt []byte) (string, []byte) {
	t.Helper()
	kid, ct, err := e.Provider.Wrap(context.Background(), keyID, pt)
	if err != nil {
		t.Fatalf("Wrap(%s): %v", keyID, err)
	}
	if kid != keyID { // keyID is versioned, or kid is one of its versions
		versionOf(t, keyID, kid)
	}
	if len(ct) == 0 || bytes.Contains(ct, pt) {
		t.Fatalf("Wrap(%s) returned %d bytes that hold the plaintext", keyID, len(ct))
	}
	return kid, ct
}

func unwrap(t *testing.T, e *Env, kid string, ct, want []byte) {
	t.Helper()
	got, err := e.Provider.Unwrap(context.Background(), kid, ct)
	if err != nil {
		t.Fatalf("Unwrap(%s): %v", kid, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Unwrap(%s) = %x, want %x", kid, got, want)
	}
}

func testRoundTrip(t *testing.T, e *Env) {
	ctx := context.Background()
	keyID := e.NewKey(t)
	if err := e.Provider.Probe(ctx, keyID); err != nil {
		t.Fatalf("Probe of a usable key: %v", err)
	}
	pt := secret(t)
	kid, ct := wrap(t, e, keyID, pt)
	unwrap(t, e, kid, ct, pt)
	// Wrapping is randomized: the same value wraps differently.
	if _, ct2 := wrap(t, e, keyID, pt); bytes.Equal(ct, ct2) {
		t.Fatal("two wraps of the same value are equal: OAEP must be randomized")
	}
	// A versioned key id wraps under that version.
	kid2, ct2 := wrap(t, e, kid, pt)
	if kid2 != kid {
		t.Fatalf("Wrap(%s) used %s", kid, kid2)
	}
	unwrap(t, e, kid2, ct2, pt)
	if err := e.Provider.Probe(ctx, kid); err != nil {
		t.Fatalf("Probe of a versioned key id: %v", err)
	}
}

func testUnwrapAfterRotation(t *testing.T, e *Env) {
	keyID := e.NewKey(t)
	pt := secret(t)
	kid1, ct1 := wrap(t, e, keyID, pt)
	e.Rotate(t, keyID)
	unwrap(t, e, kid1, ct1, pt)
	kid2, ct2 := wrap(t, e, keyID, pt)
	if kid2 == kid1 {
		t.Fatalf("Wrap after rotation still uses %s", kid1)
	}
	unwrap(t, e, kid2, ct2, pt)
	// Each version decrypts only what it wrapped.
	if _, err := e.Provider.Unwrap(context.Background(), kid2, ct1); err == nil {
		t.Fatal("the new version unwrapped what the old one wrapped")
	}
	if err := e.Provider.Probe(context.Background(), kid1); err != nil {
		t.Fatalf("Probe of the old, still enabled version: %v", err)
	}
}

func testRevoked(t *testing.T, e *Env) {
	ctx := context.Background()
	keyID := e.NewKey(t)
	pt := secret(t)
	kid, ct := wrap(t, e, keyID, pt)
	e.Revoke(t)
	_, _, err := e.Provider.Wrap(ctx, keyID, pt)
	wantCode(t, "Wrap after revocation", err, keyhold.CodeForbidden, "")
	_, err = e.Provider.Unwrap(ctx, kid, ct)
	wantCode(t, "Unwrap after revocation", err, keyhold.CodeForbidden, "")
	wantCode(t, "Probe after revocation", e.Provider.Probe(ctx, keyID), keyhold.CodeForbidden, "")
}

func testDisabled(t *testing.T, e *Env) {
	ctx := context.Background()
	keyID := e.NewKey(t)
	pt := secret(t)
	kid, ct := wrap(t, e, keyID, pt)
	e.Disable(t, keyID)
	_, _, err := e.Provider.Wrap(ctx, keyID, pt)
	wantCode(t, "Wrap with a disabled key", err, keyhold.CodeForbidden, keyhold.InnerKeyDisabled)
	_, err = e.Provider.Unwrap(ctx, kid, ct)
	wantCode(t, "Unwrap with a disabled key", err, keyhold.CodeForbidden, keyhold.InnerKeyDisabled)
	wantCode(t, "Probe of a disabled key", e.Provider.Probe(ctx, keyID), keyhold.CodeForbidden, keyhold.InnerKeyDisabled)
}

func testTransplanted(t *testing.T, e *Env) {
	ctx := context.Background()
	keyA, keyB := e.NewKey(t), e.NewKey(t)
	pt := secret(t)
	kidA, ctA := wrap(t, e, keyA, pt)
	kidB, _ := wrap(t, e, keyB, pt)
	// A's ciphertext under B's kid: B can't decrypt it.
	got, err := e.Provider.Unwrap(ctx, kidB, ctA)
	if err == nil || bytes.Equal(got, pt) {
		t.Fatalf("Unwrap(%s) of a ciphertext of %s = %x, %v; want an error", kidB, kidA, got, err)
	}
	wantCode(t, "Unwrap of a transplanted ciphertext", err, keyhold.CodeBadParameter, "")
	// A tampered ciphertext doesn't decrypt either.
	bad := bytes.Clone(ctA)
	bad[len(bad)/2] ^= 1
	if _, err := e.Provider.Unwrap(ctx, kidA, bad); err == nil {
		t.Fatal("a tampered ciphertext unwrapped")
	}
	// And the untouched one still does.
	unwrap(t, e, kidA, ctA, pt)
}

func testBadKeyIDs(t *testing.T, e *Env) {
	ctx := context.Background()
	keyID := e.NewKey(t)
	pt := secret(t)
	_, ct := wrap(t, e, keyID, pt)
	_, err := e.Provider.Unwrap(ctx, keyID, ct)
	wantCode(t, "Unwrap with an unversioned key id", err, keyhold.CodeBadParameter, "")
	_, _, err = e.Provider.Wrap(ctx, "not a key id", pt)
	wantCode(t, "Wrap with a malformed key id", err, keyhold.CodeBadParameter, "")
	missing := keyID[:strings.LastIndex(keyID, "/")+1] + "no-such-key"
	_, _, err = e.Provider.Wrap(ctx, missing, pt)
	wantCode(t, "Wrap with a missing key", err, keyhold.CodeKeyNotFound, "")
	wantCode(t, "Probe of a missing key", e.Provider.Probe(ctx, missing), keyhold.CodeKeyNotFound, "")
}
