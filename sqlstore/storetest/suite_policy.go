package storetest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

func policy(sub, rg, name, guid string) *keyhold.EnterprisePolicy {
	return &keyhold.EnterprisePolicy{
		SubscriptionID: sub, ResourceGroup: rg, Name: name, Location: "europe", Kind: keyhold.PolicyKindEncryption,
		TenantID: "t1", SystemID: "/regions/europe/providers/Microsoft.PowerPlatform/enterprisePolicies/" + guid,
		PrincipalID: "mi-" + name, EncryptionState: keyhold.PolicyEncryptionEnabled,
		KeyVaultID: "/subscriptions/" + sub + "/resourceGroups/Keys/providers/Microsoft.KeyVault/vaults/Contoso-KV",
		KeyName:    "CMK", HealthStatus: keyhold.HealthUndetermined, Tags: map[string]string{"env": "prod"},
		CreatedBy: "admin", CreatedAt: at(0), UpdatedAt: at(0),
	}
}

// testPolicies: policies round-trip, names, systemIds and key vault ids
// compare case-insensitively, and a taken name or systemId is a conflict.
func testPolicies(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	p1 := policy("sub1", "RG", "Policy-A", "11111111-1111-1111-1111-111111111111")
	p2 := policy("sub1", "other", "policy-b", "22222222-2222-2222-2222-222222222222")
	p2.Tags, p2.KeyVersion, p2.KeyName = nil, "0123456789abcdef0123456789abcdef", "other-key"
	p3 := policy("sub2", "rg", "policy-c", "33333333-3333-3333-3333-333333333333")
	update(t, s, func(tx keyhold.Tx) error {
		for _, p := range []*keyhold.EnterprisePolicy{p1, p2, p3} {
			if err := tx.CreatePolicy(ctx, p); err != nil {
				return err
			}
			if p.Version != 1 {
				t.Errorf("CreatePolicy set Version %d, want 1", p.Version)
			}
		}
		return nil
	})
	view(t, s, func(tx keyhold.Tx) error {
		got, err := tx.Policy(ctx, "SUB1", "rg", "POLICY-a")
		if err != nil {
			return err
		}
		equal(t, "Policy(other case)", got, p1)
		got, err = tx.Policy(ctx, "sub1", "other", "policy-b")
		if err != nil {
			return err
		}
		equal(t, "Policy(no tags, a version)", got, p2)
		got, err = tx.PolicyBySystemID(ctx, "/REGIONS/europe/providers/microsoft.powerplatform/enterprisepolicies/22222222-2222-2222-2222-222222222222")
		if err != nil {
			return err
		}
		equal(t, "PolicyBySystemID(other case)", got, p2)
		for _, tc := range []struct {
			name string
			f    keyhold.PolicyFilter
			want []*keyhold.EnterprisePolicy
		}{
			{"all", keyhold.PolicyFilter{}, []*keyhold.EnterprisePolicy{p2, p1, p3}},
			{"subscription", keyhold.PolicyFilter{SubscriptionID: "SUB1"}, []*keyhold.EnterprisePolicy{p2, p1}},
			{"resource group", keyhold.PolicyFilter{SubscriptionID: "sub1", ResourceGroup: "rg"}, []*keyhold.EnterprisePolicy{p1}},
			{"key vault, other case and trailing slash", keyhold.PolicyFilter{KeyVaultID: "/SUBSCRIPTIONS/sub1/resourcegroups/keys/providers/Microsoft.KeyVault/vaults/contoso-kv/"},
				[]*keyhold.EnterprisePolicy{p2, p1}},
			{"key vault and key", keyhold.PolicyFilter{KeyVaultID: p1.KeyVaultID, KeyName: "cmk"}, []*keyhold.EnterprisePolicy{p1}},
			{"none", keyhold.PolicyFilter{SubscriptionID: "sub9"}, []*keyhold.EnterprisePolicy{}},
		} {
			l, err := tx.ListPolicies(ctx, tc.f)
			if err != nil {
				return err
			}
			equal(t, "ListPolicies("+tc.name+")", l, tc.want)
		}
		_, err = tx.Policy(ctx, "sub1", "rg", "missing")
		wantCode(t, "Policy(missing)", err, keyhold.CodeResourceNotFound, "missing")
		_, err = tx.PolicyBySystemID(ctx, "/regions/europe/providers/Microsoft.PowerPlatform/enterprisePolicies/nope")
		wantCode(t, "PolicyBySystemID(missing)", err, keyhold.CodeResourceNotFound, "nope")
		return nil
	})

	taken := policy("sub1", "rg", "policy-A", "44444444-4444-4444-4444-444444444444")
	err := tryUpdate(s, func(tx keyhold.Tx) error { return tx.CreatePolicy(ctx, taken) })
	wantCode(t, "CreatePolicy(name taken, other case)", err, keyhold.CodeConflict, "policy-A")
	sameSystem := policy("sub1", "rg", "policy-d", "11111111-1111-1111-1111-111111111111")
	sameSystem.SystemID = "/REGIONS/EUROPE/providers/Microsoft.PowerPlatform/enterprisePolicies/11111111-1111-1111-1111-111111111111"
	err = tryUpdate(s, func(tx keyhold.Tx) error { return tx.CreatePolicy(ctx, sameSystem) })
	wantCode(t, "CreatePolicy(systemId taken, other case)", err, keyhold.CodeConflict)

	update(t, s, func(tx keyhold.Tx) error { return tx.DeletePolicy(ctx, "sub1", "RG", "policy-a") })
	err = tryUpdate(s, func(tx keyhold.Tx) error { return tx.DeletePolicy(ctx, "sub1", "rg", "policy-a") })
	wantCode(t, "DeletePolicy(again)", err, keyhold.CodeResourceNotFound, "policy-a")
	view(t, s, func(tx keyhold.Tx) error {
		l, err := tx.ListPolicies(ctx, keyhold.PolicyFilter{SubscriptionID: "sub1"})
		if err != nil {
			return err
		}
		equal(t, "ListPolicies after delete", l, []*keyhold.EnterprisePolicy{p2})
		_, err = tx.PolicyBySystemID(ctx, p1.SystemID)
		wantCode(t, "PolicyBySystemID(deleted)", err, keyhold.CodeResourceNotFound)
		return nil
	})
	// The name and systemId are free again.
	update(t, s, func(tx keyhold.Tx) error {
		return tx.CreatePolicy(ctx, policy("sub1", "rg", "policy-a", "11111111-1111-1111-1111-111111111111"))
	})
}

// testUpdatePolicy: an update writes the mutable fields, keeps the others,
// and loses to a concurrent one (CAS on Version).
func testUpdatePolicy(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	p := policy("sub1", "rg", "p", "55555555-5555-5555-5555-555555555555")
	update(t, s, func(tx keyhold.Tx) error { return tx.CreatePolicy(ctx, p) })

	stale := *p
	changed := *p
	changed.KeyVaultID = "/subscriptions/sub1/resourceGroups/keys/providers/Microsoft.KeyVault/vaults/New-KV"
	changed.KeyName, changed.KeyVersion = "new-key", "fedcba9876543210fedcba9876543210"
	changed.HealthStatus, changed.Tags, changed.UpdatedAt = keyhold.HealthHealthy, map[string]string{"a": "b"}, at(time.Hour)
	// Fields that never change, whatever the update says.
	changed.SystemID, changed.CreatedBy, changed.CreatedAt = "/regions/x/other", "mallory", at(time.Minute)
	update(t, s, func(tx keyhold.Tx) error { return tx.UpdatePolicy(ctx, &changed) })
	if changed.Version != 2 {
		t.Fatalf("UpdatePolicy left Version %d, want 2", changed.Version)
	}
	want := changed
	want.SystemID, want.CreatedBy, want.CreatedAt = p.SystemID, p.CreatedBy, p.CreatedAt
	view(t, s, func(tx keyhold.Tx) error {
		got, err := tx.Policy(ctx, "sub1", "rg", "p")
		if err != nil {
			return err
		}
		equal(t, "Policy after update", got, &want)
		l, err := tx.ListPolicies(ctx, keyhold.PolicyFilter{KeyVaultID: "/subscriptions/sub1/resourceGroups/keys/providers/Microsoft.KeyVault/vaults/new-kv", KeyName: "NEW-KEY"})
		if err != nil {
			return err
		}
		equal(t, "ListPolicies(new key)", l, []*keyhold.EnterprisePolicy{&want})
		l, err = tx.ListPolicies(ctx, keyhold.PolicyFilter{KeyVaultID: p.KeyVaultID})
		if err != nil {
			return err
		}
		equal(t, "ListPolicies(old key)", l, []*keyhold.EnterprisePolicy{})
		return nil
	})

	err := tryUpdate(s, func(tx keyhold.Tx) error { return tx.UpdatePolicy(ctx, &stale) })
	wantCode(t, "UpdatePolicy(stale)", err, keyhold.CodeConflict, "version 1")
	missing := *p
	missing.Name = "gone"
	err = tryUpdate(s, func(tx keyhold.Tx) error { return tx.UpdatePolicy(ctx, &missing) })
	wantCode(t, "UpdatePolicy(missing)", err, keyhold.CodeResourceNotFound, "gone")
}

// testDeployments: deployment records round-trip, a second put replaces
// the record but keeps its name and creation, and names compare
// case-insensitively.
func testDeployments(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	dtx := func(tx keyhold.Tx) keyhold.DeploymentTx {
		d, ok := tx.(keyhold.DeploymentTx)
		if !ok {
			t.Fatalf("the store's transactions (%T) don't implement keyhold.DeploymentTx", tx)
		}
		return d
	}
	d1 := &keyhold.Deployment{SubscriptionID: "sub1", ResourceGroup: "RG", Name: "Deploy-1", TenantID: "t1", Mode: "Incremental",
		ProvisioningState: keyhold.DeploymentSucceeded,
		OutputResources:   []string{"/subscriptions/sub1/resourceGroups/RG/providers/Microsoft.PowerPlatform/enterprisePolicies/p"},
		Outputs:           json.RawMessage(`{"id":{"type":"String","value":"x"}}`),
		CreatedBy:         "admin", CreatedAt: at(0), UpdatedAt: at(0)}
	d2 := &keyhold.Deployment{SubscriptionID: "sub1", ResourceGroup: "rg", Name: "a-failed", TenantID: "t1", Mode: "Incremental",
		ProvisioningState: keyhold.DeploymentFailed, OutputResources: []string{}, ErrorCode: "MissingSubscriptionRegistration",
		ErrorMessage: "register it", CreatedBy: "admin", CreatedAt: at(time.Second), UpdatedAt: at(time.Second)}
	d3 := &keyhold.Deployment{SubscriptionID: "sub1", ResourceGroup: "other", Name: "z", TenantID: "t1", Mode: "Incremental",
		ProvisioningState: keyhold.DeploymentSucceeded, OutputResources: []string{}, CreatedBy: "admin", CreatedAt: at(0), UpdatedAt: at(0)}
	update(t, s, func(tx keyhold.Tx) error {
		for _, d := range []*keyhold.Deployment{d1, d2, d3} {
			if err := dtx(tx).PutDeployment(ctx, d); err != nil {
				return err
			}
		}
		return nil
	})
	view(t, s, func(tx keyhold.Tx) error {
		got, err := dtx(tx).Deployment(ctx, "SUB1", "rg", "DEPLOY-1")
		if err != nil {
			return err
		}
		equal(t, "Deployment(other case)", got, d1)
		l, err := dtx(tx).ListDeployments(ctx, "sub1", "Rg")
		if err != nil {
			return err
		}
		equal(t, "ListDeployments", l, []*keyhold.Deployment{d2, d1})
		_, err = dtx(tx).Deployment(ctx, "sub1", "rg", "missing")
		wantCode(t, "Deployment(missing)", err, keyhold.CodeNotFound, "missing")
		return nil
	})

	again := *d1
	again.Name, again.ProvisioningState, again.OutputResources, again.Outputs = "deploy-1", keyhold.DeploymentFailed, nil, nil
	again.ErrorCode, again.ErrorMessage, again.CreatedBy, again.CreatedAt, again.UpdatedAt = "Conflict", "linked", "other", at(time.Hour), at(time.Hour)
	update(t, s, func(tx keyhold.Tx) error { return dtx(tx).PutDeployment(ctx, &again) })
	want := again
	want.Name, want.CreatedBy, want.CreatedAt, want.OutputResources = d1.Name, d1.CreatedBy, d1.CreatedAt, []string{}
	view(t, s, func(tx keyhold.Tx) error {
		got, err := dtx(tx).Deployment(ctx, "sub1", "rg", "deploy-1")
		if err != nil {
			return err
		}
		equal(t, "Deployment after a second put", got, &want)
		return nil
	})

	update(t, s, func(tx keyhold.Tx) error { return dtx(tx).DeleteDeployment(ctx, "sub1", "rg", "DEPLOY-1") })
	err := tryUpdate(s, func(tx keyhold.Tx) error { return dtx(tx).DeleteDeployment(ctx, "sub1", "rg", "deploy-1") })
	wantCode(t, "DeleteDeployment(again)", err, keyhold.CodeNotFound, "deploy-1")
}
