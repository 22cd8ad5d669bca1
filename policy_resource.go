package keyhold

import (
	"bytes"
	"encoding/json"
	"strings"
	"time"
)

// The enterprise policy resource as ARM answers it and takes it, in the
// shapes of the Microsoft.PowerPlatform 2020-10-30 API. The http package
// serves them, the CLI prints them, and templates are read through them.

// PolicyResourceType is the policy's ARM resource type.
const PolicyResourceType = "Microsoft.PowerPlatform/enterprisePolicies"

// PolicyIdentitySystemAssigned is the only managed identity type a policy has.
const PolicyIdentitySystemAssigned = "SystemAssigned"

// PolicyResource is an enterprise policy as ARM answers it.
type PolicyResource struct {
	ID         string                   `json:"id"`
	Name       string                   `json:"name"`
	Type       string                   `json:"type"`
	Location   string                   `json:"location"`
	Kind       string                   `json:"kind"`
	Identity   PolicyResourceIdentity   `json:"identity"`
	Tags       map[string]string        `json:"tags"`
	Properties PolicyResourceProperties `json:"properties"`
}

// PolicyResourceIdentity is the policy's system-assigned managed identity.
type PolicyResourceIdentity struct {
	Type        string `json:"type"`
	PrincipalID string `json:"principalId"`
	TenantID    string `json:"tenantId"`
}

// PolicyResourceProperties are a policy's properties. Lockbox and
// NetworkInjection, which Keyhold does not implement, are always null.
type PolicyResourceProperties struct {
	SystemID         string            `json:"systemId"`
	Encryption       *PolicyEncryption `json:"encryption"`
	Lockbox          json.RawMessage   `json:"lockbox"`
	NetworkInjection json.RawMessage   `json:"networkInjection"`
	HealthStatus     string            `json:"healthStatus"`
}

// PolicyEncryption is an Encryption policy's key.
type PolicyEncryption struct {
	State    string            `json:"state"`
	KeyVault PolicyKeyVaultRef `json:"keyVault"`
}

// PolicyKeyVaultRef names the vault and the key: a built-in vault by ARM
// resource id (ID), or an external vault (issue 13) by its URI with the
// customer's directory and app that hold the federated credential.
type PolicyKeyVaultRef struct {
	ID                string                   `json:"id"`
	URI               string                   `json:"uri,omitempty"`
	FederatedIdentity *PolicyFederatedIdentity `json:"federatedIdentity,omitempty"`
	Key               PolicyKeyRef             `json:"key"`
	// LastSuccessfulUnwrap is read-only, Keyhold's own (issue 13): when
	// the policy's identity last unwrapped with the key in this vault;
	// left out if it never did, or the answer is not a single policy's GET.
	LastSuccessfulUnwrap *time.Time `json:"lastSuccessfulUnwrap,omitempty"`
}

// PolicyFederatedIdentity is the customer's app as which the platform
// reaches an external vault.
type PolicyFederatedIdentity struct {
	TenantID      string `json:"tenantId"`
	ClientID      string `json:"clientId"`
	AuthorityHost string `json:"authorityHost,omitempty"`
}

// PolicyKeyRef names a key and, optionally, one of its versions.
type PolicyKeyRef struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
}

// ToPolicyResource returns p as ARM answers it.
func ToPolicyResource(p *EnterprisePolicy) *PolicyResource {
	tags := p.Tags
	if tags == nil {
		tags = map[string]string{}
	}
	kv := PolicyKeyVaultRef{ID: p.KeyVaultID, Key: PolicyKeyRef{Name: p.KeyName, Version: p.KeyVersion}, LastSuccessfulUnwrap: p.LastUnwrap}
	if x := p.External; x != nil {
		kv.URI = x.URI
		kv.FederatedIdentity = &PolicyFederatedIdentity{TenantID: x.TenantID, ClientID: x.ClientID, AuthorityHost: x.AuthorityHost}
	}
	return &PolicyResource{
		ID: p.ID(), Name: p.Name, Type: PolicyResourceType, Location: p.Location, Kind: p.Kind,
		Identity: PolicyResourceIdentity{Type: PolicyIdentitySystemAssigned, PrincipalID: p.PrincipalID, TenantID: p.TenantID},
		Tags:     tags,
		Properties: PolicyResourceProperties{
			SystemID:     p.SystemID,
			Encryption:   &PolicyEncryption{State: p.EncryptionState, KeyVault: kv},
			HealthStatus: string(p.HealthStatus),
		},
	}
}

// Policy returns the policy r describes, as a client reads it back: the
// subscription and resource group come from its id.
func (r *PolicyResource) Policy() *EnterprisePolicy {
	p := &EnterprisePolicy{Name: r.Name, Location: r.Location, Kind: r.Kind, TenantID: r.Identity.TenantID,
		PrincipalID: r.Identity.PrincipalID, SystemID: r.Properties.SystemID, HealthStatus: HealthStatus(r.Properties.HealthStatus),
		Tags: r.Tags}
	if segs := strings.Split(r.ID, "/"); len(segs) >= 5 {
		p.SubscriptionID, p.ResourceGroup = segs[2], segs[4]
	}
	if e := r.Properties.Encryption; e != nil {
		p.EncryptionState, p.KeyVaultID, p.KeyName, p.KeyVersion = e.State, e.KeyVault.ID, e.KeyVault.Key.Name, e.KeyVault.Key.Version
		p.LastUnwrap = e.KeyVault.LastSuccessfulUnwrap
		if e.KeyVault.URI != "" {
			p.External = &ExternalKeyVault{URI: e.KeyVault.URI}
			if f := e.KeyVault.FederatedIdentity; f != nil {
				p.External.TenantID, p.External.ClientID, p.External.AuthorityHost = f.TenantID, f.ClientID, f.AuthorityHost
			}
		}
	}
	return p
}

// PolicyResourceInput is the body of a PUT or PATCH of a policy, and a policy
// resource of a template. Pointers tell an omitted property from an empty
// one; read-only properties (id, systemId, principalId, healthStatus) are
// ignored, as ARM ignores them.
type PolicyResourceInput struct {
	Location   *string                `json:"location"`
	Kind       *string                `json:"kind"`
	Identity   *PolicyIdentityInput   `json:"identity"`
	Tags       *map[string]string     `json:"tags"`
	Properties *PolicyPropertiesInput `json:"properties"`
}

// PolicyIdentityInput is the identity of a PolicyResourceInput.
type PolicyIdentityInput struct {
	Type *string `json:"type"`
}

// PolicyPropertiesInput are the properties of a PolicyResourceInput.
type PolicyPropertiesInput struct {
	Encryption       *PolicyEncryptionInput `json:"encryption"`
	Lockbox          json.RawMessage        `json:"lockbox"`
	NetworkInjection json.RawMessage        `json:"networkInjection"`
}

// PolicyEncryptionInput is the encryption of a PolicyResourceInput.
type PolicyEncryptionInput struct {
	State    *string              `json:"state"`
	KeyVault *PolicyKeyVaultInput `json:"keyVault"`
}

// PolicyKeyVaultInput is the keyVault of a PolicyEncryptionInput.
type PolicyKeyVaultInput struct {
	ID *string `json:"id"`
	// URI and FederatedIdentity name an external vault (issue 13).
	URI               *string                  `json:"uri"`
	FederatedIdentity *PolicyFederatedIdentity `json:"federatedIdentity"`
	Key               *struct {
		Name    *string `json:"name"`
		Version *string `json:"version"`
	} `json:"key"`
}

// external returns the external vault an input names: nil without a uri
// or a federatedIdentity.
func (kv *PolicyKeyVaultInput) external() *ExternalKeyVault {
	if kv.URI == nil && kv.FederatedIdentity == nil {
		return nil
	}
	x := &ExternalKeyVault{URI: derefString(kv.URI)}
	if f := kv.FederatedIdentity; f != nil {
		x.TenantID, x.ClientID, x.AuthorityHost = f.TenantID, f.ClientID, f.AuthorityHost
	}
	return x
}

// ExamplePolicyResource is a policy body, quoted by messages that say what to
// send.
const ExamplePolicyResource = `{"location":"europe","kind":"PolicyEncryption","identity":{"type":"SystemAssigned"},` +
	`"properties":{"encryption":{"state":"Enabled","keyVault":{"id":"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults/{vault}","key":{"name":"{key}"}}}}}`

// isNull reports whether a raw property is absent or null.
func isNullJSON(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || bytes.Equal(t, []byte("null"))
}

// unsupported refuses the properties Keyhold does not implement.
func (p *PolicyPropertiesInput) unsupported() error {
	if p == nil {
		return nil
	}
	for _, u := range []struct {
		name string
		raw  json.RawMessage
	}{{"lockbox", p.Lockbox}, {"networkInjection", p.NetworkInjection}} {
		if !isNullJSON(u.raw) {
			return Errorf(CodeNotSupported,
				"properties.%s is not supported: Keyhold implements PolicyEncryption policies only; send \"%s\": null or leave it out", u.name, u.name)
		}
	}
	return nil
}

func derefString(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// PolicySpec returns the policy a PUT asks for. Omitted properties are empty,
// and the service refuses the required ones.
func (in *PolicyResourceInput) Spec() (PolicySpec, error) {
	var s PolicySpec
	s.Location, s.Kind = derefString(in.Location), derefString(in.Kind)
	if in.Identity != nil {
		s.IdentityType = derefString(in.Identity.Type)
	}
	if in.Tags != nil {
		s.Tags = *in.Tags
	}
	if p := in.Properties; p != nil {
		if err := p.unsupported(); err != nil {
			return PolicySpec{}, err
		}
		if e := p.Encryption; e != nil {
			s.EncryptionState = derefString(e.State)
			if kv := e.KeyVault; kv != nil {
				s.KeyVaultID = derefString(kv.ID)
				s.External = kv.external()
				if k := kv.Key; k != nil {
					s.KeyName, s.KeyVersion = derefString(k.Name), derefString(k.Version)
				}
			}
		}
	}
	return s, nil
}

// PolicyPatch returns the changes a PATCH asks for: what it names.
func (in *PolicyResourceInput) Patch() (PolicyPatch, error) {
	var c PolicyPatch
	c.Location, c.Kind, c.Tags = in.Location, in.Kind, in.Tags
	if in.Identity != nil {
		c.IdentityType = in.Identity.Type
	}
	if p := in.Properties; p != nil {
		if err := p.unsupported(); err != nil {
			return PolicyPatch{}, err
		}
		if e := p.Encryption; e != nil {
			c.EncryptionState = e.State
			if kv := e.KeyVault; kv != nil {
				c.KeyVaultID = kv.ID
				c.External = kv.external()
				if k := kv.Key; k != nil {
					c.KeyName, c.KeyVersion = k.Name, k.Version
				}
			}
		}
	}
	return c, nil
}
