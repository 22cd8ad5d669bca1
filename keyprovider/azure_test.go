//go:build keyhold_azure

package keyprovider_test

// The tests of the Azure provider, which exists only in keyhold_azure builds
// until the external-vault issue wires it in (scripts/test.sh passes the
// tag).

import (
	"context"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/keyhold/keyhold"
	khttp "github.com/keyhold/keyhold/http"
	"github.com/keyhold/keyhold/keyprovider"
	"github.com/keyhold/keyhold/keyprovider/providertest"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

func init() {
	testProviders["azure"] = func(t *testing.T, w *world, id *identity) keyprovider.Provider { return w.azureProvider(t, id) }
}

// azureOptions are the SDK options for the test server: its CA, no
// retries (a test that stops the server must not wait for them), and no
// check that the vault's host is *.vault.azure.net.
func (w *world) azureOptions(c *khttp.Client) *azkeys.ClientOptions {
	return &azkeys.ClientOptions{
		ClientOptions:                        azcore.ClientOptions{Transport: c.HTTPClient(), Retry: policy.RetryOptions{MaxRetries: -1}},
		DisableChallengeResourceVerification: true,
	}
}

func TestAzure(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		w := newWorldOn(t, open(t))
		providertest.Run(t, func(t *testing.T) *providertest.Env {
			return envFor(t, w, func(id *identity) keyprovider.Provider { return w.azureProvider(t, id) })
		})
	})
}

// azureProvider is an Azure provider signed in as id through the token
// endpoint.
func (w *world) azureProvider(t testing.TB, id *identity) *keyprovider.Azure {
	t.Helper()
	c, err := khttp.NewClient(w.url, w.ca, id.TenantID, id.AppID, id.secret)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.HTTPClient().CloseIdleConnections)
	return keyprovider.NewAzure(khttp.NewCredential(c), w.azureOptions(c))
}

// TestAzureUnavailable: a vault that does not answer is a transient fault,
// not a revocation.
func TestAzureUnavailable(t *testing.T) {
	w := newWorld(t)
	e := envFor(t, w, func(id *identity) keyprovider.Provider { return w.azureProvider(t, id) })
	keyID := e.NewKey(t)
	if err := e.Provider.Probe(context.Background(), keyID); err != nil {
		t.Fatalf("Probe: %v", err)
	}
	w.srv.Close()
	for _, err := range []error{
		e.Provider.Probe(context.Background(), keyID),
		func() error { _, _, err := e.Provider.Wrap(context.Background(), keyID, make([]byte, 32)); return err }(),
	} {
		if code := keyhold.ErrorCode(err); code != keyhold.CodeKeyVaultUnavailable {
			t.Fatalf("error with the vault down = %s (%v), want %s", code, err, keyhold.CodeKeyVaultUnavailable)
		}
	}
}

func TestParseKeyID(t *testing.T) {
	const ver = "0123456789abcdef0123456789abcdef"
	tests := []struct {
		name, kid              string
		vaultURL, key, version string
		bad                    bool
	}{
		{name: "keyhold versioned", kid: "https://127.0.0.1:8443/vaults/kv1/keys/k1/" + ver, vaultURL: "https://127.0.0.1:8443/vaults/kv1", key: "k1", version: ver},
		{name: "keyhold unversioned", kid: "https://h/vaults/kv1/keys/k1", vaultURL: "https://h/vaults/kv1", key: "k1"},
		{name: "azure versioned", kid: "https://kv1.vault.azure.net/keys/k1/" + ver, vaultURL: "https://kv1.vault.azure.net", key: "k1", version: ver},
		{name: "azure unversioned, trailing slash", kid: "https://kv1.vault.azure.net/keys/k1/", vaultURL: "https://kv1.vault.azure.net", key: "k1"},
		{name: "key named keys", kid: "https://h/vaults/v/keys/keys/" + ver, vaultURL: "https://h/vaults/v", key: "keys", version: ver},
		{name: "http", kid: "http://h/keys/k1", bad: true},
		{name: "no keys segment", kid: "https://h/vaults/v/secrets/s", bad: true},
		{name: "query", kid: "https://h/keys/k1?x=1", bad: true},
		{name: "not a URL", kid: "k1", bad: true},
		{name: "version not hex", kid: "https://h/keys/k1/v2/zz", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, k, v, err := keyprovider.ParseKeyID(tt.kid)
			if tt.bad {
				if keyhold.ErrorCode(err) != keyhold.CodeBadParameter {
					t.Fatalf("ParseKeyID(%q) = %q %q %q, %v; want BadParameter", tt.kid, u, k, v, err)
				}
				return
			}
			if err != nil || u != tt.vaultURL || k != tt.key || v != tt.version {
				t.Fatalf("ParseKeyID(%q) = %q %q %q, %v; want %q %q %q", tt.kid, u, k, v, err, tt.vaultURL, tt.key, tt.version)
			}
		})
	}
}
