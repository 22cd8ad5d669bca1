package platform

import (
	"context"

	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
)

// BootstrapCredentials is what a first start hands to its operator.
type BootstrapCredentials struct {
	TenantID       string `json:"tenantId"`
	SubscriptionID string `json:"subscriptionId"`
	ClientID       string `json:"clientId"`
	ClientSecret   string `json:"clientSecret"`
}

// BootstrapCustomer creates, if no customer tenant exists yet, one customer
// tenant with one subscription, the licence keyhold.BootstrapLicence and a
// service principal holding Global Administrator and the Owner role on the
// subscription, and returns its credentials (created=true). If one exists
// it returns created=false and nil credentials: secrets are shown once.
func (p *Tokens) BootstrapCustomer(ctx context.Context) (*BootstrapCredentials, bool, error) {
	var exists bool
	err := p.store.View(ctx, func(tx keyhold.Tx) error {
		ts, err := tx.ListTenants(ctx)
		for _, t := range ts {
			exists = exists || !t.System
		}
		return err
	})
	if err != nil || exists {
		return nil, false, err
	}
	now := p.clock.Now().UTC()
	tenant := &keyhold.Tenant{ID: uuid.NewString(), DisplayName: "Contoso", CreatedAt: now}
	sub := &keyhold.Subscription{ID: uuid.NewString(), TenantID: tenant.ID, DisplayName: "Contoso subscription", CreatedAt: now}
	sp := &keyhold.Principal{ID: uuid.NewString(), TenantID: tenant.ID, Type: keyhold.PrincipalServicePrincipal,
		DisplayName: "keyhold-bootstrap-admin", AppID: uuid.NewString(), CreatedAt: now}
	secret := crypt.NewClientSecret()
	err = p.store.Update(ctx, func(tx keyhold.Tx) error {
		steps := []func() error{
			func() error { return tx.CreateTenant(ctx, tenant) },
			func() error { return tx.CreateSubscription(ctx, sub) },
			func() error { return tx.CreatePrincipal(ctx, sp) },
			func() error {
				return tx.AddCredential(ctx, &keyhold.Credential{PrincipalID: sp.ID, SecretHash: crypt.HashClientSecret(secret), CreatedAt: now, ExpiresAt: now.AddDate(2, 0, 0)})
			},
			func() error {
				return tx.AssignDirectoryRole(ctx, tenant.ID, sp.ID, keyhold.RoleGlobalAdministrator)
			},
			func() error {
				owner, _ := keyhold.FindRoleDefinition(keyhold.RoleOwner)
				return tx.CreateRoleAssignment(ctx, &keyhold.RoleAssignment{ID: uuid.NewString(), Scope: "/subscriptions/" + sub.ID,
					RoleDefinitionID: owner.ID, PrincipalID: sp.ID, PrincipalType: string(keyhold.PrincipalServicePrincipal),
					TenantID: tenant.ID, CreatedBy: "system", CreatedAt: now})
			},
			func() error {
				// The bootstrap tenant holds a licence that customer-managed
				// keys accept, so that a new platform links out of the box;
				// its Global Administrator may remove it (keyhold.Licences).
				return tx.AddLicence(ctx, &keyhold.Licence{TenantID: tenant.ID, Name: keyhold.BootstrapLicence, AddedBy: "system", AddedAt: now})
			},
			func() error {
				return tx.AppendAudit(ctx, &keyhold.AuditEntry{At: now, TenantID: tenant.ID, ActorID: "system", Action: "tenant.bootstrap",
					Target: "/tenants/" + tenant.ID, Result: "Succeeded", Detail: "created subscription " + sub.ID + " and service principal " + sp.AppID +
						" with Global Administrator and Owner of the subscription, and licence " + keyhold.BootstrapLicence})
			},
		}
		for _, step := range steps {
			if err := step(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	return &BootstrapCredentials{TenantID: tenant.ID, SubscriptionID: sub.ID, ClientID: sp.AppID, ClientSecret: secret}, true, nil
}
