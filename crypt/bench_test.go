package crypt

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"io"
	"testing"
)

// benchSize is the stream size the throughput benchmarks use: large enough
// that per-stream setup is noise.
const benchSize = 64 << 20

// benchChunk is how much a caller hands the writer per Write, as io.Copy
// from a network body does.
const benchChunk = 32 << 10

func benchStoreKey(b *testing.B) *StoreKey {
	b.Helper()
	ek, err := KeyFromBytes(bytes.Repeat([]byte{7}, KeySize))
	if err != nil {
		b.Fatal(err)
	}
	sk, err := DeriveStoreKey(ek, "00000000-0000-0000-0000-000000000001", 1, "files")
	if err != nil {
		b.Fatal(err)
	}
	return sk
}

func encryptStream(b *testing.B, sk *StoreKey, dst io.Writer, pt []byte) {
	b.Helper()
	w, err := sk.NewEncryptingWriter(dst, "report.pdf", 1)
	if err != nil {
		b.Fatal(err)
	}
	for p := pt; len(p) > 0; {
		n := min(len(p), benchChunk)
		if _, err := w.Write(p[:n]); err != nil {
			b.Fatal(err)
		}
		p = p[n:]
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkStreamEncrypt(b *testing.B) {
	sk := benchStoreKey(b)
	pt := make([]byte, benchSize)
	b.SetBytes(benchSize)
	for b.Loop() {
		encryptStream(b, sk, io.Discard, pt)
	}
}

func BenchmarkStreamDecrypt(b *testing.B) {
	sk := benchStoreKey(b)
	var ct bytes.Buffer
	encryptStream(b, sk, &ct, make([]byte, benchSize))
	buf := make([]byte, benchChunk)
	b.SetBytes(benchSize)
	for b.Loop() {
		r, err := sk.NewDecryptingReader(bytes.NewReader(ct.Bytes()), "report.pdf", 1)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{r}, buf)
		if err != nil || n != benchSize {
			b.Fatalf("decrypted %d bytes, err %v; want %d", n, err, benchSize)
		}
	}
}

// BenchmarkRawAESGCM is the baseline the stream benchmarks are judged
// against: the same bytes sealed by one AES-256-GCM in 1 MiB chunks, with
// no key derivation, framing or copying.
func BenchmarkRawAESGCM(b *testing.B) {
	block, err := aes.NewCipher(bytes.Repeat([]byte{7}, KeySize))
	if err != nil {
		b.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		b.Fatal(err)
	}
	const chunk = 1 << 20
	pt := make([]byte, benchSize)
	out := make([]byte, 0, chunk+tagSize)
	nonce := make([]byte, nonceSize)
	b.SetBytes(benchSize)
	for b.Loop() {
		for i := 0; i < benchSize; i += chunk {
			binary.BigEndian.PutUint64(nonce[4:], uint64(i))
			out = aead.Seal(out[:0], nonce, pt[i:i+chunk], nil)
		}
	}
}

func BenchmarkItemSealOpen1KiB(b *testing.B) {
	sk := benchStoreKey(b)
	pt := make([]byte, 1<<10)
	b.SetBytes(int64(len(pt)))
	for b.Loop() {
		ct, err := sk.Seal("accounts/42", 3, pt)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := sk.Open("accounts/42", 3, ct); err != nil {
			b.Fatal(err)
		}
	}
}
