package crypt

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold/clocktest"
)

func newFakeClock() *clocktest.Clock {
	return clocktest.New(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC))
}

// backing returns the array behind the cache's own copy of id's key, so a
// test can check that it was zeroed after the entry went.
func backing(t *testing.T, c *Cache, id string) *[KeySize]byte {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[id]
	if !ok || e.key.b == nil {
		t.Fatalf("no live entry %q", id)
	}
	return e.key.b
}

func wantZeroed(t *testing.T, b *[KeySize]byte, what string) {
	t.Helper()
	if *b != [KeySize]byte{} {
		t.Fatalf("%s: the cache's copy was not zeroed: %x", what, b[:])
	}
}

func TestCacheTTL(t *testing.T) {
	clock := newFakeClock()
	c := NewCache(time.Minute, clock)
	k := testKey(t, 1)
	c.Put("env1/1", k)
	b := backing(t, c, "env1/1")

	clock.Advance(time.Minute - time.Nanosecond)
	got, ok := c.Get("env1/1")
	if !ok || !got.Equal(k) {
		t.Fatalf("Get just before expiry = %v, %v; want the key", got, ok)
	}
	got.Destroy()
	if c.Len() != 1 {
		t.Fatalf("Len = %d; want 1", c.Len())
	}

	if !c.Contains("env1/1") || c.Contains("env2/1") {
		t.Fatal("Contains disagrees with the entries")
	}

	clock.Advance(time.Nanosecond)
	if c.Contains("env1/1") {
		t.Fatal("Contains reports an expired entry")
	}
	if c.Len() != 0 {
		t.Fatalf("Len of an expired entry = %d; want 0", c.Len())
	}
	if got, ok := c.Get("env1/1"); ok || got != nil {
		t.Fatalf("Get at expiry = %v, %v; want nothing", got, ok)
	}
	wantZeroed(t, b, "Get of an expired entry")
	if _, ok := c.entries["env1/1"]; ok {
		t.Fatal("Get left the expired entry in the map")
	}
	if c.Hits() != 1 || c.Misses() != 1 {
		t.Fatalf("Hits, Misses = %d, %d; want 1, 1", c.Hits(), c.Misses())
	}
}

func TestCacheCopies(t *testing.T) {
	c := NewCache(time.Hour, newFakeClock())
	k := testKey(t, 1)
	want := k.Clone()
	defer want.Destroy()

	c.Put("a", k)
	k.Destroy() // the caller destroys its own copy; the cache keeps one
	got, ok := c.Get("a")
	if !ok || !got.Equal(want) {
		t.Fatal("Get after the caller destroyed its key lost the key")
	}
	got.Destroy() // the returned copy is the caller's
	again, ok := c.Get("a")
	if !ok || !again.Equal(want) {
		t.Fatal("destroying Get's copy damaged the cache's")
	}
	again.Destroy()
}

func TestCachePutReplaces(t *testing.T) {
	clock := newFakeClock()
	c := NewCache(time.Minute, clock)
	c.Put("a", testKey(t, 1))
	old := backing(t, c, "a")
	clock.Advance(50 * time.Second)
	c.Put("a", testKey(t, 2))
	wantZeroed(t, old, "Put over an entry")
	clock.Advance(50 * time.Second) // past the first Put's expiry
	got, ok := c.Get("a")
	if !ok || !got.Equal(testKey(t, 2)) {
		t.Fatal("Put did not replace the key and restart its time-to-live")
	}
	got.Destroy()

	destroyed := testKey(t, 3)
	destroyed.Destroy()
	current := backing(t, c, "a")
	c.Put("a", destroyed)
	wantZeroed(t, current, "Put of a destroyed key")
	if _, ok := c.Get("a"); ok {
		t.Fatal("Put of a destroyed key left a usable entry")
	}
}

func TestCacheDropPurgeSweep(t *testing.T) {
	clock := newFakeClock()
	c := NewCache(time.Minute, clock)
	ids := []string{"env1/1", "env1/2", "env10/1", "env2/1"}
	arrays := map[string]*[KeySize]byte{}
	for i, id := range ids {
		c.Put(id, testKey(t, byte(i)))
		arrays[id] = backing(t, c, id)
	}

	c.Drop("env1/")
	for _, id := range []string{"env1/1", "env1/2"} {
		wantZeroed(t, arrays[id], "Drop "+id)
		if _, ok := c.Get(id); ok {
			t.Fatalf("Drop(env1/) left %s", id)
		}
	}
	for _, id := range []string{"env10/1", "env2/1"} {
		k, ok := c.Get(id)
		if !ok {
			t.Fatalf("Drop(env1/) removed %s", id)
		}
		k.Destroy()
	}

	clock.Advance(30 * time.Second)
	c.Put("late", testKey(t, 9))
	late := backing(t, c, "late")
	clock.Advance(30 * time.Second) // env10/1 and env2/1 expire; late lives
	c.Sweep()
	wantZeroed(t, arrays["env10/1"], "Sweep env10/1")
	wantZeroed(t, arrays["env2/1"], "Sweep env2/1")
	if n := len(c.entries); n != 1 {
		t.Fatalf("after Sweep %d entries remain; want 1", n)
	}
	if *late == [KeySize]byte{} {
		t.Fatal("Sweep zeroed a live entry")
	}

	c.Purge()
	wantZeroed(t, late, "Purge")
	if c.Len() != 0 || len(c.entries) != 0 {
		t.Fatalf("after Purge %d entries remain", len(c.entries))
	}
}

func TestCacheConcurrent(t *testing.T) {
	clock := newFakeClock()
	c := NewCache(time.Minute, clock)
	k := testKey(t, 1)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				id := fmt.Sprintf("env%d/%d", g, i%5)
				c.Put(id, k)
				if got, ok := c.Get(id); ok {
					got.Destroy()
				}
				if i%50 == 0 {
					c.Drop(fmt.Sprintf("env%d/", g))
					c.Sweep()
					clock.Advance(time.Second)
				}
			}
		})
	}
	wg.Wait()
	if c.Hits()+c.Misses() != 8*200 {
		t.Fatalf("Hits+Misses = %d; want %d", c.Hits()+c.Misses(), 8*200)
	}
}

func TestCacheNilClock(t *testing.T) {
	c := NewCache(time.Hour, nil)
	c.Put("a", testKey(t, 1))
	if k, ok := c.Get("a"); !ok {
		t.Fatal("a cache on the wall clock lost a fresh entry")
	} else {
		k.Destroy()
	}
}

// TestCachePutIfGen: a key loaded across a Drop of it or a Purge is not
// cached; one loaded across other keys' drops, or none, is.
func TestCachePutIfGen(t *testing.T) {
	c := NewCache(time.Minute, nil)
	k, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	defer k.Destroy()
	gen := c.Gen()
	c.Drop("e1/") // the environment being loaded
	if c.PutIfGen("e1/1", k, gen) || c.Contains("e1/1") {
		t.Fatal("PutIfGen cached a key loaded across a Drop of it")
	}
	gen = c.Gen()
	c.Drop("other/") // another environment's drop doesn't concern this load
	if !c.PutIfGen("e1/1", k, gen) || !c.Contains("e1/1") {
		t.Fatal("PutIfGen refused a key over another environment's Drop")
	}
	c.Drop("e1/")
	gen = c.Gen()
	for i := range maxDropLog + 1 { // more drops than the cache remembers
		c.Drop(fmt.Sprintf("x%d/", i))
	}
	if c.PutIfGen("e1/1", k, gen) {
		t.Fatal("PutIfGen cached a key loaded across more drops than the cache remembers")
	}
	gen = c.Gen()
	if !c.PutIfGen("e1/1", k, gen) || !c.Contains("e1/1") {
		t.Fatal("PutIfGen with the current generation cached nothing")
	}
	gen = c.Gen()
	c.Purge()
	if c.PutIfGen("e1/1", k, gen) || c.Len() != 0 {
		t.Fatal("PutIfGen cached a key loaded across a Purge")
	}
	if k.Destroyed() {
		t.Fatal("PutIfGen destroyed the caller's key")
	}
}

// derivedOf returns the store keys the cache keeps for id's entry.
func derivedOf(t *testing.T, c *Cache, id string) []*StoreKey {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[id]
	if !ok {
		return nil
	}
	return append([]*StoreKey(nil), e.derived...)
}

// wantDerivedZeroed fails unless every store key in ds was destroyed:
// its key bytes zeroed (b, taken while it lived) and its AEAD let go.
func wantDerivedZeroed(t *testing.T, ds []*StoreKey, bs []*[KeySize]byte, what string) {
	t.Helper()
	for i, d := range ds {
		if *bs[i] != [KeySize]byte{} || !d.key.Destroyed() || d.aead != nil {
			t.Fatalf("%s: the cache's derived store key %d was not zeroed", what, i)
		}
	}
}

// TestCacheStoreKey: the store keys derived from a cached EK are derived
// once per entry and store, are the keys DeriveStoreKey gives, are
// bounded per entry, and are zeroed and dropped with their entry by every
// way an entry goes (Drop, Purge, Put over it, expiry, Sweep), while a
// copy handed out before stays usable until its own Destroy.
func TestCacheStoreKey(t *testing.T) {
	clock := newFakeClock()
	c := NewCache(time.Minute, clock)
	ek := testKey(t, 7)
	defer ek.Destroy()
	if _, ok, _ := c.StoreKey("env1/1", "env1", 1, "rows"); ok {
		t.Fatal("StoreKey answered for an id the cache doesn't hold")
	}
	c.Put("env1/1", ek)

	want, err := DeriveStoreKey(ek, "env1", 1, "rows")
	if err != nil {
		t.Fatal(err)
	}
	defer want.Destroy()
	sealed, err := want.Seal("t/r", 3, []byte(`{"a":1}`))
	if err != nil {
		t.Fatal(err)
	}
	get := func() *StoreKey {
		t.Helper()
		sk, ok, err := c.StoreKey("env1/1", "env1", 1, "rows")
		if !ok || err != nil {
			t.Fatalf("StoreKey of a cached EK: %v, %v", ok, err)
		}
		if pt, err := sk.Open("t/r", 3, sealed); err != nil || string(pt) != `{"a":1}` {
			t.Fatalf("the derived key doesn't open what DeriveStoreKey's sealed: %v", err)
		}
		return sk
	}
	first, second := get(), get()
	ds := derivedOf(t, c, "env1/1")
	if len(ds) != 1 || first.aead != ds[0].aead || second.aead != ds[0].aead {
		t.Fatalf("two calls for one store kept %d derived keys (shared AEAD: %v): want one, derived once", len(ds), len(ds) == 1 && first.aead == ds[0].aead)
	}
	second.Destroy()
	if _, err := first.Open("t/r", 3, sealed); err != nil {
		t.Fatalf("destroying one copy broke another: %v", err)
	}
	// Another store of the same entry is a key of its own; the entry
	// keeps at most maxDerived.
	for i := range maxDerived + 2 {
		sk, ok, err := c.StoreKey("env1/1", "env1", 1, fmt.Sprint("store", i))
		if !ok || err != nil {
			t.Fatal(ok, err)
		}
		if _, err := sk.Open("t/r", 3, sealed); err == nil {
			t.Fatal("another store's key opened the rows' item")
		}
		sk.Destroy()
	}
	if n := len(derivedOf(t, c, "env1/1")); n != maxDerived {
		t.Fatalf("the entry keeps %d derived keys, want the bound %d", n, maxDerived)
	}

	// Every way an entry goes zeroes its derived keys.
	held := func(id string) ([]*StoreKey, []*[KeySize]byte) {
		t.Helper()
		ds := derivedOf(t, c, id)
		if len(ds) == 0 {
			t.Fatalf("no derived key cached under %q", id)
		}
		bs := make([]*[KeySize]byte, len(ds))
		for i, d := range ds {
			bs[i] = d.key.b
		}
		return ds, bs
	}
	gone := func(id, what string, ds []*StoreKey, bs []*[KeySize]byte) {
		t.Helper()
		if sk, ok, _ := c.StoreKey(id, "env1", 1, "rows"); ok {
			sk.Destroy()
			t.Fatalf("%s: StoreKey still answers", what)
		}
		wantDerivedZeroed(t, ds, bs, what)
	}
	ds, bs := held("env1/1")
	c.Drop("env1/")
	gone("env1/1", "Drop", ds, bs)
	if pt, err := first.Open("t/r", 3, sealed); err != nil || string(pt) != `{"a":1}` {
		t.Fatalf("a copy handed out before the drop: %v", err)
	}
	first.Destroy()

	c.Put("env1/1", ek)
	get().Destroy()
	ds, bs = held("env1/1")
	c.Purge()
	gone("env1/1", "Purge", ds, bs)

	c.Put("env1/1", ek)
	get().Destroy()
	ds, bs = held("env1/1")
	c.Put("env1/1", ek) // a new copy of the EK: the old entry's keys go
	wantDerivedZeroed(t, ds, bs, "Put over the entry")
	if n := len(derivedOf(t, c, "env1/1")); n != 0 {
		t.Fatalf("the replacing entry starts with %d derived keys, want 0", n)
	}

	get().Destroy()
	ds, bs = held("env1/1")
	clock.Advance(time.Minute)
	c.Sweep()
	wantDerivedZeroed(t, ds, bs, "Sweep after expiry")

	c.Put("env1/1", ek)
	get().Destroy()
	ds, bs = held("env1/1")
	clock.Advance(time.Minute)
	gone("env1/1", "expiry", ds, bs) // StoreKey itself finds it expired
}

// TestCacheStoreKeyConcurrent uses derived keys while their entry is
// dropped and put again (run it with -race): a copy handed out is never
// zeroed under its user.
func TestCacheStoreKeyConcurrent(t *testing.T) {
	c := NewCache(time.Minute, nil)
	ek := testKey(t, 9)
	defer ek.Destroy()
	c.Put("e/1", ek)
	want, err := DeriveStoreKey(ek, "e", 1, "rows")
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := want.Seal("t/r", 1, []byte("x"))
	want.Destroy()
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 300 {
				sk, ok, err := c.StoreKey("e/1", "e", 1, "rows")
				if err != nil {
					t.Error(err)
					return
				}
				if !ok {
					continue
				}
				if _, err := sk.Open("t/r", 1, sealed); err != nil {
					t.Errorf("a copy failed while its entry churned: %v", err)
				}
				sk.Destroy()
			}
		}()
	}
	for range 300 {
		c.Drop("e/")
		c.Put("e/1", ek)
	}
	wg.Wait()
}
