package crypt

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestNewKey(t *testing.T) {
	a, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	if a.Equal(b) {
		t.Fatal("two new keys are equal")
	}
	if *a.b == [KeySize]byte{} {
		t.Fatal("new key is all zero")
	}
}

func TestNewKeyRandFailure(t *testing.T) {
	old := randReader
	randReader = bytes.NewReader(make([]byte, KeySize-1))
	defer func() { randReader = old }()
	if k, err := NewKey(); err == nil {
		t.Fatalf("NewKey with a failing random source = %v; want an error", k)
	}
}

func TestKeyFromBytes(t *testing.T) {
	for _, n := range []int{0, 16, KeySize - 1, KeySize + 1} {
		t.Run(fmt.Sprintf("%d bytes", n), func(t *testing.T) {
			_, err := KeyFromBytes(make([]byte, n))
			if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("key is %d bytes; want 32", n)) {
				t.Fatalf("KeyFromBytes(%d bytes) error = %v; want one naming the size", n, err)
			}
		})
	}
	t.Run("copies", func(t *testing.T) {
		b := bytes.Repeat([]byte{1}, KeySize)
		k, err := KeyFromBytes(b)
		if err != nil {
			t.Fatal(err)
		}
		clear(b)
		if k.b[0] != 1 {
			t.Fatal("key shares its caller's slice")
		}
	})
}

func TestKeyCloneDestroy(t *testing.T) {
	k := testKey(t, 1)
	c := k.Clone()
	if !c.Equal(k) {
		t.Fatal("clone differs from its original")
	}
	backing := c.b
	c.Destroy()
	if *backing != [KeySize]byte{} {
		t.Fatalf("Destroy left bytes in the backing array: %x", backing[:])
	}
	if !c.Destroyed() || k.Destroyed() {
		t.Fatalf("Destroyed() = %v for the clone, %v for the original; want true, false", c.Destroyed(), k.Destroyed())
	}
	if k.b[0] != 1 {
		t.Fatal("destroying the clone changed the original")
	}
	c.Destroy() // twice is harmless
	if c.Equal(c) {
		t.Fatal("a destroyed key equals itself")
	}
	if d := c.Clone(); !d.Destroyed() {
		t.Fatal("clone of a destroyed key is usable")
	}
	var nilKey *Key
	nilKey.Destroy()
	if !nilKey.Clone().Destroyed() {
		t.Fatal("clone of a nil key is usable")
	}
}

func TestDestroyedKeyErrors(t *testing.T) {
	k := testKey(t, 1)
	k.Destroy()
	checks := map[string]func() error{
		"Seal":           func() error { _, err := Seal(k, "p", nil); return err },
		"Open":           func() error { _, err := Open(k, "p", make([]byte, 40)); return err },
		"SealKey":        func() error { _, err := SealKey(testKey(t, 2), "p", k); return err },
		"EKPayload":      func() error { _, err := EKPayload(testEnv, 1, k); return err },
		"DeriveStoreKey": func() error { _, err := DeriveStoreKey(k, testEnv, 1, "rows"); return err },
	}
	for name, f := range checks {
		t.Run(name, func(t *testing.T) {
			if err := f(); err != errDestroyed {
				t.Fatalf("%s with a destroyed key: error %v; want %v", name, err, errDestroyed)
			}
		})
	}
}

// TestKeyRedacted makes sure a key's bytes can't reach a log or an error
// message through fmt or slog, whatever the verb or handler.
func TestKeyRedacted(t *testing.T) {
	k := testKey(t, 0xa0)
	secretHex := hex.EncodeToString(k.b[:])
	// The bytes in the decimal form %v would print for a [32]byte.
	secretDec := strings.Trim(fmt.Sprint(k.b[:]), "[]")
	type holder struct{ Key *Key }

	outputs := map[string]string{
		"%v ptr":    fmt.Sprintf("%v", k),
		"%+v ptr":   fmt.Sprintf("%+v", k),
		"%#v ptr":   fmt.Sprintf("%#v", k),
		"%s ptr":    fmt.Sprintf("%s", k),
		"%x ptr":    fmt.Sprintf("%x", k),
		"%X ptr":    fmt.Sprintf("%X", k),
		"%q ptr":    fmt.Sprintf("%q", k),
		"%d ptr":    fmt.Sprintf("%d", k),
		"%v value":  fmt.Sprintf("%v", *k),
		"%#v value": fmt.Sprintf("%#v", *k),
		"%x value":  fmt.Sprintf("%x", *k),
		"%+v field": fmt.Sprintf("%+v", holder{k}),
		"%#v field": fmt.Sprintf("%#v", holder{k}),
		"String":    k.String(),
		"GoString":  k.GoString(),
	}
	for _, newHandler := range []func(*bytes.Buffer) slog.Handler{
		func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
		func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
	} {
		var buf bytes.Buffer
		slog.New(newHandler(&buf)).Info("m", "key", k, "value", *k, "group", slog.GroupValue(slog.Any("k", k)))
		outputs[fmt.Sprintf("slog %T", newHandler(&buf))] = buf.String()
	}

	for name, out := range outputs {
		t.Run(name, func(t *testing.T) {
			if strings.Contains(strings.ToLower(out), secretHex) || strings.Contains(out, secretDec) {
				t.Fatalf("output %q shows the key", out)
			}
			if !strings.Contains(out, "crypt.Key(REDACTED)") {
				t.Fatalf("output %q; want it to say crypt.Key(REDACTED)", out)
			}
		})
	}
}
