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
