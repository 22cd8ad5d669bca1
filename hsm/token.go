package hsm

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/miekg/pkcs11"

	"github.com/keyhold/keyhold/crypt"
)

// RSA-HSM keys live in a PKCS#11 token. The private key is generated in
// (or imported into) the token as a token object that is sensitive and not
// extractable, so it never leaves it; the vault and the Managed HSM store
// only a reference to it (KeyVersion.Material = "pkcs11:id=<hex CKA_ID>")
// and its public part. Unwrap runs in the token; wrap needs only the
// public key and runs in the caller.

// MaterialPrefix starts the Material of an RSA-HSM version. Stored
// references depend on it: never change it.
const MaterialPrefix = "pkcs11:id="

// tokenSessions is how many sessions a token keeps open. A PKCS#11 session
// runs one operation at a time; a few let unwraps run in parallel.
const tokenSessions = 4

// Token is an open PKCS#11 token holding RSA-HSM keys. Safe for concurrent
// use.
type Token struct {
	module   string
	ctx      *pkcs11.Ctx
	sessions chan pkcs11.SessionHandle
	// handles caches object handles by CKA_ID (hex): finding an object
	// walks the token.
	handles sync.Map
	// rawOAEP256 is set once the token has refused CKM_RSA_PKCS_OAEP with
	// SHA-256, as SoftHSM 2.6 does; RSA-OAEP-256 unwraps then use raw RSA
	// in the token and crypt.DecodeOAEP.
	rawOAEP256 atomic.Bool
}

// Open loads cfg's module, finds the token labelled cfg.TokenLabel and
// logs in to it with cfg.PIN.
func Open(cfg *PKCS11Config) (*Token, error) {
	ctx, err := loadModule(cfg.Module)
	if err != nil {
		return nil, err
	}
	t := &Token{module: cfg.Module, ctx: ctx, sessions: make(chan pkcs11.SessionHandle, tokenSessions)}
	if err := t.open(cfg); err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

func (t *Token) open(cfg *PKCS11Config) error {
	slot, err := findSlot(t.ctx, cfg.TokenLabel)
	if err != nil {
		return err
	}
	for i := 0; i < tokenSessions; i++ {
		sh, err := t.ctx.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
		if err != nil {
			return fmt.Errorf("hsm: opening a session with PKCS#11 token %q: %w", cfg.TokenLabel, err)
		}
		t.sessions <- sh
		if i == 0 {
			// Login is per application and token: one covers every session.
			if err := t.ctx.Login(sh, pkcs11.CKU_USER, cfg.PIN); err != nil && !errors.Is(err, pkcs11.Error(pkcs11.CKR_USER_ALREADY_LOGGED_IN)) {
				return fmt.Errorf("hsm: logging in to PKCS#11 token %q (check the PIN): %w", cfg.TokenLabel, err)
			}
		}
	}
	return nil
}

func findSlot(ctx *pkcs11.Ctx, label string) (uint, error) {
	slots, err := ctx.GetSlotList(true)
	if err != nil {
		return 0, fmt.Errorf("hsm: listing PKCS#11 slots: %w", err)
	}
	var seen []string
	for _, s := range slots {
		ti, err := ctx.GetTokenInfo(s)
		if err != nil {
			continue
		}
		l := strings.TrimRight(ti.Label, " \x00")
		if l == label {
			return s, nil
		}
		seen = append(seen, fmt.Sprintf("%q", l))
	}
	return 0, fmt.Errorf("hsm: no PKCS#11 token is labelled %q (tokens present: %s)", label, strings.Join(seen, ", "))
}

// Close closes the sessions (logging out with the last) and releases the
// module. Nothing may use t afterwards.
func (t *Token) Close() error {
	var errs []error
	for {
		select {
		case sh := <-t.sessions:
			errs = append(errs, t.ctx.CloseSession(sh))
			continue
		default:
		}
		break
	}
	errs = append(errs, releaseModule(t.module))
	return errors.Join(errs...)
}

// with runs fn with a session of its own.
func (t *Token) with(fn func(sh pkcs11.SessionHandle) error) error {
	sh := <-t.sessions
	defer func() { t.sessions <- sh }()
	return fn(sh)
}

// NewObjectID returns a fresh CKA_ID.
func NewObjectID() []byte {
	id := make([]byte, 16)
	rand.Read(id)
	return id
}

func MaterialFor(id []byte) []byte { return []byte(MaterialPrefix + hex.EncodeToString(id)) }

// ObjectID parses a version's Material back to its CKA_ID.
func ObjectID(material []byte) ([]byte, error) {
	h, ok := bytes.CutPrefix(material, []byte(MaterialPrefix))
	if !ok {
		return nil, errors.New("hsm: RSA-HSM key material is not a PKCS#11 reference")
	}
	id, err := hex.DecodeString(string(h))
	if err != nil || len(id) == 0 {
		return nil, errors.New("hsm: RSA-HSM key material holds a malformed PKCS#11 id")
	}
	return id, nil
}

// PrivateTemplate is what every RSA-HSM private key object is: a token
// object, private, sensitive, not extractable, able to decrypt and nothing
// else.
func PrivateTemplate(id []byte, label string) []*pkcs11.Attribute {
	return []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_RSA),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, true),
		pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, true),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, false),
		pkcs11.NewAttribute(pkcs11.CKA_ID, id),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
	}
}

// publicTemplate is the public half of a key pair generated in the token:
// a session object (the caller keeps the public key, not the token), with
// exponent 65537, usable only for use (CKA_ENCRYPT or CKA_WRAP).
func publicTemplate(id []byte, bits int, use uint) []*pkcs11.Attribute {
	return []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_RSA),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
		pkcs11.NewAttribute(pkcs11.CKA_MODULUS_BITS, bits),
		pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, []byte{1, 0, 1}),
		pkcs11.NewAttribute(use, true),
		pkcs11.NewAttribute(pkcs11.CKA_ID, id),
	}
}

// Generate makes an RSA key pair of bits bits in the token and returns the
// reference to its private key and its public key. The public key object
// is a session object, destroyed once read: the caller keeps the public key.
func (t *Token) Generate(bits int, label string) (material []byte, pub *rsa.PublicKey, err error) {
	id := NewObjectID()
	err = t.with(func(sh pkcs11.SessionHandle) error {
		ph, _, err := t.ctx.GenerateKeyPair(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN, nil)},
			publicTemplate(id, bits, pkcs11.CKA_ENCRYPT), PrivateTemplate(id, label))
		if err != nil {
			return fmt.Errorf("hsm: generating an RSA-%d key pair in the PKCS#11 token: %w", bits, err)
		}
		defer t.ctx.DestroyObject(sh, ph)
		attrs, err := t.ctx.GetAttributeValue(sh, ph, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_MODULUS, nil),
			pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, nil),
		})
		if err != nil {
			return fmt.Errorf("hsm: reading the new public key from the PKCS#11 token: %w", err)
		}
		e, err := crypt.RSAExponent(attrs[1].Value)
		if err != nil {
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

// ImportKey stores k's private key in the token, sensitive and not
// extractable, and returns its reference.
func (t *Token) ImportKey(k *rsa.PrivateKey, label string) ([]byte, error) {
	id := NewObjectID()
	k.Precompute()
	tmpl := append(PrivateTemplate(id, label),
		pkcs11.NewAttribute(pkcs11.CKA_MODULUS, k.N.Bytes()),
		pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, big.NewInt(int64(k.E)).Bytes()),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE_EXPONENT, k.D.Bytes()),
		pkcs11.NewAttribute(pkcs11.CKA_PRIME_1, k.Primes[0].Bytes()),
		pkcs11.NewAttribute(pkcs11.CKA_PRIME_2, k.Primes[1].Bytes()),
		pkcs11.NewAttribute(pkcs11.CKA_EXPONENT_1, k.Precomputed.Dp.Bytes()),
		pkcs11.NewAttribute(pkcs11.CKA_EXPONENT_2, k.Precomputed.Dq.Bytes()),
		pkcs11.NewAttribute(pkcs11.CKA_COEFFICIENT, k.Precomputed.Qinv.Bytes()),
	)
	err := t.with(func(sh pkcs11.SessionHandle) error {
		_, err := t.ctx.CreateObject(sh, tmpl)
		return err
	})
	// The template's copies of the private values are ours to clear.
	for _, a := range tmpl[len(tmpl)-6:] {
		clear(a.Value)
	}
	if err != nil {
		return nil, fmt.Errorf("hsm: importing the key into the PKCS#11 token: %w", err)
	}
	return MaterialFor(id), nil
}

// find returns the handle of the private key with the given CKA_ID.
func (t *Token) find(sh pkcs11.SessionHandle, id []byte) (pkcs11.ObjectHandle, error) {
	if h, ok := t.handles.Load(string(id)); ok {
		return h.(pkcs11.ObjectHandle), nil
	}
	hs, err := t.findAll(sh, id, pkcs11.CKO_PRIVATE_KEY)
	if err != nil {
		return 0, err
	}
	if len(hs) == 0 {
		return 0, fmt.Errorf("hsm: the PKCS#11 token holds no private key with id %x: the key was removed from the token", id)
	}
	t.handles.Store(string(id), hs[0])
	return hs[0], nil
}

func (t *Token) findAll(sh pkcs11.SessionHandle, id []byte, class uint) ([]pkcs11.ObjectHandle, error) {
	if err := t.ctx.FindObjectsInit(sh, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, class),
		pkcs11.NewAttribute(pkcs11.CKA_ID, id),
	}); err != nil {
		return nil, fmt.Errorf("hsm: searching the PKCS#11 token: %w", err)
	}
	hs, _, err := t.ctx.FindObjects(sh, 16)
	if ferr := t.ctx.FindObjectsFinal(sh); err == nil {
		err = ferr
	}
	if err != nil {
		return nil, fmt.Errorf("hsm: searching the PKCS#11 token: %w", err)
	}
	return hs, nil
}

func oaepMechanism(alg string) *pkcs11.Mechanism {
	p := pkcs11.NewOAEPParams(pkcs11.CKM_SHA_1, pkcs11.CKG_MGF1_SHA1, pkcs11.CKZ_DATA_SPECIFIED, nil)
	if alg == crypt.AlgRSAOAEP256 {
		p = pkcs11.NewOAEPParams(pkcs11.CKM_SHA256, pkcs11.CKG_MGF1_SHA256, pkcs11.CKZ_DATA_SPECIFIED, nil)
	}
	return pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_OAEP, p)
}

// refusesParams reports whether err says the token does not support a
// mechanism or its parameters.
func refusesParams(err error) bool {
	for _, code := range []uint{pkcs11.CKR_ARGUMENTS_BAD, pkcs11.CKR_MECHANISM_PARAM_INVALID, pkcs11.CKR_MECHANISM_INVALID} {
		if errors.Is(err, pkcs11.Error(code)) {
			return true
		}
	}
	return false
}

// errTokenDecrypt marks a ciphertext the token refused to decrypt (wrong
// key, algorithm or bytes), as opposed to a token failure.
var errTokenDecrypt = fmt.Errorf("hsm: the PKCS#11 token refused to decrypt: %w", crypt.ErrDecrypt)

// Unwrap decrypts ciphertext with the private key material refers to,
// with CKM_RSA_PKCS_OAEP (SHA-1 and MGF1-SHA1 for RSA-OAEP, SHA-256 and
// MGF1-SHA256 for RSA-OAEP-256). n is the key's public modulus. A
// ciphertext that does not decrypt returns an error wrapping
// crypt.ErrDecrypt; one that is not a number below n (of n's length) is
// refused before the token sees it, since tokens report that case in
// different ways (SoftHSM: CKR_GENERAL_ERROR).
//
// Two token shortcomings are handled with raw RSA (CKM_RSA_X_509) in the
// token and crypt.DecodeOAEP here: a token that refuses SHA-256 OAEP
// parameters (SoftHSM 2.6 accepts only SHA-1) decrypts RSA-OAEP-256 that
// way from then on; and a token that answers a failed OAEP decryption
// with CKR_GENERAL_ERROR (SoftHSM again) has the ciphertext checked that
// way, which tells a bad ciphertext (the caller's fault) from a token
// fault (the server's).
func (t *Token) Unwrap(material []byte, alg string, n []byte, ciphertext []byte) ([]byte, error) {
	id, err := ObjectID(material)
	if err != nil {
		return nil, err
	}
	size := len(n)
	if len(ciphertext) != size || new(big.Int).SetBytes(ciphertext).Cmp(new(big.Int).SetBytes(n)) >= 0 {
		return nil, errTokenDecrypt
	}
	var out []byte
	err = t.with(func(sh pkcs11.SessionHandle) error {
		h, err := t.find(sh, id)
		if err != nil {
			return err
		}
		if alg != crypt.AlgRSAOAEP256 || !t.rawOAEP256.Load() {
			out, err = t.decrypt(sh, oaepMechanism(alg), h, ciphertext)
			switch {
			case err == nil || errors.Is(err, errTokenDecrypt):
				return err
			case alg == crypt.AlgRSAOAEP256 && refusesParams(err):
				t.rawOAEP256.Store(true)
			case errors.Is(err, pkcs11.Error(pkcs11.CKR_GENERAL_ERROR)):
				// Ambiguous: check the ciphertext below.
			default:
				return err
			}
		}
		em, rerr := t.decrypt(sh, pkcs11.NewMechanism(pkcs11.CKM_RSA_X_509, nil), h, ciphertext)
		if rerr != nil {
			if err != nil && !errors.Is(rerr, errTokenDecrypt) {
				return err // the token's first answer says more
			}
			return rerr
		}
		defer clear(em)
		out, err = crypt.DecodeOAEP(alg, size, em)
		return err
	})
	return out, err
}

func (t *Token) decrypt(sh pkcs11.SessionHandle, m *pkcs11.Mechanism, h pkcs11.ObjectHandle, ct []byte) ([]byte, error) {
	if err := t.ctx.DecryptInit(sh, []*pkcs11.Mechanism{m}, h); err != nil {
		if refusesParams(err) {
			return nil, err
		}
		return nil, fmt.Errorf("hsm: PKCS#11 decrypt: %w", err)
	}
	out, err := t.ctx.Decrypt(sh, ct)
	if err != nil {
		// A failed C_Decrypt ends the operation. Padding and length
		// errors mean a bad ciphertext, not a broken token.
		for _, code := range []uint{pkcs11.CKR_ENCRYPTED_DATA_INVALID, pkcs11.CKR_ENCRYPTED_DATA_LEN_RANGE} {
			if errors.Is(err, pkcs11.Error(code)) {
				return nil, errTokenDecrypt
			}
		}
		return nil, fmt.Errorf("hsm: PKCS#11 decrypt: %w", err)
	}
	return out, nil
}

// Destroy removes every object with the CKA_ID that material refers to.
// Removing one that is already gone succeeds.
func (t *Token) Destroy(material []byte) error {
	id, err := ObjectID(material)
	if err != nil {
		return err
	}
	t.handles.Delete(string(id))
	return t.with(func(sh pkcs11.SessionHandle) error {
		for _, class := range []uint{pkcs11.CKO_PRIVATE_KEY, pkcs11.CKO_PUBLIC_KEY} {
			hs, err := t.findAll(sh, id, class)
			if err != nil {
				return err
			}
			for _, h := range hs {
				if err := t.ctx.DestroyObject(sh, h); err != nil {
					return fmt.Errorf("hsm: destroying a PKCS#11 object: %w", err)
				}
			}
		}
		return nil
	})
}
