package http

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"io"
	"math/big"
	nethttp "net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/keyvault/armkeyvault"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/hsm/hsmtest"
	"github.com/keyhold/keyhold/mhsm"
	"github.com/keyhold/keyhold/sqlstore/storetest"
	"github.com/keyhold/keyhold/vault"
)

// newHSMFixtureOn is newKVFixtureOn whose server also serves the Managed
// HSM, over the test SoftHSM2 token.
func newHSMFixtureOn(t *testing.T, store keyhold.Store) *kvFixture {
	t.Helper()
	tok := hsmtest.Token(t)
	kf := &kvFixture{rg: "keys"}
	kf.fixture = newFixtureOn(t, store, func(f *fixture) {
		master, err := crypt.NewKey()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(master.Destroy)
		kf.v, err = vault.New(vault.Config{Store: f.store, MasterKey: master, Clock: f.clock, BaseURL: f.url})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { kf.v.Close() })
		h, err := mhsm.New(mhsm.Config{Store: f.store, Clock: f.clock, BaseURL: f.url, HSM: tok})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		f.srv.KeyVault = KeyVaultAPI{Vaults: kf.v, Lookup: storeLookup(f.store)}
		f.srv.ManagedHSM = ManagedHSMAPI{HSMs: h}
	})
	ctx := context.Background()
	err := kf.store.Update(ctx, func(tx keyhold.Tx) error {
		admin, err := tx.PrincipalByAppID(ctx, kf.creds.TenantID, kf.creds.ClientID)
		if err != nil {
			return err
		}
		kf.adminID = admin.ID
		if err := tx.PutProviderRegistration(ctx, &keyhold.ProviderRegistration{SubscriptionID: kf.creds.SubscriptionID,
			Namespace: keyhold.NamespaceKeyVault, State: keyhold.ProviderRegistered, UpdatedAt: kf.clock.Now()}); err != nil {
			return err
		}
		if err := tx.CreateResourceGroup(ctx, &keyhold.ResourceGroup{SubscriptionID: kf.creds.SubscriptionID, Name: kf.rg,
			Location: "westeurope", CreatedAt: kf.clock.Now()}); err != nil {
			return err
		}
		return kf.assign(ctx, tx, admin.ID, keyhold.RoleOwner, "/subscriptions/"+kf.creds.SubscriptionID)
	})
	if err != nil {
		t.Fatal(err)
	}
	return kf
}

func (kf *kvFixture) hsmsClient(t *testing.T) *armkeyvault.ManagedHsmsClient {
	t.Helper()
	c, err := armkeyvault.NewManagedHsmsClient(kf.creds.SubscriptionID, kf.credential(), &arm.ClientOptions{
		ClientOptions: policy.ClientOptions{
			Cloud: cloud.Configuration{Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
				cloud.ResourceManager: {Endpoint: kf.url, Audience: string(keyhold.AudienceManagement)},
			}},
			Transport: kf.client.HTTPClient(),
			Retry:     policy.RetryOptions{MaxRetries: -1},
		},
		DisableRPRegistration: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// hsmCall sends a data-plane request to an HSM with a Managed HSM token
// and returns the status and body.
func (kf *kvFixture) hsmCall(t *testing.T, method, url string, body any) (int, []byte) {
	t.Helper()
	tok, err := kf.client.Token(context.Background(), string(keyhold.AudienceManagedHSM)+"/.default")
	if err != nil {
		t.Fatal(err)
	}
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := nethttp.NewRequest(method, url, rd)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := kf.client.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// holderCert is a share holder's self-signed certificate and key.
func holderCert(t *testing.T) (*rsa.PrivateKey, string) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sd holder"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return k, base64.StdEncoding.EncodeToString(der)
}

func TestManagedHSMInterop(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		kf := newHSMFixtureOn(t, open(t))
		ctx := context.Background()
		hc := kf.hsmsClient(t)

		// ARM, through armkeyvault's ManagedHsmsClient.
		params := armkeyvault.ManagedHsm{
			Location: to.Ptr("West Europe"),
			SKU:      &armkeyvault.ManagedHsmSKU{Family: to.Ptr(armkeyvault.ManagedHsmSKUFamilyB), Name: to.Ptr(armkeyvault.ManagedHsmSKUNameStandardB1)},
			Properties: &armkeyvault.ManagedHsmProperties{
				TenantID: to.Ptr(kf.creds.TenantID), InitialAdminObjectIDs: []*string{to.Ptr(kf.adminID)},
				EnablePurgeProtection: to.Ptr(true), SoftDeleteRetentionInDays: to.Ptr[int32](7),
			},
		}
		poller, err := hc.BeginCreateOrUpdate(ctx, kf.rg, "contoso-hsm", params, nil)
		if err != nil {
			t.Fatalf("BeginCreateOrUpdate: %v", err)
		}
		created, err := poller.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: kvPollFreq})
		if err != nil {
			t.Fatalf("PollUntilDone: %v", err)
		}
		p := created.Properties
		hsmURI := *p.HsmURI
		if *created.Type != "Microsoft.KeyVault/managedHSMs" || !strings.HasPrefix(hsmURI, "https://contoso-hsm.managedhsm.localhost:") ||
			*p.SecurityDomainProperties.ActivationStatus != armkeyvault.ActivationStatusNotActivated || !*p.EnablePurgeProtection {
			t.Fatalf("created = %+v %+v", created.ManagedHsm, p)
		}
		got, err := hc.Get(ctx, kf.rg, "contoso-hsm", nil)
		if err != nil || *got.Name != "contoso-hsm" {
			t.Fatalf("Get = %v", err)
		}
		pager := hc.NewListByResourceGroupPager(kf.rg, nil)
		page, err := pager.NextPage(ctx)
		if err != nil || len(page.Value) != 1 {
			t.Fatalf("list = %v", err)
		}

		// The data plane, with azkeys' default options: inactive first.
		kc, err := azkeys.NewClient(hsmURI, kf.credential(), &azkeys.ClientOptions{
			ClientOptions: azcore.ClientOptions{Transport: kf.client.HTTPClient(), Retry: policy.RetryOptions{MaxRetries: -1}}})
		if err != nil {
			t.Fatal(err)
		}
		rsaHSM := azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSAHSM), KeySize: to.Ptr[int32](2048)}
		_, err = kc.CreateKey(ctx, "cmk", rsaHSM, nil)
		wantResponseError(t, "CreateKey before activation", err, nethttp.StatusForbidden, keyhold.CodeForbidden)

		// Activation: the security domain, to three certificates, quorum 2.
		var holders []*rsa.PrivateKey
		var certs []map[string]any
		for range 3 {
			k, c := holderCert(t)
			holders, certs = append(holders, k), append(certs, map[string]any{"x5c": []string{c}})
		}
		status, body := kf.hsmCall(t, "POST", hsmURI+"securitydomain/download?api-version=7.4", map[string]any{"certificates": certs[:2], "required": 2})
		if status != nethttp.StatusBadRequest {
			t.Fatalf("download to 2 keys: %d %s", status, body)
		}
		status, body = kf.hsmCall(t, "POST", hsmURI+"securitydomain/download?api-version=7.4", map[string]any{"certificates": certs, "required": 2})
		if status != nethttp.StatusOK {
			t.Fatalf("download: %d %s", status, body)
		}
		var out struct{ Value string }
		var file struct {
			Version  string
			Required int
			Shares   []struct {
				Kid   string
				X     int
				Value string
			}
		}
		if err := json.Unmarshal(body, &out); err != nil || json.Unmarshal([]byte(out.Value), &file) != nil ||
			file.Version != mhsm.SecurityDomainVersion || file.Required != 2 || len(file.Shares) != 3 {
			t.Fatalf("download body %s", body)
		}
		if got, _ := hc.Get(ctx, kf.rg, "contoso-hsm", nil); *got.Properties.SecurityDomainProperties.ActivationStatus != armkeyvault.ActivationStatusActive {
			t.Fatal("the HSM is not active after the download")
		}

		// Local RBAC: a bad role is refused, then the admin takes Crypto User.
		raURL := hsmURI + "providers/Microsoft.Authorization/roleAssignments/"
		status, body = kf.hsmCall(t, "PUT", raURL+"6f1c2a3b-0000-4000-8000-000000000001?api-version=7.4",
			map[string]any{"properties": map[string]string{"roleDefinitionId": "/Microsoft.KeyVault/providers/Microsoft.Authorization/roleDefinitions/00000000-0000-0000-0000-000000000000", "principalId": kf.adminID}})
		if status != nethttp.StatusBadRequest || !bytes.Contains(body, []byte("BadParameter")) {
			t.Fatalf("a bad role: %d %s", status, body)
		}
		status, body = kf.hsmCall(t, "PUT", raURL+"6f1c2a3b-0000-4000-8000-000000000001?api-version=7.4",
			map[string]any{"properties": map[string]string{"roleDefinitionId": keyhold.HSMRoleDefinitionPrefix + keyhold.RoleHSMCryptoUser, "principalId": kf.adminID}})
		if status != nethttp.StatusCreated {
			t.Fatalf("assign Crypto User: %d %s", status, body)
		}
		status, body = kf.hsmCall(t, "GET", strings.TrimSuffix(raURL, "/")+"?api-version=7.4", nil)
		if status != nethttp.StatusOK || strings.Count(string(body), keyhold.RoleHSMCryptoUser) != 1 || strings.Count(string(body), keyhold.RoleHSMAdministrator) != 1 {
			t.Fatalf("list assignments: %d %s", status, body)
		}

		// Keys, through azkeys.
		ck, err := kc.CreateKey(ctx, "cmk", rsaHSM, nil)
		if err != nil {
			t.Fatalf("CreateKey: %v", err)
		}
		kid := *ck.Key.KID
		if *ck.Key.Kty != azkeys.KeyTypeRSAHSM || !strings.HasPrefix(string(kid), hsmURI+"keys/cmk/") || *ck.Attributes.RecoveryLevel != "CustomizedRecoverable" {
			t.Fatalf("created %+v %+v", ck.Key, ck.Attributes)
		}
		secret := make([]byte, 32)
		rand.Read(secret)
		wr, err := kc.WrapKey(ctx, "cmk", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: secret}, nil)
		if err != nil || *wr.KID != kid {
			t.Fatalf("WrapKey: %v", err)
		}
		un, err := kc.UnwrapKey(ctx, "cmk", kid.Version(), azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: wr.Result}, nil)
		if err != nil || !bytes.Equal(un.Result, secret) {
			t.Fatalf("UnwrapKey: %v", err)
		}
		rot, err := kc.RotateKey(ctx, "cmk", nil)
		if err != nil || rot.Key.KID.Version() == kid.Version() {
			t.Fatalf("RotateKey: %v", err)
		}
		n := 0
		for vp := kc.NewListKeyPropertiesVersionsPager("cmk", nil); vp.More(); {
			pg, err := vp.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			n += len(pg.Value)
		}
		if n != 2 {
			t.Fatalf("%d versions", n)
		}
		_, err = kc.UpdateKey(ctx, "cmk", kid.Version(), azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Enabled: to.Ptr(false)}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = kc.UnwrapKey(ctx, "cmk", kid.Version(), azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: wr.Result}, nil)
		wantResponseError(t, "UnwrapKey with a disabled version", err, nethttp.StatusForbidden, keyhold.CodeForbidden)
		if _, err := kc.DeleteKey(ctx, "cmk", nil); err != nil {
			t.Fatal(err)
		}
		// The crypto user can't recover; the crypto officer can.
		_, err = kc.RecoverDeletedKey(ctx, "cmk", nil)
		wantResponseError(t, "RecoverDeletedKey as crypto user", err, nethttp.StatusForbidden, keyhold.CodeForbidden)
		status, body = kf.hsmCall(t, "PUT", raURL+"6f1c2a3b-0000-4000-8000-000000000002?api-version=7.4",
			map[string]any{"properties": map[string]string{"roleDefinitionId": keyhold.HSMRoleDefinitionPrefix + keyhold.RoleHSMCryptoOfficer, "principalId": kf.adminID}})
		if status != nethttp.StatusCreated {
			t.Fatalf("assign Crypto Officer: %d %s", status, body)
		}
		if _, err := kc.RecoverDeletedKey(ctx, "cmk", nil); err != nil {
			t.Fatalf("RecoverDeletedKey: %v", err)
		}

		// The HSM deleted: the data plane answers 404; purge protection
		// holds; recovery brings it back.
		dp, err := hc.BeginDelete(ctx, kf.rg, "contoso-hsm", nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := dp.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: kvPollFreq}); err != nil {
			t.Fatal(err)
		}
		_, err = kc.GetKey(ctx, "cmk", "", nil)
		wantResponseError(t, "GetKey of a deleted HSM", err, nethttp.StatusNotFound, keyhold.CodeVaultNotFound)
		del, err := hc.GetDeleted(ctx, "contoso-hsm", "westeurope", nil)
		if err != nil || !*del.Properties.PurgeProtectionEnabled {
			t.Fatalf("GetDeleted: %v", err)
		}
		pp, err := hc.BeginPurgeDeleted(ctx, "contoso-hsm", "westeurope", nil)
		if err == nil {
			_, err = pp.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: kvPollFreq})
		}
		wantResponseError(t, "purge under purge protection", err, nethttp.StatusConflict, keyhold.CodeConflict)
		params.Properties.CreateMode = to.Ptr(armkeyvault.CreateModeRecover)
		poller, err = hc.BeginCreateOrUpdate(ctx, kf.rg, "contoso-hsm", params, nil)
		if err == nil {
			_, err = poller.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: kvPollFreq})
		}
		if err != nil {
			t.Fatalf("recover: %v", err)
		}
		if _, err := kc.GetKey(ctx, "cmk", "", nil); err != nil {
			t.Fatalf("GetKey after recovery: %v", err)
		}
	})
}
