package crypt

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

func TestSealOpen(t *testing.T) {
	key := testKey(t, 0)
	for _, n := range []int{0, 1, 15, 16, 17, 1000} {
		pt := pattern(n)
		sealed, err := Seal(key, "mmk", pt)
		if err != nil {
			t.Fatal(err)
		}
		if want := 1 + nonceSize + n + tagSize; len(sealed) != want || sealed[0] != 0x01 {
			t.Fatalf("Seal of %d bytes = %d bytes starting %#x; want %d starting 0x01", n, len(sealed), sealed[0], want)
		}
		got, err := Open(key, "mmk", sealed)
		if err != nil {
			t.Fatalf("Open of %d bytes: %v", n, err)
		}
		if !bytes.Equal(got, pt) {
			t.Fatalf("Open = %x; want %x", got, pt)
		}
	}
}

func TestSealNonceIsFresh(t *testing.T) {
	key := testKey(t, 0)
	a, _ := Seal(key, "p", []byte("same"))
	b, _ := Seal(key, "p", []byte("same"))
	if bytes.Equal(a, b) {
		t.Fatal("sealing the same plaintext twice gave the same ciphertext")
	}
}

func TestOpenRefuses(t *testing.T) {
	key := testKey(t, 0)
	sealed, err := Seal(key, "mmk", []byte("material"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		key     *Key
		purpose string
		sealed  []byte
		wantErr string
	}{
		{"wrong purpose", key, "token-signing-key", sealed, `purpose "token-signing-key" failed authentication`},
		{"purpose prefix", key, "mm", sealed, "failed authentication"},
		{"purpose extended", key, "mmk\x00", sealed, "failed authentication"},
		{"wrong key", testKey(t, 1), "mmk", sealed, "failed authentication"},
		{"empty", key, "mmk", nil, "sealed data is empty"},
		{"unknown version", key, "mmk", append([]byte{0x07}, sealed[1:]...), "unknown sealed format version 0x07"},
		{"version zero", key, "mmk", append([]byte{0x00}, sealed[1:]...), "unknown sealed format version 0x00"},
		{"too short", key, "mmk", sealed[:1+nonceSize+tagSize-1], "sealed data is 28 bytes; a version 1 ciphertext has at least 29"},
		{"trailing byte", key, "mmk", append(bytes.Clone(sealed), 0), "failed authentication"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Open(tt.key, tt.purpose, tt.sealed)
			wantDecryptErr(t, err, tt.wantErr)
			if got != nil {
				t.Fatalf("Open returned plaintext %x with its error", got)
			}
		})
	}
}

func TestOpenEveryBitFlip(t *testing.T) {
	key := testKey(t, 0)
	sealed, err := Seal(key, "mmk", []byte("0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range len(sealed) * 8 {
		if _, err := Open(key, "mmk", flipBit(sealed, i)); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("Open with bit %d flipped: error %v; want ErrDecrypt", i, err)
		}
	}
	for n := range len(sealed) {
		if _, err := Open(key, "mmk", sealed[:n]); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("Open of the first %d bytes: error %v; want ErrDecrypt", n, err)
		}
	}
}

func TestSealKeyOpenKey(t *testing.T) {
	master := testKey(t, 0)
	mmk := testKey(t, 0x50)
	sealed, err := SealKey(master, "mmk", mmk)
	if err != nil {
		t.Fatal(err)
	}
	got, err := OpenKey(master, "mmk", sealed)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(mmk) {
		t.Fatal("OpenKey returned another key")
	}
	if _, err := OpenKey(master, "signing", sealed); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("OpenKey with another purpose: error %v; want ErrDecrypt", err)
	}
	notAKey, _ := Seal(master, "mmk", []byte("short"))
	if _, err := OpenKey(master, "mmk", notAKey); err == nil || !strings.Contains(err.Error(), "key is 5 bytes") {
		t.Fatalf("OpenKey of 5 bytes: error %v; want one naming the size", err)
	}
}

func TestAESWrapper(t *testing.T) {
	ctx := context.Background()
	root := testKey(t, 0x80)
	w := NewAESWrapper("platform-mmk", "3", root)
	t.Cleanup(w.Destroy)
	if got := w.KeyID(); got != "platform-mmk/3" {
		t.Fatalf("KeyID = %q; want platform-mmk/3", got)
	}

	kid, ct, err := w.Wrap(ctx, "platform-mmk", []byte("ek payload"))
	if err != nil {
		t.Fatal(err)
	}
	if kid != "platform-mmk/3" {
		t.Fatalf("Wrap kid = %q; want platform-mmk/3", kid)
	}
	// The wrapped bytes are Seal's, bound to the kid.
	if pt, err := Open(root, "wrap\x00platform-mmk/3", ct); err != nil || string(pt) != "ek payload" {
		t.Fatalf("Open(wrap purpose) = %q, %v; want the plaintext", pt, err)
	}
	got, err := w.Unwrap(ctx, kid, ct)
	if err != nil || string(got) != "ek payload" {
		t.Fatalf("Unwrap = %q, %v; want the plaintext", got, err)
	}

	t.Run("wrong key id", func(t *testing.T) {
		if _, _, err := w.Wrap(ctx, "other", []byte("x")); err == nil || !strings.Contains(err.Error(), `key "other"`) {
			t.Fatalf("Wrap with another key id: error %v; want one naming it", err)
		}
	})
	t.Run("wrong kid", func(t *testing.T) {
		if _, err := w.Unwrap(ctx, "platform-mmk/2", ct); err == nil || !strings.Contains(err.Error(), `"platform-mmk/2"`) {
			t.Fatalf("Unwrap with another kid: error %v; want one naming it", err)
		}
	})
	t.Run("same key other version", func(t *testing.T) {
		// Even under the same key bytes, a ciphertext wrapped for one
		// version doesn't unwrap as another.
		w4 := NewAESWrapper("platform-mmk", "4", root)
		defer w4.Destroy()
		if _, err := w4.Unwrap(ctx, "platform-mmk/4", ct); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("Unwrap as version 4: error %v; want ErrDecrypt", err)
		}
	})
	t.Run("tampered", func(t *testing.T) {
		if _, err := w.Unwrap(ctx, kid, flipBit(ct, 100)); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("Unwrap of a modified ciphertext: error %v; want ErrDecrypt", err)
		}
	})
	t.Run("canceled context", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, _, err := w.Wrap(cctx, "platform-mmk", nil); !errors.Is(err, context.Canceled) {
			t.Fatalf("Wrap with a canceled context: error %v", err)
		}
		if _, err := w.Unwrap(cctx, kid, ct); !errors.Is(err, context.Canceled) {
			t.Fatalf("Unwrap with a canceled context: error %v", err)
		}
	})
	t.Run("owns its copy", func(t *testing.T) {
		k := testKey(t, 0x90)
		w := NewAESWrapper("id", "v", k)
		k.Destroy()
		if _, _, err := w.Wrap(ctx, "id", nil); err != nil {
			t.Fatalf("Wrap after the caller destroyed its key: %v", err)
		}
		w.Destroy()
		if _, _, err := w.Wrap(ctx, "id", nil); err != errDestroyed {
			t.Fatalf("Wrap after Destroy: error %v; want %v", err, errDestroyed)
		}
	})
}
