package cli

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// TestNewCmdBYOK: each command's arguments, and the combinations refused
// before any credentials are needed.
func TestNewCmdBYOK(t *testing.T) {
	got, err := parseOpts(t, nil, newCmdBYOKUpload, "--jwk", "k.json")
	if checkParse(t, err, "") && (got.JWKFile != "k.json" || got.PFXFile != "" || got.Action != "upload") {
		t.Errorf("upload --jwk parsed %+v", got)
	}
	got, err = parseOpts(t, nil, newCmdBYOKUpload, "--pfx", "k.pfx", "--password-stdin")
	if checkParse(t, err, "") && (got.PFXFile != "k.pfx" || !got.PasswordStdin) {
		t.Errorf("upload --pfx parsed %+v", got)
	}
	for _, c := range []struct {
		name, want string
		args       []string
	}{
		{"no key", "--jwk FILE or --pfx FILE", nil},
		{"both", "--jwk FILE or --pfx FILE", []string{"--jwk", "a", "--pfx", "b", "--password-stdin"}},
		{"pfx without password", "--password-stdin", []string{"--pfx", "k.pfx"}},
		{"jwk with password", "a JWK has no password", []string{"--jwk", "k.json", "--password-stdin"}},
		{"pfx from stdin", "stdin carries the password", []string{"--pfx", "-", "--password-stdin"}},
	} {
		_, err := parseOpts(t, nil, newCmdBYOKUpload, c.args...)
		checkParse(t, err, c.want)
	}
	got, err = parseOpts(t, nil, newCmdBYOKGenerate)
	if checkParse(t, err, "") && got.Size != keyhold.BYOKDefaultKeySize {
		t.Errorf("generate parsed %+v", got)
	}
	_, err = parseOpts(t, nil, newCmdBYOKGenerate, "--size", "1024")
	checkParse(t, err, "--size 1024 is not supported")
	got, err = parseOpts(t, nil, newCmdBYOKActivate, "k1")
	if checkParse(t, err, "") && got.ID != "k1" {
		t.Errorf("activate parsed %+v", got)
	}
	_, err = parseOpts(t, nil, newCmdBYOKActivate)
	checkParse(t, err, "key-id")
	_, err = parseOpts(t, nil, newCmdBYOKUnlock)
	checkParse(t, err, "--jwk FILE or --pfx FILE")
	got, err = parseOpts(t, nil, newCmdBYOKUnlock, "--pfx", "k.pfx", "--password-stdin")
	if checkParse(t, err, "") && (got.Action != "unlock" || got.PFXFile != "k.pfx") {
		t.Errorf("unlock parsed %+v", got)
	}
	got, err = parseOpts(t, nil, newCmdBYOKApply, "env1")
	if checkParse(t, err, "") && (got.Action != "apply" || got.ID != "env1") {
		t.Errorf("apply parsed %+v", got)
	}
	got, err = parseOpts(t, nil, newCmdBYOKRemove)
	if checkParse(t, err, "") && got.Action != "remove" {
		t.Errorf("remove parsed %+v", got)
	}
	_, err = parseOpts(t, nil, newCmdBYOKLock, "x")
	checkParse(t, err, `got unexpected "x"`)
}

// TestBYOKStack runs the BYOK key commands against a real server on both
// databases: generate, upload a JWK file and a PFX with its password on
// stdin, list, activate, and a second activation refused by the 24-hour
// limit, naming when it is allowed.
func TestBYOKStack(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			var dsn string
			if backend == "postgres" {
				dsn = storetest.NewPostgresDatabase(t).DSN
			}
			testBYOKStack(t, startServerOn(t, dsn))
		})
	}
}

func testBYOKStack(t *testing.T, bootstrap string) {
	s := &session{t: t, env: testEnv{"KEYHOLD_HOME": t.TempDir()}}
	s.ok("login", "--bootstrap", bootstrap)
	if out := s.ok("byok", "key", "list"); !strings.Contains(out, "no BYOK key") {
		t.Errorf("list on a new tenant:\n%s", out)
	}
	var gen keyhold.BYOKKey
	s.okJSON(&gen, "byok", "key", "generate", "--size", "3072")
	if gen.State != keyhold.BYOKInstalling || gen.Size != 3072 {
		t.Fatalf("generated %+v", gen)
	}

	priv, err := crypt.GenerateRSAKey(2048)
	if err != nil {
		t.Fatal(err)
	}
	b64 := func(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
	jwk, _ := json.Marshal(map[string]string{"kty": "RSA", "n": b64(priv.N.Bytes()), "e": "AQAB", "d": b64(priv.D.Bytes()), "p": b64(priv.Primes[0].Bytes()), "q": b64(priv.Primes[1].Bytes())})
	dir := t.TempDir()
	jwkPath := filepath.Join(dir, "key.jwk.json")
	if err := os.WriteFile(jwkPath, jwk, 0o600); err != nil {
		t.Fatal(err)
	}
	var up keyhold.BYOKKey
	s.okJSON(&up, "byok", "key", "upload", "--jwk", jwkPath)
	if up.Source != keyhold.BYOKSourceJWK || up.Thumbprint != crypt.RSAThumbprint(&priv.PublicKey) {
		t.Fatalf("uploaded %+v", up)
	}
	pfx := filepath.Join("..", "crypt", "testdata", "byok_3des.pfx")
	if code, _, stderr := s.run("wrong\n", "byok", "key", "upload", "--pfx", pfx, "--password-stdin"); code != 1 || !strings.Contains(stderr, "BadRequest: the PFX password is wrong") {
		t.Fatalf("wrong password: exit %d, %s", code, stderr)
	}
	code, stdout, stderr := s.run("correct-horse\n", "byok", "key", "upload", "--pfx", pfx, "--password-stdin")
	if code != 0 || !strings.Contains(stdout, "PFX") || !strings.Contains(stdout, "Installing") {
		t.Fatalf("upload --pfx: exit %d\n%s%s", code, stdout, stderr)
	}
	// An environment made before the activation stays under the platform
	// key until apply moves it.
	var env keyhold.Environment
	s.okJSON(&env, "env", "create", "--name", "byok", "--location", "europe")
	if out := s.ok("byok", "key", "activate", up.ID); !strings.Contains(out, "Active") {
		t.Fatalf("activate:\n%s", out)
	}
	s.fails(1, "one per 24 hours", "byok", "key", "activate", gen.ID)
	out := s.ok("byok", "key", "list")
	if strings.Count(out, "Installing") != 2 || strings.Count(out, "Active") != 1 || !strings.Contains(out, "THUMBPRINT") {
		t.Fatalf("list:\n%s", out)
	}

	// The environment moved under the key, the tenant lock, and the unlock.
	s.ok("row", "put", env.ID, "t", "r", "--data", `{"v":1}`)
	if out := s.ok("byok", "apply", env.ID); !strings.Contains(out, "CustomerViaMicrosoft") {
		t.Fatalf("apply:\n%s", out)
	}
	if out := s.ok("byok", "lock"); !strings.Contains(out, "disabled 1 environments "+env.ID) {
		t.Fatalf("lock:\n%s", out)
	}
	s.fails(1, "keyhold byok unlock", "row", "get", env.ID, "t", "r")
	other, err := crypt.GenerateRSAKey(2048)
	if err != nil {
		t.Fatal(err)
	}
	otherJWK, _ := json.Marshal(map[string]string{"kty": "RSA", "n": b64(other.N.Bytes()), "e": "AQAB", "d": b64(other.D.Bytes()), "p": b64(other.Primes[0].Bytes()), "q": b64(other.Primes[1].Bytes())})
	otherPath := filepath.Join(dir, "other.jwk.json")
	if err := os.WriteFile(otherPath, otherJWK, 0o600); err != nil {
		t.Fatal(err)
	}
	s.fails(1, "only the same key unlocks", "byok", "unlock", "--jwk", otherPath)
	if out := s.ok("byok", "unlock", "--jwk", jwkPath); !strings.Contains(out, "enabled 1 environments") {
		t.Fatalf("unlock:\n%s", out)
	}
	if out := s.ok("row", "get", env.ID, "t", "r"); !strings.Contains(out, `"v"`) {
		t.Fatalf("row after the unlock:\n%s", out)
	}
	s.fails(1, "still under the tenant's BYOK key", "byok", "remove")
}
