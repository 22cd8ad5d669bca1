package vault

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/hsm"
)

// Import of HSM-protected keys in Azure Key Vault's key-transfer format
// ("bring your own key"; the format is described in crypt/transfer.go
// and docs/keyvault.md). The key-exchange key (KEK) is an RSA-HSM key
// whose only operation is import; the blob's two layers are undone in
// the token, each by C_UnwrapKey, so that neither the ephemeral AES key
// nor the imported private key ever exists outside it:
//
//  1. CKM_RSA_PKCS_OAEP (SHA-1, MGF1-SHA1, as Azure's specification
//     fixes) with the KEK unwraps the AES-256 key into a session object,
//     sensitive and not extractable, usable only to unwrap;
//  2. CKM_AES_KEY_WRAP_PAD (RFC 5649) with that key unwraps the PKCS#8
//     private key into a token object with the template every RSA-HSM
//     key has (hsm.PrivateTemplate: sensitive, not extractable);
//  3. the AES key is destroyed.
//
// SoftHSM 2.6 has no CKM_RSA_AES_KEY_WRAP, which would do 1-3 in one
// call; the two steps are what the mechanism is defined as.

// checkKEKOps refuses key_ops that mix import with other operations, and
// import on a key that is not RSA-HSM: a KEK must be usable only to import
// (Azure: "a fixed key_ops (ONLY import)").
func checkKEKOps(kty string, ops []string) error {
	if !slices.Contains(ops, KeyOpImport) {
		return nil
	}
	if kty != keyhold.KeyTypeRSAHSM {
		return keyhold.Errorf(keyhold.CodeBadParameter,
			"key operation import makes a key exchange key (KEK), which must be of type RSA-HSM (kty %q was given): create it with kty RSA-HSM and key_ops [\"import\"]", kty)
	}
	if len(ops) != 1 {
		return keyhold.Errorf(keyhold.CodeBadParameter,
			"a key exchange key (KEK) has the import operation only (key_ops %q were given): use key_ops [\"import\"], and a separate key for %s",
			strings.Join(ops, ","), strings.Join(slices.DeleteFunc(slices.Clone(ops), func(o string) bool { return o == KeyOpImport }), ", "))
	}
	return nil
}

// badBlob is the refusal of a transfer blob, saying why and what to do.
func badBlob(format string, args ...any) error {
	return keyhold.Errorf(keyhold.CodeBadParameter, "The key transfer blob (key_hsm) can't be imported: "+format, args...)
}

// importTransfer imports the target key of a transfer blob (jwk.HSM) as a
// new RSA-HSM version of key name: the blob's KEK, named by its header's
// kid, must be an enabled RSA-HSM key of the same vault whose version
// allows import. Nothing is stored when any check fails, and a token
// object made before a failure is removed again.
func (s *Keys) importTransfer(ctx context.Context, c *call, vault, name string, jwk keyhold.JSONWebKey, attrs keyhold.KeyAttributes, tags map[string]string, out **keyhold.KeyBundle) error {
	if jwk.Kty != "" && !strings.EqualFold(jwk.Kty, keyhold.KeyTypeRSAHSM) {
		return keyhold.Errorf(keyhold.CodeBadParameter, "a key transfer blob (key_hsm) imports an RSA-HSM key, but kty is %q: send kty RSA-HSM", keyhold.Clip(jwk.Kty))
	}
	if len(jwk.N) > 0 || len(jwk.D) > 0 {
		return keyhold.Errorf(keyhold.CodeBadParameter, "the key has both key_hsm and plaintext RSA fields (n, d, ...): send one or the other")
	}
	ops, err := normKeyOps(jwk.KeyOps)
	if err != nil {
		return err
	}
	if err := checkKEKOps(keyhold.KeyTypeRSAHSM, ops); err != nil {
		return err
	}
	blob, err := crypt.ParseTransferBlob(jwk.HSM)
	if err != nil {
		return badBlob("%s", err)
	}
	kid, err := keyhold.ParseKeyID(blob.KID)
	if err != nil {
		return badBlob("its header.kid %q is not a key id of this vault's key exchange key (KEK)", keyhold.Clip(blob.KID))
	}
	if !strings.EqualFold(kid.Vault, vault) {
		return badBlob("its KEK %s is in vault %q, not %q: a KEK must be in the vault the key is imported into", keyhold.Clip(blob.KID), keyhold.Clip(kid.Vault), vault)
	}
	if s.hsm == nil {
		return errNoHSM
	}
	kv := &keyhold.KeyVersion{Type: keyhold.KeyTypeRSAHSM, KeyOps: ops, Enabled: true}
	if err := applyAttributes(kv, attrs); err != nil {
		return err
	}
	var kek *keyhold.KeyVersion
	if err := s.store.View(ctx, func(tx keyhold.Tx) error {
		v, err := s.authorize(ctx, tx, c, opImportKey, vault, name)
		if err != nil {
			return err
		}
		if err := refuseDeleted(ctx, tx, v.Name, name); err != nil {
			return err
		}
		k, err := s.findKey(ctx, tx, v.Name, kid.Name, false, kid.Version == "")
		if codeIs(err, keyhold.CodeKeyNotFound) {
			return badBlob("its KEK %s is not a key of vault %q: create the KEK in this vault (kty RSA-HSM, key_ops [\"import\"]) and wrap the key to it", keyhold.Clip(blob.KID), v.Name)
		} else if err != nil {
			return err
		}
		if kek, err = s.keyVersion(ctx, tx, k, kid.Version); codeIs(err, keyhold.CodeKeyNotFound) {
			return badBlob("its KEK %s has no such version", keyhold.Clip(blob.KID))
		}
		return err
	}); err != nil {
		return err
	}
	if kek.Type != keyhold.KeyTypeRSAHSM || !slices.Contains(kek.KeyOps, KeyOpImport) {
		return &keyhold.Error{Code: keyhold.CodeForbidden, Inner: InnerKeyOperationForbidden, Message: fmt.Sprintf(
			"Operation import is not permitted on key %s version %s (kty %s, key_ops %s): a key exchange key (KEK) is an RSA-HSM key with key_ops [\"import\"]; create one and wrap the key to it",
			kek.Name, kek.Version, kek.Type, strings.Join(kek.KeyOps, ", "))}
	}
	if !kek.Enabled {
		return &keyhold.Error{Code: keyhold.CodeForbidden, Inner: keyhold.InnerKeyDisabled, Message: fmt.Sprintf(
			"Operation import is not allowed with a disabled key exchange key: enable version %s of key %s to use it.", kek.Version, kek.Name)}
	}
	c.detail = "kek=" + s.KeyID(kek.VaultName, kek.Name, kek.Version)
	wrappedAES, wrappedKey, err := blob.Split(len(kek.N))
	if err != nil {
		return badBlob("%s", err)
	}
	kv.Version = newVersion()
	material, pub, err := s.hsm.UnwrapTransfer(kek.Material, kek.N, wrappedAES, wrappedKey, tokenLabel(vault, name, kv.Version))
	switch {
	case errors.Is(err, hsm.ErrTransferRSA):
		return badBlob("it does not decrypt under KEK %s: the blob was made for another KEK (wrap the key to this KEK's public key) or was altered", s.KeyID(kek.VaultName, kek.Name, kek.Version))
	case errors.Is(err, hsm.ErrTransferKey):
		return badBlob("its wrapped key fails AES key wrap's integrity check or is not an RSA private key in PKCS#8: the blob was altered, or its target key is not RSA (only RSA keys can be imported)")
	case err != nil:
		return err
	}
	if size := pub.N.BitLen(); !crypt.ValidRSASize(size) {
		s.destroyTokenObjects([][]byte{material})
		return badBlob("its target key is RSA-%d: import an RSA key of 2048, 3072 or 4096 bits", size)
	}
	kv.Size, kv.N, kv.E, kv.Material = pub.N.BitLen(), pub.N.Bytes(), pub.E, material
	return s.storeNewKey(ctx, c, opImportKey, vault, name, kv, tags, out)
}
