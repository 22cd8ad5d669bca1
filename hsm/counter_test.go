package hsm_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/binary"
	"testing"

	"github.com/google/uuid"
	"github.com/keyhold/keyhold/hsm"
	"github.com/keyhold/keyhold/hsm/hsmtest"
	"github.com/miekg/pkcs11"
)

// counterObjects lists the token's data objects labelled label.
func counterObjects(t *testing.T, tok *hsm.Token, label string) (values []uint64) {
	t.Helper()
	if err := tok.Do(func(ctx *pkcs11.Ctx, sh pkcs11.SessionHandle) error {
		if err := ctx.FindObjectsInit(sh, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_DATA), pkcs11.NewAttribute(pkcs11.CKA_LABEL, label)}); err != nil {
			return err
		}
		hs, _, err := ctx.FindObjects(sh, 16)
		ctx.FindObjectsFinal(sh)
		for _, h := range hs {
			a, err := ctx.GetAttributeValue(sh, h, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil), pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, nil)})
			if err != nil {
				return err
			}
			if len(a[1].Value) != 1 || a[1].Value[0] != 1 {
				t.Errorf("counter object of %q is not private: anyone without the PIN could read or replace it", label)
			}
			values = append(values, binary.BigEndian.Uint64(a[0].Value))
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return values
}

// TestCounter: a counter in the token starts at 0, only ever rises, is
// one object after each raise, is read again by a new login, and a crash
// between a raise's create and its destroy (two objects) still reads the
// larger value.
func TestCounter(t *testing.T) {
	cfg := hsmtest.Token(t)
	tok, err := hsm.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	label, other := "keyhold/hsm-test/counter/"+uuid.NewString(), "keyhold/hsm-test/counter/"+uuid.NewString()
	defer hsmtest.RemoveLabelled(tok, label, other)

	if v, err := tok.Counter(label); err != nil || v != 0 {
		t.Fatalf("a new counter = %d, %v; want 0", v, err)
	}
	for _, step := range []struct{ raise, want uint64 }{{5, 5}, {3, 5}, {5, 5}, {9, 9}} {
		if v, err := tok.RaiseCounter(label, step.raise); err != nil || v != step.want {
			t.Fatalf("RaiseCounter(%d) = %d, %v; want %d", step.raise, v, err, step.want)
		}
		if v, err := tok.Counter(label); err != nil || v != step.want {
			t.Fatalf("Counter after RaiseCounter(%d) = %d, %v; want %d", step.raise, v, err, step.want)
		}
		if got := counterObjects(t, tok, label); len(got) != 1 || got[0] != step.want {
			t.Fatalf("objects after RaiseCounter(%d): %v; want one of %d", step.raise, got, step.want)
		}
	}
	if v, err := tok.Counter(other); err != nil || v != 0 {
		t.Fatalf("another label's counter = %d, %v; want 0", v, err)
	}

	// A raise that stopped after its create: an older, smaller object
	// beside the new one. The larger is the value, and the next raise
	// leaves one object.
	if err := tok.Do(func(ctx *pkcs11.Ctx, sh pkcs11.SessionHandle) error {
		var v [8]byte
		binary.BigEndian.PutUint64(v[:], 7)
		_, err := ctx.CreateObject(sh, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_DATA), pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
			pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true), pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
			pkcs11.NewAttribute(pkcs11.CKA_APPLICATION, "keyhold counter v1"), pkcs11.NewAttribute(pkcs11.CKA_VALUE, v[:])})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if v, err := tok.Counter(label); err != nil || v != 9 {
		t.Fatalf("Counter with a stale object beside = %d, %v; want 9", v, err)
	}
	if v, err := tok.RaiseCounter(label, 10); err != nil || v != 10 {
		t.Fatalf("RaiseCounter(10) = %d, %v", v, err)
	}
	if got := counterObjects(t, tok, label); len(got) != 1 || got[0] != 10 {
		t.Fatalf("objects after the raise: %v; want one of 10", got)
	}

	// Another login to the token (a restart) reads the same value.
	tok2, err := hsm.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer tok2.Close()
	if v, err := tok2.Counter(label); err != nil || v != 10 {
		t.Fatalf("Counter from a second login = %d, %v; want 10", v, err)
	}
}

// BenchmarkCounter: what the BYOK anchor adds to each use of a BYOK key
// (a read of the tenant's counter in the token, and a raise after each
// write of its BYOK state), against the use itself: an RSA-2048
// OAEP-SHA256 decryption in software, the cheapest a BYOK unwrap can be.
//
//	go test -run '^$' -bench Counter ./hsm/
func BenchmarkCounter(b *testing.B) {
	tok, err := hsm.Open(hsmtest.Token(b))
	if err != nil {
		b.Fatal(err)
	}
	defer tok.Close()
	label := "keyhold/hsm-bench/counter/" + uuid.NewString()
	defer hsmtest.RemoveLabelled(tok, label)
	if _, err := tok.RaiseCounter(label, 1); err != nil {
		b.Fatal(err)
	}
	b.Run("read", func(b *testing.B) {
		for b.Loop() {
			if _, err := tok.Counter(label); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("raise", func(b *testing.B) {
		v := uint64(1)
		for b.Loop() {
			v++
			if _, err := tok.RaiseCounter(label, v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("rsa-oaep-decrypt-2048", func(b *testing.B) {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			b.Fatal(err)
		}
		ct, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, &k.PublicKey, make([]byte, 32), nil)
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, err := rsa.DecryptOAEP(sha256.New(), nil, k, ct, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}
