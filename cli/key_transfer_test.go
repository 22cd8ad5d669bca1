package cli

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/hsm/hsmtest"
	"github.com/keyhold/keyhold/server"
)

// startHSMServer starts a server (SQLite) whose RSA-HSM keys live in the
// test SoftHSM2 token, and returns its bootstrap file.
func startHSMServer(t *testing.T) string {
	t.Helper()
	return startServerWith(t, server.Config{PKCS11Module: hsmtest.Module(t), PKCS11Token: hsmtest.Label, PKCS11PIN: hsmtest.PIN})
}

// TestKeyTransferStack is the BYOK transfer through the CLI against a
// server with a SoftHSM2 token: a KEK created with --ops import, its
// public key downloaded, a blob made by transfer-blob and imported with
// import --byok-file; a tampered blob and a KEK file without a kid are
// refused.
func TestKeyTransferStack(t *testing.T) {
	bootstrap := startHSMServer(t)
	s := &session{t: t, env: testEnv{"KEYHOLD_HOME": t.TempDir()}}
	s.ok("login", "--bootstrap", bootstrap)
	b, err := readBootstrap(bootstrap)
	if err != nil {
		t.Fatal(err)
	}
	createGroup(t, b, "keys")
	s.ok("keyvault", "create", "-n", "xfer-kv", "-g", "keys", "-l", "West Europe", "--sku", "premium", "--access-policies", "--subscription", b.SubscriptionID)

	var kek struct {
		Key struct {
			KID    string   `json:"kid"`
			KeyOps []string `json:"key_ops"`
		} `json:"key"`
	}
	s.okJSON(&kek, "key", "create", "--vault", "xfer-kv", "-n", "kek", "--kty", "RSA-HSM", "--ops", "import")
	if strings.Join(kek.Key.KeyOps, ",") != "import" {
		t.Fatalf("KEK: %+v", kek)
	}
	dir := t.TempDir()
	kekPEM, keyPEM, blob := filepath.Join(dir, "kek.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "key.byok")
	s.ok("key", "download", "--vault", "xfer-kv", "-n", "kek", "--out", kekPEM)
	if data, _ := os.ReadFile(kekPEM); !strings.Contains(string(data), "Kid: "+kek.Key.KID) {
		t.Fatalf("kek.pem:\n%s", data)
	}
	key, err := crypt.GenerateRSAKey(2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	os.WriteFile(keyPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	s.ok("key", "transfer-blob", "--kek", kekPEM, "--key", keyPEM, "--out", blob)

	// A tampered blob is refused.
	data, _ := os.ReadFile(blob)
	var j map[string]any
	json.Unmarshal(data, &j)
	ct := []byte(j["ciphertext"].(string))
	// Another base64url character (flipping bits of a random one can make
	// one base64url lacks, refused before the token sees the blob).
	if ct[len(ct)-10] == 'A' {
		ct[len(ct)-10] = 'B'
	} else {
		ct[len(ct)-10] = 'A'
	}
	j["ciphertext"] = string(ct)
	bad, _ := json.Marshal(j)
	badFile := filepath.Join(dir, "bad.byok")
	os.WriteFile(badFile, bad, 0o600)
	code, _, stderr := s.run("", "key", "import", "--vault", "xfer-kv", "-n", "cmk", "--byok-file", badFile)
	if code != 1 || !strings.Contains(stderr, "BadParameter") || !strings.Contains(stderr, "integrity") {
		t.Errorf("tampered blob: exit %d, %q", code, stderr)
	}
	// A KEK file without a Kid header needs --kid.
	pub, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	bare := filepath.Join(dir, "bare.pem")
	os.WriteFile(bare, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o600)
	code, _, stderr = s.run("", "key", "transfer-blob", "--kek", bare, "--key", keyPEM, "--out", filepath.Join(dir, "x.byok"))
	if code == 0 || !strings.Contains(stderr, "--kid") {
		t.Errorf("no kid: exit %d, %q", code, stderr)
	}

	var imp struct {
		Key struct {
			Kty    string   `json:"kty"`
			N      string   `json:"n"`
			KeyOps []string `json:"key_ops"`
		} `json:"key"`
	}
	s.okJSON(&imp, "key", "import", "--vault", "xfer-kv", "-n", "cmk", "--byok-file", blob, "--ops", "wrapKey,unwrapKey")
	if imp.Key.Kty != "RSA-HSM" || imp.Key.N != base64.RawURLEncoding.EncodeToString(key.N.Bytes()) || strings.Join(imp.Key.KeyOps, ",") != "wrapKey,unwrapKey" {
		t.Fatalf("imported: %+v", imp.Key)
	}
}

func TestNewCmdKeyImportAndTransferBlob(t *testing.T) {
	imports := []struct {
		name    string
		args    []string
		want    KeyImportOptions
		wantErr string
	}{
		{name: "blob and operations", args: []string{"--vault", "kv1", "-n", "cmk", "--byok-file", "k.byok", "--ops", "WRAPKEY,unwrapkey"},
			want: KeyImportOptions{KeyTarget: KeyTarget{VaultFlags{Vault: "kv1"}, "cmk"}, BYOKFile: "k.byok", Ops: []string{"wrapKey", "unwrapKey"}, Format: FormatTable}},
		{name: "no blob", args: []string{"--vault", "kv1", "-n", "cmk"}, wantErr: "byok-file"},
		{name: "bad operation", args: []string{"--vault", "kv1", "-n", "cmk", "--byok-file", "k.byok", "--ops", "fly"}, wantErr: `"fly" is not a key operation`},
	}
	for _, tt := range imports {
		t.Run("import "+tt.name, func(t *testing.T) {
			got, err := parseOpts(t, nil, newCmdKeyImport, tt.args...)
			if checkParse(t, err, tt.wantErr) {
				sameOptions(t, got, &tt.want)
			}
		})
	}
	blobs := []struct {
		name    string
		args    []string
		want    KeyTransferBlobOptions
		wantErr string
	}{
		{name: "all flags", args: []string{"--kek", "kek.pem", "--key", "key.pem", "--kid", "https://kv/keys/kek", "--out", "k.byok"},
			want: KeyTransferBlobOptions{KEK: "kek.pem", Key: "key.pem", KID: "https://kv/keys/kek", Out: "k.byok"}},
		{name: "no key", args: []string{"--kek", "kek.pem", "--out", "k.byok"}, wantErr: "key"},
		{name: "no out", args: []string{"--kek", "kek.pem", "--key", "key.pem"}, wantErr: "out"},
	}
	for _, tt := range blobs {
		t.Run("transfer-blob "+tt.name, func(t *testing.T) {
			got, err := parseOpts(t, nil, newCmdKeyTransferBlob, tt.args...)
			if checkParse(t, err, tt.wantErr) {
				sameOptions(t, got, &tt.want)
			}
		})
	}
}
