package vault

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// The unwrap benchmarks compare a full UnwrapKey through the service
// (authorization with the caller's role assignments, the key version read
// from SQLite, the private key opened from its sealed form, RSA-OAEP-256,
// and the audit entry written in its own transaction) with the bare
// RSA-OAEP-256 decryption of crypto/rsa under the same key:
//
//	go test ./vault -run '^$' -bench 'Unwrap|RawRSAOAEP' -benchtime 3s
//
// On a shared machine the separate benchmarks drift with the load; the
// UnwrapVsRaw ones time both in the same loop, alternately, and report
// the ratio, which the load affects far less.

var benchKeys sync.Map // bits -> func() (*rsa.PrivateKey, error)

// benchKey returns one key per size for the whole binary.
func benchKey(b *testing.B, bits int) *rsa.PrivateKey {
	b.Helper()
	f, _ := benchKeys.LoadOrStore(bits, sync.OnceValues(func() (*rsa.PrivateKey, error) { return crypt.GenerateRSAKey(bits) }))
	k, err := f.(func() (*rsa.PrivateKey, error))()
	if err != nil {
		b.Fatal(err)
	}
	return k
}

// benchService returns a service with an RBAC vault holding key "cmk"
// (k imported), and a value wrapped under it.
func benchService(b *testing.B, k *rsa.PrivateKey) (f *fixture, version string, ct []byte) {
	b.Helper()
	store, _ := storetest.OpenSQLiteAt(b)
	f = newFixtureOn(b, store, nil)
	v := f.rbacVault("kv-bench", nil)
	kb, err := f.svc.ImportKey(as(officer), v.Name, "cmk", jwkOf(k), false, keyhold.KeyAttributes{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	_, ct, err = f.svc.WrapKey(as(encUser), v.Name, "cmk", "", crypt.AlgRSAOAEP256, make([]byte, 32))
	if err != nil {
		b.Fatal(err)
	}
	return f, kb.Version.Version, ct
}

func benchUnwrap(b *testing.B, bits int) {
	f, version, ct := benchService(b, benchKey(b, bits))
	ctx := as(encUser)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := f.svc.UnwrapKey(ctx, "kv-bench", "cmk", version, crypt.AlgRSAOAEP256, ct); err != nil {
			b.Fatal(err)
		}
	}
}

func benchRaw(b *testing.B, bits int) {
	k := benchKey(b, bits)
	ct, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, &k.PublicKey, make([]byte, 32), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := rsa.DecryptOAEP(sha256.New(), nil, k, ct, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnwrap2048(b *testing.B)     { benchUnwrap(b, 2048) }
func BenchmarkUnwrap3072(b *testing.B)     { benchUnwrap(b, 3072) }
func BenchmarkUnwrap4096(b *testing.B)     { benchUnwrap(b, 4096) }
func BenchmarkRawRSAOAEP2048(b *testing.B) { benchRaw(b, 2048) }
func BenchmarkRawRSAOAEP3072(b *testing.B) { benchRaw(b, 3072) }
func BenchmarkRawRSAOAEP4096(b *testing.B) { benchRaw(b, 4096) }

// BenchmarkUnwrapParallel measures unwrap throughput with GOMAXPROCS
// callers at once: RSA runs in parallel, the SQLite audit writes queue on
// its one write connection.
func BenchmarkUnwrapParallel(b *testing.B) {
	f, version, ct := benchService(b, benchKey(b, 2048))
	ctx := as(encUser)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, _, err := f.svc.UnwrapKey(ctx, "kv-bench", "cmk", version, crypt.AlgRSAOAEP256, ct); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkRawRSAOAEPParallel2048 is the parallel baseline.
func BenchmarkRawRSAOAEPParallel2048(b *testing.B) {
	k := benchKey(b, 2048)
	ct, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, &k.PublicKey, make([]byte, 32), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := rsa.DecryptOAEP(sha256.New(), nil, k, ct, nil); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// benchVsRaw alternates a service unwrap and a bare decryption under the
// same key and reports both times and their ratio.
func benchVsRaw(b *testing.B, bits int) {
	k := benchKey(b, bits)
	f, version, ct := benchService(b, k)
	raw, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, &k.PublicKey, make([]byte, 32), nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx := as(encUser)
	var svcT, rawT time.Duration
	n := 0
	for b.Loop() {
		t0 := time.Now()
		if _, _, err := f.svc.UnwrapKey(ctx, "kv-bench", "cmk", version, crypt.AlgRSAOAEP256, ct); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := rsa.DecryptOAEP(sha256.New(), nil, k, raw, nil); err != nil {
			b.Fatal(err)
		}
		rawT += time.Since(t1)
		svcT += t1.Sub(t0)
		n++
	}
	b.ReportMetric(float64(svcT.Nanoseconds())/float64(n), "service-ns/op")
	b.ReportMetric(float64(rawT.Nanoseconds())/float64(n), "raw-ns/op")
	b.ReportMetric(float64(svcT)/float64(rawT), "service/raw")
}

func BenchmarkUnwrapVsRaw2048(b *testing.B) { benchVsRaw(b, 2048) }
func BenchmarkUnwrapVsRaw3072(b *testing.B) { benchVsRaw(b, 3072) }
func BenchmarkUnwrapVsRaw4096(b *testing.B) { benchVsRaw(b, 4096) }
