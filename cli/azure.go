package cli

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/keyvault/armkeyvault"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/keyhold/keyhold"
	khttp "github.com/keyhold/keyhold/http"
)

// The key vault commands ("keyhold keyvault", "keyhold key") talk to the
// server through the official Azure SDK clients, armkeyvault and azkeys,
// exactly as a program written against Azure would: every run of them
// checks that Keyhold's key vault APIs are wire-compatible with Azure's.

// kvClients are the SDK clients of the logged-in server, signed in with
// the saved login's service principal.
type kvClients struct {
	server       string // the server's URL, without a trailing slash
	vaultDomain  string // vaults are https://{vault}.{vaultDomain}:{port}/
	subscription string
	tenantID     string
	cred         *khttp.Credential
	opts         azcore.ClientOptions // the server's CA, in Transport
}

// errNoSubscription asks for the subscription the login does not name.
var errNoSubscription = usageErrorf("no subscription: pass --subscription ID (a login from a bootstrap file names one)")

// keyVaultClients connects with the saved login. subscription, if not
// empty, overrides the login's.
func (f *Factory) keyVaultClients(subscription string) (*kvClients, error) {
	home, err := f.Home()
	if err != nil {
		return nil, err
	}
	l, err := loadLogin(home)
	if err != nil {
		return nil, err
	}
	if subscription == "" {
		subscription = loginSubscription(home)
	}
	c, err := f.Dial(l) // a person's login too
	if err != nil {
		return nil, err
	}
	// The client's dialer connects {vault}.{domain} to the server, so
	// host-form vault URIs work with no hosts-file line.
	c.SetVaultDomain(l.VaultDomain)
	return &kvClients{server: c.BaseURL(), vaultDomain: c.VaultDomain(), subscription: subscription, tenantID: l.TenantID, cred: khttp.NewCredential(c),
		opts: azcore.ClientOptions{Transport: c.HTTPClient()}}, nil
}

// loginSubscription reads the subscription id of the saved login, which
// newer logins hold; "" if there is none.
func loginSubscription(home string) string {
	b, err := os.ReadFile(filepath.Join(home, loginFile))
	if err != nil {
		return ""
	}
	var l struct {
		SubscriptionID string `json:"subscriptionId"`
	}
	json.Unmarshal(b, &l)
	return l.SubscriptionID
}

// vaults returns the armkeyvault client of the subscription, with the
// server as its resource manager.
func (c *kvClients) vaults() (*armkeyvault.VaultsClient, error) {
	if c.subscription == "" {
		return nil, errNoSubscription
	}
	opts := &arm.ClientOptions{ClientOptions: c.opts}
	opts.Cloud = cloud.Configuration{Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
		cloud.ResourceManager: {Endpoint: c.server, Audience: string(keyhold.AudienceManagement)},
	}}
	return armkeyvault.NewVaultsClient(c.subscription, c.cred, opts)
}

// vaultURI returns the URI of the vault called name on the server, in the
// host form: https://{name}.{domain}:{the server's port}.
func (c *kvClients) vaultURI(name string) string {
	return keyhold.VaultAddress{PublicURL: c.server, Domain: c.vaultDomain}.VaultURI(name)
}

// keys returns the azkeys client of a vault: the one at uri, or the vault
// called name on the server (by host, which the client's dialer maps to
// the server). The SDK's default options hold, challenge verification
// included, except for a URI of the path form, <server>/vaults/{name},
// whose challenge names https://vault.azure.net, not the server's domain.
func (c *kvClients) keys(name, uri string) (*azkeys.Client, error) {
	if uri == "" {
		uri = c.vaultURI(name)
	}
	return azkeys.NewClient(uri, c.cred, &azkeys.ClientOptions{ClientOptions: c.opts,
		DisableChallengeResourceVerification: strings.Contains(strings.ToLower(uri), "/vaults/")})
}

// sdkError turns an SDK client's error into a *keyhold.Error, so that it
// prints as "<code>: <message>" like every other error.
func sdkError(err error) error {
	if err == nil {
		return nil
	}
	if e, _, ok := khttp.SDKError(err); ok {
		return e
	}
	return err
}

// callerObjectID returns the object id (oid claim) of the signed-in
// principal, from a token the server issued it.
func (c *kvClients) callerObjectID(ctx context.Context) (string, error) {
	tok, err := c.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{managementScope}})
	if err != nil {
		return "", err
	}
	return tokenObjectID(tok.Token)
}

// tokenObjectID reads the oid claim of an access token without verifying
// it: the token comes straight from the server's token endpoint.
func tokenObjectID(token string) (string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", errors.New("the access token is not a JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", fmt.Errorf("the access token's claims are not base64url: %w", err)
	}
	var claims struct {
		OID string `json:"oid"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil || claims.OID == "" {
		return "", errors.New("the access token has no oid claim")
	}
	return claims.OID, nil
}

// managementScope is the scope of the token whose oid names the caller.
const managementScope = string(keyhold.AudienceManagement) + "/.default"

// VaultFlags name a vault of the data plane: --vault NAME on the
// logged-in server, or --vault-uri.
type VaultFlags struct {
	Vault    string // --vault NAME on the logged-in server
	VaultURI string // --vault-uri URI
}

func (v *VaultFlags) check() error {
	switch {
	case v.Vault == "" && v.VaultURI == "":
		return usageErrorf("give --vault NAME (a vault of the logged-in server) or --vault-uri URI")
	case v.Vault != "" && v.VaultURI != "":
		return usageErrorf("give --vault or --vault-uri, not both")
	case v.VaultURI != "" && !strings.HasPrefix(v.VaultURI, "https://"):
		return usageErrorf("--vault-uri %q is not valid: use the vault's https URI, e.g. https://contoso-kv.vault.localhost:8443", v.VaultURI)
	}
	return nil
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// clientsFunc is how a command's options get the SDK clients.
type clientsFunc func(subscription string) (*kvClients, error)
