package crypt

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"math/big"
	"strings"
)

// RSA keys of the built-in key vault.
//
// A software RSA key's private part is stored only sealed under the master
// key (Seal's format), as PKCS #8 DER, for a purpose (RSAKeyPurpose) that
// binds it to its vault, key name and version: a sealed key copied onto
// another key's row does not open. Key Vault's wrapKey and unwrapKey are
// RSA-OAEP with SHA-1 ("RSA-OAEP") or SHA-256 ("RSA-OAEP-256"), MGF1 with
// the same hash, and an empty label.

// Key Vault's key-wrapping algorithms.
const (
	AlgRSAOAEP    = "RSA-OAEP"
	AlgRSAOAEP256 = "RSA-OAEP-256"
)

// RSASizes are the RSA modulus sizes, in bits, that the vault creates and
// imports, as Azure Key Vault does.
var RSASizes = []int{2048, 3072, 4096}

// ValidRSASize reports whether bits is one of RSASizes.
func ValidRSASize(bits int) bool {
	for _, s := range RSASizes {
		if s == bits {
			return true
		}
	}
	return false
}

// ErrAlgorithm is returned (wrapped) for a key-wrapping algorithm other than
// AlgRSAOAEP and AlgRSAOAEP256.
var ErrAlgorithm = errors.New("crypt: unsupported key-wrapping algorithm")

// OAEPHash returns the hash (for both OAEP and MGF1) of a key-wrapping
// algorithm, or an error wrapping ErrAlgorithm.
func OAEPHash(alg string) (crypto.Hash, error) {
	switch alg {
	case AlgRSAOAEP:
		return crypto.SHA1, nil
	case AlgRSAOAEP256:
		return crypto.SHA256, nil
	}
	return 0, fmt.Errorf("%w %q: use %s or %s", ErrAlgorithm, alg, AlgRSAOAEP, AlgRSAOAEP256)
}

func newHash(h crypto.Hash) hash.Hash {
	if h == crypto.SHA1 {
		return sha1.New()
	}
	return sha256.New()
}

// OAEPMaxPlaintext returns the longest value that alg can wrap under an
// RSA key of bits bits: k - 2·hLen - 2 bytes, with k the modulus length in
// bytes (RFC 8017, 7.1.1).
func OAEPMaxPlaintext(bits int, alg string) (int, error) {
	h, err := OAEPHash(alg)
	if err != nil {
		return 0, err
	}
	return (bits+7)/8 - 2*h.Size() - 2, nil
}

// GenerateRSAKey returns a new RSA key of bits bits, one of RSASizes.
func GenerateRSAKey(bits int) (*rsa.PrivateKey, error) {
	if !ValidRSASize(bits) {
		return nil, fmt.Errorf("crypt: RSA key size %d is not supported: use 2048, 3072 or 4096", bits)
	}
	// Go 1.26 ignores the reader and always uses a secure source.
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		return nil, fmt.Errorf("crypt: generating RSA key: %w", err)
	}
	return k, nil
}

// RSAKeyFromComponents builds and checks a private key from its big-endian
// components, as a JSON Web Key carries them. n, e, d, p and q are
// required; dp, dq and qi may be nil, and must match the others when given.
// The size of n must be one of RSASizes. Its errors name the problem and
// never quote the components.
func RSAKeyFromComponents(n, e, d, p, q, dp, dq, qi []byte) (*rsa.PrivateKey, error) {
	for _, c := range []struct {
		name string
		v    []byte
	}{{"n", n}, {"e", e}, {"d", d}, {"p", p}, {"q", q}} {
		if len(c.v) == 0 {
			return nil, fmt.Errorf("crypt: the RSA key has no %q: an imported key needs n, e, d, p and q", c.name)
		}
	}
	exp, err := RSAExponent(e)
	if err != nil {
		return nil, err
	}
	k := &rsa.PrivateKey{
		PublicKey: rsa.PublicKey{N: new(big.Int).SetBytes(n), E: exp},
		D:         new(big.Int).SetBytes(d),
		Primes:    []*big.Int{new(big.Int).SetBytes(p), new(big.Int).SetBytes(q)},
	}
	if bits := k.N.BitLen(); !ValidRSASize(bits) {
		return nil, fmt.Errorf("crypt: the RSA key is %d bits: use 2048, 3072 or 4096", bits)
	}
	if err := k.Validate(); err != nil {
		return nil, errors.New("crypt: the RSA key's components are inconsistent (n, e, d, p and q do not form one key)")
	}
	k.Precompute()
	for _, c := range []struct {
		name      string
		got, want *big.Int
	}{{"dp", bytesOrNil(dp), k.Precomputed.Dp}, {"dq", bytesOrNil(dq), k.Precomputed.Dq}, {"qi", bytesOrNil(qi), k.Precomputed.Qinv}} {
		if c.got != nil && c.got.Cmp(c.want) != 0 {
			return nil, fmt.Errorf("crypt: the RSA key's %q does not match its other components", c.name)
		}
	}
	return k, nil
}

func bytesOrNil(b []byte) *big.Int {
	if len(b) == 0 {
		return nil
	}
	return new(big.Int).SetBytes(b)
}

// RSAExponent decodes a big-endian public exponent, which must be odd, at
// least 3 and below 2³¹ (what crypto/rsa accepts).
func RSAExponent(e []byte) (int, error) {
	v := new(big.Int).SetBytes(e)
	if !v.IsInt64() || v.Int64() < 3 || v.Int64() >= 1<<31 || v.Bit(0) == 0 {
		return 0, errors.New("crypt: the RSA public exponent must be odd, at least 3 and below 2^31")
	}
	return int(v.Int64()), nil
}

// RSAKeyPurpose returns the Seal purpose of the private key of one key
// version: "vault rsa key v1\x00" | lp(vault) | lp(name) | lp(version), the
// names folded to lower case because Key Vault names compare
// case-insensitively.
func RSAKeyPurpose(vault, name, version string) string {
	var b strings.Builder
	b.WriteString("vault rsa key v1\x00")
	for _, s := range []string{vault, name, version} {
		s = strings.ToLower(s)
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(s)))
		b.Write(n[:])
		b.WriteString(s)
	}
	return b.String()
}

// SealRSAKey seals k's PKCS #8 DER under master for purpose. The DER is
// cleared once sealed.
func SealRSAKey(master *Key, purpose string, k *rsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("crypt: encoding RSA key: %w", err)
	}
	defer clear(der)
	return Seal(master, purpose, der)
}

// OpenRSAKey opens what SealRSAKey sealed. Besides Open's errors (ErrDecrypt
// for a wrong master key, purpose or modified bytes), it refuses a plaintext
// that is not an RSA key in PKCS #8 DER.
func OpenRSAKey(master *Key, purpose string, sealed []byte) (*rsa.PrivateKey, error) {
	der, err := Open(master, purpose, sealed)
	if err != nil {
		return nil, err
	}
	defer clear(der)
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, errors.New("crypt: sealed RSA key is not valid PKCS#8 DER")
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("crypt: sealed key is a %T; want an RSA key", k)
	}
	return rk, nil
}

// WrapOAEP encrypts value under pub with alg. It returns an error wrapping
// ErrAlgorithm for an unknown alg, and rsa.ErrMessageTooLong for a value
// longer than OAEPMaxPlaintext.
func WrapOAEP(pub *rsa.PublicKey, alg string, value []byte) ([]byte, error) {
	h, err := OAEPHash(alg)
	if err != nil {
		return nil, err
	}
	return rsa.EncryptOAEP(newHash(h), rand.Reader, pub, value, nil)
}

// UnwrapOAEP decrypts what WrapOAEP produced. A ciphertext that does not
// decrypt under priv and alg (another key, another algorithm, modified
// bytes, a wrong length) returns an error wrapping ErrDecrypt; an unknown
// alg, one wrapping ErrAlgorithm.
func UnwrapOAEP(priv *rsa.PrivateKey, alg string, ciphertext []byte) ([]byte, error) {
	h, err := OAEPHash(alg)
	if err != nil {
		return nil, err
	}
	pt, err := rsa.DecryptOAEP(newHash(h), nil, priv, ciphertext, nil)
	if err != nil {
		return nil, decryptErrorf("%s ciphertext does not decrypt under this key", alg)
	}
	return pt, nil
}

// DecodeOAEP removes EME-OAEP padding (RFC 8017, 7.1.2 step 3, empty
// label) from em, the k-byte result of a raw RSA decryption, as a PKCS #11
// token's CKM_RSA_X_509 returns it. It exists for tokens that refuse
// CKM_RSA_PKCS_OAEP with SHA-256 (SoftHSM 2.6 accepts only SHA-1): the
// private-key operation stays in the token and only the padding is checked
// here. em shorter than k is left-padded with zeros, as tokens may strip
// them.
//
// It runs in time independent of em's contents, like crypto/rsa, so that
// its failures can't serve as a padding oracle, and returns an error
// wrapping ErrDecrypt for any bad padding.
func DecodeOAEP(alg string, k int, em []byte) ([]byte, error) {
	h, err := OAEPHash(alg)
	if err != nil {
		return nil, err
	}
	hLen := h.Size()
	if k < 2*hLen+2 || len(em) > k {
		return nil, decryptErrorf("%s ciphertext does not decrypt under this key", alg)
	}
	buf := make([]byte, k)
	copy(buf[k-len(em):], em)

	lHash := newHash(h).Sum(nil)
	firstByteIsZero := subtle.ConstantTimeByteEq(buf[0], 0)
	seed, db := buf[1:1+hLen], buf[1+hLen:]
	mgf1XOR(seed, h, db)
	mgf1XOR(db, h, seed)
	lHashGood := subtle.ConstantTimeCompare(lHash, db[:hLen])

	// The rest is zero or more 0x00, then 0x01, then the message.
	var lookingForIndex, index, invalid int
	lookingForIndex = 1
	rest := db[hLen:]
	for i := range rest {
		equals0 := subtle.ConstantTimeByteEq(rest[i], 0)
		equals1 := subtle.ConstantTimeByteEq(rest[i], 1)
		index = subtle.ConstantTimeSelect(lookingForIndex&equals1, i, index)
		lookingForIndex = subtle.ConstantTimeSelect(equals1, 0, lookingForIndex)
		invalid = subtle.ConstantTimeSelect(lookingForIndex&^equals0, 1, invalid)
	}
	if firstByteIsZero&lHashGood&^invalid&^lookingForIndex != 1 {
		clear(buf)
		return nil, decryptErrorf("%s ciphertext does not decrypt under this key", alg)
	}
	out := append([]byte(nil), rest[index+1:]...)
	clear(buf)
	return out, nil
}

// mgf1XOR XORs out with MGF1(seed) under h (RFC 8017, B.2.1).
func mgf1XOR(out []byte, h crypto.Hash, seed []byte) {
	var counter [4]byte
	d := newHash(h)
	var digest []byte
	for done := 0; done < len(out); {
		d.Reset()
		d.Write(seed)
		d.Write(counter[:])
		digest = d.Sum(digest[:0])
		done += subtle.XORBytes(out[done:], out[done:], digest)
		binary.BigEndian.PutUint32(counter[:], binary.BigEndian.Uint32(counter[:])+1)
	}
}
