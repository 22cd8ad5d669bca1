package crypt

import (
	"errors"
	"fmt"
	"io"

	"github.com/tink-crypto/tink-go/v2/streamingaead/subtle"
)

// streamSegmentSize is the ciphertext segment size of stream format v1. It
// is part of the format: a reader must use the size the writer used, so it
// can never change for v1.
//
// 64 KiB rather than 1 MiB: BenchmarkStreamEncrypt and
// BenchmarkStreamDecrypt over 64 MiB ran at about 3.7-3.9 GB/s with either
// size on the 2-core build machine (raw AES-256-GCM: about 4.9 GB/s), since
// AES-GCM dominates and a 16-byte tag per 64 KiB is noise. Each open stream
// holds a few segments of buffers, so 64 KiB makes concurrent uploads and
// downloads cost 16 times less memory.
const streamSegmentSize = 64 << 10

// newStreamAEAD returns tink's AES-GCM-HKDF streaming AEAD keyed by the
// store key: each stream gets its own AES-256 key, HKDF-SHA256 of the store
// key with a random 32-byte salt from the stream's header and the stream's
// additional data as info. It is built per stream rather than kept in
// StoreKey because tink keeps a copy of the key that Destroy can't zero, and
// that copy should live no longer than a stream; building it is cheap next
// to any stream.
func (k *StoreKey) newStreamAEAD() (*subtle.AESGCMHKDF, error) {
	kb, err := k.key.bytes()
	if err != nil {
		return nil, err
	}
	return subtle.NewAESGCMHKDF(kb, "SHA256", KeySize, streamSegmentSize, 0)
}

// NewEncryptingWriter returns a writer that encrypts a stream of any length
// into dst with a chunked streaming AEAD, bound like Seal. Close must be
// called to write the final segment; without it the stream is truncated and
// fails to decrypt. Format v1: 0x01 | epoch(4) | streaming-AEAD ciphertext.
//
// The streaming AEAD is tink's AES-GCM-HKDF with 64 KiB ciphertext segments;
// its salt and nonce prefix come from crypto/rand. Memory use is about one
// segment whatever the stream's length. Close doesn't close dst. The writer
// is not safe for concurrent use. NewEncryptingWriter returns an error for a
// destroyed key or if writing the header to dst fails.
func (k *StoreKey) NewEncryptingWriter(dst io.Writer, itemID string, version uint64) (io.WriteCloser, error) {
	s, err := k.newStreamAEAD()
	if err != nil {
		return nil, err
	}
	h := k.header // a copy: dst may keep what it is given
	if _, err := dst.Write(h[:]); err != nil {
		return nil, fmt.Errorf("crypt: writing stream header: %w", err)
	}
	w, err := s.NewEncryptingWriter(dst, k.aad(streamAADLabel, itemID, version))
	if err != nil {
		return nil, fmt.Errorf("crypt: starting stream: %w", err)
	}
	return w, nil
}

// NewDecryptingReader returns a reader of the plaintext of src. Truncation,
// reordered or modified segments make Read return an error wrapping
// ErrDecrypt; no unauthenticated plaintext is ever returned.
//
// It reads the stream's headers from src at once, and returns an error
// wrapping ErrDecrypt for a short or unknown header or another epoch. An
// error reading src is returned wrapped as it is, not as ErrDecrypt, from
// here and from Read. Once Read fails it keeps returning the same error.
// Memory use is about two segments whatever the stream's length. The reader
// is not safe for concurrent use.
func (k *StoreKey) NewDecryptingReader(src io.Reader, itemID string, version uint64) (io.Reader, error) {
	s, err := k.newStreamAEAD()
	if err != nil {
		return nil, err
	}
	var h [headerSize]byte
	if n, err := io.ReadFull(src, h[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, decryptErrorf("stream of item %q is %d bytes, shorter than its %d-byte header", itemID, n, headerSize)
		}
		return nil, fmt.Errorf("crypt: reading stream header: %w", err)
	}
	if err := k.checkHeader("stream", h[:]); err != nil {
		return nil, err
	}
	es := &errSource{r: src}
	r, err := s.NewDecryptingReader(es, k.aad(streamAADLabel, itemID, version))
	if err != nil {
		// tink formats src's errors with %v; errSource keeps the original.
		if es.err != nil {
			return nil, fmt.Errorf("crypt: reading stream header: %w", es.err)
		}
		return nil, decryptErrorf("stream of item %q has a malformed or truncated header", itemID)
	}
	return &decryptingReader{r: r, src: es, itemID: itemID, version: version}, nil
}

// errSource remembers the first error other than io.EOF that src returned,
// so that an I/O failure can be told from a failed authentication after
// tink has reported either as a plain error.
type errSource struct {
	r   io.Reader
	err error
}

func (s *errSource) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF && s.err == nil {
		s.err = err
	}
	return n, err
}

// decryptingReader turns tink's errors into ErrDecrypt or I/O errors and
// makes them sticky, so that a caller retrying after a failure can't read
// on from a misaligned position.
type decryptingReader struct {
	r       io.Reader
	src     *errSource
	itemID  string
	version uint64
	err     error
}

func (d *decryptingReader) Read(p []byte) (int, error) {
	if d.err != nil {
		return 0, d.err
	}
	n, err := d.r.Read(p)
	switch {
	case err == nil:
		return n, nil
	case err == io.EOF:
		d.err = io.EOF
	case d.src.err != nil:
		d.err = fmt.Errorf("crypt: reading stream: %w", d.src.err)
	default:
		d.err = decryptErrorf("stream of item %q version %d failed authentication: truncated, reordered or modified, or sealed for another item, version or environment", d.itemID, d.version)
	}
	// tink returns no plaintext with an error; n is 0 but pass it on as is.
	return n, d.err
}
