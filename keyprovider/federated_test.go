//go:build keyhold_azure

package keyprovider_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	nethttp "net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/egress"
	khttp "github.com/keyhold/keyhold/http"
	"github.com/keyhold/keyhold/keyprovider"
	"github.com/keyhold/keyhold/keyprovider/providertest"
	"github.com/keyhold/keyhold/platform"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// crossing is the trust chain across two Keyhold servers with no shared
// secret: the platform's managed identity (mi, in pw), and the customer's
// app (in cw) whose federated credential trusts the platform's issuer for
// mi's object id.
type crossing struct {
	pw, cw *world
	mi     *identity
	app    *identity
	fic    string // the federated credential's id
}

// newCrossing builds the chain; the customer's server may fetch the
// platform's issuer documents from loopback, trusting the test CA.
func newCrossing(t *testing.T, pw, cw *world) *crossing { return newCrossingTB(t, pw, cw) }

func newCrossingTB(t testing.TB, pw, cw *world) *crossing {
	t.Helper()
	ctx := context.Background()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(cw.ca)
	pol, err := egress.New(egress.Options{Allow: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	cw.p.SetFederationClient(platform.NewFederationClient(pool, pol))
	x := &crossing{pw: pw, cw: cw, mi: pw.newIdentity(t)}
	sp := &keyhold.Principal{ID: uuid.NewString(), TenantID: cw.tenant, Type: keyhold.PrincipalServicePrincipal,
		DisplayName: "platform-cmk", AppID: uuid.NewString(), CreatedAt: time.Now()}
	x.fic = uuid.NewString()
	cw.update(t, func(tx keyhold.Tx) error {
		if err := tx.CreatePrincipal(ctx, sp); err != nil {
			return err
		}
		return tx.AddFederatedCredential(ctx, &keyhold.FederatedCredential{ID: x.fic, PrincipalID: sp.ID, Name: "platform-cmk",
			Issuer: pw.url + "/" + pw.tenant + "/v2.0", Subject: x.mi.PrincipalID, Audiences: []string{keyhold.FederatedAudience}, CreatedAt: time.Now()})
	})
	x.app = &identity{Identity: keyhold.Identity{TenantID: cw.tenant, PrincipalID: sp.ID, AppID: sp.AppID, Type: sp.Type, Audience: keyhold.AudienceVault}}
	return x
}

// provider is a federated provider of the platform's identity: a fresh
// one has no token cached.
func (x *crossing) provider(t testing.TB) *keyprovider.Azure {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(x.cw.ca)
	hc := &nethttp.Client{Transport: &nethttp.Transport{TLSClientConfig: &tls.Config{RootCAs: pool},
		DialContext: khttp.VaultDialer("", strings.TrimPrefix(x.cw.url, "https://"))}}
	t.Cleanup(hc.CloseIdleConnections)
	p, err := keyprovider.NewFederated(keyprovider.FederatedIdentity{TenantID: x.cw.tenant, ClientID: x.app.AppID, AuthorityHost: x.cw.url + "/"},
		func(ctx context.Context) (string, error) {
			return x.pw.p.ManagedIdentityAssertion(ctx, x.mi.PrincipalID)
		},
		&azkeys.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: hc, Retry: policy.RetryOptions{MaxRetries: -1}}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestFederated runs the providers' suite with the key in the customer's
// Keyhold, reached by the platform's Keyhold as its managed identity
// through the federated credential (both storage backends on the
// platform's side).
func TestFederated(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		pw, cw := newWorldOn(t, open(t)), newWorld(t)
		providertest.Run(t, func(t *testing.T) *providertest.Env {
			x := newCrossing(t, pw, cw)
			vaultName := cw.newVault(t)
			assignment := cw.grant(t, x.app, vaultName)
			revoke := func(t *testing.T) {
				cw.update(t, func(tx keyhold.Tx) error { return tx.DeleteRoleAssignment(context.Background(), assignment) })
			}
			return cw.env(t, x.app, vaultName, revoke, func(*identity) keyprovider.Provider { return x.provider(t) })
		})
	})
}

// TestFederatedSignInClasses: the customer removing the federated
// credential is a revocation (CodeForbidden, AccessDenied) at the next
// token request; the customer's server not answering is a transient
// fault (CodeKeyVaultUnavailable); a non-https authority is refused.
func TestFederatedSignInClasses(t *testing.T) {
	pw, cw := newWorld(t), newWorld(t)
	x := newCrossing(t, pw, cw)
	vaultName := cw.newVault(t)
	cw.grant(t, x.app, vaultName)
	e := cw.env(t, x.app, vaultName, nil, func(*identity) keyprovider.Provider { return x.provider(t) })
	keyID := e.NewKey(t)
	if err := e.Provider.Probe(context.Background(), keyID); err != nil {
		t.Fatalf("Probe across the boundary: %v", err)
	}
	cw.update(t, func(tx keyhold.Tx) error {
		return tx.DeleteFederatedCredential(context.Background(), x.app.PrincipalID, x.fic)
	})
	err := x.provider(t).Probe(context.Background(), keyID)
	var ke *keyhold.Error
	if keyhold.ErrorCode(err) != keyhold.CodeForbidden || !asError(err, &ke) || ke.Inner != keyhold.InnerAccessDenied {
		t.Fatalf("Probe with the federated credential removed = %v, want Forbidden/AccessDenied", err)
	}
	fresh := x.provider(t)
	cw.srv.Close()
	if err := fresh.Probe(context.Background(), keyID); keyhold.ErrorCode(err) != keyhold.CodeKeyVaultUnavailable {
		t.Fatalf("Probe with the customer's server down = %v, want %s", err, keyhold.CodeKeyVaultUnavailable)
	}
	_, err = keyprovider.NewFederated(keyprovider.FederatedIdentity{TenantID: cw.tenant, ClientID: x.app.AppID, AuthorityHost: "http://login.example/"}, nil, nil)
	if keyhold.ErrorCode(err) != keyhold.CodeBadRequest {
		t.Fatalf("an http authority = %v, want BadRequest", err)
	}
}

func asError(err error, target **keyhold.Error) bool {
	for err != nil {
		if e, ok := err.(*keyhold.Error); ok {
			*target = e
			return true
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}

// BenchmarkFederatedUnwrap measures unwraps of one RSA-2048 ciphertext
// (p50 and p99 besides the mean) in the same run: in process (builtin),
// over HTTPS with a client secret (HTTP), and across the boundary as the
// platform's managed identity through the federated credential
// (federated: another Keyhold's vault). First-contact reports the time
// of a fresh federated provider's first probe: the challenge, the
// assertion, the token exchange (with the issuer's documents fetched by
// the customer's Keyhold) and a wrap and unwrap.
func BenchmarkFederatedUnwrap(b *testing.B) {
	pw, cw := newWorld(b), newWorld(b)
	x := newCrossingTB(b, pw, cw)
	ctx := context.Background()
	local := cw.newIdentity(b)
	vaultName := cw.newVault(b)
	cw.grant(b, x.app, vaultName)
	cw.grant(b, local, vaultName)
	kb, err := cw.v.CreateKey(cw.admin, vaultName, "bench", keyhold.CreateKeyParams{Type: keyhold.KeyTypeRSA, Size: 2048})
	if err != nil {
		b.Fatal(err)
	}
	keyID := strings.TrimSuffix(kb.KID, "/"+kb.Version.Version)
	b.Run("first-contact", func(b *testing.B) {
		var ds []time.Duration
		for b.Loop() {
			p := x.provider(b)
			start := time.Now()
			if err := p.Probe(ctx, keyID); err != nil {
				b.Fatal(err)
			}
			ds = append(ds, time.Since(start))
		}
		reportPercentiles(b, ds)
	})
	for _, pr := range []struct {
		name string
		p    keyprovider.Provider
	}{
		{"builtin", keyprovider.NewBuiltin(cw.v, &local.Identity)},
		{"HTTP", cw.azureProvider(b, local)},
		{"federated", x.provider(b)},
	} {
		b.Run(pr.name, func(b *testing.B) {
			kid, ct, err := pr.p.Wrap(ctx, keyID, make([]byte, 32))
			if err != nil {
				b.Fatal(err)
			}
			var ds []time.Duration
			for b.Loop() {
				start := time.Now()
				if _, err := pr.p.Unwrap(ctx, kid, ct); err != nil {
					b.Fatal(err)
				}
				ds = append(ds, time.Since(start))
			}
			reportPercentiles(b, ds)
		})
	}
}

// reportPercentiles reports the p50 and p99 of ds in milliseconds.
func reportPercentiles(b *testing.B, ds []time.Duration) {
	if len(ds) == 0 {
		return
	}
	slices.Sort(ds)
	at := func(q float64) float64 { return float64(ds[int(q*float64(len(ds)-1))].Microseconds()) / 1000 }
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
}
