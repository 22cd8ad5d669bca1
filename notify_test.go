package keyhold_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

func recv(t *testing.T, ch <-chan string) (string, bool) {
	t.Helper()
	select {
	case msg, ok := <-ch:
		return msg, ok
	case <-time.After(5 * time.Second):
		t.Fatal("no message within 5s")
		return "", false
	}
}

// TestLocalBroadcaster: every subscription gets every message in order,
// the publisher's too; invalid messages are refused and go nowhere; a
// subscription ends with its context; Close ends them all and refuses
// more.
func TestLocalBroadcaster(t *testing.T) {
	b := keyhold.NewLocalBroadcaster()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s1, err := b.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	s2, err := b.Subscribe(ctx2)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", keyhold.BroadcastMissed, "tab\there", strings.Repeat("x", keyhold.MaxBroadcastSize+1)} {
		if err := b.Publish(ctx, bad); keyhold.ErrorCode(err) != keyhold.CodeBadRequest {
			t.Fatalf("Publish(%.20q) = %v, want %s", bad, err, keyhold.CodeBadRequest)
		}
	}
	for i := range 3 {
		if err := b.Publish(ctx, fmt.Sprint("m", i)); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []<-chan string{s1, s2} {
		for i := range 3 {
			if msg, ok := recv(t, s); !ok || msg != fmt.Sprint("m", i) {
				t.Fatalf("received %q (open %v), want m%d: refused messages must go nowhere", msg, ok, i)
			}
		}
	}
	b.Missed()
	if msg, _ := recv(t, s1); msg != keyhold.BroadcastMissed {
		t.Fatalf("after Missed: %q", msg)
	}

	cancel2()
	for range s2 { // drains what Missed queued, then closes
	}
	b.Close()
	if _, ok := recv(t, s1); ok {
		t.Fatal("a subscription stayed open after Close")
	}
	if err := b.Publish(context.Background(), "late"); keyhold.ErrorCode(err) != keyhold.CodeServiceUnavailable {
		t.Fatalf("Publish after Close = %v", err)
	}
	if _, err := b.Subscribe(context.Background()); err == nil {
		t.Fatal("Subscribe after Close succeeded")
	}
	b.Close()
}

// TestLocalBroadcasterSlowSubscriber: Publish does not wait for a reader
// that does not read; once it falls more than the queue behind, what it
// missed is replaced by BroadcastMissed, then it hears new messages.
func TestLocalBroadcasterSlowSubscriber(t *testing.T) {
	b := keyhold.NewLocalBroadcaster()
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := b.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 5000 {
			b.Publish(ctx, fmt.Sprint("m", i))
		}
		b.Publish(ctx, "last")
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Publish blocked on a subscriber that does not read")
	}
	var missed bool
	var got []string
	for {
		msg, ok := recv(t, s)
		if !ok {
			t.Fatal("closed")
		}
		if msg == keyhold.BroadcastMissed {
			missed = true
			continue
		}
		got = append(got, msg)
		if msg == "last" {
			break
		}
	}
	if !missed || len(got) >= 5001 {
		t.Fatalf("a subscriber 5000 messages behind got %d messages and missed=%v; want BroadcastMissed in place of some", len(got), missed)
	}
}
