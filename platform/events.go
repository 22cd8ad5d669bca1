package platform

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/egress"
)

// Events and tenant settings. Every audit entry of one of eventKinds'
// actions also becomes a keyhold.Event in the same transaction (audit
// calls appendEvent), so no code path that locks, re-enables or deletes an
// environment can do it without telling the tenant's administrators. An
// event about a revocation carries the key vault changes that explain it,
// found in the audit log of the built-in vault and of ARM: what changed
// and who changed it (vaultChanges). If the tenant set a webhook, the event
// is written Pending and the delivery loop (webhook.go) posts it.

// Events is the service of events, tenant settings and webhook delivery
// (webhook.go): what a tenant's administrators read and where Keyhold posts
// it. The events themselves are written by the core, with their audit entry
// (audit, appendEvent).
type Events struct {
	*core
	// hookClient posts events to tenants' webhooks (webhook.go), through
	// egress, which also checks the webhook URLs tenants set.
	hookClient *http.Client
	egress     *egress.Policy
}

// Audit actions of a tenant settings change and of a webhook test.
const (
	auditTenantSettings = "tenant.settings.update"
	auditWebhookTest    = "tenant.webhook.test"
)

// eventKinds maps the audit actions that are events to their kinds.
var eventKinds = map[string]string{
	auditPolicyHealth:       keyhold.EventPolicyHealthChanged,
	auditEnvLock:            keyhold.EventEnvironmentLocked,
	auditEnvEnable:          keyhold.EventEnvironmentEnabled,
	auditEnvDeletionWarning: keyhold.EventEnvironmentDeletionWarning,
	auditEnvCryptoShred:     keyhold.EventEnvironmentCryptoShredded,
	auditEnvDelete:          keyhold.EventEnvironmentDeleted,
	auditWebhookTest:        keyhold.EventWebhookTest,
}

// Bounds of the search for the vault changes behind a revocation.
const (
	maxChanges       = 10                  // changes an event carries, newest first
	changeScanLimit  = 1000                // change entries read at most
	changeScanWindow = 30 * 24 * time.Hour // how far back
	maxWebhookURLLen = 2048                // bytes
)

// appendEvent writes the event of audit entry a (of an action in
// eventKinds) in tx.
func (p *core) appendEvent(ctx context.Context, tx keyhold.Tx, a *keyhold.AuditEntry, kind string) error {
	ev := &keyhold.Event{TenantID: a.TenantID, At: a.At, Kind: kind, EnvID: a.EnvID, AuditID: a.ID, Summary: a.Detail}
	switch {
	case kind == keyhold.EventPolicyHealthChanged:
		ev.PolicyID = a.Target
	case a.EnvID != "":
		env, err := tx.Environment(ctx, a.EnvID)
		if err == nil {
			ev.PolicyID = env.PolicyID
		} else if keyhold.ErrorCode(err) != keyhold.CodeEnvironmentNotFound {
			return err
		}
	}
	if ev.Summary == "" {
		ev.Summary = kind
	}
	revocation := kind == keyhold.EventEnvironmentLocked ||
		(kind == keyhold.EventPolicyHealthChanged && !strings.HasSuffix(healthTo(a.Detail), string(keyhold.HealthHealthy)))
	if revocation && ev.PolicyID != "" {
		if pre, ok := ctx.Value(lockChangesKey{}).(*lockChanges); ok && strings.EqualFold(pre.policyID, ev.PolicyID) {
			ev.Changes = pre.changes
		} else {
			changes, err := p.vaultChanges(ctx, tx, a.TenantID, ev.PolicyID, a.ID)
			if err != nil {
				return err
			}
			ev.Changes = changes
		}
	}
	settings, err := tx.TenantSettings(ctx, a.TenantID)
	if err != nil {
		return err
	}
	if settings.WebhookURL != "" {
		ev.Delivery, ev.NextAttemptAt = keyhold.DeliveryPending, a.At
	}
	return tx.AppendEvent(ctx, ev)
}

// lockChanges carries, in the context of a transaction that locks a
// policy's environments, the vault changes behind the lock, found once for
// all of them (withLockChanges): each EnvironmentLocked event takes them
// rather than searching the audit log again.
type lockChanges struct {
	policyID string
	changes  []keyhold.VaultChange
}

type lockChangesKey struct{}

// withLockChanges finds the vault changes behind the revocation of
// policyID's key access and returns ctx carrying them.
func (p *core) withLockChanges(ctx context.Context, tx keyhold.Tx, tenantID, policyID string) (context.Context, error) {
	changes, err := p.vaultChanges(ctx, tx, tenantID, policyID, math.MaxInt64)
	if err != nil {
		return ctx, err
	}
	return context.WithValue(ctx, lockChangesKey{}, &lockChanges{policyID: policyID, changes: changes}), nil
}

// healthTo returns the status a "health A -> B: …" detail moves to.
func healthTo(detail string) string {
	_, rest, ok := strings.Cut(detail, " -> ")
	if !ok {
		return ""
	}
	to, _, _ := strings.Cut(rest, ":")
	return strings.TrimSpace(to)
}

// changeTarget is what a key vault change may touch: the policy, its
// managed identity, its vault (ARM id and data-plane URI) and its key.
type changeTarget struct {
	policyID    string
	principalID string
	vaultID     string // ARM resource id
	keyScope    string // vaultID + "/keys/" + name: role assignments on the key
	keyURI      string // the key's data-plane id, unversioned
}

// targetOf describes what changes may affect pol's key access.
func (p *core) targetOf(pol *keyhold.EnterprisePolicy) changeTarget {
	t := changeTarget{policyID: pol.ID(), principalID: pol.PrincipalID, vaultID: strings.TrimSuffix(pol.KeyVaultID, "/")}
	t.keyScope = t.vaultID + "/keys/" + pol.KeyName
	if p.kv != nil {
		t.keyURI = keyIDOf(p.kv, p.hsm, pol, vaultNameOf(pol), pol.KeyName, "")
	}
	return t
}

// changeActions are the audit actions (by prefix) that change who may use
// a key, or whether it is there to use; reads and the key operations
// themselves (wrap, unwrap, get, list) are not changes.
var changeActions = []string{"key.update", "key.delete", "key.purge", "key.recover", "key.rotate", "key.import", "key.create",
	"vault.", "roleAssignment.", "resourceGroup.delete", "managedIdentity.delete", "enterprisePolicy.delete"}

// isChange reports whether audit entry e is a successful change of the
// kind changeActions lists.
func isChange(e *keyhold.AuditEntry) bool {
	if e.Result != "Succeeded" {
		return false
	}
	for _, a := range changeActions {
		if strings.HasPrefix(e.Action, a) {
			return true
		}
	}
	return false
}

// touches reports whether change e may affect the key access that t
// describes.
func (t changeTarget) touches(e *keyhold.AuditEntry) bool {
	target := strings.TrimSuffix(e.Target, "/")
	switch {
	case strings.HasPrefix(e.Action, "roleAssignment."):
		scope, _, ok := strings.Cut(strings.ToLower(target), "/providers/microsoft.authorization/roleassignments/")
		if !ok {
			return false
		}
		return keyhold.ScopeCovers(scope, t.keyScope) || keyhold.ScopeCovers(scope, t.policyID)
	case e.Action == "managedIdentity.delete":
		return t.principalID != "" && strings.EqualFold(target, "/servicePrincipals/"+t.principalID)
	case e.Action == "resourceGroup.delete", e.Action == "enterprisePolicy.delete":
		return keyhold.ScopeCovers(target, t.vaultID) || keyhold.ScopeCovers(target, t.policyID)
	case strings.HasPrefix(e.Action, "key."):
		return t.keyURI != "" && (strings.EqualFold(target, t.keyURI) || strings.HasPrefix(strings.ToLower(target), strings.ToLower(t.keyURI)+"/"))
	case strings.HasPrefix(e.Action, "vault."):
		return t.vaultID != "" && keyhold.ScopeCovers(target, t.vaultID) ||
			t.keyURI != "" && strings.HasPrefix(strings.ToLower(t.keyURI), strings.ToLower(target)+"/")
	}
	return false
}

// vaultChanges finds, in tenant's audit log, the changes that may have
// cost policyID's identity its key access since that access was last
// confirmed (the policy last became Healthy, or an environment of it was
// re-enabled), newest first, at most maxChanges. beforeID leaves out the
// entry being written and later ones. A deleted policy is matched by its
// id alone.
func (p *core) vaultChanges(ctx context.Context, tx keyhold.Tx, tenantID, policyID string, beforeID int64) ([]keyhold.VaultChange, error) {
	t := changeTarget{policyID: policyID}
	if pol, err := policyByID(ctx, tx, policyID); err == nil {
		t = p.targetOf(pol)
	} else if c := keyhold.ErrorCode(err); c != keyhold.CodeResourceNotFound && c != keyhold.CodeNotFound {
		return nil, err
	}
	oldest := p.clock.Now().Add(-changeScanWindow)
	out := []keyhold.VaultChange{}
	names := map[string]string{}
	read := 0
	// Only changes and the entries that confirm access: the data plane's
	// entries, however many, don't use up the budget.
	actions := append(slices.Clone(changeActions), auditPolicyHealth, auditEnvEnable)
	for read < changeScanLimit && len(out) < maxChanges {
		page, err := tx.ListAudit(ctx, keyhold.AuditFilter{TenantID: tenantID, BeforeID: beforeID, ActionPrefixes: actions, Limit: 200})
		if err != nil {
			return nil, err
		}
		if len(page) == 0 {
			break
		}
		for _, e := range page {
			read++
			beforeID = e.ID
			if e.At.Before(oldest) || accessConfirmed(e, policyID) {
				return out, nil
			}
			if !isChange(e) || !t.touches(e) {
				continue
			}
			name, ok := names[e.ActorID]
			if !ok {
				if pr, err := tx.Principal(ctx, e.ActorID); err == nil {
					name = pr.DisplayName
				}
				names[e.ActorID] = name
			}
			out = append(out, keyhold.VaultChange{At: e.At, ActorID: e.ActorID, ActorName: name, Action: e.Action, Target: e.Target, Detail: e.Detail})
			if len(out) == maxChanges {
				break
			}
		}
	}
	return out, nil
}

// accessConfirmed reports whether audit entry e shows that policyID's key
// was accessible at its time.
func accessConfirmed(e *keyhold.AuditEntry, policyID string) bool {
	switch e.Action {
	case auditPolicyHealth:
		return strings.EqualFold(e.Target, policyID) && healthTo(e.Detail) == string(keyhold.HealthHealthy)
	case auditEnvEnable:
		return strings.Contains(strings.ToLower(e.Detail), strings.ToLower(policyID))
	}
	return false
}

// ListEvents lists the caller's tenant's events, newest first, beforeID
// and limit paging as in keyhold.EventFilter. The caller must be a
// platform administrator.
func (p *Events) ListEvents(ctx context.Context, beforeID int64, limit int) ([]*keyhold.Event, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	var out []*keyhold.Event
	err = p.store.View(ctx, func(tx keyhold.Tx) error {
		if err := requireAdmin(ctx, tx, id); err != nil {
			return err
		}
		out, err = tx.ListEvents(ctx, keyhold.EventFilter{TenantID: id.TenantID, BeforeID: beforeID, Limit: limit})
		return err
	})
	return out, err
}

// TenantSettings returns the caller's tenant's settings. The caller must be
// a platform administrator.
func (p *Events) TenantSettings(ctx context.Context) (*keyhold.TenantSettings, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	var s *keyhold.TenantSettings
	err = p.store.View(ctx, func(tx keyhold.Tx) error {
		if err := requireAdmin(ctx, tx, id); err != nil {
			return err
		}
		s, err = tx.TenantSettings(ctx, id.TenantID)
		return err
	})
	return s, err
}

// UpdateTenantSettings applies patch to the caller's tenant's settings and
// returns them. The caller must be a platform administrator; a webhook URL
// must be an absolute https URL (http only to a loopback address) without
// credentials, whose host the egress policy does not refuse outright (a
// literal address outside the public ranges, or localhost, unless the
// operator allowed it) (CodeBadRequest, nothing changed). The change is
// audited.
func (p *Events) UpdateTenantSettings(ctx context.Context, patch keyhold.TenantSettingsPatch) (*keyhold.TenantSettings, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	if patch.WebhookURL != nil {
		if err := p.checkWebhookURL(*patch.WebhookURL); err != nil {
			return nil, err
		}
	}
	var s *keyhold.TenantSettings
	err = p.store.Update(ctx, func(tx keyhold.Tx) error {
		if err := requireAdmin(ctx, tx, id); err != nil {
			return err
		}
		if s, err = tx.TenantSettings(ctx, id.TenantID); err != nil {
			return err
		}
		var changed []string
		if patch.AutoReenable != nil && *patch.AutoReenable != s.AutoReenable {
			s.AutoReenable = *patch.AutoReenable
			changed = append(changed, fmt.Sprintf("autoReenable=%t", s.AutoReenable))
		}
		if patch.WebhookURL != nil && *patch.WebhookURL != s.WebhookURL {
			s.WebhookURL = *patch.WebhookURL
			changed = append(changed, fmt.Sprintf("webhookUrl=%q", s.WebhookURL))
		}
		if len(changed) == 0 {
			return nil
		}
		s.UpdatedAt, s.UpdatedBy = p.clock.Now().UTC(), id.PrincipalID
		if err := tx.PutTenantSettings(ctx, s); err != nil {
			return err
		}
		return p.audit(ctx, tx, id, auditTenantSettings, "/tenants/"+id.TenantID+"/settings", "", strings.Join(changed, ", "))
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// TestWebhook writes a WebhookTest event for the caller's tenant (with
// its audit entry, as every event), which the delivery loop posts to the
// webhook like any other: its delivery state, listed with the events,
// says whether the webhook answers. The caller must be a platform
// administrator, and the tenant must have a webhook (CodeBadRequest,
// nothing written).
func (p *Events) TestWebhook(ctx context.Context) (*keyhold.Event, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	var ev *keyhold.Event
	err = p.store.Update(ctx, func(tx keyhold.Tx) error {
		if err := requireAdmin(ctx, tx, id); err != nil {
			return err
		}
		s, err := tx.TenantSettings(ctx, id.TenantID)
		if err != nil {
			return err
		}
		if s.WebhookURL == "" {
			return keyhold.Errorf(keyhold.CodeBadRequest, "tenant %s has no webhook to test: set one first (customerManagedKeys.eventWebhookUrl in updateTenantSettings)", id.TenantID)
		}
		if err := p.audit(ctx, tx, id, auditWebhookTest, "/tenants/"+id.TenantID+"/settings", "", "a test event for the webhook "+s.WebhookURL); err != nil {
			return err
		}
		evs, err := tx.ListEvents(ctx, keyhold.EventFilter{TenantID: id.TenantID, Limit: 1})
		if err != nil {
			return err
		}
		if len(evs) != 1 || evs[0].Kind != keyhold.EventWebhookTest {
			return keyhold.Errorf(keyhold.CodeInternal, "the webhook test's event was not written")
		}
		ev = evs[0]
		return nil
	})
	if err != nil {
		return nil, err
	}
	return ev, nil
}

var _ keyhold.WebhookTester = (*Events)(nil)

// checkWebhookURL refuses a webhook URL that events should not go to. The
// egress policy's check here only gives an early answer for what can be
// known without resolving the name; delivery checks every connection.
func (p *Events) checkWebhookURL(raw string) error {
	if raw == "" {
		return nil
	}
	const how = "give an absolute https URL without credentials, such as https://hooks.contoso.com/keyhold (http only to a loopback address)"
	if len(raw) > maxWebhookURLLen {
		return keyhold.Errorf(keyhold.CodeBadRequest, "the webhook URL is %d bytes, more than %d: %s", len(raw), maxWebhookURLLen, how)
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return keyhold.Errorf(keyhold.CodeBadRequest, "the webhook URL %q is not an absolute URL: %s", raw, how)
	}
	if u.User != nil {
		return keyhold.Errorf(keyhold.CodeBadRequest, "the webhook URL must not hold credentials: %s; events are signed, so the receiver can check who sent them", how)
	}
	if u.Fragment != "" {
		return keyhold.Errorf(keyhold.CodeBadRequest, "the webhook URL %q has a fragment: %s", raw, how)
	}
	if err := p.egress.CheckURL(u); err != nil {
		return keyhold.Errorf(keyhold.CodeBadRequest, "the webhook URL %q is refused: %v; give a URL whose host is a public address", raw, err)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if ip := net.ParseIP(u.Hostname()); (ip == nil || !ip.IsLoopback()) && !strings.EqualFold(u.Hostname(), "localhost") {
			return keyhold.Errorf(keyhold.CodeBadRequest, "the webhook URL %q uses %s: %s", raw, u.Scheme, how)
		}
	default:
		return keyhold.Errorf(keyhold.CodeBadRequest, "the webhook URL %q uses %s: %s", raw, u.Scheme, how)
	}
	return nil
}

var _ keyhold.EventService = (*Platform)(nil)
