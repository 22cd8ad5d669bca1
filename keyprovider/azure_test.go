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

// azureOptions are the SDK options for the test server: its CA, and the
// Client's transport, whose dialer connects the vaults' hosts
// ({vault}.vault.localhost) to the server; no retries (a test that stops
// the server must not wait for them). The SDK's challenge verification
// stays on.
func (w *world) azureOptions(c *khttp.Client) *azkeys.ClientOptions {
	return &azkeys.ClientOptions{
		ClientOptions: azcore.ClientOptions{Transport: c.HTTPClient(), Retry: policy.RetryOptions{MaxRetries: -1}},
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
