// Package policy is the Microsoft.PowerPlatform resource provider: the
// enterprise policies (Microsoft.PowerPlatform/enterprisePolicies) that
// name a customer's key. Package deploy deploys them from templates (such
// as the spec's JSON template) through this package's Put.
//
// # Enterprise policies
//
// A policy of kind Encryption names a key in a key vault by the vault's ARM
// resource id and the key's name (and, optionally, a version). Creating it
// creates its system-assigned managed identity in the same transaction,
// which the key vault administrator then grants access to the key; deleting
// it deletes the identity with its role assignments, and the role
// assignments on the policy. Other kinds (Lockbox, PrivateEndpoint,
// NetworkInjection) are refused with CodeNotSupported.
//
// Every method takes the caller's identity from ctx and authorizes it as
// ARM does (arm.Authorize): Microsoft.PowerPlatform/enterprisePolicies/write
// to create or change a policy, …/read to read one (the Reader role, which
// the spec grants the platform administrator), …/delete to delete one.
//
// A create or update is refused, changing nothing, when the subscription
// has not registered Microsoft.PowerPlatform (MissingSubscriptionRegistration),
// when the vault is not a live vault of the caller's tenant, has no purge
// protection, or lacks the key, and when the location is not one of the
// spec's 17. An update changes the key (vault, name, version) and tags
// only; and while environments are linked to the policy, an update that
// changes anything is refused with CodeConflict naming them. Deleting a
// linked policy, directly or with its resource group, is one of the spec's
// ways to revoke key access: with Config.LockLinked set it deletes the
// policy and locks its environments in the same transaction; without it,
// it is refused with CodeConflict. Every change is audited in the
// transaction that makes it.
//
// A new policy's healthStatus is Undetermined, and becomes so again when
// its key changes, until a health probe says otherwise.
//
// Deleting a resource group deletes its policies and its template
// deployment records (package deploy's) in one transaction
// (DeleteResourcesIn).
//
// The Service is safe for concurrent use.
package policy

import (
	"context"
	"log/slog"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/arm"
)

// The policy's ARM actions.
const (
	ActionRead   = "Microsoft.PowerPlatform/enterprisePolicies/read"
	ActionWrite  = "Microsoft.PowerPlatform/enterprisePolicies/write"
	ActionDelete = "Microsoft.PowerPlatform/enterprisePolicies/delete"
)

// Config configures a Service. Store and ARM are required.
type Config struct {
	Store keyhold.Store
	// Clock tells the time (default: the wall clock).
	Clock keyhold.Clock
	// Logger receives what goes wrong in the background (nil: discarded).
	Logger *slog.Logger
	// ARM is the resource manager: it creates and deletes the policies'
	// managed identities.
	ARM *arm.Service
	// Vaults, if set, is the key vault service (a *vault.Service); when it
	// is a PolicySealer too, the policies written are sealed.
	Vaults VaultWriter
	// LockLinked, if set, lets the deletion of the policy itself (Delete)
	// or of its resource group delete an enterprise policy that
	// environments are linked to. It is called inside the deleting
	// transaction, once for each such policy and before the policy is
	// deleted, and must lock every environment linked to pol in tx (the
	// platform's LockLinkedTx does), recording actor, the identity
	// deleting, and why ("deleted", or "deleted with its resource group
	// {rg}"). An error aborts the deletion, which changes nothing; after,
	// if not nil, runs once the transaction has committed (to drop the
	// environments' cached keys). Nil keeps the refusal: CodeConflict
	// naming the environments.
	LockLinked func(ctx context.Context, tx keyhold.Tx, pol *keyhold.EnterprisePolicy, actor *keyhold.Identity, why string) (after func(), err error)
}

// VaultWriter is the key vault service as Config.Vaults takes it;
// *vault.Service implements it (and PolicySealer).
type VaultWriter interface {
	GetVault(ctx context.Context, sub, rg, name string) (*keyhold.Vault, error)
	PutVault(ctx context.Context, v *keyhold.Vault) (created bool, err error)
}

// PolicySealer seals a policy's binding to its key under the master key,
// which the policy service doesn't hold. *vault.Service implements it;
// when Config.Vaults does, every policy written is sealed, and an update
// first checks the stored policy, so that a binding changed in the
// database is refused (keyhold.CodeRecordIntegrity) instead of sealed
// anew. The platform refuses to link to, or rotate under, a policy that
// isn't sealed.
type PolicySealer interface {
	SealPolicy(p *keyhold.EnterprisePolicy)
	CheckPolicy(p *keyhold.EnterprisePolicy) error
}

// sealer returns Vaults as a PolicySealer, or nil.
func (s *Service) sealer() PolicySealer {
	ps, _ := s.vaults.(PolicySealer)
	return ps
}

// Service is the enterprise policy provider. It is safe for concurrent
// use.
type Service struct {
	store  keyhold.Store
	clock  keyhold.Clock
	log    *slog.Logger
	arm    *arm.Service
	vaults VaultWriter
	lock   func(ctx context.Context, tx keyhold.Tx, pol *keyhold.EnterprisePolicy, actor *keyhold.Identity, why string) (func(), error)
}

var _ keyhold.PolicyService = (*Service)(nil)

// New returns a Service over cfg.Store. It panics without cfg.Store or
// cfg.ARM, a wiring mistake.
func New(cfg Config) *Service {
	if cfg.Store == nil || cfg.ARM == nil {
		panic("policy: Config.Store and Config.ARM are required")
	}
	s := &Service{store: cfg.Store, clock: cfg.Clock, log: cfg.Logger, arm: cfg.ARM, vaults: cfg.Vaults, lock: cfg.LockLinked}
	if s.clock == nil {
		s.clock = keyhold.SystemClock{}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s
}

// RegisterDeleter makes ARM's resource group deletion delete the
// policies and deployment records in the group (see DeleteResourcesIn for
// policies that environments are linked to).
func (s *Service) RegisterDeleter() { s.arm.RegisterDeleter(s) }

// policyID returns the resource id of the policy name in sub and rg.
func policyID(sub, rg, name string) string {
	p := keyhold.EnterprisePolicy{SubscriptionID: sub, ResourceGroup: rg, Name: name}
	return p.ID()
}

// nameRE is what a policy name may be: 1 to 90 letters, digits, '-', '_'
// or '.', starting with a letter or digit and not ending in '.'.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.\-]{0,89}$`)

func checkName(name string) error {
	if !nameRE.MatchString(name) || strings.HasSuffix(name, ".") {
		return keyhold.Errorf(keyhold.CodeInvalidName,
			"The enterprise policy name '%s' is not valid: use 1 to 90 letters, digits, hyphens, underscores or periods, starting with a letter or digit and not ending in a period.", keyhold.Clip(name))
	}
	return nil
}

// Tag limits, as ARM has them.
const (
	maxTags        = 50
	maxTagKeyLen   = 512
	maxTagValueLen = 256
)

func checkTags(tags map[string]string) error {
	if len(tags) > maxTags {
		return keyhold.Errorf(keyhold.CodeBadRequest, "the policy has %d tags: use at most %d", len(tags), maxTags)
	}
	for k, v := range tags {
		if k == "" || utf8.RuneCountInString(k) > maxTagKeyLen || utf8.RuneCountInString(v) > maxTagValueLen {
			return keyhold.Errorf(keyhold.CodeBadRequest, "tag '%s' is not valid: a tag name has 1 to %d characters and its value at most %d", keyhold.Clip(k), maxTagKeyLen, maxTagValueLen)
		}
		if err := keyhold.CheckText(keyhold.CodeBadRequest, "tag name", k); err != nil {
			return err
		}
		if err := keyhold.CheckText(keyhold.CodeBadRequest, "the value of tag "+strconv.Quote(k), v); err != nil {
			return err
		}
	}
	return nil
}

// checkKind returns the kind as ARM spells it, or refuses it.
func checkKind(kind string) (string, error) {
	switch {
	case kind == "":
		return "", keyhold.Errorf(keyhold.CodeBadRequest, "kind is missing: send \"kind\": \"%s\"", keyhold.PolicyKindEncryption)
	case strings.EqualFold(kind, keyhold.PolicyKindEncryption):
		return keyhold.PolicyKindEncryption, nil
	}
	return "", keyhold.Errorf(keyhold.CodeNotSupported,
		"kind '%s' is not supported: Keyhold implements enterprise policies of kind %s only (not %s, %s or %s)", keyhold.Clip(kind),
		keyhold.PolicyKindEncryption, keyhold.PolicyKindLockbox, keyhold.PolicyKindPrivateEndpoint, keyhold.PolicyKindNetworkInjection)
}

// checkLocation returns the location normalized, or refuses it.
func checkLocation(loc string) (string, error) {
	l := keyhold.NormalizeLocation(loc)
	if l == "" {
		return "", keyhold.Errorf(keyhold.CodeBadRequest, "location is missing: use one of %s", strings.Join(keyhold.Locations, ", "))
	}
	if !keyhold.ValidLocation(l) {
		return "", keyhold.Errorf(keyhold.CodeInvalidLocation,
			"The provided location '%s' is not available for resource type '%s'. List of available regions for the resource type is '%s'.",
			keyhold.Clip(loc), keyhold.PolicyResourceType, strings.Join(keyhold.Locations, ","))
	}
	return l, nil
}

func checkIdentity(t string) error {
	if strings.EqualFold(t, keyhold.PolicyIdentitySystemAssigned) {
		return nil
	}
	if t == "" {
		t = "(none)"
	}
	return keyhold.Errorf(keyhold.CodeBadRequest,
		"identity.type '%s' is not supported: an enterprise policy needs \"identity\": {\"type\": \"%s\"}, the managed identity that is granted access to the key",
		keyhold.Clip(t), keyhold.PolicyIdentitySystemAssigned)
}

func checkState(state string) (string, error) {
	if state == "" || strings.EqualFold(state, keyhold.PolicyEncryptionEnabled) {
		return keyhold.PolicyEncryptionEnabled, nil
	}
	return "", keyhold.Errorf(keyhold.CodeNotSupported, "properties.encryption.state '%s' is not supported: use \"%s\"", keyhold.Clip(state), keyhold.PolicyEncryptionEnabled)
}

// hexVersionRE is a Key Vault key version: 32 hexadecimal digits.
var hexVersionRE = regexp.MustCompile(`^[0-9A-Fa-f]{32}$`)

// keyNameRE is a Key Vault object name.
var keyNameRE = regexp.MustCompile(`^[0-9A-Za-z-]{1,127}$`)

func checkKeyFields(vaultID, keyName, version string) error {
	switch {
	case vaultID == "":
		return keyhold.Errorf(keyhold.CodeBadRequest,
			"properties.encryption.keyVault.id is missing: give the key vault's Resource ID, /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults/{name}")
	case keyName == "":
		return keyhold.Errorf(keyhold.CodeBadRequest, "properties.encryption.keyVault.key.name is missing: give the name of the key in the vault")
	case !keyNameRE.MatchString(keyName):
		return keyhold.Errorf(keyhold.CodeBadRequest, "properties.encryption.keyVault.key.name '%s' is not a key name: use 1 to 127 letters, digits or hyphens", keyhold.Clip(keyName))
	case version != "" && !hexVersionRE.MatchString(version):
		return keyhold.Errorf(keyhold.CodeBadRequest, "properties.encryption.keyVault.key.version '%s' is not a key version: give its 32 hex digits, or leave it out to follow the key's current version", keyhold.Clip(version))
	}
	return nil
}

// checkKey checks, in tx, the key a policy names: a live key (and version)
// in a live vault with purge protection, in a subscription of the caller's
// tenant. It returns the vault's id and the key's name as stored.
func checkKey(ctx context.Context, tx keyhold.Tx, id *keyhold.Identity, vaultID, keyName, version string) (string, string, error) {
	noVault := func() error {
		return keyhold.Errorf(keyhold.CodeBadRequest,
			"properties.encryption.keyVault.id '%s' is not the Resource ID of a key vault you have: copy the Resource ID from the vault's properties "+
				"(/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults/{name}), and create or recover the vault first", keyhold.Clip(vaultID))
	}
	sc, err := keyhold.ParseScope(vaultID)
	if err != nil || sc.ResourceGroup == "" || sc.Namespace != keyhold.NamespaceKeyVault {
		return "", "", noVault()
	}
	typ, name, ok := strings.Cut(sc.Path, "/")
	if ok && strings.EqualFold(typ, "managedHSMs") && !strings.Contains(name, "/") {
		return checkHSMKey(ctx, tx, id, vaultID, sc, name, keyName, version)
	}
	if !ok || !strings.EqualFold(typ, "vaults") || strings.Contains(name, "/") {
		return "", "", noVault()
	}
	v, err := tx.Vault(ctx, name)
	switch {
	case keyhold.ErrorCode(err) == keyhold.CodeNotFound:
		return "", "", noVault()
	case err != nil:
		return "", "", err
	case v.Deleted() || !strings.EqualFold(v.SubscriptionID, sc.SubscriptionID) || !strings.EqualFold(v.ResourceGroup, sc.ResourceGroup):
		return "", "", noVault()
	}
	if _, err := arm.SubscriptionFor(ctx, tx, id, v.SubscriptionID); keyhold.ErrorCode(err) == keyhold.CodeNotFound {
		return "", "", noVault()
	} else if err != nil {
		return "", "", err
	}
	if !v.EnablePurgeProtection {
		return "", "", keyhold.Errorf(keyhold.CodeBadRequest,
			"key vault '%s' does not have purge protection: enable purge protection on the vault (soft delete is always on), then retry; "+
				"a customer-managed key must not be purgeable by accident", v.Name)
	}
	k, err := tx.Key(ctx, v.Name, keyName)
	switch {
	case keyhold.ErrorCode(err) == keyhold.CodeNotFound || (err == nil && k.Deleted()):
		return "", "", keyhold.Errorf(keyhold.CodeBadRequest,
			"key '%s' does not exist in key vault '%s': create an RSA key of that name (or recover the deleted one), or name another key", keyhold.Clip(keyName), v.Name)
	case err != nil:
		return "", "", err
	}
	if version != "" {
		if _, err := tx.KeyVersion(ctx, v.Name, k.Name, version); keyhold.ErrorCode(err) == keyhold.CodeNotFound {
			return "", "", keyhold.Errorf(keyhold.CodeBadRequest,
				"key '%s' in key vault '%s' has no version '%s': list its versions, or leave the version out to follow the current one", k.Name, v.Name, keyhold.Clip(version))
		} else if err != nil {
			return "", "", err
		}
	}
	return v.ID(), k.Name, nil
}

// checkHSMKey is checkKey for a key of a Managed HSM (issue 18):
// keyVault.id is the HSM's resource id. The HSM must be live, active and
// purge-protected, in a subscription of the caller's tenant; the key (and
// version) must exist.
func checkHSMKey(ctx context.Context, tx keyhold.Tx, id *keyhold.Identity, vaultID string, sc *keyhold.Scope, name, keyName, version string) (string, string, error) {
	noHSM := keyhold.Errorf(keyhold.CodeBadRequest,
		"properties.encryption.keyVault.id '%s' is not the Resource ID of a Managed HSM you have: copy it from the HSM's properties "+
			"(/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.KeyVault/managedHSMs/{name}), and create or recover the HSM first", keyhold.Clip(vaultID))
	h, err := tx.ManagedHSM(ctx, name)
	switch {
	case keyhold.ErrorCode(err) == keyhold.CodeNotFound:
		return "", "", noHSM
	case err != nil:
		return "", "", err
	case h.Deleted() || !strings.EqualFold(h.SubscriptionID, sc.SubscriptionID) || !strings.EqualFold(h.ResourceGroup, sc.ResourceGroup):
		return "", "", noHSM
	}
	if _, err := arm.SubscriptionFor(ctx, tx, id, h.SubscriptionID); keyhold.ErrorCode(err) == keyhold.CodeNotFound {
		return "", "", noHSM
	} else if err != nil {
		return "", "", err
	}
	if !h.EnablePurgeProtection {
		return "", "", keyhold.Errorf(keyhold.CodeBadRequest,
			"Managed HSM '%s' does not have purge protection: enable it on the HSM, then retry; a customer-managed key must not be purgeable by accident", h.Name)
	}
	k, err := tx.HSMKey(ctx, h.Name, keyName)
	switch {
	case keyhold.IsNotFound(err) || (err == nil && k.Deleted()):
		return "", "", keyhold.Errorf(keyhold.CodeBadRequest,
			"key '%s' does not exist in Managed HSM '%s': create an RSA-HSM key of that name (or recover the deleted one), or name another key", keyhold.Clip(keyName), h.Name)
	case err != nil:
		return "", "", err
	}
	if version != "" {
		if _, err := tx.HSMKeyVersion(ctx, h.Name, k.Name, version); keyhold.IsNotFound(err) {
			return "", "", keyhold.Errorf(keyhold.CodeBadRequest,
				"key '%s' in Managed HSM '%s' has no version '%s': list its versions, or leave the version out to follow the current one", k.Name, h.Name, keyhold.Clip(version))
		} else if err != nil {
			return "", "", err
		}
	}
	return h.ID(), k.Name, nil
}

// resolveKey checks the key a policy names, in a built-in vault (vaultID)
// or an external one (ext), and returns them as stored: one of vaultID
// and ext is set. The external vault is checked for form only here: the
// platform checks the key itself over the network (Config.CheckExternal).
func resolveKey(ctx context.Context, tx keyhold.Tx, id *keyhold.Identity, vaultID string, ext *keyhold.ExternalKeyVault, keyName, version string) (string, *keyhold.ExternalKeyVault, string, error) {
	if ext == nil {
		if err := checkKeyFields(vaultID, keyName, version); err != nil {
			return "", nil, "", err
		}
		v, k, err := checkKey(ctx, tx, id, vaultID, keyName, version)
		return v, nil, k, err
	}
	if vaultID != "" {
		return "", nil, "", keyhold.Errorf(keyhold.CodeBadRequest,
			"properties.encryption.keyVault names both a vault of this cloud (id '%s') and an external vault (uri '%s'): give one of them; "+
				"send \"id\": \"\" to move the key to the external vault", keyhold.Clip(vaultID), keyhold.Clip(ext.URI))
	}
	x, err := checkExternal(ext)
	if err != nil {
		return "", nil, "", err
	}
	// The key name and version as checkKeyFields checks them, with any
	// vault id: the vault is the external one.
	if err := checkKeyFields(x.URI, keyName, version); err != nil {
		return "", nil, "", err
	}
	return "", x, keyName, nil
}

// checkExternal checks an external vault's form and returns it
// normalized: the URI as https://{host}, the authority as https://{host}/
// ("" for Entra ID's).
func checkExternal(ext *keyhold.ExternalKeyVault) (*keyhold.ExternalKeyVault, error) {
	const field = "properties.encryption.keyVault.uri"
	if ext.URI == "" {
		return nil, keyhold.Errorf(keyhold.CodeBadRequest,
			"%s is missing: give the external key vault's URI, https://{vault}.vault.azure.net (its Vault URI, on the vault's overview)", field)
	}
	u, err := url.Parse(ext.URI)
	switch {
	case err != nil || u.Host == "" || u.Opaque != "":
		return nil, keyhold.Errorf(keyhold.CodeBadRequest, "%s '%s' is not a URL: give the vault's URI, https://{vault}.vault.azure.net", field, keyhold.Clip(ext.URI))
	case !strings.EqualFold(u.Scheme, "https"):
		return nil, keyhold.Errorf(keyhold.CodeBadRequest,
			"%s '%s' is not https: a key vault is reached over https only (the platform's token for it must not travel in clear); use https://%s",
			field, keyhold.Clip(ext.URI), keyhold.Clip(u.Host))
	case u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || (u.Path != "" && u.Path != "/"):
		return nil, keyhold.Errorf(keyhold.CodeBadRequest,
			"%s '%s' is not a key vault's URI: give the vault's URI alone, https://%s, without a path (such as /keys/{name}), query or fragment; "+
				"name the key in properties.encryption.keyVault.key", field, keyhold.Clip(ext.URI), keyhold.Clip(u.Host))
	}
	x := &keyhold.ExternalKeyVault{URI: "https://" + strings.ToLower(u.Host)}
	for _, f := range []struct {
		name, value string
		to          *string
	}{
		{"tenantId", ext.TenantID, &x.TenantID}, {"clientId", ext.ClientID, &x.ClientID},
	} {
		id, err := uuid.Parse(f.value)
		if err != nil {
			what := "the customer's directory (tenant) id"
			if f.name == "clientId" {
				what = "the application (client) id of the customer's app that holds the federated credential"
			}
			if f.value == "" {
				return nil, keyhold.Errorf(keyhold.CodeBadRequest, "properties.encryption.keyVault.federatedIdentity.%s is missing: give %s, a GUID", f.name, what)
			}
			return nil, keyhold.Errorf(keyhold.CodeBadRequest, "properties.encryption.keyVault.federatedIdentity.%s '%s' is not a GUID: give %s", f.name, keyhold.Clip(f.value), what)
		}
		*f.to = id.String()
	}
	if a := ext.AuthorityHost; a != "" {
		u, err := url.Parse(a)
		if err != nil || !strings.EqualFold(u.Scheme, "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/") {
			return nil, keyhold.Errorf(keyhold.CodeBadRequest,
				"properties.encryption.keyVault.federatedIdentity.authorityHost '%s' is not an https authority: give the customer's authority host alone, "+
					"such as %s (leave it out for Entra ID's)", keyhold.Clip(a), keyhold.DefaultAuthorityHost)
		}
		if x.AuthorityHost = "https://" + strings.ToLower(u.Host) + "/"; x.AuthorityHost == keyhold.DefaultAuthorityHost {
			x.AuthorityHost = ""
		}
	}
	return x, nil
}

// sameVaultURI reports whether two policies' external vaults (or none) are
// the same vault.
func sameVaultURI(a, b *keyhold.ExternalKeyVault) bool {
	if a == nil || b == nil {
		return a == b
	}
	return strings.EqualFold(strings.TrimSuffix(a.URI, "/"), strings.TrimSuffix(b.URI, "/"))
}

// sameExternal reports whether two external vaults (or none) are equal.
func sameExternal(a, b *keyhold.ExternalKeyVault) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// linkedError refuses a change to a policy while environments are linked
// to it, naming them; nil if none is.
func linkedError(ctx context.Context, tx keyhold.Tx, p *keyhold.EnterprisePolicy, what string) error {
	envs, err := tx.ListEnvironments(ctx, keyhold.EnvironmentFilter{PolicyID: p.ID()})
	if err != nil || len(envs) == 0 {
		return err
	}
	names := make([]string, 0, len(envs))
	for _, e := range envs {
		n := e.ID
		if e.DisplayName != "" {
			n += " (" + e.DisplayName + ")"
		}
		names = append(names, n)
	}
	return keyhold.Errorf(keyhold.CodeConflict,
		"enterprise policy '%s' can't be %s while environments are linked to it: %s; remove them from the policy first (unlink), then retry",
		p.Name, what, strings.Join(names, ", "))
}

// audit appends an entry of the caller's change in tx.
func (s *Service) audit(ctx context.Context, tx keyhold.Tx, id *keyhold.Identity, action, target, result, detail string) error {
	_, err := keyhold.Audit(ctx, tx, keyhold.AuditEntry{At: s.clock.Now(), TenantID: id.TenantID, ActorID: id.PrincipalID,
		Action: action, Target: target, Result: result, Detail: detail})
	return err
}

// Put creates the policy name in sub and rg (created=true), with its
// managed identity, or updates the existing one as ARM's PUT does, and
// returns it as stored. It needs ActionWrite at the policy. See the
// package documentation for what is refused.
func (s *Service) Put(ctx context.Context, sub, rg, name string, spec keyhold.PolicySpec) (p *keyhold.EnterprisePolicy, created bool, err error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, false, err
	}
	err = s.store.Update(ctx, func(tx keyhold.Tx) error {
		p, created = nil, false
		if err := arm.Authorize(ctx, tx, id, policyID(sub, rg, name), ActionWrite); err != nil {
			return err
		}
		subscription, g, err := s.scope(ctx, tx, id, sub, rg, true)
		if err != nil {
			return err
		}
		if err := checkName(name); err != nil {
			return err
		}
		old, err := tx.Policy(ctx, subscription.ID, g.Name, name)
		switch {
		case keyhold.ErrorCode(err) == keyhold.CodeResourceNotFound:
			p, err = s.create(ctx, tx, id, subscription.ID, g.Name, name, spec)
			created = err == nil
			return err
		case err != nil:
			return err
		}
		c := keyhold.PolicyPatch{Location: &spec.Location, Kind: &spec.Kind, IdentityType: &spec.IdentityType, EncryptionState: &spec.EncryptionState,
			KeyVaultID: &spec.KeyVaultID, External: spec.External, KeyName: &spec.KeyName, KeyVersion: &spec.KeyVersion, Tags: &spec.Tags}
		p, err = s.update(ctx, tx, id, old, c, true)
		return err
	})
	if err != nil {
		return nil, false, err
	}
	return p, created, nil
}

// scope checks the policy's subscription (the caller's tenant's) and
// resource group, and, with write, Microsoft.PowerPlatform's registration.
func (s *Service) scope(ctx context.Context, tx keyhold.Tx, id *keyhold.Identity, sub, rg string, write bool) (*keyhold.Subscription, *keyhold.ResourceGroup, error) {
	subscription, err := arm.SubscriptionFor(ctx, tx, id, sub)
	if err != nil {
		return nil, nil, err
	}
	if write {
		if err := arm.RequireRegistered(ctx, tx, subscription.ID, keyhold.NamespacePowerPlatform); err != nil {
			return nil, nil, err
		}
	}
	g, err := arm.GroupIn(ctx, tx, subscription.ID, rg)
	if err != nil {
		return nil, nil, err
	}
	return subscription, g, nil
}

// create validates spec and creates the policy with its managed identity.
func (s *Service) create(ctx context.Context, tx keyhold.Tx, id *keyhold.Identity, sub, rg, name string, spec keyhold.PolicySpec) (*keyhold.EnterprisePolicy, error) {
	kind, err := checkKind(spec.Kind)
	if err != nil {
		return nil, err
	}
	loc, err := checkLocation(spec.Location)
	if err != nil {
		return nil, err
	}
	if err := checkIdentity(spec.IdentityType); err != nil {
		return nil, err
	}
	state, err := checkState(spec.EncryptionState)
	if err != nil {
		return nil, err
	}
	if err := checkTags(spec.Tags); err != nil {
		return nil, err
	}
	vaultID, ext, keyName, err := resolveKey(ctx, tx, id, spec.KeyVaultID, spec.External, spec.KeyName, spec.KeyVersion)
	if err != nil {
		return nil, err
	}
	mi, err := s.arm.CreateManagedIdentityTx(ctx, tx, id.TenantID, name)
	if err != nil {
		return nil, err
	}
	now := s.clock.Now().UTC()
	p := &keyhold.EnterprisePolicy{
		SubscriptionID: sub, ResourceGroup: rg, Name: name, Location: loc, Kind: kind, TenantID: id.TenantID,
		SystemID:    "/regions/" + loc + "/providers/" + keyhold.PolicyResourceType + "/" + uuid.NewString(),
		PrincipalID: mi.ID, EncryptionState: state, KeyVaultID: vaultID, External: ext, KeyName: keyName, KeyVersion: strings.ToLower(spec.KeyVersion),
		HealthStatus: keyhold.HealthUndetermined, Tags: spec.Tags, CreatedBy: id.PrincipalID, CreatedAt: now, UpdatedAt: now,
	}
	if ps := s.sealer(); ps != nil {
		ps.SealPolicy(p)
	}
	if err := tx.CreatePolicy(ctx, p); err != nil {
		return nil, err
	}
	return p, s.audit(ctx, tx, id, "enterprisePolicy.create", p.ID(), "Succeeded",
		"created with "+p.KeyRef()+" and managed identity "+mi.ID)
}

// update applies c to old. put says whether c came from a PUT, whose
// tags replace the old ones (a PATCH without tags keeps them).
func (s *Service) update(ctx context.Context, tx keyhold.Tx, id *keyhold.Identity, old *keyhold.EnterprisePolicy, c keyhold.PolicyPatch, put bool) (*keyhold.EnterprisePolicy, error) {
	immutable := func(field, was, now string) error {
		return keyhold.Errorf(keyhold.CodeBadRequest,
			"%s of enterprise policy '%s' is '%s' and can't be changed to '%s': only the key (properties.encryption.keyVault) and tags can; "+
				"to move the policy, delete it and create a new one", field, old.Name, was, keyhold.Clip(now))
	}
	if c.Location != nil {
		if l := keyhold.NormalizeLocation(*c.Location); l != old.Location {
			if put && l == "" {
				return nil, keyhold.Errorf(keyhold.CodeBadRequest, "location is missing: send the policy's location, '%s'", old.Location)
			}
			return nil, immutable("location", old.Location, *c.Location)
		}
	}
	if c.Kind != nil && !strings.EqualFold(*c.Kind, old.Kind) {
		if put && *c.Kind == "" {
			return nil, keyhold.Errorf(keyhold.CodeBadRequest, "kind is missing: send the policy's kind, '%s'", old.Kind)
		}
		return nil, immutable("kind", old.Kind, *c.Kind)
	}
	if c.IdentityType != nil || put {
		if err := checkIdentity(str(c.IdentityType)); err != nil {
			return nil, err
		}
	}
	if c.EncryptionState != nil && *c.EncryptionState != "" && !strings.EqualFold(*c.EncryptionState, old.EncryptionState) {
		return nil, immutable("properties.encryption.state", old.EncryptionState, *c.EncryptionState)
	}

	p := *old
	if c.KeyVaultID != nil {
		p.KeyVaultID = *c.KeyVaultID
	}
	switch {
	case c.External != nil:
		x := *c.External
		p.External = &x
		if c.KeyVaultID == nil {
			p.KeyVaultID = "" // the key moves to the external vault
		}
	case put || (c.KeyVaultID != nil && *c.KeyVaultID != ""):
		p.External = nil // the key moves to (or stays in) a built-in vault
	}
	if c.KeyName != nil {
		p.KeyName = *c.KeyName
	}
	switch {
	case c.KeyVersion != nil:
		p.KeyVersion = *c.KeyVersion
	case !strings.EqualFold(p.KeyVaultID, old.KeyVaultID) || !strings.EqualFold(p.KeyName, old.KeyName) || !sameVaultURI(p.External, old.External):
		p.KeyVersion = "" // a version of the old key means nothing for the new one
	}
	if c.Tags != nil {
		p.Tags = *c.Tags
		if len(p.Tags) == 0 {
			p.Tags = nil
		}
	}
	if err := checkTags(p.Tags); err != nil {
		return nil, err
	}
	var err error
	if p.KeyVaultID, p.External, p.KeyName, err = resolveKey(ctx, tx, id, p.KeyVaultID, p.External, p.KeyName, p.KeyVersion); err != nil {
		return nil, err
	}
	p.KeyVersion = strings.ToLower(p.KeyVersion)

	keyChanged := p.KeyVaultID != old.KeyVaultID || p.KeyName != old.KeyName || p.KeyVersion != old.KeyVersion ||
		!sameExternal(p.External, old.External)
	tagsChanged := !maps.Equal(p.Tags, old.Tags)
	if !keyChanged && !tagsChanged {
		return old, nil // the same policy again: nothing to do, even while linked
	}
	if err := linkedError(ctx, tx, old, "updated"); err != nil {
		return nil, err
	}
	if ps := s.sealer(); ps != nil {
		// What the request doesn't change (identity, tenant, systemId)
		// comes from the stored record: it must be as sealed.
		if err := ps.CheckPolicy(old); err != nil {
			return nil, err
		}
		ps.SealPolicy(&p)
	}
	var changes []string
	if keyChanged {
		p.HealthStatus = keyhold.HealthUndetermined
		v := p.KeyVersion
		if v == "" {
			v = "current"
		}
		changes = append(changes, p.KeyRef()+" (version "+v+")")
	}
	if tagsChanged {
		changes = append(changes, "tags: "+strings.Join(slices.Sorted(maps.Keys(p.Tags)), ", "))
	}
	p.UpdatedAt = s.clock.Now().UTC()
	if err := tx.UpdatePolicy(ctx, &p); err != nil {
		return nil, err
	}
	return &p, s.audit(ctx, tx, id, "enterprisePolicy.update", p.ID(), "Succeeded", strings.Join(changes, "; "))
}

// Patch changes the properties c names of an existing policy (see Patch
// for the rules) and returns it. It needs ActionWrite at the policy.
func (s *Service) Patch(ctx context.Context, sub, rg, name string, c keyhold.PolicyPatch) (*keyhold.EnterprisePolicy, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	var p *keyhold.EnterprisePolicy
	err = s.store.Update(ctx, func(tx keyhold.Tx) error {
		if err := arm.Authorize(ctx, tx, id, policyID(sub, rg, name), ActionWrite); err != nil {
			return err
		}
		subscription, g, err := s.scope(ctx, tx, id, sub, rg, true)
		if err != nil {
			return err
		}
		old, err := tx.Policy(ctx, subscription.ID, g.Name, name)
		if err != nil {
			return err
		}
		p, err = s.update(ctx, tx, id, old, c, false)
		return err
	})
	return p, err
}

// Get returns a policy, with its last successful unwrap (LastUnwrap). It
// needs ActionRead at the policy (Reader). A missing one is
// CodeResourceNotFound.
func (s *Service) Get(ctx context.Context, sub, rg, name string) (*keyhold.EnterprisePolicy, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	var p *keyhold.EnterprisePolicy
	err = s.store.View(ctx, func(tx keyhold.Tx) error {
		if err := arm.Authorize(ctx, tx, id, policyID(sub, rg, name), ActionRead); err != nil {
			return err
		}
		subscription, err := arm.SubscriptionFor(ctx, tx, id, sub)
		if err != nil {
			return err
		}
		if p, err = tx.Policy(ctx, subscription.ID, rg, name); err != nil {
			return err
		}
		return withLastUnwrap(ctx, tx, p)
	})
	return p, err
}

// withLastUnwrap sets p.LastUnwrap: the last successful unwrap its
// identity recorded with a key of the vault p names now.
func withLastUnwrap(ctx context.Context, tx keyhold.Tx, p *keyhold.EnterprisePolicy) error {
	if p.PrincipalID == "" {
		return nil
	}
	at, err := tx.LastUnwrap(ctx, p.PrincipalID, p.UnwrapVault())
	if err != nil || at.IsZero() {
		return err
	}
	p.LastUnwrap = &at
	return nil
}

// ListByResourceGroup returns the policies of a resource group that the
// caller may read, by name. A missing group is CodeResourceGroupNotFound.
func (s *Service) ListByResourceGroup(ctx context.Context, sub, rg string) ([]*keyhold.EnterprisePolicy, error) {
	return s.list(ctx, sub, rg)
}

// ListBySubscription returns the policies of a subscription that the
// caller may read, by resource group and name.
func (s *Service) ListBySubscription(ctx context.Context, sub string) ([]*keyhold.EnterprisePolicy, error) {
	return s.list(ctx, sub, "")
}

func (s *Service) list(ctx context.Context, sub, rg string) ([]*keyhold.EnterprisePolicy, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	var out []*keyhold.EnterprisePolicy
	err = s.store.View(ctx, func(tx keyhold.Tx) error {
		subscription, err := arm.SubscriptionFor(ctx, tx, id, sub)
		if err != nil {
			return err
		}
		if rg != "" {
			if _, err := arm.GroupIn(ctx, tx, subscription.ID, rg); err != nil {
				return err
			}
		}
		as, err := tx.ListRoleAssignments(ctx, keyhold.RoleAssignmentFilter{TenantID: id.TenantID, PrincipalID: id.PrincipalID})
		if err != nil {
			return err
		}
		ps, err := tx.ListPolicies(ctx, keyhold.PolicyFilter{SubscriptionID: subscription.ID, ResourceGroup: rg})
		if err != nil {
			return err
		}
		out = make([]*keyhold.EnterprisePolicy, 0, len(ps))
		for _, p := range ps {
			if keyhold.Allowed(as, p.ID(), ActionRead, false) {
				out = append(out, p)
			}
		}
		return nil
	})
	return out, err
}

// Delete deletes a policy with its managed identity (and that identity's
// role assignments) and the role assignments on the policy. It needs
// ActionDelete at the policy: the key vault administrator's right, since
// deleting the policy is one of the ways the spec (001) lets them revoke
// key access. A missing policy is CodeResourceNotFound. Environments
// linked to the policy are locked through Config.LockLinked in the same
// transaction, as a deletion of its resource group locks them, and its
// after function runs once the deletion has committed; without
// Config.LockLinked the delete is refused with CodeConflict naming them.
func (s *Service) Delete(ctx context.Context, sub, rg, name string) error {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return err
	}
	var after func()
	err = s.store.Update(ctx, func(tx keyhold.Tx) error {
		after = nil
		if err := arm.Authorize(ctx, tx, id, policyID(sub, rg, name), ActionDelete); err != nil {
			return err
		}
		subscription, err := arm.SubscriptionFor(ctx, tx, id, sub)
		if err != nil {
			return err
		}
		p, err := tx.Policy(ctx, subscription.ID, rg, name)
		if err != nil {
			return err
		}
		if s.lock == nil {
			if err := linkedError(ctx, tx, p, "deleted"); err != nil {
				return err
			}
		}
		note, a, err := s.lockLinked(ctx, tx, id, p, "deleted")
		if err != nil {
			return err
		}
		after = a
		return s.remove(ctx, tx, id, p, note)
	})
	if err != nil {
		return err
	}
	if after != nil {
		after()
	}
	return nil
}

// LinkedEnvironments returns how many environments are linked to the
// policy: how many a Delete of it (or of its resource group) would lock.
// It needs ActionRead at the policy, which the key vault administrator who
// may delete it holds; it names no environment, as those belong to the
// Power Platform side. A missing policy is CodeResourceNotFound.
func (s *Service) LinkedEnvironments(ctx context.Context, sub, rg, name string) (int, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	err = s.store.View(ctx, func(tx keyhold.Tx) error {
		if err := arm.Authorize(ctx, tx, id, policyID(sub, rg, name), ActionRead); err != nil {
			return err
		}
		subscription, err := arm.SubscriptionFor(ctx, tx, id, sub)
		if err != nil {
			return err
		}
		p, err := tx.Policy(ctx, subscription.ID, rg, name)
		if err != nil {
			return err
		}
		envs, err := tx.ListEnvironments(ctx, keyhold.EnvironmentFilter{PolicyID: p.ID()})
		n = len(envs)
		return err
	})
	return n, err
}

// remove deletes p, with its identity and the role assignments on it, and
// audits it; note, if not empty, is added to the audit entry. The caller
// has dealt with the environments linked to p (refused or locked them).
func (s *Service) remove(ctx context.Context, tx keyhold.Tx, id *keyhold.Identity, p *keyhold.EnterprisePolicy, note string) error {
	// The identity goes with its resource, and its role assignments (on
	// the key vault, say) with it.
	if err := s.arm.DeleteManagedIdentityTx(ctx, tx, p.PrincipalID); err != nil && keyhold.ErrorCode(err) != keyhold.CodeNotFound {
		return err
	}
	// Role assignments on the policy (Reader for the platform admin) are
	// extension resources of it: they go too, so that a new policy of the
	// same name starts with none.
	as, err := tx.ListRoleAssignments(ctx, keyhold.RoleAssignmentFilter{TenantID: p.TenantID})
	if err != nil {
		return err
	}
	for _, a := range as {
		if keyhold.ScopeCovers(p.ID(), a.Scope) {
			if err := tx.DeleteRoleAssignment(ctx, a.ID); err != nil {
				return err
			}
		}
	}
	if err := tx.DeletePolicy(ctx, p.SubscriptionID, p.ResourceGroup, p.Name); err != nil {
		return err
	}
	detail := "deleted with managed identity " + p.PrincipalID
	if note != "" {
		detail += "; " + note
	}
	return s.audit(ctx, tx, id, "enterprisePolicy.delete", p.ID(), "Succeeded", detail)
}

// DeleteResourcesIn deletes the policies and deployment records of a
// resource group that ARM is deleting (arm.ResourceDeleter), all in one
// transaction. A policy that environments are linked to refuses it
// (CodeConflict naming them, deleting nothing) unless Config.LockLinked is
// set: then the environments are locked in the same transaction, before
// the policy and its managed identity go, and the hooks' after functions
// run once it has committed.
func (s *Service) DeleteResourcesIn(ctx context.Context, sub, rg string) error {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return err
	}
	var afters []func()
	err = s.store.Update(ctx, func(tx keyhold.Tx) error {
		afters = nil
		ps, err := tx.ListPolicies(ctx, keyhold.PolicyFilter{SubscriptionID: sub, ResourceGroup: rg})
		if err != nil {
			return err
		}
		if s.lock == nil {
			for _, p := range ps {
				if err := linkedError(ctx, tx, p, "deleted with its resource group"); err != nil {
					return err
				}
			}
		}
		for _, p := range ps {
			note, after, err := s.lockLinked(ctx, tx, id, p, "deleted with its resource group "+p.ResourceGroup)
			if err != nil {
				return err
			}
			if after != nil {
				afters = append(afters, after)
			}
			if err := s.remove(ctx, tx, id, p, note); err != nil {
				return err
			}
		}
		dtx, ok := tx.(keyhold.DeploymentTx)
		if !ok {
			return nil
		}
		ds, err := dtx.ListDeployments(ctx, sub, rg)
		if err != nil {
			return err
		}
		for _, d := range ds {
			if err := dtx.DeleteDeployment(ctx, d.SubscriptionID, d.ResourceGroup, d.Name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, after := range afters {
		after()
	}
	return nil
}

// lockLinked locks, through Config.LockLinked, the environments linked to
// p, which id is deleting (why says how: "deleted", "deleted with its
// resource group rg"), and returns what the policy's audit entry adds and
// the hook's after function. Nothing is linked: nothing to do.
func (s *Service) lockLinked(ctx context.Context, tx keyhold.Tx, id *keyhold.Identity, p *keyhold.EnterprisePolicy, why string) (string, func(), error) {
	envs, err := tx.ListEnvironments(ctx, keyhold.EnvironmentFilter{PolicyID: p.ID()})
	if err != nil || len(envs) == 0 {
		return "", nil, err
	}
	if s.lock == nil { // checked by the caller; kept as the rule's last line
		return "", nil, linkedError(ctx, tx, p, why)
	}
	after, err := s.lock(ctx, tx, p, id, why)
	if err != nil {
		return "", nil, err
	}
	ids := make([]string, 0, len(envs))
	for _, e := range envs {
		ids = append(ids, e.ID)
	}
	return why + ", which locked the environments linked to it: " + strings.Join(ids, ", "), after, nil
}

// BySystemID returns the policy that ref names: its systemId
// ("/regions/{location}/providers/Microsoft.PowerPlatform/enterprisePolicies/{guid}")
// or its ARM resource id, in any case. It needs ActionRead at the policy;
// a policy of another tenant is CodeResourceNotFound.
func (s *Service) BySystemID(ctx context.Context, ref string) (*keyhold.EnterprisePolicy, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	var p *keyhold.EnterprisePolicy
	err = s.store.View(ctx, func(tx keyhold.Tx) error {
		p, err = Find(ctx, tx, ref)
		if err == nil && !strings.EqualFold(p.TenantID, id.TenantID) {
			err = notFoundRef(ref)
		}
		if err != nil {
			return err
		}
		return arm.Authorize(ctx, tx, id, p.ID(), ActionRead)
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

func notFoundRef(ref string) error {
	return keyhold.Errorf(keyhold.CodeResourceNotFound,
		"no enterprise policy has the id or systemId '%s': copy the policy's systemId (/regions/{location}/providers/%s/{guid}) or resource id", keyhold.Clip(ref), keyhold.PolicyResourceType)
}

// Find returns, in tx, the policy that ref names (its systemId or its ARM
// resource id, in any case) without checking any caller: for services that
// authorize in their own transaction, such as linking an environment. An
// unknown ref is CodeResourceNotFound.
func Find(ctx context.Context, tx keyhold.Tx, ref string) (*keyhold.EnterprisePolicy, error) {
	ref = strings.TrimSpace(ref)
	if strings.HasPrefix(strings.ToLower(ref), "/subscriptions/") {
		sc, err := keyhold.ParseScope(ref)
		if err != nil || sc.Namespace != keyhold.NamespacePowerPlatform {
			return nil, notFoundRef(ref)
		}
		typ, name, ok := strings.Cut(sc.Path, "/")
		if !ok || !strings.EqualFold(typ, "enterprisePolicies") || strings.Contains(name, "/") {
			return nil, notFoundRef(ref)
		}
		p, err := tx.Policy(ctx, sc.SubscriptionID, sc.ResourceGroup, name)
		if keyhold.ErrorCode(err) == keyhold.CodeResourceNotFound {
			return nil, notFoundRef(ref)
		}
		return p, err
	}
	p, err := tx.PolicyBySystemID(ctx, ref)
	if keyhold.ErrorCode(err) == keyhold.CodeResourceNotFound {
		return nil, notFoundRef(ref)
	}
	return p, err
}
