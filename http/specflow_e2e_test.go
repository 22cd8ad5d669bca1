package http_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"io"
	nethttp "net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	khttp "github.com/keyhold/keyhold/http"
)

// callAs sends a JSON request (body "" for none) with c's token for
// audience and returns the status and the answer.
func (s *cmkStack) callAs(t *testing.T, c *khttp.Client, method, path string, audience keyhold.Audience, body string) (int, []byte) {
	t.Helper()
	tok, err := c.Token(context.Background(), string(audience)+"/.default")
	if err != nil {
		t.Fatal(err)
	}
	var rb io.Reader
	if body != "" {
		rb = strings.NewReader(body)
	}
	req, err := nethttp.NewRequest(method, s.url+path, rb)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.raw.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// specDeploymentBody is the spec's template (deploy/testdata/spec-template.txt)
// with its placeholders filled in, as a deployment body.
func specDeploymentBody(t *testing.T, name, location, vaultID, keyName string) string {
	t.Helper()
	raw, err := os.ReadFile("../deploy/testdata/spec-template.txt")
	if err != nil {
		t.Fatal(err)
	}
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	tmpl := strings.NewReplacer("{EnterprisePolicyName}", q(name), "{location where EnterprisePolicy needs to be created}", q(location),
		"{keyVaultId}", q(vaultID), "{keyName}", q(keyName)).Replace(string(raw))
	return `{"properties":{"mode":"Incremental","template":` + tmpl + `,"parameters":{}}}`
}

// TestSpecFlowEndToEnd walks the spec's whole flow over HTTPS against the
// real stack, with the key vault administrator (the bootstrap
// administrator) and a platform administrator (a service principal made
// through the directory API, Power Platform Administrator) kept apart.
func TestSpecFlowEndToEnd(t *testing.T) {
	s := newCMKStack(t)
	ctx := context.Background()
	kvAdmin := s.client
	sub := s.creds.SubscriptionID
	subPath := "/subscriptions/" + sub
	mgmt := keyhold.AudienceManagement

	// The platform administrator, a second principal.
	sp, err := kvAdmin.CreateServicePrincipal(ctx, "Contoso platform admin")
	if err != nil || sp.Principal == nil || sp.Principal.ID == "" || sp.Principal.AppID == "" || sp.Secret == "" {
		t.Fatalf("CreateServicePrincipal = %+v, %v", sp, err)
	}
	if _, err := kvAdmin.AssignDirectoryRole(ctx, sp.Principal.ID, keyhold.RolePowerPlatformAdministrator); err != nil {
		t.Fatalf("AssignDirectoryRole: %v", err)
	}
	pa, err := khttp.NewClient(s.url, nil, s.creds.TenantID, sp.Principal.AppID, sp.Secret)
	if err != nil {
		t.Fatal(err)
	}
	pa.HTTPClient().Transport = s.raw.Transport // trusts the test CA
	paID := sp.Principal.ID
	if paID == s.principalID(t) {
		t.Fatal("the platform administrator is the key vault administrator")
	}

	// Step 1 (key vault admin): a vault with purge protection and a key.
	makeVaultAndKey := func(vaultName, keyName string) string {
		t.Helper()
		vaultID := subPath + "/resourceGroups/cmk/providers/Microsoft.KeyVault/vaults/" + vaultName
		status, b := s.call(t, "PUT", vaultID+"?api-version=2023-07-01", mgmt, `{"location":"westeurope","properties":{"tenantId":"`+s.creds.TenantID+
			`","sku":{"family":"A","name":"standard"},"enableRbacAuthorization":true,"enableSoftDelete":true,"softDeleteRetentionInDays":90,"enablePurgeProtection":true}}`)
		var v struct {
			Properties struct {
				EnablePurgeProtection bool `json:"enablePurgeProtection"`
				EnableSoftDelete      bool `json:"enableSoftDelete"`
			} `json:"properties"`
		}
		if (status != 200 && status != 201) || json.Unmarshal(b, &v) != nil || !v.Properties.EnablePurgeProtection || !v.Properties.EnableSoftDelete {
			t.Fatalf("PUT vault %s: %d %s", vaultName, status, b)
		}
		// Owner manages the vault but may not make keys in it: the
		// platform administrator may not either.
		createKey := "/vaults/" + vaultName + "/keys/" + keyName + "/create?api-version=7.5"
		if status, b = s.callAs(t, pa, "POST", createKey, keyhold.AudienceVault, `{"kty":"RSA","key_size":2048}`); status != 403 {
			t.Fatalf("the platform administrator created a key: %d %s", status, b)
		}
		s.grant(t, vaultID, keyhold.RoleKeyVaultCryptoOfficer, s.principalID(t))
		status, b = s.call(t, "POST", createKey, keyhold.AudienceVault, `{"kty":"RSA","key_size":2048}`)
		var k struct {
			Key struct {
				Kid string `json:"kid"`
				Kty string `json:"kty"`
			} `json:"key"`
		}
		if status != 200 || json.Unmarshal(b, &k) != nil || k.Key.Kty != "RSA" || !strings.HasPrefix(k.Key.Kid, "https://"+vaultName+".vault.localhost:") || !strings.Contains(k.Key.Kid, "/keys/"+keyName+"/") {
			t.Fatalf("create key %s: %d %s", keyName, status, b)
		}
		return vaultID
	}

	// Step 2 (key vault admin): register the provider, then deploy the
	// spec's template.
	reg, err := kvAdmin.RegisterProvider(ctx, sub, keyhold.NamespacePowerPlatform)
	if err != nil || reg.State != keyhold.ProviderRegistered {
		t.Fatalf("RegisterProvider = %+v, %v", reg, err)
	}
	deployPolicy := func(name, deployment, vaultID, keyName string) *keyhold.EnterprisePolicy {
		t.Helper()
		status, b := s.call(t, "PUT", subPath+"/resourceGroups/cmk/providers/Microsoft.Resources/deployments/"+deployment+"?api-version=2021-04-01",
			mgmt, specDeploymentBody(t, name, "europe", vaultID, keyName))
		var d struct {
			Properties struct {
				ProvisioningState string `json:"provisioningState"`
				OutputResources   []struct {
					ID string `json:"id"`
				} `json:"outputResources"`
			} `json:"properties"`
		}
		policyID := subPath + "/resourceGroups/cmk/providers/Microsoft.PowerPlatform/enterprisePolicies/" + name
		if status != 201 || json.Unmarshal(b, &d) != nil || d.Properties.ProvisioningState != "Succeeded" ||
			len(d.Properties.OutputResources) != 1 || d.Properties.OutputResources[0].ID != policyID {
			t.Fatalf("deploy %s: %d %s", name, status, b)
		}
		pol, err := kvAdmin.Policies().Get(ctx, sub, "cmk", name)
		if err != nil || pol.ID() != policyID || pol.Kind != "Encryption" || pol.KeyVaultID != vaultID || pol.KeyName != keyName ||
			pol.PrincipalID == "" || !strings.HasPrefix(pol.SystemID, "/regions/europe/providers/Microsoft.PowerPlatform/enterprisePolicies/") {
			t.Fatalf("deployed policy %s = %+v, %v", name, pol, err)
		}
		return pol
	}
	// Step 3 (key vault admin): the policy's identity gets Key Vault
	// Crypto Service Encryption User on the vault.
	grantIdentity := func(pol *keyhold.EnterprisePolicy) {
		t.Helper()
		s.grant(t, pol.KeyVaultID, keyhold.RoleKeyVaultCryptoServiceEncryptUser, pol.PrincipalID)
	}
	// Step 4 (key vault admin): the platform administrator gets Reader on
	// the policy, and only then may read it (and, with an environment,
	// link to it).
	grantReader := func(pol *keyhold.EnterprisePolicy, envID string) {
		t.Helper()
		_, err := pa.Policies().Get(ctx, sub, "cmk", pol.Name)
		wantErrorCode(t, err, keyhold.CodeAuthorizationFailed)
		if envID != "" {
			_, err := pa.LinkPolicy(ctx, envID, pol.SystemID)
			wantErrorCode(t, err, keyhold.CodeForbidden)
		}
		s.grant(t, pol.ID(), keyhold.RoleReader, paID)
		if got, err := pa.Policies().Get(ctx, sub, "cmk", pol.Name); err != nil || got.SystemID != pol.SystemID {
			t.Fatalf("the platform administrator reads %s after the Reader grant: %+v, %v", pol.Name, got, err)
		}
	}

	vault1 := makeVaultAndKey("contoso-kv", "cmk")
	pol1 := deployPolicy("ContosoPolicy", "cmk-policy", vault1, "cmk")
	grantIdentity(pol1)

	grantReader(pol1, "")

	// Step 5 (platform admin): a Managed Environment with data, linked.
	env := &keyhold.Environment{DisplayName: "Contoso", Location: "europe", SKU: keyhold.SKUProduction, Managed: true}
	if err := pa.CreateEnvironment(ctx, env); err != nil {
		t.Fatalf("CreateEnvironment: %v", err)
	}
	if env.ID == "" || !env.Managed || env.KeyManagedBy != keyhold.KeyManagedByMicrosoft {
		t.Fatalf("created environment = %+v", env)
	}

	rows := map[string]string{"a1": `{"name":"Fabrikam"}`, "a2": `{"name":"Northwind","city":"Seattle"}`, "a3": `{"n":[1,2,3]}`}
	for id, data := range rows {
		if _, err := pa.PutRow(ctx, env.ID, "accounts", id, json.RawMessage(data)); err != nil {
			t.Fatalf("PutRow %s: %v", id, err)
		}
	}
	blob := make([]byte, 5<<19) // 2.5 MiB: three chunks
	if _, err := rand.Read(blob); err != nil {
		t.Fatal(err)
	}
	wantSum := sha256.Sum256(blob)
	if info, err := pa.PutFile(ctx, env.ID, "contracts.bin", bytes.NewReader(blob)); err != nil || info.Size != int64(len(blob)) {
		t.Fatalf("PutFile = %+v, %v", info, err)
	}

	checkData := func(when string) {
		t.Helper()
		for id, data := range rows {
			row, err := pa.GetRow(ctx, env.ID, "accounts", id)
			if err != nil || string(row.Data) != data {
				t.Fatalf("%s: row %s = %+v, %v; want %s", when, id, row, err, data)
			}
		}
		info, rc, err := pa.OpenFile(ctx, env.ID, "contracts.bin")
		if err != nil {
			t.Fatalf("%s: OpenFile: %v", when, err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || info.Size != int64(len(blob)) || sha256.Sum256(got) != wantSum || !bytes.Equal(got, blob) {
			t.Fatalf("%s: file read %d bytes (info %+v), %v; want the %d bytes written", when, len(got), info, err, len(blob))
		}
	}
	type cmkRef struct {
		PolicyID string `json:"policyId"`
		ID       string `json:"id"`
		SystemID string `json:"systemId"`
	}
	envJSON := func() (keyManagedBy string, cmk *cmkRef) {
		t.Helper()
		status, b := s.callAs(t, pa, "GET", "/providers/Microsoft.BusinessAppPlatform/scopes/admin/environments/"+env.ID, keyhold.AudiencePowerApps, "")
		var j struct {
			Properties struct {
				ProtectionStatus struct {
					KeyManagedBy string `json:"keyManagedBy"`
				} `json:"protectionStatus"`
				EnterprisePolicies *struct {
					CustomerManagedKeys *cmkRef `json:"customerManagedKeys"`
				} `json:"enterprisePolicies"`
			} `json:"properties"`
		}
		if status != 200 || json.Unmarshal(b, &j) != nil {
			t.Fatalf("GET environment: %d %s", status, b)
		}
		if ep := j.Properties.EnterprisePolicies; ep != nil {
			cmk = ep.CustomerManagedKeys
		}
		return j.Properties.ProtectionStatus.KeyManagedBy, cmk
	}
	wantLinked := func(when string, pol *keyhold.EnterprisePolicy) {
		t.Helper()
		by, cmk := envJSON()
		if by != string(keyhold.KeyManagedByCustomer) || cmk == nil || cmk.SystemID != pol.SystemID || !strings.EqualFold(cmk.ID, pol.ID()) ||
			!strings.HasSuffix(pol.SystemID, "/"+cmk.PolicyID) {
			t.Fatalf("%s: keyManagedBy %q, customerManagedKeys %+v; want Customer and %s", when, by, cmk, pol.SystemID)
		}
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	wait := func(what string, op *keyhold.Operation, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		done, err := pa.WaitOperation(wctx, op.ID, 0, nil)
		if err != nil || done.State != keyhold.OperationSucceeded {
			t.Fatalf("%s: %+v, %v", what, done, err)
		}
	}

	if by, cmk := envJSON(); by != string(keyhold.KeyManagedByMicrosoft) || cmk != nil {
		t.Fatalf("before the link: keyManagedBy %q, customerManagedKeys %+v", by, cmk)
	}
	checkData("before the link")
	op, err := pa.LinkPolicy(ctx, env.ID, pol1.SystemID)
	if err == nil && (op.Kind != keyhold.OpLink || op.Target != env.ID) {
		t.Fatalf("LinkPolicy = %+v", op)
	}
	wait("link", op, err)
	wantLinked("after the link", pol1)

	// Step 6 (platform admin): read the data, swap, unlink, read again.
	checkData("after the link")

	vault2 := makeVaultAndKey("fabrikam-kv", "cmk2")
	pol2 := deployPolicy("FabrikamPolicy", "cmk-policy-2", vault2, "cmk2")
	if pol2.SystemID == pol1.SystemID || pol2.PrincipalID == pol1.PrincipalID {
		t.Fatalf("the second policy shares the first's systemId or identity: %+v", pol2)
	}
	grantIdentity(pol2)
	grantReader(pol2, env.ID)
	wantLinked("after refusing the swap without Reader", pol1)
	op, err = pa.LinkPolicy(ctx, env.ID, pol2.SystemID)
	wait("swap", op, err)
	wantLinked("after the swap", pol2)
	if got, err := pa.FindEnvironment(ctx, env.ID); err != nil || got.KeyManagedBy != keyhold.KeyManagedByCustomer || got.PolicySystemID != pol2.SystemID ||
		got.LinkStatus != keyhold.LinkStatusLinked || got.State != keyhold.StateEnabled {
		t.Fatalf("after the swap FindEnvironment = %+v, %v", got, err)
	}
	checkData("after the swap")

	op, err = pa.UnlinkPolicy(ctx, env.ID, pol2.SystemID)
	wait("unlink", op, err)
	if by, cmk := envJSON(); by != string(keyhold.KeyManagedByMicrosoft) || cmk != nil {
		t.Fatalf("after the unlink: keyManagedBy %q, customerManagedKeys %+v; want Microsoft and none", by, cmk)
	}
	checkData("after the unlink")
}
