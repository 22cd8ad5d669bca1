package http

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/authorization/armauthorization/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/keyvault/armkeyvault"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources/v3"
	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
	karm "github.com/keyhold/keyhold/arm"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/deploy"
	kpolicy "github.com/keyhold/keyhold/policy"
	"github.com/keyhold/keyhold/sqlstore/storetest"
	"github.com/keyhold/keyhold/vault"
)

// The SDK interop suite: the official Go SDKs, each given only Keyhold's
// cloud.Configuration (authority host, resource manager endpoint and
// audience), the test CA in its transport and DisableInstanceDiscovery,
// sign in with azidentity and drive the resource manager: armresources
// (providers, groups, a template deployment through the generic
// resources client and its poller), armauthorization (role definitions
// and assignments) and armkeyvault (vaults, access policies, network
// rules, deleted vaults).

// sdkFixture serves the resource manager, the directory, the key vault,
// enterprise policies and deployments, and the key sets; the bootstrap
// administrator is Owner of the subscription.
type sdkFixture struct {
	*fixture
	adminID string
}

func forEachSDKBackend(t *testing.T, fn func(t *testing.T, sf *sdkFixture)) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		fn(t, newSDKFixtureOn(t, open(t)))
	})
}

func newSDKFixtureOn(t *testing.T, store keyhold.Store) *sdkFixture {
	t.Helper()
	sf := &sdkFixture{}
	sf.fixture = newFixtureOn(t, store, func(f *fixture) {
		master, err := crypt.NewKey()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(master.Destroy)
		am := karm.New(karm.Config{Store: f.store, Clock: f.clock})
		kv, err := vault.New(vault.Config{Store: f.store, MasterKey: master, Clock: f.clock, BaseURL: f.url})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { kv.Close() })
		ps := kpolicy.New(kpolicy.Config{Store: f.store, Clock: f.clock, ARM: am, Vaults: kv})
		ps.RegisterDeleter()
		f.srv.ARM = ARMAPI{Resources: am, Directory: am}
		f.srv.KeyVault = KeyVaultAPI{Vaults: kv, Lookup: storeLookup(f.store)}
		f.srv.Policies = PolicyAPI{Service: ps, Deployments: deploy.New(deploy.Config{Store: f.store, Clock: f.clock, Policies: ps, ARM: am, Vaults: kv})}
		f.srv.Keys = f.p
	})
	ctx := context.Background()
	err := sf.store.Update(ctx, func(tx keyhold.Tx) error {
		admin, err := tx.PrincipalByAppID(ctx, sf.creds.TenantID, sf.creds.ClientID)
		if err != nil {
			return err
		}
		sf.adminID = admin.ID
		owner, _ := keyhold.FindRoleDefinition(keyhold.RoleOwner)
		return tx.CreateRoleAssignment(ctx, &keyhold.RoleAssignment{ID: uuid.NewString(), Scope: "/subscriptions/" + sf.creds.SubscriptionID,
			RoleDefinitionID: owner.ID, PrincipalID: admin.ID, PrincipalType: "ServicePrincipal", TenantID: sf.creds.TenantID, CreatedAt: sf.clock.Now()})
	})
	if err != nil {
		t.Fatal(err)
	}
	return sf
}

// armOptions are the resource manager clients' options: Keyhold's cloud
// and CA, nothing else.
func (sf *sdkFixture) armOptions() *arm.ClientOptions {
	return &arm.ClientOptions{ClientOptions: sf.sdkClientOptions()}
}

// certCredential registers a certificate for the administrator and
// returns azidentity's certificate credential with it.
func (sf *sdkFixture) certCredential(t *testing.T) azcore.TokenCredential {
	t.Helper()
	cf := newCertFixture(t, sf.fixture)
	cred, err := azidentity.NewClientCertificateCredential(sf.creds.TenantID, sf.creds.ClientID, []*x509.Certificate{cf.app.cert}, cf.app.key,
		&azidentity.ClientCertificateCredentialOptions{ClientOptions: sf.sdkClientOptions(), DisableInstanceDiscovery: true})
	if err != nil {
		t.Fatal(err)
	}
	return cred
}

var pollFast = &runtime.PollUntilDoneOptions{Frequency: kvPollFreq}

func TestSDKInterop(t *testing.T) { forEachSDKBackend(t, testSDKInterop) }

func testSDKInterop(t *testing.T, sf *sdkFixture) {
	ctx := context.Background()
	sub := sf.creds.SubscriptionID
	secret := sf.secretCredential(t)
	cert := sf.certCredential(t)

	// armresources: providers and groups, signed in with the secret.
	providers, err := armresources.NewProvidersClient(sub, secret, sf.armOptions())
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{keyhold.NamespaceKeyVault, keyhold.NamespacePowerPlatform} {
		reg, err := providers.Register(ctx, ns, nil)
		if err != nil {
			t.Fatalf("Register(%s): %v", ns, err)
		}
		if reg.Namespace == nil || !strings.EqualFold(*reg.Namespace, ns) {
			t.Fatalf("Register(%s) = %+v", ns, reg.Provider)
		}
	}
	groups, err := armresources.NewResourceGroupsClient(sub, secret, sf.armOptions())
	if err != nil {
		t.Fatal(err)
	}
	g, err := groups.CreateOrUpdate(ctx, "sdk-rg", armresources.ResourceGroup{Location: to.Ptr("westeurope"), Tags: map[string]*string{"env": to.Ptr("test")}}, nil)
	if err != nil {
		t.Fatalf("CreateOrUpdate group: %v", err)
	}
	if *g.Name != "sdk-rg" || *g.Location != "westeurope" || *g.ID != "/subscriptions/"+sub+"/resourceGroups/sdk-rg" {
		t.Fatalf("group = %+v", g.ResourceGroup)
	}
	if _, err := groups.Get(ctx, "sdk-rg", nil); err != nil {
		t.Fatalf("Get group: %v", err)
	}
	var names []string
	for pg := groups.NewListPager(nil); pg.More(); {
		page, err := pg.NextPage(ctx)
		if err != nil {
			t.Fatalf("list groups: %v", err)
		}
		for _, g := range page.Value {
			names = append(names, *g.Name)
		}
	}
	if !slices.Contains(names, "sdk-rg") {
		t.Fatalf("groups = %v", names)
	}

	// A template deployment, through the generic resources client: its
	// long-running PUT is followed by azcore's poller.
	resources, err := armresources.NewClient(sub, secret, sf.armOptions())
	if err != nil {
		t.Fatal(err)
	}
	var template, params map[string]any
	mustJSON(t, `{"$schema":"https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#","contentVersion":"1.0.0.0",
	  "parameters":{"vaultName":{"type":"string"}},
	  "resources":[{"type":"Microsoft.KeyVault/vaults","apiVersion":"2023-07-01","name":"[parameters('vaultName')]","location":"[resourceGroup().location]",
	    "properties":{"tenantId":"[subscription().tenantId]","sku":{"family":"A","name":"standard"},"enableRbacAuthorization":true,
	    "enablePurgeProtection":true,"softDeleteRetentionInDays":7}}]}`, &template)
	mustJSON(t, `{"vaultName":{"value":"templated-kv"}}`, &params)
	deploymentID := "/subscriptions/" + sub + "/resourceGroups/sdk-rg/providers/Microsoft.Resources/deployments/sdk-deploy"
	dp, err := resources.BeginCreateOrUpdateByID(ctx, deploymentID, "2024-03-01", armresources.GenericResource{
		Properties: map[string]any{"mode": "Incremental", "template": template, "parameters": params}}, nil)
	if err != nil {
		t.Fatalf("BeginCreateOrUpdateByID deployment: %v", err)
	}
	deployed, err := dp.PollUntilDone(ctx, pollFast)
	if err != nil {
		t.Fatalf("deployment PollUntilDone: %v", err)
	}
	props, _ := deployed.Properties.(map[string]any)
	if *deployed.ID != deploymentID || props["provisioningState"] != "Succeeded" {
		t.Fatalf("deployment = %s %+v", *deployed.ID, deployed.Properties)
	}
	templatedID := "/subscriptions/" + sub + "/resourceGroups/sdk-rg/providers/Microsoft.KeyVault/vaults/templated-kv"
	if out, _ := json.Marshal(props["outputResources"]); !strings.Contains(string(out), templatedID) {
		t.Fatalf("outputResources = %s, want %s", out, templatedID)
	}

	// armauthorization: role definitions, and an assignment for a new
	// service principal on the templated vault, signed in with the
	// certificate.
	defs, err := armauthorization.NewRoleDefinitionsClient(cert, sf.armOptions())
	if err != nil {
		t.Fatal(err)
	}
	subScope := "/subscriptions/" + sub
	encUser, _ := keyhold.FindRoleDefinition(keyhold.RoleKeyVaultCryptoServiceEncryptUser)
	def, err := defs.Get(ctx, subScope, encUser.ID, nil)
	if err != nil {
		t.Fatalf("RoleDefinitions.Get: %v", err)
	}
	if *def.Properties.RoleName != keyhold.RoleKeyVaultCryptoServiceEncryptUser || *def.ID != keyhold.RoleDefinitionID(sub, encUser.ID) {
		t.Fatalf("role definition = %s %s", *def.ID, *def.Properties.RoleName)
	}
	var roleNames []string
	for pg := defs.NewListPager(subScope, nil); pg.More(); {
		page, err := pg.NextPage(ctx)
		if err != nil {
			t.Fatalf("list role definitions: %v", err)
		}
		for _, d := range page.Value {
			roleNames = append(roleNames, *d.Properties.RoleName)
		}
	}
	if !slices.Contains(roleNames, keyhold.RoleKeyVaultAdministrator) {
		t.Fatalf("role definitions = %v", roleNames)
	}
	sp, err := sf.client.CreateServicePrincipal(ctx, "sdk-app")
	if err != nil {
		t.Fatal(err)
	}
	assigns, err := armauthorization.NewRoleAssignmentsClient(sub, cert, sf.armOptions())
	if err != nil {
		t.Fatal(err)
	}
	assignName := uuid.NewString()
	ra, err := assigns.Create(ctx, templatedID, assignName, armauthorization.RoleAssignmentCreateParameters{Properties: &armauthorization.RoleAssignmentProperties{
		RoleDefinitionID: def.ID, PrincipalID: to.Ptr(sp.Principal.ID), PrincipalType: to.Ptr(armauthorization.PrincipalTypeServicePrincipal)}}, nil)
	if err != nil {
		t.Fatalf("RoleAssignments.Create: %v", err)
	}
	if *ra.Name != assignName || *ra.Properties.PrincipalID != sp.Principal.ID || !strings.EqualFold(*ra.Properties.Scope, templatedID) {
		t.Fatalf("role assignment = %s %+v", *ra.Name, ra.Properties)
	}
	var found bool
	for pg := assigns.NewListForScopePager(templatedID, &armauthorization.RoleAssignmentsClientListForScopeOptions{Filter: to.Ptr("atScope()")}); pg.More(); {
		page, err := pg.NextPage(ctx)
		if err != nil {
			t.Fatalf("list role assignments: %v", err)
		}
		for _, a := range page.Value {
			found = found || *a.Name == assignName
		}
	}
	if !found {
		t.Fatal("the new role assignment is not listed at its scope")
	}
	if _, err := assigns.Delete(ctx, templatedID, assignName, nil); err != nil {
		t.Fatalf("RoleAssignments.Delete: %v", err)
	}

	// armkeyvault, signed in with the certificate: a vault with access
	// policies (the poller), policies added, network rules set, the vault
	// deleted, listed and read as deleted, and purged (a poller again).
	vaults, err := armkeyvault.NewVaultsClient(sub, cert, sf.armOptions())
	if err != nil {
		t.Fatal(err)
	}
	vp, err := vaults.BeginCreateOrUpdate(ctx, "sdk-rg", "sdk-kv", armkeyvault.VaultCreateOrUpdateParameters{Location: to.Ptr("westeurope"),
		Properties: &armkeyvault.VaultProperties{TenantID: to.Ptr(sf.creds.TenantID),
			SKU: &armkeyvault.SKU{Family: to.Ptr(armkeyvault.SKUFamilyA), Name: to.Ptr(armkeyvault.SKUNameStandard)},
			AccessPolicies: []*armkeyvault.AccessPolicyEntry{{TenantID: to.Ptr(sf.creds.TenantID), ObjectID: to.Ptr(sf.adminID),
				Permissions: &armkeyvault.Permissions{Keys: []*armkeyvault.KeyPermissions{to.Ptr(armkeyvault.KeyPermissionsAll)}}}}}}, nil)
	if err != nil {
		t.Fatalf("vault BeginCreateOrUpdate: %v", err)
	}
	v, err := vp.PollUntilDone(ctx, pollFast)
	if err != nil || *v.Properties.ProvisioningState != armkeyvault.VaultProvisioningStateSucceeded {
		t.Fatalf("vault PollUntilDone = %+v, %v", v, err)
	}
	ap, err := vaults.UpdateAccessPolicy(ctx, "sdk-rg", "sdk-kv", armkeyvault.AccessPolicyUpdateKindAdd, armkeyvault.VaultAccessPolicyParameters{
		Properties: &armkeyvault.VaultAccessPolicyProperties{AccessPolicies: []*armkeyvault.AccessPolicyEntry{{TenantID: to.Ptr(sf.creds.TenantID),
			ObjectID: to.Ptr(sp.Principal.ID), Permissions: &armkeyvault.Permissions{Keys: []*armkeyvault.KeyPermissions{
				to.Ptr(armkeyvault.KeyPermissionsGet), to.Ptr(armkeyvault.KeyPermissionsWrapKey), to.Ptr(armkeyvault.KeyPermissionsUnwrapKey)}}}}}}, nil)
	if err != nil {
		t.Fatalf("UpdateAccessPolicy: %v", err)
	}
	if !slices.ContainsFunc(ap.Properties.AccessPolicies, func(e *armkeyvault.AccessPolicyEntry) bool { return *e.ObjectID == sp.Principal.ID }) {
		t.Fatalf("UpdateAccessPolicy = %+v", ap.Properties)
	}
	got, err := vaults.Get(ctx, "sdk-rg", "sdk-kv", nil)
	if err != nil || len(got.Properties.AccessPolicies) != 2 {
		t.Fatalf("vault after add: %+v, %v", got.Properties, err)
	}
	up, err := vaults.Update(ctx, "sdk-rg", "sdk-kv", armkeyvault.VaultPatchParameters{Properties: &armkeyvault.VaultPatchProperties{
		NetworkACLs: &armkeyvault.NetworkRuleSet{DefaultAction: to.Ptr(armkeyvault.NetworkRuleActionDeny), Bypass: to.Ptr(armkeyvault.NetworkRuleBypassOptionsAzureServices),
			IPRules: []*armkeyvault.IPRule{{Value: to.Ptr("203.0.113.0/24")}}}}}, nil)
	if err != nil {
		t.Fatalf("Update network rules: %v", err)
	}
	if n := up.Properties.NetworkACLs; *n.DefaultAction != armkeyvault.NetworkRuleActionDeny || len(n.IPRules) != 1 || *n.IPRules[0].Value != "203.0.113.0/24" {
		t.Fatalf("network rules = %+v", n)
	}
	if _, err := vaults.Delete(ctx, "sdk-rg", "sdk-kv", nil); err != nil {
		t.Fatalf("Delete vault: %v", err)
	}
	var deleted []string
	for pg := vaults.NewListDeletedPager(nil); pg.More(); {
		page, err := pg.NextPage(ctx)
		if err != nil {
			t.Fatalf("list deleted vaults: %v", err)
		}
		for _, d := range page.Value {
			deleted = append(deleted, *d.Name)
		}
	}
	if !slices.Contains(deleted, "sdk-kv") {
		t.Fatalf("deleted vaults = %v", deleted)
	}
	dv, err := vaults.GetDeleted(ctx, "sdk-kv", "westeurope", nil)
	if err != nil || *dv.Properties.VaultID != "/subscriptions/"+sub+"/resourceGroups/sdk-rg/providers/Microsoft.KeyVault/vaults/sdk-kv" {
		t.Fatalf("GetDeleted = %+v, %v", dv, err)
	}
	pp, err := vaults.BeginPurgeDeleted(ctx, "sdk-kv", "westeurope", nil)
	if err != nil {
		t.Fatalf("BeginPurgeDeleted: %v", err)
	}
	if _, err := pp.PollUntilDone(ctx, pollFast); err != nil {
		t.Fatalf("purge PollUntilDone: %v", err)
	}
	if _, err := vaults.GetDeleted(ctx, "sdk-kv", "westeurope", nil); err == nil {
		t.Fatal("the purged vault is still listed as deleted")
	}

	// Deleting the group is long-running too.
	gp, err := groups.BeginDelete(ctx, "sdk-rg", nil)
	if err != nil {
		t.Fatalf("BeginDelete group: %v", err)
	}
	if _, err := gp.PollUntilDone(ctx, pollFast); err != nil {
		t.Fatalf("group delete PollUntilDone: %v", err)
	}
	if _, err := groups.Get(ctx, "sdk-rg", nil); err == nil {
		t.Fatal("the deleted group is still there")
	}
}

func mustJSON(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatal(err)
	}
}

// TestSDKDeploymentAsyncOperation: a deployment's PUT names its operation
// in Azure-AsyncOperation, with Retry-After, as ARM's does; the status
// there is the run's (Succeeded, or Failed with the error), and a run
// replaced by a later PUT is no longer known.
func TestSDKDeploymentAsyncOperation(t *testing.T) {
	forEachSDKBackend(t, func(t *testing.T, sf *sdkFixture) {
		tok := sf.mgmtToken(t)
		sub := sf.creds.SubscriptionID
		if a := sf.jsonCall(t, "PUT", "/subscriptions/"+sub+"/resourceGroups/rg1?api-version=2021-04-01", tok, `{"location":"westeurope"}`); a.status != 201 {
			t.Fatalf("group: %d %s", a.status, a.body)
		}
		if a := sf.call(t, "POST", "/subscriptions/"+sub+"/providers/Microsoft.KeyVault/register?api-version=2021-04-01", tok, "", nil); a.status != 200 {
			t.Fatalf("register: %d %s", a.status, a.body)
		}
		path := "/subscriptions/" + sub + "/resourceGroups/rg1/providers/Microsoft.Resources/deployments/d1"
		deployVault := func(name string) answer {
			return sf.jsonCall(t, "PUT", path+"?api-version=2024-03-01", tok, `{"properties":{"mode":"Incremental","template":{"$schema":"https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#","contentVersion":"1.0.0.0",
			  "resources":[{"type":"Microsoft.KeyVault/vaults","apiVersion":"2023-07-01","name":"`+name+`","location":"westeurope",
			    "properties":{"tenantId":"[subscription().tenantId]","sku":{"family":"A","name":"standard"},"enableRbacAuthorization":true}}]}}}`)
		}
		status := func(a answer) (string, deploymentStatusJSON) {
			t.Helper()
			loc := a.header.Get("Azure-AsyncOperation")
			if !strings.HasPrefix(loc, sf.url+path+"/operationStatuses/") || !strings.HasSuffix(loc, "?api-version=2024-03-01") || a.header.Get("Retry-After") == "" {
				t.Fatalf("PUT answered %d with Azure-AsyncOperation %q, Retry-After %q", a.status, loc, a.header.Get("Retry-After"))
			}
			var st deploymentStatusJSON
			sa := sf.call(t, "GET", strings.TrimPrefix(loc, sf.url), tok, "", nil)
			if sa.status != 200 || json.Unmarshal(sa.body, &st) != nil {
				t.Fatalf("operation status: %d %s", sa.status, sa.body)
			}
			return loc, st
		}
		first := deployVault("async-kv")
		if first.status != 201 {
			t.Fatalf("deployment: %d %s", first.status, first.body)
		}
		firstLoc, st := status(first)
		if st.Status != keyhold.DeploymentSucceeded || st.Error != nil {
			t.Fatalf("status = %+v", st)
		}
		sf.clock.Advance(time.Second)
		// A second run whose vault name is invalid fails.
		second := deployVault("x")
		if second.status < 400 {
			t.Fatalf("bad deployment: %d %s", second.status, second.body)
		}
		if a := sf.call(t, "GET", path+"?api-version=2024-03-01", tok, "", nil); !strings.Contains(string(a.body), `"provisioningState":"Failed"`) {
			t.Fatalf("the failed deployment: %d %s", a.status, a.body)
		}
		// The first run's status is gone with it.
		sf.call(t, "GET", strings.TrimPrefix(firstLoc, sf.url), tok, "", nil).wantError(t, 404, keyhold.CodeNotFound, "only its latest run")
	})
}

// TestSDKRegistersProvider: with default options, the SDK registers a
// resource provider that the subscription lacks (azcore's registration
// policy, on 409 MissingSubscriptionRegistration) and retries: creating a
// vault needs no registration beforehand.
func TestSDKRegistersProvider(t *testing.T) {
	sf := newSDKFixtureOn(t, storetest.OpenSQLite(t))
	ctx := context.Background()
	cred := sf.secretCredential(t)
	groups, err := armresources.NewResourceGroupsClient(sf.creds.SubscriptionID, cred, sf.armOptions())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := groups.CreateOrUpdate(ctx, "auto-rg", armresources.ResourceGroup{Location: to.Ptr("westeurope")}, nil); err != nil {
		t.Fatal(err)
	}
	vaults, err := armkeyvault.NewVaultsClient(sf.creds.SubscriptionID, cred, sf.armOptions())
	if err != nil {
		t.Fatal(err)
	}
	vp, err := vaults.BeginCreateOrUpdate(ctx, "auto-rg", "auto-kv", armkeyvault.VaultCreateOrUpdateParameters{Location: to.Ptr("westeurope"),
		Properties: &armkeyvault.VaultProperties{TenantID: to.Ptr(sf.creds.TenantID), EnableRbacAuthorization: to.Ptr(true),
			SKU: &armkeyvault.SKU{Family: to.Ptr(armkeyvault.SKUFamilyA), Name: to.Ptr(armkeyvault.SKUNameStandard)}}}, nil)
	if err != nil {
		t.Fatalf("BeginCreateOrUpdate without registration: %v", err)
	}
	if _, err := vp.PollUntilDone(ctx, pollFast); err != nil {
		t.Fatal(err)
	}
	providers, err := armresources.NewProvidersClient(sf.creds.SubscriptionID, cred, sf.armOptions())
	if err != nil {
		t.Fatal(err)
	}
	p, err := providers.Get(ctx, keyhold.NamespaceKeyVault, nil)
	if err != nil || *p.RegistrationState != "Registered" {
		t.Fatalf("Microsoft.KeyVault = %+v, %v", p.Provider, err)
	}
}
