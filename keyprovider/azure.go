package keyprovider

import (
	"context"
	"fmt"
	"math/bits"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/keyhold/keyhold"
	khttp "github.com/keyhold/keyhold/http"
)

// Azure reaches keys over the Azure Key Vault REST API with the official
// azkeys SDK: keys of a vault on any Keyhold server, or of a real Azure
// Key Vault. A key id names its vault: https://{host}/vaults/{vault}/keys/…
// on Keyhold, https://{vault}.vault.azure.net/keys/… on Azure; Azure keeps
// one SDK client per vault URL. Safe for concurrent use.
type Azure struct {
	cred azcore.TokenCredential
	opts azkeys.ClientOptions

	mu      sync.Mutex
	clients map[string]*azkeys.Client // by vault URL
}

var (
	_ Provider          = (*Azure)(nil)
	_ keyhold.KeyReader = (*Azure)(nil)
)

// DefaultTryTimeout bounds one try of a request to the vault when the
// options given to NewAzure set no Retry.TryTimeout. A vault that takes
// longer has not answered: the call fails with CodeKeyVaultUnavailable (a
// transient fault) instead of holding the caller, a data-plane request
// among them, for as long as the network keeps the connection open.
const DefaultTryTimeout = 10 * time.Second

// NewAzure returns a provider that authenticates with cred (the identity
// whose access the vault checks). opts, if not nil, configures every SDK
// client: a Keyhold server needs its CA in opts.Transport and, because its
// host is not *.vault.azure.net, DisableChallengeResourceVerification.
// opts.Retry.TryTimeout 0 means DefaultTryTimeout.
func NewAzure(cred azcore.TokenCredential, opts *azkeys.ClientOptions) *Azure {
	a := &Azure{cred: cred, clients: make(map[string]*azkeys.Client)}
	if opts != nil {
		a.opts = *opts
	}
	if a.opts.Retry.TryTimeout == 0 {
		a.opts.Retry.TryTimeout = DefaultTryTimeout
	}
	return a
}

// client returns the SDK client of a vault URL.
func (a *Azure) client(vaultURL string) (*azkeys.Client, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if c, ok := a.clients[vaultURL]; ok {
		return c, nil
	}
	opts := a.opts
	c, err := azkeys.NewClient(vaultURL, a.cred, &opts)
	if err != nil {
		return nil, fmt.Errorf("keyprovider: creating a Key Vault client for %s: %w", vaultURL, err)
	}
	a.clients[vaultURL] = c
	return c, nil
}

func (a *Azure) parse(kid string) (*azkeys.Client, string, string, error) {
	k, err := keyhold.ParseKeyID(kid)
	if err != nil {
		return nil, "", "", err
	}
	c, err := a.client(k.VaultURL)
	return c, k.Name, k.Version, err
}

// Wrap encrypts plaintext with RSA-OAEP-256 under keyID (versioned or not)
// and returns the versioned kid the vault used.
func (a *Azure) Wrap(ctx context.Context, keyID string, plaintext []byte) (string, []byte, error) {
	c, name, version, err := a.parse(keyID)
	if err != nil {
		return "", nil, err
	}
	resp, err := c.WrapKey(ctx, name, version, azkeys.KeyOperationParameters{
		Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: plaintext}, nil)
	if err != nil {
		return "", nil, mapError(err)
	}
	// azkeys.ID.Version would take the vault for the host's root, as on
	// Azure; a Keyhold vault is <server>/vaults/{vault}.
	if resp.KID == nil {
		return "", nil, keyhold.Errorf(keyhold.CodeKeyVaultUnavailable, "the key vault's answer to wrapKey on %s has no kid", keyID)
	}
	if k, err := keyhold.ParseKeyID(string(*resp.KID)); err != nil || k.Version == "" {
		return "", nil, keyhold.Errorf(keyhold.CodeKeyVaultUnavailable, "the key vault's answer to wrapKey on %s has no versioned kid but %q", keyID, *resp.KID)
	}
	return string(*resp.KID), resp.Result, nil
}

// Unwrap decrypts ciphertext with exactly the key version kid names.
func (a *Azure) Unwrap(ctx context.Context, kid string, ciphertext []byte) ([]byte, error) {
	c, name, version, err := a.parse(kid)
	if err != nil {
		return nil, err
	}
	if version == "" {
		return nil, needVersion(kid)
	}
	resp, err := c.UnwrapKey(ctx, name, version, azkeys.KeyOperationParameters{
		Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: ciphertext}, nil)
	if err != nil {
		return nil, mapError(err)
	}
	return resp.Result, nil
}

// Probe checks that the identity may get the key, that its version is
// enabled, and that it wraps and unwraps a random value.
func (a *Azure) Probe(ctx context.Context, keyID string) error {
	c, name, version, err := a.parse(keyID)
	if err != nil {
		return err
	}
	resp, err := c.GetKey(ctx, name, version, nil)
	if err != nil {
		return mapError(err)
	}
	if at := resp.Attributes; at != nil && at.Enabled != nil && !*at.Enabled {
		kid := keyID
		if resp.Key != nil && resp.Key.KID != nil {
			kid = string(*resp.Key.KID)
		}
		return disabled(kid)
	}
	return probeRoundTrip(ctx, a, keyID)
}

// ReadKey reads the public attributes of the key version keyID names (its
// current version if unversioned) with get key: what a link checks of an
// external vault's key (type, size, enabled, key_ops, purge protection
// through the recovery level) and the version the rotation pickup
// follows. An answer without a versioned kid of the key asked for is not
// Key Vault's: CodeKeyVaultUnavailable, saying so.
func (a *Azure) ReadKey(ctx context.Context, keyID string) (*keyhold.KeyInfo, error) {
	c, name, version, err := a.parse(keyID)
	if err != nil {
		return nil, err
	}
	resp, err := c.GetKey(ctx, name, version, nil)
	if err != nil {
		return nil, mapError(err)
	}
	if resp.Key == nil || resp.Key.KID == nil {
		return nil, keyhold.Errorf(keyhold.CodeKeyVaultUnavailable, "the key vault's answer to get key %s has no key: it does not speak the Key Vault API as expected", keyhold.Clip(keyID))
	}
	kid := string(*resp.Key.KID)
	want, _ := keyhold.ParseKeyID(keyID)
	got, err := keyhold.ParseKeyID(kid)
	if err != nil || got.Version == "" || !strings.EqualFold(got.Name, want.Name) || (want.Version != "" && !strings.EqualFold(got.Version, want.Version)) {
		return nil, keyhold.Errorf(keyhold.CodeKeyVaultUnavailable, "the key vault's answer to get key %s names another key, %q: it does not speak the Key Vault API as expected", keyhold.Clip(keyID), keyhold.Clip(kid))
	}
	info := &keyhold.KeyInfo{KID: kid, Enabled: true}
	if resp.Key.Kty != nil {
		info.Type = string(*resp.Key.Kty)
	}
	if info.Type == string(azkeys.KeyTypeRSA) || info.Type == string(azkeys.KeyTypeRSAHSM) {
		n := resp.Key.N
		for len(n) > 0 && n[0] == 0 {
			n = n[1:]
		}
		if len(n) > 0 {
			info.Size = (len(n)-1)*8 + bits.Len8(n[0])
		}
	}
	for _, op := range resp.Key.KeyOps {
		if op != nil {
			info.Ops = append(info.Ops, string(*op))
		}
	}
	if at := resp.Attributes; at != nil {
		if at.Enabled != nil {
			info.Enabled = *at.Enabled
		}
		if at.RecoveryLevel != nil {
			info.RecoveryLevel = string(*at.RecoveryLevel)
		}
	}
	return info, nil
}

// mapError turns an SDK error into a *keyhold.Error with the code, inner
// code and message Key Vault answered. An answer that says "not now" (5xx,
// 429 throttled, 408 timed out), whatever code its body holds, or no
// answer at all, is CodeKeyVaultUnavailable: a transient fault, never a
// revocation. Only what the vault itself answers with a 4xx (403
// Forbidden with its inner code, 404 KeyNotFound or VaultNotFound, ...)
// keeps its code, so that a caller can tell a revocation.
func mapError(err error) error {
	if err == nil {
		return nil
	}
	e, status, ok := khttp.SDKError(err)
	if !ok && strings.HasPrefix(err.Error(), "unmarshalling type") {
		// An answer, but not Key Vault's JSON (a captive portal, a
		// proxy's page, a server of another kind): not a revocation.
		return &keyhold.Error{Code: keyhold.CodeKeyVaultUnavailable, Err: err,
			Message: "the key vault's answer is not the Key Vault API's (" + keyhold.Clip(err.Error()) + "): check that the vault URI names a key vault and that nothing between answers in its place"}
	}
	if !ok {
		// No answer (connection refused, timeout, cancellation) or a
		// failed token request, whose *keyhold.Error the credential gave.
		return unavailable(err)
	}
	if transientStatus(status) {
		// The body's codes are kept in the message only: an inner code
		// such as ForbiddenByRbac on a 503 must not read as a revocation.
		codes := e.Code
		if e.Inner != "" {
			codes += "/" + e.Inner
		}
		return &keyhold.Error{Code: keyhold.CodeKeyVaultUnavailable,
			Message: fmt.Sprintf("the key vault failed (%d %s): %s; retry later", status, codes, e.Message), Err: err}
	}
	return e
}

// transientStatus reports whether an HTTP status says the vault could not
// serve the request now, rather than refused it.
func transientStatus(status int) bool {
	return status >= 500 || status == http.StatusTooManyRequests || status == http.StatusRequestTimeout
}
