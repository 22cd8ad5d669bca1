package platform

import (
	"context"
	"fmt"
	"log/slog"
	"slices"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
)

// bootstrapAdminName is the display name of the service principal that the
// first start creates (BootstrapCustomer) and writes into bootstrap.json.
const bootstrapAdminName = "keyhold-bootstrap-admin"

// CheckMasterKey tells whether master opens the platform key and the
// token-signing key sealed in store, without creating anything: it is the
// offline check of "keyhold doctor" and of the admin commands, which must
// never make a new platform. A store without sealed keys is CodeNotFound;
// a master key that does not open them is CodeUnauthorized.
func CheckMasterKey(ctx context.Context, store keyhold.Store, master *crypt.Key) error {
	var mmkSealed, sigSealed *keyhold.SealedKey
	err := store.View(ctx, func(tx keyhold.Tx) error {
		var err error
		if mmkSealed, err = tx.SealedKey(ctx, sealedMMK); err != nil {
			return err
		}
		sigSealed, err = tx.SealedKey(ctx, sealedSigningKey)
		return err
	})
	if keyhold.ErrorCode(err) == keyhold.CodeNotFound {
		return keyhold.Errorf(keyhold.CodeNotFound, "the database holds no platform key: no server has started on it yet").WithCause(err)
	}
	if err != nil {
		return fmt.Errorf("reading the sealed platform keys: %w", err)
	}
	mmk, err := crypt.OpenKey(master, sealedMMK, mmkSealed.Sealed)
	if err != nil {
		return keyhold.Errorf(keyhold.CodeUnauthorized, "the master key does not open this database's platform key: "+
			"use the master key the data was created with (<data>/master.key or KEYHOLD_MASTER_KEY)").WithCause(err)
	}
	mmk.Destroy()
	der, err := crypt.Open(master, sealedSigningKey, sigSealed.Sealed)
	if err != nil {
		return keyhold.Errorf(keyhold.CodeUnauthorized, "the master key does not open this database's token-signing key").WithCause(err)
	}
	clear(der)
	return nil
}

// ResetBootstrapCredentials gives the bootstrap administrator (the service
// principal the first start wrote into bootstrap.json) a new client secret
// and removes all its others, so that a lost or leaked bootstrap.json stops
// working. It first checks master against the store (CheckMasterKey): only
// the holder of the master key may do this. The administrator keeps its
// object id, app id and roles; tokens it already holds stay valid until
// they expire. The reset is audited in the administrator's tenant.
//
// It returns CodeNotFound when the store has no bootstrap administrator
// (never started, or the principal was deleted).
func ResetBootstrapCredentials(ctx context.Context, store keyhold.Store, master *crypt.Key, clock keyhold.Clock) (*BootstrapCredentials, error) {
	if err := CheckMasterKey(ctx, store, master); err != nil {
		return nil, err
	}
	if clock == nil {
		clock = keyhold.SystemClock{}
	}
	// Seal the new secret like the server does (and, on a database no
	// server of this version has started on yet, the records written
	// before, which would otherwise be left unsealed for good).
	rec, err := crypt.NewRecordKey(master)
	if err != nil {
		return nil, err
	}
	sealer := &core{store: store, rec: rec, clock: clock, log: slog.New(slog.DiscardHandler)}
	if err := sealer.sealAccessRecords(ctx); err != nil {
		return nil, err
	}
	now := clock.Now().UTC()
	secret := crypt.NewClientSecret()
	var creds *BootstrapCredentials
	err = store.Update(ctx, func(tx keyhold.Tx) error {
		creds = nil
		tenants, err := tx.ListTenants(ctx)
		if err != nil {
			return err
		}
		// The first start's tenant is the oldest customer tenant.
		slices.SortStableFunc(tenants, func(a, b *keyhold.Tenant) int { return a.CreatedAt.Compare(b.CreatedAt) })
		for _, t := range tenants {
			if t.System {
				continue
			}
			ps, err := tx.ListPrincipals(ctx, t.ID)
			if err != nil {
				return err
			}
			i := slices.IndexFunc(ps, func(p *keyhold.Principal) bool {
				return p.Type == keyhold.PrincipalServicePrincipal && p.DisplayName == bootstrapAdminName
			})
			if i < 0 {
				continue
			}
			sp := ps[i]
			subs, err := tx.ListSubscriptions(ctx, t.ID)
			if err != nil {
				return err
			}
			slices.SortStableFunc(subs, func(a, b *keyhold.Subscription) int { return a.CreatedAt.Compare(b.CreatedAt) })
			subID := ""
			if len(subs) > 0 {
				subID = subs[0].ID
			}
			n, err := tx.RemoveCredentials(ctx, sp.ID)
			if err != nil {
				return err
			}
			if err := tx.AddCredential(ctx, &keyhold.Credential{PrincipalID: sp.ID, SecretHash: crypt.HashClientSecret(secret),
				CreatedAt: now, ExpiresAt: now.AddDate(2, 0, 0)}); err != nil {
				return err
			}
			if err := tx.AppendAudit(ctx, &keyhold.AuditEntry{At: now, TenantID: t.ID, ActorID: "system", Action: "principal.credentials.reset",
				Target: "/tenants/" + t.ID + "/principals/" + sp.ID, Result: "Succeeded",
				Detail: fmt.Sprintf("keyhold admin reset-credentials: new client secret for %s; %d old removed", sp.AppID, n)}); err != nil {
				return err
			}
			creds = &BootstrapCredentials{TenantID: t.ID, SubscriptionID: subID, ClientID: sp.AppID, ClientSecret: secret}
			return nil
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if creds == nil {
		return nil, keyhold.Errorf(keyhold.CodeNotFound, "no bootstrap administrator (%s) in this database: it was deleted, or no server has started on it", bootstrapAdminName)
	}
	return creds, nil
}
