package postgres_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/postgres"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// newBroadcaster opens a Broadcaster on dsn, closed when the test ends.
func newBroadcaster(t *testing.T, dsn string) *postgres.Broadcaster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := postgres.NewBroadcaster(ctx, dsn, nil)
	if err != nil {
		t.Fatalf("NewBroadcaster: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// subscribe subscribes until the test ends.
func subscribe(t *testing.T, b keyhold.Broadcaster) <-chan string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ch, err := b.Subscribe(ctx)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	return ch
}

// next returns the next message on ch, failing after 10 s.
func next(t *testing.T, ch <-chan string, who string) string {
	t.Helper()
	select {
	case msg, ok := <-ch:
		if !ok {
			t.Fatalf("%s: the subscription closed", who)
		}
		return msg
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no message within 10s", who)
		return ""
	}
}

func wantNext(t *testing.T, ch <-chan string, who, want string) {
	t.Helper()
	if got := next(t, ch, who); got != want {
		t.Fatalf("%s received %q, want %q", who, got, want)
	}
}

func publish(t *testing.T, b keyhold.Broadcaster, msg string) {
	t.Helper()
	if err := b.Publish(context.Background(), msg); err != nil {
		t.Fatalf("Publish(%q): %v", msg, err)
	}
}

// TestNotifyAcrossReplicas: what one replica publishes reaches every
// subscription of every replica on the database, the sender's included,
// in order; a replica of another database hears nothing; a message that
// is not valid is refused and sent nowhere.
func TestNotifyAcrossReplicas(t *testing.T) {
	db := storetest.NewPostgresDatabase(t)
	other := storetest.NewPostgresDatabase(t)
	a, b := newBroadcaster(t, db.DSN), newBroadcaster(t, db.DSN)
	x := newBroadcaster(t, other.DSN)
	a1, a2, b1, x1 := subscribe(t, a), subscribe(t, a), subscribe(t, b), subscribe(t, x)

	publish(t, a, "keys.drop env-1")
	publish(t, a, "keys.drop env-2")
	publish(t, b, "keys.purge")
	for _, s := range []struct {
		name string
		ch   <-chan string
	}{{"sender, first subscription", a1}, {"sender, second subscription", a2}, {"other replica", b1}} {
		// One sender's messages arrive in order; b's may come anywhere
		// among them.
		var fromA []string
		var fromB int
		for range 3 {
			switch msg := next(t, s.ch, s.name); msg {
			case "keys.purge":
				fromB++
			default:
				fromA = append(fromA, msg)
			}
		}
		if strings.Join(fromA, ",") != "keys.drop env-1,keys.drop env-2" || fromB != 1 {
			t.Fatalf("%s received %q from a and %d from b", s.name, fromA, fromB)
		}
	}

	for _, bad := range []string{"", keyhold.BroadcastMissed, "line\nbreak", "caf\u00e9", strings.Repeat("x", keyhold.MaxBroadcastSize+1)} {
		err := a.Publish(context.Background(), bad)
		if keyhold.ErrorCode(err) != keyhold.CodeBadRequest {
			t.Fatalf("Publish(%.20q) = %v, want %s", bad, err, keyhold.CodeBadRequest)
		}
	}
	publish(t, a, strings.Repeat("y", keyhold.MaxBroadcastSize)) // the longest message
	publish(t, b, "marker")
	// The refused messages went nowhere: the next messages are the
	// valid ones.
	for _, ch := range []<-chan string{a1, b1} {
		wantNext(t, ch, "after the refusals", strings.Repeat("y", keyhold.MaxBroadcastSize))
		wantNext(t, ch, "after the refusals", "marker")
	}

	// The other database's replica heard none of it.
	publish(t, x, "other database")
	wantNext(t, x1, "a replica of another database", "other database")
}

// terminate ends a server process of the test database, as an operator's
// pg_terminate_backend or a failover would.
func terminate(t *testing.T, dsn string, pid uint32) {
	t.Helper()
	conn, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var ok bool
	if err := conn.QueryRow(`SELECT pg_terminate_backend($1)`, int64(pid)).Scan(&ok); err != nil || !ok {
		t.Fatalf("pg_terminate_backend(%d) = %v, %v", pid, ok, err)
	}
}

// TestNotifyReconnect: when the listening connection is killed, its
// subscribers are told at once that messages may be lost, again once it
// listens again (on a new server process), and then hear messages as
// before. The other replica's subscription is undisturbed.
func TestNotifyReconnect(t *testing.T) {
	db := storetest.NewPostgresDatabase(t)
	a, b := newBroadcaster(t, db.DSN), newBroadcaster(t, db.DSN)
	a1, b1 := subscribe(t, a), subscribe(t, b)
	publish(t, b, "before")
	wantNext(t, a1, "a before the kill", "before")
	wantNext(t, b1, "b before the kill", "before")

	pid := a.ListenerPID()
	if pid == 0 {
		t.Fatal("ListenerPID = 0")
	}
	terminate(t, db.DSN, pid)
	wantNext(t, a1, "a when its connection broke", keyhold.BroadcastMissed)
	wantNext(t, a1, "a once it listens again", keyhold.BroadcastMissed)
	if n := a.Reconnects(); n != 1 {
		t.Fatalf("Reconnects = %d, want 1", n)
	}
	if a.ListenerPID() == pid || a.ListenerPID() == 0 {
		t.Fatalf("ListenerPID after the reconnect = %d, was %d: want a new process", a.ListenerPID(), pid)
	}

	publish(t, b, "after")
	publish(t, a, "from a") // a's publishing connection was not the one killed
	wantNext(t, a1, "a after the reconnect", "after")
	wantNext(t, a1, "a after the reconnect", "from a")
	wantNext(t, b1, "b", "after")
	wantNext(t, b1, "b", "from a")
	if n := b.Reconnects(); n != 0 {
		t.Fatalf("b reconnected %d times; only a's connection was killed", n)
	}
}

// TestNotifyIdleConnectionKept: the listener pings after a quiet spell and
// keeps its connection: no reconnect, no BroadcastMissed, and messages
// still arrive.
func TestNotifyIdleConnectionKept(t *testing.T) {
	restore := postgres.SetListenIdle(100 * time.Millisecond)
	db := storetest.NewPostgresDatabase(t)
	a := newBroadcaster(t, db.DSN)
	restore()
	a1 := subscribe(t, a)
	pid := a.ListenerPID()
	time.Sleep(time.Second) // about ten idle pings
	publish(t, a, "still here")
	wantNext(t, a1, "after a quiet second", "still here")
	if a.Reconnects() != 0 || a.ListenerPID() != pid {
		t.Fatalf("after idle pings: %d reconnects, pid %d (was %d); want the same connection", a.Reconnects(), a.ListenerPID(), pid)
	}
}

// TestNotifyClose: Close ends subscriptions; then Publish and Subscribe
// are refused.
func TestNotifyClose(t *testing.T) {
	db := storetest.NewPostgresDatabase(t)
	a := newBroadcaster(t, db.DSN)
	a1 := subscribe(t, a)
	a.Close()
	select {
	case msg, ok := <-a1:
		if ok {
			t.Fatalf("after Close the subscription received %q, want it closed", msg)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the subscription was not closed by Close")
	}
	if err := a.Publish(context.Background(), "late"); err == nil {
		t.Fatal("Publish after Close succeeded")
	}
	if _, err := a.Subscribe(context.Background()); err == nil {
		t.Fatal("Subscribe after Close succeeded")
	}
	a.Close() // idempotent
}

// TestNotifyErrorsHideThePassword: a broadcaster that can't connect says
// where it tried, without the password.
func TestNotifyErrorsHideThePassword(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, dsn := range []string{
		"postgres://keyhold:hunter2-secret@127.0.0.1:1/keyhold?sslmode=disable",
		"host=127.0.0.1 port=notaport user=keyhold password=hunter2-secret",
	} {
		b, err := postgres.NewBroadcaster(ctx, dsn, nil)
		if err == nil {
			b.Close()
			t.Fatalf("NewBroadcaster(%q) succeeded", dsn)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("NewBroadcaster error %q shows the password", err)
		}
	}
}

// TestNotifyPublishAll: a batch of messages goes out in one statement and
// arrives, in order, at the other replica; a batch with one bad message
// sends none of them.
func TestNotifyPublishAll(t *testing.T) {
	db := storetest.NewPostgresDatabase(t)
	a, b := newBroadcaster(t, db.DSN), newBroadcaster(t, db.DSN)
	b1 := subscribe(t, b)
	batch := []string{"keys.dropenvs e1 e2", "keys.dropenvs e3", "keys.drop e4 7"}
	if err := a.PublishAll(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	for _, want := range batch {
		wantNext(t, b1, "the other replica", want)
	}
	err := a.PublishAll(context.Background(), []string{"keys.drop e5", "line\nbreak"})
	if keyhold.ErrorCode(err) != keyhold.CodeBadRequest {
		t.Fatalf("PublishAll with a bad message = %v, want %s", err, keyhold.CodeBadRequest)
	}
	publish(t, a, "marker")
	wantNext(t, b1, "after the refusal", "marker") // not keys.drop e5
	if err := a.PublishAll(context.Background(), nil); err != nil {
		t.Fatalf("an empty batch: %v", err)
	}
}
