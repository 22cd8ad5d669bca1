package crypt

import (
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"strings"

	"golang.org/x/crypto/pkcs12"
)

// Legacy BYOK keys (issue 14): a tenant's own RSA key, kept in the
// platform's key store sealed under the master key (SealRSAKey) for a
// purpose that names the tenant and the key's id.

// BYOKKeyPurpose returns the Seal purpose of a tenant's BYOK key:
// "byok tenant key v1\x00" | lp(tenantID) | lp(id). A sealed key copied to
// another tenant or id does not open there.
func BYOKKeyPurpose(tenantID, id string) string {
	var b strings.Builder
	b.WriteString("byok tenant key v1\x00")
	for _, s := range []string{tenantID, id} {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(s)))
		b.Write(n[:])
		b.WriteString(s)
	}
	return b.String()
}

// RSAThumbprint returns the RFC 7638 JWK thumbprint of pub: SHA-256 over
// {"e":…,"kty":"RSA","n":…} (members in that order, no spaces), in
// unpadded base64url. Two uploads of one key have the same thumbprint
// whatever form (JWK or PFX) each came in.
func RSAThumbprint(pub *rsa.PublicKey) string {
	b64 := base64.RawURLEncoding.EncodeToString
	e := big.NewInt(int64(pub.E)).Bytes()
	doc := `{"e":"` + b64(e) + `","kty":"RSA","n":"` + b64(pub.N.Bytes()) + `"}`
	sum := sha256.Sum256([]byte(doc))
	return b64(sum[:])
}

// ErrPFXPassword is returned (wrapped) when a PKCS #12 file's password is
// wrong.
var ErrPFXPassword = errors.New("crypt: the PFX password is wrong")

// ParsePFX opens a PKCS #12 (PFX) file holding one RSA private key and its
// certificate, with password, and checks the key (a size of RSASizes).
// It reads the PBE-SHA1-3DES and RC2 encryption of Windows' and OpenSSL 1's
// exports; a file encrypted with PBES2/AES (OpenSSL 3's default) is refused
// with a message saying how to export one that opens (-legacy), or to
// upload the key as a JWK. Its errors never quote the file's bytes.
func ParsePFX(pfx []byte, password string) (*rsa.PrivateKey, error) {
	key, _, err := pkcs12.Decode(pfx, password)
	switch {
	case errors.Is(err, pkcs12.ErrIncorrectPassword):
		return nil, ErrPFXPassword
	case err != nil && strings.Contains(err.Error(), "unknown OID") || err != nil && strings.Contains(err.Error(), "algorithm"):
		return nil, fmt.Errorf("crypt: the PFX file is encrypted with an algorithm Keyhold can't read (%v): export it with PBE-SHA1-3DES (openssl pkcs12 -export -legacy, or -keypbe PBE-SHA1-3DES -certpbe PBE-SHA1-3DES -macalg sha1), or upload the key as a JWK", err)
	case err != nil:
		return nil, fmt.Errorf("crypt: the file is not a PFX holding one private key and its certificate (%v): export the key and its certificate to one PKCS #12 file, or upload the key as a JWK", err)
	}
	rk, ok := key.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("crypt: the PFX holds a %T, not an RSA key: BYOK keys are RSA keys of 2048, 3072 or 4096 bits", key)
	}
	if !ValidRSASize(rk.N.BitLen()) {
		return nil, fmt.Errorf("crypt: the PFX holds an RSA key of %d bits: BYOK keys are 2048, 3072 or 4096 bits", rk.N.BitLen())
	}
	if err := rk.Validate(); err != nil {
		return nil, errors.New("crypt: the PFX's RSA key is not valid (its components don't match)")
	}
	rk.Precompute()
	return rk, nil
}
