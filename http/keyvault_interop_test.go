package http

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/keyvault/armkeyvault"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/keyhold/keyhold"
)

// These tests drive Keyhold with the official Azure SDKs, unchanged, over
// HTTPS: armkeyvault for the vault resource, azkeys for the keys. They
// prove wire compatibility of paths, JSON shapes, status codes, the
// long-running-operation protocol and the Key Vault bearer challenge.

// wantResponseError checks an SDK error's status and code.
func wantResponseError(t *testing.T, what string, err error, status int, code string) *azcore.ResponseError {
	t.Helper()
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("%s: error %v (%T), want an *azcore.ResponseError %d %s", what, err, err, status, code)
	}
	if re.StatusCode != status || re.ErrorCode != code {
		t.Fatalf("%s: %d %s, want %d %s", what, re.StatusCode, re.ErrorCode, status, code)
	}
	return re
}

func TestKeyVaultInteropARM(t *testing.T) { forEachKVBackend(t, testKeyVaultInteropARM) }

func testKeyVaultInteropARM(t *testing.T, kf *kvFixture) {
	ctx := context.Background()
	vc := kf.vaultsClient(t)
	tenant := kf.creds.TenantID
	allKeys := []*armkeyvault.KeyPermissions{to.Ptr(armkeyvault.KeyPermissionsAll)}

	// Create a vault with purge protection and access policies, and wait
	// for the long-running operation as the SDK does.
	params := armkeyvault.VaultCreateOrUpdateParameters{
		Location: to.Ptr("West Europe"),
		Properties: &armkeyvault.VaultProperties{
			TenantID:                  to.Ptr(tenant),
			SKU:                       &armkeyvault.SKU{Family: to.Ptr(armkeyvault.SKUFamilyA), Name: to.Ptr(armkeyvault.SKUNameStandard)},
			EnablePurgeProtection:     to.Ptr(true),
			EnableSoftDelete:          to.Ptr(true),
			SoftDeleteRetentionInDays: to.Ptr[int32](30),
			AccessPolicies: []*armkeyvault.AccessPolicyEntry{{
				TenantID: to.Ptr(tenant), ObjectID: to.Ptr(kf.adminID),
				Permissions: &armkeyvault.Permissions{Keys: allKeys},
			}},
			NetworkACLs: &armkeyvault.NetworkRuleSet{
				Bypass: to.Ptr(armkeyvault.NetworkRuleBypassOptionsAzureServices), DefaultAction: to.Ptr(armkeyvault.NetworkRuleActionAllow),
				IPRules: []*armkeyvault.IPRule{{Value: to.Ptr("203.0.113.0/24")}},
			},
		},
	}
	poller, err := vc.BeginCreateOrUpdate(ctx, kf.rg, "contoso-kv", params, nil)
	if err != nil {
		t.Fatalf("BeginCreateOrUpdate: %v", err)
	}
	if !poller.Done() {
		t.Fatal("the create poller is not done at once: PUT must answer provisioningState Succeeded")
	}
	created, err := poller.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: kvPollFreq})
	if err != nil {
		t.Fatalf("PollUntilDone: %v", err)
	}
	p := created.Properties
	if *created.Name != "contoso-kv" || *created.Type != "Microsoft.KeyVault/vaults" || *created.Location != "westeurope" ||
		*created.ID != "/subscriptions/"+kf.creds.SubscriptionID+"/resourceGroups/keys/providers/Microsoft.KeyVault/vaults/contoso-kv" {
		t.Fatalf("created vault = %s %s %s %s", *created.ID, *created.Name, *created.Type, *created.Location)
	}
	if *p.VaultURI != kf.vaultURI("contoso-kv")+"/" || *p.ProvisioningState != armkeyvault.VaultProvisioningStateSucceeded ||
		!*p.EnablePurgeProtection || !*p.EnableSoftDelete || *p.SoftDeleteRetentionInDays != 30 || *p.TenantID != tenant ||
		*p.SKU.Name != armkeyvault.SKUNameStandard || *p.SKU.Family != armkeyvault.SKUFamilyA || *p.EnableRbacAuthorization {
		t.Fatalf("created vault properties = %+v", p)
	}
	if len(p.AccessPolicies) != 1 || *p.AccessPolicies[0].ObjectID != kf.adminID || *p.AccessPolicies[0].Permissions.Keys[0] != armkeyvault.KeyPermissionsAll {
		t.Fatalf("access policies = %+v", p.AccessPolicies)
	}
	if n := p.NetworkACLs; *n.Bypass != armkeyvault.NetworkRuleBypassOptionsAzureServices || *n.DefaultAction != armkeyvault.NetworkRuleActionAllow ||
		len(n.IPRules) != 1 || *n.IPRules[0].Value != "203.0.113.0/24" {
		t.Fatalf("network ACLs = %+v", n)
	}

	// A second PUT is an update (200), and keeps purge protection when
	// the body leaves it out.
	params.Properties.EnablePurgeProtection = nil
	params.Properties.AccessPolicies = append(params.Properties.AccessPolicies, &armkeyvault.AccessPolicyEntry{
		TenantID: to.Ptr(tenant), ObjectID: to.Ptr("00000000-0000-0000-0000-000000000001"),
		Permissions: &armkeyvault.Permissions{Keys: []*armkeyvault.KeyPermissions{to.Ptr(armkeyvault.KeyPermissionsGet),
			to.Ptr(armkeyvault.KeyPermissionsWrapKey), to.Ptr(armkeyvault.KeyPermissionsUnwrapKey)}}})
	poller, err = vc.BeginCreateOrUpdate(ctx, kf.rg, "contoso-kv", params, nil)
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	updated, err := poller.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: kvPollFreq})
	if err != nil || !*updated.Properties.EnablePurgeProtection || len(updated.Properties.AccessPolicies) != 2 {
		t.Fatalf("update = %+v, %v", updated.Properties, err)
	}
	keys := updated.Properties.AccessPolicies[1].Permissions.Keys
	if len(keys) != 3 || *keys[1] != armkeyvault.KeyPermissionsWrapKey || *keys[2] != armkeyvault.KeyPermissionsUnwrapKey {
		t.Fatalf("permissions = %v", keys)
	}

	// PATCH changes only what it names.
	patched, err := vc.Update(ctx, kf.rg, "contoso-kv", armkeyvault.VaultPatchParameters{Properties: &armkeyvault.VaultPatchProperties{
		NetworkACLs:         &armkeyvault.NetworkRuleSet{DefaultAction: to.Ptr(armkeyvault.NetworkRuleActionDeny)},
		PublicNetworkAccess: to.Ptr("Enabled")}}, nil)
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if n := patched.Properties.NetworkACLs; *n.DefaultAction != armkeyvault.NetworkRuleActionDeny || len(n.IPRules) != 1 ||
		!*patched.Properties.EnablePurgeProtection || len(patched.Properties.AccessPolicies) != 2 {
		t.Fatalf("patched = %+v %+v", patched.Properties, n)
	}

	// Get and list.
	got, err := vc.Get(ctx, kf.rg, "contoso-kv", nil)
	if err != nil || *got.ID != *created.ID || !*got.Properties.EnablePurgeProtection {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	_, err = vc.Get(ctx, kf.rg, "no-such-vault", nil)
	wantResponseError(t, "Get of a missing vault", err, 404, keyhold.CodeResourceNotFound)

	// A vault without purge protection, for the delete, recover and purge
	// round.
	params2 := armkeyvault.VaultCreateOrUpdateParameters{Location: to.Ptr("westeurope"), Properties: &armkeyvault.VaultProperties{
		TenantID: to.Ptr(tenant), SKU: &armkeyvault.SKU{Family: to.Ptr(armkeyvault.SKUFamilyA), Name: to.Ptr(armkeyvault.SKUNamePremium)},
		EnableRbacAuthorization: to.Ptr(true)}}
	poller, err = vc.BeginCreateOrUpdate(ctx, kf.rg, "scratch-kv", params2, nil)
	if err != nil {
		t.Fatalf("create scratch-kv: %v", err)
	}
	scratch, err := poller.PollUntilDone(ctx, nil)
	if err != nil || scratch.Properties.EnablePurgeProtection != nil {
		t.Fatalf("scratch vault: enablePurgeProtection must be left out when off, as Azure does: %+v, %v", scratch.Properties, err)
	}

	names := func(pagerNames func() ([]string, error)) []string {
		t.Helper()
		n, err := pagerNames()
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		slices.Sort(n)
		return n
	}
	byGroup := func() ([]string, error) {
		var out []string
		pg := vc.NewListByResourceGroupPager(kf.rg, nil)
		for pg.More() {
			page, err := pg.NextPage(ctx)
			if err != nil {
				return nil, err
			}
			for _, v := range page.Value {
				out = append(out, *v.Name)
			}
		}
		return out, nil
	}
	bySub := func() ([]string, error) {
		var out []string
		pg := vc.NewListBySubscriptionPager(nil)
		for pg.More() {
			page, err := pg.NextPage(ctx)
			if err != nil {
				return nil, err
			}
			for _, v := range page.Value {
				out = append(out, *v.Name)
			}
		}
		return out, nil
	}
	if got := names(byGroup); !slices.Equal(got, []string{"contoso-kv", "scratch-kv"}) {
		t.Fatalf("list by group = %v", got)
	}
	if got := names(bySub); !slices.Equal(got, []string{"contoso-kv", "scratch-kv"}) {
		t.Fatalf("list by subscription = %v", got)
	}

	// Access policies: add, then remove.
	ap, err := vc.UpdateAccessPolicy(ctx, kf.rg, "contoso-kv", armkeyvault.AccessPolicyUpdateKindRemove, armkeyvault.VaultAccessPolicyParameters{
		Properties: &armkeyvault.VaultAccessPolicyProperties{AccessPolicies: []*armkeyvault.AccessPolicyEntry{{
			TenantID: to.Ptr(tenant), ObjectID: to.Ptr("00000000-0000-0000-0000-000000000001"), Permissions: &armkeyvault.Permissions{}}}}}, nil)
	if err != nil || len(ap.Properties.AccessPolicies) != 1 {
		t.Fatalf("UpdateAccessPolicy remove = %+v, %v", ap, err)
	}

	// Delete, list deleted, get deleted, recover with createMode recover,
	// delete again and purge.
	if _, err := vc.Delete(ctx, kf.rg, "scratch-kv", nil); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := vc.Delete(ctx, kf.rg, "scratch-kv", nil); err != nil {
		t.Fatalf("Delete of a deleted vault must answer 204: %v", err)
	}
	_, err = vc.Get(ctx, kf.rg, "scratch-kv", nil)
	wantResponseError(t, "Get of a deleted vault", err, 404, keyhold.CodeResourceNotFound)
	var deleted []string
	for pg := vc.NewListDeletedPager(nil); pg.More(); {
		page, err := pg.NextPage(ctx)
		if err != nil {
			t.Fatalf("ListDeleted: %v", err)
		}
		for _, d := range page.Value {
			deleted = append(deleted, *d.Name)
			if *d.Properties.VaultID != *scratch.ID || d.Properties.DeletionDate == nil || !d.Properties.ScheduledPurgeDate.After(*d.Properties.DeletionDate) {
				t.Fatalf("deleted vault = %+v", d.Properties)
			}
		}
	}
	if !slices.Equal(deleted, []string{"scratch-kv"}) {
		t.Fatalf("deleted vaults = %v", deleted)
	}
	dv, err := vc.GetDeleted(ctx, "scratch-kv", "westeurope", nil)
	if err != nil || *dv.Properties.Location != "westeurope" || *dv.Properties.PurgeProtectionEnabled {
		t.Fatalf("GetDeleted = %+v, %v", dv, err)
	}
	params2.Properties.CreateMode = to.Ptr(armkeyvault.CreateModeRecover)
	poller, err = vc.BeginCreateOrUpdate(ctx, kf.rg, "scratch-kv", params2, nil)
	if err != nil {
		t.Fatalf("recover: %v", err)
	}
	if rec, err := poller.PollUntilDone(ctx, nil); err != nil || *rec.Name != "scratch-kv" {
		t.Fatalf("recover = %+v, %v", rec, err)
	}
	if _, err := vc.Get(ctx, kf.rg, "scratch-kv", nil); err != nil {
		t.Fatalf("Get of the recovered vault: %v", err)
	}
	if _, err := vc.Delete(ctx, kf.rg, "scratch-kv", nil); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	purge, err := vc.BeginPurgeDeleted(ctx, "scratch-kv", "westeurope", nil)
	if err != nil {
		t.Fatalf("BeginPurgeDeleted: %v", err)
	}
	if _, err := purge.PollUntilDone(ctx, nil); err != nil {
		t.Fatalf("purge: %v", err)
	}
	_, err = vc.GetDeleted(ctx, "scratch-kv", "westeurope", nil)
	wantResponseError(t, "GetDeleted of a purged vault", err, 404, keyhold.CodeResourceNotFound)

	// Purge protection: a deleted vault that has it can't be purged.
	if _, err := vc.Delete(ctx, kf.rg, "contoso-kv", nil); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	_, err = vc.BeginPurgeDeleted(ctx, "contoso-kv", "westeurope", nil)
	wantResponseError(t, "purge under purge protection", err, 409, keyhold.CodeConflict)
}

func TestKeyVaultInteropKeys(t *testing.T) { forEachKVBackend(t, testKeyVaultInteropKeys) }

func testKeyVaultInteropKeys(t *testing.T, kf *kvFixture) {
	ctx := context.Background()
	v := kf.newRBACVault(t, "keys-kv")
	c := kf.keysClient(t, v.URI+"/") // as the ARM vaultUri gives it

	// Create.
	created, err := c.CreateKey(ctx, "cmk", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA), KeySize: to.Ptr[int32](2048),
		KeyOps: []*azkeys.KeyOperation{to.Ptr(azkeys.KeyOperationWrapKey), to.Ptr(azkeys.KeyOperationUnwrapKey)},
		Tags:   map[string]*string{"owner": to.Ptr("contoso")}}, nil)
	if err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	kid := *created.Key.KID
	v1 := kid.Version()
	if len(v1) != 32 || string(kid) != v.URI+"/keys/cmk/"+v1 {
		t.Fatalf("kid = %s", kid)
	}
	a := created.Attributes
	if *created.Key.Kty != azkeys.KeyTypeRSA || len(created.Key.N) != 256 || !bytes.Equal(created.Key.E, []byte{1, 0, 1}) ||
		!*a.Enabled || a.Created == nil || *a.RecoveryLevel != "Recoverable+Purgeable" || *a.RecoverableDays != 90 ||
		*created.Tags["owner"] != "contoso" || len(created.Key.KeyOps) != 2 {
		t.Fatalf("created key = %+v %+v", created.Key, a)
	}

	// Wrap with the unversioned key, unwrap with the kid returned.
	secret := make([]byte, 32)
	rand.Read(secret)
	wrapped, err := c.WrapKey(ctx, "cmk", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: secret}, nil)
	if err != nil {
		t.Fatalf("WrapKey: %v", err)
	}
	if *wrapped.KID != kid || len(wrapped.Result) != 256 {
		t.Fatalf("WrapKey = %s, %d bytes", *wrapped.KID, len(wrapped.Result))
	}
	unwrapped, err := c.UnwrapKey(ctx, "cmk", v1, azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: wrapped.Result}, nil)
	if err != nil || !bytes.Equal(unwrapped.Result, secret) {
		t.Fatalf("UnwrapKey = %x, %v", unwrapped.Result, err)
	}

	// Rotate, and the old version still unwraps.
	kf.clock.Advance(time.Minute)
	rotated, err := c.RotateKey(ctx, "cmk", nil)
	if err != nil {
		t.Fatalf("RotateKey: %v", err)
	}
	v2 := rotated.Key.KID.Version()
	if v2 == v1 || len(v2) != 32 {
		t.Fatalf("rotated version = %s", v2)
	}
	if u, err := c.UnwrapKey(ctx, "cmk", v1, azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: wrapped.Result}, nil); err != nil || !bytes.Equal(u.Result, secret) {
		t.Fatalf("UnwrapKey with the old version after rotation = %v", err)
	}
	cur, err := c.GetKey(ctx, "cmk", "", nil)
	if err != nil || cur.Key.KID.Version() != v2 {
		t.Fatalf("GetKey current = %v, %v", cur.Key.KID, err)
	}
	var versions []string
	for pg := c.NewListKeyPropertiesVersionsPager("cmk", nil); pg.More(); {
		page, err := pg.NextPage(ctx)
		if err != nil {
			t.Fatalf("versions: %v", err)
		}
		for _, k := range page.Value {
			versions = append(versions, k.KID.Version())
		}
	}
	if !slices.Equal(versions, []string{v1, v2}) {
		t.Fatalf("versions = %v, want %s %s", versions, v1, v2)
	}

	// Rotation policy.
	policy, err := c.UpdateKeyRotationPolicy(ctx, "cmk", azkeys.KeyRotationPolicy{
		Attributes: &azkeys.KeyRotationPolicyAttributes{ExpiryTime: to.Ptr("P1Y")},
		LifetimeActions: []*azkeys.LifetimeAction{
			{Action: &azkeys.LifetimeActionType{Type: to.Ptr(azkeys.KeyRotationPolicyActionRotate)}, Trigger: &azkeys.LifetimeActionTrigger{TimeAfterCreate: to.Ptr("P90D")}},
			{Action: &azkeys.LifetimeActionType{Type: to.Ptr(azkeys.KeyRotationPolicyActionNotify)}, Trigger: &azkeys.LifetimeActionTrigger{TimeBeforeExpiry: to.Ptr("P30D")}},
		}}, nil)
	if err != nil {
		t.Fatalf("UpdateKeyRotationPolicy: %v", err)
	}
	gotPolicy, err := c.GetKeyRotationPolicy(ctx, "cmk", nil)
	if err != nil {
		t.Fatalf("GetKeyRotationPolicy: %v", err)
	}
	for _, p := range []azkeys.KeyRotationPolicy{policy.KeyRotationPolicy, gotPolicy.KeyRotationPolicy} {
		if *p.ID != v.URI+"/keys/cmk/rotationpolicy" || *p.Attributes.ExpiryTime != "P1Y" || len(p.LifetimeActions) != 2 ||
			*p.LifetimeActions[0].Action.Type != azkeys.KeyRotationPolicyActionRotate || *p.LifetimeActions[0].Trigger.TimeAfterCreate != "P90D" ||
			*p.LifetimeActions[1].Trigger.TimeBeforeExpiry != "P30D" || p.Attributes.Updated == nil {
			t.Fatalf("rotation policy = %+v", p)
		}
	}

	// Disable, and wrapping is refused with Key Vault's codes.
	if _, err := c.UpdateKey(ctx, "cmk", "", azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Enabled: to.Ptr(false)}}, nil); err != nil {
		t.Fatalf("UpdateKey: %v", err)
	}
	_, err = c.WrapKey(ctx, "cmk", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: secret}, nil)
	re := wantResponseError(t, "WrapKey with a disabled key", err, 403, keyhold.CodeForbidden)
	if body, _ := runtime.Payload(re.RawResponse); !bytes.Contains(body, []byte(`"innererror":{"code":"KeyDisabled"}`)) {
		t.Fatalf("error body = %s", body)
	}
	if _, err := c.UpdateKey(ctx, "cmk", v2, azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Enabled: to.Ptr(true)}}, nil); err != nil {
		t.Fatalf("UpdateKey: %v", err)
	}

	// List.
	if _, err := c.CreateKey(ctx, "other", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA)}, nil); err != nil {
		t.Fatalf("CreateKey other: %v", err)
	}
	listNames := func(deleted bool) []string {
		var out []string
		if deleted {
			for pg := c.NewListDeletedKeyPropertiesPager(nil); pg.More(); {
				page, err := pg.NextPage(ctx)
				if err != nil {
					t.Fatalf("list deleted: %v", err)
				}
				for _, k := range page.Value {
					out = append(out, k.KID.Name())
				}
			}
			return out
		}
		for pg := c.NewListKeyPropertiesPager(nil); pg.More(); {
			page, err := pg.NextPage(ctx)
			if err != nil {
				t.Fatalf("list: %v", err)
			}
			for _, k := range page.Value {
				if k.KID.Version() != "" {
					t.Fatalf("listed kid %s has a version", *k.KID)
				}
				out = append(out, k.KID.Name())
			}
		}
		return out
	}
	if got := listNames(false); !slices.Equal(got, []string{"cmk", "other"}) {
		t.Fatalf("keys = %v", got)
	}

	// Delete and recover.
	del, err := c.DeleteKey(ctx, "cmk", nil)
	if err != nil {
		t.Fatalf("DeleteKey: %v", err)
	}
	if *del.RecoveryID != v.URI+"/deletedkeys/cmk" || del.DeletedDate == nil || !del.ScheduledPurgeDate.After(*del.DeletedDate) {
		t.Fatalf("deleted key = %+v", del.DeletedKey)
	}
	// Wait for the deletion to show, as the SDK's documentation asks.
	if _, err := c.GetDeletedKey(ctx, "cmk", nil); err != nil {
		t.Fatalf("GetDeletedKey: %v", err)
	}
	_, err = c.GetKey(ctx, "cmk", "", nil)
	wantResponseError(t, "GetKey of a deleted key", err, 404, keyhold.CodeKeyNotFound)
	if got := listNames(true); !slices.Equal(got, []string{"cmk"}) {
		t.Fatalf("deleted keys = %v", got)
	}
	if _, err := c.RecoverDeletedKey(ctx, "cmk", nil); err != nil {
		t.Fatalf("RecoverDeletedKey: %v", err)
	}
	if u, err := c.UnwrapKey(ctx, "cmk", v1, azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: wrapped.Result}, nil); err != nil || !bytes.Equal(u.Result, secret) {
		t.Fatalf("UnwrapKey after recovery = %v", err)
	}

	// Delete and purge (the vault has no purge protection).
	if _, err := c.DeleteKey(ctx, "other", nil); err != nil {
		t.Fatalf("DeleteKey: %v", err)
	}
	if _, err := c.PurgeDeletedKey(ctx, "other", nil); err != nil {
		t.Fatalf("PurgeDeletedKey: %v", err)
	}
	_, err = c.GetDeletedKey(ctx, "other", nil)
	wantResponseError(t, "GetDeletedKey of a purged key", err, 404, keyhold.CodeKeyNotFound)

	// Import.
	imported, err := c.ImportKey(ctx, "imported", azkeys.ImportKeyParameters{Key: testJWK(t)}, nil)
	if err != nil {
		t.Fatalf("ImportKey: %v", err)
	}
	if *imported.Key.Kty != azkeys.KeyTypeRSA || len(imported.Key.D) != 0 || len(imported.Key.N) != 256 {
		t.Fatalf("imported = %+v", imported.Key)
	}
}

// TestVaultTenantIsTheSubscriptionsSDK: armkeyvault creating a vault that
// names another tenant is answered 400 BadRequest naming the
// subscription's tenant; no vault is created and the named tenant's audit
// log gets nothing.
func TestVaultTenantIsTheSubscriptionsSDK(t *testing.T) {
	forEachKVBackend(t, func(t *testing.T, kf *kvFixture) {
		ctx := context.Background()
		const victim = "5e6f7081-92a3-44b5-86c7-d8e9f0a1b2c3"
		if err := kf.store.Update(ctx, func(tx keyhold.Tx) error {
			return tx.CreateTenant(ctx, &keyhold.Tenant{ID: victim, DisplayName: "Fabrikam", CreatedAt: kf.clock.Now()})
		}); err != nil {
			t.Fatal(err)
		}
		victimAudit := func() int {
			var n int
			kf.store.View(ctx, func(tx keyhold.Tx) error {
				es, err := tx.ListAudit(ctx, keyhold.AuditFilter{TenantID: victim, Limit: 100})
				n = len(es)
				return err
			})
			return n
		}
		vc := kf.vaultsClient(t)
		_, err := vc.BeginCreateOrUpdate(ctx, kf.rg, "injected-kv", armkeyvault.VaultCreateOrUpdateParameters{
			Location: to.Ptr("westeurope"),
			Properties: &armkeyvault.VaultProperties{
				TenantID: to.Ptr(victim),
				SKU:      &armkeyvault.SKU{Family: to.Ptr(armkeyvault.SKUFamilyA), Name: to.Ptr(armkeyvault.SKUNameStandard)},
			},
		}, nil)
		re := wantResponseError(t, "a vault naming another tenant", err, 400, keyhold.CodeBadRequest)
		if msg := re.Error(); !strings.Contains(msg, victim) || !strings.Contains(msg, kf.creds.TenantID) {
			t.Errorf("refusal %s: want it to quote %s and name the subscription's tenant %s", msg, victim, kf.creds.TenantID)
		}
		_, err = vc.Get(ctx, kf.rg, "injected-kv", nil)
		wantResponseError(t, "the refused vault", err, 404, keyhold.CodeResourceNotFound)
		if n := victimAudit(); n != 0 {
			t.Fatalf("the named tenant's audit log has %d entries, want none", n)
		}
	})
}
