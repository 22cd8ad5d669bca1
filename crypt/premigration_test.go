package crypt

import (
	"errors"
	"testing"
)

// TestPreMigrationPartitionKey: a pre-migration partition's key unwraps
// only for the environment and partition it was wrapped for, and only
// under the root key that wrapped it.
func TestPreMigrationPartitionKey(t *testing.T) {
	root, _ := NewKey()
	defer root.Destroy()
	w := NewAESWrapper("mmk", "1", root)
	defer w.Destroy()
	k, _ := NewKey()
	defer k.Destroy()
	wrapped, err := w.WrapPartitionKey("env-1", "op-1", k)
	if err != nil {
		t.Fatal(err)
	}
	got, err := w.UnwrapPartitionKey("env-1", "op-1", wrapped)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Destroy()
	if !got.Equal(k) {
		t.Fatal("the unwrapped key differs")
	}
	for _, c := range [][2]string{{"env-2", "op-1"}, {"env-1", "op-2"}} {
		if _, err := w.UnwrapPartitionKey(c[0], c[1], wrapped); !errors.Is(err, ErrDecrypt) {
			t.Errorf("unwrap for %v: %v, want ErrDecrypt", c, err)
		}
	}
	other, _ := NewKey()
	defer other.Destroy()
	w2 := NewAESWrapper("mmk", "1", other)
	defer w2.Destroy()
	if _, err := w2.UnwrapPartitionKey("env-1", "op-1", wrapped); !errors.Is(err, ErrDecrypt) {
		t.Errorf("unwrap under another root: %v, want ErrDecrypt", err)
	}
	if _, err := w.WrapPartitionKey("", "op-1", k); err == nil {
		t.Error("wrapped for no environment")
	}
}
