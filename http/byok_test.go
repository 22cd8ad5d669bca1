package http

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	nethttp "net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// TestBYOKKeysOverHTTP: the tenant's BYOK keys through the wire and the Go
// client, on both databases: generate (201, Location), upload as a JWK
// through the client and as a PFX in raw JSON, list (never any key
// material), activate (200), a second activation within 24 hours (409
// naming when it is allowed), and malformed bodies (400, quoting what was
// wrong), each leaving the keys as they were.
func TestBYOKKeysOverHTTP(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		f := newFixtureOn(t, open(t), func(f *fixture) { f.srv.BYOK = f.p })
		ctx := context.Background()
		c := f.client
		tok := f.mgmtToken(t)

		gen, err := c.GenerateBYOKKey(ctx, 3072)
		if err != nil || gen.State != keyhold.BYOKInstalling || gen.Size != 3072 || gen.Source != keyhold.BYOKSourceGenerated || gen.TenantID != f.creds.TenantID {
			t.Fatalf("GenerateBYOKKey = %+v, %v", gen, err)
		}
		priv, err := crypt.GenerateRSAKey(2048)
		if err != nil {
			t.Fatal(err)
		}
		priv.Precompute()
		f.clock.Advance(time.Second)
		jwk := &keyhold.JSONWebKey{Kty: "RSA", N: priv.N.Bytes(), E: []byte{1, 0, 1}, D: priv.D.Bytes(), P: priv.Primes[0].Bytes(), Q: priv.Primes[1].Bytes()}
		up, err := c.UploadBYOKKey(ctx, keyhold.BYOKUpload{JWK: jwk})
		if err != nil || up.Source != keyhold.BYOKSourceJWK || up.Thumbprint != crypt.RSAThumbprint(&priv.PublicKey) {
			t.Fatalf("UploadBYOKKey(JWK) = %+v, %v", up, err)
		}
		pfx, err := os.ReadFile(filepath.Join("..", "crypt", "testdata", "byok_3des.pfx"))
		if err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(time.Second)
		a := f.jsonCall(t, "POST", byokPath, tok, fmt.Sprintf(`{"pfx":%q,"password":"correct-horse"}`, base64.StdEncoding.EncodeToString(pfx)))
		if a.status != nethttp.StatusCreated || !bytes.Contains(a.body, []byte(`"state":"Installing","source":"PFX","keySize":2048`)) ||
			!strings.Contains(a.header.Get("Location"), byokPath+"/") {
			t.Fatalf("POST pfx: %d %s %v", a.status, a.body, a.header)
		}
		a = f.call(t, "GET", byokPath, tok, "", nil)
		d := base64.RawURLEncoding.EncodeToString(priv.D.Bytes())
		if a.status != nethttp.StatusOK || bytes.Count(a.body, []byte(`"thumbprint"`)) != 3 || bytes.Contains(a.body, []byte(d)) || bytes.Contains(a.body, []byte("sealed")) {
			t.Fatalf("GET byokKeys: %d %s", a.status, a.body)
		}

		act, err := c.ActivateBYOKKey(ctx, up.ID)
		if err != nil || act.State != keyhold.BYOKActive || act.ActivatedAt.IsZero() {
			t.Fatalf("ActivateBYOKKey = %+v, %v", act, err)
		}
		states := func() string {
			t.Helper()
			ks, err := c.ListBYOKKeys(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, k := range ks {
				out = append(out, string(k.State))
			}
			return strings.Join(out, " ")
		}
		want := "Installing Active Installing"
		if got := states(); got != want {
			t.Fatalf("states %q, want %q", got, want)
		}
		next := act.ActivatedAt.Add(24 * time.Hour).UTC().Format(time.RFC3339)
		for _, c := range []struct {
			name, path, body string
			status           int
			code             string
			hints            []string
		}{
			{"a second activation within 24 hours", byokPath + "/" + gen.ID + "/activate", "", 409, keyhold.CodeConflict, []string{"one per 24 hours", next}},
			{"an unknown key", byokPath + "/nope/activate", "", 404, keyhold.CodeNotFound, []string{`\"nope\"`}},
			{"an unknown field", byokPath, `{"pem":"x"}`, 400, keyhold.CodeInvalidRequestContent, []string{`\"pem\"`, "jwk"}},
			{"a pfx that is not base64", byokPath, `{"pfx":"%%%","password":"x"}`, 400, keyhold.CodeBadRequest, []string{"pfx is not base64"}},
			{"a JWK field that is not base64url", byokPath, `{"jwk":{"kty":"RSA","n":"!!"}}`, 400, keyhold.CodeBadParameter, []string{"jwk.n"}},
			{"generate with a key", byokPath, `{"generate":true,"jwk":{"kty":"RSA"}}`, 400, keyhold.CodeBadRequest, []string{"either generate"}},
			{"keySize with an upload", byokPath, `{"keySize":2048,"pfx":"AAAA","password":"x"}`, 400, keyhold.CodeBadRequest, []string{"keySize is only for a generated key"}},
			{"a generated size not allowed", byokPath, `{"generate":true,"keySize":1024}`, 400, keyhold.CodeBadRequest, []string{"1024"}},
			{"an empty body", byokPath, `{}`, 400, keyhold.CodeBadRequest, []string{"no key"}},
		} {
			t.Run(c.name, func(t *testing.T) {
				var a answer
				if c.body == "" {
					a = f.call(t, "POST", c.path, tok, "", nil)
				} else {
					a = f.jsonCall(t, "POST", c.path, tok, c.body)
				}
				if a.status != c.status || !bytes.Contains(a.body, []byte(`"code":"`+c.code+`"`)) {
					t.Fatalf("%d %s, want %d %s", a.status, a.body, c.status, c.code)
				}
				for _, h := range c.hints {
					if !bytes.Contains(a.body, []byte(h)) {
						t.Errorf("answer %s does not say %s", a.body, h)
					}
				}
				if got := states(); got != want {
					t.Errorf("states after the refusal %q, want %q", got, want)
				}
			})
		}
		f.clock.Advance(24 * time.Hour)
		if _, err := c.ActivateBYOKKey(ctx, gen.ID); err != nil {
			t.Fatalf("activation after 24 hours: %v", err)
		}
		if got := states(); got != "Active Available Installing" {
			t.Fatalf("states %q after the second activation", got)
		}
	})
}

// TestBYOKLockOverHTTP: an environment moved under the tenant's BYOK key
// through the wire reads CustomerViaMicrosoft; the tenant lock disables
// it and its data is refused naming the unlock; another key's unlock is
// 403 and changes nothing; the same key unlocks it, on both databases.
func TestBYOKLockOverHTTP(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		f := newFixtureOn(t, open(t), func(f *fixture) { f.srv.BYOK = f.p })
		ctx := context.Background()
		c := f.client
		tok := f.mgmtToken(t)
		e := &keyhold.Environment{DisplayName: "byok", Location: "europe", SKU: keyhold.SKUProduction}
		if err := c.CreateEnvironment(ctx, e); err != nil {
			t.Fatal(err)
		}
		if _, err := c.PutRow(ctx, e.ID, "t", "r", []byte(`{"v":1}`)); err != nil {
			t.Fatal(err)
		}
		a := f.call(t, "POST", adminEnvPrefix+"/"+e.ID+"/byok", tok, "", nil)
		if a.status != 409 || !bytes.Contains(a.body, []byte("no Active BYOK key")) {
			t.Fatalf("apply without a key: %d %s", a.status, a.body)
		}
		newKey := func() keyhold.BYOKUpload {
			priv, err := crypt.GenerateRSAKey(2048)
			if err != nil {
				t.Fatal(err)
			}
			return keyhold.BYOKUpload{JWK: &keyhold.JSONWebKey{Kty: "RSA", N: priv.N.Bytes(), E: []byte{1, 0, 1}, D: priv.D.Bytes(), P: priv.Primes[0].Bytes(), Q: priv.Primes[1].Bytes()}}
		}
		up := newKey()
		k, err := c.UploadBYOKKey(ctx, up)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.ActivateBYOKKey(ctx, k.ID); err != nil {
			t.Fatal(err)
		}
		got, err := c.ApplyBYOK(ctx, e.ID)
		if err != nil || got.KeyManagedBy != keyhold.KeyManagedByCustomerViaMicrosoft {
			t.Fatalf("ApplyBYOK = %+v, %v", got, err)
		}
		ids, err := c.LockBYOKTenant(ctx)
		if err != nil || len(ids) != 1 || ids[0] != e.ID {
			t.Fatalf("LockBYOKTenant = %v, %v", ids, err)
		}
		_, err = c.GetRow(ctx, e.ID, "t", "r")
		if keyhold.ErrorCode(err) != keyhold.CodeEnvironmentDisabled || !strings.Contains(keyhold.ErrorMessage(err), "keyhold byok unlock") {
			t.Fatalf("a row of a locked BYOK environment: %v", err)
		}
		if _, err := c.UnlockBYOKTenant(ctx, newKey()); keyhold.ErrorCode(err) != keyhold.CodeForbidden {
			t.Fatalf("unlock with another key: %v", err)
		}
		a = f.jsonCall(t, "POST", byokTenantPath+"/unlock", tok, `{"generate":true}`)
		if a.status != 400 || !bytes.Contains(a.body, []byte(`\"generate\"`)) {
			t.Fatalf("unlock with generate: %d %s", a.status, a.body)
		}
		if env, err := c.FindEnvironment(ctx, e.ID); err != nil || env.State != keyhold.StateDisabled {
			t.Fatalf("after the refused unlocks: %+v, %v", env, err)
		}
		if ids, err := c.UnlockBYOKTenant(ctx, up); err != nil || len(ids) != 1 {
			t.Fatalf("UnlockBYOKTenant = %v, %v", ids, err)
		}
		if r, err := c.GetRow(ctx, e.ID, "t", "r"); err != nil || string(r.Data) != `{"v":1}` {
			t.Fatalf("row after the unlock: %+v, %v", r, err)
		}
	})
}

// TestBYOKKeyJSONRewrap: an activation's answer carries the rewrap
// operation's id (rewrapOperationId) through the wire and back into the
// client's key; a key without one shows none.
func TestBYOKKeyJSONRewrap(t *testing.T) {
	k := &keyhold.BYOKKey{ID: "k2", TenantID: "t1", State: keyhold.BYOKActive, RewrapOperationID: "op-1"}
	b, err := json.Marshal(toBYOKKeyJSON(k))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"rewrapOperationId":"op-1"`)) {
		t.Fatalf("activation answer %s has no rewrapOperationId", b)
	}
	var j byokKeyJSON
	if err := json.Unmarshal(b, &j); err != nil || j.key().RewrapOperationID != "op-1" {
		t.Fatalf("client key %+v, %v", j.key(), err)
	}
	k.RewrapOperationID = ""
	if b, _ := json.Marshal(toBYOKKeyJSON(k)); bytes.Contains(b, []byte("rewrapOperationId")) {
		t.Fatalf("a key with no rewrap shows one: %s", b)
	}
}

// TestRetainedBYOKKeyJSON: the retained BYOK key of a migrated
// environment goes through the key-version usage answer and the coverage
// report and back into the client's values; an ordinary version carries
// none.
func TestRetainedBYOKKeyJSON(t *testing.T) {
	at := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	r := &keyhold.RetainedBYOKKey{KeyID: "byok/k1", Thumbprint: "th", State: keyhold.BYOKActive, MigratedAt: at,
		PreMigrationBackups: 2, ShredAfter: at.Add(keyhold.BYOKKeyRetention), RemovalRequested: true}
	b, err := json.Marshal(toKeyVersionUsageJSON(&keyhold.KeyVersionUsage{KeyID: r.KeyID, Version: r.KeyID, Backups: 2, RetainedBYOK: r}))
	if err != nil {
		t.Fatal(err)
	}
	var j keyVersionUsageJSON
	if err := json.Unmarshal(b, &j); err != nil {
		t.Fatal(err)
	}
	if got := fromKeyVersionUsageJSON(&j).RetainedBYOK; got == nil || *got != *r {
		t.Fatalf("usage %s came back as %+v, want %+v", b, got, r)
	}
	if b, _ := json.Marshal(toKeyVersionUsageJSON(&keyhold.KeyVersionUsage{KeyID: "v1"})); bytes.Contains(b, []byte("retainedByokKey")) {
		t.Fatalf("an ordinary version shows a retained key: %s", b)
	}
	b, err = json.Marshal(&keyhold.EncryptionCoverage{EnvID: "e1", RetainedBYOK: r})
	if err != nil {
		t.Fatal(err)
	}
	var c keyhold.EncryptionCoverage
	if err := json.Unmarshal(b, &c); err != nil || c.RetainedBYOK == nil || *c.RetainedBYOK != *r {
		t.Fatalf("coverage %s came back as %+v, %v", b, c.RetainedBYOK, err)
	}
}
