package crypt

import (
	"encoding/hex"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

func testRecordKey(t *testing.T) *RecordKey {
	t.Helper()
	r, err := NewRecordKey(testKey(t, 0x40))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Destroy)
	return r
}

func testVersion() *keyhold.KeyVersion {
	return &keyhold.KeyVersion{VaultName: "kv", Name: "cmk", Version: "0123456789abcdef0123456789abcdef", Type: keyhold.KeyTypeRSA,
		Size: 2048, N: []byte{0xc3, 0x01, 0x02}, E: 65537, KeyOps: []string{"wrapKey", "unwrapKey"}, Enabled: true,
		Expires: time.Date(2027, 1, 2, 3, 4, 5, 6, time.UTC), Material: []byte("sealed")}
}

// TestRecordSealVector pins the v1 seal of a key version, so that a change
// of the encoding, the label or the derivation can't pass unnoticed: every
// stored seal would stop verifying.
func TestRecordSealVector(t *testing.T) {
	r := testRecordKey(t)
	kv := testVersion()
	r.SealKeyVersion(kv)
	const want = "016e50505c03fedaa8e613b6f032a242c0f14930170a9ad431926e900c036ce153"
	if got := hex.EncodeToString(kv.MAC); got != want {
		t.Fatalf("seal = %s, want %s", got, want)
	}
	if err := r.CheckKeyVersion(kv); err != nil {
		t.Fatal(err)
	}
}

// TestRecordSealCoversEachField: changing any sealed field, or the seal,
// fails the check with CodeRecordIntegrity; fields outside the seal don't.
func TestRecordSealCoversEachField(t *testing.T) {
	r := testRecordKey(t)
	changes := map[string]func(kv *keyhold.KeyVersion){
		"vault":    func(kv *keyhold.KeyVersion) { kv.VaultName = "kv2" },
		"name":     func(kv *keyhold.KeyVersion) { kv.Name = "cmk2" },
		"version":  func(kv *keyhold.KeyVersion) { kv.Version = "f" + kv.Version[1:] },
		"type":     func(kv *keyhold.KeyVersion) { kv.Type = keyhold.KeyTypeRSAHSM },
		"size":     func(kv *keyhold.KeyVersion) { kv.Size = 4096 },
		"n":        func(kv *keyhold.KeyVersion) { kv.N = []byte{0xc3, 0x01, 0x03} },
		"e":        func(kv *keyhold.KeyVersion) { kv.E = 3 },
		"key_ops":  func(kv *keyhold.KeyVersion) { kv.KeyOps = append(kv.KeyOps, "encrypt") },
		"enabled":  func(kv *keyhold.KeyVersion) { kv.Enabled = false },
		"nbf":      func(kv *keyhold.KeyVersion) { kv.NotBefore = time.Unix(0, 0).UTC() },
		"exp":      func(kv *keyhold.KeyVersion) { kv.Expires = time.Time{} },
		"material": func(kv *keyhold.KeyVersion) { kv.Material = []byte("other") },
		"seal":     func(kv *keyhold.KeyVersion) { kv.MAC[5] ^= 1 },
		"no seal":  func(kv *keyhold.KeyVersion) { kv.MAC = nil },
		"format":   func(kv *keyhold.KeyVersion) { kv.MAC[0] = 2 },
		"short":    func(kv *keyhold.KeyVersion) { kv.MAC = kv.MAC[:20] },
	}
	for name, change := range changes {
		t.Run(name, func(t *testing.T) {
			kv := testVersion()
			r.SealKeyVersion(kv)
			change(kv)
			if err := r.CheckKeyVersion(kv); keyhold.ErrorCode(err) != keyhold.CodeRecordIntegrity {
				t.Fatalf("check after changing %s = %v, want %s", name, err, keyhold.CodeRecordIntegrity)
			}
		})
	}
	kv := testVersion()
	r.SealKeyVersion(kv)
	kv.CreatedAt, kv.UpdatedAt = time.Now(), time.Now()
	if err := r.CheckKeyVersion(kv); err != nil {
		t.Fatalf("dates outside the seal changed: %v", err)
	}
}

// TestRecordSealKinds: a seal made for one kind of record, or under
// another master key, never verifies.
func TestRecordSealKinds(t *testing.T) {
	r := testRecordKey(t)
	k := &keyhold.Key{VaultName: "kv", Name: "cmk", Type: keyhold.KeyTypeRSA, Size: 2048, CurrentVersion: "v1"}
	r.SealKey(k)
	if err := r.CheckKey(k); err != nil {
		t.Fatal(err)
	}
	k.CurrentVersion = "v2"
	if err := r.CheckKeyState(k); err != nil {
		t.Fatalf("the state check looks at the current version: %v", err)
	}
	if err := r.CheckKey(k); keyhold.ErrorCode(err) != keyhold.CodeRecordIntegrity {
		t.Fatalf("changed current version: %v", err)
	}
	k.CurrentVersion = "v1"
	k.DeletedAt = time.Unix(1, 0)
	if err := r.CheckKeyState(k); keyhold.ErrorCode(err) != keyhold.CodeRecordIntegrity {
		t.Fatalf("changed deletion: %v", err)
	}

	// The current-version seal of key "kv"/"cmk"/"v1" is not a vault seal,
	// nor a policy's, even over look-alike fields.
	v := &keyhold.Vault{Name: "kv"}
	_, v.MAC = twoSeals(k.MAC)
	if err := r.CheckVault(v); keyhold.ErrorCode(err) != keyhold.CodeRecordIntegrity {
		t.Fatalf("a key seal passed as a vault's: %v", err)
	}
	p := &keyhold.EnterprisePolicy{SubscriptionID: "s", ResourceGroup: "g", Name: "p", KeyVaultID: "/x/vaults/kv", KeyName: "cmk"}
	r.SealPolicy(p)
	if err := r.CheckPolicy(p); err != nil {
		t.Fatal(err)
	}
	other, err := NewRecordKey(testKey(t, 0x41))
	if err != nil {
		t.Fatal(err)
	}
	if err := other.CheckPolicy(p); keyhold.ErrorCode(err) != keyhold.CodeRecordIntegrity {
		t.Fatalf("a seal under another master key passed: %v", err)
	}
	for _, change := range []func(){
		func() { p.KeyVaultID = "/x/vaults/kv2" },
		func() { p.KeyName = "cmk2" },
		func() { p.KeyVersion = "v" },
		func() { p.PrincipalID = "mi" },
		func() { p.TenantID = "t" },
		func() { p.SystemID = "sys" },
	} {
		q := *p
		change()
		if err := r.CheckPolicy(p); keyhold.ErrorCode(err) != keyhold.CodeRecordIntegrity {
			t.Fatalf("changed binding %+v passed: %v", p, err)
		}
		*p = q
	}
	p.HealthStatus, p.Tags = keyhold.HealthUnhealthy, map[string]string{"a": "b"}
	if err := r.CheckPolicy(p); err != nil {
		t.Fatalf("health and tags are outside the seal: %v", err)
	}
}

// TestSealPolicyExternal: every field of an external vault is in the
// policy's seal (a database writer could otherwise redirect wrapping to a
// vault of their own), and removing the external vault (back to a
// built-in one with the same other fields) breaks the seal too.
func TestSealPolicyExternal(t *testing.T) {
	r, err := NewRecordKey(testKey(t, 0x42))
	if err != nil {
		t.Fatal(err)
	}
	p := &keyhold.EnterprisePolicy{SubscriptionID: "s", ResourceGroup: "g", Name: "p", KeyName: "cmk",
		External: &keyhold.ExternalKeyVault{URI: "https://customer.example", TenantID: "t1", ClientID: "c1", AuthorityHost: "https://login.example/"}}
	r.SealPolicy(p)
	if err := r.CheckPolicy(p); err != nil {
		t.Fatal(err)
	}
	for name, change := range map[string]func(){
		"uri":       func() { p.External.URI = "https://attacker.example" },
		"tenant":    func() { p.External.TenantID = "t2" },
		"client":    func() { p.External.ClientID = "c2" },
		"authority": func() { p.External.AuthorityHost = "https://attacker.example/" },
		"removed":   func() { p.External = nil },
	} {
		q, x := *p, *p.External
		change()
		if err := r.CheckPolicy(p); keyhold.ErrorCode(err) != keyhold.CodeRecordIntegrity {
			t.Errorf("%s: changed external vault passed: %v", name, err)
		}
		*p = q
		p.External = &x
	}
	// A built-in policy's seal does not verify the same policy with an
	// external vault of empty fields added.
	b := &keyhold.EnterprisePolicy{SubscriptionID: "s", ResourceGroup: "g", Name: "p", KeyName: "cmk"}
	r.SealPolicy(b)
	b.External = &keyhold.ExternalKeyVault{}
	if err := r.CheckPolicy(b); keyhold.ErrorCode(err) != keyhold.CodeRecordIntegrity {
		t.Fatalf("an external vault added to a built-in policy passed: %v", err)
	}
}
