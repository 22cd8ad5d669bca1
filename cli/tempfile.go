package cli

import (
	"fmt"
	"os"
	"path/filepath"
)

// tempFile is a file written beside its destination and renamed over it only
// once complete, so a failed or interrupted write never leaves a partial
// destination file. os.CreateTemp makes it mode 0600.
type tempFile struct {
	*os.File
	dest string
	done bool
}

// newTempFile creates a temporary file in dest's directory.
func newTempFile(dest string) (*tempFile, error) {
	f, err := os.CreateTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("creating a temporary file for %s: %w", dest, err)
	}
	return &tempFile{File: f, dest: dest}, nil
}

// commit flushes the file to disk and renames it to its destination.
func (t *tempFile) commit() error {
	if err := t.Sync(); err != nil {
		return fmt.Errorf("writing %s: %w", t.dest, err)
	}
	if err := t.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", t.dest, err)
	}
	if err := os.Rename(t.Name(), t.dest); err != nil {
		return fmt.Errorf("writing %s: %w", t.dest, err)
	}
	t.done = true
	return nil
}

// abort removes the temporary file unless it was committed; defer it.
func (t *tempFile) abort() {
	if t.done {
		return
	}
	t.Close()
	os.Remove(t.Name())
}
