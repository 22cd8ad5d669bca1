package crypt

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/tink-crypto/tink-go/v2/kwp/subtle"
)

// The key-transfer blob of Azure Key Vault's "bring your own key" import
// of HSM-protected keys (learn.microsoft.com/azure/key-vault/keys/
// byok-specification): the customer's tool wraps a target private key to
// a key-exchange key (KEK), an RSA-HSM key with only the "import"
// operation that the vault generated in its HSM; the vault unwraps it
// inside the HSM. The blob is JSON:
//
//	{"schema_version":"1.0.0",
//	 "header":{"kid":"<the KEK's kid>","alg":"dir","enc":"CKM_RSA_AES_KEY_WRAP"},
//	 "ciphertext":"<base64url>","generator":"<tool name>"}
//
// and the ciphertext is PKCS#11's CKM_RSA_AES_KEY_WRAP output:
// RSA-OAEP(KEK, ephemeral AES-256 key) ‖ AES-KWP(ephemeral key, PKCS#8 of
// the target key). Azure's specification fixes the OAEP hash as SHA-1
// (MGF1 with SHA-1, no label); AES-KWP is RFC 5649's key wrap with
// padding, which also authenticates the wrapped key. The schema version
// is the format's version; the header binds the blob to one KEK.

// Transfer blob constants, as Azure's specification spells them.
const (
	TransferSchemaVersion = "1.0.0"
	TransferAlg           = "dir"
	TransferEnc           = "CKM_RSA_AES_KEY_WRAP"
	// TransferGenerator names Keyhold's own tool in the blobs it makes.
	TransferGenerator = "keyhold key transfer-blob"
)

// transferAESKeySize is the ephemeral AES key's size: AES-256.
const transferAESKeySize = 32

// TransferBlob is a parsed key-transfer blob.
type TransferBlob struct {
	KID        string // the KEK's key id
	Ciphertext []byte // RSA-OAEP part ‖ AES-KWP part
	Generator  string
}

type transferJSON struct {
	SchemaVersion string `json:"schema_version"`
	Header        struct {
		KID string `json:"kid"`
		Alg string `json:"alg"`
		Enc string `json:"enc"`
	} `json:"header"`
	Ciphertext string `json:"ciphertext"`
	Generator  string `json:"generator"`
}

// NewTransferBlob wraps key (a private key x509.MarshalPKCS8PrivateKey
// takes; a vault imports only RSA ones) to kek, the public part of the KEK
// whose key id is kid, and returns the blob's JSON. It is the customer's
// side of the transfer (their HSM vendor's tool does the same inside the
// HSM).
func NewTransferBlob(kek *rsa.PublicKey, kid string, key any) ([]byte, error) {
	if kid == "" {
		return nil, errors.New("crypt: a transfer blob needs the KEK's key id")
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("crypt: encoding the key as PKCS#8: %w", err)
	}
	defer clear(der)
	aesKey := make([]byte, transferAESKeySize)
	if _, err := rand.Read(aesKey); err != nil {
		return nil, err
	}
	defer clear(aesKey)
	wrappedAES, err := rsa.EncryptOAEP(sha1.New(), rand.Reader, kek, aesKey, nil)
	if err != nil {
		return nil, fmt.Errorf("crypt: wrapping the ephemeral key to the KEK: %w", err)
	}
	kwp, err := subtle.NewKWP(aesKey)
	if err != nil {
		return nil, err
	}
	wrappedKey, err := kwp.Wrap(der)
	if err != nil {
		return nil, fmt.Errorf("crypt: wrapping the key with AES-KWP: %w", err)
	}
	var j transferJSON
	j.SchemaVersion = TransferSchemaVersion
	j.Header.KID, j.Header.Alg, j.Header.Enc = kid, TransferAlg, TransferEnc
	j.Ciphertext = base64.RawURLEncoding.EncodeToString(append(wrappedAES, wrappedKey...))
	j.Generator = TransferGenerator
	return json.Marshal(j)
}

// ParseTransferBlob parses a blob's JSON and checks its schema version,
// algorithm and encryption; the errors say which field is wrong and what
// it must be.
func ParseTransferBlob(b []byte) (*TransferBlob, error) {
	var j transferJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("the key transfer blob is not JSON (%v): key_hsm must be the base64url of the .byok file's JSON", err)
	}
	switch {
	case j.SchemaVersion != TransferSchemaVersion:
		return nil, fmt.Errorf("the key transfer blob's schema_version is %q: only %q is supported", j.SchemaVersion, TransferSchemaVersion)
	case j.Header.KID == "":
		return nil, errors.New("the key transfer blob's header has no kid: it must name the key exchange key (KEK) the key was wrapped to")
	case j.Header.Alg != TransferAlg:
		return nil, fmt.Errorf("the key transfer blob's header.alg is %q: it must be %q", j.Header.Alg, TransferAlg)
	case j.Header.Enc != TransferEnc:
		return nil, fmt.Errorf("the key transfer blob's header.enc is %q: it must be %q", j.Header.Enc, TransferEnc)
	}
	ct, err := decodeB64URL(j.Ciphertext)
	if err != nil || len(ct) == 0 {
		return nil, errors.New("the key transfer blob's ciphertext is missing or not base64url")
	}
	return &TransferBlob{KID: j.Header.KID, Ciphertext: ct, Generator: j.Generator}, nil
}

// Split cuts the ciphertext into its RSA-OAEP part, as long as the KEK's
// modulus (kekBytes), and its AES-KWP part.
func (b *TransferBlob) Split(kekBytes int) (wrappedAES, wrappedKey []byte, err error) {
	// The smallest AES-KWP output of a PKCS#8 RSA key is far above 16
	// bytes; 16 is KWP's own floor.
	if len(b.Ciphertext) < kekBytes+16 || (len(b.Ciphertext)-kekBytes)%8 != 0 {
		return nil, nil, fmt.Errorf("the key transfer blob's ciphertext (%d bytes) is not an RSA-OAEP block of the KEK's %d bytes followed by an AES key wrap: the blob was made for a KEK of another size, or is damaged", len(b.Ciphertext), kekBytes)
	}
	return b.Ciphertext[:kekBytes], b.Ciphertext[kekBytes:], nil
}

// UnwrapTransferBlob undoes NewTransferBlob with the KEK's private key in
// process. Only tests and tools use it: a vault unwraps in its HSM.
func UnwrapTransferBlob(kek *rsa.PrivateKey, blob []byte) (*rsa.PrivateKey, error) {
	b, err := ParseTransferBlob(blob)
	if err != nil {
		return nil, err
	}
	wrappedAES, wrappedKey, err := b.Split(kek.Size())
	if err != nil {
		return nil, err
	}
	aesKey, err := rsa.DecryptOAEP(sha1.New(), nil, kek, wrappedAES, nil)
	if err != nil {
		return nil, ErrDecrypt
	}
	defer clear(aesKey)
	kwp, err := subtle.NewKWP(aesKey)
	if err != nil {
		return nil, err
	}
	der, err := kwp.Unwrap(wrappedKey)
	if err != nil {
		return nil, ErrDecrypt
	}
	defer clear(der)
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, err
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("crypt: the transfer blob holds a %T, not an RSA key", k)
	}
	return rk, nil
}

func decodeB64URL(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}
