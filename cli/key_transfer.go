package cli

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"slices"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/spf13/cobra"

	"github.com/keyhold/keyhold/crypt"
)

// The BYOK key transfer, as Azure Key Vault has it (docs/keyvault.md):
//
//	keyhold key create --vault V -n kek --kty RSA-HSM --ops import
//	keyhold key download --vault V -n kek --out kek.pem
//	keyhold key transfer-blob --kek kek.pem --key key.pem --out key.byok
//	keyhold key import --vault V -n cmk --byok-file key.byok
//
// transfer-blob is the customer's side, for tests and for people without
// an HSM vendor's tool: it reads the private key from a file, so it is
// only as safe as that file; a vendor's tool wraps the key inside the
// customer's HSM.

// pemKIDHeader is the PEM header that key download writes the KEK's kid
// in, so that transfer-blob needs no --kid.
const pemKIDHeader = "Kid"

// KeyDownloadOptions are the parsed arguments of "keyhold key download".
type KeyDownloadOptions struct {
	IO      *IOStreams
	Ctx     context.Context
	Clients clientsFunc

	KeyTarget
	Version string
	Out     string
}

func newCmdKeyDownload(f *Factory, runF func(*KeyDownloadOptions) error) *cobra.Command {
	opts := &KeyDownloadOptions{IO: f.IO, Clients: f.keyVaultClients}
	cmd := &cobra.Command{
		Use:   "download --vault VAULT -n NAME --out FILE.pem [--version V]",
		Short: "Write a key's public part to a PEM file (a KEK's, for transfer-blob)",
		Long: `Write the public key of a key version (the current one by default) to a PEM
file (SubjectPublicKeyInfo), with the version's kid in a "Kid" header, which
"keyhold key transfer-blob" reads.`,
		Example: `  keyhold key download --vault contoso-kv -n kek --out kek.pem`,
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Ctx = cmd.Context()
			if err := opts.KeyTarget.check(cmd, true); err != nil {
				return err
			}
			if err := requireFlags(cmd, "out"); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return keyDownloadRun(opts)
		},
	}
	opts.KeyTarget.flags(cmd, true)
	cmd.Flags().StringVar(&opts.Version, "version", "", "Key `VERSION` (default: the current one)")
	cmd.Flags().StringVar(&opts.Out, "out", "", "PEM `FILE` to write")
	return cmd
}

func keyDownloadRun(opts *KeyDownloadOptions) error {
	kc, err := opts.KeyTarget.client(opts.Clients)
	if err != nil {
		return err
	}
	res, err := kc.GetKey(opts.Ctx, opts.Name, opts.Version, nil)
	if err != nil {
		return sdkError(err)
	}
	k := res.Key
	if k == nil || len(k.N) == 0 || len(k.E) == 0 || k.KID == nil {
		return fmt.Errorf("the server's answer for key %s has no RSA public key", opts.Name)
	}
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(k.N), E: int(new(big.Int).SetBytes(k.E).Int64())}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return err
	}
	out := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Headers: map[string]string{pemKIDHeader: string(*k.KID)}, Bytes: der})
	if err := writeFileAtomic(opts.Out, out); err != nil {
		return err
	}
	fmt.Fprintf(opts.IO.ErrOut, "Wrote the public key of %s to %s\n", *k.KID, opts.Out)
	return nil
}

// KeyTransferBlobOptions are the parsed arguments of "keyhold key
// transfer-blob".
type KeyTransferBlobOptions struct {
	IO  *IOStreams
	KEK string // PEM file of the KEK's public key
	Key string // PEM file of the private key to transfer
	KID string // the KEK's kid; default: the PEM's Kid header
	Out string
}

func newCmdKeyTransferBlob(f *Factory, runF func(*KeyTransferBlobOptions) error) *cobra.Command {
	opts := &KeyTransferBlobOptions{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "transfer-blob --kek KEK.pem --key KEY.pem [--kid KEK_KID] --out FILE.byok",
		Short: "Wrap a private key to a vault's key exchange key (BYOK transfer blob)",
		Long: `Make Azure Key Vault's key-transfer blob (a .byok file) from an RSA private key
and the public key of a key exchange key (KEK): an RSA-HSM key of the vault
with only the import operation. The key is wrapped with an ephemeral AES-256
key (AES key wrap with padding, RFC 5649), itself wrapped to the KEK with
RSA-OAEP (SHA-1), as Azure's BYOK specification has it. Import the file with
"keyhold key import --byok-file", or any Key Vault client; only the vault's
HSM can unwrap it.

--kek is a PEM public key (PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE);
"keyhold key download" writes one with the KEK's kid, so --kid is needed
only for other files. --key is a PEM RSA private key (PKCS#8 or PKCS#1).`,
		Example: `  keyhold key transfer-blob --kek kek.pem --key key.pem --out key.byok`,
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "kek", "key", "out"); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return keyTransferBlobRun(opts)
		},
	}
	cmd.Flags().StringVar(&opts.KEK, "kek", "", "PEM `FILE` of the KEK's public key")
	cmd.Flags().StringVar(&opts.Key, "key", "", "PEM `FILE` of the RSA private key to transfer")
	cmd.Flags().StringVar(&opts.KID, "kid", "", "The KEK's key `ID` (default: the Kid header of --kek)")
	cmd.Flags().StringVar(&opts.Out, "out", "", "`FILE` to write the blob to (.byok)")
	return cmd
}

func keyTransferBlobRun(opts *KeyTransferBlobOptions) error {
	kek, kid, err := readKEK(opts.KEK)
	if err != nil {
		return err
	}
	if opts.KID != "" {
		kid = opts.KID
	}
	if kid == "" {
		return usageErrorf("%s has no Kid header: give the KEK's kid with --kid (keyhold key show --vault VAULT -n KEK -o id)", opts.KEK)
	}
	key, err := readRSAPrivateKey(opts.Key)
	if err != nil {
		return err
	}
	if bits := key.N.BitLen(); !slices.Contains([]int{2048, 3072, 4096}, bits) {
		return fmt.Errorf("%s is an RSA-%d key: a vault imports RSA keys of 2048, 3072 or 4096 bits", opts.Key, bits)
	}
	blob, err := crypt.NewTransferBlob(kek, kid, key)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(opts.Out, blob); err != nil {
		return err
	}
	fmt.Fprintf(opts.IO.ErrOut, "Wrote the transfer blob for KEK %s to %s\n", kid, opts.Out)
	return nil
}

// readKEK reads a PEM public key and the kid its Kid header names, if
// any.
func readKEK(path string) (*rsa.PublicKey, string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, "", err
	}
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, "", fmt.Errorf("%s holds no PEM block: give the KEK's public key as PEM (keyhold key download writes one)", path)
	}
	var pub any
	switch b.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(b.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(b.Bytes)
	case "CERTIFICATE":
		var c *x509.Certificate
		if c, err = x509.ParseCertificate(b.Bytes); err == nil {
			pub = c.PublicKey
		}
	default:
		return nil, "", fmt.Errorf("%s holds a PEM %q: give the KEK's public key (PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE)", path, b.Type)
	}
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", path, err)
	}
	rp, ok := pub.(*rsa.PublicKey)
	if !ok {
		return nil, "", fmt.Errorf("%s holds a %T: a KEK is an RSA key", path, pub)
	}
	return rp, b.Headers[pemKIDHeader], nil
}

// readRSAPrivateKey reads a PEM RSA private key (PKCS#8 or PKCS#1).
func readRSAPrivateKey(path string) (*rsa.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	defer clear(data)
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, fmt.Errorf("%s holds no PEM block: give the RSA private key as PEM (PRIVATE KEY or RSA PRIVATE KEY)", path)
	}
	defer clear(b.Bytes)
	var k any
	switch b.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	default:
		return nil, fmt.Errorf("%s holds a PEM %q: give an RSA private key (PRIVATE KEY or RSA PRIVATE KEY; an encrypted key must be decrypted first)", path, b.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s holds a %T: only RSA keys can be imported", path, k)
	}
	return rk, nil
}

func writeFileAtomic(path string, data []byte) error {
	tf, err := newTempFile(path)
	if err != nil {
		return err
	}
	defer tf.abort()
	if _, err := tf.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return tf.commit()
}

// KeyImportOptions are the parsed arguments of "keyhold key import".
type KeyImportOptions struct {
	IO      *IOStreams
	Ctx     context.Context
	Clients clientsFunc
	Format  Format

	KeyTarget
	BYOKFile string
	Ops      []string
}

func newCmdKeyImport(f *Factory, runF func(*KeyImportOptions) error) *cobra.Command {
	opts := &KeyImportOptions{IO: f.IO, Clients: f.keyVaultClients}
	var ops string
	cmd := &cobra.Command{
		Use:   "import --vault VAULT -n NAME --byok-file FILE.byok [--ops OPS]",
		Short: "Import an HSM-protected key from a BYOK transfer blob",
		Long: `Import the key a BYOK transfer blob (.byok file) carries as a new RSA-HSM key
version. The vault unwraps it inside its PKCS#11 token with the key exchange
key (KEK) the blob names, which must be in the same vault; the key never
exists in plaintext outside the token.`,
		Example: `  keyhold key import --vault contoso-kv -n cmk --byok-file key.byok --ops wrapKey,unwrapKey`,
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			if err := opts.KeyTarget.check(cmd, true); err != nil {
				return err
			}
			if err := requireFlags(cmd, "byok-file"); err != nil {
				return err
			}
			opts.Ops = nil
			for _, o := range splitList(ops) {
				i := slices.IndexFunc(keyOps, func(k string) bool { return strings.EqualFold(k, o) })
				if i < 0 {
					return usageErrorf("--ops: %q is not a key operation: use %s", o, strings.Join(keyOps, ", "))
				}
				opts.Ops = append(opts.Ops, keyOps[i])
			}
			if runF != nil {
				return runF(opts)
			}
			return keyImportRun(opts)
		},
	}
	opts.KeyTarget.flags(cmd, true)
	cmd.Flags().StringVar(&opts.BYOKFile, "byok-file", "", "The transfer blob `FILE` (.byok)")
	cmd.Flags().StringVar(&ops, "ops", "", "Comma-separated key `OPERATIONS` (default: encrypt, decrypt, sign, verify, wrapKey, unwrapKey)")
	return cmd
}

func keyImportRun(opts *KeyImportOptions) error {
	blob, err := os.ReadFile(opts.BYOKFile)
	if err != nil {
		return err
	}
	kc, err := opts.KeyTarget.client(opts.Clients)
	if err != nil {
		return err
	}
	jwk := &azkeys.JSONWebKey{Kty: to.Ptr(azkeys.KeyTypeRSAHSM), T: blob}
	for _, o := range opts.Ops {
		jwk.KeyOps = append(jwk.KeyOps, to.Ptr(azkeys.KeyOperation(o)))
	}
	res, err := kc.ImportKey(opts.Ctx, opts.Name, azkeys.ImportKeyParameters{Key: jwk, HSM: to.Ptr(true)}, nil)
	if err != nil {
		return sdkError(err)
	}
	return printKey(opts.IO.Out, opts.Format, &res.KeyBundle)
}
