package http

import (
	"context"
	"errors"
	nethttp "net/http"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// Credential is an azcore.TokenCredential that gets its tokens from a
// Keyhold server's token endpoint through a Client, so that the official
// Azure SDK clients (azkeys, armkeyvault) authenticate to Keyhold as the
// Client's service principal. Tokens are cached per scope by the Client.
//
// The tenant an SDK asks for (the Key Vault challenge names the vault's)
// is not used: the Client signs in to its own tenant, and Keyhold's
// authorization decides what the token may do. Safe for concurrent use.
type Credential struct {
	c *Client

	mu      sync.Mutex
	expires map[string]time.Time // by access token, while it is cached
}

var _ azcore.TokenCredential = (*Credential)(nil)

// NewCredential returns a credential that gets tokens through c.
func NewCredential(c *Client) *Credential {
	return &Credential{c: c, expires: make(map[string]time.Time)}
}

// GetToken returns a token for the one scope in opts.Scopes, an audience
// followed by "/.default" (e.g. "https://vault.azure.net/.default").
// Errors are those of Client.Token: CodeInvalidClient for refused
// credentials, CodeInvalidScope for an unknown scope,
// CodeServiceUnavailable when the server can't be reached.
func (c *Credential) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	if len(opts.Scopes) != 1 {
		return azcore.AccessToken{}, errors.New("keyhold: a token request must name exactly one scope, such as https://vault.azure.net/.default")
	}
	now := c.c.now()
	tok, err := c.c.Token(ctx, opts.Scopes[0])
	if err != nil {
		return azcore.AccessToken{}, err
	}
	// The Client answers a cached token with the lifetime it was issued
	// with; remember when each token really expires.
	c.mu.Lock()
	defer c.mu.Unlock()
	exp, ok := c.expires[tok.AccessToken]
	if !ok {
		exp = now.Add(time.Duration(tok.ExpiresIn) * time.Second)
		for t, e := range c.expires {
			if !e.After(now) {
				delete(c.expires, t)
			}
		}
		c.expires[tok.AccessToken] = exp
	}
	return azcore.AccessToken{Token: tok.AccessToken, ExpiresOn: exp}, nil
}

// HTTPClient returns the HTTP client c sends its requests with: it trusts
// the CA c was made with. Give it to an Azure SDK client as its
// ClientOptions.Transport, so that the SDK reaches the same server.
func (c *Client) HTTPClient() *nethttp.Client { return c.hc }

// BaseURL returns the server URL c talks to, without a trailing slash.
func (c *Client) BaseURL() string { return c.base }
