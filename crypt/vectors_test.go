package crypt

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"flag"
	"io"
	"os"
	"path/filepath"
	"testing"
	"testing/cryptotest"
)

// The known-answer vectors in testdata were made once by the first version
// of each format, with fixed keys and a deterministic random source. They
// must never be regenerated to make a failing test pass: a failure means
// old ciphertexts would no longer read, or the writer no longer writes the
// same format. Only a new vector for a new format version may be added,
// with -update, after which git diff must show additions only.
var update = flag.Bool("update", false, "rewrite the known-answer vectors in testdata")

const vectorsFile = "testdata/vectors.json"

type hexBytes []byte

func (h hexBytes) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(h)), nil }

func (h *hexBytes) UnmarshalText(b []byte) error {
	d, err := hex.DecodeString(string(b))
	*h = d
	return err
}

type sealVector struct {
	Name      string   `json:"name"`
	Seed      uint64   `json:"seed"`
	Key       hexBytes `json:"key"`
	Purpose   string   `json:"purpose"`
	Plaintext hexBytes `json:"plaintext"`
	Sealed    hexBytes `json:"sealed"`
}

type wrapVector struct {
	Name       string   `json:"name"`
	Seed       uint64   `json:"seed"`
	Key        hexBytes `json:"key"`
	ID         string   `json:"id"`
	Version    string   `json:"version"`
	Kid        string   `json:"kid"`
	Plaintext  hexBytes `json:"plaintext"`
	Ciphertext hexBytes `json:"ciphertext"`
}

type ekVector struct {
	Name    string   `json:"name"`
	EK      hexBytes `json:"ek"`
	EnvID   string   `json:"envId"`
	Epoch   uint32   `json:"epoch"`
	Payload hexBytes `json:"payload"`
}

// itemVector describes an item or, with Stream set, a stream. A stream too
// long for the JSON keeps its ciphertext in CiphertextFile, and its
// plaintext is pattern(PatternLen).
type itemVector struct {
	Name           string   `json:"name"`
	Seed           uint64   `json:"seed"`
	EK             hexBytes `json:"ek"`
	EnvID          string   `json:"envId"`
	Epoch          uint32   `json:"epoch"`
	Store          string   `json:"store"`
	ItemID         string   `json:"itemId"`
	Version        uint64   `json:"version"`
	Plaintext      hexBytes `json:"plaintext,omitempty"`
	PatternLen     int      `json:"patternLen,omitempty"`
	Ciphertext     hexBytes `json:"ciphertext,omitempty"`
	CiphertextFile string   `json:"ciphertextFile,omitempty"`
}

type vectorSet struct {
	SealV1      []sealVector `json:"sealV1"`
	WrapV1      []wrapVector `json:"aesWrapperV1"`
	EKPayloadV1 []ekVector   `json:"ekPayloadV1"`
	ItemV1      []itemVector `json:"itemV1"`
	StreamV1    []itemVector `json:"streamV1"`
}

func keyBytes(first byte) hexBytes {
	b := make([]byte, KeySize)
	for i := range b {
		b[i] = first + byte(i)
	}
	return b
}

func mustKeyFrom(t testing.TB, b []byte) *Key {
	t.Helper()
	k, err := KeyFromBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Destroy)
	return k
}

// newVectors returns the vectors' inputs; -update fills in the outputs.
func newVectors() *vectorSet {
	return &vectorSet{
		SealV1: []sealVector{
			{Name: "mmk", Seed: 1, Key: keyBytes(0x00), Purpose: "mmk", Plaintext: keyBytes(0x40)},
			{Name: "empty plaintext", Seed: 2, Key: keyBytes(0x00), Purpose: "token-signing-key", Plaintext: hexBytes{}},
		},
		WrapV1: []wrapVector{
			{Name: "ek payload under mmk", Seed: 3, Key: keyBytes(0x80), ID: "platform-mmk", Version: "1", Plaintext: []byte("ek payload stand-in")},
		},
		EKPayloadV1: []ekVector{
			{Name: "guid env", EK: keyBytes(0x20), EnvID: testEnv, Epoch: 7},
		},
		ItemV1: []itemVector{
			{Name: "row", Seed: 4, EK: keyBytes(0x20), EnvID: testEnv, Epoch: 7, Store: "rows", ItemID: "accounts/42", Version: 3, Plaintext: []byte(`{"name":"Contoso"}`)},
			{Name: "empty audit entry", Seed: 5, EK: keyBytes(0x20), EnvID: testEnv, Epoch: 1, Store: "audit", ItemID: "1", Version: 1, Plaintext: hexBytes{}},
		},
		StreamV1: []itemVector{
			{Name: "empty file", Seed: 6, EK: keyBytes(0x20), EnvID: testEnv, Epoch: 7, Store: "files", ItemID: "empty.txt", Version: 1, Plaintext: hexBytes{}},
			{Name: "small file", Seed: 7, EK: keyBytes(0x20), EnvID: testEnv, Epoch: 7, Store: "files", ItemID: "hello.txt", Version: 2, Plaintext: []byte("hello, keyhold\n")},
			// Three segments and a bit: the first, shortened by the headers;
			// a full middle one; and a short final one.
			{Name: "multi-segment file", Seed: 8, EK: keyBytes(0x20), EnvID: testEnv, Epoch: 9, Store: "files", ItemID: "big.bin", Version: 5,
				PatternLen: 3*(streamSegmentSize-tagSize) + 5, CiphertextFile: "stream_v1_multi.bin"},
		},
	}
}

func sealVectorOutput(t *testing.T, v sealVector) []byte {
	t.Helper()
	setRand(t, v.Seed)
	got, err := Seal(mustKeyFrom(t, v.Key), v.Purpose, v.Plaintext)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func wrapVectorOutput(t *testing.T, v wrapVector) (string, []byte) {
	t.Helper()
	setRand(t, v.Seed)
	w := NewAESWrapper(v.ID, v.Version, mustKeyFrom(t, v.Key))
	defer w.Destroy()
	kid, got, err := w.Wrap(context.Background(), v.ID, v.Plaintext)
	if err != nil {
		t.Fatal(err)
	}
	return kid, got
}

func ekVectorOutput(t *testing.T, v ekVector) []byte {
	t.Helper()
	got, err := EKPayload(v.EnvID, v.Epoch, mustKeyFrom(t, v.EK))
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func (v itemVector) plaintext() []byte {
	if v.PatternLen > 0 {
		return pattern(v.PatternLen)
	}
	return v.Plaintext
}

func (v itemVector) storeKey(t testing.TB) *StoreKey {
	t.Helper()
	return mustStoreKey(t, mustKeyFrom(t, v.EK), v.EnvID, v.Epoch, v.Store)
}

func itemVectorOutput(t *testing.T, v itemVector) []byte {
	t.Helper()
	setRand(t, v.Seed)
	got, err := v.storeKey(t).Seal(v.ItemID, v.Version, v.plaintext())
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// streamVectorOutput encrypts the vector's stream. tink draws its salt and
// nonce prefix from crypto/rand, not randReader, so the whole process's
// randomness is made deterministic for the duration.
func streamVectorOutput(t *testing.T, v itemVector) []byte {
	t.Helper()
	cryptotest.SetGlobalRandom(t, v.Seed)
	var buf bytes.Buffer
	w, err := v.storeKey(t).NewEncryptingWriter(&buf, v.ItemID, v.Version)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(v.plaintext()); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func (v itemVector) ciphertext(t *testing.T) []byte {
	t.Helper()
	if v.CiphertextFile == "" {
		return v.Ciphertext
	}
	b, err := os.ReadFile(filepath.Join("testdata", v.CiphertextFile))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeVectors(t *testing.T) {
	t.Helper()
	vs := newVectors()
	for i := range vs.SealV1 {
		vs.SealV1[i].Sealed = sealVectorOutput(t, vs.SealV1[i])
	}
	for i := range vs.WrapV1 {
		vs.WrapV1[i].Kid, vs.WrapV1[i].Ciphertext = wrapVectorOutput(t, vs.WrapV1[i])
	}
	for i := range vs.EKPayloadV1 {
		vs.EKPayloadV1[i].Payload = ekVectorOutput(t, vs.EKPayloadV1[i])
	}
	for i := range vs.ItemV1 {
		vs.ItemV1[i].Ciphertext = itemVectorOutput(t, vs.ItemV1[i])
	}
	for i, v := range vs.StreamV1 {
		ct := streamVectorOutput(t, v)
		if v.CiphertextFile == "" {
			vs.StreamV1[i].Ciphertext = ct
		} else if err := os.WriteFile(filepath.Join("testdata", v.CiphertextFile), ct, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := json.MarshalIndent(vs, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(vectorsFile, append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readVectors(t *testing.T) *vectorSet {
	t.Helper()
	if *update {
		writeVectors(t)
	}
	return loadVectors(t)
}

func loadVectors(t testing.TB) *vectorSet {
	t.Helper()
	b, err := os.ReadFile(vectorsFile)
	if err != nil {
		t.Fatal(err)
	}
	var vs vectorSet
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	return &vs
}

// TestVectors checks that the committed ciphertexts still decrypt (old
// formats stay readable) and that the current code, given the same keys and
// randomness, still writes them byte for byte (the format hasn't drifted).
func TestVectors(t *testing.T) {
	vs := readVectors(t)
	if len(vs.SealV1) == 0 || len(vs.WrapV1) == 0 || len(vs.EKPayloadV1) == 0 || len(vs.ItemV1) == 0 || len(vs.StreamV1) == 0 {
		t.Fatalf("%s is missing a format's vectors", vectorsFile)
	}

	for _, v := range vs.SealV1 {
		t.Run("seal/"+v.Name, func(t *testing.T) {
			got, err := Open(mustKeyFrom(t, v.Key), v.Purpose, v.Sealed)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if !bytes.Equal(got, v.Plaintext) {
				t.Fatalf("Open = %x; want %x", got, v.Plaintext)
			}
			if again := sealVectorOutput(t, v); !bytes.Equal(again, v.Sealed) {
				t.Fatalf("Seal = %x; want %x", again, v.Sealed)
			}
		})
	}

	for _, v := range vs.WrapV1 {
		t.Run("wrap/"+v.Name, func(t *testing.T) {
			w := NewAESWrapper(v.ID, v.Version, mustKeyFrom(t, v.Key))
			defer w.Destroy()
			got, err := w.Unwrap(context.Background(), v.Kid, v.Ciphertext)
			if err != nil {
				t.Fatalf("Unwrap: %v", err)
			}
			if !bytes.Equal(got, v.Plaintext) {
				t.Fatalf("Unwrap = %x; want %x", got, v.Plaintext)
			}
			kid, again := wrapVectorOutput(t, v)
			if kid != v.Kid || !bytes.Equal(again, v.Ciphertext) {
				t.Fatalf("Wrap = %q, %x; want %q, %x", kid, again, v.Kid, v.Ciphertext)
			}
		})
	}

	for _, v := range vs.EKPayloadV1 {
		t.Run("ekpayload/"+v.Name, func(t *testing.T) {
			ek, err := OpenEKPayload(v.EnvID, v.Epoch, v.Payload)
			if err != nil {
				t.Fatalf("OpenEKPayload: %v", err)
			}
			defer ek.Destroy()
			if !ek.Equal(mustKeyFrom(t, v.EK)) {
				t.Fatal("OpenEKPayload returned another key")
			}
			if again := ekVectorOutput(t, v); !bytes.Equal(again, v.Payload) {
				t.Fatalf("EKPayload = %x; want %x", again, v.Payload)
			}
		})
	}

	for _, v := range vs.ItemV1 {
		t.Run("item/"+v.Name, func(t *testing.T) {
			if epoch, err := Epoch(v.Ciphertext); err != nil || epoch != v.Epoch {
				t.Fatalf("Epoch = %d, %v; want %d", epoch, err, v.Epoch)
			}
			got, err := v.storeKey(t).Open(v.ItemID, v.Version, v.Ciphertext)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if !bytes.Equal(got, v.plaintext()) {
				t.Fatalf("Open = %x; want %x", got, v.plaintext())
			}
			if again := itemVectorOutput(t, v); !bytes.Equal(again, v.Ciphertext) {
				t.Fatalf("Seal = %x; want %x", again, v.Ciphertext)
			}
		})
	}

	for _, v := range vs.StreamV1 {
		t.Run("stream/"+v.Name, func(t *testing.T) {
			ct := v.ciphertext(t)
			if epoch, err := Epoch(ct); err != nil || epoch != v.Epoch {
				t.Fatalf("Epoch = %d, %v; want %d", epoch, err, v.Epoch)
			}
			r, err := v.storeKey(t).NewDecryptingReader(bytes.NewReader(ct), v.ItemID, v.Version)
			if err != nil {
				t.Fatalf("NewDecryptingReader: %v", err)
			}
			got, err := io.ReadAll(r)
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			if !bytes.Equal(got, v.plaintext()) {
				t.Fatalf("decrypted %d bytes that differ from the %d of the vector", len(got), len(v.plaintext()))
			}
			if again := streamVectorOutput(t, v); !bytes.Equal(again, ct) {
				t.Fatalf("encrypting again gave %d bytes that differ from the vector's %d", len(again), len(ct))
			}
		})
	}
}
