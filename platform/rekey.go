package platform

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/ops"
)

// The re-key: after a link (or swap) the environment gets a new epoch
// whose EK was only ever wrapped by the customer's key (newepoch), every
// row and file moves to it (rekey), and the old epochs' wrapped keys are
// deleted (destroy). An operator who copied an old EK, or the MMK-wrapped
// copy, before the link is then shut out too. The environment serves
// throughout: reads use each item's own epoch, and writes the current one.

// Re-key pacing. A step run moves pages of rows (and then files) until
// rekeyStepTime has passed, and then records its cursor: a crash repeats
// at most that much work. They are variables only so that the crash tests
// can make a re-key take several step runs on a few rows.
var (
	// rekeyBatch is the rows (and audit entries) of a page, unless the
	// store asks for longer row pages (rowsPage).
	rekeyBatch     = defaultRekeyBatch
	rekeyStepTime  = time.Second
	rekeyFileBytes = int64(32 << 20) // plaintext bytes of files per step run
)

const defaultRekeyBatch = 256

// rowsPage is the rows of a re-key page: the store's choice
// (Tx.ResealPageRows: how long its write transaction may be), unless a
// test or benchmark has set rekeyBatch to another size.
func rowsPage(storePage int) int {
	if storePage <= 0 || rekeyBatch != defaultRekeyBatch {
		return rekeyBatch
	}
	return storePage
}

// rekeyProgress is the re-key's cursor, kept in the operation.
type rekeyProgress struct {
	// Epoch is the old epoch whose rows are moving, after (AfterTable,
	// AfterID).
	Epoch      uint32 `json:"epoch,omitempty"`
	AfterTable string `json:"afterTable,omitempty"`
	AfterID    string `json:"afterId,omitempty"`
	// Files says every row has moved and files are moving, in name order
	// after AfterFile.
	Files     bool   `json:"files,omitempty"`
	AfterFile string `json:"afterFile,omitempty"`
	// Audit says every file has moved and the environment's sealed
	// audit entries are moving (audit_seal.go): they leave each old
	// epoch oldest first, so the walk needs no cursor.
	Audit bool `json:"audit,omitempty"`
}

// stepNewEpoch starts epoch FromEpoch+1: a fresh EK, wrapped only by the
// policy's key and proven by unwrapping it again, stored in the
// transaction that makes it the epoch new writes use. An environment already past FromEpoch has it: nothing to do.
func (p *CMK) stepNewEpoch(ctx context.Context, op *keyhold.Operation) (ops.StepResult, error) {
	in, err := opInput(op)
	if err != nil {
		return ops.StepResult{}, ops.Permanent(err)
	}
	env, _, pol, err := p.loadTarget(ctx, op, in)
	if err != nil {
		return ops.StepResult{}, err
	}
	if env.Epoch != in.FromEpoch {
		return ops.StepResult{}, p.countRekey(ctx, op)
	}
	if !strings.EqualFold(env.PolicySystemID, pol.SystemID) {
		return ops.StepResult{}, ops.Permanent(keyhold.Errorf(keyhold.CodeConflict,
			"environment %s is no longer linked to enterprise policy %s: its re-key stops", env.ID, pol.ID()))
	}
	next := in.FromEpoch + 1
	ek, err := crypt.NewKey()
	if err != nil {
		return ops.StepResult{}, err
	}
	defer ek.Destroy()
	wk, err := p.wrapCMK(ctx, pol, env.ID, next, ek)
	if err != nil {
		return ops.StepResult{}, err
	}
	// As a custody move's new copy (custody.go): a key that wraps but
	// doesn't give the same EK back would take every write of the new
	// epoch with it.
	if err := p.prove(ctx, wk, pol.TenantID, ek); err != nil {
		return ops.StepResult{}, err
	}
	created := false
	err = p.changeEnv(ctx, op, func(tx keyhold.Tx, env *keyhold.Environment) (string, string, error) {
		created = false
		if env.Epoch != in.FromEpoch {
			return "", "", nil
		}
		if err := tx.PutWrappedKey(ctx, wk); err != nil {
			return "", "", err
		}
		env.Epoch, created = next, true
		return auditNewEpoch, fmt.Sprintf("new writes use epoch %d, whose key was generated now and is wrapped only by %s; older epochs are being re-keyed", next, p.currentKID(wk.KeyID)), nil
	})
	if err == nil && created {
		p.cache.Put(cacheID(env.ID, next), ek)
	}
	if err != nil {
		return ops.StepResult{}, err
	}
	return ops.StepResult{}, p.countRekey(ctx, op)
}

// countRekey sets op.Total to the number of items on epochs other than
// the current one: what the re-key will move. It runs before any moves
// (at the end of newepoch, which a crash may repeat), so the count is the
// same each time.
func (p *CMK) countRekey(ctx context.Context, op *keyhold.Operation) error {
	return p.store.View(ctx, func(tx keyhold.Tx) error {
		env, err := tx.Environment(ctx, op.Target)
		if err != nil {
			return err
		}
		counts, err := tx.EpochCounts(ctx, env.ID)
		if err != nil {
			return err
		}
		op.Total = 0
		for _, c := range counts {
			if c.Epoch != env.Epoch {
				op.Total += c.Rows + c.Files
			}
		}
		return nil
	})
}

// stepRekey moves rows, then files, off every old epoch, in pages, and
// keeps its cursor in the operation. Moving an item re-seals it under the
// current epoch at the same version, conditionally on its version and
// epoch, so a concurrent write (which moves it itself) always wins, and a
// page run again after a crash finds its rows moved already. Each page's
// transaction first checks that the environment is not Locked: a lock
// between two pages pauses the operation (lockops.go), and the pages run
// again after the re-enable find the rows moved before it.
func (p *CMK) stepRekey(ctx context.Context, op *keyhold.Operation) (ops.StepResult, error) {
	var prog rekeyProgress
	if len(op.Progress) > 0 {
		if err := json.Unmarshal(op.Progress, &prog); err != nil {
			return ops.StepResult{}, ops.Permanent(keyhold.Errorf(keyhold.CodeInternal, "operation %s has an unreadable re-key cursor", op.ID).WithCause(err))
		}
	}
	env, wks, err := p.envWithKeys(ctx, op.Target)
	if err != nil {
		return ops.StepResult{}, err
	}
	cur := env.Epoch
	var old []uint32
	for _, wk := range wks {
		if wk.Epoch != cur && !slices.Contains(old, wk.Epoch) {
			old = append(old, wk.Epoch)
		}
	}
	slices.Sort(old)
	deadline := time.Now().Add(rekeyStepTime)
	save := func(again bool) (ops.StepResult, error) {
		b, err := json.Marshal(prog)
		if err != nil {
			return ops.StepResult{}, err
		}
		op.Progress = b
		return ops.StepResult{Again: again}, nil
	}
	for !prog.Files {
		if !slices.Contains(old, prog.Epoch) {
			// Start, or go on with, the next old epoch.
			i, _ := slices.BinarySearch(old, prog.Epoch+1)
			if i >= len(old) {
				prog = rekeyProgress{Files: true}
				break
			}
			prog = rekeyProgress{Epoch: old[i]}
		}
		n, more, err := p.rekeyRows(ctx, env.ID, cur, &prog, deadline)
		op.Done += n
		if err != nil {
			// The cursor stays where it was last recorded; the rows
			// moved since are off the old epoch, so the pages run
			// again find less to do.
			return ops.StepResult{}, err
		}
		if !more {
			prog.AfterTable, prog.AfterID = "", ""
			i, _ := slices.BinarySearch(old, prog.Epoch+1)
			if i >= len(old) {
				prog = rekeyProgress{Files: true}
			} else {
				prog.Epoch = old[i]
			}
		}
		if time.Now().After(deadline) {
			return save(true)
		}
	}
	if !prog.Audit {
		n, more, err := p.rekeyFiles(ctx, env.ID, cur, &prog, deadline)
		op.Done += n
		if err != nil {
			return ops.StepResult{}, err
		}
		if more {
			return save(true)
		}
		prog = rekeyProgress{Files: true, Audit: true}
	}
	more := false
	for _, from := range old {
		for {
			// Done and Total count rows and files, the items a
			// caller follows; the audit entries move uncounted.
			_, full, err := p.rekeyAudit(ctx, env.ID, from, cur)
			if err != nil {
				return ops.StepResult{}, err
			}
			if !full {
				break
			}
			if time.Now().After(deadline) {
				more = true
				break
			}
		}
		if more {
			break
		}
	}
	if !more {
		// The flows' items (issue 15) move last, all in this step run.
		if err := rekeyFlows(ctx, p.core, env.ID, cur, flowPlacementOf(op, env), op.ID); err != nil {
			return ops.StepResult{}, err
		}
		// Done counts the items each step run handled; a run lost to a
		// crash moved items that no later run sees. Everything counted
		// has moved now.
		op.Done, op.Total = max(op.Done, op.Total), max(op.Done, op.Total)
	}
	return save(more)
}

// rekeyRows moves the rows of prog.Epoch, after prog's cursor, to epoch
// to, page by page until the epoch has no rows left or the deadline has
// passed, and advances the cursor past each page once it has committed. It
// returns how many rows it handled and whether the epoch may hold more
// (it stopped at the deadline).
//
// The pages run as a pipeline (rekeypipe.go): while one page's write
// transaction runs, the next page is read and re-sealed on the other
// core. Only the writes advance the cursor, in order, so a crash or an
// error anywhere repeats at most the pages after the last committed one,
// as before; a page read ahead and never written is simply dropped.
func (p *CMK) rekeyRows(ctx context.Context, envID string, to uint32, prog *rekeyProgress, deadline time.Time) (int64, bool, error) {
	from := prog.Epoch
	pages, stop := p.readResealPages(ctx, envID, from, to, prog.AfterTable, prog.AfterID)
	defer stop()
	var n int64
	for pg := range pages {
		if pg.err != nil {
			return n, false, pg.err
		}
		if len(pg.rows) == 0 {
			return n, false, nil
		}
		if err := p.writeResealed(ctx, envID, from, pg.rows); err != nil {
			return n, false, err
		}
		n += int64(len(pg.rows))
		prog.AfterTable, prog.AfterID = pg.afterTable, pg.afterID
		if !pg.full {
			return n, false, nil
		}
		if time.Now().After(deadline) {
			return n, true, nil
		}
	}
	// The pipeline stopped without a last page: only a cancelled context
	// does that.
	return n, false, ctx.Err()
}

// writeResealed writes one page of re-sealed rows in a transaction of its
// own. A row written (under the current epoch) or deleted since it was
// read is left alone: nothing to move.
func (p *CMK) writeResealed(ctx context.Context, envID string, from uint32, out []*keyhold.RowRecord) error {
	reseal := func(rs []*keyhold.RowRecord) error {
		return p.store.Update(ctx, func(tx keyhold.Tx) error {
			// Nothing moves once the environment is Locked: the
			// operation pauses (lockops.go).
			if err := pauseIfLocked(ctx, tx, envID); err != nil {
				return err
			}
			// One statement for the page.
			_, err := tx.ResealRows(ctx, envID, rs, from)
			return err
		})
	}
	err := reseal(out)
	if keyhold.ErrorCode(err) == keyhold.CodeConflict {
		// Writers of these rows kept winning the race with the page's
		// transaction (PostgreSQL serialization failures): move them
		// one by one, in short transactions. A row that still loses is
		// left on the old epoch; the destroy step finds it and sends
		// the re-key back for it.
		err = nil
		for _, r := range out {
			if err = reseal([]*keyhold.RowRecord{r}); keyhold.ErrorCode(err) == keyhold.CodeConflict {
				err = nil
			} else if err != nil {
				break
			}
		}
	}
	return err
}

// rekeyFiles moves files not on epoch to, in name order after prog's
// cursor, until about rekeyFileBytes moved or the deadline passed. It
// returns how many it handled and whether any are left.
func (p *CMK) rekeyFiles(ctx context.Context, envID string, to uint32, prog *rekeyProgress, deadline time.Time) (int64, bool, error) {
	var files []*keyhold.FileRecord
	if err := p.store.View(ctx, func(tx keyhold.Tx) (err error) {
		files, err = tx.ListFiles(ctx, envID)
		return err
	}); err != nil {
		return 0, false, err
	}
	var todo []*keyhold.FileRecord
	for _, f := range files {
		if f.Epoch != to && f.Name > prog.AfterFile {
			todo = append(todo, f)
		}
	}
	var n, size int64
	for i, f := range todo {
		if err := p.resealFile(ctx, f, to); err != nil {
			return n, true, err
		}
		n++
		size += f.Size
		prog.AfterFile = f.Name
		if size >= rekeyFileBytes || time.Now().After(deadline) {
			return n, i+1 < len(todo), nil
		}
	}
	return n, false, nil
}

// resealFile re-encrypts file f under epoch to: it streams the plaintext
// from f's generation into a new one (marked as an upload, so that a crash
// leaves chunks that CleanStaleUploads removes) and then swaps the record
// to it, keeping the version, in a transaction that checks f is still
// what was read. A file replaced or deleted meanwhile is left alone.
func (p *CMK) resealFile(ctx context.Context, f *keyhold.FileRecord, to uint32) error {
	oldSK, err := p.storeKey(ctx, f.EnvID, f.Epoch, keyhold.StoreFiles)
	if err != nil {
		return err
	}
	defer oldSK.Destroy()
	newSK, err := p.storeKey(ctx, f.EnvID, to, keyhold.StoreFiles)
	if err != nil {
		return err
	}
	defer newSK.Destroy()
	gen := uuid.NewString()
	if err := p.store.Update(ctx, func(tx keyhold.Tx) error {
		return tx.BeginFileUpload(ctx, &keyhold.FileUpload{EnvID: f.EnvID, Generation: gen, StartedAt: p.clock.Now().UTC()})
	}); err != nil {
		return err
	}
	committed := false
	defer func() {
		if !committed {
			p.envs.discardUpload(f.EnvID, gen)
		}
	}()
	cr := &chunkReader{ctx: ctx, p: p.core, rec: f}
	cw := &chunkWriter{ctx: ctx, p: p.core, envID: f.EnvID, gen: gen, buf: make([]byte, 0, ChunkSize)}
	err = func() error {
		dec, err := oldSK.NewDecryptingReader(bufio.NewReaderSize(cr, 64<<10), f.Name, f.Version)
		if err != nil {
			return err
		}
		enc, err := newSK.NewEncryptingWriter(cw, f.Name, f.Version)
		if err != nil {
			return err
		}
		n, err := io.Copy(enc, dec)
		if err != nil {
			return err
		}
		if n != f.Size {
			return fmt.Errorf("%w: file %q holds %d bytes, its record says %d", crypt.ErrDecrypt, f.Name, n, f.Size)
		}
		if err := enc.Close(); err != nil {
			return err
		}
		return cw.flush()
	}()
	if err != nil {
		// The file may have been replaced or deleted meanwhile, and its
		// chunks with it: then there is nothing to move.
		if gone, gerr := p.fileReplaced(ctx, f); gerr == nil && gone {
			return nil
		}
		if errors.Is(err, crypt.ErrDecrypt) {
			return ops.Permanent(keyhold.Errorf(keyhold.CodeInternal,
				"file %q of environment %s failed its integrity check and can't be re-keyed: restore it from a backup or delete it, then link the environment again", f.Name, f.EnvID).WithCause(err))
		}
		return err
	}
	swapped := false
	err = storeConflict(p.store.Update(ctx, func(tx keyhold.Tx) error {
		swapped = false
		if err := pauseIfLocked(ctx, tx, f.EnvID); err != nil {
			return err // the new generation is discarded; the file stays as it was
		}
		cur, err := tx.File(ctx, f.EnvID, f.Name)
		if keyhold.ErrorCode(err) == keyhold.CodeFileNotFound {
			return nil
		} else if err != nil {
			return err
		}
		if cur.Generation != f.Generation {
			return nil // replaced by a write, under the current epoch
		}
		rec := *cur
		rec.Generation, rec.Epoch, rec.Chunks = gen, to, cw.seq
		replaced, err := tx.PutFile(ctx, &rec)
		if err != nil {
			return err
		}
		if replaced != nil {
			if err := tx.DeleteFileChunks(ctx, f.EnvID, replaced.Generation); err != nil {
				return err
			}
		}
		swapped = true
		return nil
	}))
	committed = err == nil && swapped
	return err
}

// fileReplaced reports whether f is no longer the stored record of its
// file.
func (p *CMK) fileReplaced(ctx context.Context, f *keyhold.FileRecord) (bool, error) {
	var gone bool
	err := p.store.View(ctx, func(tx keyhold.Tx) error {
		cur, err := tx.File(ctx, f.EnvID, f.Name)
		if keyhold.ErrorCode(err) == keyhold.CodeFileNotFound {
			gone = true
			return nil
		}
		gone = err == nil && cur.Generation != f.Generation
		return err
	})
	return gone, err
}

// errItemsLeft says an old epoch still holds items when destroy runs.
var errItemsLeft = errors.New("platform: items are left on an old epoch")

// stepDestroy deletes the wrapped keys of every epoch but the current one,
// in a transaction that checks no item is left on them, and ends the
// operation's encryption work. Items found on an old epoch (a write that
// raced the re-key) send the operation back to the rekey step.
func (p *CMK) stepDestroy(ctx context.Context, op *keyhold.Operation) (ops.StepResult, error) {
	var destroyed []uint32
	err := p.changeEnv(ctx, op, func(tx keyhold.Tx, env *keyhold.Environment) (string, string, error) {
		destroyed = nil
		counts, err := tx.EpochCounts(ctx, env.ID)
		if err != nil {
			return "", "", err
		}
		wks, err := tx.WrappedKeys(ctx, env.ID)
		if err != nil {
			return "", "", err
		}
		for _, c := range counts {
			if c.Epoch == env.Epoch || c.Rows+c.Files+c.Audit == 0 {
				continue
			}
			if !slices.ContainsFunc(wks, func(wk *keyhold.WrappedKey) bool { return wk.Epoch == c.Epoch }) {
				return "", "", ops.Permanent(keyhold.Errorf(keyhold.CodeInternal,
					"environment %s holds %d items under epoch %d, whose key is gone: they can't be read or re-keyed; restore them from a backup", env.ID, c.Rows+c.Files+c.Audit, c.Epoch))
			}
			return "", "", errItemsLeft
		}
		// Epochs that backups hold items under keep their keys until the
		// last such backup is gone (destroyUnused, backups.go).
		held, err := tx.BackupEpochs(ctx, env.ID)
		if err != nil {
			return "", "", err
		}
		var kids, kept []string
		for _, wk := range wks {
			if wk.Epoch == env.Epoch {
				continue
			}
			if slices.Contains(held, wk.Epoch) {
				if s := fmt.Sprint(wk.Epoch); !slices.Contains(kept, s) {
					kept = append(kept, s)
				}
				continue
			}
			if err := tx.DeleteWrappedKey(ctx, env.ID, wk.Epoch, wk.Root); err != nil {
				return "", "", err
			}
			if err := p.touchOldKID(ctx, tx, wk); err != nil {
				return "", "", err
			}
			if !slices.Contains(destroyed, wk.Epoch) {
				destroyed = append(destroyed, wk.Epoch)
			}
			kids = append(kids, fmt.Sprintf("%d (%s)", wk.Epoch, wk.Root))
		}
		if len(destroyed) == 0 && env.EncryptionStatus == keyhold.EncryptionSucceeded {
			return "", "", nil
		}
		env.EncryptionStatus = keyhold.EncryptionSucceeded
		detail := fmt.Sprintf("re-key done: %d items moved to epoch %d; wrapped keys of old epochs destroyed: [%s]",
			op.Done, env.Epoch, strings.Join(kids, ", "))
		if len(kept) > 0 {
			detail += fmt.Sprintf("; epochs [%s] kept while backups hold items under them", strings.Join(kept, " "))
		}
		return auditDestroy, detail, nil
	})
	if errors.Is(err, errItemsLeft) {
		op.Progress = nil
		return ops.StepResult{Next: stepRekey}, nil
	}
	if err != nil {
		return ops.StepResult{}, err
	}
	for _, e := range destroyed {
		p.dropEpochKeys(op.Target, e) // here and on every other replica (broadcast.go)
	}
	return ops.StepResult{}, nil
}
