package platform

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyhold/keyhold"
)

// Issue 13: a policy may name a vault the operator doesn't run
// (keyhold.ExternalKeyVault). Its keys are reached as the policy's
// managed identity through the customer's directory (Config.ExternalCMK,
// keyprovider.NewFederated in the server), with an assertion the platform
// signs for the identity (Tokens.ManagedIdentityAssertion): no secret is
// stored. Everything that wraps, unwraps or probes a customer key goes
// through core.cmk, which routeCMK makes pick the external vault's
// wrapper when the key id is not one of the built-in vault's, so the
// link, the data plane and the health probe need no branch of their own.

// ExternalCMK returns a key wrapper of an external vault, signed in to the
// customer's directory as x names it with the assertions that assertion
// signs. It should implement keyhold.KeyProber.
type ExternalCMK func(x keyhold.ExternalKeyVault, assertion func(context.Context) (string, error)) (keyhold.KeyWrapper, error)

// useExternal makes p.cmk's wrappers reach external vaults with ext.
func useExternal(p *core, ext ExternalCMK) {
	builtin := p.cmk
	p.externalCMK = ext
	p.cmk = func(id *keyhold.Identity) keyhold.KeyWrapper {
		return &routedCMK{p: p, id: id, builtin: builtin(id)}
	}
}

// externalKeyID is the key id of pol's key in its external vault:
// {uri}/keys/{name}[/{version}].
func externalKeyID(pol *keyhold.EnterprisePolicy) string {
	kid := strings.TrimSuffix(pol.External.URI, "/") + "/keys/" + pol.KeyName
	if pol.KeyVersion != "" {
		kid += "/" + pol.KeyVersion
	}
	return kid
}

// inExternalVault reports whether kid names pol's key in pol's external
// vault (any version).
func inExternalVault(pol *keyhold.EnterprisePolicy, kid string) bool {
	if pol.External == nil {
		return false
	}
	prefix := strings.ToLower(strings.TrimSuffix(pol.External.URI, "/") + "/keys/" + pol.KeyName)
	k := strings.ToLower(kid)
	return k == prefix || strings.HasPrefix(k, prefix+"/")
}

// builtinKID reports whether kid names a key of the built-in vault: the
// stored relative form, the path form (of this or an earlier address),
// or one the vault parses as its own.
func builtinKID(kv KeyVault, kid string) bool {
	if strings.HasPrefix(kid, "/vaults/") {
		return true
	}
	if kv != nil {
		if _, _, _, err := kv.ParseKeyID(kid); err == nil {
			return true
		}
	}
	k, err := keyhold.ParseKeyID(kid)
	return err == nil && strings.Contains(strings.ToLower(k.VaultURL), "/vaults/")
}

// externalWrappers caches one wrapper per policy identity and external
// vault, so that tokens of the customer's directory are reused.
type externalWrappers struct {
	mu sync.Mutex
	m  map[keyhold.ExternalKeyVault]map[string]keyhold.KeyWrapper // vault → principal → wrapper
}

// routedCMK is core.cmk for one identity when Config.ExternalCMK is set.
type routedCMK struct {
	p       *core
	id      *keyhold.Identity
	builtin keyhold.KeyWrapper
}

// wrapperFor returns the wrapper that reaches kid: the built-in one, or
// that of the external vault of the policy whose identity this is, if kid
// names that policy's key there; CodeForbidden otherwise (a key id no
// policy of this identity names is reached by no one).
func (r *routedCMK) wrapperFor(ctx context.Context, kid string) (keyhold.KeyWrapper, error) {
	if builtinKID(r.p.kv, kid) || hsmKID(r.p.hsm, kid) { // a Managed HSM's key is reached as the built-in vault's (managedhsm.go)
		return r.builtin, nil
	}
	var pol *keyhold.EnterprisePolicy
	err := r.p.store.View(ctx, func(tx keyhold.Tx) error {
		pols, err := tx.ListPolicies(ctx, keyhold.PolicyFilter{})
		if err != nil {
			return err
		}
		for _, q := range pols {
			if q.PrincipalID == r.id.PrincipalID && inExternalVault(q, kid) {
				pol = q
				return nil
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if pol == nil {
		return nil, &keyhold.Error{Code: keyhold.CodeForbidden, Inner: keyhold.InnerAccessDenied, Message: "key " + keyhold.Clip(kid) +
			" is not the key of an enterprise policy of managed identity " + r.id.PrincipalID + ": the platform reaches an external vault only for the policy that names it"}
	}
	if err := r.p.checkPolicy(pol); err != nil { // the seal covers the vault, tenant, app and authority
		return nil, err
	}
	x := *pol.External
	w := &r.p.external
	w.mu.Lock()
	defer w.mu.Unlock()
	if got := w.m[x][pol.PrincipalID]; got != nil {
		return got, nil
	}
	principal := pol.PrincipalID
	got, err := r.p.externalCMK(x, func(ctx context.Context) (string, error) {
		return (&Tokens{core: r.p}).ManagedIdentityAssertion(ctx, principal)
	})
	if err != nil {
		return nil, err
	}
	if w.m == nil {
		w.m = make(map[keyhold.ExternalKeyVault]map[string]keyhold.KeyWrapper)
	}
	if w.m[x] == nil {
		w.m[x] = make(map[string]keyhold.KeyWrapper)
	}
	w.m[x][principal] = got
	return got, nil
}

func (r *routedCMK) Wrap(ctx context.Context, keyID string, plaintext []byte) (string, []byte, error) {
	w, err := r.wrapperFor(ctx, keyID)
	if err != nil {
		return "", nil, err
	}
	return w.Wrap(ctx, keyID, plaintext)
}

func (r *routedCMK) Unwrap(ctx context.Context, kid string, ciphertext []byte) ([]byte, error) {
	w, err := r.wrapperFor(ctx, kid)
	if err != nil {
		return nil, err
	}
	if w == r.builtin {
		return w.Unwrap(ctx, kid, ciphertext)
	}
	start := time.Now()
	pt, err := w.Unwrap(ctx, kid, ciphertext)
	r.p.m.external.observe(kid, time.Since(start), err)
	return pt, err
}

// externalMetrics are the operator's view of unwraps across the boundary:
// their latency, their errors by class, and when each external vault
// last unwrapped.
type externalMetrics struct {
	seconds *prometheus.HistogramVec
	errors  *prometheus.CounterVec
	last    *prometheus.GaugeVec
}

func newExternalMetrics() externalMetrics {
	return externalMetrics{
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "keyhold_external_unwrap_seconds",
			Help:    "Time to unwrap an environment key with an external vault's key (issue 13), by result (ok or the error's class).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}, []string{"result"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "keyhold_external_unwrap_errors_total",
			Help: "Failed unwraps with an external vault's key, by class: revocation (locks at the health check), transient (Warning; cached keys serve until their TTL) or other."}, []string{"class"}),
		last: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "keyhold_external_last_unwrap_timestamp_seconds",
			Help: "When an external vault last unwrapped an environment key (Unix seconds), by vault URI."}, []string{"vault"}),
	}
}

// observe records one unwrap with kid's external vault.
func (m externalMetrics) observe(kid string, took time.Duration, err error) {
	if m.seconds == nil {
		return
	}
	result := "ok"
	if err != nil {
		result = externalErrorClass(err)
		m.errors.WithLabelValues(result).Inc()
	} else if k, perr := keyhold.ParseKeyID(kid); perr == nil {
		m.last.WithLabelValues(strings.ToLower(k.VaultURL)).Set(float64(time.Now().Unix()))
	}
	m.seconds.WithLabelValues(result).Observe(took.Seconds())
}

// externalErrorClass is the class of an external vault's error, as the
// health monitor reads it (classifyKeyError): revocation, transient, or
// other (a ciphertext the key can't open, a malformed request).
func externalErrorClass(err error) string {
	if classifyKeyError(err) == keyhold.HealthUnhealthy {
		return "revocation"
	}
	switch keyhold.ErrorCode(err) {
	case keyhold.CodeBadParameter, keyhold.CodeBadRequest:
		return "other"
	}
	return "transient"
}

func (r *routedCMK) Probe(ctx context.Context, keyID string) error {
	w, err := r.wrapperFor(ctx, keyID)
	if err != nil {
		return err
	}
	if pr, ok := w.(keyhold.KeyProber); ok {
		return pr.Probe(ctx, keyID)
	}
	return nil
}
