package cli

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/hsm"
	"github.com/keyhold/keyhold/hsm/hsmtest"
)

// TestNewCmdBYOKKEK: the KEK commands' and --byok-file's arguments.
func TestNewCmdBYOKKEK(t *testing.T) {
	got, err := parseOpts(t, nil, newCmdBYOKKEKCreate)
	if checkParse(t, err, "") && (got.Size != 3072 || got.Action != "create") {
		t.Errorf("kek create parsed %+v", got)
	}
	_, err = parseOpts(t, nil, newCmdBYOKKEKCreate, "--size", "2048")
	checkParse(t, err, "--size 2048 is not supported")
	got, err = parseOpts(t, nil, newCmdBYOKKEKDownload, "--out", "kek.pem")
	if checkParse(t, err, "") && (got.Out != "kek.pem" || got.Action != "download") {
		t.Errorf("kek download parsed %+v", got)
	}
	_, err = parseOpts(t, nil, newCmdBYOKKEKDownload)
	checkParse(t, err, "out")
	up, err := parseOpts(t, nil, newCmdBYOKUpload, "--byok-file", "k.byok")
	if checkParse(t, err, "") && up.BYOKFile != "k.byok" {
		t.Errorf("upload --byok-file parsed %+v", up)
	}
	_, err = parseOpts(t, nil, newCmdBYOKUpload, "--byok-file", "k.byok", "--jwk", "k.json")
	checkParse(t, err, "--byok-file FILE.byok")
	_, err = parseOpts(t, nil, newCmdBYOKUnlock, "--byok-file", "k.byok", "--password-stdin")
	checkParse(t, err, "a transfer blob has no password")
}

// TestBYOKTransferStack is a BYOK key in the HSM key-transfer format
// through the CLI against a server with a SoftHSM2 token: the tenant's KEK
// created and downloaded, a blob made by transfer-blob and uploaded with
// --byok-file, activated, an environment created under it, the tenant locked,
// an unlock with another key's blob refused, and one with the same key's
// blob accepted.
func TestBYOKTransferStack(t *testing.T) {
	bootstrap := startHSMServer(t)
	s := &session{t: t, env: testEnv{"KEYHOLD_HOME": t.TempDir()}}
	s.ok("login", "--bootstrap", bootstrap)
	s.fails(1, "keyhold byok kek create", "byok", "kek", "download", "--out", filepath.Join(t.TempDir(), "none.pem"))
	var kek keyhold.BYOKKEK
	s.okJSON(&kek, "byok", "kek", "create")
	if kek.Size != 3072 || kek.KID == "" || !strings.Contains(kek.PublicKeyPEM, "PUBLIC KEY") {
		t.Fatalf("KEK %+v", kek)
	}
	dir := t.TempDir()
	kekPEM := filepath.Join(dir, "kek.pem")
	s.ok("byok", "kek", "download", "--out", kekPEM)
	if data, _ := os.ReadFile(kekPEM); !strings.Contains(string(data), "Kid: "+kek.KID) {
		t.Fatalf("kek.pem:\n%s", data)
	}
	blobOf := func(name string, key *rsa.PrivateKey) string {
		der, _ := x509.MarshalPKCS8PrivateKey(key)
		keyPEM, blob := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".byok")
		os.WriteFile(keyPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
		s.ok("key", "transfer-blob", "--kek", kekPEM, "--key", keyPEM, "--out", blob)
		return blob
	}
	key, err := crypt.GenerateRSAKey(2048)
	if err != nil {
		t.Fatal(err)
	}
	blob := blobOf("key", key)
	var up keyhold.BYOKKey
	s.okJSON(&up, "byok", "key", "upload", "--byok-file", blob)
	if up.Source != keyhold.BYOKSourceTransfer || up.Thumbprint != crypt.RSAThumbprint(&key.PublicKey) || up.Size != 2048 {
		t.Fatalf("uploaded %+v", up)
	}
	s.ok("byok", "key", "activate", up.ID)
	// A new environment is created under the Active key directly.
	var env keyhold.Environment
	s.okJSON(&env, "env", "create", "--name", "byok-xfer", "--location", "europe")
	if env.KeyManagedBy != keyhold.KeyManagedByCustomerViaMicrosoft {
		t.Fatalf("a new environment of a BYOK tenant: keyManagedBy %q, want %q", env.KeyManagedBy, keyhold.KeyManagedByCustomerViaMicrosoft)
	}
	s.ok("row", "put", env.ID, "t", "r", "--data", `{"v":1}`)
	s.fails(1, "under the tenant's BYOK key already", "byok", "apply", env.ID)
	// The server keeps the tenant's BYOK generation in the token too, and
	// moves it on with the lock (platform/byok_anchor.go).
	tok, err := hsm.Open(hsmtest.Token(t))
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	generation := func() uint64 {
		t.Helper()
		v, err := tok.Counter("keyhold-byok-generation/" + env.TenantID)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	before := generation()
	s.ok("byok", "lock")
	if after := generation(); before == 0 || after <= before {
		t.Fatalf("the token's BYOK generation of the tenant: %d before the lock, %d after; want it recorded and raised", before, after)
	}
	other, err := crypt.GenerateRSAKey(2048)
	if err != nil {
		t.Fatal(err)
	}
	s.fails(1, "not the tenant's Active BYOK key", "byok", "unlock", "--byok-file", blobOf("other", other))
	if out := s.ok("byok", "unlock", "--byok-file", blobOf("again", key)); !strings.Contains(out, "enabled 1 environments "+env.ID) {
		t.Fatalf("unlock:\n%s", out)
	}
	if out := s.ok("row", "get", env.ID, "t", "r"); !strings.Contains(out, `"v":1`) && !strings.Contains(out, `"v": 1`) {
		t.Fatalf("row after the unlock:\n%s", out)
	}
}
