package vault

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"

	"github.com/miekg/pkcs11"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
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
//     key has (privateTemplate: sensitive, not extractable);
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
	material, pub, err := s.hsm.unwrapTransfer(kek.Material, kek.N, wrappedAES, wrappedKey, tokenLabel(vault, name, kv.Version))
	switch {
	case errors.Is(err, errTransferRSA):
		return badBlob("it does not decrypt under KEK %s: the blob was made for another KEK (wrap the key to this KEK's public key) or was altered", s.KeyID(kek.VaultName, kek.Name, kek.Version))
	case errors.Is(err, errTransferKey):
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

var (
	// errTransferRSA: the KEK's OAEP layer did not decrypt.
	errTransferRSA = errors.New("vault: the transfer blob's RSA-OAEP layer does not decrypt under the KEK")
	// errTransferKey: the AES-KWP layer did not unwrap to an RSA key.
	errTransferKey = errors.New("vault: the transfer blob's AES key wrap does not unwrap to an RSA private key")
)

// unwrapTransfer undoes a transfer blob's two layers in the token (see
// the top of this file) and returns the new private key object's
// reference and its public key. kekN is the KEK's modulus.
func (t *token) unwrapTransfer(kekMaterial, kekN, wrappedAES, wrappedKey []byte, label string) (material []byte, pub *rsa.PublicKey, err error) {
	kekID, err := objectID(kekMaterial)
	if err != nil {
		return nil, nil, err
	}
	if len(wrappedAES) != len(kekN) || new(big.Int).SetBytes(wrappedAES).Cmp(new(big.Int).SetBytes(kekN)) >= 0 {
		return nil, nil, errTransferRSA
	}
	id := newObjectID()
	err = t.with(func(sh pkcs11.SessionHandle) error {
		kek, err := t.find(sh, kekID)
		if err != nil {
			return err
		}
		oaep := pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_OAEP,
			pkcs11.NewOAEPParams(pkcs11.CKM_SHA_1, pkcs11.CKG_MGF1_SHA1, pkcs11.CKZ_DATA_SPECIFIED, nil))
		aes, err := t.ctx.UnwrapKey(sh, []*pkcs11.Mechanism{oaep}, kek, wrappedAES, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
			pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
			pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
			pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
			pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, true),
			pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, false),
			pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, false),
			pkcs11.NewAttribute(pkcs11.CKA_WRAP, false),
		})
		if err != nil {
			if tokenRefusedInput(err) {
				return errTransferRSA
			}
			return fmt.Errorf("vault: unwrapping the transfer blob's AES key in the PKCS#11 token: %w", err)
		}
		defer t.ctx.DestroyObject(sh, aes)
		h, err := t.ctx.UnwrapKey(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_WRAP_PAD, nil)}, aes, wrappedKey, privateTemplate(id, label))
		if err != nil {
			// SoftHSM answers a PKCS#8 that is not an RSA key (once
			// AES-KWP's check passed) with CKR_FUNCTION_FAILED.
			if tokenRefusedInput(err) || errors.Is(err, pkcs11.Error(pkcs11.CKR_FUNCTION_FAILED)) {
				return errTransferKey
			}
			return fmt.Errorf("vault: unwrapping the transfer blob's key in the PKCS#11 token: %w", err)
		}
		attrs, err := t.ctx.GetAttributeValue(sh, h, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_MODULUS, nil),
			pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, nil),
		})
		if err != nil {
			t.ctx.DestroyObject(sh, h)
			return fmt.Errorf("vault: reading the imported key's public part from the PKCS#11 token: %w", err)
		}
		e, err := crypt.RSAExponent(attrs[1].Value)
		if err != nil {
			t.ctx.DestroyObject(sh, h)
			return err
		}
		pub = &rsa.PublicKey{N: new(big.Int).SetBytes(attrs[0].Value), E: e}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return materialFor(id), pub, nil
}

// tokenRefusedInput reports whether a C_UnwrapKey error means the wrapped
// bytes were wrong (another key, altered, or not the key type asked
// for), not that the token failed. SoftHSM answers an OAEP or AES-KWP
// failure with CKR_GENERAL_ERROR, so that code counts too: the KEK and
// the session key exist and are usable, so the input is what failed.
func tokenRefusedInput(err error) bool {
	for _, code := range []uint{pkcs11.CKR_WRAPPED_KEY_INVALID, pkcs11.CKR_WRAPPED_KEY_LEN_RANGE, pkcs11.CKR_ENCRYPTED_DATA_INVALID,
		pkcs11.CKR_ENCRYPTED_DATA_LEN_RANGE, pkcs11.CKR_TEMPLATE_INCONSISTENT, pkcs11.CKR_GENERAL_ERROR} {
		if errors.Is(err, pkcs11.Error(code)) {
			return true
		}
	}
	return false
}
