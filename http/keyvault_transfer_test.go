package http

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"math/big"
	"net/http"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/hsm/hsmtest"
	"github.com/keyhold/keyhold/sqlstore/storetest"
	"github.com/keyhold/keyhold/vault"
)

// TestSDKImportTransferBlob is the BYOK import of an HSM-protected key
// with the official azkeys client (default options) over HTTPS, on both
// databases: a KEK created with key_ops [import], a blob made to its
// public key, imported with ImportKey(JSONWebKey{Kty: RSA-HSM, T: blob}),
// then used both ways against the test's copy of the key; a tampered blob
// and a wrap with the KEK are refused and leave nothing behind.
func TestSDKImportTransferBlob(t *testing.T) {
	hsm := &vault.PKCS11Config{Module: hsmtest.Module(t), TokenLabel: hsmtest.Label, PIN: hsmtest.PIN}
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		kf := newKVFixtureHSM(t, open(t), hsm)
		v := &keyhold.Vault{SubscriptionID: kf.creds.SubscriptionID, ResourceGroup: kf.rg, Name: "kv-xfer", Location: "westeurope",
			EnableRbacAuthorization: true, SKU: vault.SKUPremium}
		if _, err := kf.v.PutVault(kf.admin(), v); err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		c := kf.keysClient(t, kf.vaultURI(v.Name))

		kek, err := c.CreateKey(ctx, "kek", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSAHSM), KeySize: to.Ptr(int32(2048)),
			KeyOps: []*azkeys.KeyOperation{to.Ptr(azkeys.KeyOperationImport)}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(kek.Key.KeyOps) != 1 || *kek.Key.KeyOps[0] != azkeys.KeyOperationImport {
			t.Fatalf("KEK key_ops: %v", kek.Key.KeyOps)
		}
		kekPub := &rsa.PublicKey{N: new(big.Int).SetBytes(kek.Key.N), E: int(new(big.Int).SetBytes(kek.Key.E).Int64())}
		target, err := crypt.GenerateRSAKey(2048)
		if err != nil {
			t.Fatal(err)
		}
		blob, err := crypt.NewTransferBlob(kekPub, string(*kek.Key.KID), target)
		if err != nil {
			t.Fatal(err)
		}

		// Refusals: the KEK wraps nothing; a tampered blob is a bad
		// parameter, and no key is made.
		_, err = c.WrapKey(ctx, "kek", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: []byte("k")}, nil)
		wantSDKStatus(t, err, http.StatusForbidden)
		bad := []byte(string(blob))
		i := strings.Index(string(bad), `"ciphertext":"`) + len(`"ciphertext":"`) + 400 // in the key wrap
		if bad[i] == 'A' {
			bad[i] = 'B'
		} else {
			bad[i] = 'A'
		}
		_, err = c.ImportKey(ctx, "byok", azkeys.ImportKeyParameters{Key: &azkeys.JSONWebKey{Kty: to.Ptr(azkeys.KeyTypeRSAHSM), T: bad}}, nil)
		wantSDKStatus(t, err, http.StatusBadRequest)
		_, err = c.GetKey(ctx, "byok", "", nil)
		wantSDKStatus(t, err, http.StatusNotFound)

		imp, err := c.ImportKey(ctx, "byok", azkeys.ImportKeyParameters{Key: &azkeys.JSONWebKey{Kty: to.Ptr(azkeys.KeyTypeRSAHSM), T: blob}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if *imp.Key.Kty != azkeys.KeyTypeRSAHSM || new(big.Int).SetBytes(imp.Key.N).Cmp(target.N) != 0 {
			t.Fatalf("imported: kty %s", *imp.Key.Kty)
		}
		w, err := c.WrapKey(ctx, "byok", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: []byte("dek")}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := rsa.DecryptOAEP(sha256.New(), nil, target, w.Result, nil); err != nil || string(got) != "dek" {
			t.Fatalf("local unwrap: %q, %v", got, err)
		}
		ct, _ := rsa.EncryptOAEP(sha256.New(), rand.Reader, &target.PublicKey, []byte("local"), nil)
		u, err := c.UnwrapKey(ctx, "byok", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: ct}, nil)
		if err != nil || string(u.Result) != "local" {
			t.Fatalf("unwrap: %v", err)
		}
	})
}

func wantSDKStatus(t *testing.T, err error, status int) {
	t.Helper()
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != status {
		t.Fatalf("got %v; want HTTP %d", err, status)
	}
}
