package crypt

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"testing"
	"testing/iotest"

	"github.com/tink-crypto/tink-go/v2/streamingaead/subtle"
)

// Stream geometry, from tink's own parameters rather than restated.
var (
	// segPT is the plaintext of every segment but the first.
	segPT = streamSegmentSize - subtle.AESGCMHKDFTagSizeInBytes
	// tinkHeader is tink's header: length byte, salt, nonce prefix.
	tinkHeader = func() int {
		s, err := subtle.NewAESGCMHKDF(make([]byte, KeySize), "SHA256", KeySize, streamSegmentSize, 0)
		if err != nil {
			panic(err)
		}
		return s.HeaderLength()
	}()
	// firstPT is the plaintext of the first segment, which shares its
	// ciphertext segment with tink's header.
	firstPT = segPT - tinkHeader
)

// segmentOffset returns where ciphertext segment i (i >= 1) starts in a
// stream: the first segment and tink's header fill exactly one segment size
// after Keyhold's 5-byte header.
func segmentOffset(i int) int { return headerSize + i*streamSegmentSize }

// streamLen returns the ciphertext size of a stream of n plaintext bytes.
func streamLen(n int) int {
	segments := 1
	if n > firstPT {
		segments += (n - firstPT + segPT - 1) / segPT
	}
	return headerSize + tinkHeader + n + segments*tagSize
}

func encrypt(t testing.TB, sk *StoreKey, itemID string, version uint64, pt []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := sk.NewEncryptingWriter(&buf, itemID, version)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(pt); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// decrypt returns what the reader gave before it failed, and the error.
func decrypt(sk *StoreKey, itemID string, version uint64, src io.Reader) ([]byte, error) {
	r, err := sk.NewDecryptingReader(src, itemID, version)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

func TestStreamRoundTripAtSegmentBoundaries(t *testing.T) {
	if firstPT <= 0 || segPT != streamSegmentSize-16 {
		t.Fatalf("unexpected geometry: first segment %d, segment %d", firstPT, segPT)
	}
	sk := mustStoreKey(t, testKey(t, 0x20), testEnv, 3, "files")
	sizes := []struct {
		name string
		n    int
	}{
		{"empty", 0},
		{"one byte", 1},
		{"first segment -1", firstPT - 1},
		{"first segment", firstPT},
		{"first segment +1", firstPT + 1},
		{"segment -1", segPT - 1},
		{"segment", segPT},
		{"segment +1", segPT + 1},
		{"two segments -1", firstPT + segPT - 1},
		{"two segments", firstPT + segPT},
		{"two segments +1", firstPT + segPT + 1},
		{"3 segments +5", 3*segPT + 5},
	}
	for _, s := range sizes {
		t.Run(s.name, func(t *testing.T) {
			pt := pattern(s.n)
			ct := encrypt(t, sk, "f.bin", 2, pt)
			if len(ct) != streamLen(s.n) {
				t.Fatalf("stream of %d bytes encrypted to %d; want %d", s.n, len(ct), streamLen(s.n))
			}
			if epoch, err := Epoch(ct); err != nil || epoch != 3 {
				t.Fatalf("Epoch = %d, %v; want 3", epoch, err)
			}
			got, err := decrypt(sk, "f.bin", 2, bytes.NewReader(ct))
			if err != nil {
				t.Fatalf("decrypting: %v", err)
			}
			if !bytes.Equal(got, pt) {
				t.Fatalf("decrypted %d bytes that differ from the %d written", len(got), len(pt))
			}
			// Short reads from the source must not matter.
			got, err = decrypt(sk, "f.bin", 2, iotest.HalfReader(iotest.OneByteReader(bytes.NewReader(ct))))
			if err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("decrypting from a one-byte reader: %d bytes, %v", len(got), err)
			}
		})
	}
}

// TestStreamSmallWrites writes one byte at a time: segmenting must not
// depend on how the caller chunks its writes.
func TestStreamSmallWrites(t *testing.T) {
	sk := mustStoreKey(t, testKey(t, 0x20), testEnv, 3, "files")
	pt := pattern(firstPT + 10)
	var buf bytes.Buffer
	w, err := sk.NewEncryptingWriter(&buf, "f", 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(w, iotest.OneByteReader(bytes.NewReader(pt))); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Fatal("Write after Close succeeded")
	}
	r, err := sk.NewDecryptingReader(bytes.NewReader(buf.Bytes()), "f", 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := iotest.TestReader(r, pt); err != nil {
		t.Fatal(err)
	}
}

func TestStreamUnclosedIsTruncated(t *testing.T) {
	sk := mustStoreKey(t, testKey(t, 0x20), testEnv, 3, "files")
	var buf bytes.Buffer
	w, err := sk.NewEncryptingWriter(&buf, "f", 1)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(pattern(2*segPT + 7)) // no Close
	if _, err := decrypt(sk, "f", 1, &buf); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("decrypting a stream whose writer was never closed: error %v; want ErrDecrypt", err)
	}
}

// checkRefused fails t unless decrypting ct fails with ErrDecrypt, having
// returned at most a prefix of want (authenticated segments before the bad
// one).
func checkRefused(t *testing.T, sk *StoreKey, itemID string, version uint64, ct, want []byte) {
	t.Helper()
	got, err := decrypt(sk, itemID, version, bytes.NewReader(ct))
	if !errors.Is(err, ErrDecrypt) {
		t.Fatalf("error %v; want ErrDecrypt", err)
	}
	if !bytes.HasPrefix(want, got) {
		t.Fatalf("returned %d bytes that are not a prefix of the plaintext", len(got))
	}
}

func TestStreamTamperedStructure(t *testing.T) {
	sk := mustStoreKey(t, testKey(t, 0x20), testEnv, 3, "files")
	pt := pattern(3*segPT + 5)
	ct := encrypt(t, sk, "f", 1, pt)
	// Segments 0 to 3: 3*segPT+5 = firstPT + 2*segPT + (tinkHeader+5).
	if len(ct) != segmentOffset(3)+tinkHeader+5+tagSize {
		t.Fatalf("unexpected stream layout: %d bytes", len(ct))
	}
	seg := func(i int) []byte { return ct[segmentOffset(i):segmentOffset(i+1)] }
	join := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

	tests := []struct {
		name string
		ct   []byte
	}{
		{"empty", nil},
		{"header cut", ct[:3]},
		{"header only", ct[:headerSize]},
		{"tink header cut", ct[:headerSize+tinkHeader/2]},
		{"no segments", ct[:headerSize+tinkHeader]},
		{"first segment cut", ct[:headerSize+tinkHeader+100]},
		{"last segment dropped", ct[:segmentOffset(3)]},
		{"last two segments dropped", ct[:segmentOffset(2)]},
		{"last byte dropped", ct[:len(ct)-1]},
		{"last segment cut to its tag", ct[:len(ct)-5]},
		{"middle cut", ct[:segmentOffset(1)+segPT/2]},
		{"byte appended", append(bytes.Clone(ct), 0)},
		{"segment appended", join(ct, seg(1))},
		{"segments 1 and 2 swapped", join(ct[:segmentOffset(1)], seg(2), seg(1), ct[segmentOffset(3):])},
		{"segment 1 repeated", join(ct[:segmentOffset(1)], seg(1), seg(1), ct[segmentOffset(3):])},
		{"segment 2 dropped", join(ct[:segmentOffset(2)], ct[segmentOffset(3):])},
		{"last segment moved first", join(ct[:segmentOffset(1)], ct[segmentOffset(3):], seg(1), seg(2))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkRefused(t, sk, "f", 1, tt.ct, pt) })
	}

	t.Run("segments from another stream", func(t *testing.T) {
		// Same key, item and version; only the salt differs.
		other := encrypt(t, sk, "f", 1, pt)
		checkRefused(t, sk, "f", 1, join(ct[:segmentOffset(2)], other[segmentOffset(2):]), pt)
	})
}

func TestStreamBitFlips(t *testing.T) {
	sk := mustStoreKey(t, testKey(t, 0x20), testEnv, 3, "files")
	t.Run("every bit of a small stream", func(t *testing.T) {
		pt := []byte("twenty bytes of data")
		ct := encrypt(t, sk, "f", 1, pt)
		for i := range len(ct) * 8 {
			got, err := decrypt(sk, "f", 1, bytes.NewReader(flipBit(ct, i)))
			if !errors.Is(err, ErrDecrypt) || len(got) != 0 {
				t.Fatalf("bit %d flipped: %d bytes, error %v; want ErrDecrypt and nothing", i, len(got), err)
			}
		}
	})
	t.Run("bits of each segment of a long stream", func(t *testing.T) {
		pt := pattern(3*segPT + 5)
		ct := encrypt(t, sk, "f", 1, pt)
		for _, off := range []int{0, 1, 4, headerSize, headerSize + 1, headerSize + tinkHeader - 1, headerSize + tinkHeader,
			segmentOffset(1) - 1, segmentOffset(1), segmentOffset(2) + 77, segmentOffset(3) - 1, segmentOffset(3), len(ct) - 1} {
			t.Run(fmt.Sprintf("byte %d", off), func(t *testing.T) {
				checkRefused(t, sk, "f", 1, flipBit(ct, off*8+3), pt)
			})
		}
	})
}

func TestStreamBinding(t *testing.T) {
	ek := testKey(t, 0x20)
	sk := mustStoreKey(t, ek, testEnv, 3, "files")
	pt := pattern(100)
	ct := encrypt(t, sk, "report.pdf", 4, pt)
	tests := []struct {
		name    string
		key     *StoreKey
		itemID  string
		version uint64
		wantErr string
	}{
		{"other item", sk, "other.pdf", 4, `stream of item "other.pdf" version 4 failed authentication`},
		{"older version", sk, "report.pdf", 3, "failed authentication"},
		{"other store", mustStoreKey(t, ek, testEnv, 3, "rows"), "report.pdf", 4, "failed authentication"},
		{"other environment", mustStoreKey(t, ek, "11111111-2222-3333-4444-555555555555", 3, "files"), "report.pdf", 4, "failed authentication"},
		{"other epoch", mustStoreKey(t, ek, testEnv, 4, "files"), "report.pdf", 4, "stream was sealed at epoch 3; this key of environment"},
		{"other EK", mustStoreKey(t, testKey(t, 0x21), testEnv, 3, "files"), "report.pdf", 4, "failed authentication"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decrypt(tt.key, tt.itemID, tt.version, bytes.NewReader(ct))
			wantDecryptErr(t, err, tt.wantErr)
			if len(got) != 0 {
				t.Fatalf("returned %d bytes with a wrong binding", len(got))
			}
		})
	}
	t.Run("unknown version", func(t *testing.T) {
		_, err := decrypt(sk, "report.pdf", 4, bytes.NewReader(append([]byte{0x02}, ct[1:]...)))
		wantDecryptErr(t, err, "unknown stream format version 0x02")
	})
}

// TestStreamFormatFromSpec reads a stream with tink directly, keyed and
// bound as the package documentation says: the documentation and the code
// must agree.
func TestStreamFormatFromSpec(t *testing.T) {
	ek := testKey(t, 0x20)
	sk := mustStoreKey(t, ek, testEnv, 3, "files")
	pt := pattern(segPT + 9)
	ct := encrypt(t, sk, "report.pdf", 4, pt)

	lp := func(s string) []byte { return append(binary.BigEndian.AppendUint32(nil, uint32(len(s))), s...) }
	aad := bytes.Join([][]byte{ct[:5], []byte("keyhold stream v1"), lp(testEnv), lp("files"), lp("report.pdf"), binary.BigEndian.AppendUint64(nil, 4)}, nil)
	s, err := subtle.NewAESGCMHKDF(sk.key.b[:], "SHA256", 32, 64<<10, 0)
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.NewDecryptingReader(bytes.NewReader(ct[5:]), aad)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("tink read %d bytes, %v; want the plaintext", len(got), err)
	}
}

type failingReader struct {
	r   io.Reader
	n   int // bytes to pass before failing
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, f.err
	}
	if len(p) > f.n {
		p = p[:f.n]
	}
	n, err := f.r.Read(p)
	f.n -= n
	return n, err
}

// TestStreamSourceErrors checks that a failing source surfaces as itself,
// not as tampering, and that the failure sticks.
func TestStreamSourceErrors(t *testing.T) {
	sk := mustStoreKey(t, testKey(t, 0x20), testEnv, 3, "files")
	ct := encrypt(t, sk, "f", 1, pattern(2*segPT))
	errNet := errors.New("connection reset")
	for _, at := range []int{0, 3, headerSize + 10, segmentOffset(1) + 100} {
		t.Run(fmt.Sprintf("after %d bytes", at), func(t *testing.T) {
			r, err := sk.NewDecryptingReader(&failingReader{r: bytes.NewReader(ct), n: at, err: errNet}, "f", 1)
			if err == nil {
				_, err = io.ReadAll(r)
				if _, again := r.Read(make([]byte, 10)); again != err {
					t.Fatalf("Read after a failure: error %v; want the same %v", again, err)
				}
			}
			if !errors.Is(err, errNet) || errors.Is(err, ErrDecrypt) {
				t.Fatalf("error %v; want the source's error and not ErrDecrypt", err)
			}
		})
	}
}

func TestStreamStickyDecryptError(t *testing.T) {
	sk := mustStoreKey(t, testKey(t, 0x20), testEnv, 3, "files")
	ct := encrypt(t, sk, "f", 1, pattern(2*segPT))
	r, err := sk.NewDecryptingReader(bytes.NewReader(flipBit(ct, segmentOffset(1)*8+9)), "f", 1)
	if err != nil {
		t.Fatal(err)
	}
	_, first := io.ReadAll(r)
	if !errors.Is(first, ErrDecrypt) {
		t.Fatalf("error %v; want ErrDecrypt", first)
	}
	for range 3 {
		if n, err := r.Read(make([]byte, segPT)); n != 0 || err != first {
			t.Fatalf("Read after failure = %d, %v; want 0, %v", n, err, first)
		}
	}
}

// patternReader yields pattern bytes without holding them, so a stream
// test can pass far more data than it allocates.
type patternReader struct{ off, n int }

func (p *patternReader) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	b = b[:min(len(b), p.n-p.off)]
	for i := range b {
		j := p.off + i
		b[i] = byte(j*7 + j>>16)
	}
	p.off += len(b)
	return len(b), nil
}

// streamThrough streams size bytes through an encrypting writer and a
// decrypting reader joined by a pipe, and returns the bytes allocated.
func streamThrough(t *testing.T, sk *StoreKey, size int) uint64 {
	t.Helper()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)

	pr, pw := io.Pipe()
	go func() {
		w, err := sk.NewEncryptingWriter(pw, "big", 1)
		if err == nil {
			_, err = io.Copy(w, &patternReader{n: size})
		}
		if err == nil {
			err = w.Close()
		}
		pw.CloseWithError(err)
	}()
	r, err := sk.NewDecryptingReader(pr, "big", 1)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil || n != int64(size) {
		t.Fatalf("streamed %d bytes, %v; want %d", n, err, size)
	}
	runtime.ReadMemStats(&after)

	want := sha256.New()
	io.Copy(want, &patternReader{n: size})
	if !bytes.Equal(h.Sum(nil), want.Sum(nil)) {
		t.Fatal("the plaintext that came out differs from what went in")
	}
	return after.TotalAlloc - before.TotalAlloc
}

// TestStreamMemory checks that a stream's memory is O(segment), not
// O(stream): 4 MiB and 32 MiB streams allocate about the same, a few
// segments' worth of buffers.
func TestStreamMemory(t *testing.T) {
	sk := mustStoreKey(t, testKey(t, 0x20), testEnv, 3, "files")
	small := streamThrough(t, sk, 4<<20)
	large := streamThrough(t, sk, 32<<20)
	t.Logf("allocated %d bytes for 4 MiB, %d for 32 MiB", small, large)
	if large > 16*streamSegmentSize {
		t.Fatalf("a 32 MiB stream allocated %d bytes; want at most 16 segments (%d)", large, 16*streamSegmentSize)
	}
	if large > small+streamSegmentSize {
		t.Fatalf("allocation grew by %d bytes from a 4 MiB to a 32 MiB stream; want less than a segment", large-small)
	}
}
