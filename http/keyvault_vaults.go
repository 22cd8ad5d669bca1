package http

import (
	"encoding/json"
	nethttp "net/http"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
)

// The Microsoft.KeyVault/vaults resource, in the shapes armkeyvault's
// models marshal and unmarshal (API version 2024-11-01).

// Examples quoted by the vault routes' decoding errors.
const (
	exampleVaultPut = `{"location":"westeurope","properties":{"tenantId":"…","sku":{"family":"A","name":"standard"},` +
		`"enableRbacAuthorization":true,"enablePurgeProtection":true}}`
	exampleVaultPatch     = `{"properties":{"enablePurgeProtection":true}}`
	exampleAccessPolicies = `{"properties":{"accessPolicies":[{"tenantId":"…","objectId":"…","permissions":{"keys":["get","wrapKey","unwrapKey"]}}]}}`
)

const (
	vaultResourceType        = "Microsoft.KeyVault/vaults"
	deletedVaultResourceType = "Microsoft.KeyVault/deletedVaults"
	accessPolicyResourceType = "Microsoft.KeyVault/vaults/accessPolicies"
	skuFamilyA               = "A"
	provisioningSucceeded    = "Succeeded"
	createModeRecover        = "recover"
	createModeDefault        = "default"
)

// vaultJSON is a vault as ARM answers it (armkeyvault.Vault).
type vaultJSON struct {
	ID         string               `json:"id"`
	Name       string               `json:"name"`
	Type       string               `json:"type"`
	Location   string               `json:"location"`
	Tags       map[string]string    `json:"tags"`
	SystemData *vaultSystemDataJSON `json:"systemData,omitempty"`
	Properties vaultPropsJSON       `json:"properties"`
}

type vaultSystemDataJSON struct {
	CreatedAt      string `json:"createdAt,omitempty"`
	LastModifiedAt string `json:"lastModifiedAt,omitempty"`
}

type vaultPropsJSON struct {
	TenantID                  string             `json:"tenantId"`
	SKU                       vaultSKUJSON       `json:"sku"`
	AccessPolicies            []accessPolicyJSON `json:"accessPolicies"`
	VaultURI                  string             `json:"vaultUri"`
	EnableSoftDelete          bool               `json:"enableSoftDelete"`
	SoftDeleteRetentionInDays int                `json:"softDeleteRetentionInDays"`
	EnableRbacAuthorization   bool               `json:"enableRbacAuthorization"`
	// Azure leaves enablePurgeProtection out until it is turned on.
	EnablePurgeProtection *bool          `json:"enablePurgeProtection,omitempty"`
	NetworkACLs           networkACLJSON `json:"networkAcls"`
	PublicNetworkAccess   string         `json:"publicNetworkAccess"`
	ProvisioningState     string         `json:"provisioningState"`
}

type vaultSKUJSON struct {
	Family string `json:"family"`
	Name   string `json:"name"`
}

type accessPolicyJSON struct {
	TenantID    string             `json:"tenantId"`
	ObjectID    string             `json:"objectId"`
	Permissions keyPermissionsJSON `json:"permissions"`
}

type keyPermissionsJSON struct {
	Keys         []string `json:"keys"`
	Secrets      []string `json:"secrets"`
	Certificates []string `json:"certificates"`
}

type networkACLJSON struct {
	Bypass              string       `json:"bypass"`
	DefaultAction       string       `json:"defaultAction"`
	IPRules             []ipRuleJSON `json:"ipRules"`
	VirtualNetworkRules []struct{}   `json:"virtualNetworkRules"`
}

type ipRuleJSON struct {
	Value string `json:"value"`
}

// keyPermissionNames spells access-policy key permissions as Azure
// answers them; the others are lower case there too.
var keyPermissionNames = map[string]string{keyhold.PermWrapKey: "wrapKey", keyhold.PermUnwrapKey: "unwrapKey"}

func toVaultJSON(v *keyhold.Vault) vaultJSON {
	out := vaultJSON{
		ID: v.ID(), Name: v.Name, Type: vaultResourceType, Location: v.Location, Tags: map[string]string{},
		Properties: vaultPropsJSON{
			TenantID:                  v.TenantID,
			SKU:                       vaultSKUJSON{Family: skuFamilyA, Name: v.SKU},
			AccessPolicies:            toAccessPoliciesJSON(v.AccessPolicies),
			VaultURI:                  v.URI + "/", // Azure's vaultUri ends in a slash
			EnableSoftDelete:          true,
			SoftDeleteRetentionInDays: v.SoftDeleteRetentionDays,
			EnableRbacAuthorization:   v.EnableRbacAuthorization,
			NetworkACLs: networkACLJSON{Bypass: v.NetworkACLs.Bypass, DefaultAction: v.NetworkACLs.DefaultAction,
				IPRules: []ipRuleJSON{}, VirtualNetworkRules: []struct{}{}},
			PublicNetworkAccess: v.PublicNetworkAccess,
			ProvisioningState:   provisioningSucceeded,
		},
	}
	if v.EnablePurgeProtection {
		t := true
		out.Properties.EnablePurgeProtection = &t
	}
	for _, r := range v.NetworkACLs.IPRules {
		out.Properties.NetworkACLs.IPRules = append(out.Properties.NetworkACLs.IPRules, ipRuleJSON{Value: r})
	}
	if !v.CreatedAt.IsZero() {
		out.SystemData = &vaultSystemDataJSON{CreatedAt: v.CreatedAt.UTC().Format(time.RFC3339), LastModifiedAt: v.UpdatedAt.UTC().Format(time.RFC3339)}
	}
	return out
}

func toAccessPoliciesJSON(ps []keyhold.AccessPolicy) []accessPolicyJSON {
	out := make([]accessPolicyJSON, 0, len(ps))
	for _, p := range ps {
		keys := make([]string, 0, len(p.Keys))
		for _, k := range p.Keys {
			if n, ok := keyPermissionNames[strings.ToLower(k)]; ok {
				k = n
			}
			keys = append(keys, k)
		}
		out = append(out, accessPolicyJSON{TenantID: p.TenantID, ObjectID: p.ObjectID,
			Permissions: keyPermissionsJSON{Keys: keys, Secrets: []string{}, Certificates: []string{}}})
	}
	return out
}

// vaultInJSON is the body of PUT and PATCH on a vault. Pointers tell an
// omitted property from a zero one.
type vaultInJSON struct {
	Location   *string            `json:"location"`
	Tags       map[string]*string `json:"tags"`
	Properties *vaultPropsInJSON  `json:"properties"`
}

type vaultPropsInJSON struct {
	TenantID                  *string               `json:"tenantId"`
	SKU                       *vaultSKUInJSON       `json:"sku"`
	AccessPolicies            *[]accessPolicyInJSON `json:"accessPolicies"`
	CreateMode                *string               `json:"createMode"`
	EnableSoftDelete          *bool                 `json:"enableSoftDelete"`
	SoftDeleteRetentionInDays *int                  `json:"softDeleteRetentionInDays"`
	EnableRbacAuthorization   *bool                 `json:"enableRbacAuthorization"`
	EnablePurgeProtection     *bool                 `json:"enablePurgeProtection"`
	NetworkACLs               *networkACLInJSON     `json:"networkAcls"`
	PublicNetworkAccess       *string               `json:"publicNetworkAccess"`
	VaultURI                  *string               `json:"vaultUri"`
	ProvisioningState         *string               `json:"provisioningState"`
}

type vaultSKUInJSON struct {
	Family *string `json:"family"`
	Name   *string `json:"name"`
}

type accessPolicyInJSON struct {
	TenantID      string `json:"tenantId"`
	ObjectID      string `json:"objectId"`
	ApplicationID string `json:"applicationId"`
	Permissions   struct {
		Keys []string `json:"keys"`
	} `json:"permissions"`
}

type networkACLInJSON struct {
	Bypass        *string `json:"bypass"`
	DefaultAction *string `json:"defaultAction"`
	IPRules       *[]struct {
		Value string `json:"value"`
	} `json:"ipRules"`
	VirtualNetworkRules []json.RawMessage `json:"virtualNetworkRules"`
}

// apply sets on v the properties in carries: those omitted keep v's
// values (the stored vault's on an update, the defaults on a create).
func (p *vaultPropsInJSON) apply(v *keyhold.Vault) error {
	if p == nil {
		return nil
	}
	if p.TenantID != nil {
		v.TenantID = *p.TenantID
	}
	if p.SKU != nil {
		if p.SKU.Family != nil && !strings.EqualFold(*p.SKU.Family, skuFamilyA) {
			return keyhold.Errorf(keyhold.CodeBadRequest, "properties.sku.family %q is not valid: use \"A\"", keyhold.Clip(*p.SKU.Family))
		}
		if p.SKU.Name != nil {
			v.SKU = *p.SKU.Name
		}
	}
	if p.EnableSoftDelete != nil && !*p.EnableSoftDelete {
		return keyhold.Errorf(keyhold.CodeBadRequest,
			"properties.enableSoftDelete can't be false: soft delete is always on, as in Azure; leave the property out, or set softDeleteRetentionInDays (%d to %d)",
			keyhold.MinSoftDeleteRetentionDays, keyhold.MaxSoftDeleteRetentionDays)
	}
	if p.SoftDeleteRetentionInDays != nil {
		v.SoftDeleteRetentionDays = *p.SoftDeleteRetentionInDays
		if v.SoftDeleteRetentionDays == 0 {
			return keyhold.Errorf(keyhold.CodeBadRequest, "properties.softDeleteRetentionInDays is 0: use %d to %d days, or leave it out for %d",
				keyhold.MinSoftDeleteRetentionDays, keyhold.MaxSoftDeleteRetentionDays, keyhold.DefaultSoftDeleteRetentionDays)
		}
	}
	if p.EnableRbacAuthorization != nil {
		v.EnableRbacAuthorization = *p.EnableRbacAuthorization
	}
	if p.EnablePurgeProtection != nil {
		v.EnablePurgeProtection = *p.EnablePurgeProtection
	}
	if p.AccessPolicies != nil {
		v.AccessPolicies = fromAccessPoliciesJSON(*p.AccessPolicies)
	}
	if a := p.NetworkACLs; a != nil {
		if len(a.VirtualNetworkRules) > 0 {
			return keyhold.Errorf(keyhold.CodeBadRequest,
				"properties.networkAcls.virtualNetworkRules is not supported: Keyhold has no virtual networks; use networkAcls.ipRules")
		}
		if a.Bypass != nil {
			v.NetworkACLs.Bypass = *a.Bypass
		}
		if a.DefaultAction != nil {
			v.NetworkACLs.DefaultAction = *a.DefaultAction
		}
		if a.IPRules != nil {
			v.NetworkACLs.IPRules = []string{}
			for _, r := range *a.IPRules {
				v.NetworkACLs.IPRules = append(v.NetworkACLs.IPRules, r.Value)
			}
		}
	}
	if p.PublicNetworkAccess != nil {
		v.PublicNetworkAccess = *p.PublicNetworkAccess
	}
	return nil
}

func fromAccessPoliciesJSON(in []accessPolicyInJSON) []keyhold.AccessPolicy {
	out := make([]keyhold.AccessPolicy, 0, len(in))
	for _, p := range in {
		out = append(out, keyhold.AccessPolicy{TenantID: p.TenantID, ObjectID: p.ObjectID, Keys: p.Permissions.Keys})
	}
	return out
}

// armIDs returns the subscription, resource group and vault name of a
// vault route.
func armIDs(r *nethttp.Request) (sub, rg, name string) {
	return r.PathValue("sub"), r.PathValue("rg"), r.PathValue("name")
}

// putVault: PUT …/providers/Microsoft.KeyVault/vaults/{name}. It answers
// 201 for a new vault and 200 for an update, with provisioningState
// Succeeded: the vault is ready at once, so an SDK's poller completes
// without polling. properties.createMode "recover" recovers a deleted
// vault instead. Properties omitted on an update keep their values.
func (s *Server) putVault(w nethttp.ResponseWriter, r *nethttp.Request) error {
	sub, rg, name := armIDs(r)
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var in vaultInJSON
	if err := decodeJSON(body, &in, exampleVaultPut); err != nil {
		return err
	}
	ctx := r.Context()
	if p := in.Properties; p != nil && p.CreateMode != nil {
		switch {
		case strings.EqualFold(*p.CreateMode, createModeRecover):
			v, err := s.KeyVault.Vaults.RecoverVault(ctx, sub, rg, name)
			if err != nil {
				return err
			}
			writeJSON(w, nethttp.StatusOK, toVaultJSON(v))
			return nil
		case strings.EqualFold(*p.CreateMode, createModeDefault):
		default:
			return keyhold.Errorf(keyhold.CodeBadRequest, "properties.createMode %q is not valid: use %q, or %q to recover a deleted vault", keyhold.Clip(*p.CreateMode), createModeDefault, createModeRecover)
		}
	}
	v := &keyhold.Vault{SubscriptionID: sub, ResourceGroup: rg, Name: name}
	if old, err := s.KeyVault.Vaults.GetVault(ctx, sub, rg, name); err == nil {
		v = old
	} else if c := keyhold.ErrorCode(err); c != keyhold.CodeResourceNotFound && c != keyhold.CodeAuthorizationFailed {
		return err
	}
	if in.Location != nil {
		v.Location = *in.Location
	}
	if err := in.Properties.apply(v); err != nil {
		return err
	}
	created, err := s.KeyVault.Vaults.PutVault(ctx, v)
	if err != nil {
		return err
	}
	writePut(w, created, toVaultJSON(v))
	return nil
}

// patchVault: PATCH …/vaults/{name} changes the properties given.
func (s *Server) patchVault(w nethttp.ResponseWriter, r *nethttp.Request) error {
	sub, rg, name := armIDs(r)
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var in vaultInJSON
	if err := decodeJSON(body, &in, exampleVaultPatch); err != nil {
		return err
	}
	if p := in.Properties; p != nil && p.CreateMode != nil && strings.EqualFold(*p.CreateMode, createModeRecover) {
		return keyhold.Errorf(keyhold.CodeBadRequest, "properties.createMode recover is not valid in a PATCH: recover a deleted vault with PUT")
	}
	ctx := r.Context()
	v, err := s.KeyVault.Vaults.GetVault(ctx, sub, rg, name)
	if err != nil {
		return err
	}
	if in.Location != nil && !strings.EqualFold(strings.ReplaceAll(*in.Location, " ", ""), v.Location) {
		return keyhold.Errorf(keyhold.CodeBadRequest, "the location of vault %q is %s and can't be changed", v.Name, v.Location)
	}
	if err := in.Properties.apply(v); err != nil {
		return err
	}
	if _, err := s.KeyVault.Vaults.PutVault(ctx, v); err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, toVaultJSON(v))
	return nil
}

// getVault: GET …/vaults/{name}.
func (s *Server) getVault(w nethttp.ResponseWriter, r *nethttp.Request) error {
	sub, rg, name := armIDs(r)
	v, err := s.KeyVault.Vaults.GetVault(r.Context(), sub, rg, name)
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, toVaultJSON(v))
	return nil
}

// deleteVault: DELETE …/vaults/{name} soft-deletes the vault: 200, or 204
// when there is no such vault, as ARM answers.
func (s *Server) deleteVault(w nethttp.ResponseWriter, r *nethttp.Request) error {
	sub, rg, name := armIDs(r)
	err := s.KeyVault.Vaults.DeleteVault(r.Context(), sub, rg, name)
	switch keyhold.ErrorCode(err) {
	case "":
		w.WriteHeader(nethttp.StatusOK)
	case keyhold.CodeResourceNotFound:
		w.WriteHeader(nethttp.StatusNoContent)
	default:
		return err
	}
	return nil
}

// listVaults: GET …/resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults
// and GET /subscriptions/{sub}/providers/Microsoft.KeyVault/vaults.
func (s *Server) listVaults(w nethttp.ResponseWriter, r *nethttp.Request) error {
	sub, rg, _ := armIDs(r)
	vs, err := s.KeyVault.Vaults.ListVaults(r.Context(), sub, rg)
	if err != nil {
		return err
	}
	out := listJSON[vaultJSON]{Value: make([]vaultJSON, 0, len(vs))}
	for _, v := range vs {
		out.Value = append(out.Value, toVaultJSON(v))
	}
	writeJSON(w, nethttp.StatusOK, out)
	return nil
}

// accessPoliciesJSON is the body and answer of PUT …/accessPolicies/{kind}
// (armkeyvault.VaultAccessPolicyParameters).
type accessPoliciesJSON struct {
	ID         string `json:"id,omitempty"`
	Name       string `json:"name,omitempty"`
	Type       string `json:"type,omitempty"`
	Location   string `json:"location,omitempty"`
	Properties struct {
		AccessPolicies []accessPolicyJSON `json:"accessPolicies"`
	} `json:"properties"`
}

// putAccessPolicies: PUT …/vaults/{name}/accessPolicies/{add|replace|remove}.
// It answers the vault's access policies as they then are.
func (s *Server) putAccessPolicies(w nethttp.ResponseWriter, r *nethttp.Request) error {
	sub, rg, name := armIDs(r)
	kind := r.PathValue("kind")
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var in struct {
		Properties *struct {
			AccessPolicies []accessPolicyInJSON `json:"accessPolicies"`
		} `json:"properties"`
	}
	if err := decodeJSON(body, &in, exampleAccessPolicies); err != nil {
		return err
	}
	if in.Properties == nil {
		return keyhold.Errorf(keyhold.CodeBadRequest, "the request has no properties.accessPolicies: send a body like %s", exampleAccessPolicies)
	}
	v, err := s.KeyVault.Vaults.UpdateAccessPolicies(r.Context(), sub, rg, name, kind, fromAccessPoliciesJSON(in.Properties.AccessPolicies))
	if err != nil {
		return err
	}
	var out accessPoliciesJSON
	out.ID, out.Name, out.Type, out.Location = v.ID()+"/accessPolicies/"+strings.ToLower(kind), strings.ToLower(kind), accessPolicyResourceType, v.Location
	out.Properties.AccessPolicies = toAccessPoliciesJSON(v.AccessPolicies)
	writeJSON(w, nethttp.StatusOK, out)
	return nil
}

// deletedVaultJSON is a soft-deleted vault (armkeyvault.DeletedVault).
type deletedVaultJSON struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Type       string `json:"type"`
	Properties struct {
		VaultID                string            `json:"vaultId"`
		Location               string            `json:"location"`
		DeletionDate           string            `json:"deletionDate"`
		ScheduledPurgeDate     string            `json:"scheduledPurgeDate"`
		Tags                   map[string]string `json:"tags"`
		PurgeProtectionEnabled bool              `json:"purgeProtectionEnabled"`
	} `json:"properties"`
}

func toDeletedVaultJSON(v *keyhold.Vault) deletedVaultJSON {
	var out deletedVaultJSON
	out.ID = "/subscriptions/" + v.SubscriptionID + "/providers/Microsoft.KeyVault/locations/" + v.Location + "/deletedVaults/" + v.Name
	out.Name, out.Type = v.Name, deletedVaultResourceType
	p := &out.Properties
	p.VaultID, p.Location, p.Tags, p.PurgeProtectionEnabled = v.ID(), v.Location, map[string]string{}, v.EnablePurgeProtection
	p.DeletionDate = v.DeletedAt.UTC().Format(time.RFC3339)
	p.ScheduledPurgeDate = v.ScheduledPurgeAt.UTC().Format(time.RFC3339)
	return out
}

// listDeletedVaults: GET /subscriptions/{sub}/providers/Microsoft.KeyVault/deletedVaults.
func (s *Server) listDeletedVaults(w nethttp.ResponseWriter, r *nethttp.Request) error {
	vs, err := s.KeyVault.Vaults.ListDeletedVaults(r.Context(), r.PathValue("sub"))
	if err != nil {
		return err
	}
	out := listJSON[deletedVaultJSON]{Value: make([]deletedVaultJSON, 0, len(vs))}
	for _, v := range vs {
		out.Value = append(out.Value, toDeletedVaultJSON(v))
	}
	writeJSON(w, nethttp.StatusOK, out)
	return nil
}

// getDeletedVault: GET …/locations/{location}/deletedVaults/{name}.
func (s *Server) getDeletedVault(w nethttp.ResponseWriter, r *nethttp.Request) error {
	v, err := s.KeyVault.Vaults.GetDeletedVault(r.Context(), r.PathValue("sub"), r.PathValue("location"), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, toDeletedVaultJSON(v))
	return nil
}

// purgeDeletedVault: POST …/locations/{location}/deletedVaults/{name}/purge.
// The purge is done when it answers 200, so an SDK's poller completes at
// once.
func (s *Server) purgeDeletedVault(w nethttp.ResponseWriter, r *nethttp.Request) error {
	if err := s.KeyVault.Vaults.PurgeDeletedVault(r.Context(), r.PathValue("sub"), r.PathValue("location"), r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(nethttp.StatusOK)
	return nil
}
