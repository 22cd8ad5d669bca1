package keyhold

import (
	"context"
	"strings"
	"time"
)

// The last successful unwrap (issue 13, operator view): when an enterprise
// policy's managed identity last unwrapped with its key, per vault. The
// platform records it; `keyhold policy show` and the coverage report show
// it. A policy's system-assigned identity is its own (a recreated policy
// gets a new principal), so the record is keyed by the principal and the
// vault, and a policy moved to another vault starts at "never" there.

// UnwrapTx stores the last successful unwraps.
type UnwrapTx interface {
	// RecordUnwrap stores at as the last successful unwrap by principalID
	// with a key of vault (UnwrapVault's form), unless a later one is
	// stored: it never moves back, so replicas may write in any order.
	RecordUnwrap(ctx context.Context, principalID, vault string, at time.Time) error
	// LastUnwrap returns the last successful unwrap by principalID with a
	// key of vault, or the zero time if there was none.
	LastUnwrap(ctx context.Context, principalID, vault string) (time.Time, error)
}

// UnwrapVault is the form in which the last unwrap names a vault, from a
// key id: an external vault by its URL (https://{host}), a built-in vault
// by /vaults/{name} and a Managed HSM by /managedhsms/{name}, names that
// no address enters (replicas behind one address, or one restarted at
// another, record the same vault), folded to lower case. builtin and hsm
// say whether the platform reaches kid as its own vault's or HSM's key;
// then name is the vault's or HSM's name.
func UnwrapVault(kid string, builtin, hsm bool, name string) string {
	switch {
	case hsm:
		return "/managedhsms/" + strings.ToLower(name)
	case builtin:
		return "/vaults/" + strings.ToLower(name)
	}
	if k, err := ParseKeyID(kid); err == nil {
		return strings.ToLower(k.VaultURL)
	}
	if i := strings.Index(strings.ToLower(kid), "/keys/"); i > 0 {
		return strings.ToLower(kid[:i])
	}
	return strings.ToLower(kid)
}

// UnwrapVault returns the vault p names, in UnwrapVault's form: the
// last unwrap the policy shows is the one recorded for it.
func (p *EnterprisePolicy) UnwrapVault() string {
	if p.External != nil {
		return strings.ToLower(strings.TrimRight(p.External.URI, "/"))
	}
	id := strings.ToLower(strings.TrimRight(p.KeyVaultID, "/"))
	for _, kind := range []string{"/vaults/", "/managedhsms/"} {
		if i := strings.LastIndex(id, kind); i >= 0 {
			return kind + id[i+len(kind):]
		}
	}
	return id
}
