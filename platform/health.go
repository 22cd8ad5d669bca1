package platform

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
)

// Health of enterprise policies' keys. CheckPolicyHealth probes a policy's
// key as the policy's managed identity and classifies the answer: a
// revocation (access removed, key or vault gone, disabled or behind a
// firewall) is Unhealthy and locks every environment linked to the policy
// in the same transaction; a transient fault (the vault did not answer) is
// Warning and locks nothing, so reads go on from the key cache until its
// TTL and then answer 503 KeyVaultUnavailable. A change of health is
// always audited with what changed: a lock is never silent.
//
// A record that fails its integrity check (the policy's binding, or the
// key's records in the vault: keyhold.CodeRecordIntegrity) is not the
// customer's revocation: it locks nothing, and environments go on under
// the key versions they are wrapped under. It is an Error-level finding:
// logged at Error level and audited (integrity.refused, result
// RecordIntegrityFailed) with the record it names, at every check, and
// the policy's health is Warning.

// Health is the service of policies' health and environments' locks: the
// health monitor (this file) and the change feed that wakes it (feed.go),
// locking a policy's environments (lock_policy.go) and pausing operations
// while they are Locked (lockops.go), enabling them again (enable.go) and
// the countdown that deletes those left Locked (countdown.go).
type Health struct {
	*core
	// graceProd and graceOther are the countdown's grace periods
	// (countdown.go); KeepLocked: never deleted.
	graceProd, graceOther time.Duration
}

// Audit actions of health and locks.
const (
	auditPolicyHealth = "policy.health"
	auditEnvLock      = "environment.lock"
	auditEnvEnable    = "environment.enable"
)

// DefaultHealthInterval is how often the server checks the health of every
// linked policy's key.
const DefaultHealthInterval = 60 * time.Second

// probeTimeout bounds one probe: a vault that does not answer in time is a
// transient fault (Warning).
const probeTimeout = 15 * time.Second

// classifyKeyError says what a key-access error means for the policy's
// health. An unclassified error is Warning: only a known revocation locks.
func classifyKeyError(err error) keyhold.HealthStatus {
	if err == nil {
		return keyhold.HealthHealthy
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return keyhold.HealthWarning
	}
	var ke *keyhold.Error
	if errors.As(err, &ke) {
		switch ke.Code {
		case keyhold.CodeForbidden, keyhold.CodeKeyNotFound, keyhold.CodeVaultNotFound, keyhold.CodeResourceNotFound:
			return keyhold.HealthUnhealthy
		}
	}
	return keyhold.HealthWarning
}

// healthRank orders statuses from best to worst.
func healthRank(h keyhold.HealthStatus) int {
	switch h {
	case keyhold.HealthHealthy:
		return 1
	case keyhold.HealthWarning:
		return 2
	case keyhold.HealthUnhealthy:
		return 3
	}
	return 0
}

// describeKeyError renders a key-access error for audit entries and lock
// messages: "Code (Inner): message".
func describeKeyError(err error) string {
	var ke *keyhold.Error
	if !errors.As(err, &ke) {
		if errors.Is(err, context.DeadlineExceeded) {
			return keyhold.CodeKeyVaultUnavailable + ": the key vault did not answer in time"
		}
		return keyhold.CodeKeyVaultUnavailable + ": the key vault could not be reached"
	}
	code := ke.Code
	if ke.Inner != "" {
		code += " (" + ke.Inner + ")"
	}
	return code + ": " + ke.Message
}

// probeKey checks that w may use kid: with KeyProber if w has it, else by
// wrapping and unwrapping a random value.
func probeKey(ctx context.Context, w keyhold.KeyWrapper, kid string) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	if pr, ok := w.(keyhold.KeyProber); ok {
		return pr.Probe(ctx, kid)
	}
	var v [32]byte
	rand.Read(v[:])
	got, ct, err := w.Wrap(ctx, kid, v[:])
	if err != nil {
		return err
	}
	_, err = w.Unwrap(ctx, got, ct)
	return err
}

// policyByID loads a policy by its ARM resource id.
func policyByID(ctx context.Context, tx keyhold.Tx, policyID string) (*keyhold.EnterprisePolicy, error) {
	sub, rg, name, ok := parsePolicyID(policyID)
	if !ok {
		return nil, keyhold.Errorf(keyhold.CodeBadRequest,
			"%q is not an enterprise policy id: use /subscriptions/{subscriptionId}/resourceGroups/{group}/providers/Microsoft.PowerPlatform/enterprisePolicies/{name}", policyID)
	}
	return tx.Policy(ctx, sub, rg, name)
}

// CheckPolicyHealth probes the key of the policy with the given ARM resource
// id as the policy's managed identity: its key id (unversioned unless the
// policy names a version) and every versioned key id that the current
// epoch of a linked environment is wrapped under. The worst answer is the
// policy's health. A change is stored and audited; on Unhealthy every
// linked environment not yet Locked becomes Locked in the same transaction
// (each audited) and its cached keys are dropped. Restored access makes the
// policy Healthy but unlocks nothing: an administrator re-enables each
// environment (EnableEnvironment). It runs as the platform, not for a
// caller.
func (p *Health) CheckPolicyHealth(ctx context.Context, policyID string) (keyhold.HealthStatus, error) {
	if p.cmk == nil {
		return keyhold.HealthUndetermined, errCMKOff
	}
	var pol *keyhold.EnterprisePolicy
	var kids []string
	tampered := false
	err := p.store.View(ctx, func(tx keyhold.Tx) error {
		kids, tampered = nil, false
		var err error
		if pol, err = policyByID(ctx, tx, policyID); err != nil {
			return err
		}
		if err := p.checkPolicy(pol); err != nil {
			tampered = true
			return err
		}
		if pol.PrincipalID == "" {
			return keyhold.Errorf(keyhold.CodeBadRequest, "enterprise policy %s has no managed identity: its key can't be probed", pol.ID())
		}
		kids = append(kids, p.policyKeyID(pol))
		// One query for every linked environment's current wraps, not
		// one per environment: a policy may have thousands.
		wks, err := tx.PolicyWrappedKeys(ctx, pol.ID())
		if err != nil {
			return err
		}
		seen := map[string]bool{strings.ToLower(kids[0]): true}
		for _, wk := range wks {
			if wk.PrincipalID != pol.PrincipalID {
				continue
			}
			kid := p.currentKID(wk.KeyID)
			if !seen[strings.ToLower(kid)] {
				seen[strings.ToLower(kid)] = true
				kids = append(kids, kid)
			}
		}
		return nil
	})
	if tampered {
		p.auditTamper(ctx, pol.TenantID, pol.ID(), "health check of the policy's key", err)
		return keyhold.HealthUndetermined, err
	}
	if err != nil {
		return keyhold.HealthUndetermined, err
	}
	started := p.clock.Now()
	w := p.cmk(policyIdentity(pol.PrincipalID, pol.TenantID))
	status, cause, causeKID := keyhold.HealthHealthy, error(nil), ""
	for _, kid := range kids {
		perr := probeKey(ctx, w, kid)
		if ctx.Err() != nil {
			return keyhold.HealthUndetermined, ctx.Err() // our own caller gave up: learn nothing
		}
		if perr == nil {
			p.lastUnwrap.note(ctx, p.core, pol.PrincipalID, kid) // the probe unwrapped
		}
		if isTamper(perr) {
			p.auditTamper(ctx, pol.TenantID, pol.ID(), "health probe of key "+kid, perr)
		}
		if h := classifyKeyError(perr); healthRank(h) > healthRank(status) {
			status, cause, causeKID = h, perr, kid
		}
	}
	if err := p.setPolicyHealth(ctx, pol.ID(), started, status, cause, causeKID); err != nil {
		return status, err
	}
	if status == keyhold.HealthHealthy {
		p.autoReenable(ctx, pol.ID()) // only if the tenant opted in (feed.go)
	}
	return status, nil
}

// setPolicyHealth stores the result of a probe that started at started:
// the policy's health (if it changed) and, if Unhealthy, the lock of its
// linked environments. A result is stale, and dropped, if the policy
// changed after the probe started: another probe, or a re-enable that
// proved access, has spoken since, and an old "revoked" must not lock an
// environment an administrator has just re-enabled. The next check
// decides afresh.
func (p *Health) setPolicyHealth(ctx context.Context, policyID string, started time.Time, status keyhold.HealthStatus, cause error, kid string) error {
	var locked []string
	var reason string
	err := p.store.Update(ctx, func(tx keyhold.Tx) error {
		locked = nil
		pol, err := policyByID(ctx, tx, policyID)
		if err != nil {
			return err
		}
		if pol.UpdatedAt.After(started) {
			p.log.InfoContext(ctx, "dropped a stale health probe: the policy changed while it ran", "policy", pol.ID(), "result", status)
			return nil
		}
		system := &keyhold.Identity{TenantID: pol.TenantID, PrincipalID: systemActorID}
		now := p.clock.Now().UTC()
		why := ""
		if cause != nil {
			why = describeKeyError(cause)
		}
		if pol.HealthStatus != status {
			detail := fmt.Sprintf("health %s -> %s", pol.HealthStatus, status)
			if cause != nil {
				detail += fmt.Sprintf(": probing key %s as managed identity %s: %s", kid, pol.PrincipalID, why)
			}
			old := pol.HealthStatus
			pol.HealthStatus, pol.UpdatedAt = status, now
			if err := tx.UpdatePolicy(ctx, pol); err != nil {
				return err
			}
			if err := p.audit(ctx, tx, system, auditPolicyHealth, pol.ID(), "", detail); err != nil {
				return err
			}
			p.log.WarnContext(ctx, "enterprise policy health changed", "policy", pol.ID(), "from", old, "to", status, "cause", why)
		}
		if status != keyhold.HealthUnhealthy {
			return nil
		}
		reason = lockReason(pol.ID(), why)
		locked, err = p.lockEnvsTx(ctx, tx, pol.ID(), system, reason, false) // lock_policy.go
		return err
	})
	if err != nil {
		return err
	}
	p.dropLocked(ctx, policyID, reason, locked)
	return nil
}

// CheckAllPolicyHealth runs CheckPolicyHealth on every Encryption policy
// that has a managed identity and linked environments. It goes on past a
// policy that fails and returns every error, joined.
func (p *Health) CheckAllPolicyHealth(ctx context.Context) error {
	if p.cmk == nil {
		return nil
	}
	var ids []string
	err := p.store.View(ctx, func(tx keyhold.Tx) error {
		ids = nil
		pols, err := tx.ListPolicies(ctx, keyhold.PolicyFilter{})
		if err != nil {
			return err
		}
		for _, pol := range pols {
			if pol.Kind != keyhold.PolicyKindEncryption || pol.PrincipalID == "" {
				continue
			}
			envs, err := tx.ListEnvironments(ctx, keyhold.EnvironmentFilter{PolicyID: pol.ID()})
			if err != nil {
				return err
			}
			if len(envs) > 0 {
				ids = append(ids, pol.ID())
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	var errs []error
	for _, id := range ids {
		if _, err := p.CheckPolicyHealth(ctx, id); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			errs = append(errs, fmt.Errorf("policy %s: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

// RunHealthChecks calls CheckAllPolicyHealth every interval (default
// DefaultHealthInterval) until ctx ends.
func (p *Health) RunHealthChecks(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultHealthInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := p.CheckAllPolicyHealth(ctx); err != nil && ctx.Err() == nil {
			p.log.Warn("checking enterprise policy health", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
