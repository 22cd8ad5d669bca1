package crypt

import (
	"bytes"
	"testing"
)

// TestPartitionKey: a partition key opens what it sealed, and nothing
// sealed for another environment or store, nor by the store key derived
// from the same key material (the labels keep them apart).
func TestPartitionKey(t *testing.T) {
	root, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	defer root.Destroy()
	w := NewAESWrapper("mmk", "1", root)
	defer w.Destroy()
	pk, err := w.DerivePartitionKey("env-1", "connections")
	if err != nil {
		t.Fatal(err)
	}
	defer pk.Destroy()
	if pk.Epoch() != 0 {
		t.Fatalf("partition key epoch = %d, want 0", pk.Epoch())
	}
	ct, err := pk.Seal("shared_http/c1", 1, []byte("api-key"))
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := pk.Open("shared_http/c1", 1, ct); err != nil || !bytes.Equal(pt, []byte("api-key")) {
		t.Fatalf("Open = %q, %v", pt, err)
	}
	other, _ := w.DerivePartitionKey("env-2", "connections")
	defer other.Destroy()
	if _, err := other.Open("shared_http/c1", 1, ct); err == nil {
		t.Fatal("another environment's partition key opened the item")
	}
	sk, _ := DeriveStoreKey(root, "env-1", 0, "connections")
	defer sk.Destroy()
	if _, err := sk.Open("shared_http/c1", 1, ct); err == nil {
		t.Fatal("the store key of the same key material opened a partition item")
	}
}
