package storetest

import (
	"context"
	"testing"

	"github.com/keyhold/keyhold"
)

// testCMKCustody: an environment's link to a policy and its encryption
// status round-trip, the policy filter matches case-insensitively, and a
// wrapped key keeps the identity that wrapped it.
func testCMKCustody(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	seedEnv(t, s, "t1", "e1")
	seedEnv(t, s, "t1", "e2")
	const policy = "/subscriptions/s1/resourceGroups/RG/providers/Microsoft.PowerPlatform/enterprisePolicies/P1"
	update(t, s, func(tx keyhold.Tx) error {
		e, err := tx.Environment(ctx, "e1")
		if err != nil {
			return err
		}
		e.PolicyID, e.LinkStatus, e.EncryptionStatus, e.LastOperationID = policy, keyhold.LinkStatusLinked, keyhold.EncryptionRunning, "op-1"
		e.PolicySystemID = "/regions/europe/providers/Microsoft.PowerPlatform/enterprisePolicies/0000"
		e.KeyManagedBy = keyhold.KeyManagedByCustomer
		e.State, e.LockedAt = keyhold.StateLocked, at(5)
		if err := tx.UpdateEnvironment(ctx, e); err != nil {
			return err
		}
		return tx.PutWrappedKey(ctx, &keyhold.WrappedKey{EnvID: "e1", Epoch: 2, Root: keyhold.RootCMK,
			KeyID: "https://h/vaults/v/keys/k/0123", PrincipalID: "mi-1", Ciphertext: []byte{1, 2, 3}, CreatedAt: at(0)})
	})
	view(t, s, func(tx keyhold.Tx) error {
		e, err := tx.Environment(ctx, "e1")
		if err != nil {
			return err
		}
		if e.PolicyID != policy || e.PolicySystemID != "/regions/europe/providers/Microsoft.PowerPlatform/enterprisePolicies/0000" || e.LinkStatus != keyhold.LinkStatusLinked || e.EncryptionStatus != keyhold.EncryptionRunning ||
			e.LastOperationID != "op-1" || e.KeyManagedBy != keyhold.KeyManagedByCustomer || !e.LockedAt.Equal(at(5)) {
			t.Errorf("environment after update = %+v", e)
		}
		if e2, err := tx.Environment(ctx, "e2"); err != nil || !e2.LockedAt.IsZero() {
			t.Errorf("environment never locked: %+v, %v; want a zero LockedAt", e2, err)
		}
		linked, err := tx.ListEnvironments(ctx, keyhold.EnvironmentFilter{PolicyID: "/SUBSCRIPTIONS/s1/resourcegroups/rg/providers/microsoft.powerplatform/enterprisepolicies/p1"})
		if err != nil {
			return err
		}
		if len(linked) != 1 || linked[0].ID != "e1" {
			t.Errorf("environments linked to the policy = %v, want only e1", linked)
		}
		wks, err := tx.WrappedKeys(ctx, "e1")
		if err != nil {
			return err
		}
		found := false
		for _, k := range wks {
			if k.Root == keyhold.RootCMK {
				found = k.PrincipalID == "mi-1" && k.KeyID == "https://h/vaults/v/keys/k/0123"
			}
		}
		if !found {
			t.Errorf("wrapped keys = %+v, want the CMK copy with its principal", wks)
		}
		return nil
	})
}
