// Package crypt holds all of Keyhold's cryptography: the master key that
// seals key material at rest, environment keys (EKs) and their binding to an
// environment, the HKDF-derived store keys, the versioned ciphertext formats
// for items and streams, the in-memory key cache, and the generation of TLS
// certificates and token-signing keys.
//
// SCAFFOLD: signatures agreed between parts; bodies to be written.
package crypt

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"io"
	"time"

	"github.com/keyhold/keyhold"
)

// KeySize is the size in bytes of every symmetric key here (AES-256).
const KeySize = 32

// Key is a 256-bit secret key held in memory. Destroy zeroes it. A Key is
// never serialised except sealed or wrapped.
type Key struct{ b *[KeySize]byte }

// NewKey returns a fresh random key.
func NewKey() (*Key, error) { panic("unimplemented") }

// KeyFromBytes returns a key holding a copy of b, which must be KeySize long.
func KeyFromBytes(b []byte) (*Key, error) { panic("unimplemented") }

// Clone returns an independent copy of k.
func (k *Key) Clone() *Key { panic("unimplemented") }

// Destroy zeroes k. Using k afterwards is an error (methods return one).
func (k *Key) Destroy() { panic("unimplemented") }

// Master key file handling. The master key is 32 random bytes, kept as
// base64 text in a file of mode 0600 or in an environment variable.

// GenerateMasterKeyFile creates path (O_EXCL, mode 0600) holding a new
// master key, and returns it.
func GenerateMasterKeyFile(path string) (*Key, error) { panic("unimplemented") }

// ParseMasterKey decodes the base64 text of a master key (surrounding white
// space allowed). Its errors say what is wrong without echoing the text.
func ParseMasterKey(text []byte) (*Key, error) { panic("unimplemented") }

// Seal encrypts plaintext under key with AES-256-GCM for the given purpose
// (for example "mmk" or "token-signing-key"); Open with another purpose
// fails. Format v1: 0x01 | nonce(12) | ciphertext+tag.
func Seal(key *Key, purpose string, plaintext []byte) ([]byte, error) { panic("unimplemented") }

// Open decrypts what Seal produced. A wrong key, purpose or a modified
// ciphertext returns ErrDecrypt.
func Open(key *Key, purpose string, sealed []byte) ([]byte, error) { panic("unimplemented") }

// ErrDecrypt is returned (wrapped) for any authentication failure.
var ErrDecrypt error

// AESWrapper is a keyhold.KeyWrapper over one AES-256 root key (the
// platform's MMK). Its kid is "<id>/<version>".
type AESWrapper struct{}

// NewAESWrapper returns a wrapper for the root key named id at version.
func NewAESWrapper(id, version string, key *Key) *AESWrapper { panic("unimplemented") }

// Wrap implements keyhold.KeyWrapper. keyID must be the wrapper's id.
func (w *AESWrapper) Wrap(ctx context.Context, keyID string, plaintext []byte) (string, []byte, error) {
	panic("unimplemented")
}

// Unwrap implements keyhold.KeyWrapper. kid must be the wrapper's kid.
func (w *AESWrapper) Unwrap(ctx context.Context, kid string, ciphertext []byte) ([]byte, error) {
	panic("unimplemented")
}

var _ keyhold.KeyWrapper = (*AESWrapper)(nil)

// EKPayload serialises an EK together with the environment and epoch it
// belongs to, for wrapping by a root key: RSA-OAEP offers no additional
// data, so the binding travels inside the wrapped bytes. Format v1:
// 0x01 | epoch(4, big endian) | len(envID)(1) | envID | ek(32).
func EKPayload(envID string, epoch uint32, ek *Key) ([]byte, error) { panic("unimplemented") }

// OpenEKPayload parses an unwrapped payload and returns the EK if it belongs
// to envID and epoch; otherwise an error that says which did not match.
func OpenEKPayload(envID string, epoch uint32, payload []byte) (*Key, error) {
	panic("unimplemented")
}

// StoreKey seals the items of one store of one environment at one epoch.
// It is derived with HKDF-SHA256 from the EK, with info binding the
// environment id and store name. Safe for concurrent use until Destroy.
type StoreKey struct{}

// DeriveStoreKey derives the key for store (keyhold.StoreRows, …) of envID.
func DeriveStoreKey(ek *Key, envID string, epoch uint32, store string) (*StoreKey, error) {
	panic("unimplemented")
}

// Destroy zeroes the derived key.
func (k *StoreKey) Destroy() { panic("unimplemented") }

// Seal encrypts one item. Format v1: 0x01 | epoch(4) | nonce(12) |
// ciphertext+tag; the additional data binds the header, environment, store,
// item id and item version.
func (k *StoreKey) Seal(itemID string, version uint64, plaintext []byte) ([]byte, error) {
	panic("unimplemented")
}

// Open decrypts an item sealed for exactly this environment, store, item id
// and version. Anything else, a flipped bit included, returns ErrDecrypt.
func (k *StoreKey) Open(itemID string, version uint64, ciphertext []byte) ([]byte, error) {
	panic("unimplemented")
}

// NewEncryptingWriter returns a writer that encrypts a stream of any length
// into dst with a chunked streaming AEAD, bound like Seal. Close must be
// called to write the final segment; without it the stream is truncated and
// fails to decrypt. Format v1: 0x01 | epoch(4) | streaming-AEAD ciphertext.
func (k *StoreKey) NewEncryptingWriter(dst io.Writer, itemID string, version uint64) (io.WriteCloser, error) {
	panic("unimplemented")
}

// NewDecryptingReader returns a reader of the plaintext of src. Truncation,
// reordered or modified segments make Read return an error wrapping
// ErrDecrypt; no unauthenticated plaintext is ever returned.
func (k *StoreKey) NewDecryptingReader(src io.Reader, itemID string, version uint64) (io.Reader, error) {
	panic("unimplemented")
}

// Epoch reads the epoch from the header of an item or stream ciphertext,
// without a key, so the caller knows which EK to fetch. An unknown format
// version is an error naming it.
func Epoch(header []byte) (uint32, error) { panic("unimplemented") }

// Cache holds unwrapped keys in memory for a time-to-live. Get returns a
// copy that the caller must Destroy; the cache zeroes its own copy when the
// entry expires, is dropped, or the cache is purged. Safe for concurrent use.
type Cache struct{}

// NewCache returns a cache whose entries live for ttl on clock.
func NewCache(ttl time.Duration, clock keyhold.Clock) *Cache { panic("unimplemented") }

// Get returns a copy of the key cached under id, if present and not expired.
func (c *Cache) Get(id string) (*Key, bool) { panic("unimplemented") }

// Put caches a copy of k under id (the caller keeps and destroys k).
func (c *Cache) Put(id string, k *Key) { panic("unimplemented") }

// Drop zeroes and removes the entries whose id starts with prefix.
func (c *Cache) Drop(prefix string) { panic("unimplemented") }

// Purge zeroes and removes every entry.
func (c *Cache) Purge() { panic("unimplemented") }

// Sweep zeroes and removes expired entries; a server calls it periodically.
func (c *Cache) Sweep() { panic("unimplemented") }

// Len returns the number of live entries.
func (c *Cache) Len() int { panic("unimplemented") }

// GenerateCA returns a new self-signed ECDSA P-256 CA certificate (PEM) and
// its private key (PEM, PKCS#8), valid from now for validity.
func GenerateCA(commonName string, now time.Time, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	panic("unimplemented")
}

// IssueServerCert returns a server certificate (PEM) and key (PEM) signed
// by the CA, for the given DNS names and IP addresses.
func IssueServerCert(caCertPEM, caKeyPEM []byte, hosts []string, now time.Time, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	panic("unimplemented")
}

// LoadServerTLS returns a tls.Config (TLS 1.2 minimum) serving cert/key.
func LoadServerTLS(certPEM, keyPEM []byte) (*tls.Config, error) { panic("unimplemented") }

// CertPool returns a pool holding the PEM certificate(s).
func CertPool(pem []byte) (*x509.CertPool, error) { panic("unimplemented") }

// NewSigningKey returns a fresh ECDSA P-256 key for signing tokens, and its
// PKCS#8 DER encoding (to be sealed with Seal before storage).
func NewSigningKey() (*ecdsa.PrivateKey, []byte, error) { panic("unimplemented") }

// ParseSigningKey parses the PKCS#8 DER that NewSigningKey returned.
func ParseSigningKey(der []byte) (*ecdsa.PrivateKey, error) { panic("unimplemented") }
