package vault

import (
	"bytes"
	"fmt"
	"sync"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/hsm/hsmtest"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

func TestKeyIDs(t *testing.T) {
	f := sqliteOnly(t)
	s := f.svc
	if got := s.VaultURI("kv1"); got != "https://kv1.vault.localhost:8443" {
		t.Fatalf("VaultURI = %s", got)
	}
	if got := s.KeyID("kv1", "cmk", ""); got != "https://kv1.vault.localhost:8443/keys/cmk" {
		t.Fatalf("KeyID = %s", got)
	}
	ver := "0123456789abcdef0123456789abcdef"
	for _, tc := range []struct {
		kid, vault, name, version string
	}{
		{s.KeyID("kv1", "cmk", ver), "kv1", "cmk", ver},
		{s.KeyID("kv1", "cmk", ""), "kv1", "cmk", ""},
		{s.KeyID("kv1", "cmk", "") + "/", "kv1", "cmk", ""},
		{"HTTPS://KEYHOLD.TEST:8443/vaults/KV1/keys/Cmk/" + "0123456789ABCDEF0123456789ABCDEF", "KV1", "Cmk", "0123456789ABCDEF0123456789ABCDEF"},
		// The path form (the alias, and ids stored before host-form
		// vaults), the host form on any port, and the stored form.
		{testBase + "/vaults/kv1/keys/cmk/" + ver, "kv1", "cmk", ver},
		{"https://KV1.Vault.Localhost:9443/keys/cmk/" + ver, "KV1", "cmk", ver},
		{"https://kv1.vault.localhost/keys/cmk", "kv1", "cmk", ""},
		{"/vaults/kv1/keys/cmk/" + ver, "kv1", "cmk", ver},
	} {
		v, n, ver, err := s.ParseKeyID(tc.kid)
		if err != nil || v != tc.vault || n != tc.name || ver != tc.version {
			t.Errorf("ParseKeyID(%q) = %q, %q, %q, %v", tc.kid, v, n, ver, err)
		}
	}
	for _, bad := range []string{
		"",
		testBase,
		testBase + "/vaults/kv1",
		testBase + "/vaults/kv1/keys",
		testBase + "/vaults/kv1/secrets/cmk",
		testBase + "/vaults/kv1/keys/cmk/short",
		testBase + "/vaults/kv1/keys/cmk/" + ver + "/wrapkey",
		testBase + "/vaults/k/keys/cmk",
		testBase + "/vaults/kv1/keys/c_k",
		"https://other.test:8443/vaults/kv1/keys/cmk",
		"https://kv1.vault.azure.net/keys/cmk/" + ver,
		"https://kv1.other.localhost:8443/keys/cmk/" + ver,
		"https://a.kv1.vault.localhost:8443/keys/cmk/" + ver,
		"https://kv1.vault.localhost:8443/vaults/kv1/keys/cmk/" + ver,
		"/vaults/k/keys/cmk",
		"/x/vaults/kv1/keys/cmk",
	} {
		if _, _, _, err := s.ParseKeyID(bad); !codeIs(err, keyhold.CodeBadParameter) {
			t.Errorf("ParseKeyID(%q) = %v; want BadParameter", bad, err)
		}
	}
}

// TestConcurrentUnwraps runs unwraps of software and (with SoftHSM)
// token keys from many goroutines at once: the token's sessions are
// shared through a pool.
func TestConcurrentUnwraps(t *testing.T) {
	var hsm *PKCS11Config
	if cfg, err := hsmtest.Config(); err == nil {
		hsm = cfg
	}
	f := newFixtureWith(t, storetest.OpenSQLite, hsm)
	v := f.rbacVault("kv-concurrent", nil)
	types := []string{keyhold.KeyTypeRSA}
	if hsm != nil {
		types = append(types, keyhold.KeyTypeRSAHSM)
	}
	type wrappedValue struct {
		key, version, alg string
		value, ct         []byte
	}
	var ws []wrappedValue
	for _, kty := range types {
		name := "k-" + kty
		b := must[*keyhold.KeyBundle](t)(f.svc.CreateKey(as(officer), v.Name, name, keyhold.CreateKeyParams{Type: kty}))
		for i, alg := range []string{crypt.AlgRSAOAEP, crypt.AlgRSAOAEP256} {
			value := bytes.Repeat([]byte{byte(i + 1)}, 32)
			_, ct := must2(t)(f.svc.WrapKey(as(encUser), v.Name, name, "", alg, value))
			ws = append(ws, wrappedValue{name, b.Version.Version, alg, value, ct})
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := 0; g < 8; g++ {
		wg.Go(func() {
			for i := 0; i < 4; i++ {
				w := ws[(g+i)%len(ws)]
				_, got, err := f.svc.UnwrapKey(as(encUser), v.Name, w.key, w.version, w.alg, w.ct)
				if err == nil && !bytes.Equal(got, w.value) {
					err = fmt.Errorf("%s %s: wrong value", w.key, w.alg)
				}
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
