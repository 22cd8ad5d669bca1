//go:build keyhold_azure

package keyprovider_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/keyprovider"
)

// benchKey creates a key of bits bits in a fresh vault that id may use,
// and returns its unversioned id.
func benchKey(b *testing.B, w *world, id *identity, bits int) string {
	b.Helper()
	vaultName := w.newVault(b)
	w.grant(b, id, vaultName)
	kb, err := w.v.CreateKey(w.admin, vaultName, fmt.Sprintf("rsa%d", bits), keyhold.CreateKeyParams{Type: keyhold.KeyTypeRSA, Size: bits})
	if err != nil {
		b.Fatal(err)
	}
	return strings.TrimSuffix(kb.KID, "/"+kb.Version.Version)
}

// BenchmarkWrapUnwrap measures one wrap and one unwrap of a 32-byte
// environment key with RSA-OAEP-256: through the HTTP API with azkeys
// (HTTPS, the Key Vault challenge done once, then a cached token), in
// process through the vault service (builtin), and with crypto/rsa alone
// (raw), the floor the other two are compared with.
func BenchmarkWrapUnwrap(b *testing.B) {
	w := newWorld(b)
	id := w.newIdentity(b)
	ctx := context.Background()
	providers := []struct {
		name string
		p    keyprovider.Provider
	}{
		{"HTTP", w.azureProvider(b, id)},
		{"builtin", keyprovider.NewBuiltin(w.v, &id.Identity)},
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	for _, bits := range []int{2048, 3072, 4096} {
		keyID := benchKey(b, w, id, bits)
		for _, pr := range providers {
			b.Run(fmt.Sprintf("%s/RSA-%d", pr.name, bits), func(b *testing.B) {
				for b.Loop() {
					kid, ct, err := pr.p.Wrap(ctx, keyID, secret)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := pr.p.Unwrap(ctx, kid, ct); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
		priv, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("raw/RSA-%d", bits), func(b *testing.B) {
			for b.Loop() {
				ct, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, &priv.PublicKey, secret, nil)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := rsa.DecryptOAEP(sha256.New(), nil, priv, ct, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkUnwrapParallel measures concurrent unwraps of one RSA-2048
// ciphertext through the HTTP API (azkeys over HTTPS), GOMAXPROCS
// goroutines at a time (raise with -cpu).
func BenchmarkUnwrapParallel(b *testing.B) {
	w := newWorld(b)
	id := w.newIdentity(b)
	keyID := benchKey(b, w, id, 2048)
	p := w.azureProvider(b, id)
	ctx := context.Background()
	kid, ct, err := p.Wrap(ctx, keyID, make([]byte, 32))
	if err != nil {
		b.Fatal(err)
	}
	b.SetParallelism(4) // requests wait on the network and the store, not the CPU
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := p.Unwrap(ctx, kid, ct); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
