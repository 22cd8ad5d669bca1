package crypt

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

func TestEKPayloadRoundTrip(t *testing.T) {
	ek := testKey(t, 0x20)
	p, err := EKPayload(testEnv, 7, ek)
	if err != nil {
		t.Fatal(err)
	}
	if want := 1 + 4 + 1 + len(testEnv) + KeySize; len(p) != want {
		t.Fatalf("payload is %d bytes; want %d", len(p), want)
	}
	got, err := OpenEKPayload(testEnv, 7, p)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Destroy()
	if !got.Equal(ek) {
		t.Fatal("OpenEKPayload returned another key")
	}
}

// TestEKPayloadFitsRSAOAEP wraps a payload for a GUID environment with
// RSA-2048 OAEP-SHA256, the smallest customer key the platform accepts,
// whose limit is 256 - 2*32 - 2 = 190 bytes.
func TestEKPayloadFitsRSAOAEP(t *testing.T) {
	p, err := EKPayload(testEnv, 1<<32-1, testKey(t, 0x20))
	if err != nil {
		t.Fatal(err)
	}
	if len(p) > 190 {
		t.Fatalf("payload is %d bytes; RSA-2048 OAEP-SHA256 takes at most 190", len(p))
	}
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ct, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, &rk.PublicKey, p, nil)
	if err != nil {
		t.Fatalf("EncryptOAEP: %v", err)
	}
	back, err := rsa.DecryptOAEP(sha256.New(), nil, rk, ct, nil)
	if err != nil || !bytes.Equal(back, p) {
		t.Fatalf("DecryptOAEP = %x, %v; want the payload", back, err)
	}
}

func TestEKPayloadEnvIDLength(t *testing.T) {
	ek := testKey(t, 0x20)
	for _, n := range []int{0, 256} {
		if _, err := EKPayload(strings.Repeat("e", n), 1, ek); err == nil {
			t.Fatalf("EKPayload with a %d-byte environment id succeeded", n)
		}
	}
	if _, err := EKPayload(strings.Repeat("e", 255), 1, ek); err != nil {
		t.Fatalf("EKPayload with a 255-byte environment id: %v", err)
	}
}

func TestOpenEKPayloadRefuses(t *testing.T) {
	ek := testKey(t, 0x20)
	p, err := EKPayload(testEnv, 7, ek)
	if err != nil {
		t.Fatal(err)
	}
	withByte := func(i int, b byte) []byte { c := bytes.Clone(p); c[i] = b; return c }
	tests := []struct {
		name    string
		envID   string
		epoch   uint32
		payload []byte
		wantErr string
	}{
		{"other environment", "11111111-2222-3333-4444-555555555555", 7, p, `belongs to environment "` + testEnv + `", not "11111111-2222-3333-4444-555555555555"`},
		{"environment prefix", testEnv[:35], 7, p, "belongs to environment"},
		{"other epoch", testEnv, 8, p, "belongs to epoch 7 of environment"},
		{"empty", testEnv, 7, nil, "EK payload is empty"},
		{"unknown version", testEnv, 7, withByte(0, 2), "unknown EK payload format version 0x02"},
		{"too short", testEnv, 7, p[:ekPayloadFixed-1], "EK payload is 37 bytes"},
		{"key cut", testEnv, 7, p[:len(p)-1], "its 36-byte environment id makes 74"},
		{"trailing byte", testEnv, 7, append(bytes.Clone(p), 0), "EK payload is 75 bytes"},
		{"length byte too big", testEnv, 7, withByte(5, 37), "its 37-byte environment id makes 75"},
		{"length byte too small", testEnv, 7, withByte(5, 35), "its 35-byte environment id makes 73"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := OpenEKPayload(tt.envID, tt.epoch, tt.payload)
			wantDecryptErr(t, err, tt.wantErr)
			if k != nil {
				t.Fatal("OpenEKPayload returned a key with its error")
			}
			msg := err.Error()
			if strings.Contains(msg, hex.EncodeToString(ek.b[:])) || strings.Contains(msg, string(ek.b[:])) {
				t.Fatalf("error %q shows the key", msg)
			}
		})
	}
}
