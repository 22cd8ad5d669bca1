package crypt_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
)

// The key hierarchy end to end: a root key wraps an environment key bound
// to its environment and epoch, and a store key derived from the EK seals a
// row.
func Example() {
	ctx := context.Background()
	mmk, _ := crypt.NewKey()
	defer mmk.Destroy()
	root := crypt.NewAESWrapper("platform-mmk", "1", mmk)
	defer root.Destroy()

	// Creating an environment: a new EK, wrapped with its binding.
	const envID = "4f5a2b1c-0d3e-4f60-8a7b-9c0d1e2f3a4b"
	ek, _ := crypt.NewKey()
	payload, _ := crypt.EKPayload(envID, 1, ek)
	kid, wrapped, _ := root.Wrap(ctx, "platform-mmk", payload)
	clear(payload)
	ek.Destroy()

	// Serving a request: unwrap the EK and seal a row with its store key.
	payload, _ = root.Unwrap(ctx, kid, wrapped)
	ek, err := crypt.OpenEKPayload(envID, 1, payload)
	clear(payload)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ek.Destroy()
	rows, _ := crypt.DeriveStoreKey(ek, envID, 1, keyhold.StoreRows)
	defer rows.Destroy()
	ct, _ := rows.Seal("accounts/42", 1, []byte(`{"name":"Contoso"}`))

	epoch := rows.Epoch() // the epoch whose EK opens ct
	pt, _ := rows.Open("accounts/42", 1, ct)
	fmt.Println(kid, epoch, string(pt))
	// Output: platform-mmk/1 1 {"name":"Contoso"}
}

func ExampleSeal() {
	master, _ := crypt.NewKey()
	defer master.Destroy()
	sealed, _ := crypt.Seal(master, "token-signing-key", []byte("PKCS#8 DER"))

	_, err := crypt.Open(master, "mmk", sealed)
	fmt.Println(err)
	pt, _ := crypt.Open(master, "token-signing-key", sealed)
	fmt.Println(string(pt))
	// Output:
	// crypt: sealed data for purpose "mmk" failed authentication: wrong key or purpose, or modified
	// PKCS#8 DER
}

func ExampleStoreKey_NewEncryptingWriter() {
	ek, _ := crypt.NewKey()
	defer ek.Destroy()
	files, _ := crypt.DeriveStoreKey(ek, "env-1", 1, keyhold.StoreFiles)
	defer files.Destroy()

	var stored bytes.Buffer
	w, _ := files.NewEncryptingWriter(&stored, "report.txt", 1)
	io.WriteString(w, "quarterly figures\n")
	if err := w.Close(); err != nil { // Close writes the final segment
		fmt.Println(err)
		return
	}

	r, _ := files.NewDecryptingReader(&stored, "report.txt", 1)
	pt, err := io.ReadAll(r)
	fmt.Printf("%q %v\n", pt, err)
	// Output: "quarterly figures\n" <nil>
}

func ExampleCache() {
	clock := keyhold.SystemClock{}
	cache := crypt.NewCache(5*time.Minute, clock)
	ek, _ := crypt.NewKey()
	cache.Put("env-1/1", ek) // the cache keeps its own copy
	ek.Destroy()

	if k, ok := cache.Get("env-1/1"); ok {
		defer k.Destroy() // and Get hands out another
		fmt.Println("hit", k)
	}
	cache.Drop("env-1/") // on lock: zero every epoch of env-1
	_, ok := cache.Get("env-1/1")
	fmt.Println(ok)
	// Output:
	// hit crypt.Key(REDACTED)
	// false
}
