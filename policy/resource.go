package policy

import "github.com/keyhold/keyhold"

// The enterprise policy resource as ARM answers it and takes it is the
// root's (keyhold.PolicyResource), where the PolicyService contract that
// passes it lives; these names keep this package's code and the template
// engine's as they were.

// ResourceType is the policy's ARM resource type.
const ResourceType = keyhold.PolicyResourceType

// IdentitySystemAssigned is the only managed identity type a policy has.
const IdentitySystemAssigned = keyhold.PolicyIdentitySystemAssigned

// ExampleResource is a policy body, quoted by messages that say what to
// send.
const ExampleResource = keyhold.ExamplePolicyResource

type (
	Resource           = keyhold.PolicyResource
	ResourceIdentity   = keyhold.PolicyResourceIdentity
	ResourceProperties = keyhold.PolicyResourceProperties
	Encryption         = keyhold.PolicyEncryption
	KeyVaultRef        = keyhold.PolicyKeyVaultRef
	KeyRef             = keyhold.PolicyKeyRef
	ResourceInput      = keyhold.PolicyResourceInput
	IdentityInput      = keyhold.PolicyIdentityInput
	PropertiesInput    = keyhold.PolicyPropertiesInput
	EncryptionInput    = keyhold.PolicyEncryptionInput
)

// ToResource returns p as ARM answers it.
func ToResource(p *keyhold.EnterprisePolicy) *Resource { return keyhold.ToPolicyResource(p) }

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
