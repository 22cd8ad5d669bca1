package policy

import "github.com/keyhold/keyhold"

// The enterprise policy resource, as ARM answers it and takes it, is the
// root's (keyhold.PolicyResource), where the PolicyService contract that
// passes it lives. Spec and IdentitySystemAssigned keep their names here
// for the callers' tests.

// IdentitySystemAssigned is the only managed identity type a policy has.
const IdentitySystemAssigned = keyhold.PolicyIdentitySystemAssigned

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
