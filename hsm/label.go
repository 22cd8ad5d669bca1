package hsm

import (
	"crypto/rsa"
	"fmt"
	"math/big"

	"github.com/miekg/pkcs11"

	"github.com/keyhold/keyhold/crypt"
)

// Objects found by label rather than by a stored reference: the BYOK
// service's key-exchange keys (vault/byok_token.go) live only in the
// token, one per tenant, named by CKA_LABEL so that every replica finds
// the same one.

// FindByLabel returns the CKA_ID and public key of the private key
// object labelled label, or a nil id if the token holds none.
func (t *Token) FindByLabel(label string) (id []byte, pub *rsa.PublicKey, err error) {
	err = t.with(func(sh pkcs11.SessionHandle) error {
		id, pub, err = t.findByLabel(sh, label)
		return err
	})
	return id, pub, err
}

func (t *Token) findByLabel(sh pkcs11.SessionHandle, label string) (id []byte, pub *rsa.PublicKey, err error) {
	if err := t.ctx.FindObjectsInit(sh, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
	}); err != nil {
		return nil, nil, fmt.Errorf("hsm: searching the PKCS#11 token: %w", err)
	}
	hs, _, err := t.ctx.FindObjects(sh, 2)
	if ferr := t.ctx.FindObjectsFinal(sh); err == nil {
		err = ferr
	}
	if err != nil {
		return nil, nil, fmt.Errorf("hsm: searching the PKCS#11 token: %w", err)
	}
	if len(hs) == 0 {
		return nil, nil, nil
	}
	attrs, err := t.ctx.GetAttributeValue(sh, hs[0], []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_ID, nil),
		pkcs11.NewAttribute(pkcs11.CKA_MODULUS, nil),
		pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, nil),
	})
	if err != nil {
		return nil, nil, fmt.Errorf("hsm: reading the key labelled %q from the PKCS#11 token: %w", label, err)
	}
	e, err := crypt.RSAExponent(attrs[2].Value)
	if err != nil {
		return nil, nil, err
	}
	return attrs[0].Value, &rsa.PublicKey{N: new(big.Int).SetBytes(attrs[1].Value), E: e}, nil
}

// GenerateKEK makes an RSA key pair of bits bits in the token whose
// private key, labelled label, can unwrap (import) and nothing else: not
// decrypt, not sign. It returns the key's CKA_ID and public key.
func (t *Token) GenerateKEK(bits int, label string) (id []byte, pub *rsa.PublicKey, err error) {
	newID := NewObjectID()
	err = t.with(func(sh pkcs11.SessionHandle) error {
		privTmpl := PrivateTemplate(newID, label)
		for i, a := range privTmpl {
			if a.Type == pkcs11.CKA_DECRYPT {
				privTmpl[i] = pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, false)
			}
		}
		ph, _, err := t.ctx.GenerateKeyPair(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN, nil)}, publicTemplate(newID, bits, pkcs11.CKA_WRAP), privTmpl)
		if err != nil {
			return fmt.Errorf("hsm: generating an RSA-%d KEK in the PKCS#11 token: %w", bits, err)
		}
		t.ctx.DestroyObject(sh, ph)
		id, pub, err = t.findByLabel(sh, label)
		return err
	})
	return id, pub, err
}

// Attributes reads attributes of the private key object material refers
// to. The token refuses sensitive ones.
func (t *Token) Attributes(material []byte, types ...uint) ([]*pkcs11.Attribute, error) {
	id, err := ObjectID(material)
	if err != nil {
		return nil, err
	}
	var out []*pkcs11.Attribute
	err = t.with(func(sh pkcs11.SessionHandle) error {
		h, err := t.find(sh, id)
		if err != nil {
			return err
		}
		q := make([]*pkcs11.Attribute, len(types))
		for i, typ := range types {
			q[i] = pkcs11.NewAttribute(typ, nil)
		}
		out, err = t.ctx.GetAttributeValue(sh, h, q)
		return err
	})
	return out, err
}

// PublicKey reads the public part of the private key object material
// refers to.
func (t *Token) PublicKey(material []byte) (n []byte, e int, err error) {
	attrs, err := t.Attributes(material, pkcs11.CKA_MODULUS, pkcs11.CKA_PUBLIC_EXPONENT)
	if err != nil {
		return nil, 0, fmt.Errorf("hsm: reading a key's public part from the PKCS#11 token: %w", err)
	}
	e, err = crypt.RSAExponent(attrs[1].Value)
	return attrs[0].Value, e, err
}

// Do runs fn with a session of its own and the module's context, for a
// PKCS#11 call Token has no method for (tests that inspect the token).
func (t *Token) Do(fn func(ctx *pkcs11.Ctx, sh pkcs11.SessionHandle) error) error {
	return t.with(func(sh pkcs11.SessionHandle) error { return fn(t.ctx, sh) })
}
