package platform

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
)

// ChunkSize is how many ciphertext bytes one stored chunk holds. A file
// moves through memory one chunk (plus one AEAD segment) at a time.
const ChunkSize = 1 << 20

// StaleUploadAge is how old an unfinished upload must be before
// CleanStaleUploads removes its chunks: well past any live upload, so a
// replica never removes another replica's upload in progress.
const StaleUploadAge = 24 * time.Hour

func fileTarget(envID, name string) string { return "/environments/" + envID + "/files/" + name }

// PutFile streams r, encrypted, into a new generation of chunks, and only
// then points the file at it, in one transaction that also deletes the
// replaced generation. A failed or interrupted upload leaves the previous
// content in place.
func (p *Environments) PutFile(ctx context.Context, envID, name string, r io.Reader) (*keyhold.FileInfo, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := keyhold.ValidateItemName("file name", name); err != nil {
		return nil, err
	}
	var env *keyhold.Environment
	var prevVersion uint64
	err = p.store.View(ctx, func(tx keyhold.Tx) error {
		if env, err = p.access(ctx, tx, id, envID, uploadData); err != nil {
			return err // a restore's refusal too, before the body is read
		}
		switch old, err := tx.File(ctx, envID, name); {
		case err == nil:
			prevVersion = old.Version
		case keyhold.ErrorCode(err) != keyhold.CodeFileNotFound:
			return err
		}
		return nil
	})
	if err != nil {
		p.auditDataTamper(ctx, id, envID, tamperFileUpload, err)
		return nil, err
	}
	r = byokFileCap(env, r, p.byokCap) // the legacy BYOK key covers files up to a cap (byok_limits.go)
	sk, err := p.storeKey(ctx, env.ID, env.Epoch, keyhold.StoreFiles)
	if err != nil {
		return nil, err
	}
	defer sk.Destroy()

	rec := &keyhold.FileRecord{EnvID: env.ID, Name: name, Generation: uuid.NewString(), Epoch: env.Epoch, Version: prevVersion + 1}
	if err := p.store.Update(ctx, func(tx keyhold.Tx) error {
		return tx.BeginFileUpload(ctx, &keyhold.FileUpload{EnvID: env.ID, Generation: rec.Generation, StartedAt: p.clock.Now().UTC()})
	}); err != nil {
		return nil, err
	}
	committed := false
	defer func() {
		if !committed {
			p.discardUpload(env.ID, rec.Generation)
		}
	}()

	// The buffer grows to ChunkSize only for files that large: a thousand
	// small uploads at once must not hold a GiB.
	cw := &chunkWriter{ctx: ctx, p: p.core, envID: env.ID, gen: rec.Generation, buf: make([]byte, 0, 64<<10)}
	enc, err := sk.NewEncryptingWriter(cw, name, rec.Version)
	if err != nil {
		return nil, err
	}
	if rec.Size, err = io.Copy(enc, r); err != nil {
		if keyhold.ErrorCode(err) == keyhold.CodeRequestTooLarge {
			return nil, err // a BYOK environment's cap: nothing is stored
		}
		if ctx.Err() != nil {
			return nil, keyhold.Errorf(keyhold.CodeBadRequest, "the upload of %q was interrupted: send it again", name).WithCause(err)
		}
		return nil, fmt.Errorf("storing file %q: %w", name, err)
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	if err := cw.flush(); err != nil {
		return nil, err
	}
	rec.Chunks = cw.seq
	rec.UpdatedAt = p.clock.Now().UTC()
	err = p.writeWithAudit(ctx, envID, func(tx keyhold.Tx, need *uint32) error {
		cenv, err := p.access(ctx, tx, id, envID, writeData)
		if err != nil {
			return err
		}
		if cenv.Epoch != rec.Epoch {
			// A re-key started meanwhile: it may already have passed
			// this file, and it destroys the old epoch's key once it
			// finds no item left on it, so nothing may land there now.
			return keyhold.Errorf(keyhold.CodeConflict, "environment %s moved to key epoch %d during the upload of %q: send it again", envID, cenv.Epoch, name)
		}
		switch cur, err := tx.File(ctx, envID, name); {
		case err == nil && cur.Version != prevVersion, err != nil && prevVersion != 0:
			return keyhold.Errorf(keyhold.CodeConflict, "file %q was changed by another request during this upload: send it again", name)
		case err != nil && keyhold.ErrorCode(err) != keyhold.CodeFileNotFound:
			return err
		}
		replaced, err := tx.PutFile(ctx, rec)
		if err != nil {
			return err
		}
		if replaced != nil {
			if err := tx.DeleteFileChunks(ctx, envID, replaced.Generation); err != nil {
				return err
			}
		}
		*need = cenv.Epoch
		return auditData(ctx, p.core, tx, id, "file.put", fileTarget(envID, name), cenv, fmt.Sprintf("%d bytes", rec.Size))
	})
	if err != nil {
		p.auditDataTamper(ctx, id, envID, tamperFileUpload, err)
		return nil, err
	}
	committed = true
	return &keyhold.FileInfo{EnvID: envID, Name: name, Size: rec.Size, Version: rec.Version, UpdatedAt: rec.UpdatedAt}, nil
}

// discardUpload removes the chunks of an abandoned upload. It runs on its
// own context: the request's may be what was cancelled.
func (p *Environments) discardUpload(envID, gen string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := p.store.Update(ctx, func(tx keyhold.Tx) error {
		if err := tx.DeleteFileChunks(ctx, envID, gen); err != nil {
			return err
		}
		return tx.DeleteFileUpload(ctx, envID, gen)
	})
	if err != nil {
		p.log.Warn("could not remove an abandoned upload; CleanStaleUploads will", "environment", envID, "generation", gen, "err", err)
	}
}

// CleanStaleUploads removes the chunks of uploads abandoned (by a crash)
// more than StaleUploadAge ago, and returns how many it removed.
func (p *Environments) CleanStaleUploads(ctx context.Context) (int, error) {
	var stale []*keyhold.FileUpload
	if err := p.store.View(ctx, func(tx keyhold.Tx) error {
		var err error
		stale, err = tx.StaleUploads(ctx, p.clock.Now().Add(-StaleUploadAge))
		return err
	}); err != nil {
		return 0, err
	}
	for _, u := range stale {
		p.discardUpload(u.EnvID, u.Generation)
	}
	return len(stale), nil
}

// chunkWriter cuts the ciphertext stream into ChunkSize chunks, each
// stored in its own short transaction so that an upload never holds a
// long write lock.
type chunkWriter struct {
	ctx   context.Context
	p     *core
	envID string
	gen   string
	buf   []byte
	seq   int
}

func (w *chunkWriter) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		k := min(len(b), ChunkSize-len(w.buf))
		w.buf = append(w.buf, b[:k]...)
		b, n = b[k:], n+k
		if len(w.buf) == ChunkSize {
			if err := w.flush(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

func (w *chunkWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	err := w.p.store.Update(w.ctx, func(tx keyhold.Tx) error {
		return tx.PutFileChunk(w.ctx, w.envID, w.gen, w.seq, w.buf)
	})
	if err != nil {
		return err
	}
	w.seq++
	w.buf = w.buf[:0]
	return nil
}

// OpenFile returns a reader that fetches, and decrypts, one chunk at a time.
func (p *Environments) OpenFile(ctx context.Context, envID, name string) (*keyhold.FileInfo, io.ReadCloser, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, nil, err
	}
	if err := keyhold.ValidateItemName("file name", name); err != nil {
		return nil, nil, err
	}
	var rec *keyhold.FileRecord
	err = p.store.View(ctx, func(tx keyhold.Tx) error {
		if _, err := p.access(ctx, tx, id, envID, readData); err != nil {
			return err
		}
		rec, err = tx.File(ctx, envID, name)
		return err
	})
	if keyhold.ErrorCode(err) == keyhold.CodeFileNotFound {
		return nil, nil, keyhold.Errorf(keyhold.CodeFileNotFound, "file %q was not found in environment %s", name, envID)
	} else if err != nil {
		p.auditDataTamper(ctx, id, envID, tamperFileRead, err)
		return nil, nil, err
	}
	sk, err := p.storeKey(ctx, envID, rec.Epoch, keyhold.StoreFiles)
	if err != nil {
		return nil, nil, err
	}
	cr := &chunkReader{ctx: ctx, p: p.core, rec: rec}
	dec, err := sk.NewDecryptingReader(bufio.NewReaderSize(cr, 64<<10), name, rec.Version)
	if err != nil {
		sk.Destroy()
		return nil, nil, fileIntegrityError(name, err)
	}
	info := &keyhold.FileInfo{EnvID: envID, Name: name, Size: rec.Size, Version: rec.Version, UpdatedAt: rec.UpdatedAt}
	return info, &fileReader{r: dec, sk: sk, name: name}, nil
}

// chunkReader reads a generation's chunks in order.
type chunkReader struct {
	ctx context.Context
	p   *core
	rec *keyhold.FileRecord
	seq int
	cur []byte
}

func (r *chunkReader) Read(b []byte) (int, error) {
	for len(r.cur) == 0 {
		if r.seq >= r.rec.Chunks {
			return 0, io.EOF
		}
		err := r.p.store.View(r.ctx, func(tx keyhold.Tx) error {
			var err error
			r.cur, err = tx.FileChunk(r.ctx, r.rec.EnvID, r.rec.Generation, r.seq)
			return err
		})
		if err != nil {
			return 0, fmt.Errorf("reading chunk %d of file %q: %w", r.seq, r.rec.Name, err)
		}
		r.seq++
	}
	n := copy(b, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

// fileReader zeroes the file's store key on Close and turns decryption
// failures into a clear integrity error.
type fileReader struct {
	r    io.Reader
	sk   *crypt.StoreKey
	name string
}

func (f *fileReader) Read(b []byte) (int, error) {
	n, err := f.r.Read(b)
	if err != nil && !errors.Is(err, io.EOF) {
		err = fileIntegrityError(f.name, err)
	}
	return n, err
}

func (f *fileReader) Close() error {
	f.sk.Destroy()
	return nil
}

func fileIntegrityError(name string, err error) error {
	if errors.Is(err, crypt.ErrDecrypt) {
		return keyhold.Errorf(keyhold.CodeInternal, "file %q failed its integrity check: the stored ciphertext was altered or truncated; restore it from a backup", name).WithCause(err)
	}
	return err
}
