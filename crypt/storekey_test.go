package crypt

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"testing"
)

func TestItemRoundTrip(t *testing.T) {
	sk := mustStoreKey(t, testKey(t, 0x20), testEnv, 7, "rows")
	for _, n := range []int{0, 1, 100, 1 << 20} {
		t.Run(fmt.Sprintf("%d bytes", n), func(t *testing.T) {
			pt := pattern(n)
			ct, err := sk.Seal("accounts/42", 3, pt)
			if err != nil {
				t.Fatal(err)
			}
			if want := itemOverhead + n; len(ct) != want {
				t.Fatalf("item of %d bytes sealed to %d; want %d", n, len(ct), want)
			}
			if ct[0] != 0x01 || binary.BigEndian.Uint32(ct[1:5]) != 7 {
				t.Fatalf("header = %x; want 01 00000007", ct[:5])
			}
			got, err := sk.Open("accounts/42", 3, ct)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, pt) {
				t.Fatal("Open returned another plaintext")
			}
		})
	}
}

// TestItemBinding opens an item with each part of its binding changed in
// turn; every one must fail.
func TestItemBinding(t *testing.T) {
	ek := testKey(t, 0x20)
	sk := mustStoreKey(t, ek, testEnv, 7, "rows")
	ct, err := sk.Seal("accounts/42", 3, []byte(`{"a":1}`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		key     *StoreKey
		itemID  string
		version uint64
		wantErr string
	}{
		{"other item", sk, "accounts/43", 3, `item "accounts/43" version 3 of store "rows"`},
		{"other table", sk, "contacts/42", 3, "failed authentication"},
		{"item prefix", sk, "accounts/4", 3, "failed authentication"},
		{"older version", sk, "accounts/42", 2, "version 2"},
		{"newer version", sk, "accounts/42", 4, "failed authentication"},
		{"other store", mustStoreKey(t, ek, testEnv, 7, "files"), "accounts/42", 3, `store "files"`},
		{"other environment", mustStoreKey(t, ek, "11111111-2222-3333-4444-555555555555", 7, "rows"), "accounts/42", 3, "failed authentication"},
		{"other epoch", mustStoreKey(t, ek, testEnv, 8, "rows"), "accounts/42", 3, "item was sealed at epoch 7; this key of environment"},
		{"other EK", mustStoreKey(t, testKey(t, 0x21), testEnv, 7, "rows"), "accounts/42", 3, "failed authentication"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.key.Open(tt.itemID, tt.version, ct)
			wantDecryptErr(t, err, tt.wantErr)
			if got != nil {
				t.Fatal("Open returned plaintext with its error")
			}
		})
	}
}

// TestItemTransplant moves one row's ciphertext onto another row, as
// someone with write access to the database could: it must not read.
func TestItemTransplant(t *testing.T) {
	sk := mustStoreKey(t, testKey(t, 0x20), testEnv, 1, "rows")
	alice, _ := sk.Seal("users/alice", 1, []byte(`{"role":"admin"}`))
	if _, err := sk.Open("users/bob", 1, alice); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("Open of alice's row as bob's: error %v; want ErrDecrypt", err)
	}
}

func TestItemEveryBitFlipAndTruncation(t *testing.T) {
	sk := mustStoreKey(t, testKey(t, 0x20), testEnv, 7, "rows")
	ct, err := sk.Seal("t/1", 1, []byte("0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range len(ct) * 8 {
		if got, err := sk.Open("t/1", 1, flipBit(ct, i)); !errors.Is(err, ErrDecrypt) || got != nil {
			t.Fatalf("Open with bit %d flipped = %x, %v; want ErrDecrypt", i, got, err)
		}
	}
	for n := range len(ct) {
		if _, err := sk.Open("t/1", 1, ct[:n]); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("Open of the first %d bytes: error %v; want ErrDecrypt", n, err)
		}
	}
}

func TestItemMalformed(t *testing.T) {
	sk := mustStoreKey(t, testKey(t, 0x20), testEnv, 7, "rows")
	ct, _ := sk.Seal("t/1", 1, nil)
	tests := []struct {
		name    string
		ct      []byte
		wantErr string
	}{
		{"empty", nil, "item is 0 bytes, shorter than its 5-byte header"},
		{"header cut", ct[:4], "item is 4 bytes, shorter than its 5-byte header"},
		{"header only", ct[:5], `item "t/1" is 5 bytes; a version 1 item has at least 33`},
		{"no tag", ct[:itemOverhead-1], "is 32 bytes"},
		{"unknown version", append([]byte{0x07}, ct[1:]...), "unknown item format version 0x07"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := sk.Open("t/1", 1, tt.ct)
			wantDecryptErr(t, err, tt.wantErr)
		})
	}
}

func TestStoreKeyDestroyed(t *testing.T) {
	sk, err := DeriveStoreKey(testKey(t, 0x20), testEnv, 1, "files")
	if err != nil {
		t.Fatal(err)
	}
	ct, _ := sk.Seal("f", 1, nil)
	backing := sk.key.b
	sk.Destroy()
	sk.Destroy()
	if *backing != [KeySize]byte{} {
		t.Fatal("StoreKey.Destroy left key bytes behind")
	}
	if _, err := sk.Seal("f", 1, nil); err != errDestroyed {
		t.Fatalf("Seal after Destroy: error %v", err)
	}
	if _, err := sk.Open("f", 1, ct); err != errDestroyed {
		t.Fatalf("Open after Destroy: error %v", err)
	}
	if _, err := sk.NewEncryptingWriter(&bytes.Buffer{}, "f", 1); err != errDestroyed {
		t.Fatalf("NewEncryptingWriter after Destroy: error %v", err)
	}
	if _, err := sk.NewDecryptingReader(bytes.NewReader(ct), "f", 1); err != errDestroyed {
		t.Fatalf("NewDecryptingReader after Destroy: error %v", err)
	}
}

func TestDeriveStoreKey(t *testing.T) {
	ek := testKey(t, 0x20)
	base := mustStoreKey(t, ek, "ab", 1, "c")
	if base.EnvID() != "ab" || base.Store() != "c" || base.Epoch() != 1 {
		t.Fatalf("StoreKey remembers %q, %q, %d; want ab, c, 1", base.EnvID(), base.Store(), base.Epoch())
	}
	others := map[string]*StoreKey{
		// Without length prefixes, "ab"+"c" and "a"+"bc" would collide.
		"shifted boundary": mustStoreKey(t, ek, "a", 1, "bc"),
		"other store":      mustStoreKey(t, ek, "ab", 1, "d"),
		"other env":        mustStoreKey(t, ek, "ax", 1, "c"),
		"other EK":         mustStoreKey(t, testKey(t, 0x21), "ab", 1, "c"),
	}
	for name, o := range others {
		if o.key.Equal(base.key) {
			t.Fatalf("%s derives the same key", name)
		}
	}
	if again := mustStoreKey(t, ek, "ab", 9, "c"); !again.key.Equal(base.key) {
		t.Fatal("the epoch changed the derivation; each epoch has its own EK instead")
	}
	for _, tt := range []struct{ env, store string }{{"", "rows"}, {testEnv, ""}} {
		if _, err := DeriveStoreKey(ek, tt.env, 1, tt.store); err == nil {
			t.Fatalf("DeriveStoreKey(%q, %q) succeeded", tt.env, tt.store)
		}
	}
}

// TestItemFormatFromSpec builds an item with nothing but the standard
// library and the format as documented, and opens it: the documentation and
// the code must agree.
func TestItemFormatFromSpec(t *testing.T) {
	ek := testKey(t, 0x20)
	lp := func(s string) []byte { return append(binary.BigEndian.AppendUint32(nil, uint32(len(s))), s...) }
	info := append(append([]byte("keyhold store key v1\x00"), lp(testEnv)...), lp("rows")...)
	dk, err := hkdf.Key(sha256.New, ek.b[:], nil, string(info), 32)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := aes.NewCipher(dk)
	gcm, _ := cipher.NewGCM(block)

	header := []byte{0x01, 0, 0, 0, 9}
	var aad []byte
	aad = append(aad, header...)
	aad = append(aad, "keyhold item v1"...)
	aad = append(aad, lp(testEnv)...)
	aad = append(aad, lp("rows")...)
	aad = append(aad, lp("accounts/42")...)
	aad = binary.BigEndian.AppendUint64(aad, 5)
	nonce := bytes.Repeat([]byte{0x5a}, 12)
	ct := gcm.Seal(append(bytes.Clone(header), nonce...), nonce, []byte("by the book"), aad)

	sk := mustStoreKey(t, ek, testEnv, 9, "rows")
	got, err := sk.Open("accounts/42", 5, ct)
	if err != nil {
		t.Fatalf("Open of an item built from the documented format: %v", err)
	}
	if string(got) != "by the book" {
		t.Fatalf("Open = %q", got)
	}
}

// Epoch reads the epoch from the header of an item or stream ciphertext, as
// Open does before it picks the key. Test-only: no production caller reads
// a header apart from opening it.
func Epoch(header []byte) (uint32, error) {
	return parseHeader("ciphertext", header)
}

func TestEpoch(t *testing.T) {
	tests := []struct {
		name    string
		header  []byte
		want    uint32
		wantErr string
	}{
		{"exactly the header", []byte{1, 0, 0, 1, 2}, 258, ""},
		{"longer input", []byte{1, 0xff, 0xff, 0xff, 0xff, 9, 9}, 1<<32 - 1, ""},
		{"epoch zero", []byte{1, 0, 0, 0, 0}, 0, ""},
		{"empty", nil, 0, "ciphertext is 0 bytes, shorter than its 5-byte header"},
		{"short", []byte{1, 0, 0, 1}, 0, "ciphertext is 4 bytes"},
		{"unknown version", []byte{7, 0, 0, 0, 1}, 0, "unknown ciphertext format version 0x07"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Epoch(tt.header)
			if tt.wantErr != "" {
				wantDecryptErr(t, err, tt.wantErr)
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Epoch(%x) = %d, %v; want %d", tt.header, got, err, tt.want)
			}
		})
	}
}

func TestStoreKeyConcurrent(t *testing.T) {
	sk := mustStoreKey(t, testKey(t, 0x20), testEnv, 1, "rows")
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				id := fmt.Sprintf("t/%d-%d", g, i)
				ct, err := sk.Seal(id, 1, []byte(id))
				if err == nil {
					var pt []byte
					pt, err = sk.Open(id, 1, ct)
					if err == nil && string(pt) != id {
						err = fmt.Errorf("Open(%s) = %q", id, pt)
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
