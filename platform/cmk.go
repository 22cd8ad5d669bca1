package platform

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/arm"
)

// The customer-managed key lifecycle (keyhold.CMKService): link an
// environment to an enterprise policy, swap it to another, unlink it, and
// follow the policy key's rotation. LinkPolicy and UnlinkPolicy check
// everything synchronously, before anything changes, and then start a
// durable operation (package ops) whose steps are in cmkops.go, rekey.go
// and rotation.go.
//
// # Custody
//
// An environment key (EK) has one wrapped copy per epoch: under the MMK, or
// under the policy's key (CMK) as the policy's managed identity. Moving
// custody rewraps every epoch's EK and, in one transaction, stores the new
// copies, deletes the old ones and records the link: there is never a
// moment when the store holds both an MMK and a CMK copy, so once the link
// commits nothing on the platform can unwrap the environment without the
// customer's key. A re-key then moves every item to a fresh epoch whose EK
// was only ever wrapped by the CMK, and destroys the old epochs' keys.

// CMK is the service of the customer-managed key lifecycle: the checks
// and the start of link, unlink and swap (this file), their steps
// (cmkops.go), re-keying (rekey.go), rotation pickup (rotation.go) and key
// version usage (keyusage.go). The custody move itself is the core's
// (custody.go); an operation's pause while its environment is Locked is
// Health's (lockops.go).
type CMK struct {
	*core
	// envs discards an upload that a re-key left unfinished (files.go).
	envs *Environments
}

// errCMKOff answers the lifecycle's methods on a platform opened without
// Config.Ops, Vault and CMK.
var errCMKOff = keyhold.Errorf(keyhold.CodeServiceUnavailable,
	"customer-managed keys are not configured on this server: it was started without a key vault or an operation runner")

// ActionPolicyRead is the ARM action that the Reader role grants on an
// enterprise policy: what an administrator needs, on top of a directory
// role, to link environments to it.
const ActionPolicyRead = "Microsoft.PowerPlatform/enterprisePolicies/read"

// policyIdentity is the identity a policy's managed identity acts as.
func policyIdentity(principalID, tenantID string) *keyhold.Identity {
	return &keyhold.Identity{PrincipalID: principalID, TenantID: tenantID, Type: keyhold.PrincipalManagedIdentity}
}

// currentKID renders a stored kid with the vault's public address: a kid
// is stored in the relative form (storedKID), and those stored before it
// name the host of the replica that wrapped them, which may have moved or
// be another replica.
func (p *core) currentKID(kid string) string {
	if !builtinKID(p.kv, kid) {
		return kid // an external vault's: its address is its own
	}
	if k, err := keyhold.ParseKeyID(kid); err == nil && p.kv != nil {
		return p.kv.KeyID(k.Vault, k.Name, k.Version)
	}
	return kid
}

// storedKID is the form in which a wrapped key's kid is stored: for a
// key of the built-in vault, /vaults/{vault}/keys/{name}/{version},
// independent of any address, so that replicas behind one public address
// (or one restarted at another) store and compare the same value. Any
// other kid (a key of another vault service) is stored as it is.
func (p *core) storedKID(kid string) string {
	if p.kv == nil {
		return kid
	}
	if _, _, _, err := p.kv.ParseKeyID(kid); err != nil {
		return kid
	}
	k, err := keyhold.ParseKeyID(kid)
	if err != nil {
		return kid
	}
	return k.Relative()
}

// onKeyVersion reports whether wk is wrapped under the key version kid
// names, whatever the form and host its stored kid was written with.
func onKeyVersion(wk *keyhold.WrappedKey, kid string) bool {
	a, err := keyhold.ParseKeyID(wk.KeyID)
	if err != nil {
		return false
	}
	b, err := keyhold.ParseKeyID(kid)
	return err == nil && a.SameKey(b)
}

// vaultNameOf returns the name of the vault a policy's keyVaultId names.
func vaultNameOf(pol *keyhold.EnterprisePolicy) string {
	id := strings.TrimSuffix(pol.KeyVaultID, "/")
	i := strings.LastIndex(strings.ToLower(id), "/vaults/")
	if i < 0 {
		return hsmNameOf(pol) // a Managed HSM's (managedhsm.go)
	}
	return id[i+len("/vaults/"):]
}

// onPolicy reports whether wk is a copy wrapped by pol's identity under
// pol's key (and, if pol names one, under its version).
func onPolicy(wk *keyhold.WrappedKey, pol *keyhold.EnterprisePolicy) bool {
	if wk.Root != keyhold.RootCMK || wk.PrincipalID != pol.PrincipalID {
		return false
	}
	if pol.External != nil {
		return inExternalVault(pol, wk.KeyID) && (pol.KeyVersion == "" || strings.HasSuffix(strings.ToLower(wk.KeyID), "/"+strings.ToLower(pol.KeyVersion)))
	}
	k, err := keyhold.ParseKeyID(wk.KeyID)
	return err == nil && strings.EqualFold(k.Vault, vaultNameOf(pol)) && strings.EqualFold(k.Name, pol.KeyName) &&
		(pol.KeyVersion == "" || strings.EqualFold(k.Version, pol.KeyVersion))
}

// cmkError turns an error of a customer key into one that says what
// failed: revocations (Forbidden with its inner code, KeyNotFound,
// VaultNotFound) keep their codes, and faults of the vault become
// CodeKeyVaultUnavailable (retry later).
func cmkError(err error, what, kid, principal string) error {
	var ke *keyhold.Error
	if !errors.As(err, &ke) {
		return &keyhold.Error{Code: keyhold.CodeKeyVaultUnavailable, Err: err,
			Message: fmt.Sprintf("could not %s: the key vault holding %s could not be reached: retry later", what, kid)}
	}
	switch ke.Code {
	case keyhold.CodeForbidden, keyhold.CodeKeyNotFound, keyhold.CodeVaultNotFound:
		return &keyhold.Error{Code: ke.Code, Inner: ke.Inner, Err: err, Message: fmt.Sprintf(
			"could not %s: the enterprise policy's managed identity %s can't use the customer-managed key %s: %s", what, principal, kid, ke.Message)}
	case keyhold.CodeKeyVaultUnavailable, keyhold.CodeServiceUnavailable, keyhold.CodeInternal:
		return &keyhold.Error{Code: keyhold.CodeKeyVaultUnavailable, Inner: ke.Inner, Err: err,
			Message: fmt.Sprintf("could not %s: the key vault holding %s did not answer: retry later", what, kid)}
	}
	return err
}

// policyFor loads the policy with systemID for the caller, an
// administrator: it must be of the caller's tenant (others are not found)
// and the caller needs Reader on it. Its binding to its key must pass its
// integrity check (CodeRecordIntegrity, audited).
func (p *CMK) policyFor(ctx context.Context, tx keyhold.Tx, id *keyhold.Identity, systemID string) (*keyhold.EnterprisePolicy, error) {
	notFound := keyhold.Errorf(keyhold.CodeNotFound,
		"no enterprise policy has systemId %q in tenant %s: use the policy's properties.systemId (/regions/{location}/providers/Microsoft.PowerPlatform/enterprisePolicies/{guid})",
		systemID, id.TenantID)
	if strings.TrimSpace(systemID) == "" {
		return nil, keyhold.Errorf(keyhold.CodeBadRequest, "SystemId is required: give the enterprise policy's properties.systemId")
	}
	pol, err := tx.PolicyBySystemID(ctx, systemID)
	switch {
	case keyhold.IsNotFound(err):
		return nil, notFound
	case err != nil:
		return nil, err
	case !strings.EqualFold(pol.TenantID, id.TenantID):
		return nil, notFound
	}
	if err := requireReader(ctx, tx, id, pol); err != nil {
		return nil, err
	}
	if err := p.checkPolicy(pol); err != nil {
		return nil, err
	}
	return pol, nil
}

// requireReader checks that the caller holds Reader (or any role granting
// read) on the policy, as the spec asks of administrators who add
// environments to it.
func requireReader(ctx context.Context, tx keyhold.Tx, id *keyhold.Identity, pol *keyhold.EnterprisePolicy) error {
	err := arm.Authorize(ctx, tx, id, pol.ID(), ActionPolicyRead)
	if keyhold.ErrorCode(err) == keyhold.CodeAuthorizationFailed {
		return keyhold.Errorf(keyhold.CodeForbidden,
			"principal %s may not use enterprise policy %s: an administrator also needs the Reader role on the policy; ask the key vault administrator to assign it Reader at scope %s",
			id.PrincipalID, pol.ID(), pol.ID()).WithCause(err)
	}
	return err
}

// requireCustodyReader checks that the caller may end or move the custody
// of env's data under the customer-managed key of the enterprise policy it
// is linked to: it needs Reader on that policy, exactly as an unlink does.
// Every path that takes an environment out of the policy's custody (unlink,
// swap, reset) or destroys or replaces what is held under it (delete,
// restore or copy into it) calls it, so that a platform administrator
// without rights on the customer's key can't get around the unlink's check
// by another route (a swap to a policy of its own, then an unlink). An
// environment linked to no policy passes.
//
// Reader is checked at the policy's resource id, which role assignments
// name, so the check holds whether or not the policy still exists (one
// deleted with its resource group leaves the environment Locked and still
// naming it). what says what the caller is doing ("swap environment X to
// enterprise policy Y"), for the message.
func requireCustodyReader(ctx context.Context, tx keyhold.Tx, id *keyhold.Identity, env *keyhold.Environment, what string) error {
	polID := env.PolicyID
	if polID == "" && env.PolicySystemID != "" {
		pol, err := tx.PolicyBySystemID(ctx, env.PolicySystemID)
		if err != nil {
			return err
		}
		polID = pol.ID()
	}
	if polID == "" {
		return nil
	}
	err := arm.Authorize(ctx, tx, id, polID, ActionPolicyRead)
	if keyhold.ErrorCode(err) == keyhold.CodeAuthorizationFailed {
		return keyhold.Errorf(keyhold.CodeForbidden,
			"principal %s may not %s: environment %s is linked to enterprise policy %s, and this ends or moves that policy's custody of its data, "+
				"which needs the Reader role on the policy as an unlink does; ask the key vault administrator to assign it Reader at scope %s",
			id.PrincipalID, what, env.ID, polID, polID).WithCause(err)
	}
	return err
}

// cmkInput is the Input of the lifecycle's operations.
type cmkInput struct {
	// PolicyID and SystemID name the policy the environment goes to
	// (link, swap, re-key, rotation) or leaves (unlink).
	PolicyID string `json:"policyId"`
	SystemID string `json:"systemId"`
	// FromEpoch is the epoch new writes used when the operation started:
	// the re-key starts the next one (once).
	FromEpoch uint32 `json:"fromEpoch,omitempty"`
	// FromPolicyID names the policy a swap leaves.
	FromPolicyID string `json:"fromPolicyId,omitempty"`
	// FromBYOK marks a link that migrates an environment off its
	// tenant's legacy BYOK key (byok_migrate.go): it stays Enabled
	// throughout (spec 000: no downtime).
	FromBYOK bool `json:"fromByok,omitempty"`
	// PlaceFlows marks a re-key that finishes a link from the platform
	// key whose own re-key failed: it places the flows as that link
	// would have (rekey_flows.go), rather than keeping epoch 0 as found.
	PlaceFlows bool `json:"placeFlows,omitempty"`
}

func opInput(op *keyhold.Operation) (cmkInput, error) {
	var in cmkInput
	if err := json.Unmarshal(op.Input, &in); err != nil {
		return in, keyhold.Errorf(keyhold.CodeInternal, "operation %s has unreadable input", op.ID).WithCause(err)
	}
	return in, nil
}

// audit actions of the lifecycle.
const (
	auditLinkStart     = "environment.link.start"
	auditLinkDisable   = "environment.link.disable"
	auditLinkRewrap    = "environment.link.rewrap"
	auditLinkEnable    = "environment.link.enable"
	auditUnlinkStart   = "environment.unlink.start"
	auditUnlinkDisable = "environment.unlink.disable"
	auditUnlinkRewrap  = "environment.unlink.rewrap"
	auditUnlinkEnable  = "environment.unlink.enable"
	auditRekeyStart    = "environment.rekey.start"
	auditNewEpoch      = "environment.rekey.newEpoch"
	auditDestroy       = "environment.rekey.destroy"
	auditRollback      = "environment.encryption.rollback"
	auditRotate        = "environment.rotate.rewrap"
)

// LinkPolicy starts linking an environment to the enterprise policy with
// systemID, or swapping it to that policy from the one it is linked to.
//
// Every check runs first, and a refusal changes nothing: the caller must
// be a platform administrator (CodeForbidden) with Reader on the policy
// (CodeForbidden, naming the role and scope) and, for a swap, Reader on the
// policy the environment leaves too, as its unlink would need
// (CodeForbidden, naming that policy: requireCustodyReader); the
// environment must exist
// (CodeEnvironmentNotFound), be Enabled (CodeEnvironmentLocked if it is
// Locked, naming the policy and the revocation; CodeEnvironmentDisabled in
// any other state: requireServing), not be linked to this policy already
// and have no operation running (CodeConflict);
// the policy must exist (CodeNotFound), be of kind Encryption with a
// system-assigned identity and be in the environment's region, and the
// environment must be a Managed Environment and not a Trial or Teams one
// (CodeBadRequest); the tenant must hold one of the licences 002 lists
// (CodeForbidden naming them: requireLicence), except for a re-key; the
// policy's vault must exist (CodeVaultNotFound) with
// soft delete and purge protection (CodeBadRequest); and the policy's
// identity must be able to get, wrap and unwrap with its key, which must
// exist, be enabled and be within its dates (CodeForbidden with Key
// Vault's inner code, CodeKeyNotFound, CodeKeyVaultUnavailable).
//
// Local checks run before the key probe, so that a refusal for a local
// reason leaves no wrap or unwrap in the customer's vault log.
//
// An environment whose link to this policy is in place but whose last
// encryption operation failed (its re-key did not finish) is not refused:
// LinkPolicy starts the re-key again (kind keyhold.OpRekey).
//
// A finance and operations environment (Environment.FinOps) needs Power
// Platform integration (CodeBadRequest, naming how to turn it on): 002
// keeps one without it under the Microsoft-managed key.
func (p *CMK) LinkPolicy(ctx context.Context, envID, systemID string) (*keyhold.Operation, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	if p.ops == nil {
		return nil, errCMKOff
	}
	var plan *linkPlan
	if err := p.store.View(ctx, func(tx keyhold.Tx) error {
		plan, err = p.checkLink(ctx, tx, id, envID, systemID)
		return err
	}); err != nil {
		if isTamper(err) {
			p.auditTamper(ctx, id.TenantID, envTarget(envID), "link to enterprise policy "+systemID+" by "+id.PrincipalID, err)
		}
		return nil, err
	}
	if err := p.probe(ctx, plan); err != nil {
		return nil, err
	}
	var op *keyhold.Operation
	err = p.store.Update(ctx, func(tx keyhold.Tx) error {
		// Again in the writing transaction: the environment, the policy
		// or the caller's roles may have changed since.
		plan, err := p.checkLink(ctx, tx, id, envID, systemID)
		if err != nil {
			return err
		}
		env, pol := plan.env, plan.pol
		in := cmkInput{PolicyID: pol.ID(), SystemID: pol.SystemID, FromEpoch: env.Epoch, FromPolicyID: env.PolicyID}
		kind, action, detail := keyhold.OpLink, auditLinkStart, "linking to enterprise policy "+pol.ID()+" (key "+plan.keyID+")"
		if env.KeyManagedBy == keyhold.KeyManagedByCustomerViaMicrosoft {
			in.FromBYOK = true
			detail = "migrating from the tenant's BYOK key to enterprise policy " + pol.ID() + " (key " + plan.keyID + "), the environment staying enabled"
		}
		switch {
		case plan.rekey:
			kind, action, detail = keyhold.OpRekey, auditRekeyStart, "re-keying under enterprise policy "+pol.ID()+" after a failed encryption operation"
			if in.PlaceFlows, err = failedLinkPlaces(ctx, tx, env); err != nil {
				return err
			}
		case env.PolicyID != "":
			detail = "swapping from enterprise policy " + env.PolicyID + " to " + pol.ID() + " (key " + plan.keyID + ")"
		}
		op, err = p.startOp(ctx, tx, id, env, kind, in, action, detail)
		return err
	})
	if err != nil {
		return nil, err
	}
	p.ops.Kick()
	p.log.InfoContext(ctx, "environment link started", "environment", envID, "policy", systemID, "op", op.ID, "kind", op.Kind, "by", id.PrincipalID)
	return op, nil
}

// startOp creates an operation of kind on env in tx, marks the
// environment's encryption Running under it, and audits it.
func (p *CMK) startOp(ctx context.Context, tx keyhold.Tx, id *keyhold.Identity, env *keyhold.Environment, kind string, in cmkInput, action, detail string) (*keyhold.Operation, error) {
	return p.createEnvOp(ctx, tx, id, env, kind, in, action, detail, func(op *keyhold.Operation) error {
		env.EncryptionStatus, env.LastOperationID, env.UpdatedAt = keyhold.EncryptionRunning, op.ID, p.clock.Now().UTC()
		return tx.UpdateEnvironment(ctx, env)
	})
}

// createEnvOp creates an operation of kind on env in tx with input in,
// runs then (if set) with it, and audits it as action: the start of every
// operation on an environment (startOp here, startDBOp in backups.go).
func (p *CMK) createEnvOp(ctx context.Context, tx keyhold.Tx, id *keyhold.Identity, env *keyhold.Environment, kind string, in any, action, detail string, then func(*keyhold.Operation) error) (*keyhold.Operation, error) {
	input, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	op := &keyhold.Operation{Kind: kind, TenantID: env.TenantID, Target: env.ID, CreatedBy: id.PrincipalID, Input: input}
	if err := p.ops.Prepare(op); err != nil {
		return nil, err
	}
	if err := tx.CreateOperation(ctx, op); err != nil {
		return nil, err
	}
	if then != nil {
		if err := then(op); err != nil {
			return nil, err
		}
	}
	if err := p.audit(ctx, tx, id, action, envTarget(env.ID), env.ID, detail+" in operation "+op.ID); err != nil {
		return nil, err
	}
	return op, nil
}

// linkPlan is what the checks of LinkPolicy found.
type linkPlan struct {
	env   *keyhold.Environment
	pol   *keyhold.EnterprisePolicy
	vault *keyhold.Vault
	keyID string // as the policy names it: unversioned means current
	rekey bool   // linked already, re-key again
}

// checkLink runs LinkPolicy's checks that need no key vault call.
func (p *CMK) checkLink(ctx context.Context, tx keyhold.Tx, id *keyhold.Identity, envID, systemID string) (*linkPlan, error) {
	env, err := adminEnvironment(ctx, tx, id, envID)
	if err != nil {
		return nil, err
	}
	if env.PolicySystemID != "" && !strings.EqualFold(env.PolicySystemID, systemID) {
		// A swap ends the linked policy's custody as an unlink does: it
		// needs everything an unlink needs, and everything a link needs
		// (policyFor, below).
		if err := requireCustodyReader(ctx, tx, id, env, "swap environment "+env.ID+" to another enterprise policy"); err != nil {
			return nil, err
		}
	}
	pol, err := p.policyFor(ctx, tx, id, systemID)
	if err != nil {
		return nil, err
	}
	if err := byokServing(ctx, tx, p.rec, env); err != nil { // a locked BYOK key can't be migrated from
		return nil, err
	}
	plan := &linkPlan{env: env, pol: pol}
	if err := requireServing(ctx, tx, env, "linked to an enterprise policy"); err != nil {
		return nil, err
	}
	if err := runningOp(ctx, tx, env); err != nil {
		return nil, err
	}
	if strings.EqualFold(env.PolicySystemID, pol.SystemID) {
		if env.EncryptionStatus != keyhold.EncryptionFailed {
			return nil, keyhold.Errorf(keyhold.CodeConflict,
				"environment %s is already linked to enterprise policy %s: to change its key, link it to another policy; a new version of the policy's key is picked up automatically", env.ID, pol.ID())
		}
		plan.rekey = true
	}
	if pol.Kind != keyhold.PolicyKindEncryption {
		return nil, keyhold.Errorf(keyhold.CodeBadRequest,
			"enterprise policy %s is of kind %s: only a policy of kind %s protects an environment's data with a customer key; create one of that kind", pol.ID(), pol.Kind, keyhold.PolicyKindEncryption)
	}
	if pol.PrincipalID == "" {
		return nil, keyhold.Errorf(keyhold.CodeBadRequest,
			"enterprise policy %s has no system-assigned managed identity: create it with identity type SystemAssigned, then grant that identity access to the key", pol.ID())
	}
	if pol.External != nil && p.externalCMK == nil {
		// Issue 13: the policy names an external vault, and this server
		// was started with no way to reach one (Config.ExternalCMK).
		return nil, keyhold.Errorf(keyhold.CodeNotSupported,
			"enterprise policy %s names key '%s' of the external key vault %s, and this server does not link environments to an external vault: "+
				"link the environment to a policy whose key is in a key vault of this cloud (properties.encryption.keyVault.id)", pol.ID(), pol.KeyName, pol.External.URI)
	}
	if pol.External == nil && (pol.KeyVaultID == "" || pol.KeyName == "" || vaultNameOf(pol) == "") {
		return nil, keyhold.Errorf(keyhold.CodeBadRequest,
			"enterprise policy %s names no key: set properties.encryption.keyVault.id and properties.encryption.key.name", pol.ID())
	}
	if keyhold.NormalizeLocation(env.Location) != keyhold.NormalizeLocation(pol.Location) {
		return nil, keyhold.Errorf(keyhold.CodeBadRequest,
			"environment %s is in region %s and enterprise policy %s in %s: link it to a policy of region %s (a policy protects only environments of its own region)",
			env.ID, env.Location, pol.ID(), pol.Location, env.Location)
	}
	if !env.Managed {
		return nil, keyhold.Errorf(keyhold.CodeBadRequest,
			"environment %s is not a Managed Environment: enable Managed Environments on it (properties.managed = true), then link it again", env.ID)
	}
	if env.FinOps && !env.PowerPlatformIntegration {
		return nil, keyhold.Errorf(keyhold.CodeBadRequest,
			"environment %s has finance and operations apps without Power Platform integration, and such an environment stays under the Microsoft-managed key: "+
				"enable Power Platform integration on it (PATCH the environment with properties.financeAndOperations.powerPlatformIntegration = true, "+
				"or keyhold env enable-power-platform-integration %s), then link it again", env.ID, env.ID)
	}
	if env.SKU == keyhold.SKUTrial || env.SKU == keyhold.SKUTeams {
		return nil, keyhold.Errorf(keyhold.CodeBadRequest,
			"environment %s is a %s environment, which can't be linked to an enterprise policy: convert it to a Production or Sandbox environment, or link another one", env.ID, env.SKU)
	}
	if !plan.rekey { // a re-key finishes a link in place; it adds no environment
		if err := requireLicence(ctx, tx, env.TenantID); err != nil {
			return nil, err
		}
		if err := requireFlowEnvRoom(ctx, tx, p.flowEnvLimit, env); err != nil { // flow_limit.go
			return nil, err
		}
	}
	if pol.External != nil {
		// The external vault is checked over the network, as the policy's
		// identity, by the probe before anything changes: type, size,
		// enabled, key_ops and purge protection (checkExternalKey), then
		// wrap and unwrap (docs/external-vault.md).
		plan.vault = &keyhold.Vault{Name: pol.External.URI}
		plan.keyID = externalKeyID(pol)
		if builtinKID(p.kv, plan.keyID) {
			// Key ids route by their vault: one under this server's own
			// vault domain would reach the built-in vault instead.
			return nil, keyhold.Errorf(keyhold.CodeBadRequest,
				"enterprise policy %s names the external key vault %s, whose address is under this server's own vault domain: an external vault must have an address of its own (its own host name); to use a vault of this server, name it with properties.encryption.keyVault.id",
				pol.ID(), keyhold.Clip(pol.External.URI))
		}
		return plan, nil
	}
	if hsmNameOf(pol) != "" {
		return planHSM(ctx, tx, p.hsm, plan) // managedhsm.go
	}
	name := vaultNameOf(pol)
	v, err := tx.Vault(ctx, name)
	if err == nil && v.Deleted() {
		err = keyhold.Errorf(keyhold.CodeNotFound, "deleted")
	}
	if keyhold.ErrorCode(err) == keyhold.CodeNotFound {
		return nil, keyhold.Errorf(keyhold.CodeVaultNotFound,
			"key vault %s, which enterprise policy %s names, was not found: create it (or recover it if it was deleted), or use a policy that names an existing vault", name, pol.ID())
	} else if err != nil {
		return nil, err
	}
	if err := p.rec.CheckVault(v); err != nil { // its purge protection is what the next check trusts
		return nil, err
	}
	if v.SoftDeleteRetentionDays < keyhold.MinSoftDeleteRetentionDays || !v.EnablePurgeProtection {
		return nil, keyhold.Errorf(keyhold.CodeBadRequest,
			"key vault %s does not have soft delete and purge protection enabled: enable purge protection on it (properties.enablePurgeProtection = true), so that the key can't be purged while it protects environments", v.Name)
	}
	plan.vault = v
	plan.keyID = p.kv.KeyID(v.Name, pol.KeyName, pol.KeyVersion)
	return plan, nil
}

// requireLicence checks that the tenant holds one of the licences that
// 002 requires for customer-managed keys (keyhold.Licences); CodeForbidden
// naming them and who adds one otherwise.
func requireLicence(ctx context.Context, tx keyhold.Tx, tenantID string) error {
	ls, err := tx.ListLicences(ctx, tenantID)
	if err != nil {
		return err
	}
	for _, l := range ls {
		if _, err := keyhold.ParseLicence(l.Name); err == nil {
			return nil
		}
	}
	return keyhold.Errorf(keyhold.CodeForbidden,
		"tenant %s holds none of the licences that customer-managed keys require: a Global Administrator of the tenant adds one "+
			"(keyhold tenant licence add NAME, or POST /v1.0/subscribedSkus {\"skuPartNumber\":NAME}), where NAME is one of %s",
		tenantID, strings.Join(keyhold.Licences, "; "))
}

// runningOp refuses an environment that has an operation running, naming
// it.
func runningOp(ctx context.Context, tx keyhold.Tx, env *keyhold.Environment) error {
	ops, err := tx.ListOperations(ctx, keyhold.OperationFilter{Target: env.ID, State: keyhold.OperationRunning, Limit: 1})
	if err != nil {
		return err
	}
	if len(ops) > 0 {
		return keyhold.Errorf(keyhold.CodeConflict,
			"environment %s has operation %s (%s) running: wait for it to finish (GET its operation) and retry", env.ID, ops[0].ID, ops[0].Kind)
	}
	return nil
}

// probe checks, as the policy's identity, that its key serves get, wrap
// and unwrap, and turns a refusal into a message that names the fix.
func (p *CMK) probe(ctx context.Context, plan *linkPlan) error {
	pol := plan.pol
	w := p.cmk(policyIdentity(pol.PrincipalID, pol.TenantID))
	prober, ok := w.(keyhold.KeyProber)
	if !ok {
		return nil // the first wrap will tell
	}
	var err error
	if pol.External != nil {
		// Issue 13: what the customer's vault says of the key (type,
		// size, enabled, key_ops, purge protection), read over the
		// network before the round trip.
		if err = checkExternalKey(ctx, p.core, pol, plan.keyID); keyhold.ErrorCode(err) == keyhold.CodeBadRequest {
			return err
		}
	}
	if err == nil {
		err = prober.Probe(ctx, plan.keyID)
	}
	if err == nil {
		return nil
	}
	var ke *keyhold.Error
	if !errors.As(err, &ke) {
		return cmkError(err, "check the enterprise policy's key", plan.keyID, pol.PrincipalID)
	}
	refuse := func(code, format string, args ...any) error {
		return &keyhold.Error{Code: code, Inner: ke.Inner, Err: err, Message: fmt.Sprintf(format, args...) + " (the key vault answered: " + ke.Message + ")"}
	}
	switch {
	case ke.Code == keyhold.CodeForbidden && ke.Inner == keyhold.InnerKeyDisabled:
		return refuse(keyhold.CodeForbidden,
			"key %s is disabled, not yet valid or expired: enable its current version and check its activation (nbf) and expiry (exp) dates, or rotate the key", plan.keyID)
	case ke.Code == keyhold.CodeForbidden && ke.Inner == keyhold.InnerForbiddenByFirewall:
		return refuse(keyhold.CodeForbidden,
			"the firewall of key vault %s refuses the platform: allow trusted services to bypass it (networkAcls.bypass = AzureServices)", plan.vault.Name)
	case ke.Code == keyhold.CodeKeyVaultUnavailable && pol.External != nil:
		return refuse(keyhold.CodeKeyVaultUnavailable,
			"the external key vault %s or the customer's directory could not be used to check key %s now: retry later, and if it persists check the vault URI and authority in the policy",
			keyhold.Clip(pol.External.URI), plan.keyID)
	case ke.Code == keyhold.CodeForbidden && pol.External != nil && (ke.Inner == keyhold.InnerForbiddenByRbac || ke.Inner == keyhold.InnerAccessDenied):
		// Issue 13: the grant and the federated credential are the
		// customer's app's, in the customer's directory.
		return refuse(keyhold.CodeForbidden,
			"the customer's app %s (tenant %s) may not use key %s as enterprise policy %s's managed identity: in the customer's directory, give the app a federated credential with issuer %s, subject %s and audience %s, and the %s role on the key",
			pol.External.ClientID, pol.External.TenantID, plan.keyID, pol.ID(), (&Tokens{core: p.core}).issuerFor(pol.TenantID), pol.PrincipalID, keyhold.FederatedAudience, keyhold.RoleKeyVaultCryptoServiceEncryptUser)
	case ke.Code == keyhold.CodeForbidden && (ke.Inner == keyhold.InnerForbiddenByRbac || ke.Inner == keyhold.InnerAccessDenied):
		return refuse(keyhold.CodeForbidden,
			"the enterprise policy's managed identity %s may not use key %s: grant the policy's managed identity %s the %s role on the key, or an access policy with Get, Wrap Key and Unwrap Key",
			pol.PrincipalID, plan.keyID, pol.PrincipalID, keyhold.RoleKeyVaultCryptoServiceEncryptUser)
	case ke.Code == keyhold.CodeForbidden:
		return refuse(keyhold.CodeForbidden,
			"key %s can't be used to wrap and unwrap environment keys: it must allow the wrapKey and unwrapKey operations", plan.keyID)
	case ke.Code == keyhold.CodeKeyNotFound:
		return refuse(keyhold.CodeKeyNotFound,
			"key %s, which enterprise policy %s names, was not found in vault %s: create it (or recover it if it was deleted)", plan.keyID, pol.ID(), plan.vault.Name)
	case ke.Code == keyhold.CodeVaultNotFound:
		return refuse(keyhold.CodeVaultNotFound, "key vault %s was not found: create it, or recover it if it was deleted", plan.vault.Name)
	}
	return cmkError(err, "check the enterprise policy's key", plan.keyID, pol.PrincipalID)
}

// UnlinkPolicy starts returning an environment to the platform's key. The
// caller must be a platform administrator (CodeForbidden) with Reader on
// the linked policy (CodeForbidden); the policy must exist (CodeNotFound),
// the environment must not be Locked (CodeEnvironmentLocked, naming the
// policy and the revocation, whichever policy is asked for), be linked to
// exactly it (CodeConflict), be Enabled (CodeEnvironmentDisabled) and
// have no operation running (CodeConflict). A refusal changes nothing.
// The operation it returns carries a warning (Operation.Warnings): keep the
// policy's key and its access for 30 days.
func (p *CMK) UnlinkPolicy(ctx context.Context, envID, systemID string) (*keyhold.Operation, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	if p.ops == nil {
		return nil, errCMKOff
	}
	var op *keyhold.Operation
	err = p.store.Update(ctx, func(tx keyhold.Tx) error {
		env, err := adminEnvironment(ctx, tx, id, envID)
		if err != nil {
			return err
		}
		pol, err := p.policyFor(ctx, tx, id, systemID)
		if err != nil {
			return err
		}
		if env.State == keyhold.StateLocked {
			return lockedError(ctx, tx, env)
		}
		switch {
		case env.PolicySystemID == "":
			return keyhold.Errorf(keyhold.CodeConflict, "environment %s is not linked to an enterprise policy: its data is already protected by the platform's key", env.ID)
		case !strings.EqualFold(env.PolicySystemID, pol.SystemID):
			return keyhold.Errorf(keyhold.CodeConflict, "environment %s is linked to enterprise policy %s, not %s: unlink it from the policy it is linked to", env.ID, env.PolicyID, pol.ID())
		}
		if err := requireServing(ctx, tx, env, "unlinked from an enterprise policy"); err != nil {
			return err
		}
		if err := refuseUnlinkAfterBYOK(ctx, tx, env, p.clock.Now()); err != nil { // byok_migrate.go
			return err
		}
		if err := runningOp(ctx, tx, env); err != nil {
			return err
		}
		op, err = p.startOp(ctx, tx, id, env, keyhold.OpUnlink, cmkInput{PolicyID: pol.ID(), SystemID: pol.SystemID, FromEpoch: env.Epoch},
			auditUnlinkStart, "returning from enterprise policy "+pol.ID()+" to the platform's key")
		if err == nil {
			op.Warnings = []string{unlinkWarning(pol, p.clock.Now())}
		}
		return err
	})
	if isTamper(err) {
		p.auditTamper(ctx, id.TenantID, envTarget(envID), "unlink from enterprise policy "+systemID+" by "+id.PrincipalID, err)
	}
	if err != nil {
		return nil, err
	}
	p.ops.Kick()
	p.log.InfoContext(ctx, "environment unlink started", "environment", envID, "policy", systemID, "op", op.ID, "by", id.PrincipalID)
	return op, nil
}

// unlinkWarning is what an unlink's answer tells the caller to keep, and
// until when, as the spec says: restores of the environment's database
// need the key and the policy's access to it for 30 days after removal.
func unlinkWarning(pol *keyhold.EnterprisePolicy, at time.Time) string {
	return fmt.Sprintf("keep key %s of key vault %s, and enterprise policy %s's access to it, for 30 days, until %s: "+
		"do not delete or disable the key or the key vault, or remove the policy's permissions, before then, because restoring the environment's database needs them",
		pol.KeyName, vaultNameOf(pol), pol.ID(), at.Add(keyhold.KeyRetentionAfterRemoval).UTC().Format(time.RFC3339))
}

// GetOperation returns an operation of the caller's tenant; the caller
// must be a platform administrator. Another tenant's operation is
// CodeNotFound, as a missing one.
func (p *CMK) GetOperation(ctx context.Context, opID string) (*keyhold.Operation, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	var op *keyhold.Operation
	err = p.store.View(ctx, func(tx keyhold.Tx) error {
		if err := requireAdmin(ctx, tx, id); err != nil {
			return err
		}
		op, err = tx.Operation(ctx, opID)
		if err == nil && op.TenantID != id.TenantID {
			op, err = nil, keyhold.Errorf(keyhold.CodeNotFound, "")
		}
		return err
	})
	if keyhold.ErrorCode(err) == keyhold.CodeNotFound {
		return nil, keyhold.Errorf(keyhold.CodeNotFound, "operation %q was not found in tenant %s", opID, id.TenantID)
	}
	op.ShowPause()
	return op, err
}

// PolicyLinks lists the caller's tenant's environments that are linked to
// an enterprise policy or were the subject of an encryption operation,
// with the policy and the last operation. The caller must be a platform
// administrator.
func (p *CMK) PolicyLinks(ctx context.Context) ([]*keyhold.PolicyLink, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	var links []*keyhold.PolicyLink
	err = p.store.View(ctx, func(tx keyhold.Tx) error {
		if err := requireAdmin(ctx, tx, id); err != nil {
			return err
		}
		envs, err := tx.ListEnvironments(ctx, keyhold.EnvironmentFilter{TenantID: id.TenantID})
		if err != nil {
			return err
		}
		policies := map[string]*keyhold.EnterprisePolicy{}
		for _, env := range envs {
			if env.PolicySystemID == "" && env.LastOperationID == "" {
				continue
			}
			l := &keyhold.PolicyLink{Environment: env}
			sys := env.PolicySystemID
			if env.LastOperationID != "" {
				op, err := tx.Operation(ctx, env.LastOperationID)
				switch {
				case err == nil:
					op.ShowPause()
					l.LastOperation = op
					if sys == "" && op.State == keyhold.OperationRunning && op.Kind == keyhold.OpLink {
						if in, err := opInput(op); err == nil {
							sys = in.SystemID // a link in progress
						}
					}
				case keyhold.ErrorCode(err) != keyhold.CodeNotFound:
					return err
				}
			}
			if sys != "" {
				key := strings.ToLower(sys)
				pol, ok := policies[key]
				if !ok {
					pol, err = tx.PolicyBySystemID(ctx, sys)
					if keyhold.IsNotFound(err) {
						pol, err = nil, nil
					} else if err != nil {
						return err
					}
					policies[key] = pol
				}
				l.Policy = pol
			}
			if err := showFlowWarning(ctx, tx, env); err != nil {
				return err
			}
			links = append(links, l)
		}
		return nil
	})
	return links, err
}
