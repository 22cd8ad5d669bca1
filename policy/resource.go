package policy

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/keyhold/keyhold"
)

// The enterprise policy resource as ARM answers it and takes it, in the
// shapes of the Microsoft.PowerPlatform 2020-10-30 API. The http package
// serves them, and templates are read through them.

// ResourceType is the policy's ARM resource type.
const ResourceType = "Microsoft.PowerPlatform/enterprisePolicies"

// IdentitySystemAssigned is the only managed identity type a policy has.
const IdentitySystemAssigned = "SystemAssigned"

// Resource is an enterprise policy as ARM answers it.
type Resource struct {
	ID         string             `json:"id"`
	Name       string             `json:"name"`
	Type       string             `json:"type"`
	Location   string             `json:"location"`
	Kind       string             `json:"kind"`
	Identity   ResourceIdentity   `json:"identity"`
	Tags       map[string]string  `json:"tags"`
	Properties ResourceProperties `json:"properties"`
}

// ResourceIdentity is the policy's system-assigned managed identity.
type ResourceIdentity struct {
	Type        string `json:"type"`
	PrincipalID string `json:"principalId"`
	TenantID    string `json:"tenantId"`
}

// ResourceProperties are a policy's properties. Lockbox and
// NetworkInjection, which Keyhold does not implement, are always null.
type ResourceProperties struct {
	SystemID         string          `json:"systemId"`
	Encryption       *Encryption     `json:"encryption"`
	Lockbox          json.RawMessage `json:"lockbox"`
	NetworkInjection json.RawMessage `json:"networkInjection"`
	HealthStatus     string          `json:"healthStatus"`
}

// Encryption is an Encryption policy's key.
type Encryption struct {
	State    string      `json:"state"`
	KeyVault KeyVaultRef `json:"keyVault"`
}

// KeyVaultRef names the vault (by ARM resource id) and the key.
type KeyVaultRef struct {
	ID  string `json:"id"`
	Key KeyRef `json:"key"`
}

// KeyRef names a key and, optionally, one of its versions.
type KeyRef struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
}

// ToResource returns p as ARM answers it.
func ToResource(p *keyhold.EnterprisePolicy) *Resource {
	tags := p.Tags
	if tags == nil {
		tags = map[string]string{}
	}
	return &Resource{
		ID: p.ID(), Name: p.Name, Type: ResourceType, Location: p.Location, Kind: p.Kind,
		Identity: ResourceIdentity{Type: IdentitySystemAssigned, PrincipalID: p.PrincipalID, TenantID: p.TenantID},
		Tags:     tags,
		Properties: ResourceProperties{
			SystemID: p.SystemID,
			Encryption: &Encryption{State: p.EncryptionState,
				KeyVault: KeyVaultRef{ID: p.KeyVaultID, Key: KeyRef{Name: p.KeyName, Version: p.KeyVersion}}},
			HealthStatus: string(p.HealthStatus),
		},
	}
}

// Policy returns the policy r describes, as a client reads it back: the
// subscription and resource group come from its id.
func (r *Resource) Policy() *keyhold.EnterprisePolicy {
	p := &keyhold.EnterprisePolicy{Name: r.Name, Location: r.Location, Kind: r.Kind, TenantID: r.Identity.TenantID,
		PrincipalID: r.Identity.PrincipalID, SystemID: r.Properties.SystemID, HealthStatus: keyhold.HealthStatus(r.Properties.HealthStatus),
		Tags: r.Tags}
	if segs := strings.Split(r.ID, "/"); len(segs) >= 5 {
		p.SubscriptionID, p.ResourceGroup = segs[2], segs[4]
	}
	if e := r.Properties.Encryption; e != nil {
		p.EncryptionState, p.KeyVaultID, p.KeyName, p.KeyVersion = e.State, e.KeyVault.ID, e.KeyVault.Key.Name, e.KeyVault.Key.Version
	}
	return p
}

// ResourceInput is the body of a PUT or PATCH of a policy, and a policy
// resource of a template. Pointers tell an omitted property from an empty
// one; read-only properties (id, systemId, principalId, healthStatus) are
// ignored, as ARM ignores them.
type ResourceInput struct {
	Location   *string            `json:"location"`
	Kind       *string            `json:"kind"`
	Identity   *IdentityInput     `json:"identity"`
	Tags       *map[string]string `json:"tags"`
	Properties *PropertiesInput   `json:"properties"`
}

// IdentityInput is the identity of a ResourceInput.
type IdentityInput struct {
	Type *string `json:"type"`
}

// PropertiesInput are the properties of a ResourceInput.
type PropertiesInput struct {
	Encryption       *EncryptionInput `json:"encryption"`
	Lockbox          json.RawMessage  `json:"lockbox"`
	NetworkInjection json.RawMessage  `json:"networkInjection"`
}

// EncryptionInput is the encryption of a ResourceInput.
type EncryptionInput struct {
	State    *string `json:"state"`
	KeyVault *struct {
		ID  *string `json:"id"`
		Key *struct {
			Name    *string `json:"name"`
			Version *string `json:"version"`
		} `json:"key"`
	} `json:"keyVault"`
}

// ExampleResource is a policy body, quoted by messages that say what to
// send.
const ExampleResource = `{"location":"europe","kind":"Encryption","identity":{"type":"SystemAssigned"},` +
	`"properties":{"encryption":{"state":"Enabled","keyVault":{"id":"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults/{vault}","key":{"name":"{key}"}}}}}`

// isNull reports whether a raw property is absent or null.
func isNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || bytes.Equal(t, []byte("null"))
}

// unsupported refuses the properties Keyhold does not implement.
func (p *PropertiesInput) unsupported() error {
	if p == nil {
		return nil
	}
	for _, u := range []struct {
		name string
		raw  json.RawMessage
	}{{"lockbox", p.Lockbox}, {"networkInjection", p.NetworkInjection}} {
		if !isNull(u.raw) {
			return keyhold.Errorf(keyhold.CodeNotSupported,
				"properties.%s is not supported: Keyhold implements Encryption policies only; send \"%s\": null or leave it out", u.name, u.name)
		}
	}
	return nil
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// Spec returns the policy a PUT asks for. Omitted properties are empty,
// and the service refuses the required ones.
func (in *ResourceInput) Spec() (Spec, error) {
	var s Spec
	s.Location, s.Kind = str(in.Location), str(in.Kind)
	if in.Identity != nil {
		s.IdentityType = str(in.Identity.Type)
	}
	if in.Tags != nil {
		s.Tags = *in.Tags
	}
	if p := in.Properties; p != nil {
		if err := p.unsupported(); err != nil {
			return Spec{}, err
		}
		if e := p.Encryption; e != nil {
			s.EncryptionState = str(e.State)
			if kv := e.KeyVault; kv != nil {
				s.KeyVaultID = str(kv.ID)
				if k := kv.Key; k != nil {
					s.KeyName, s.KeyVersion = str(k.Name), str(k.Version)
				}
			}
		}
	}
	return s, nil
}

// Patch returns the changes a PATCH asks for: what it names.
func (in *ResourceInput) Patch() (Patch, error) {
	var c Patch
	c.Location, c.Kind, c.Tags = in.Location, in.Kind, in.Tags
	if in.Identity != nil {
		c.IdentityType = in.Identity.Type
	}
	if p := in.Properties; p != nil {
		if err := p.unsupported(); err != nil {
			return Patch{}, err
		}
		if e := p.Encryption; e != nil {
			c.EncryptionState = e.State
			if kv := e.KeyVault; kv != nil {
				c.KeyVaultID = kv.ID
				if k := kv.Key; k != nil {
					c.KeyName, c.KeyVersion = k.Name, k.Version
				}
			}
		}
	}
	return c, nil
}
