package platform

import (
	"context"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
)

// The health monitor's fast path. The periodic check (RunHealthChecks)
// bounds how long a revocation in any vault, Keyhold's or not, can go
// unnoticed. Two things make it faster:
//
//   - Changes in Keyhold's own vault and ARM are in the audit log, which
//     every replica shares. RunChangeFeed follows the log and, for each
//     change that may touch a linked policy's key access (a role assignment
//     removed, a key or version disabled or deleted, the vault deleted or
//     its network closed, the policy's identity or resource group deleted:
//     changeTarget.touches), checks that policy at once.
//   - A wrap or unwrap of a customer key that fails on a live path (a data
//     request, an operation step) asks for a check of the environment's
//     policy (kickHealth), since that failure may be the first sign of a
//     revocation.
//
// The feed reads the log by id. Ids are assigned at insert but become
// visible at commit, so on PostgreSQL an entry can appear below the last id
// read; the feed re-reads a window below it (feedLookback) and skips what
// it has seen.

// Defaults of the change feed.
const (
	DefaultChangeFeedInterval = 500 * time.Millisecond
	feedLookback              = 256 // ids re-read below the newest seen
	feedPage                  = 500
	kickBuffer                = 64
)

// kickHealth asks the monitor to check policyID now. It never blocks: a
// full queue means checks are pending anyway, and the periodic check
// follows.
func (p *core) kickHealth(policyID string) {
	if policyID == "" {
		return
	}
	select {
	case p.kick <- policyID:
	default:
	}
}

// feedState is the change feed's position in the audit log.
type feedState struct {
	last int64          // the newest id read
	seen map[int64]bool // ids read in (last-feedLookback, last]
}

// RunChangeFeed follows the audit log every interval (default
// DefaultChangeFeedInterval) and checks at once the health of every policy
// that a change may touch, and of every policy kickHealth names, until ctx
// ends. It starts at the end of the log: changes made while no replica ran
// are the periodic check's.
func (p *Health) RunChangeFeed(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultChangeFeedInterval
	}
	st := &feedState{seen: map[int64]bool{}}
	if err := p.store.View(ctx, func(tx keyhold.Tx) error {
		es, err := tx.ListAudit(ctx, keyhold.AuditFilter{Limit: 1})
		if len(es) == 1 {
			st.last = es[0].ID
		}
		return err
	}); err != nil && ctx.Err() == nil {
		p.log.Warn("change feed: reading the end of the audit log", "err", err)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		pending := map[string]bool{}
		select {
		case <-ctx.Done():
			return
		case id := <-p.kick:
			pending[id] = true
		case <-t.C:
		}
		// Take whatever else is queued, then what the log shows.
	drain:
		for {
			select {
			case id := <-p.kick:
				pending[id] = true
			default:
				break drain
			}
		}
		ids, err := p.readChanges(ctx, st)
		if err != nil && ctx.Err() == nil {
			p.log.Warn("change feed: reading the audit log", "err", err)
		}
		for _, id := range ids {
			pending[id] = true
		}
		for id := range pending {
			if _, err := p.CheckPolicyHealth(ctx, id); err != nil && ctx.Err() == nil {
				if c := keyhold.ErrorCode(err); c != keyhold.CodeResourceNotFound && c != keyhold.CodeNotFound {
					p.log.Warn("change feed: checking enterprise policy health", "policy", id, "err", err)
				}
			}
		}
	}
}

// readChanges reads the audit entries after st's position and returns the
// ids of the linked policies that they may touch.
func (p *Health) readChanges(ctx context.Context, st *feedState) ([]string, error) {
	var changes []*keyhold.AuditEntry
	err := p.store.View(ctx, func(tx keyhold.Tx) error {
		changes = nil
		// Up to the end of the log as this snapshot shows it, and only the
		// change actions: the data plane's entries are never read.
		newest, err := tx.ListAudit(ctx, keyhold.AuditFilter{Limit: 1})
		if err != nil || len(newest) == 0 {
			return err
		}
		end := max(st.last, newest[0].ID)
		from := st.last - feedLookback // may be negative: from the start
		if from == 0 {
			from = -1
		}
		for {
			page, err := tx.ListAudit(ctx, keyhold.AuditFilter{AfterID: from, BeforeID: end + 1, ActionPrefixes: changeActions, Limit: feedPage})
			if err != nil {
				return err
			}
			for _, e := range page {
				from = e.ID
				if st.seen[e.ID] {
					continue
				}
				st.seen[e.ID] = true
				if isChange(e) {
					changes = append(changes, e)
				}
			}
			if len(page) < feedPage {
				st.last = end
				return nil
			}
		}
	})
	for id := range st.seen {
		if id <= st.last-feedLookback {
			delete(st.seen, id)
		}
	}
	if err != nil || len(changes) == 0 {
		return nil, err
	}
	var out []string
	err = p.store.View(ctx, func(tx keyhold.Tx) error {
		out = nil
		pols, err := p.linkedPolicies(ctx, tx)
		if err != nil {
			return err
		}
		for _, pol := range pols {
			t := p.targetOf(pol)
			for _, e := range changes {
				if strings.EqualFold(e.TenantID, pol.TenantID) && t.touches(e) {
					out = append(out, pol.ID())
					break
				}
			}
		}
		return nil
	})
	return out, err
}

// linkedPolicies returns the Encryption policies that have a managed
// identity and at least one linked environment: the ones whose health
// matters.
func (p *Health) linkedPolicies(ctx context.Context, tx keyhold.Tx) ([]*keyhold.EnterprisePolicy, error) {
	pols, err := tx.ListPolicies(ctx, keyhold.PolicyFilter{})
	if err != nil {
		return nil, err
	}
	var out []*keyhold.EnterprisePolicy
	for _, pol := range pols {
		if pol.Kind != keyhold.PolicyKindEncryption || pol.PrincipalID == "" {
			continue
		}
		envs, err := tx.ListEnvironments(ctx, keyhold.EnvironmentFilter{PolicyID: pol.ID()})
		if err != nil {
			return nil, err
		}
		if len(envs) > 0 {
			out = append(out, pol)
		}
	}
	return out, nil
}

// autoReenable re-enables the Locked environments of a policy found
// Healthy, if the policy's tenant opted in (TenantSettings.AutoReenable);
// each is proved by unwrapping its own key, as an administrator's
// re-enable is, and audited as the platform's. It returns how many it
// re-enabled; a failure leaves that environment Locked for the next check.
func (p *Health) autoReenable(ctx context.Context, policyID string) int {
	var envs []string
	var tenant string
	err := p.store.View(ctx, func(tx keyhold.Tx) error {
		envs = nil
		pol, err := policyByID(ctx, tx, policyID)
		if err != nil {
			return err
		}
		tenant = pol.TenantID
		s, err := tx.TenantSettings(ctx, pol.TenantID)
		if err != nil || !s.AutoReenable {
			return err
		}
		linked, err := tx.ListEnvironments(ctx, keyhold.EnvironmentFilter{PolicyID: pol.ID()})
		if err != nil {
			return err
		}
		for _, env := range linked {
			if env.State == keyhold.StateLocked {
				envs = append(envs, env.ID)
			}
		}
		return nil
	})
	if err != nil {
		if ctx.Err() == nil {
			p.log.Warn("automatic re-enable: reading the policy's environments", "policy", policyID, "err", err)
		}
		return 0
	}
	n := 0
	system := &keyhold.Identity{TenantID: tenant, PrincipalID: systemActorID}
	for _, id := range envs {
		if err := p.enableLocked(ctx, system, id); err != nil {
			p.log.Warn("automatic re-enable failed: the environment stays locked", "environment", id, "policy", policyID, "err", err)
			continue
		}
		n++
		p.log.Info("environment re-enabled automatically: its key is accessible again", "environment", id, "policy", policyID)
	}
	return n
}
