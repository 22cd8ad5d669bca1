package keyhold_test

import (
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
)

// TestParseKeyID: both vault-id forms parse, print back, and every other
// shape is BadParameter. The cases of keyprovider's former ParseKeyID are
// all here.
func TestParseKeyID(t *testing.T) {
	const ver = "0123456789abcdef0123456789abcdef"
	tests := []struct {
		name, kid                     string
		vaultURL, vault, key, version string
		print                         string // String() when it differs from kid
		bad                           bool
	}{
		{name: "keyhold versioned", kid: "https://127.0.0.1:8443/vaults/kv1/keys/k1/" + ver, vaultURL: "https://127.0.0.1:8443/vaults/kv1", vault: "kv1", key: "k1", version: ver},
		{name: "keyhold unversioned", kid: "https://h/vaults/kv1/keys/k1", vaultURL: "https://h/vaults/kv1", vault: "kv1", key: "k1"},
		{name: "keyhold under a path", kid: "https://h/kh/vaults/kv1/keys/k1", vaultURL: "https://h/kh/vaults/kv1", vault: "kv1", key: "k1"},
		{name: "keyhold other case", kid: "https://H/Vaults/kv1/KEYS/k1/" + strings.ToUpper(ver), vaultURL: "https://H/Vaults/kv1", vault: "kv1", key: "k1", version: strings.ToUpper(ver),
			print: "https://H/Vaults/kv1/keys/k1/" + strings.ToUpper(ver)},
		{name: "azure versioned", kid: "https://kv1.vault.azure.net/keys/k1/" + ver, vaultURL: "https://kv1.vault.azure.net", vault: "kv1", key: "k1", version: ver},
		{name: "azure unversioned, trailing slash", kid: "https://kv1.vault.azure.net/keys/k1/", vaultURL: "https://kv1.vault.azure.net", vault: "kv1", key: "k1",
			print: "https://kv1.vault.azure.net/keys/k1"},
		{name: "azure with a port", kid: "https://kv1.vault.azure.net:443/keys/k1", vaultURL: "https://kv1.vault.azure.net:443", vault: "kv1", key: "k1"},
		{name: "key named keys", kid: "https://h/vaults/v/keys/keys/" + ver, vaultURL: "https://h/vaults/v", vault: "v", key: "keys", version: ver},
		{name: "key named like a version", kid: "https://h/vaults/v/keys/" + ver, vaultURL: "https://h/vaults/v", vault: "v", key: ver},
		{name: "relative versioned", kid: "/vaults/kv1/keys/k1/" + ver, vaultURL: "/vaults/kv1", vault: "kv1", key: "k1", version: ver},
		{name: "relative unversioned", kid: "/vaults/kv1/keys/k1", vaultURL: "/vaults/kv1", vault: "kv1", key: "k1"},

		{name: "relative under a path", kid: "/x/vaults/kv1/keys/k1", bad: true},
		{name: "relative host form", kid: "/keys/k1", bad: true},
		{name: "relative without vaults", kid: "/vault/kv1/keys/k1", bad: true},
		{name: "scheme-relative", kid: "//h/vaults/kv1/keys/k1", bad: true},
		{name: "http", kid: "http://h/keys/k1", bad: true},
		{name: "http path form", kid: "http://h/vaults/v/keys/k1", bad: true},
		{name: "no keys segment", kid: "https://h/vaults/v/secrets/s", bad: true},
		{name: "query", kid: "https://h/keys/k1?x=1", bad: true},
		{name: "empty query", kid: "https://kv1.vault.azure.net/keys/k1?", bad: true},
		{name: "fragment", kid: "https://kv1.vault.azure.net/keys/k1#x", bad: true},
		{name: "user", kid: "https://u@kv1.vault.azure.net/keys/k1", bad: true},
		{name: "not a URL", kid: "k1", bad: true},
		{name: "empty", kid: "", bad: true},
		{name: "version not hex", kid: "https://h/keys/k1/v2/zz", bad: true},
		{name: "version too short", kid: "https://h/vaults/v/keys/k1/0123", bad: true},
		{name: "empty key name", kid: "https://h/vaults/v/keys/", bad: true},
		{name: "empty vault", kid: "https://h/vaults//keys/k1", bad: true},
		{name: "host form without a domain", kid: "https://h/keys/k1", bad: true},
		{name: "host form with an empty label", kid: "https://.vault.azure.net/keys/k1", bad: true},
		{name: "path without vaults", kid: "https://h/other/v/keys/k1", bad: true},
		{name: "escaped name", kid: "https://h/vaults/v/keys/k%2F1", bad: true},
		{name: "extra segment", kid: "https://h/vaults/v/keys/k1/" + ver + "/x", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := keyhold.ParseKeyID(tt.kid)
			if tt.bad {
				if keyhold.ErrorCode(err) != keyhold.CodeBadParameter || !strings.Contains(keyhold.ErrorMessage(err), "https://{vault}.{domain}/keys/") {
					t.Fatalf("ParseKeyID(%q) = %+v, %v; want BadParameter saying how", tt.kid, k, err)
				}
				return
			}
			want := keyhold.KeyID{VaultURL: tt.vaultURL, Vault: tt.vault, Name: tt.key, Version: tt.version}
			if err != nil || k != want {
				t.Fatalf("ParseKeyID(%q) = %+v, %v; want %+v", tt.kid, k, err, want)
			}
			print := tt.kid
			if tt.print != "" {
				print = tt.print
			}
			if k.String() != print {
				t.Fatalf("String() = %q, want %q", k.String(), print)
			}
			if again, err := keyhold.ParseKeyID(k.String()); err != nil || again != k {
				t.Fatalf("ParseKeyID(String()) = %+v, %v; want %+v", again, err, k)
			}
			if u := k.Unversioned(); u.Version != "" || u.Name != k.Name || u.VaultURL != k.VaultURL {
				t.Fatalf("Unversioned() = %+v", u)
			}
		})
	}
}

// TestNewKeyID: the path form is built from a server's base URL.
func TestNewKeyID(t *testing.T) {
	const ver = "0123456789abcdef0123456789abcdef"
	for _, c := range []struct{ base, version, want string }{
		{"https://keyhold.test:8443", ver, "https://keyhold.test:8443/vaults/kv1/keys/k1/" + ver},
		{"https://keyhold.test:8443/", "", "https://keyhold.test:8443/vaults/kv1/keys/k1"},
	} {
		if got := keyhold.NewKeyID(c.base, "kv1", "k1", c.version).String(); got != c.want {
			t.Errorf("NewKeyID(%q) = %q, want %q", c.base, got, c.want)
		}
	}
}

// TestKeyIDRelativeAndSameKey: every form's Relative is the one stored
// form, and SameKey compares vault, name and version across forms and
// hosts.
func TestKeyIDRelativeAndSameKey(t *testing.T) {
	const ver = "0123456789abcdef0123456789abcdef"
	forms := []string{
		"https://127.0.0.1:8443/vaults/kv1/keys/k1/" + ver,
		"https://10.0.0.2:9443/Vaults/KV1/keys/K1/" + strings.ToUpper(ver),
		"https://kv1.vault.localhost:8443/keys/k1/" + ver,
		"/vaults/kv1/keys/k1/" + ver,
	}
	first, err := keyhold.ParseKeyID(forms[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range forms {
		k, err := keyhold.ParseKeyID(f)
		if err != nil {
			t.Fatalf("ParseKeyID(%q): %v", f, err)
		}
		if !k.SameKey(first) || !first.SameKey(k) {
			t.Errorf("%q and %q: SameKey = false", f, forms[0])
		}
		if r := k.Relative(); !strings.EqualFold(r, "/vaults/kv1/keys/k1/"+ver) {
			t.Errorf("Relative(%q) = %q", f, r)
		}
	}
	for _, other := range []string{"/vaults/kv2/keys/k1/" + ver, "/vaults/kv1/keys/k2/" + ver, "/vaults/kv1/keys/k1/" + strings.Repeat("1", 32), "/vaults/kv1/keys/k1"} {
		k, _ := keyhold.ParseKeyID(other)
		if k.SameKey(first) {
			t.Errorf("%q: SameKey = true", other)
		}
	}
}

// TestVaultAddress: a vault's URI and key ids are host-form under the
// vault domain, with the public URL's port; the Host header of a request
// names a vault only under that domain; the challenge resource and the
// scope the SDKs then ask for agree.
func TestVaultAddress(t *testing.T) {
	const ver = "0123456789abcdef0123456789abcdef"
	a := keyhold.VaultAddress{PublicURL: "https://keyhold.example:8443"}
	if got := a.VaultURI("kv1"); got != "https://kv1.vault.localhost:8443" {
		t.Errorf("VaultURI = %q", got)
	}
	if got := a.KeyID("kv1", "k1", ver).String(); got != "https://kv1.vault.localhost:8443/keys/k1/"+ver {
		t.Errorf("KeyID = %q", got)
	}
	if got := (keyhold.VaultAddress{PublicURL: "https://kh.example.com", Domain: "Vault.Example.Com."}).VaultURI("kv1"); got != "https://kv1.vault.example.com" {
		t.Errorf("VaultURI without a port, custom domain = %q", got)
	}
	for host, want := range map[string]string{"kv1.vault.localhost:8443": "kv1", "KV1.Vault.Localhost": "kv1", "kv1.vault.localhost.": "kv1",
		"127.0.0.1:8443": "", "vault.localhost:8443": "", "a.b.vault.localhost": "", "kv1.vault.example.com": "", ".vault.localhost": ""} {
		got, ok := a.VaultOfHost(host)
		if got != want || ok != (want != "") {
			t.Errorf("VaultOfHost(%q) = %q, %v; want %q", host, got, ok, want)
		}
	}
	res := keyhold.ChallengeResource("kv1.vault.localhost:8443")
	if res != "https://vault.localhost:8443" {
		t.Errorf("ChallengeResource = %q", res)
	}
	if !keyhold.IsVaultScope(res+"/.default", "") || !keyhold.IsVaultScope("https://VAULT.localhost/.default", "vault.localhost") {
		t.Error("the challenge's scope is not a vault scope")
	}
	for _, s := range []string{res, "https://vault.example.com/.default", "http://vault.localhost/.default", "https://vault.localhost/x/.default", "https://evil.vault.localhost/.default"} {
		if keyhold.IsVaultScope(s, "") {
			t.Errorf("IsVaultScope(%q) = true", s)
		}
	}
}
