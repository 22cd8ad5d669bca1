package hsm

import (
	"crypto/rsa"
	"errors"
	"fmt"
	"math/big"

	"github.com/miekg/pkcs11"

	"github.com/keyhold/keyhold/crypt"
)

// Import of a key from Azure Key Vault's key-transfer format (crypt/
// transfer.go, docs/keyvault.md) into the token. The blob's two layers
// are undone in the token, each by C_UnwrapKey, so that neither the
// ephemeral AES key nor the imported private key ever exists outside it:
//
//  1. CKM_RSA_PKCS_OAEP (SHA-1, MGF1-SHA1, as Azure's specification
//     fixes) with the KEK unwraps the AES-256 key into a session object,
//     sensitive and not extractable, usable only to unwrap;
//  2. CKM_AES_KEY_WRAP_PAD (RFC 5649) with that key unwraps the PKCS#8
//     private key into a token object with the template every RSA-HSM
//     key has (PrivateTemplate: sensitive, not extractable);
//  3. the AES key is destroyed.
//
// SoftHSM 2.6 has no CKM_RSA_AES_KEY_WRAP, which would do 1-3 in one
// call; the two steps are what the mechanism is defined as.

var (
	// ErrTransferRSA: the KEK's OAEP layer did not decrypt.
	ErrTransferRSA = errors.New("hsm: the transfer blob's RSA-OAEP layer does not decrypt under the KEK")
	// ErrTransferKey: the AES-KWP layer did not unwrap to an RSA key.
	ErrTransferKey = errors.New("hsm: the transfer blob's AES key wrap does not unwrap to an RSA private key")
)

// UnwrapTransfer undoes a transfer blob's two layers in the token (see
// the top of this file) and returns the new private key object's
// reference and its public key. kekN is the KEK's modulus.
func (t *Token) UnwrapTransfer(kekMaterial, kekN, wrappedAES, wrappedKey []byte, label string) (material []byte, pub *rsa.PublicKey, err error) {
	kekID, err := ObjectID(kekMaterial)
	if err != nil {
		return nil, nil, err
	}
	if len(wrappedAES) != len(kekN) || new(big.Int).SetBytes(wrappedAES).Cmp(new(big.Int).SetBytes(kekN)) >= 0 {
		return nil, nil, ErrTransferRSA
	}
	id := NewObjectID()
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
				return ErrTransferRSA
			}
			return fmt.Errorf("hsm: unwrapping the transfer blob's AES key in the PKCS#11 token: %w", err)
		}
		defer t.ctx.DestroyObject(sh, aes)
		h, err := t.ctx.UnwrapKey(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_WRAP_PAD, nil)}, aes, wrappedKey, PrivateTemplate(id, label))
		if err != nil {
			// SoftHSM answers a PKCS#8 that is not an RSA key (once
			// AES-KWP's check passed) with CKR_FUNCTION_FAILED.
			if tokenRefusedInput(err) || errors.Is(err, pkcs11.Error(pkcs11.CKR_FUNCTION_FAILED)) {
				return ErrTransferKey
			}
			return fmt.Errorf("hsm: unwrapping the transfer blob's key in the PKCS#11 token: %w", err)
		}
		attrs, err := t.ctx.GetAttributeValue(sh, h, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_MODULUS, nil),
			pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, nil),
		})
		if err != nil {
			t.ctx.DestroyObject(sh, h)
			return fmt.Errorf("hsm: reading the imported key's public part from the PKCS#11 token: %w", err)
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
	return MaterialFor(id), pub, nil
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
